"""The command line: every command of spec/interface.md, thin over the shared core in monitor.app.

Exit status: 0 success, 1 a failure of the work (a source, a delivery, a bad input file), 2 a
configuration or usage error (reported before anything runs: a bad config, database URL or option, a
missing input file), 130 when interrupted twice.

Commands that send nothing read no notifier secrets, and commands that only read never create a
database (see ``_app``).
"""

from __future__ import annotations

import functools
import logging
import sys
import time
from datetime import date
from typing import Any, Callable, TypeVar

import click

from monitor import __version__, clock
from monitor.config import Config, ConfigError, load as load_config

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("monitor")


def _setup_logging(verbose: bool, quiet: bool = False) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("apscheduler", "httpx", "httpcore", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING if not verbose else logging.INFO)
    # apprise's own failure lines are reported once, by us, in each delivery's error (and `deliveries`):
    # they are still captured per send (its logger keeps its level), just not printed a second time.
    apprise_log = logging.getLogger("apprise")
    apprise_log.setLevel(logging.WARNING if not verbose else logging.INFO)
    apprise_log.propagate = verbose


def fail(message: str, status: int = 1) -> None:
    from monitor.sanitize import for_display

    click.echo(f"error: {for_display(message, newlines=True)}", err=True)
    sys.exit(status)


def config_option(f: F) -> F:
    return click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
                        help="Config file (default: $MONITOR_CONFIG, else config/monitor.toml).")(f)


def _config(path: str | None, secrets: bool = True) -> Config:
    try:
        return load_config(path, secrets=secrets)
    except ConfigError as exc:
        fail(str(exc), 2)
        raise  # unreachable


def _app(path: str | None, migrate: bool = True, secrets: bool = True,  # type: ignore[no-untyped-def]
         create: bool = True, lexicon: bool = True):
    """The core for a command. ``secrets``: the command sends, so notifier URLs are read from the
    environment and checked (a query or an offline command needs none of them). ``create``: the
    command writes, so a new SQLite database may be created (a query on a database that does not
    exist is an error, not an empty listing). ``lexicon``: the command extracts or renders, so the
    lexicon is loaded (and a broken one reported) before anything runs."""
    from monitor.app import App
    from monitor.store.db import DatabaseError

    cfg = _config(path, secrets=secrets)
    try:
        app = App.open(cfg, migrate=migrate, create=create)
    except DatabaseError as exc:
        fail(str(exc), 2 if exc.usage else 1)
    if lexicon:
        from monitor.extract.lexicon import LexiconError

        try:
            _ = app.lexicon
        except LexiconError as exc:
            fail(str(exc), 2)
    return app


def guard(f: F) -> F:
    """Turn MONITOR_NOW mistakes and database outages into one clear line instead of a traceback."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from sqlalchemy.exc import OperationalError

        from monitor.sanitize import mask_urls_in

        try:
            return f(*args, **kwargs)
        except clock.ClockError as exc:
            fail(str(exc), 2)
        except OperationalError as exc:
            fail(f"database: {mask_urls_in(str(exc.orig if exc.orig else exc))}")

    return wrapper  # type: ignore[return-value]


FORMAT = click.Choice(["table", "json"])


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="policy-monitor")
def main() -> None:
    """policy-monitor: watches platforms and news for link-policy changes and alerts you in time."""


# -- run / once ------------------------------------------------------------------------------------
@main.command()
@config_option
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@guard
def run(config_path: str | None, verbose: bool) -> None:
    """Run the daemon: poll every source on its interval, extract, store, notify, until SIGTERM."""
    _setup_logging(verbose)
    from monitor.daemon import Daemon

    sys.exit(Daemon(_app(config_path)).run())


@main.command()
@config_option
@click.option("--source", "source_name", help="Poll only this source.")
@click.option("--no-deliver", is_flag=True, help="Poll only; leave due deliveries for later.")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
@guard
def once(config_path: str | None, source_name: str | None, no_deliver: bool, verbose: bool, quiet: bool) -> None:
    """Poll every source once (or --source NAME), deliver what is due, exit (1 if a source failed).

    Ctrl-C stops starting sources and lets those in flight finish for daemon.shutdown_grace (their
    fetches are then cut off); a second Ctrl-C exits at once."""
    _setup_logging(verbose, quiet)
    import os
    import signal
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from monitor.pipeline import PollOutcome, poll
    from monitor.sanitize import for_display
    from monitor.store import repo

    app = _app(config_path, secrets=not no_deliver)
    sources = [s for s in app.config.settings.sources if s.enabled]
    if source_name:
        try:
            sources = [app.config.source(source_name)]
        except KeyError as exc:
            fail(str(exc.args[0]), 2)
    app.release_dead_leases()
    stop = threading.Event()
    grace = app.config.settings.daemon.shutdown_grace.total_seconds()

    def interrupted(signum: int, _frame: object) -> None:
        if stop.is_set():
            click.echo("interrupted again: exiting now (unfinished polls are redone next time)", err=True)
            os._exit(130)
        stop.set()
        click.echo(f"interrupted: starting no more sources; the ones in flight get {grace:g}s to finish "
                   "(Ctrl-C again to exit now)", err=True)
        timer = threading.Timer(grace, app.fetcher.abort)
        timer.daemon = True
        timer.start()

    signal.signal(signal.SIGINT, interrupted)
    signal.signal(signal.SIGTERM, interrupted)

    def one(cfg: Any) -> PollOutcome:
        if stop.is_set():
            return PollOutcome(cfg.name, False, skipped="interrupted")
        with app.sessions.begin() as s:
            claimed = repo.claim_poll(s, cfg.name, app.owner, clock.utcnow(), app.lease_for(cfg))
        if not claimed:
            return PollOutcome(cfg.name, False, skipped="another process is polling it now")
        return poll(app, cfg)

    def guarded(cfg: Any) -> PollOutcome:
        try:
            return one(cfg)
        except Exception as exc:  # the database, say: still this source's outcome, the others go on
            return PollOutcome(cfg.name, False, f"{type(exc).__name__}: {exc}")

    with ThreadPoolExecutor(max_workers=app.config.settings.fetch.workers, thread_name_prefix="poll") as pool:
        outcomes = list(pool.map(guarded, sources))
    failed = 0
    for outcome in outcomes:
        if outcome.skipped:
            if outcome.skipped != "interrupted":
                click.echo(f"note: source {outcome.source} skipped: {outcome.skipped}", err=True)
        elif not outcome.ok:
            failed += 1
            click.echo(f"error: source {outcome.source}: {for_display(str(outcome.error))}", err=True)
        elif outcome.warning:
            click.echo(f"warning: source {outcome.source}: {for_display(outcome.warning)}", err=True)
    if stop.is_set():
        app.close()
        sys.exit(130)
    if not no_deliver:
        app.dispatcher.deliver_due()  # each failed delivery is logged once, with the channel's own words
    app.close()
    sys.exit(1 if failed else 0)


# -- queries ---------------------------------------------------------------------------------------
def _day(_ctx: Any, _param: Any, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)")


def change_record(c: Any) -> dict[str, Any]:
    from monitor.output import iso

    sources = []
    for m in c.mentions:
        e = m.entry
        sources.append({"source": e.source.name, "title": e.title, "url": e.url, "published": iso(e.published)})
    return {
        "id": c.id, "platform": c.platform, "targets": list(c.targets or []), "action": c.action,
        "link_type": c.link_type, "effective_date": iso(c.effective_date), "evidence": c.evidence,
        "confidence": round(c.confidence, 3), "first_seen": c.first_seen, "sources": sources,
        "status": c.status, "found_by": c.found_by,
        "history": [{"at": iso(h.at), "what": h.kind, "old": h.old_value, "new": h.new_value,
                     "evidence": h.evidence} for h in c.history],
    }


@main.command()
@config_option
@click.option("--platform")
@click.option("--target")
@click.option("--action", type=click.Choice(["ban", "restrict", "allow", "require"]))
@click.option("--since", callback=_day, help="First seen on or after DATE.")
@click.option("--until", callback=_day, help="First seen on or before DATE.")
@click.option("--effective-from", callback=_day, help="Effective on or after DATE.")
@click.option("--effective-to", callback=_day, help="Effective on or before DATE.")
@click.option("--status", type=click.Choice(["active", "reversed", "withdrawn"]),
              help="Only changes in this state (default: all but withdrawn ones).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
@guard
def changes(config_path: str | None, platform: str | None, target: str | None, action: str | None,
            since: date | None, until: date | None, effective_from: date | None, effective_to: date | None,
            status: str | None, fmt: str) -> None:
    """The change log, newest first. Withdrawn changes (no longer found by the extractor after
    `reextract`) are left out unless asked for with --status withdrawn."""
    _setup_logging(False, quiet=True)
    from monitor.output import render, zone
    from monitor.store.repo import ChangeFilter, list_changes

    app = _app(config_path, secrets=False, create=False, lexicon=False)
    with app.sessions() as s:
        rows = [change_record(c) for c in list_changes(s, ChangeFilter(
            platform, target, action, since, until, effective_from, effective_to, status))]
    for r in rows:
        r["mentions"] = len(r["sources"])
    if fmt != "json":
        for r in rows:
            r["sources"] = [x["source"] for x in r["sources"]]
            r.pop("history")
            r.pop("mentions") if fmt == "csv" else None
    cols = ["id", "platform", "action", "targets", "link_type", "effective_date", "status", "first_seen",
            "confidence"]
    cols += ["mentions"] if fmt == "table" else ["sources", "evidence"]
    if fmt == "json":
        for r in rows:
            r.pop("mentions")
    click.echo(render(rows, fmt, cols, zone(app.config.settings.display.timezone)))


@main.command()
@config_option
@click.option("--format", "fmt", type=FORMAT, default="table", show_default=True)
@guard
def sources(config_path: str | None, fmt: str) -> None:
    """Each configured source with its last poll, status, last error and warning."""
    _setup_logging(False, quiet=True)
    from monitor.output import render, zone
    from monitor.sanitize import mask_url
    from monitor.store.repo import list_sources

    app = _app(config_path, secrets=False, create=False, lexicon=False)
    configured = {s.name: s for s in app.config.settings.sources}
    with app.sessions() as s:
        rows = [{"name": r.name, "kind": r.kind, "url": mask_url(r.url),
                 "status": r.status if configured[r.name].enabled else "disabled",
                 "last_polled": r.last_polled, "last_error": r.last_error, "warning": r.last_warning,
                 "entries_seen": r.entries_seen, "next_poll": r.next_poll, "failures": r.failures}
                for r in list_sources(s) if r.name in configured]
    click.echo(render(rows, fmt, ["name", "status", "last_polled", "entries_seen", "next_poll", "last_error",
                                  "warning"], zone(app.config.settings.display.timezone)))


@main.command()
@config_option
@click.option("--source", "source_name", help="Only entries of this source.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1))
@click.option("--format", "fmt", type=FORMAT, default="table", show_default=True)
@guard
def entries(config_path: str | None, source_name: str | None, limit: int, fmt: str) -> None:
    """What the sources yielded, newest first, with the number of changes found in each."""
    _setup_logging(False, quiet=True)
    from monitor.output import render, zone
    from monitor.store.repo import list_entries

    app = _app(config_path, secrets=False, create=False, lexicon=False)
    if source_name:
        try:
            app.config.source(source_name)
        except KeyError as exc:
            fail(str(exc.args[0]), 2)
    with app.sessions() as s:
        rows = [{"source": e.source.name, "title": e.title, "url": e.url, "published": e.published,
                 "changes": e.changes_found} for e in list_entries(s, source_name, limit)]
    click.echo(render(rows, fmt, ["source", "published", "changes", "title", "url"],
                      zone(app.config.settings.display.timezone)))


@main.group(invoke_without_command=True)
@config_option
@click.option("--status", type=click.Choice(["pending", "sent", "failed", "dead", "unknown", "cancelled",
                                            "skipped"]))
@click.option("--format", "fmt", type=FORMAT, default="table", show_default=True)
@click.pass_context
@guard
def deliveries(ctx: click.Context, config_path: str | None, status: str | None, fmt: str) -> None:
    """The outbox: each message owed to a notifier, with its status and last error."""
    if ctx.invoked_subcommand is not None:
        return
    _setup_logging(False, quiet=True)
    from monitor.output import render, zone
    from monitor.store.repo import DUE, list_deliveries

    app = _app(config_path, secrets=False, create=False, lexicon=False)
    with app.sessions() as s:
        rows = [{"id": d.id, "change_id": d.change_id, "notifier": d.notifier, "kind": d.kind, "status": d.status,
                 "attempts": d.attempts, "last_error": d.last_error,
                 "next_attempt": d.next_attempt if d.status in DUE else None,  # sent, dead…: none is planned
                 "sent_at": d.sent_at} for d in list_deliveries(s, status)]
    click.echo(render(rows, fmt, ["id", "change_id", "notifier", "kind", "status", "attempts", "next_attempt",
                                  "last_error"], zone(app.config.settings.display.timezone)))


@deliveries.command("retry")
@config_option
@click.argument("ids", nargs=-1, type=int)
@click.option("--all-dead", is_flag=True, help="Retry every dead delivery.")
@guard
def deliveries_retry(config_path: str | None, ids: tuple[int, ...], all_dead: bool) -> None:
    """Make dead, failed or unknown deliveries due again (sent by the daemon or the next `once`)."""
    _setup_logging(False, quiet=True)
    if not ids and not all_dead:
        fail("give delivery IDs or --all-dead", 2)
    from monitor.store.repo import retry_deliveries

    app = _app(config_path, secrets=False, create=False, lexicon=False)
    with app.sessions.begin() as s:
        n = retry_deliveries(s, clock.utcnow(), ids, all_dead)
    click.echo(f"{n} deliver{'y' if n == 1 else 'ies'} queued again")


# -- extract ---------------------------------------------------------------------------------------
@main.command()
@click.option("--input", "input_path", default="-", show_default=True, help="JSON Lines file, or - for stdin.")
@click.option("--output", "output_path", default="-", show_default=True, help="JSON Lines file, or - for stdout.")
@click.option("--lexicon", "lexicon_path", type=click.Path(exists=True, dir_okay=False),
              help="Lexicon file (default: [extract] lexicon of the config, else the built-in one).")
@config_option
def extract(input_path: str, output_path: str, lexicon_path: str | None, config_path: str | None) -> None:
    """Offline extraction: articles (JSON Lines) in, changes (JSON Lines) out. No network, no database."""
    from monitor.extract import Extractor
    from monitor.extract.lexicon import LexiconError, load as load_lexicon
    from monitor.extract.records import RecordError, read_articles, write_result

    if lexicon_path is None and (config_path or _default_config_exists()):
        cfg = _config(config_path, secrets=False)
        lexicon_path = cfg.relative(cfg.settings.extract.lexicon)
    try:
        extractor = Extractor(load_lexicon(lexicon_path))
    except LexiconError as exc:
        fail(str(exc), 2)
    src = sys.stdin if input_path == "-" else None
    try:
        fin = src or open(input_path, encoding="utf-8")
    except OSError as exc:
        fail(f"cannot read {input_path}: {exc.strerror}", 2)
    fout = sys.stdout if output_path == "-" else open(output_path, "w", encoding="utf-8")
    started, n, positive = time.perf_counter(), 0, 0
    try:
        for article in read_articles(fin, "<stdin>" if input_path == "-" else input_path):
            found = extractor.extract(article)
            write_result(fout, article.id, [c.to_dict() for c in found])
            n += 1
            positive += bool(found)
    except RecordError as exc:
        fail(str(exc), 1)
    finally:
        if fout is not sys.stdout:
            fout.close()
    elapsed = time.perf_counter() - started
    click.echo(f"extracted {n} articles, {positive} with changes, in {elapsed:.2f}s", err=True)


@main.command("eval")
@click.argument("corpus", type=click.Path(exists=True, dir_okay=False))
@click.option("--lexicon", "lexicon_path", type=click.Path(exists=True, dir_okay=False), help="Lexicon file.")
@click.option("--errors/--no-errors", default=True, show_default=True, help="List each error.")
@click.option("--min-f1", type=float, help="Exit 1 when F1 is below this.")
@click.option("--min-date", type=float, help="Exit 1 when effective-date accuracy is below this.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as one JSON object.")
def evaluate_cmd(corpus: str, lexicon_path: str | None, errors: bool, min_f1: float | None,
                 min_date: float | None, as_json: bool) -> None:
    """Extraction quality on a labeled corpus: precision, recall, F1, field accuracy, the errors."""
    import json as _json
    from pathlib import Path

    from monitor.extract import Extractor
    from monitor.extract.evaluate import evaluate
    from monitor.extract.lexicon import LexiconError, load as load_lexicon
    from monitor.extract.records import RecordError

    try:
        report = evaluate(Path(corpus), Extractor(load_lexicon(lexicon_path)))
    except (LexiconError, RecordError) as exc:
        fail(str(exc), 2)
    f = report.figures
    if as_json:
        click.echo(_json.dumps(f))
    else:
        if errors:
            for rid, why in report.errors:
                click.echo(f"{rid}: {why}")
        click.echo(f"items {f['items']}  TP {f['tp']} FP {f['fp']} FN {f['fn']} TN {f['tn']}")
        click.echo(f"precision {f['precision']}  recall {f['recall']}  F1 {f['f1']}")
        click.echo(f"on true positives: platform {f['platform_acc']}  effective date {f['date_acc']} "
                   f"(of {f['dated_tp']} dated)  invented dates {f['invented_dates']}  targets {f['target_jaccard']}")
        click.echo(f"beyond the reference scorer: action {f['action_acc']}")
    short = (min_f1 is not None and f["f1"] < min_f1) or (min_date is not None and (f["date_acc"] or 0) < min_date)
    sys.exit(1 if short else 0)


def _default_config_exists() -> bool:
    from monitor.config import resolve_path

    return resolve_path(None).exists()


@main.command()
@config_option
@click.option("--since", callback=_day, help="Only entries stored on or after DATE.")
@guard
def reextract(config_path: str | None, since: date | None) -> None:
    """Re-run the current extractor and lexicon over stored entries; known changes update silently,
    new ones alert only while their date is ahead or recent (extract.alert_window)."""
    _setup_logging(False, quiet=True)
    from monitor.reextract import reextract as run_reextract

    app = _app(config_path, secrets=False, create=False)

    def progress(done: int, total: int) -> None:
        click.echo(f"\rre-extracted {done}/{total} entries", err=True, nl=done >= total)

    r = run_reextract(app, since, progress)
    click.echo(f"{r.entries} entries re-extracted: {r.with_changes} report a change; {r.new_changes} new "
               f"change{'s' if r.new_changes != 1 else ''}, {r.new_mentions} new mentions of known changes, "
               f"{r.updated} known changes updated, {r.withdrawn_mentions} mentions no longer found, "
               f"{r.withdrawn_changes} change{'s' if r.withdrawn_changes != 1 else ''} withdrawn")
    app.close()


@main.command()
@config_option
@click.argument("source_name", metavar="SOURCE")
@click.option("--diff", "diff_ids", nargs=2, type=int, metavar="OLD NEW", help="Diff these two versions.")
@click.option("--show", "show_id", type=int, metavar="ID", help="Print one stored version in full.")
@guard
def history(config_path: str | None, source_name: str, diff_ids: tuple[int, int] | None, show_id: int | None) -> None:
    """The stored versions of a watched page (kind = "page"), and the diff between two of them
    (by default the last two)."""
    _setup_logging(False, quiet=True)
    import difflib

    from monitor.output import render, zone
    from monitor.store.repo import get_source, versions

    app = _app(config_path, secrets=False, create=False, lexicon=False)
    try:
        cfg = app.config.source(source_name)
    except KeyError as exc:
        fail(str(exc.args[0]), 2)
    with app.sessions() as s:
        rows = list(versions(s, get_source(s, cfg.name)))
    if not rows:
        click.echo(f"no stored versions of {source_name} yet"
                   + ("" if cfg.kind == "page" else f" (it is a {cfg.kind} source; history is for kind = \"page\")"))
        return
    by_id = {v.id: v for v in rows}
    if show_id is not None:
        if show_id not in by_id:
            fail(f"no version {show_id} of {source_name} (have {', '.join(map(str, by_id))})", 2)
        from monitor.sanitize import for_display

        click.echo(for_display(by_id[show_id].text, newlines=True))
        return
    click.echo(render([{"version": v.id, "fetched_at": v.fetched_at, "lines": v.text.count("\n") + 1,
                        "hash": v.content_hash[:12], "title": v.title} for v in rows], "table",
                      ["version", "fetched_at", "lines", "hash", "title"], zone(app.config.settings.display.timezone)))
    if diff_ids:
        missing = [i for i in diff_ids if i not in by_id]
        if missing:
            fail(f"no version {missing[0]} of {source_name} (have {', '.join(map(str, by_id))})", 2)
        old, new = by_id[diff_ids[0]], by_id[diff_ids[1]]
    elif len(rows) >= 2:
        old, new = rows[-2], rows[-1]
    else:
        return
    click.echo()
    from monitor.sanitize import for_display

    for line in difflib.unified_diff(old.text.splitlines(), new.text.splitlines(), f"version {old.id}",
                                     f"version {new.id}", lineterm=""):
        click.echo(for_display(line))


# -- notify / db -----------------------------------------------------------------------------------
@main.group()
def notify() -> None:
    """Notifier tools."""


@notify.command("test")
@config_option
@click.argument("name", required=False)
@guard
def notify_test(config_path: str | None, name: str | None) -> None:
    """Send a test message through one notifier (or all) and say which succeeded."""
    _setup_logging(False, quiet=True)
    from monitor.notify import channels
    from monitor.store.repo import latest_change

    app = _app(config_path)
    targets = [n for n in app.config.settings.notify if name is None or n.name == name]
    if not targets:
        known = ", ".join(n.name for n in app.config.settings.notify) or "none configured"
        fail(f"no notifier named {name!r} (known: {known})" if name else "no notifiers configured", 2)
    bad = 0
    with app.sessions() as s:
        change = latest_change(s)
        for n in targets:
            channel = channels.describe(n.url)
            fmt = channel.format if n.format == "auto" else n.format
            msg = app.renderer.render("test", n.lang, fmt, clock.now(), change=change, name=n.name,
                                      budget=channel.body_limit)
            result = channels.send_bounded(n.url, msg.title, msg.body, msg.format,
                                           app.config.settings.delivery.timeout.total_seconds())
            click.echo(f"{n.name}: {'ok' if result.ok else 'FAILED: ' + str(result.error)}  ({channels.mask(n.url)})")
            bad += not result.ok
    sys.exit(1 if bad else 0)


@main.group()
def db() -> None:
    """Database tools."""


@db.command("upgrade")
@config_option
@guard
def db_upgrade(config_path: str | None) -> None:
    """Apply database migrations (the daemon also does this at start)."""
    _setup_logging(False, quiet=True)
    from monitor.store.db import shown

    app = _app(config_path, secrets=False)
    click.echo(f"database {shown(app.engine.url.render_as_string(hide_password=False))} is up to date")


if __name__ == "__main__":  # pragma: no cover
    main()
