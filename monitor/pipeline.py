"""One poll of one source, end to end: fetch, parse, store entries, extract, record changes.

Idempotent: polling the same content twice stores nothing new, so any worker may run it again after
a crash. The new entries of a poll are committed together with their changes and outbox rows in one
transaction; the source's conditional-GET validators are saved in that same transaction, so an interrupted
poll fetches the source again instead of skipping what it had not stored.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from sqlalchemy.orm import Session

from monitor import clock
from monitor.app import App
from monitor.config import SourceConfig
from monitor.events import (
    ChangeCorroborated,
    ChangeDetected,
    ChangeUpdated,
    EntryDiscovered,
    SourceFailed,
    SourcePolled,
)
from monitor.extract.model import Article, PolicyChange
from monitor.sources import filters, json_api, pages
from monitor.sources.charset import decode_html
from monitor.sources.feeds import FeedItem, ParseError, parse_feed
from monitor.sources.fetch import FetchError, FetchResult
from monitor.store import repo

log = logging.getLogger("monitor.pipeline")


@dataclass(frozen=True)
class PollOutcome:
    source: str
    ok: bool
    error: str | None = None
    new_entries: int = 0
    changes: int = 0


def poll(app: App, cfg: SourceConfig) -> PollOutcome:
    """Poll ``cfg`` once. Never raises for a problem of the source: it is recorded and returned."""
    with app.sessions() as s:
        src = repo.get_source(s, cfg.name)
        etag, last_modified = src.etag, src.last_modified
    timeout = cfg.timeout.total_seconds() if cfg.timeout else None
    try:
        result = _fetch(app, cfg, etag, last_modified, timeout)
    except FetchError as exc:
        return _fail(app, cfg, str(exc), exc.retry_after)
    if result.not_modified:
        with app.sessions.begin() as s:
            _succeed(app, s, cfg, etag, last_modified, 0)
        app.bus.publish(SourcePolled(cfg.name, 0, 0, True))
        return PollOutcome(cfg.name, True)
    try:
        version: PendingVersion | None = None
        if cfg.parses_as == "page":
            items, version = _page_change(app, cfg, result)
        elif cfg.parses_as == "page-list":
            html = decode_html(result.content, result.headers.get("content-type"))
            sel = pages.ListSelectors(cfg.selectors.item, cfg.selectors.title, cfg.selectors.link,
                                      cfg.selectors.date)
            items = pages.parse_list(html, result.url, sel)
        elif cfg.kind == "json":
            items = json_api.parse(result.content, result.headers, result.url, cfg)
        else:
            items = parse_feed(result.content, result.headers, result.url)
        items = filters.apply(items, cfg.include, cfg.exclude)
    except (ParseError, pages.PageError) as exc:
        return _fail(app, cfg, str(exc))
    except Exception as exc:  # a parser on pathological input: still just this source's problem
        log.debug("source=%s parse crash", cfg.name, exc_info=True)
        return _fail(app, cfg, f"cannot parse: {type(exc).__name__}: {exc}")

    new_entries, changes = _store(app, cfg, items, result, version)
    app.bus.publish(SourcePolled(cfg.name, len(items), new_entries, False))
    return PollOutcome(cfg.name, True, new_entries=new_entries, changes=changes)


def _fetch(app: App, cfg: SourceConfig, etag: str | None, last_modified: str | None,
           timeout: float | None) -> FetchResult:
    """The source's document: rendered by the shared browser, asked of a JSON API, or fetched."""
    if cfg.kind == "browser":
        return app.browser.render(cfg, timeout)
    if cfg.kind == "json":
        return json_api.fetch(app.fetcher, cfg, etag, last_modified, timeout)
    return app.fetcher.fetch(cfg.url, etag=etag, last_modified=last_modified, timeout=timeout)


@dataclass(frozen=True)
class PendingVersion:
    """A watched page's new version, committed together with the entry made from it: stored alone
    first, a crash before the entry would leave the change unreported for good (the next poll sees
    the same version and reports nothing)."""

    digest: str
    title: str
    text: str


def _store(app: App, cfg: SourceConfig, items: list[FeedItem], result: FetchResult,
           version: PendingVersion | None = None) -> tuple[int, int]:
    """Store the items not seen before (following them first when asked), extract, record changes,
    and mark the poll done with the response's validators (and a watched page's new version), all in
    one transaction."""
    with app.sessions() as s:
        fresh = repo.new_items(s, repo.get_source(s, cfg.name), items)
    if cfg.follow and cfg.parses_as != "page":
        fresh = [_follow(app, cfg, it) for it in fresh]
    if not fresh:
        with app.sessions.begin() as s:
            _add_version(s, cfg, version)
            _succeed(app, s, cfg, result.etag, result.last_modified, 0)
        return 0, 0
    lang = None if cfg.lang == "auto" else cfg.lang
    events: list[object] = []
    changes = 0
    with app.sessions.begin() as s:
        src = repo.get_source(s, cfg.name)
        now = clock.utcnow()
        fresh = repo.new_items(s, src, fresh)  # another worker may have stored some meanwhile
        entries = repo.add_entries(s, src, fresh, lang, now)
        found_by_entry = []
        for item, entry in zip(fresh, entries):
            events.append(EntryDiscovered(cfg.name, entry.id, entry.title))
            article = Article(id=str(entry.id), title=item.title, body=item.body, published=item.published,
                              lang=lang, url=item.url, platform_hint=cfg.platform, watched=cfg.parses_as == "page")
            try:
                found = app.extractor.extract(article)
            except Exception:  # an extractor bug must not lose the entry; reextract can redo it
                log.exception("source=%s extractor failed on entry %r; entry kept", cfg.name, item.title)
                found = []
            entry.changes_found = len(found)
            found_by_entry.append((entry, found))
        repo.lock_platforms(s, {f.platform for _e, found in found_by_entry for f in found})
        for entry, found in found_by_entry:
            for f in found:
                rec = repo.record_change(s, entry, f, now)
                app.planner.on_recorded(s, rec, now)
                if rec.created:
                    changes += 1
                    events.append(ChangeDetected(cfg.name, rec.change.id, _summary(f)))
                elif rec.event is not None:
                    events.append(ChangeUpdated(cfg.name, rec.change.id, rec.outcome, rec.event.old_value,
                                                rec.event.new_value))
                elif rec.new_mention:
                    events.append(ChangeCorroborated(cfg.name, rec.change.id, entry.id))
        new_entries = len(entries)
        _add_version(s, cfg, version)
        _succeed(app, s, cfg, result.etag, result.last_modified, new_entries)
    for e in events:
        app.bus.publish(e)
    return new_entries, changes


def _follow(app: App, cfg: SourceConfig, item: FeedItem) -> FeedItem:
    """The item with its own page's main text as body; unchanged (and logged) when that page fails."""
    if not item.url:
        return item
    try:
        page = app.fetcher.fetch(item.url, followed=True)
        html = decode_html(page.content, page.headers.get("content-type"))
        text = pages.main_text(html, page.url)
    except FetchError as exc:
        log.warning("source=%s could not follow %s: %s (kept the list text)", cfg.name, item.url, exc)
        return item
    except ImportError:
        raise  # a broken install is not a bad page: fail the poll loudly rather than degrade silently
    except Exception as exc:
        log.warning("source=%s could not read %s: %s: %s (kept the list text)", cfg.name, item.url,
                    type(exc).__name__, exc)
        return item
    return replace(item, body=text or item.body, published=item.published or pages.page_date(html))


def _add_version(s: Session, cfg: SourceConfig, version: PendingVersion | None) -> None:
    if version is not None:
        repo.add_version(s, repo.get_source(s, cfg.name), clock.utcnow(), version.digest, version.title,
                         version.text)


def _page_change(app: App, cfg: SourceConfig, result: FetchResult
                 ) -> tuple[list[FeedItem], PendingVersion | None]:
    """A watched page: when its stable text changed, a new version (stored by the caller, with the
    entry) and what it added as the entry. The first version is the baseline and reports nothing."""
    html = decode_html(result.content, result.headers.get("content-type"))
    text = pages.watched_text(html, cfg.selector, cfg.ignore)
    digest = pages.version_hash(text)
    title = pages.page_title(html) or cfg.name
    with app.sessions() as s:
        last = repo.last_version(s, repo.get_source(s, cfg.name))
        if last is not None and last.content_hash == digest:
            return [], None
        last_text = last.text if last is not None else None
    version = PendingVersion(digest, title, text)
    if last_text is None:
        log.info("source=%s first version stored as the baseline (%d lines)", cfg.name, text.count("\n") + 1)
        return [], version
    added = pages.added_passages(last_text, text)
    if not added:
        return [], version
    return [FeedItem(guid=f"version:{digest}", title=f"{title} (updated)", url=cfg.url, published=clock.utcnow(),
                     body="\n".join(added))], version


def _fail(app: App, cfg: SourceConfig, error: str, retry_after: float | None = None) -> PollOutcome:
    with app.sessions.begin() as s:
        src = repo.get_source(s, cfg.name)
        now = clock.utcnow()
        repo.record_failure(s, src, now, error, cfg.interval, app.config.settings.daemon.max_backoff,
                            retry_after=retry_after)
        app.planner.on_source_failed(s, src, now)
        failures = src.failures
    app.bus.publish(SourceFailed(cfg.name, error, failures))
    return PollOutcome(cfg.name, False, error)


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
