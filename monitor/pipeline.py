"""One poll of one source, end to end: fetch, parse, store entries, extract, record changes.

Idempotent: polling the same content twice stores nothing new, so any worker may run it again after
a crash. Extraction, the CPU-heavy part, runs outside any database transaction; what it found is then
written in short transactions of a few entries each, each entry committed together with its changes
and their outbox rows. The source's conditional-GET validators are saved with the last of them, so
an interrupted poll fetches the source again instead of skipping what it had not stored.

Whatever goes wrong, and whatever raises, stays this source's failure: ``poll`` never raises.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Iterator, Sequence

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from monitor import clock
from monitor.app import App
from monitor.config import SourceConfig
from monitor.events import (
    ChangeCorroborated,
    ChangeDetected,
    ChangeUpdated,
    EntryDiscovered,
    EntryExtracted,
    PollFinished,
    SourceFailed,
    SourcePolled,
)
from monitor.extract.model import Article, PolicyChange
from monitor.sanitize import clean_text, for_display, mask_urls_in
from monitor.sources import limits
from monitor.sources.fetch import FetchError, FetchResult
from monitor.store import repo

if TYPE_CHECKING:  # the parsers are imported on first use: an unchanged cycle (all 304) needs none
    from monitor.sources.feeds import FeedItem

log = logging.getLogger("monitor.pipeline")
#: Entries written per transaction: short enough that other writers (another source's poll, the
#: delivery loop) never wait long for SQLite's write lock.
BATCH = 25
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class PollOutcome:
    source: str
    ok: bool
    error: str | None = None
    new_entries: int = 0
    changes: int = 0
    warning: str | None = None
    skipped: str | None = None   # not polled, and not a failure: why (another worker has it, stopping)


def poll(app: App, cfg: SourceConfig, state: repo.PollState | None = None) -> PollOutcome:
    """Poll ``cfg`` once. Never raises: whatever goes wrong is recorded as this source's failure and
    returned, so one bad source never stops a run or another source. ``state``: the source's row as
    its claim returned it (``repo.claim_poll_state``), else it is read here."""
    started = time.monotonic()
    outcome = _poll_guarded(app, cfg, state)
    if outcome.skipped is None:
        app.bus.publish(PollFinished(cfg.name, outcome.ok, time.monotonic() - started))
    return outcome


def _poll_guarded(app: App, cfg: SourceConfig, state: repo.PollState | None) -> PollOutcome:
    try:
        return _poll(app, cfg, state)
    except Exception as exc:  # a bug, a database error on this source's data, a parser on odd input
        log.debug("source=%s poll crashed", cfg.name, exc_info=True)
        error = f"internal error: {type(exc).__name__}: {for_display(mask_urls_in(str(exc)))[:300]}"
        try:
            return _fail(app, cfg, error)
        except Exception as again:  # the database itself is gone: still only this source's outcome
            log.debug("source=%s could not record its failure", cfg.name, exc_info=True)
            return PollOutcome(cfg.name, False, f"{error}; recording it failed too: {type(again).__name__}")


def _poll(app: App, cfg: SourceConfig, state: repo.PollState | None) -> PollOutcome:
    if state is None:
        with app.sessions() as s:
            state = repo.poll_state(s, cfg.name)
    etag, last_modified, first = state.etag, state.last_modified, state.first
    timeout = cfg.timeout.total_seconds() if cfg.timeout else None
    try:
        result = fetch_document(app, cfg, etag, last_modified, timeout)
    except FetchError as exc:
        if exc.aborted:
            return _give_back(app, cfg, "stopped before it finished (shutting down)")
        return _fail(app, cfg, str(exc), exc.retry_after)
    if result.not_modified:
        # a timestamp and the lease's release, written with the cycle's other 304s (monitor.ledger)
        app.ledger.unchanged(cfg.name, clock.utcnow(), cfg.interval, etag, last_modified)
        app.bus.publish(SourcePolled(cfg.name, 0, 0, True))
        return PollOutcome(cfg.name, True)
    try:
        from monitor.sources import filters

        items, version, warning = _parse(app, cfg, result)
        items = filters.apply(items, cfg.include, cfg.exclude)
    except Exception as exc:
        from monitor.sources.feeds import ParseError
        from monitor.sources.pages import PageError

        if isinstance(exc, (ParseError, PageError)):
            return _fail(app, cfg, str(exc))
        # a parser on pathological input: still just this source's problem
        log.debug("source=%s parse crash", cfg.name, exc_info=True)
        return _fail(app, cfg, f"cannot parse: {type(exc).__name__}: {for_display(str(exc))[:300]}")
    cap = app.config.settings.fetch.max_items
    if len(items) > cap:
        note = f"kept the newest {cap} of {len(items)} items (fetch.max_items)"
        log.info("source=%s %s", cfg.name, note)
        items = limits.newest(items, cap)
        warning = "; ".join(w for w in (warning, note) if w)
    items = [_clean(it) for it in items]
    try:
        new_entries, changes = _store(app, cfg, items, result, version, warning, first)
    except FetchError as exc:
        if exc.aborted:
            return _give_back(app, cfg, "stopped before it finished (shutting down)")
        raise
    app.bus.publish(SourcePolled(cfg.name, len(items), new_entries, False))
    if warning:
        log.warning("source=%s warning: %s", cfg.name, warning)
    return PollOutcome(cfg.name, True, new_entries=new_entries, changes=changes, warning=warning)


def _parse(app: App, cfg: SourceConfig, result: FetchResult
           ) -> tuple[list[FeedItem], "PendingVersion | None", str | None]:
    """Items (and, for a watched page, its new version) and a warning for the user, if any."""
    items, html, garbled = read_document(cfg, result)
    version = None
    if html is not None:
        items, version = _page_change(app, cfg, html)
    return items or [], version, _garbled_warning(garbled, result)


def read_document(cfg: SourceConfig, result: FetchResult) -> tuple[list[FeedItem] | None, str | None, bool]:
    """What a fetched document holds, by the source's kind: its items (a feed, a JSON API, a list
    page), or for a watched page its decoded HTML; and whether the text looks garbled. Shared by the
    poll and by `check --fetch`, so a check reads a source exactly as a poll does."""
    from monitor.sources import json_api, pages
    from monitor.sources.charset import decode_page
    from monitor.sources.feeds import parse_feed_checked

    if cfg.kind == "feed":
        parsed = parse_feed_checked(result.content, result.headers, result.url)
        if parsed.note:
            log.info("source=%s %s", cfg.name, parsed.note)
        return parsed.items, None, parsed.garbled
    if cfg.kind == "json":
        return json_api.parse(result.content, result.headers, result.url, cfg), None, False
    problem = limits.precheck(result.content)
    if problem:
        raise pages.PageError(problem)
    decoded = decode_page(result.content, result.headers.get("content-type"))
    if decoded.note:
        log.info("source=%s %s", cfg.name, decoded.note)
    if cfg.parses_as == "page":
        return None, decoded.text, decoded.garbled
    sel = pages.ListSelectors(cfg.selectors.item, cfg.selectors.title, cfg.selectors.link, cfg.selectors.date)
    return pages.parse_list(decoded.text, result.url, sel), None, decoded.garbled


def _garbled_warning(garbled: bool, result: FetchResult) -> str | None:
    if not garbled:
        return None
    declared = result.headers.get("content-type") or "no Content-Type"
    return (f"the text looks garbled (mojibake) even after charset detection; the server declares "
            f"{for_display(declared)[:80]}: check the source's encoding")


def _clean(item: FeedItem) -> FeedItem:
    """Control characters cleaned on the way in: stored text never carries them."""
    return replace(item, title=clean_text(item.title), body=clean_text(item.body),
                   url=for_display(item.url) if item.url else item.url)


def _give_back(app: App, cfg: SourceConfig, why: str) -> PollOutcome:
    with app.sessions.begin() as s:
        repo.release_lease(repo.get_source(s, cfg.name), app.owner)
    log.info("source=%s %s; it is polled again at the next start", cfg.name, why)
    return PollOutcome(cfg.name, False, skipped=why)


def fetch_document(app: App, cfg: SourceConfig, etag: str | None = None, last_modified: str | None = None,
                   timeout: float | None = None) -> FetchResult:
    """The source's document: rendered by the shared browser, asked of a JSON API, or fetched."""
    if cfg.kind == "browser":
        return app.browser.render(cfg, timeout)
    if cfg.kind == "json":
        from monitor.sources import json_api

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


def _batches(rows: Sequence[tuple[FeedItem, list[PolicyChange]]]) -> Iterator[list[tuple[FeedItem, list[PolicyChange]]]]:
    for start in range(0, len(rows), BATCH):
        yield list(rows[start:start + BATCH])


def _store(app: App, cfg: SourceConfig, items: list[FeedItem], result: FetchResult,
           version: PendingVersion | None = None, warning: str | None = None, first: bool = False) -> tuple[int, int]:
    """Store the items not seen before (following them first when asked), extract them outside any
    transaction, then write them in short transactions; the last one also marks the poll done with
    the response's validators (and a watched page's new version)."""
    with app.sessions() as s:
        fresh = repo.new_items(s, repo.get_source(s, cfg.name), items)
    if cfg.follow and cfg.parses_as != "page":
        followed = []
        for it in fresh:
            followed.append(_follow(app, cfg, it))
            _keep_lease(app, cfg)
        fresh = followed
    lang = None if cfg.lang == "auto" else cfg.lang
    # Oldest first, as the news happened: a postponement listed above the announcement it moves
    # (feeds put the newest first) must find that announcement already recorded.
    fresh = sorted(fresh, key=lambda it: (it.published is None, it.published or _EPOCH))
    extracted = [(item, _extract(app, cfg, item, lang)) for item in fresh]
    new_entries = changes = silent = 0
    batches = list(_batches(extracted)) or [[]]
    for i, batch in enumerate(batches):
        last = i == len(batches) - 1
        for attempt in (1, 2):
            try:
                stored, made, quiet, events = _write(app, cfg, batch, lang, first)
                if last:
                    with app.sessions.begin() as s:
                        _add_version(s, cfg, version)
                        _succeed(app, s, cfg, result.etag, result.last_modified, new_entries + stored,
                                 warning=warning)
                break
            except IntegrityError:
                if attempt == 2:
                    raise
                # another worker stored some of these meanwhile (its lease had expired): the retry
                # re-checks which are new
                log.info("source=%s entries stored concurrently; retrying the batch", cfg.name)
        new_entries += stored
        changes += made
        silent += quiet
        for e in events:
            app.bus.publish(e)
        if not last:
            _keep_lease(app, cfg)
    if first and new_entries:
        window = app.config.settings.extract.alert_window
        log.info("source=%s first poll: %d entries recorded; %d changes in them are older than "
                 "extract.alert_window (%s) and were recorded without an alert", cfg.name, new_entries, silent,
                 _span(window))
    return new_entries, changes


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0 and seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _extract(app: App, cfg: SourceConfig, item: FeedItem, lang: str | None) -> list[PolicyChange]:
    article = Article(id=item.guid, title=item.title, body=item.body, published=item.published, lang=lang,
                      url=item.url, platform_hint=cfg.platform, watched=cfg.parses_as == "page")
    started = time.monotonic()
    try:
        found = list(app.extractor.extract(article))
    except Exception:  # an extractor bug must not lose the entry; reextract can redo it
        log.warning("source=%s extractor failed on entry %r; entry kept", cfg.name, for_display(item.title)[:120],
                    exc_info=log.isEnabledFor(logging.DEBUG))
        return []
    app.bus.publish(EntryExtracted(cfg.name, time.monotonic() - started, len(found)))
    return found


def _write(app: App, cfg: SourceConfig, batch: list[tuple[FeedItem, list[PolicyChange]]], lang: str | None,
           first: bool) -> tuple[int, int, int, list[object]]:
    """One short transaction: these entries, their changes and the outbox rows they cause."""
    if not batch:
        return 0, 0, 0, []
    events: list[object] = []
    changes = silent = 0
    with app.sessions.begin() as s:
        src = repo.get_source(s, cfg.name)
        now = clock.utcnow()
        wanted = {id(it) for it in repo.new_items(s, src, [it for it, _f in batch])}
        batch = [(it, found) for it, found in batch if id(it) in wanted]
        entries = repo.add_entries(s, src, [it for it, _f in batch], lang, now)
        repo.lock_platforms(s, {f.platform for _it, found in batch for f in found})
        for (item, found), entry in zip(batch, entries):
            events.append(EntryDiscovered(cfg.name, entry.id, entry.title))
            entry.changes_found = len(found)
            for f in found:
                rec = repo.record_change(s, entry, f, now)
                alerted = app.planner.on_recorded(s, rec, now, backfill=first, reported=item.published)
                if rec.created:
                    changes += 1
                    silent += not alerted
                    events.append(ChangeDetected(cfg.name, rec.change.id, _summary(f)
                                                 + ("" if alerted else " (old news on a first poll: no alert)")))
                elif rec.event is not None:
                    events.append(ChangeUpdated(cfg.name, rec.change.id, rec.outcome, rec.event.old_value,
                                                rec.event.new_value))
                elif rec.new_mention:
                    events.append(ChangeCorroborated(cfg.name, rec.change.id, entry.id))
    return len(entries), changes, silent, events


def _keep_lease(app: App, cfg: SourceConfig) -> None:
    """Extend this worker's lease during a long poll (many followed pages, many batches)."""
    lease = app.lease_for(cfg)
    if time.monotonic() - app.lease_renewed.get(cfg.name, 0.0) < lease.total_seconds() / 3:
        return
    with app.sessions.begin() as s:
        repo.renew_lease(s, cfg.name, app.owner, clock.utcnow() + lease)
    app.lease_renewed[cfg.name] = time.monotonic()


def _follow(app: App, cfg: SourceConfig, item: FeedItem) -> FeedItem:
    """The item with its own page's main text as body; unchanged (and logged) when that page fails."""
    from monitor.sources import pages
    from monitor.sources.charset import decode_html

    if not item.url:
        return item
    try:
        page = app.fetcher.fetch(item.url, followed=True)
        problem = limits.precheck(page.content)
        if problem:
            raise FetchError(problem)
        html = decode_html(page.content, page.headers.get("content-type"))
        text = pages.main_text(html, page.url)
    except FetchError as exc:
        if exc.aborted:
            raise
        log.warning("source=%s could not follow %s: %s (kept the list text)", cfg.name, for_display(item.url), exc)
        return item
    except ImportError:
        raise  # a broken install is not a bad page: fail the poll loudly rather than degrade silently
    except Exception as exc:
        log.warning("source=%s could not read %s: %s: %s (kept the list text)", cfg.name, for_display(item.url),
                    type(exc).__name__, for_display(str(exc))[:200])
        return item
    return replace(item, body=text or item.body, published=item.published or pages.page_date(html))


def _add_version(s: Session, cfg: SourceConfig, version: PendingVersion | None) -> None:
    if version is not None:
        repo.add_version(s, repo.get_source(s, cfg.name), clock.utcnow(), version.digest, version.title,
                         version.text)


def _page_change(app: App, cfg: SourceConfig, html: str) -> tuple[list[FeedItem], PendingVersion | None]:
    """A watched page: when its stable text changed, a new version (stored by the caller, with the
    entry) and what it added as the entry. The first version is the baseline and reports nothing."""
    from monitor.sources import pages
    from monitor.sources.feeds import FeedItem

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
                            retry_after=retry_after, owner=app.owner)
        app.planner.on_source_failed(s, src, now)
        failures = src.failures
    app.bus.publish(SourceFailed(cfg.name, error, failures))
    return PollOutcome(cfg.name, False, error)


def _succeed(app: App, s: Session, cfg: SourceConfig, etag: str | None, last_modified: str | None,
             new_entries: int, warning: str | None = None, keep_warning: bool = False) -> None:
    src = repo.get_source(s, cfg.name)
    since = clock.as_utc(src.failing_since)
    now = clock.utcnow()
    repo.record_success(s, src, now, cfg.interval, etag, last_modified, new_entries, owner=app.owner,
                        warning=src.last_warning if keep_warning else warning)
    app.planner.on_source_recovered(s, src, since, now)


def _summary(f: PolicyChange) -> str:
    targets = ",".join(f.targets) or "-"
    when = f.effective_date.isoformat() if f.effective_date else "no date"
    return f"{f.platform} {f.action} {targets} {f.link_type} links, effective {when}"
