"""The queries: every read and write of the pipeline, the delivery loop and the CLI goes through here,
so SQLite and PostgreSQL behave the same and the CLI shows exactly what the daemon stored."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Iterable, Sequence

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session, selectinload

from monitor.clock import as_utc
from monitor.config import NotifierConfig, SourceConfig
from monitor.extract.model import PolicyChange
from monitor.sources.feeds import FeedItem, canonical_url
from monitor.store.models import Change, Delivery, Entry, Mention, Source


# -- sources ---------------------------------------------------------------------------------------
def sync_sources(session: Session, configured: Iterable[SourceConfig]) -> None:
    """Make a row for every configured source; a changed URL resets the conditional-GET validators."""
    rows = {s.name: s for s in session.scalars(select(Source))}
    for cfg in configured:
        row = rows.get(cfg.name)
        if row is None:
            session.add(Source(name=cfg.name, kind=cfg.kind, url=cfg.url, status="never", failures=0,
                               entries_seen=0))
        elif row.url != cfg.url or row.kind != cfg.kind:
            row.url, row.kind, row.etag, row.last_modified = cfg.url, cfg.kind, None, None


def get_source(session: Session, name: str, lock: bool = False) -> Source:
    stmt = select(Source).where(Source.name == name)
    if lock:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).one()


def record_success(session: Session, source: Source, now: datetime, interval: timedelta,
                   etag: str | None, last_modified: str | None, new_entries: int) -> None:
    source.status = "ok"
    source.last_polled = source.last_success = now
    source.last_error = None
    source.failures = 0
    source.failing_since = None
    source.next_poll = now + interval
    source.etag, source.last_modified = etag, last_modified
    source.entries_seen = (source.entries_seen or 0) + new_entries


def record_failure(session: Session, source: Source, now: datetime, error: str, interval: timedelta,
                   max_backoff: timedelta) -> timedelta:
    """Back off exponentially (interval, 2x, 4x ... up to ``max_backoff``) but never give up."""
    source.status = "failing"
    source.last_polled = now
    source.last_error = error
    source.failures = (source.failures or 0) + 1
    source.failing_since = source.failing_since or now
    delay = min(interval * (2 ** min(source.failures - 1, 20)), max(max_backoff, interval))
    source.next_poll = now + delay
    return delay


def list_sources(session: Session) -> Sequence[Source]:
    return session.scalars(select(Source).order_by(Source.name)).all()


# -- entries ---------------------------------------------------------------------------------------
def add_entry(session: Session, source: Source, item: FeedItem, lang: str | None, now: datetime) -> Entry | None:
    """Store an item once: known by GUID, or (a feed that changed its GUIDs) by canonical URL or by
    identical content, under the same source. Returns None for an item already stored."""
    canon = canonical_url(item.url)
    digest = item.content_hash
    clauses = [Entry.guid == item.guid, Entry.content_hash == digest]
    if canon:
        clauses.append(Entry.canonical_url == canon)
    known = session.scalar(select(Entry.id).where(Entry.source_id == source.id, or_(*clauses)).limit(1))
    if known is not None:
        return None
    entry = Entry(source=source, guid=item.guid, url=item.url, canonical_url=canon[:1024] if canon else None,
                  content_hash=digest, title=item.title, published=item.published, lang=lang, body=item.body,
                  discovered_at=now, changes_found=0)
    session.add(entry)
    session.flush()
    return entry


def list_entries(session: Session, source: str | None = None, limit: int = 50) -> Sequence[Entry]:
    stmt = select(Entry).options(selectinload(Entry.source)).join(Source)
    if source:
        stmt = stmt.where(Source.name == source)
    stmt = stmt.order_by(func.coalesce(Entry.published, Entry.discovered_at).desc(), Entry.id.desc()).limit(limit)
    return session.scalars(stmt).all()


# -- changes ---------------------------------------------------------------------------------------
def _compatible(row: Change, found: PolicyChange) -> bool:
    """Same real-world change: same platform and action (checked by the query), overlapping targets
    (or either side names none), and effective dates that agree or are unknown on one side."""
    if row.targets and found.targets and not set(row.targets) & set(found.targets):
        return False
    if row.effective_date and found.effective_date and row.effective_date != found.effective_date:
        return False
    return True


@dataclass(frozen=True)
class Recorded:
    change: Change
    created: bool
    new_mention: bool


def record_change(session: Session, entry: Entry, found: PolicyChange, notifiers: Sequence[NotifierConfig],
                  now: datetime) -> Recorded:
    """Merge ``found`` into the change log, and owe each interested notifier one alert when new.

    Runs inside the caller's transaction with the entry, so the entry, the change and its outbox rows
    are committed together or not at all.
    """
    candidates = session.scalars(
        select(Change).where(Change.platform == found.platform, Change.action == found.action)
        .order_by(Change.first_seen.desc()).with_for_update()
    ).all()
    match = next((c for c in candidates if _compatible(c, found)), None)
    created = match is None
    if match is None:
        match = Change(platform=found.platform, targets=list(found.targets), action=found.action,
                       link_type=found.link_type, effective_date=found.effective_date, evidence=found.evidence,
                       confidence=found.confidence, first_seen=now, updated_at=now)
        session.add(match)
        session.flush()
    else:
        # A corroborating report fills in what the change lacked; it never overwrites what it had.
        merged_targets = list(dict.fromkeys(list(match.targets or []) + list(found.targets)))
        if merged_targets != list(match.targets or []):
            match.targets = merged_targets
        if match.effective_date is None and found.effective_date is not None:
            match.effective_date = found.effective_date
        if found.confidence > match.confidence:
            match.confidence = found.confidence
        match.updated_at = now
    exists = session.scalar(select(Mention.id).where(Mention.change_id == match.id, Mention.entry_id == entry.id))
    if exists is None:
        session.add(Mention(change_id=match.id, entry_id=entry.id, evidence=found.evidence,
                            effective_date=found.effective_date, confidence=found.confidence, created_at=now))
    if created:
        for n in notifiers:
            if wants(n, match):
                session.add(Delivery(change_id=match.id, notifier=n.name, kind="alert", key="", status="pending",
                                     attempts=0, next_attempt=now, created_at=now))
    session.flush()
    return Recorded(match, created, exists is None)


def wants(notifier: NotifierConfig, change: Change) -> bool:
    """Whether a notifier's filters select this change."""
    if not notifier.enabled:
        return False
    if notifier.platforms and change.platform not in notifier.platforms:
        return False
    return change.confidence >= notifier.min_confidence


@dataclass(frozen=True)
class ChangeFilter:
    platform: str | None = None
    target: str | None = None
    action: str | None = None
    since: date | None = None
    until: date | None = None
    effective_from: date | None = None
    effective_to: date | None = None


def list_changes(session: Session, f: ChangeFilter = ChangeFilter()) -> list[Change]:
    stmt: Select[tuple[Change]] = select(Change).options(
        selectinload(Change.mentions).selectinload(Mention.entry).selectinload(Entry.source))
    if f.platform:
        stmt = stmt.where(Change.platform == f.platform)
    if f.action:
        stmt = stmt.where(Change.action == f.action)
    if f.effective_from:
        stmt = stmt.where(Change.effective_date >= f.effective_from)
    if f.effective_to:
        stmt = stmt.where(Change.effective_date <= f.effective_to)
    rows = session.scalars(stmt.order_by(Change.first_seen.desc(), Change.id.desc())).all()
    out = []
    for c in rows:
        seen = as_utc(c.first_seen)
        assert seen is not None
        if f.since and seen.date() < f.since or f.until and seen.date() > f.until:
            continue
        if f.target and f.target not in (c.targets or []):
            continue  # JSON containment differs between SQLite and PostgreSQL; filter here
        out.append(c)
    return out


def get_change(session: Session, change_id: int) -> Change | None:
    return session.scalars(select(Change).where(Change.id == change_id).options(
        selectinload(Change.mentions).selectinload(Mention.entry).selectinload(Entry.source))).first()


def latest_change(session: Session) -> Change | None:
    cid = session.scalar(select(Change.id).order_by(Change.first_seen.desc()).limit(1))
    return get_change(session, cid) if cid is not None else None


# -- outbox ----------------------------------------------------------------------------------------
def claim_due(session: Session, now: datetime, exclude: set[int]) -> Delivery | None:
    """The next delivery due, locked so that another worker sharing PostgreSQL skips it."""
    stmt = (select(Delivery).where(Delivery.status.in_(("pending", "failed")), Delivery.next_attempt <= now)
            .order_by(Delivery.next_attempt, Delivery.id).limit(1).with_for_update(skip_locked=True))
    if exclude:
        stmt = stmt.where(Delivery.id.not_in(exclude))
    return session.scalars(stmt).first()


def mark_sent(delivery: Delivery, now: datetime) -> None:
    delivery.status = "sent"
    delivery.attempts += 1
    delivery.sent_at = now
    delivery.last_error = None


def mark_failed(delivery: Delivery, now: datetime, error: str, max_attempts: int, base: timedelta,
                cap: timedelta) -> None:
    delivery.attempts += 1
    delivery.last_error = error
    if delivery.attempts >= max_attempts:
        delivery.status = "dead"
        return
    delivery.status = "failed"
    delivery.next_attempt = now + min(base * (2 ** (delivery.attempts - 1)), cap)


def list_deliveries(session: Session, status: str | None = None) -> Sequence[Delivery]:
    stmt = select(Delivery).order_by(Delivery.id.desc())
    if status:
        stmt = stmt.where(Delivery.status == status)
    return session.scalars(stmt).all()


def retry_deliveries(session: Session, now: datetime, ids: Sequence[int] = (), all_dead: bool = False) -> int:
    """Make dead (or failed) deliveries due again, with a fresh attempt budget."""
    stmt = select(Delivery)
    if all_dead:
        stmt = stmt.where(Delivery.status == "dead")
    else:
        stmt = stmt.where(Delivery.id.in_(ids), Delivery.status.in_(("dead", "failed")))
    n = 0
    for d in session.scalars(stmt):
        d.status, d.attempts, d.next_attempt = "pending", 0, now
        n += 1
    return n
