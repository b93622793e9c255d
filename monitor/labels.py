"""People's corrections of the change log: "not a link-policy change", "the date is 2022-03-01",
"the platform is WeChat", "it is a restriction, not a ban".

A correction is recorded as a ``Label`` row, applied to the change at once (withdrawn or updated, with
an update message to the notifiers that were told and reminders re-planned), kept when the extractor
runs again (``repo.record_change`` consults the labels), and exported with the articles behind the
change as corpus lines, so ``policy-monitor train --with-feedback`` learns from a user's own sources.
The CLI (``policy-monitor label``) and the web page call the same ``record``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Iterator

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from monitor import clock
from monitor.clock import as_utc
from monitor.extract.model import ACTIONS
from monitor.store import repo
from monitor.store.models import Change, ChangeEvent, Entry, Label, Mention

KINDS = ("not_a_change", "date", "platform", "action")
_PLATFORM_ID = re.compile(r"^[a-z0-9][a-z0-9_.]{0,63}$")


class LabelError(ValueError):
    """A correction that cannot be applied: an unknown change, a malformed value, nothing to change."""


@dataclass(frozen=True)
class Judgement:
    """What a person says of one change; the fields left at None are not judged."""

    not_a_change: bool = False
    effective_date: date | None = None
    clear_date: bool = False          # "the text gives no date"
    platform: str | None = None
    action: str | None = None

    def empty(self) -> bool:
        return not (self.not_a_change or self.effective_date or self.clear_date or self.platform or self.action)


@dataclass
class Applied:
    """What a correction did, for the command's output and the web page's flash message."""

    change_id: int
    recorded: list[str] = field(default_factory=list)
    updates_queued: int = 0
    unchanged: list[str] = field(default_factory=list)


def parse_platform(value: str) -> str:
    p = value.strip().lower().replace(" ", "_")
    if not _PLATFORM_ID.match(p):
        raise LabelError(f"platform {value!r} is not a platform id (lowercase letters, digits, '_' and '.')")
    return p


def record(session: Session, planner: Any, change_id: int, judgement: Judgement, by: str = "cli") -> Applied:
    """Record and apply a judgement of change ``change_id`` in the caller's transaction.

    ``planner`` is the app's ``notify.planner.Planner`` (typed loosely to keep this module free of the
    notification imports)."""
    if judgement.empty():
        raise LabelError("say what is wrong: --not-a-change, --date, --platform or --action")
    if judgement.action is not None and judgement.action not in ACTIONS:
        raise LabelError(f"action {judgement.action!r} is not one of {', '.join(ACTIONS)}")
    change = session.scalars(select(Change).where(Change.id == change_id).with_for_update()).first()
    if change is None:
        raise LabelError(f"there is no change #{change_id}")
    repo.lock_platforms(session, sorted({change.platform, judgement.platform or change.platform}))
    now = clock.utcnow()
    out = Applied(change_id)

    def label(kind: str, value: str | None, previous: str | None) -> None:
        session.add(Label(change_id=change.id, kind=kind, value=value, previous=previous, by=by, created_at=now))
        out.recorded.append(f"{kind.replace('_', ' ')}" + (f": {previous or '-'} -> {value or '-'}"
                                                          if kind != "not_a_change" else ""))

    def event(kind: str, old: str | None, new: str | None, why: str) -> ChangeEvent:
        ev = ChangeEvent(change_id=change.id, entry_id=None, kind=kind, old_value=old, new_value=new,
                         evidence=why, at=now)
        session.add(ev)
        change.updated_at = now
        session.flush()
        return ev

    who = "on the web page" if by == "web" else "from the command line"
    if judgement.not_a_change:
        if change.status == "withdrawn" and _has_label(session, change.id, "not_a_change"):
            out.unchanged.append("already labelled not a change")
        else:
            label("not_a_change", None, change.status)
            old = change.status
            change.status = "withdrawn"
            ev = event("withdrawn", old, "withdrawn", f"labelled not a link-policy change {who}")
            out.updates_queued += planner.withdrawn(session, change, ev.id, now)
        return out
    if change.status == "withdrawn":
        raise LabelError(f"change #{change_id} is withdrawn; correct a change that is in the log")
    events: list[ChangeEvent] = []
    new_date = None if judgement.clear_date else judgement.effective_date
    if judgement.clear_date or judgement.effective_date is not None:
        old_date = change.effective_date
        if old_date == new_date:
            out.unchanged.append(f"date already {new_date or 'not stated'}")
        else:
            label("date", new_date.isoformat() if new_date else None, old_date.isoformat() if old_date else None)
            change.effective_date = new_date
            events.append(event("date_corrected", old_date.isoformat() if old_date else None,
                                new_date.isoformat() if new_date else None, f"date corrected {who}"))
    if judgement.platform is not None:
        platform = parse_platform(judgement.platform)
        if platform == change.platform:
            out.unchanged.append(f"platform already {platform}")
        else:
            label("platform", platform, change.platform)
            events.append(event("platform_corrected", change.platform, platform, f"platform corrected {who}"))
            change.platform = platform
    if judgement.action is not None:
        if judgement.action == change.action:
            out.unchanged.append(f"action already {change.action}")
        else:
            label("action", judgement.action, change.action)
            events.append(event("action_corrected", change.action, judgement.action, f"action corrected {who}"))
            change.action = judgement.action
    if events:
        # One update message per correction command, naming the last thing corrected; the message
        # itself shows the change as it now stands.
        out.updates_queued += planner.corrected(session, change, events[-1].id, now)
    return out


def _has_label(session: Session, change_id: int, kind: str) -> bool:
    return session.scalar(select(Label.id).where(Label.change_id == change_id, Label.kind == kind).limit(1)) is not None


def list_labels(session: Session) -> list[Label]:
    return list(session.scalars(select(Label).order_by(Label.id)))


def export(session: Session) -> Iterator[dict[str, Any]]:
    """Every judged change as corpus lines (the shape of ../shared/corpus), one per article that
    reports it: the articles of a change labelled "not a change" as negatives, the others as
    positives with the corrected fields. Articles whose text retention has removed are skipped."""
    judged = list(session.scalars(select(Label.change_id).distinct()))
    if not judged:
        return
    changes = session.scalars(select(Change).where(Change.id.in_(judged)).order_by(Change.id).options(
        selectinload(Change.mentions).selectinload(Mention.entry).selectinload(Entry.source))).all()
    notes: dict[int, list[str]] = {}
    for lab in session.scalars(select(Label).where(Label.change_id.in_(judged)).order_by(Label.id)):
        notes.setdefault(lab.change_id, []).append(
            f"{lab.kind}" + (f" {lab.previous or '-'} -> {lab.value or '-'}" if lab.kind != "not_a_change" else "")
            + f" ({lab.by}, {lab.created_at.date().isoformat()})")
    for change in changes:
        negative = change.status == "withdrawn" and any(n.startswith("not_a_change") for n in notes[change.id])
        for m in change.mentions:
            entry = m.entry
            if entry is None:
                continue  # retention removed its text: nothing to learn from
            published = as_utc(entry.published)
            label: dict[str, Any] = {
                "is_link_policy_change": not negative,
                "platform": None if negative else change.platform,
                "targets": [] if negative else list(change.targets or []),
                "action": None if negative else change.action,
                "link_type": None if negative else change.link_type,
                "effective_date": None if negative or not change.effective_date else change.effective_date.isoformat(),
                "evidence": "" if negative else (m.evidence or change.evidence),
                "event_key": None if negative else f"feedback-change-{change.id}",
                "note": "user feedback: " + "; ".join(notes[change.id]),
            }
            yield {
                "id": f"feedback-{entry.id}-{change.id}",
                "source": entry.url or entry.source.name,
                "title": entry.title,
                "published": published.isoformat() if published else None,
                "lang": entry.lang,
                "body": entry.body,
                "label": label,
            }
