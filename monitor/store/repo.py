"""The queries: every read and write of the pipeline, the delivery loop and the CLI goes through here,
so SQLite and PostgreSQL behave the same and the CLI shows exactly what the daemon stored."""

from __future__ import annotations

import base64
import functools
import binascii
import json
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta, timezone
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

from sqlalchemy import Select, Table, Text, and_, bindparam, case, cast, func, or_, select, text, update
from sqlalchemy.orm import Session, defer, selectinload

from monitor.clock import as_utc
from monitor.store.models import (
    Change,
    ChangeEvent,
    Delivery,
    Entry,
    Label,
    Mention,
    PageVersion,
    PrunedEntry,
    Source,
)

if TYPE_CHECKING:  # the queries the CLI runs need neither the extractor nor the feed parser loaded
    from monitor.config import SourceConfig
    from monitor.extract.model import PolicyChange
    from monitor.sources.feeds import FeedItem


# -- sources ---------------------------------------------------------------------------------------
def sync_sources(session: Session, configured: Iterable[SourceConfig]) -> None:
    """Make a row for every configured source; a changed URL resets the conditional-GET validators.

    Every process opening the database does this, and several start together (two daemons, a daemon
    and the CLI or ``serve``): new rows are inserted with ON CONFLICT DO NOTHING, so the second to
    arrive on a new database finds the rows made rather than failing on a duplicate key."""
    rows = {s.name: s for s in session.scalars(select(Source))}
    new = []
    for cfg in configured:
        row = rows.get(cfg.name)
        if row is None:
            new.append({"name": cfg.name, "kind": cfg.kind, "url": cfg.url, "status": "never", "failures": 0,
                        "entries_seen": 0, "ops_alerted": False})
        elif row.url != cfg.url or row.kind != cfg.kind:
            row.url, row.kind, row.etag, row.last_modified = cfg.url, cfg.kind, None, None
    if new:
        session.execute(_insert_new(session, Source).values(new))


def _insert_new(session: Session, model: type[Any]) -> Any:
    """An INSERT that skips the rows whose key exists already (both dialects say it the same way)."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(model).on_conflict_do_nothing()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(model).on_conflict_do_nothing()


def get_source(session: Session, name: str, lock: bool = False) -> Source:
    stmt = select(Source).where(Source.name == name)
    if lock:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).one()


def record_success(session: Session, source: Source, now: datetime, interval: timedelta,
                   etag: str | None, last_modified: str | None, new_entries: int, owner: str | None = None,
                   warning: str | None = None) -> None:
    source.status = "ok"
    source.last_polled = source.last_success = now
    source.last_error = None
    source.last_warning = warning
    source.failures = 0
    source.failing_since = None
    source.next_poll = now + interval
    source.etag, source.last_modified = etag, last_modified
    source.entries_seen = (source.entries_seen or 0) + new_entries
    release_lease(source, owner)


def record_failure(session: Session, source: Source, now: datetime, error: str, interval: timedelta,
                   max_backoff: timedelta, retry_after: float | None = None, owner: str | None = None) -> timedelta:
    """Back off exponentially (interval, 2x, 4x ... up to ``max_backoff``) but never give up; a server's
    Retry-After is honoured when it asks for longer."""
    source.status = "failing"
    source.last_polled = now
    source.last_error = error
    source.failures = (source.failures or 0) + 1
    source.failing_since = source.failing_since or now
    delay = min(interval * (2 ** min(source.failures - 1, 20)), max(max_backoff, interval))
    if retry_after:
        delay = max(delay, timedelta(seconds=retry_after))
    source.next_poll = now + delay
    release_lease(source, owner)
    return delay


def release_lease(source: Source, owner: str | None) -> None:
    """Give the source back, if this worker still holds it (a lease that expired and was taken by
    another worker is theirs)."""
    if owner is not None and source.lease_owner == owner:
        source.lease_owner = source.lease_until = None


def claim_poll(session: Session, name: str, owner: str, now: datetime, lease: timedelta,
               due_by: datetime | None = None) -> bool:
    """Lease the next poll of a source: one conditional UPDATE, which succeeds for one worker only,
    and only when no other worker holds an unexpired lease on it. With ``due_by``, also only when
    the source is due by then (the daemon's scheduled polls; `once` polls whatever is not leased).
    The poll gives the lease back when it records its outcome (``release_lease``); a worker killed
    meanwhile leaves a lease that simply expires."""
    cond = [Source.name == name, or_(Source.lease_until.is_(None), Source.lease_until <= now)]
    if due_by is not None:
        cond.append(or_(Source.next_poll.is_(None), Source.next_poll <= due_by))
    result = session.execute(update(Source).where(*cond).values(lease_owner=owner, lease_until=now + lease)
                             .execution_options(synchronize_session=False))
    return bool(getattr(result, "rowcount", 0))  # a CursorResult for an UPDATE


@dataclass(frozen=True)
class PollState:
    """What a poll needs of its source's row: the conditional-GET validators, and whether it ever
    succeeded (a first poll records old news without alerting)."""

    etag: str | None
    last_modified: str | None
    first: bool


def claim_poll_state(session: Session, name: str, owner: str, now: datetime, lease: timedelta,
                     due_by: datetime | None = None) -> PollState | None:
    """``claim_poll`` that also returns the source's poll state (None when not claimed): the claim
    and the read are one statement, so an unchanged poll costs one round trip before its fetch."""
    cond = [Source.name == name, or_(Source.lease_until.is_(None), Source.lease_until <= now)]
    if due_by is not None:
        cond.append(or_(Source.next_poll.is_(None), Source.next_poll <= due_by))
    row = session.execute(update(Source).where(*cond).values(lease_owner=owner, lease_until=now + lease)
                          .returning(Source.etag, Source.last_modified, Source.last_success)
                          .execution_options(synchronize_session=False)).first()
    return None if row is None else PollState(row[0], row[1], row[2] is None)


def claim_polls(session: Session, names: Sequence[str], owner: str, now: datetime, lease: timedelta
                ) -> dict[str, PollState]:
    """``claim_poll_state`` for many sources in one statement (`once` claims its sources a few
    dozen at a time): the ones claimed, with their poll state; the others another worker holds."""
    free = or_(Source.lease_until.is_(None), Source.lease_until <= now)
    rows = session.execute(update(Source).where(Source.name.in_(names), free)
                           .values(lease_owner=owner, lease_until=now + lease)
                           .returning(Source.name, Source.etag, Source.last_modified, Source.last_success)
                           .execution_options(synchronize_session=False))
    return {name: PollState(etag, lm, last is None) for name, etag, lm, last in rows}


def poll_state(session: Session, name: str) -> PollState:
    etag, last_modified, last_success = session.execute(
        select(Source.etag, Source.last_modified, Source.last_success).where(Source.name == name)).one()
    return PollState(etag, last_modified, last_success is None)


@dataclass(frozen=True)
class Unchanged:
    """An unchanged poll waiting to be recorded (see monitor.ledger)."""

    name: str
    at: datetime
    next_poll: datetime
    etag: str | None
    last_modified: str | None


def ops_alerted_among(session: Session, names: Sequence[str]) -> set[str]:
    """Which of these sources an operator was told are failing (their recovery is reported)."""
    found: set[str] = set()
    for start in range(0, len(names), 500):
        found.update(session.scalars(select(Source.name).where(Source.name.in_(names[start:start + 500]),
                                                              Source.ops_alerted.is_(True))))
    return found


def record_unchanged(session: Session, rows: Sequence[Unchanged], owner: str | None) -> None:
    """``record_success`` of many unchanged polls (no new entries, the warning kept) in one
    executemany: what it writes per row is what record_success writes, lease release included."""
    if not rows:
        return
    t: Table = Source.__table__  # type: ignore[assignment]
    mine = t.c.lease_owner == owner
    stmt = update(t).where(t.c.name == bindparam("b_name")).values(
        status="ok", last_polled=bindparam("b_at"), last_success=bindparam("b_at"), last_error=None, failures=0,
        failing_since=None, next_poll=bindparam("b_next"), etag=bindparam("b_etag"),
        last_modified=bindparam("b_lm"),
        lease_owner=case((mine, None), else_=t.c.lease_owner),
        lease_until=case((mine, None), else_=t.c.lease_until))
    session.connection().execute(stmt, [{"b_name": r.name, "b_at": r.at, "b_next": r.next_poll, "b_etag": r.etag,
                                         "b_lm": r.last_modified} for r in rows])


def renew_lease(session: Session, name: str, owner: str, until: datetime) -> bool:
    """Extend a lease this worker holds (a long poll: many followed pages); False when it was lost."""
    result = session.execute(update(Source).where(Source.name == name, Source.lease_owner == owner)
                             .values(lease_until=until).execution_options(synchronize_session=False))
    return bool(getattr(result, "rowcount", 0))


def leases(session: Session) -> list[tuple[str, str]]:
    return [(n, o) for n, o in session.execute(select(Source.name, Source.lease_owner)
                                                 .where(Source.lease_owner.is_not(None))) if o is not None]


def free_leases(session: Session, names_and_owners: Iterable[tuple[str, str]]) -> int:
    """Release the given leases (each only if still held by that owner)."""
    n = 0
    for name, owner in names_and_owners:
        result = session.execute(update(Source).where(Source.name == name, Source.lease_owner == owner)
                                 .values(lease_owner=None, lease_until=None)
                                 .execution_options(synchronize_session=False))
        n += bool(getattr(result, "rowcount", 0))
    return n


def list_sources(session: Session) -> Sequence[Source]:
    return session.scalars(select(Source).order_by(Source.name)).all()


def source_change_counts(session: Session) -> dict[int, int]:
    """Per source id, the number of changes in the log (not withdrawn) that its entries report."""
    # by the source name copied onto the mention: it outlives the entry (see retention)
    stmt = (select(Source.id, func.count(func.distinct(Mention.change_id)))
            .join(Mention, Mention.source_name == Source.name).join(Change, Change.id == Mention.change_id)
            .where(Change.status != "withdrawn").group_by(Source.id))
    return {sid: int(n) for sid, n in session.execute(stmt)}


def last_version(session: Session, source: Source) -> PageVersion | None:
    return session.scalars(select(PageVersion).where(PageVersion.source_id == source.id)
                           .order_by(PageVersion.id.desc()).limit(1)).first()


def add_version(session: Session, source: Source, now: datetime, digest: str, title: str, text: str) -> PageVersion:
    version = PageVersion(source_id=source.id, fetched_at=now, content_hash=digest, title=title, text=text)
    session.add(version)
    session.flush()
    return version


def versions(session: Session, source: Source) -> Sequence[PageVersion]:
    return session.scalars(select(PageVersion).where(PageVersion.source_id == source.id)
                           .order_by(PageVersion.id)).all()


# -- entries ---------------------------------------------------------------------------------------
def new_items(session: Session, source: Source, items: Sequence[FeedItem]) -> list[FeedItem]:
    """The items not stored yet under this source: known neither by GUID, nor (a feed that changed
    its GUIDs) by canonical URL, nor by identical content. Also drops repeats within ``items``."""
    if not items:
        return []
    from monitor.sources.feeds import canonical_url

    guids = {it.guid for it in items}
    canons = {c for it in items if (c := canonical_url(it.url))}
    hashes = {it.content_hash for it in items}
    known_g: set[str] = set()
    known_c: set[str] = set()
    known_h: set[str] = set()
    # Entries retention removed are still known by their keys (pruned_entries): an item a feed
    # still lists must not come back as new.
    for table in (Entry, PrunedEntry):
        for g, c, h in session.execute(select(table.guid, table.canonical_url, table.content_hash).where(
                table.source_id == source.id,
                or_(table.guid.in_(guids), table.canonical_url.in_(canons), table.content_hash.in_(hashes)))):
            known_g.add(g)
            known_h.add(h)
            if c:
                known_c.add(c)
    out = []
    for it in items:
        canon = canonical_url(it.url)
        if it.guid in known_g or it.content_hash in known_h or (canon and canon in known_c):
            continue
        out.append(it)
        known_g.add(it.guid)
        known_h.add(it.content_hash)
        if canon:
            known_c.add(canon)
    return out


def add_entries(session: Session, source: Source, items: Sequence[FeedItem], lang: str | None,
                now: datetime) -> list[Entry]:
    """Store items already known to be new (see ``new_items``), in one flush."""
    from monitor.sources.feeds import canonical_url

    entries = []
    for item in items:
        canon = canonical_url(item.url)
        entries.append(Entry(source=source, guid=item.guid, url=item.url,
                             canonical_url=canon[:1024] if canon else None, content_hash=item.content_hash,
                             title=item.title, published=item.published, lang=lang, body=item.body,
                             discovered_at=now, changes_found=0))
    session.add_all(entries)
    session.flush()
    return entries


def list_entries(session: Session, source: str | None = None, limit: int = 50) -> Sequence[Entry]:
    stmt = select(Entry).options(selectinload(Entry.source)).join(Source)
    if source:
        stmt = stmt.where(Source.name == source)
    stmt = stmt.order_by(func.coalesce(Entry.published, Entry.discovered_at).desc(), Entry.id.desc()).limit(limit)
    return session.scalars(stmt).all()


# -- changes ---------------------------------------------------------------------------------------
_OPPOSITE = {"allow": {"ban", "restrict"}, "ban": {"allow"}, "restrict": {"allow"}}
#: How far apart two dates of one change may be for a later report to move it rather than announce
#: a different change, and how recent a change must be for an opposite report to reverse it.
MOVE_WINDOW = timedelta(days=120)
REVERSAL_WINDOW = timedelta(days=365)


def _targets_overlap(row: Change, found: PolicyChange) -> bool:
    return not (row.targets and found.targets and not set(row.targets) & set(found.targets))


def _compatible(row: Change, found: PolicyChange, date_fixed: bool = False) -> bool:
    """Same real-world change: same platform and action, overlapping targets (or either side names
    none), and effective dates that agree or are unknown on one side. A date a person corrected
    stands: a report with a nearby (wrong) date is another report of the same change."""
    if row.action != found.action or not _targets_overlap(row, found):
        return False
    if date_fixed and row.effective_date and found.effective_date:
        return abs(row.effective_date - found.effective_date) <= MOVE_WINDOW
    if row.effective_date and found.effective_date and row.effective_date != found.effective_date:
        return False
    return True


def _first_reported(session: Session, row: Change) -> datetime:
    """When a change was first reported: its earliest mention's publication time (else when it was
    first seen). Compared with a new report's publication time, never with the clock: a poll that
    reads 2023 news in 2026 must judge it as 2023 did."""
    earliest = session.scalar(select(func.min(Mention.published)).where(Mention.change_id == row.id))
    first = as_utc(earliest) or as_utc(row.first_seen)
    assert first is not None
    return first


def _moves_date(row: Change, found: PolicyChange, reported: datetime, first: Callable[[], datetime]) -> bool:
    """A later report of the same rule with another date moves it ("推迟至4月1日"), as long as the old
    date was still ahead (or just passed) when the report came and the two dates are close."""
    if row.action != found.action or not _targets_overlap(row, found) or row.status != "active":
        return False
    if not (row.effective_date and found.effective_date and row.effective_date != found.effective_date):
        return False
    return (abs(found.effective_date - row.effective_date) <= MOVE_WINDOW
            and row.effective_date >= (reported - timedelta(days=7)).date() and reported >= first())


def _reverses(row: Change, found: PolicyChange, reported: datetime, first: Callable[[], datetime]) -> bool:
    """An opposite report (allow after a ban) about the same platform and targets, soon after."""
    if row.status != "active" or found.action not in _OPPOSITE.get(row.action, set()):
        return False
    if not row.targets or not found.targets or not set(row.targets) & set(found.targets):
        if row.targets or found.targets:
            return False
    start = first()
    return start <= reported <= start + REVERSAL_WINDOW


def lock_platforms(session: Session, platforms: Iterable[str]) -> None:
    """Serialise the change-identity check per platform, so two pollers finding the same change at
    once cannot both create it. On PostgreSQL, transaction-scoped advisory locks taken in sorted
    order (a transaction that records several platforms locks them all up front, in one order, so
    two such transactions cannot deadlock); SQLite serialises every write transaction already."""
    if session.get_bind().dialect.name != "postgresql":
        return
    held: set[str] = session.info.setdefault("platform_locks", set())
    wanted = sorted(set(platforms) - held)
    if held and wanted and wanted[0] < max(held):
        raise RuntimeError(f"platform locks out of order: holding {sorted(held)}, asked for {wanted}; "
                           "lock every platform of the transaction first (lock_platforms)")
    for p in wanted:
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": "change:" + p})
        held.add(p)


@dataclass(frozen=True)
class Recorded:
    """What one statement did to the change log."""

    change: Change
    outcome: str                  # created | corroborated | date_set | date_moved | reversed | known | suppressed
    new_mention: bool
    event: ChangeEvent | None = None

    @property
    def created(self) -> bool:
        return self.outcome == "created"


def record_change(session: Session, entry: Entry, found: PolicyChange, now: datetime,
                  found_by: str = "poll") -> Recorded:
    """Merge ``found`` into the change log: a new change, another report of a known one, or an update
    (a moved date, a reversal) whose history is kept. Runs in the caller's transaction with the entry
    and the outbox rows the caller plans, so all of it is committed together or not at all."""
    reported = as_utc(entry.published) or now
    judged = _judged_for_entry(session, entry, found)
    if judged is not None:
        row, found = judged
        if row.status == "withdrawn":
            return Recorded(row, "suppressed", False)  # a person said this is not a change: stay silent
    lock_platforms(session, [found.platform])
    # Only rows that could match, so the cost does not grow with the platform's whole history:
    # first the same action with a date that agrees or is unknown (the common case: another report
    # of a known change); only when none fits, a close date that may have moved or the opposite
    # action that may reverse it.
    # A withdrawn change was judged not to be one; a new report of it starts afresh.
    # A change a person labelled "not a change" still draws the reports of the same thing, so that
    # another article about it stays silent too.
    judged_not = select(Label.change_id).where(Label.kind == "not_a_change")
    base = select(Change).where(Change.platform == found.platform,
                                or_(Change.status != "withdrawn", Change.id.in_(judged_not))).order_by(
        Change.first_seen.desc(), Change.id.desc())
    same = Change.action == found.action
    if found.effective_date is not None:
        d = found.effective_date
        fixed = select(Label.change_id).where(Label.kind == "date")
        same = and_(same, or_(Change.effective_date.is_(None), Change.effective_date == d,
                              and_(Change.id.in_(fixed), Change.effective_date.between(d - MOVE_WINDOW,
                                                                                      d + MOVE_WINDOW))))
    candidates = list(session.scalars(base.where(same).with_for_update()))
    date_fixed = set(session.scalars(select(Label.change_id).where(
        Label.kind == "date", Label.change_id.in_([c.id for c in candidates] or [-1])))) if candidates else set()
    if not any(_compatible(c, found, c.id in date_fixed) for c in candidates):
        near = Change.action == found.action
        if found.effective_date is not None:
            d = found.effective_date
            near = and_(near, Change.effective_date.between(d - MOVE_WINDOW, d + MOVE_WINDOW))
        opposite = and_(Change.action.in_(sorted(_OPPOSITE.get(found.action, set()))), Change.status == "active",
                        Change.first_seen >= reported - REVERSAL_WINDOW)
        candidates += [c for c in session.scalars(base.where(or_(near, opposite)).with_for_update())
                       if c not in candidates]
    existing_mention = set(session.scalars(select(Mention.change_id).where(Mention.entry_id == entry.id)))

    def mention(change: Change) -> bool:
        if change.id in existing_mention:
            return False
        session.add(Mention(change_id=change.id, entry_id=entry.id, evidence=found.evidence,
                            effective_date=found.effective_date, confidence=found.confidence, created_at=now,
                            source_name=entry.source.name, title=entry.title, url=entry.url,
                            published=entry.published))
        return True

    def event(change: Change, kind: str, old: object, new: object) -> ChangeEvent:
        ev = ChangeEvent(change_id=change.id, entry_id=entry.id, kind=kind,
                         old_value=None if old is None else str(old), new_value=None if new is None else str(new),
                         evidence=found.evidence, at=now)
        session.add(ev)
        change.updated_at = now
        return ev

    for row in candidates:
        if _compatible(row, found, row.id in date_fixed):
            added = mention(row)
            if row.status == "withdrawn":
                return Recorded(row, "suppressed", False)
            merged = list(dict.fromkeys(list(row.targets or []) + list(found.targets)))
            if merged != list(row.targets or []):
                row.targets = merged
            if found.confidence > row.confidence:
                row.confidence = found.confidence
            if row.effective_date is None and found.effective_date is not None and added:
                ev = event(row, "date_set", None, found.effective_date)
                row.effective_date = found.effective_date
                session.flush()
                return Recorded(row, "date_set", added, ev)
            return Recorded(row, "corroborated" if added else "known", added)  # flushed at commit
    for row in candidates:
        if row.id in existing_mention or row.status == "withdrawn":
            continue  # re-extraction of an entry already counted: never an update of its own change
        # when it was first reported: one query, asked only by a candidate that passes every other test
        first = functools.cache(functools.partial(_first_reported, session, row))
        if _moves_date(row, found, reported, first) and row.id not in date_fixed:
            added = mention(row)
            ev = event(row, "date_moved", row.effective_date, found.effective_date)
            row.effective_date = found.effective_date
            session.flush()
            return Recorded(row, "date_moved", added, ev)
        if _reverses(row, found, reported, first):
            added = mention(row)
            ev = event(row, "reversed", row.action, found.action)
            row.status = "reversed"
            session.flush()
            return Recorded(row, "reversed", added, ev)
    row = Change(platform=found.platform, targets=list(found.targets), action=found.action,
                 link_type=found.link_type, effective_date=found.effective_date, evidence=found.evidence,
                 confidence=found.confidence, first_seen=now, updated_at=now, status="active", found_by=found_by)
    session.add(row)
    session.flush()
    mention(row)
    session.flush()
    return Recorded(row, "created", True)


def _judged_for_entry(session: Session, entry: Entry, found: PolicyChange) -> tuple[Change, PolicyChange] | None:
    """A change this entry already reports that a person corrected, and ``found`` with the
    corrections applied, when ``found`` is the same statement (its platform is the change's, or the
    one a person corrected away): re-extraction must not undo a person's judgement."""
    if entry.id is None:
        return None
    rows = session.execute(select(Change, Label).join(Label, Label.change_id == Change.id)
                           .join(Mention, Mention.change_id == Change.id)
                           .where(Mention.entry_id == entry.id).order_by(Label.id)).all()
    by_change: dict[int, tuple[Change, list[Label]]] = {}
    for change, lab in rows:
        by_change.setdefault(change.id, (change, []))[1].append(lab)
    for change, labels in by_change.values():
        kinds = {lab.kind for lab in labels}
        platforms = {change.platform} | {lab.previous for lab in labels if lab.kind == "platform" and lab.previous}
        if found.platform not in platforms:
            continue
        return change, replace(
            found, platform=change.platform,
            action=change.action if "action" in kinds else found.action,
            effective_date=change.effective_date if "date" in kinds else found.effective_date)
    return None


def withdraw_mentions(session: Session, entry: Entry, still_found: set[int], now: datetime) -> tuple[int, list[Change]]:
    """Re-extraction no longer finds in ``entry`` the changes it was counted for (other than
    ``still_found``): those mentions go, and a change left with no report at all is withdrawn: kept
    with its history, left out of the change log by default, its unsent messages cancelled. Silent,
    like every effect of an extractor upgrade."""
    # A change a person judged keeps its reports: they are the articles its label is exported with.
    judged = select(Label.change_id)
    stale = list(session.scalars(select(Mention).where(Mention.entry_id == entry.id,
                                                       Mention.change_id.not_in(still_found or {-1}),
                                                       Mention.change_id.not_in(judged))))
    withdrawn: list[Change] = []
    for m in stale:
        change = m.change
        session.delete(m)
        session.flush()
        left = session.scalar(select(func.count()).select_from(Mention).where(Mention.change_id == change.id))
        if left == 0 and change.status != "withdrawn":
            session.add(ChangeEvent(change_id=change.id, entry_id=entry.id, kind="withdrawn", old_value=change.status,
                                    new_value="withdrawn", evidence="no longer found by the extractor", at=now))
            change.status, change.updated_at = "withdrawn", now
            for d in session.scalars(select(Delivery).where(Delivery.change_id == change.id,
                                                            Delivery.status.in_(DUE))):
                d.status, d.last_error = "cancelled", "the change was withdrawn on re-extraction"
            withdrawn.append(change)
    return len(stale), withdrawn


STATUSES = ("active", "reversed", "withdrawn")


@dataclass(frozen=True)
class ChangeFilter:
    platform: str | None = None
    target: str | None = None
    action: str | None = None
    since: date | None = None
    until: date | None = None
    effective_from: date | None = None
    effective_to: date | None = None
    status: str | None = None   # None: all but withdrawn; "all": every status
    link_type: str | None = None
    text: str | None = None     # a word of the evidence, a reporting article's title, the platform or a target


@dataclass(frozen=True)
class Cursor:
    """Where a page of the change log (newest first) ends: the last row's (first_seen, id). The next
    page starts strictly after it, so rows added meanwhile never shift or repeat a page."""

    first_seen: datetime
    id: int

    def encode(self) -> str:
        seen = as_utc(self.first_seen)
        assert seen is not None
        raw = f"{seen.isoformat()}|{self.id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, value: str) -> "Cursor":
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
            seen, ident = raw.split("|")
            at = as_utc(datetime.fromisoformat(seen))
            assert at is not None
            return cls(at, int(ident))
        except (ValueError, UnicodeDecodeError, AssertionError, binascii.Error):
            raise ValueError(f"{value!r} is not a cursor from a previous page") from None


def _like(text: str) -> str:
    return "%" + text.replace("!", "!!").replace("%", "!%").replace("_", "!_") + "%"


def change_query(f: ChangeFilter = ChangeFilter()) -> Select[Any]:
    """The changes that pass ``f``, every condition in SQL (so a page of 50 out of 100,000 costs an
    index range scan, not a scan in Python), without ordering or loading options."""
    stmt = select(Change)
    if f.platform:
        stmt = stmt.where(Change.platform == f.platform)
    if f.status != "all":
        stmt = stmt.where(Change.status == f.status if f.status else Change.status != "withdrawn")
    if f.action:
        stmt = stmt.where(Change.action == f.action)
    if f.link_type:
        stmt = stmt.where(Change.link_type == f.link_type)
    if f.effective_from:
        stmt = stmt.where(Change.effective_date >= f.effective_from)
    if f.effective_to:
        stmt = stmt.where(Change.effective_date <= f.effective_to)
    # first_seen is stored in UTC; a day of --since/--until is a UTC calendar day.
    if f.since:
        stmt = stmt.where(Change.first_seen >= datetime.combine(f.since, time(0), timezone.utc))
    if f.until:
        stmt = stmt.where(Change.first_seen < datetime.combine(f.until + timedelta(days=1), time(0), timezone.utc))
    if f.target:
        # targets is a JSON array, stored as the text json.dumps wrote on both SQLite and PostgreSQL
        # (whose JSON containment operators SQLite lacks): an element is its quoted JSON string.
        stmt = stmt.where(cast(Change.targets, Text).like(_like(json.dumps(f.target)), escape="!"))
    if f.text and f.text.strip():
        pattern = _like(f.text.strip())
        reported = (select(Mention.change_id)
                    .where(or_(Mention.title.ilike(pattern, escape="!"), Mention.evidence.ilike(pattern, escape="!"))))
        stmt = stmt.where(or_(Change.evidence.ilike(pattern, escape="!"), Change.platform.ilike(pattern, escape="!"),
                              cast(Change.targets, Text).ilike(pattern, escape="!"), Change.id.in_(reported)))
    return stmt


def with_sources(stmt: Select[Any]) -> Select[Any]:
    """Each change with its reports (article titles and links, not their bodies) and its history."""
    return stmt.options(
        selectinload(Change.mentions).selectinload(Mention.entry).options(defer(Entry.body),
                                                                          selectinload(Entry.source)),
        selectinload(Change.history))


def list_changes(session: Session, f: ChangeFilter = ChangeFilter(), limit: int | None = None,
                 after: Cursor | None = None, order: str = "first_seen",
                 after_effective: tuple[date, int] | None = None) -> list[Change]:
    """The change log, newest first (``order="first_seen"``, pageable with ``limit`` and ``after``),
    most recently updated first (``"updated"``, for feeds) or by effective date (``"effective"``,
    dated changes only, pageable with ``after_effective``: the last row's date and id)."""
    stmt = change_query(f)
    if order == "updated":
        stmt = stmt.order_by(Change.updated_at.desc(), Change.id.desc())
    elif order == "effective":
        stmt = stmt.where(Change.effective_date.is_not(None))
        if after_effective is not None:
            day, ident = after_effective
            stmt = stmt.where(Change.effective_date >= day, or_(Change.effective_date > day, Change.id > ident))
        stmt = stmt.order_by(Change.effective_date, Change.id)
    else:
        if after is not None:
            # the first bound alone opens an index range; the second drops the rows up to the cursor
            stmt = stmt.where(Change.first_seen <= after.first_seen,
                              or_(Change.first_seen < after.first_seen, Change.id < after.id))
        stmt = stmt.order_by(Change.first_seen.desc(), Change.id.desc())
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(session.scalars(with_sources(stmt)).all())


def page_changes(session: Session, f: ChangeFilter, limit: int, after: Cursor | None = None
                 ) -> tuple[list[Change], Cursor | None]:
    """One page of the change log, newest first, and the cursor of the next page (None at the end)."""
    rows = list_changes(session, f, limit + 1, after)
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, Cursor(rows[-1].first_seen, rows[-1].id)


def get_change(session: Session, change_id: int) -> Change | None:
    return session.scalars(with_sources(select(Change).where(Change.id == change_id))).first()


def platforms_in_log(session: Session) -> list[str]:
    """The platforms the change log names, for filter menus."""
    return list(session.scalars(select(Change.platform).distinct().order_by(Change.platform)))


def latest_change(session: Session) -> Change | None:
    cid = session.scalar(select(Change.id).where(Change.status != "withdrawn")
                         .order_by(Change.first_seen.desc()).limit(1))
    return get_change(session, cid) if cid is not None else None


# -- outbox ----------------------------------------------------------------------------------------
DUE = ("pending", "failed")
#: Statuses in which a row is not waiting for an attempt: its next_attempt means nothing.
SETTLED = ("sent", "dead", "cancelled", "skipped", "unknown")


def due_notifiers(session: Session, now: datetime) -> list[str]:
    return list(session.scalars(select(Delivery.notifier).where(Delivery.status.in_(DUE), Delivery.next_attempt <= now)
                                .distinct()))


def claim_due(session: Session, now: datetime, notifier: str, lease: timedelta, limit: int = 1,
              kinds: Sequence[str] | None = None) -> list[Delivery]:
    """Lease the next deliveries due for one notifier: rows are locked with SKIP LOCKED (as miniflux
    claims its jobs) and their next attempt moved past the lease, then the caller commits and sends
    outside any transaction. Another worker skips them; a worker that dies mid-send leaves them due
    again when the lease ends."""
    stmt = (select(Delivery).where(Delivery.status.in_(DUE), Delivery.next_attempt <= now,
                                   Delivery.notifier == notifier)
            .order_by(Delivery.next_attempt, Delivery.id).limit(limit).with_for_update(skip_locked=True))
    if kinds:
        stmt = stmt.where(Delivery.kind.in_(kinds))
    rows = list(session.scalars(stmt))
    for d in rows:
        d.next_attempt = now + lease
    return rows


def mark_sent(delivery: Delivery, now: datetime, note: str | None = None) -> None:
    delivery.status = "sent"
    delivery.attempts += 1
    delivery.sent_at = delivery.next_attempt = now
    delivery.last_error = note


def mark_unknown(delivery: Delivery, now: datetime, error: str) -> None:
    """The send timed out after it may have gone out: never retried on its own (a retry could only
    add a copy); `deliveries retry ID` sends it again if the recipient did not get it."""
    delivery.attempts += 1
    delivery.status = "unknown"
    delivery.last_error = error
    delivery.next_attempt = now


def mark_failed(delivery: Delivery, now: datetime, error: str, max_attempts: int, base: timedelta,
                cap: timedelta) -> None:
    delivery.attempts += 1
    delivery.last_error = error
    if delivery.attempts >= max_attempts:
        delivery.status = "dead"
        delivery.next_attempt = now
        return
    delivery.status = "failed"
    delivery.next_attempt = now + min(base * (2 ** (delivery.attempts - 1)), cap)


def owed(session: Session, change_id: int, kind: str) -> list[Delivery]:
    return list(session.scalars(select(Delivery).where(Delivery.change_id == change_id, Delivery.kind == kind)))


def cancel_reminders(session: Session, change_id: int, why: str) -> int:
    """Reminders not yet sent for a change whose date moved or which was reversed."""
    n = 0
    for d in session.scalars(select(Delivery).where(Delivery.change_id == change_id, Delivery.kind == "reminder",
                                                    Delivery.status.in_(DUE))):
        d.status, d.last_error = "cancelled", why
        n += 1
    return n


def cancel_due(session: Session, change_id: int, why: str) -> int:
    """Every message of a change not sent yet (alerts, updates, reminders)."""
    n = 0
    for d in session.scalars(select(Delivery).where(Delivery.change_id == change_id, Delivery.status.in_(DUE))):
        d.status, d.last_error = "cancelled", why
        n += 1
    return n


def find_delivery(session: Session, change_id: int, notifier: str, kind: str, key: str) -> Delivery | None:
    return session.scalars(select(Delivery).where(Delivery.change_id == change_id, Delivery.notifier == notifier,
                                                  Delivery.kind == kind, Delivery.key == key)).first()


def list_deliveries(session: Session, status: str | None = None, change_id: int | None = None) -> Sequence[Delivery]:
    stmt = select(Delivery).order_by(Delivery.id.desc())
    if status:
        stmt = stmt.where(Delivery.status == status)
    if change_id is not None:
        stmt = stmt.where(Delivery.change_id == change_id)
    return session.scalars(stmt).all()


def retry_deliveries(session: Session, now: datetime, ids: Sequence[int] = (), all_dead: bool = False) -> int:
    """Make dead, failed or unknown (timed out, may have been sent) deliveries due again, with a fresh
    attempt budget."""
    stmt = select(Delivery)
    if all_dead:
        stmt = stmt.where(Delivery.status == "dead")
    else:
        stmt = stmt.where(Delivery.id.in_(ids), Delivery.status.in_(("dead", "failed", "unknown")))
    n = 0
    for d in session.scalars(stmt):
        d.status, d.attempts, d.next_attempt = "pending", 0, now
        n += 1
    return n
