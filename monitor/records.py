"""The JSON shapes of the change log, sources, entries and deliveries, in one place: the CLI's
``--format json`` and the HTTP API (``/api/...``) both build their objects here, so a script reads
the same keys from either (spec/interface.md lists them)."""

from __future__ import annotations

from typing_extensions import TypedDict  # pydantic (the API's schema) needs this one before Python 3.12

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Sequence

from sqlalchemy.orm import Session

from monitor.output import iso
from monitor.sanitize import mask_urls_in
from monitor.store.models import Change, Delivery, Entry, Mention, Source

if TYPE_CHECKING:
    from monitor.config import SourceConfig

def public_url(text: str | None) -> str | None:
    """A URL (or an error message that quotes one) without the secrets a URL may carry (userinfo,
    query values): source URLs are shown on pages anyone with access to the server reads."""
    if text is None:
        return None
    return mask_urls_in(text)


class SourceRef(TypedDict):
    """An article that reports a change: its source's name, its title, link and publication time."""

    source: str
    title: str
    url: str | None
    published: str | None


class HistoryItem(TypedDict):
    """A later report or a person's correction that altered the change (what: date_set, date_moved,
    reversed, withdrawn, date_corrected, platform_corrected, action_corrected)."""

    at: str | None
    what: str
    old: str | None
    new: str | None
    evidence: str


class ChangeRecord(TypedDict):
    """One real-world link-policy change (spec/interface.md, CHANGE plus id, first_seen, sources);
    dates are YYYY-MM-DD, times ISO 8601 in UTC."""

    id: int
    platform: str
    targets: list[str]
    action: str
    link_type: str
    effective_date: str | None
    evidence: str
    confidence: float
    first_seen: str | None
    sources: list[SourceRef]
    status: str
    found_by: str
    history: list[HistoryItem]


class SourceRecord(TypedDict):
    """A configured source and its health."""

    name: str
    kind: str
    url: str | None
    status: str
    last_polled: str | None
    last_error: str | None
    warning: str | None
    entries_seen: int
    next_poll: str | None
    failures: int
    changes: int


class EntryRecord(TypedDict):
    """One item a source yielded, with the number of changes found in it."""

    id: int
    source: str
    title: str
    url: str | None
    published: str | None
    changes: int


class DeliveryRecord(TypedDict):
    """One message (alert, update, reminder, ops) owed to one notifier, and how it went."""

    id: int
    change_id: int | None
    notifier: str
    kind: str
    status: str
    attempts: int
    last_error: str | None
    next_attempt: str | None
    sent_at: str | None


@dataclass(frozen=True)
class Report:
    """The article behind one mention, as every reader shows it (JSON, pages, feeds, messages)."""

    source: str
    title: str
    url: str | None
    published: datetime | None
    entry: Entry | None   # None once retention has removed the entry (and its text)


def report_of(m: Mention) -> Report:
    """The mention's article: from its entry while there is one, else from the copy the mention
    keeps, so a change shows the same sources before and after retention prunes its entries."""
    e = m.entry
    if e is not None:
        return Report(e.source.name, e.title, e.url, e.published, e)
    return Report(m.source_name, m.title, m.url, m.published, None)


def change_record(c: Change) -> ChangeRecord:
    """A change as ``changes --format json`` prints it and ``/api/changes`` serves it."""
    sources: list[SourceRef] = []
    for m in c.mentions:
        r = report_of(m)
        sources.append({"source": r.source, "title": r.title, "url": r.url, "published": iso(r.published)})
    return {
        "id": c.id, "platform": c.platform, "targets": list(c.targets or []), "action": c.action,
        "link_type": c.link_type, "effective_date": iso(c.effective_date), "evidence": c.evidence,
        "confidence": round(c.confidence, 3), "first_seen": iso(c.first_seen), "sources": sources,
        "status": c.status, "found_by": c.found_by,
        "history": [{"at": iso(h.at), "what": h.kind, "old": h.old_value, "new": h.new_value,
                     "evidence": h.evidence} for h in c.history],
    }


def source_record(r: Source, enabled: bool = True, changes: int | None = None) -> SourceRecord:
    """A source's health as ``sources --format json`` prints it and ``/api/sources`` serves it;
    ``changes`` is the number of changes (not withdrawn) its entries report."""
    return {"name": r.name, "kind": r.kind, "url": public_url(r.url),
            "status": r.status if enabled else "disabled", "last_polled": iso(r.last_polled),
            "last_error": public_url(r.last_error), "warning": r.last_warning, "entries_seen": r.entries_seen,
            "next_poll": iso(r.next_poll),
            "failures": r.failures, "changes": changes or 0}


def source_records(session: Session, configured: Sequence[SourceConfig]) -> list[SourceRecord]:
    """Every configured source's health, with the number of changes its entries report: what
    `sources`, `/sources` and `/api/sources` list (a source dropped from the config is not shown)."""
    from monitor.store import repo

    enabled = {s.name: s.enabled for s in configured}
    counts = repo.source_change_counts(session)
    return [source_record(r, enabled[r.name], counts.get(r.id)) for r in repo.list_sources(session) if r.name in enabled]


def entry_record(e: Entry) -> EntryRecord:
    """What a source yielded, as ``entries --format json`` prints it and ``/api/entries`` serves it."""
    return {"id": e.id, "source": e.source.name, "title": e.title, "url": e.url, "published": iso(e.published),
            "changes": e.changes_found}


def delivery_record(d: Delivery) -> DeliveryRecord:
    """An outbox row as ``deliveries --format json`` prints it and ``/api/changes/{id}`` lists it."""
    return {"id": d.id, "change_id": d.change_id, "notifier": d.notifier, "kind": d.kind, "status": d.status,
            "attempts": d.attempts, "last_error": public_url(d.last_error),
            # sent, dead, unknown: no attempt is planned, whatever the column still holds
            "next_attempt": iso(d.next_attempt) if d.status in ("pending", "failed") else None,
            "sent_at": iso(d.sent_at)}
