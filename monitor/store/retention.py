"""Retention: decide which entries, watched-page versions and finished deliveries ``[retention]``
lets go, and delete them in short batches (one transaction each), so a daemon polling beside it
never waits long for the database.

What is never removed: changes, their history, mentions and labels (the log); a mention whose entry
goes keeps its own copy of the article's source, title, link and date (migration 0007). Entries that
report a change a person corrected stay (``labels export`` turns them into training data). Alert
rows stay too: they record which notifier was told of each change, and updates and corrections are
sent to those notifiers. The newest version of each watched page stays (the next poll diffs against it).

Dedup outlives the entries: each removed entry leaves its GUID, canonical URL and content hash in
``pruned_entries`` (written in the same transaction as the delete), which ``repo.new_items`` reads
beside ``entries``, so an item its feed still lists is never stored, detected or alerted again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Iterator, Sequence

from sqlalchemy import Select, delete, func, insert, literal, select, text
from sqlalchemy.orm import Session, sessionmaker

from monitor.config import RetentionConfig
from monitor.store.models import Delivery, Entry, Label, Mention, PageVersion, PrunedEntry
from monitor.store.repo import SETTLED

#: Rows deleted per transaction.
BATCH = 500
PRUNE_LOCK = 0x706D7072  # "pmpr": shared by every policy-monitor process
TABLES = ("entries", "page_versions", "deliveries")


@dataclass
class Pruned:
    """Rows removed (or, in a dry run, that would be) per table."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))
    dry_run: bool = False

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def line(self) -> str:
        return ", ".join(f"{n} {table}" for table, n in self.counts.items())


def _chunks(ids: Sequence[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(ids), size):
        yield list(ids[start:start + size])


# -- deciding --------------------------------------------------------------------------------------
def entries_to_prune(s: Session, rules: RetentionConfig, now: datetime) -> list[int]:
    """Entries stored before ``entries_max_age``, or beyond a source's newest ``entries_max_count``;
    never one that reports a change a person labelled."""
    judged = _judged()
    doomed: set[int] = set()
    if rules.entries_max_age is not None:
        doomed.update(s.scalars(select(Entry.id).where(Entry.discovered_at < now - rules.entries_max_age,
                                                       Entry.id.not_in(judged))))
    if rules.entries_max_count:
        sources = s.scalars(select(Entry.source_id).group_by(Entry.source_id)
                            .having(func.count() > rules.entries_max_count))
        for sid in list(sources):
            doomed.update(s.scalars(select(Entry.id).where(Entry.source_id == sid, Entry.id.not_in(judged))
                                    .order_by(Entry.id.desc()).offset(rules.entries_max_count)))
    return sorted(doomed)


def versions_to_prune(s: Session, rules: RetentionConfig, now: datetime) -> list[int]:
    """Versions beyond a page's newest ``versions_keep`` or fetched before ``versions_max_age``;
    never a page's newest version."""
    if not rules.versions_keep and rules.versions_max_age is None:
        return []
    newest = select(func.max(PageVersion.id)).group_by(PageVersion.source_id)
    doomed: set[int] = set()
    if rules.versions_max_age is not None:
        doomed.update(s.scalars(select(PageVersion.id).where(PageVersion.fetched_at < now - rules.versions_max_age,
                                                             PageVersion.id.not_in(newest))))
    if rules.versions_keep:
        sources = s.scalars(select(PageVersion.source_id).group_by(PageVersion.source_id)
                            .having(func.count() > rules.versions_keep))
        for sid in list(sources):
            doomed.update(s.scalars(select(PageVersion.id).where(PageVersion.source_id == sid)
                                    .order_by(PageVersion.id.desc()).offset(rules.versions_keep)))
    return sorted(doomed)


def deliveries_to_prune(s: Session, rules: RetentionConfig, now: datetime) -> list[int]:
    """Finished deliveries (sent, dead, cancelled, skipped, unknown) created and settled before
    ``deliveries_max_age``: never a pending or failed one (still to be sent), never an alert."""
    if rules.deliveries_max_age is None:
        return []
    cutoff = now - rules.deliveries_max_age
    return list(s.scalars(select(Delivery.id).where(
        Delivery.status.in_(SETTLED), Delivery.kind != "alert", Delivery.created_at < cutoff,
        func.coalesce(Delivery.sent_at, Delivery.next_attempt) < cutoff).order_by(Delivery.id)))


# -- deleting --------------------------------------------------------------------------------------
def _judged() -> Select[Any]:
    return select(Mention.entry_id).join(Label, Label.change_id == Mention.change_id).where(Mention.entry_id.is_not(None))


def _delete_entries(s: Session, ids: list[int], now: datetime) -> int:
    """Keep the entries' dedup keys, then delete them, in one transaction; mentions keep their copy
    (ON DELETE SET NULL). Entries a person's label came to depend on meanwhile are left.

    On PostgreSQL two daemons may prune at once: a transaction-scoped lock makes the second wait,
    so its copy of the keys reads the entries after the first removed them and copies none twice."""
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PRUNE_LOCK})
    which = (Entry.id.in_(ids), Entry.id.not_in(_judged()))
    s.execute(insert(PrunedEntry).from_select(
        ["source_id", "guid", "canonical_url", "content_hash", "pruned_at"],
        select(Entry.source_id, Entry.guid, Entry.canonical_url, Entry.content_hash,
               literal(now, PrunedEntry.pruned_at.type)).where(*which)))
    return _rowcount(s.execute(delete(Entry).where(*which).execution_options(synchronize_session=False)))


def _rowcount(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def prune(sessions: sessionmaker[Session], rules: RetentionConfig, now: datetime, dry_run: bool = False,
          batch: int = BATCH, stop: Callable[[], bool] = lambda: False) -> Pruned:
    """Apply ``rules`` as of ``now``; with ``dry_run``, only count. Each batch is its own transaction:
    an interrupted prune (or one told to ``stop``, checked between batches: a daemon shutting down)
    leaves whole batches done and the rest for next time."""
    out = Pruned(dry_run=dry_run)
    with sessions() as s:
        plan = {"entries": entries_to_prune(s, rules, now), "page_versions": versions_to_prune(s, rules, now),
                "deliveries": deliveries_to_prune(s, rules, now)}
    if dry_run:
        out.counts = {table: len(ids) for table, ids in plan.items()}
        return out
    for chunk in _chunks(plan["entries"], batch):
        if stop():
            return out
        with sessions.begin() as s:
            out.counts["entries"] += _delete_entries(s, chunk, now)
    for chunk in _chunks(plan["page_versions"], batch):
        if stop():
            return out
        with sessions.begin() as s:
            out.counts["page_versions"] += _rowcount(s.execute(
                delete(PageVersion).where(PageVersion.id.in_(chunk)).execution_options(synchronize_session=False)))
    for chunk in _chunks(plan["deliveries"], batch):
        if stop():
            return out
        with sessions.begin() as s:
            # re-checked at delete time: a row retried meanwhile (`deliveries retry`) is pending again
            out.counts["deliveries"] += _rowcount(s.execute(
                delete(Delivery).where(Delivery.id.in_(chunk), Delivery.status.in_(SETTLED))
                .execution_options(synchronize_session=False)))
    return out
