"""One poll of one source, end to end: fetch, parse, store entries, extract, record changes.

Idempotent: polling the same content twice stores nothing new, so any worker may run it again after
a crash. Each entry is committed with its changes and their outbox rows in one transaction; the
source's conditional-GET validators are saved only after all entries are, so an interrupted poll
fetches the feed again instead of skipping what it had not stored.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from monitor import clock
from monitor.app import App
from monitor.config import SourceConfig
from sqlalchemy.orm import Session

from monitor.events import (
    ChangeCorroborated,
    ChangeDetected,
    ChangeUpdated,
    EntryDiscovered,
    SourceFailed,
    SourcePolled,
)
from monitor.extract.model import Article, PolicyChange
from monitor.sources.feeds import ParseError, parse_feed
from monitor.sources.fetch import FetchError, fetch
from monitor.store import repo

log = logging.getLogger("monitor.pipeline")


@dataclass(frozen=True)
class PollOutcome:
    source: str
    ok: bool
    error: str | None = None
    new_entries: int = 0
    changes: int = 0


def _fail(app: App, cfg: SourceConfig, error: str) -> PollOutcome:
    with app.sessions.begin() as s:
        src = repo.get_source(s, cfg.name)
        now = clock.utcnow()
        repo.record_failure(s, src, now, error, cfg.interval, app.config.settings.daemon.max_backoff)
        app.planner.on_source_failed(s, src, now)
        failures = src.failures
    app.bus.publish(SourceFailed(cfg.name, error, failures))
    return PollOutcome(cfg.name, False, error)


def poll(app: App, cfg: SourceConfig) -> PollOutcome:
    """Poll ``cfg`` once. Never raises for a problem of the source: it is recorded and returned."""
    with app.sessions() as s:
        src = repo.get_source(s, cfg.name)
        etag, last_modified = src.etag, src.last_modified
    limits = app.fetch_limits
    if cfg.timeout is not None:
        limits = type(limits)(**{**limits.__dict__, "timeout": cfg.timeout.total_seconds()})
    try:
        result = fetch(cfg.url, limits, etag=etag, last_modified=last_modified)
    except FetchError as exc:
        return _fail(app, cfg, str(exc))
    if result.not_modified:
        with app.sessions.begin() as s:
            _succeed(app, s, cfg, etag, last_modified, 0)
        app.bus.publish(SourcePolled(cfg.name, 0, 0, True))
        return PollOutcome(cfg.name, True)
    try:
        items = parse_feed(result.content, result.headers, result.url)
    except ParseError as exc:
        return _fail(app, cfg, str(exc))
    except Exception as exc:  # feedparser on pathological input: still just this source's problem
        return _fail(app, cfg, f"cannot parse: {type(exc).__name__}: {exc}")

    new_entries = changes = 0
    lang = None if cfg.lang == "auto" else cfg.lang
    for item in items:
        events: list[object] = []
        with app.sessions.begin() as s:
            src = repo.get_source(s, cfg.name)
            now = clock.utcnow()
            entry = repo.add_entry(s, src, item, lang, now)
            if entry is None:
                continue
            new_entries += 1
            events.append(EntryDiscovered(cfg.name, entry.id, entry.title))
            article = Article(id=str(entry.id), title=item.title, body=item.body, published=item.published,
                              lang=lang, url=item.url, platform_hint=cfg.platform)
            try:
                found = app.extractor.extract(article)
            except Exception:  # an extractor bug must not lose the entry; reextract can redo it
                log.exception("source=%s extractor failed on entry %r; entry kept", cfg.name, item.title)
                found = []
            entry.changes_found = len(found)
            for f in found:
                rec = repo.record_change(s, entry, f, now)
                app.planner.on_recorded(s, rec, now)
                if rec.created:
                    changes += 1
                    events.append(ChangeDetected(cfg.name, rec.change.id, _summary(f)))
                elif rec.event is not None:
                    events.append(ChangeUpdated(cfg.name, rec.change.id, rec.outcome,
                                                rec.event.old_value, rec.event.new_value))
                elif rec.new_mention:
                    events.append(ChangeCorroborated(cfg.name, rec.change.id, entry.id))
        for e in events:
            app.bus.publish(e)

    with app.sessions.begin() as s:
        _succeed(app, s, cfg, result.etag, result.last_modified, new_entries)
    app.bus.publish(SourcePolled(cfg.name, len(items), new_entries, False))
    return PollOutcome(cfg.name, True, new_entries=new_entries, changes=changes)


def _succeed(app: App, s: Session, cfg: SourceConfig, etag: str | None, last_modified: str | None,
             new_entries: int) -> None:
    src = repo.get_source(s, cfg.name)
    since = clock.as_utc(src.failing_since)
    now = clock.utcnow()
    repo.record_success(s, src, now, cfg.interval, etag, last_modified, new_entries)
    app.planner.on_source_recovered(s, src, since, now)


def _summary(f: PolicyChange) -> str:
    targets = ",".join(f.targets) or "-"
    when = f.effective_date.isoformat() if f.effective_date else "no date"
    return f"{f.platform} {f.action} {targets} {f.link_type} links, effective {when}"
