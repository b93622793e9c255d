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
from pathlib import Path
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
    """Say why the command stops and exit. Under ``[log] format = "json"`` the reason is one more JSON
    line (a log shipper reading the daemon's stderr parses every line), else ``error: ...``."""
    from monitor.sanitize import for_display

    from monitor.logs import json_configured

    if json_configured():
        logging.getLogger("monitor.cli").error("%s", for_display(message, newlines=True),
                                                extra={"exit_status": status})
    else:
        click.echo(f"error: {for_display(message, newlines=True)}", err=True)
    sys.exit(status)


def config_option(f: F) -> F:
    return click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
                        help="Config file (default: $MONITOR_CONFIG, else config/monitor.toml).")(f)


def _config(path: str | None, secrets: bool = True) -> Config:
    try:
        cfg = load_config(path, secrets=secrets)
    except ConfigError as exc:
        fail(str(exc), 2)
        raise  # unreachable
    from monitor.logs import configure

    configure(cfg.settings.log)  # [log] format: the lines from here on
    return cfg


def _app(path: str | None, migrate: bool = True, secrets: bool = True,  # type: ignore[no-untyped-def]
         create: bool = True, lexicon: bool = True, extracting: bool = False):
    """The core for a command. ``secrets``: the command sends, so notifier URLs are read from the
    environment and checked (a query or an offline command needs none of them). ``create``: the
    command writes, so a new SQLite database may be created (a query on a database that does not
    exist is an error, not an empty listing). ``lexicon``: the command extracts or renders, so the
    lexicon is loaded (and a broken one reported) before anything runs. ``extracting``: a model
    file the config names must exist."""
    from monitor.app import App
    from monitor.store.db import DatabaseError

    cfg = _config(path, secrets=secrets)
    model = cfg.relative(cfg.settings.extract.model)
    if extracting and model and not Path(model).is_file():
        fail(f"{cfg.path}: extract.model: no model file at {model} "
             "(build one with `policy-monitor train CORPUS... --out PATH`)", 2)
    try:
        app = App.open(cfg, migrate=migrate, create=create)
    except DatabaseError as exc:
        fail(str(exc), 2 if exc.usage else 1)
    if lexicon:
        from monitor.extract.lexicon import LexiconError

        try:
            app.check_lexicon()
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
    from monitor.web.server import ListenError

    daemon = Daemon(_app(config_path, extracting=True))
    try:
        daemon.open_http()
    except ListenError as exc:
        fail(str(exc))
    sys.exit(daemon.run())


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

    from monitor.claims import Claims
    from monitor.pipeline import PollOutcome, poll
    from monitor.sanitize import for_display

    app = _app(config_path, secrets=not no_deliver, extracting=True)
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

    workers = app.config.settings.fetch.workers
    claims = Claims(app, sources, chunk=2 * workers)

    def one(cfg: Any) -> PollOutcome:
        if stop.is_set():
            return PollOutcome(cfg.name, False, skipped="interrupted")
        state = claims.take(cfg)
        if state is None:
            return PollOutcome(cfg.name, False, skipped="another process is polling it now")
        return poll(app, cfg, state)

    def guarded(cfg: Any) -> PollOutcome:
        try:
            return one(cfg)
        except Exception as exc:  # the database, say: still this source's outcome, the others go on
            return PollOutcome(cfg.name, False, f"{type(exc).__name__}: {exc}")

    # the cycle's unchanged polls are recorded together (monitor.ledger), before anything is delivered
    with app.ledger.batched(), ThreadPoolExecutor(max_workers=workers, thread_name_prefix="poll") as pool:
        outcomes = list(pool.map(guarded, sources))
    claims.release_unpolled()
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
        app.deliver_due()  # each failed delivery is logged once, with the channel's own words
    app.close()
    sys.exit(1 if failed else 0)


@main.command()
@config_option
@click.option("--listen", metavar="HOST:PORT",
              help="Address to serve on (default: [http] listen of the config, else 127.0.0.1:8080).")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging, and one log line per request.")
@guard
def serve(config_path: str | None, listen: str | None, verbose: bool) -> None:
    """Serve the change log over HTTP: web pages, JSON API, Atom feed and iCalendar, until SIGTERM.
    Read-only unless [http] token (or $MONITOR_HTTP_TOKEN) is set."""
    _setup_logging(verbose)
    import signal

    from monitor.config import DEFAULT_LISTEN, parse_listen
    from monitor.web.app import create_app
    from monitor.web.server import HTTPServer, ListenError, bind

    app = _app(config_path, secrets=False)
    address = listen or app.config.settings.http.listen or DEFAULT_LISTEN
    try:
        parse_listen(address)
    except ValueError as exc:
        fail(f"--listen: {exc}", 2)
    try:
        sock = bind(address)
    except ListenError as exc:
        fail(str(exc))
    server = HTTPServer(create_app(app), sock, access_log=verbose)

    def stop(signum: int, _frame: object) -> None:
        log.info("received %s: finishing the requests in flight", signal.Signals(signum).name)
        server.server.should_exit = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("serving %s (%s)", server.address,
             "corrections allowed with the token" if app.config.settings.http.token else "read-only")
    server.run()
    app.close()
    log.info("server stopped")


@main.command()
@config_option
@click.option("--fetch", "do_fetch", is_flag=True, help="Also fetch and parse each enabled source once (stores nothing).")
@guard
def check(config_path: str | None, do_fetch: bool) -> None:
    """Check the setup without running it: the config, the database and its migrations, notifier URLs,
    templates, and with --fetch every enabled source. One line per problem; exit 1 if any."""
    _setup_logging(False, quiet=True)
    from monitor import check as checks
    from monitor.app import App
    from monitor.events import Bus
    from monitor.store import db

    report = checks.Report()
    cfg = checks.load_config(config_path, report)
    summary = ""
    if cfg is not None:
        settings = cfg.settings
        engine = checks.check_database(cfg, report)
        engine = engine or db.make_engine("sqlite://")  # nothing to read: templates render without a change
        app = App(cfg, engine, db.session_factory(engine), Bus())   # not App.open: no migration, no writes
        model = cfg.relative(settings.extract.model)
        if model and not Path(model).is_file():
            report.problem("extract.model", f"no model file at {model}")
        from monitor.extract.lexicon import LexiconError

        try:
            _ = app.lexicon
        except LexiconError as exc:
            report.problem("extract.lexicon", str(exc))
        else:
            checks.check_templates(app, report)
        if do_fetch:
            many = sum(s.enabled for s in settings.sources) > 5

            def progress(done: int, total: int) -> None:
                if many:
                    click.echo(f"\rfetched {done}/{total} sources", err=True, nl=done >= total)

            checks.check_sources(app, report, progress)
        app.close()
        enabled = sum(s.enabled for s in settings.sources)
        summary = "; ".join([f"{cfg.path}: {len(settings.sources)} sources ({enabled} enabled), "
                             f"{len(settings.notify)} notifiers", *report.notes])
    for line in report.problems:
        click.echo(line)
    if report.problems:
        n = len(report.problems)
        click.echo(f"{n} problem{'s' if n != 1 else ''} found", err=True)
        sys.exit(1)
    click.echo(f"OK: {summary}")


# -- queries ---------------------------------------------------------------------------------------
def _day(_ctx: Any, _param: Any, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)")


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
    from monitor.records import change_record
    from monitor.store.repo import ChangeFilter, list_changes

    app = _app(config_path, secrets=False, create=False, lexicon=False)
    with app.sessions() as s:
        rows: list[dict[str, Any]] = [dict(change_record(c)) for c in list_changes(s, ChangeFilter(
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
@click.option("--catalog", "show_catalog", is_flag=True,
              help="List the catalog's entries instead (no database needed); `catalog = [...]` in the config "
                   "turns platforms on.")
@click.option("--platform", help="With --catalog: only this platform's entries.")
@guard
def sources(config_path: str | None, fmt: str, show_catalog: bool, platform: str | None) -> None:
    """Each configured source with its last poll, status, last error and warning (with --catalog:
    the shipped catalog of sources, no database needed)."""
    _setup_logging(False, quiet=True)
    if show_catalog:
        _catalog_listing(config_path, fmt, platform)
        return
    if platform:
        fail("--platform goes with --catalog", 2)
    from monitor.output import render, zone
    from monitor.records import source_records

    app = _app(config_path, secrets=False, create=False, lexicon=False)
    with app.sessions() as s:
        rows = source_records(s, app.config.settings.sources)
    click.echo(render(rows, fmt, ["name", "status", "last_polled", "entries_seen", "next_poll", "last_error",
                                  "warning"], zone(app.config.settings.display.timezone)))


def _catalog_listing(config_path: str | None, fmt: str, platform: str | None) -> None:
    """The catalog's entries, with whether this config takes each in (``selected``) and the coverage."""
    from monitor import catalog
    from monitor.config import catalog_dir
    from monitor.output import render

    cfg = _config(config_path) if config_path or _default_config_exists() else None
    folder = catalog_dir(cfg.path, cfg.settings) if cfg is not None else None
    try:
        entries = catalog.load(folder)
    except catalog.CatalogError as exc:
        fail(str(exc), 2)
    taken = {s.name: s.enabled for s in cfg.settings.sources} if cfg is not None else {}
    if platform:
        if platform not in catalog.platforms(entries):
            fail(f"--platform: the catalog has no entry for {platform!r} "
                 f"(platforms: {', '.join(catalog.platforms(entries))})", 2)
        entries = [e for e in entries if e.platform == platform]
    rows = []
    for e in sorted(entries, key=lambda e: (e.platform, e.status != "verified", e.source.name)):
        row = e.record()
        row["selected"] = "on" if taken.get(e.source.name) else "off" if e.source.name in taken else None
        rows.append(row)
    if fmt == "json":
        for row in rows:
            row["selected"] = row["selected"] == "on"
    click.echo(render(rows, fmt, ["platform", "name", "kind", "status", "selected", "url"]))
    if fmt == "table":
        ids = catalog.platforms(entries)
        verified = {e.platform for e in entries if e.status == "verified"}
        click.echo(f"\n{len(entries)} entries for {len(ids)} platforms; {len(verified)} platforms have a "
                   "verified entry. Turn platforms on with catalog = [\"kuaishou\", ...] in the config; "
                   "an unverified entry stays off unless you name it there.")


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
    from monitor.records import entry_record
    from monitor.store.repo import list_entries

    app = _app(config_path, secrets=False, create=False, lexicon=False)
    if source_name:
        try:
            app.config.source(source_name)
        except KeyError as exc:
            fail(str(exc.args[0]), 2)
    with app.sessions() as s:
        rows = [entry_record(e) for e in list_entries(s, source_name, limit)]
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
    from monitor.records import delivery_record
    from monitor.store.repo import list_deliveries

    app = _app(config_path, secrets=False, create=False, lexicon=False)
    with app.sessions() as s:
        rows = [delivery_record(d) for d in list_deliveries(s, status)]
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
def _extractor(lexicon_path: str | None, model_path: str | None, config_path: str | None):  # type: ignore[no-untyped-def]
    """The extractor with the lexicon and model named by options, else by the config (when there is
    one), else the shipped ones; a bad file is a usage error (exit 2)."""
    from monitor.extract import Extractor
    from monitor.extract.learned import ModelError, load as load_models
    from monitor.extract.lexicon import LexiconError, load as load_lexicon

    if (lexicon_path is None or model_path is None) and (config_path or _default_config_exists()):
        cfg = _config(config_path, secrets=False)
        lexicon_path = lexicon_path or cfg.relative(cfg.settings.extract.lexicon)
        model_path = model_path or cfg.relative(cfg.settings.extract.model)
    try:
        return Extractor(load_lexicon(lexicon_path), load_models(model_path))
    except (LexiconError, ModelError) as exc:
        fail(str(exc), 2)


@main.command()
@click.option("--input", "input_path", default="-", show_default=True, help="JSON Lines file, or - for stdin.")
@click.option("--output", "output_path", default="-", show_default=True, help="JSON Lines file, or - for stdout.")
@click.option("--lexicon", "lexicon_path", type=click.Path(exists=True, dir_okay=False),
              help="Lexicon file (default: [extract] lexicon of the config, else the built-in one).")
@click.option("--model", "model_path", type=click.Path(exists=True, dir_okay=False),
              help="Model file from `train` (default: [extract] model of the config, else the built-in one).")
@click.option("--explain", is_flag=True,
              help="Add to each line why: the article's probability and top features, the candidate "
                   "sentences, platforms, actions and dates with their scores.")
@config_option
def extract(input_path: str, output_path: str, lexicon_path: str | None, model_path: str | None, explain: bool,
            config_path: str | None) -> None:
    """Offline extraction: articles (JSON Lines) in, changes (JSON Lines) out. No network, no database."""
    import json as _json

    from monitor.extract.records import RecordError, read_articles, write_result

    extractor = _extractor(lexicon_path, model_path, config_path)
    src = sys.stdin if input_path == "-" else None
    try:
        fin = src or open(input_path, encoding="utf-8")
    except OSError as exc:
        fail(f"cannot read {input_path}: {exc.strerror}", 2)
    fout = sys.stdout if output_path == "-" else open(output_path, "w", encoding="utf-8")
    started, n, positive = time.perf_counter(), 0, 0
    try:
        for article in read_articles(fin, "<stdin>" if input_path == "-" else input_path):
            if explain:
                found, why = extractor.explain(article)
                fout.write(_json.dumps({"id": article.id, "changes": [c.to_dict() for c in found],
                                        "explain": why.to_dict()}, ensure_ascii=False) + "\n")
            else:
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


def _figures_lines(f: dict[str, Any]) -> list[str]:
    return [f"items {f['items']}  TP {f['tp']} FP {f['fp']} FN {f['fn']} TN {f['tn']}",
            f"precision {f['precision']}  recall {f['recall']}  F1 {f['f1']}",
            f"on true positives: platform {f['platform_acc']}  effective date {f['date_acc']} "
            f"(of {f['dated_tp']} dated)  invented dates {f['invented_dates']}  targets {f['target_jaccard']}",
            f"beyond the reference scorer: action {f['action_acc']}"]


def _short_line(name: str, f: dict[str, Any]) -> str:
    return (f"{name:<4} items {f['items']}: precision {f['precision']}  recall {f['recall']}  F1 {f['f1']}  "
            f"platform {f['platform_acc']}  date {f['date_acc']} (of {f['dated_tp']})  "
            f"invented {f['invented_dates']}  action {f['action_acc']}")


@main.command("eval")
@click.argument("corpora", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False),
                metavar="CORPUS...")
@click.option("--folds", type=click.IntRange(2, 50),
              help="Leave-events-out cross-validation with K folds: the model is retrained on the other "
                   "events each time (the figure that predicts unseen news). Without it, the model as it is.")
@click.option("--lexicon", "lexicon_path", type=click.Path(exists=True, dir_okay=False), help="Lexicon file.")
@click.option("--model", "model_path", type=click.Path(exists=True, dir_okay=False),
              help="Model file to evaluate (not with --folds, which trains its own).")
@click.option("--seeds", type=click.IntRange(1, 20), default=1, show_default=True,
              help="With --folds: repeat the cross-validation with this many different fold assignments "
                   "and print each and their mean and range (one split's figure moves by a point or two "
                   "with the split alone; judge a change by the mean).")
@click.option("--errors/--no-errors", default=None,
              help="List each error (default: on, except with --folds).")
@click.option("--min-f1", type=float, help="Exit 1 when F1 is below this.")
@click.option("--min-date", type=float, help="Exit 1 when effective-date accuracy is below this.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as one JSON object.")
@click.option("--ablation", type=click.Choice(["none", "no-rules", "rules-only"]), default="none", show_default=True,
              help="no-rules: the model without the rules' findings as features; rules-only: the rules "
                   "alone, no model (for comparing what each part brings).")
@config_option
def evaluate_cmd(corpora: tuple[str, ...], folds: int | None, lexicon_path: str | None, model_path: str | None,
                 seeds: int, errors: bool | None, min_f1: float | None, min_date: float | None, as_json: bool,
                 ablation: str, config_path: str | None) -> None:
    """Extraction quality on labeled corpora: precision, recall, F1, field accuracy, per language and
    per file, and the errors."""
    import json as _json

    from monitor.extract.evaluate import cross_validate, evaluate
    from monitor.extract.train import CorpusError

    if folds and model_path:
        fail("--model and --folds exclude each other: cross-validation trains its own models", 2)
    if seeds > 1 and (not folds or ablation == "rules-only"):
        fail("--seeds needs --folds (and a model to train): it repeats the cross-validation with other fold "
             "assignments", 2)
    repeated: dict[str, dict[str, float]] = {}
    extractor = _extractor(lexicon_path, model_path, config_path)
    if ablation == "no-rules":
        from monitor.extract import Extractor

        extractor = Extractor(extractor.lexicon, extractor.models, use_rules=False)
    paths = [Path(c) for c in corpora]
    try:
        if ablation == "rules-only":
            from monitor.extract.evaluate import evaluate_rules

            report = evaluate_rules(paths, extractor.rules)
        elif folds:
            def progress(line: str) -> None:
                if not as_json:
                    click.echo(line, err=True)

            if seeds > 1:
                from monitor.extract.evaluate import cross_validate_seeds, spread

                reports = cross_validate_seeds(paths, extractor, folds, seeds, progress=lambda seed, r: progress(
                    f"fold seed {seed}: " + _short_line("all", r.figures).split(":", 1)[1].strip()))
                report = reports[0]
                repeated = spread(reports)
            else:
                report = cross_validate(paths, extractor, folds, progress=progress)
        else:
            report = evaluate(paths, extractor)
    except CorpusError as exc:
        fail(str(exc), 2)
    f = report.figures
    judged = {**f, **{k: v["mean"] for k, v in repeated.items()}} if seeds > 1 else f   # the mean, over seeds
    if as_json:
        out = {**report.figures, "folds": report.folds, "by_lang": report.by_lang, "by_file": report.by_file}
        if seeds > 1:
            out["over_seeds"] = repeated
        click.echo(_json.dumps(out))
    else:
        if errors if errors is not None else not folds:
            for rid, why in report.errors:
                click.echo(f"{rid}: {why}")
        if ablation == "rules-only":
            click.echo(f"the rules alone (no model, nothing trained) on {', '.join(p.name for p in paths)}")
        elif folds:
            click.echo(f"leave-events-out cross-validation, {folds} folds over {', '.join(p.name for p in paths)} "
                       "(each item scored by a model that never saw its event)")
        else:
            click.echo(f"the model as it is ({extractor.models.meta.get('trained_on') or 'unknown training data'}) "
                       f"on {', '.join(p.name for p in paths)}; for unseen events use --folds")
        for line in _figures_lines(f):
            click.echo(line)
        for lang, figs in report.by_lang.items():
            click.echo(_short_line(lang, figs))
        if len(report.by_file) > 1:
            for name, figs in report.by_file.items():
                click.echo(_short_line(name, figs))
        if seeds > 1:
            click.echo(f"mean over {seeds} fold seeds (min-max; the lines above are the first seed's): " + "  ".join(
                f"{k} {v['mean']:.4g} ({v['min']:.4g}-{v['max']:.4g})" for k, v in repeated.items()))
    short = ((min_f1 is not None and judged["f1"] < min_f1)
             or (min_date is not None and (judged["date_acc"] or 0) < min_date))
    sys.exit(1 if short else 0)


@main.command()
@click.argument("corpora", nargs=-1, type=click.Path(exists=True, dir_okay=False), metavar="CORPUS...")
@click.option("--out", "out_path", default="model.json.gz", show_default=True, type=click.Path(dir_okay=False),
              help="Where to write the model; use it with [extract] model = \"PATH\" or --model.")
@click.option("--with-feedback", is_flag=True,
              help="Also learn from your corrections (`label`) in the configured database.")
@click.option("--lexicon", "lexicon_path", type=click.Path(exists=True, dir_okay=False), help="Lexicon file.")
@config_option
def train(corpora: tuple[str, ...], out_path: str, with_feedback: bool, lexicon_path: str | None,
          config_path: str | None) -> None:
    """Train the extractor's decision layer on labeled corpora (the shape of ../shared/corpus), with
    a fixed seed: the same corpora give the same file."""
    import json as _json
    import tempfile

    from monitor.extract import Extractor
    from monitor.extract.learned import Models
    from monitor.extract.lexicon import LexiconError, load as load_lexicon
    from monitor.extract.train import CorpusError, describe, fit, load_items

    paths = [Path(c) for c in corpora]
    if with_feedback:
        _setup_logging(False, quiet=True)
        from monitor.labels import export

        app = _app(config_path, secrets=False)
        with app.sessions() as s:
            rows = list(export(s))
        app.close()
        if rows:
            tmp = Path(tempfile.mkdtemp(prefix="policy-monitor-")) / "feedback.jsonl"
            tmp.write_text("".join(_json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
            paths.append(tmp)
        click.echo(f"feedback: {len(rows)} labelled article{'s' if len(rows) != 1 else ''} from the database",
                   err=True)
    if not paths:
        fail("give at least one corpus file (or --with-feedback with corrections in the database)", 2)
    if lexicon_path is None and (config_path or _default_config_exists()):
        cfg = _config(config_path, secrets=False)
        lexicon_path = cfg.relative(cfg.settings.extract.lexicon)
    try:
        extractor = Extractor(load_lexicon(lexicon_path), models=None)
    except LexiconError as exc:
        fail(str(exc), 2)
    started = time.perf_counter()
    try:
        items = load_items(paths, extractor,
                           lambda done, total: click.echo(f"\rread {done}/{total} articles", err=True, nl=done >= total))
    except CorpusError as exc:
        fail(str(exc), 2)
    models: Models = fit(items, extractor, meta=describe(items, paths))
    models.save(Path(out_path))
    size = Path(out_path).stat().st_size
    click.echo(f"trained on {len(items)} articles ({sum(it.positive for it in items)} positives) in "
               f"{time.perf_counter() - started:.1f}s; wrote {out_path} ({size / 1024:.0f} KiB)", err=True)


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

    app = _app(config_path, secrets=False, create=False, extracting=True)

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
                   + ("" if cfg.parses_as == "page" else f" (it is a {cfg.kind} source; history is for watched pages)"))
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


# -- corrections -----------------------------------------------------------------------------------
def _label_date(_ctx: Any, _param: Any, value: str | None) -> str | None:
    if value is None or value.lower() in ("none", "null"):
        return value
    _day(_ctx, _param, value)
    return value


@main.command()
@config_option
@click.argument("change_id", type=int)
@click.option("--not-a-change", is_flag=True, help="This is not a link-policy change: withdraw it.")
@click.option("--date", "when", callback=_label_date, metavar="YYYY-MM-DD|none",
              help="The right effective date ('none' when the text gives none).")
@click.option("--platform", help="The right platform id (kuaishou, wechat, …).")
@click.option("--action", type=click.Choice(["ban", "restrict", "allow", "require"]), help="The right action.")
@guard
def label(config_path: str | None, change_id: int, not_a_change: bool, when: str | None, platform: str | None,
          action: str | None) -> None:
    """Correct a change: record your judgement, apply it (withdrawn or updated, with update messages
    and re-planned reminders), keep it across `reextract`, and learn from it (`labels export`)."""
    _setup_logging(False, quiet=True)
    from monitor.labels import Judgement, LabelError, record

    if not_a_change and (when or platform or action):
        fail("--not-a-change cannot be combined with corrections of the date, platform or action", 2)
    judgement = Judgement(not_a_change=not_a_change,
                          effective_date=date.fromisoformat(when) if when and when.lower() not in ("none", "null")
                          else None,
                          clear_date=bool(when) and when.lower() in ("none", "null"),  # type: ignore[union-attr]
                          platform=platform, action=action)
    app = _app(config_path, secrets=False)
    try:
        with app.sessions.begin() as s:
            applied = record(s, app.planner, change_id, judgement, by="cli")
    except LabelError as exc:
        fail(str(exc), 2)
    for line in applied.recorded:
        click.echo(f"change #{change_id}: {line}")
    for line in applied.unchanged:
        click.echo(f"change #{change_id}: {line} (nothing recorded)")
    if applied.recorded:
        click.echo(f"change #{change_id}: {applied.updates_queued} message{'s' if applied.updates_queued != 1 else ''}"
                   " queued; run `policy-monitor once` or let the daemon deliver them")
    app.close()


@main.group()
def labels() -> None:
    """Your corrections: list them, export them as training data."""


@labels.command("list")
@config_option
@click.option("--format", "fmt", type=FORMAT, default="table", show_default=True)
@guard
def labels_list(config_path: str | None, fmt: str) -> None:
    """Every correction recorded, oldest first."""
    _setup_logging(False, quiet=True)
    from monitor.labels import list_labels
    from monitor.output import iso, render

    app = _app(config_path, secrets=False, create=False, lexicon=False)
    with app.sessions() as s:
        rows = [{"id": lab.id, "change_id": lab.change_id, "kind": lab.kind, "previous": lab.previous,
                 "value": lab.value, "by": lab.by, "at": iso(lab.created_at)} for lab in list_labels(s)]
    click.echo(render(rows, fmt, ["id", "change_id", "kind", "previous", "value", "by", "at"]))
    app.close()


@labels.command("export")
@config_option
@click.option("--output", "output_path", default="-", show_default=True, help="JSON Lines file, or - for stdout.")
@guard
def labels_export(config_path: str | None, output_path: str) -> None:
    """Your corrections with their articles, as corpus JSON Lines (the shape of the shared corpus),
    for `policy-monitor train CORPUS... --with-feedback` or `eval`."""
    _setup_logging(False, quiet=True)
    import json as _json

    from monitor.labels import export

    app = _app(config_path, secrets=False, create=False, lexicon=False)
    out = sys.stdout if output_path == "-" else open(output_path, "w", encoding="utf-8")
    n = 0
    try:
        with app.sessions() as s:
            for line in export(s):
                out.write(_json.dumps(line, ensure_ascii=False) + "\n")
                n += 1
    finally:
        if out is not sys.stdout:
            out.close()
    click.echo(f"exported {n} labelled article{'s' if n != 1 else ''}", err=True)
    app.close()


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


@db.command("prune")
@config_option
@click.option("--dry-run", is_flag=True, help="Only count what would be removed.")
@guard
def db_prune(config_path: str | None, dry_run: bool) -> None:
    """Remove what [retention] lets go: old entries (their dedup keys stay), old watched-page versions
    and finished deliveries. Changes and their history are never removed. The daemon does this daily."""
    _setup_logging(False, quiet=True)
    from monitor.store.retention import prune

    app = _app(config_path, secrets=False, create=False, lexicon=False)
    started = time.perf_counter()
    result = prune(app.sessions, app.config.settings.retention, clock.utcnow(), dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    for table, n in result.counts.items():
        click.echo(f"{table}: {verb} {n}")
    if not dry_run:
        click.echo(f"pruned {result.total} row{'s' if result.total != 1 else ''} in "
                   f"{time.perf_counter() - started:.1f}s", err=True)
    app.close()


if __name__ == "__main__":  # pragma: no cover
    main()
