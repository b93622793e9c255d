"""The database schema as SQLAlchemy 2 typed models.

Every piece of state lives here (poll state, entries, changes, the outbox) so a restart, or a second
worker sharing the same PostgreSQL, resumes from the rows alone.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: DateTime(timezone=True), dict[str, Any]: JSON, list[Any]: JSON}


class Source(Base):
    """A configured source and its poll state (conditional-GET validators, health, backoff)."""

    __tablename__ = "sources"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    url: Mapped[str] = mapped_column(Text)
    etag: Mapped[str | None] = mapped_column(Text)
    last_modified: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="never")
    last_polled: Mapped[datetime | None]
    last_success: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    failing_since: Mapped[datetime | None]
    next_poll: Mapped[datetime | None]
    entries_seen: Mapped[int] = mapped_column(Integer, default=0)
    ops_alerted: Mapped[bool] = mapped_column(Boolean, default=False)
    # A poll in progress is leased: one worker (daemon or `once`) writes its id and an expiry with a
    # conditional UPDATE, and another may take the source only once the lease has expired.
    lease_owner: Mapped[str | None] = mapped_column(String(120))
    lease_until: Mapped[datetime | None]
    # What the last successful poll wants the user to know (text that still looks garbled, items
    # dropped over the cap); shown by `sources`.
    last_warning: Mapped[str | None] = mapped_column(Text)

    entries: Mapped[list[Entry]] = relationship(back_populates="source")


class PageVersion(Base):
    """One stored version of a watched page (its stable text), so changes can be diffed and shown."""

    __tablename__ = "page_versions"
    __table_args__ = (Index("ix_page_versions_source", "source_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"))
    fetched_at: Mapped[datetime]
    content_hash: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text)
    entry_id: Mapped[int | None] = mapped_column(ForeignKey("entries.id", ondelete="SET NULL"), index=True)


class Entry(Base):
    """One item a source yielded, stored once however often the source repeats it."""

    __tablename__ = "entries"
    __table_args__ = (
        UniqueConstraint("source_id", "guid"),
        Index("ix_entries_source_canonical", "source_id", "canonical_url"),
        Index("ix_entries_source_hash", "source_id", "content_hash"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"))
    guid: Mapped[str] = mapped_column(String(512))
    url: Mapped[str | None] = mapped_column(Text)
    canonical_url: Mapped[str | None] = mapped_column(String(1024))
    content_hash: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(Text, default="")
    published: Mapped[datetime | None]
    lang: Mapped[str | None] = mapped_column(String(8))
    body: Mapped[str] = mapped_column(Text, default="")
    discovered_at: Mapped[datetime]
    changes_found: Mapped[int] = mapped_column(Integer, default=0)

    source: Mapped[Source] = relationship(back_populates="entries")
    mentions: Mapped[list[Mention]] = relationship(back_populates="entry")


class PrunedEntry(Base):
    """What dedup needs of an entry retention removed (its GUID, canonical URL and content hash, not
    its text): an item still listed by its feed is then still known, and never reported again."""

    __tablename__ = "pruned_entries"
    __table_args__ = (
        Index("ix_pruned_entries_source_guid", "source_id", "guid"),
        Index("ix_pruned_entries_source_canonical", "source_id", "canonical_url"),
        Index("ix_pruned_entries_source_hash", "source_id", "content_hash"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"))
    guid: Mapped[str] = mapped_column(String(512))
    canonical_url: Mapped[str | None] = mapped_column(String(1024))
    content_hash: Mapped[str] = mapped_column(String(64))
    pruned_at: Mapped[datetime]


class Change(Base):
    """One real-world link-policy change, however many articles report it."""

    __tablename__ = "changes"
    __table_args__ = (
        Index("ix_changes_identity", "platform", "action"),
        # The change log's pages (newest first, overall and per platform), the feed (by update) and
        # the calendar (by effective date) read ranges of these, not the whole table.
        Index("ix_changes_seen", "first_seen", "id"),
        Index("ix_changes_platform_seen", "platform", "first_seen", "id"),
        Index("ix_changes_updated", "updated_at"),
        Index("ix_changes_effective", "effective_date"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    platform: Mapped[str] = mapped_column(String(64))
    targets: Mapped[list[Any]] = mapped_column(JSON, default=list)
    action: Mapped[str] = mapped_column(String(16))
    link_type: Mapped[str] = mapped_column(String(32))
    effective_date: Mapped[date | None] = mapped_column(Date)
    evidence: Mapped[str] = mapped_column(Text, default="")
    confidence: Mapped[float] = mapped_column(Float)
    first_seen: Mapped[datetime]
    updated_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), default="active")   # active | reversed | withdrawn
    found_by: Mapped[str] = mapped_column(String(16), default="poll")    # poll | reextract

    mentions: Mapped[list[Mention]] = relationship(back_populates="change", order_by="Mention.id")
    history: Mapped[list[ChangeEvent]] = relationship(back_populates="change", order_by="ChangeEvent.id")


class Mention(Base):
    """An entry reporting a change: the evidence of one article for one change."""

    __tablename__ = "mentions"
    __table_args__ = (UniqueConstraint("change_id", "entry_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    change_id: Mapped[int] = mapped_column(ForeignKey("changes.id", ondelete="CASCADE"), index=True)
    # None once retention has removed the entry: the report itself stays, with the copy below.
    entry_id: Mapped[int | None] = mapped_column(ForeignKey("entries.id", ondelete="SET NULL"), index=True)
    evidence: Mapped[str] = mapped_column(Text, default="")
    effective_date: Mapped[date | None] = mapped_column(Date)
    confidence: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime]
    # The reporting article as the change log shows it (its source, title, link and date), copied
    # when the mention is made: the change keeps its sources after retention prunes the entry.
    source_name: Mapped[str] = mapped_column(String(100), default="")
    title: Mapped[str] = mapped_column(Text, default="")
    url: Mapped[str | None] = mapped_column(Text)
    published: Mapped[datetime | None]

    change: Mapped[Change] = relationship(back_populates="mentions")
    entry: Mapped[Entry | None] = relationship(back_populates="mentions")


class ChangeEvent(Base):
    """The history of a change: what a later report altered (its date, its reversal), and which entry said so."""

    __tablename__ = "change_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    change_id: Mapped[int] = mapped_column(ForeignKey("changes.id", ondelete="CASCADE"), index=True)
    # indexed: removing an entry (retention) sets this to NULL, which must not scan the table
    entry_id: Mapped[int | None] = mapped_column(ForeignKey("entries.id", ondelete="SET NULL"), index=True)
    kind: Mapped[str] = mapped_column(String(32))          # date_moved | reversed | date_set
    old_value: Mapped[str | None] = mapped_column(Text)
    new_value: Mapped[str | None] = mapped_column(Text)
    evidence: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime]

    change: Mapped[Change] = relationship(back_populates="history")


class Label(Base):
    """A person's judgement of a change ("not a link-policy change", "the date is 2022-03-01"): applied
    to the change, kept across re-extraction, and exported with its articles as training data."""

    __tablename__ = "labels"

    id: Mapped[int] = mapped_column(primary_key=True)
    change_id: Mapped[int] = mapped_column(ForeignKey("changes.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))           # not_a_change | date | platform | action
    value: Mapped[str | None] = mapped_column(String(64))   # the corrected value; None for not_a_change
    previous: Mapped[str | None] = mapped_column(String(64))  # what the extractor had said
    by: Mapped[str] = mapped_column(String(32), default="cli")  # cli | web
    created_at: Mapped[datetime]

    change: Mapped[Change] = relationship()


class Delivery(Base):
    """An outbox row: one message (alert, update, reminder, ops) owed to one notifier.

    Written in the same transaction as the change it announces; ``(change, notifier, kind, key)`` is
    unique, so a change is announced once per notifier however many articles report it.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("change_id", "notifier", "kind", "key"),
        Index("ix_outbox_due", "status", "next_attempt"),
        Index("ix_outbox_change", "change_id"),   # a change's deliveries, on its web page
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    change_id: Mapped[int | None] = mapped_column(ForeignKey("changes.id", ondelete="CASCADE"))
    notifier: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16), default="alert")
    key: Mapped[str] = mapped_column(String(64), default="")
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt: Mapped[datetime]
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)   # ops messages: source, error, since

    change: Mapped[Change | None] = relationship()
