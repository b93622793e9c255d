"""`policy-monitor check`: everything a start would trip on, found before the start, one line per
problem. Reads only: no migration, no source rows, nothing fetched is stored.

Checked: the configuration (the loader's own errors, notifier URLs parsed by apprise and shown
masked), the database (reachable; migrations pending or ahead of this version), custom templates
(rendered once per notifier), and with ``fetch`` each enabled source fetched and parsed once,
concurrently, counting its items.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from monitor.config import Config, ConfigError, SourceConfig, load
from monitor.sanitize import for_display, mask_urls_in

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from monitor.app import App


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)    # facts for the OK summary

    def problem(self, where: str, what: str) -> None:
        self.problems.append(f"{where}: {for_display(mask_urls_in(what))}")


def load_config(path: str | None, report: Report) -> Config | None:
    """The config as a sending command reads it (notifier URLs from the environment, checked by
    apprise). When only notifiers are wrong, the config is read again as a command that sends
    nothing reads it, each notifier is checked on its own (one line each), and the rest goes on."""
    try:
        return load(path, secrets=True)
    except ConfigError as exc:
        with_secrets = str(exc).splitlines()
    try:
        cfg = load(path, secrets=False)
    except ConfigError:
        report.problems.extend(with_secrets)
        return None
    for n in cfg.settings.notify:
        problem = notifier_problem(n.url)
        if problem:
            report.problem(f"notifier {n.name}", f"url: {problem}")
    return cfg


def notifier_problem(url: str) -> str | None:
    """Why a notifier URL as written (``${VAR}`` read from the environment) cannot be used."""
    import os

    from monitor.config import _ENV_REF
    from monitor.notify.channels import check_url

    missing = [m.group(1) for m in _ENV_REF.finditer(url) if m.group(1) not in os.environ]
    if missing:
        return f"environment variable {missing[0]} is not set"
    return check_url(_ENV_REF.sub(lambda m: os.environ[m.group(1)], url))


def check_database(cfg: Config, report: Report) -> Engine | None:
    """Reachable, and at this version's revision (else: pending, or a newer version's)."""
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    from monitor.store import db

    from sqlalchemy.engine import make_url

    url = cfg.database_url
    # a SQLite file by its path (no secret in it); any other URL masked
    shown = str(make_url(url).database) if url.startswith("sqlite:///") else db.shown(url)
    try:
        engine = db.make_engine(url, create=False)
    except db.DatabaseError as exc:
        if exc.usage and url.startswith("sqlite") and "no database at" in str(exc):
            report.notes.append(f"database {shown} not created yet (the first `once` or `run` creates it)")
            return None
        report.problem("database", str(exc))
        return None
    try:
        with engine.connect() as conn:
            tables = set(conn.dialect.get_table_names(conn))
            current = conn.execute(text("SELECT version_num FROM alembic_version")).scalar() \
                if "alembic_version" in tables else None
    except SQLAlchemyError as exc:
        reason = getattr(exc, "orig", None) or exc
        report.problem("database", f"{shown}: cannot connect: {reason}")
        engine.dispose()
        return None
    if current == db.HEAD:
        report.notes.append(f"database {shown} at revision {current}")
    elif current is None:
        report.notes.append(f"database {shown} is empty (its tables are created at the first start)")
    elif current in _known_revisions():
        report.notes.append(f"database {shown} at revision {current}: migrations to {db.HEAD} pending "
                            "(applied at the next start, or by `policy-monitor db upgrade`)")
    else:
        report.problem("database", f"{shown} is at revision {current}, which this version ({db.HEAD}) does not "
                       "know: it was migrated by a newer policy-monitor; run that version")
    return engine


def _known_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    from monitor.store import db

    script = ScriptDirectory(str(db.MIGRATIONS))
    return {rev.revision for rev in script.walk_revisions()}


def check_templates(app: App, report: Report) -> None:
    """Custom templates (``templates.dir``) rendered once per notifier's language and format, as a
    test message, an operator message and, when the log has one, an alert."""
    folder = app.config.relative(app.config.settings.templates.dir)
    if not folder:
        return
    if not Path(folder).is_dir():
        report.problem("templates.dir", f"{folder} is not a folder")
        return
    from jinja2 import TemplateError

    from monitor import clock
    from monitor.store import repo

    change = None
    try:
        with app.sessions() as s:
            change = repo.latest_change(s)
    except Exception:  # no database yet: render without a change
        pass
    now = clock.now()
    ops = {"event": "failing", "source": "example", "url": "https://example.org/feed", "error": "HTTP 503",
           "since": now.isoformat(), "failures": 3}
    wanted = {(n.lang, n.format if n.format != "auto" else "text") for n in app.config.settings.notify} \
        or {("zh", "text"), ("en", "text")}
    for lang, fmt in sorted(wanted):
        for kind in ("test", "ops", "alert"):
            if kind == "alert" and change is None:
                continue
            try:
                app.renderer.render(kind, lang, fmt, now, change=change if kind != "ops" else None,
                                    ops=ops if kind == "ops" else None, name="check")
            except TemplateError as exc:
                line = getattr(exc, "lineno", None)
                where = f"{getattr(exc, 'filename', None) or f'message.{lang}.j2'}" + (f", line {line}" if line else "")
                report.problem("templates", f"{where} ({kind} message, {fmt}): {exc.message or exc}")
                return


def fetch_one(app: App, cfg: SourceConfig) -> str:
    """Fetch and parse ``cfg`` once, as a poll does (the same code), storing nothing; what was
    found, or raise with the problem."""
    from monitor.pipeline import fetch_document, read_document
    from monitor.sources import filters, pages

    result = fetch_document(app, cfg, timeout=cfg.timeout.total_seconds() if cfg.timeout else None)
    items, html, _garbled = read_document(cfg, result)
    if html is not None:
        text = pages.watched_text(html, cfg.selector, cfg.ignore)
        if not text.strip():
            raise ValueError("the watched part of the page is empty (check selector and ignore)")
        return f"{text.count(chr(10)) + 1} lines of watched text"
    items = items or []
    kept = filters.apply(items, cfg.include, cfg.exclude)
    if not items:
        raise ValueError("fetched, but no items found in it"
                         + (" (check selectors)" if cfg.kind != "feed" else ""))
    return f"{len(items)} items" + (f" ({len(kept)} after include/exclude)" if len(kept) != len(items) else "")


def check_sources(app: App, report: Report, progress: Callable[[int, int], None] | None = None) -> None:
    """Every enabled source fetched once, ``fetch.workers`` at a time."""
    sources = [s for s in app.config.settings.sources if s.enabled]
    found: dict[str, str] = {}

    def one(cfg: SourceConfig) -> tuple[str, str | None, str | None]:
        try:
            return cfg.name, fetch_one(app, cfg), None
        except Exception as exc:  # a fetch error, a parse error, a missing browser: the source's problem
            return cfg.name, None, str(exc) or type(exc).__name__

    errors: dict[str, str] = {}
    with ThreadPoolExecutor(max_workers=app.config.settings.fetch.workers, thread_name_prefix="check") as pool:
        futures = [pool.submit(one, cfg) for cfg in sources]
        for done, future in enumerate(as_completed(futures), 1):
            name, what, error = future.result()
            if error is not None:
                errors[name] = error
            else:
                found[name] = what or ""
            if progress is not None:
                progress(done, len(sources))
    for cfg in sources:  # in the config's order, whatever finished first
        if cfg.name in errors:
            report.problem(f"source {cfg.name}", errors[cfg.name])
    items = sum(int(v.split()[0]) for v in found.values() if v.endswith("items") or " items (" in v)
    report.notes.append(f"fetched {len(found)} of {len(sources)} enabled sources ({items} items)")
