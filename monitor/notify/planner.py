"""What is owed to whom, and when: alerts, updates, reminders and operator messages become outbox
rows in the same transaction as the change (or the source state) that causes them.

Routing lives here (a notifier's platforms, targets, actions, link types, confidence), and so does
timing: digests wait for the end of their period, reminders for their day, and a reminder whose time
had already passed when the change was found is never planned (it would only arrive late).
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Callable, Sequence
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from monitor.clock import as_utc
from monitor.config import NotifierConfig, Settings
from monitor.extract.lexicon import Lexicon
from monitor.sanitize import mask_url
from monitor.store import repo
from monitor.store.models import Change, Delivery, Source


def wants(notifier: NotifierConfig, change: Change) -> bool:
    """Whether a notifier's filters select this change."""
    if not notifier.enabled:
        return False
    if notifier.platforms and change.platform not in notifier.platforms:
        return False
    if notifier.targets and not set(notifier.targets) & set(change.targets or []):
        return False
    if notifier.actions and change.action not in notifier.actions:
        return False
    if notifier.link_types and change.link_type not in notifier.link_types:
        return False
    return change.confidence >= notifier.min_confidence


def digest_slot(notifier: NotifierConfig, now: datetime) -> datetime:
    """When a message for a digest notifier goes out: the end of the current period (UTC-aligned)."""
    if notifier.digest is None:
        return now
    period = notifier.digest.total_seconds()
    epoch = now.timestamp()
    return datetime.fromtimestamp((epoch // period + 1) * period, tz=timezone.utc)


def _row(change_id: int | None, notifier: str, kind: str, key: str, when: datetime, now: datetime,
         payload: dict[str, Any] | None = None) -> Delivery:
    return Delivery(change_id=change_id, notifier=notifier, kind=kind, key=key, status="pending", attempts=0,
                    next_attempt=when, created_at=now, payload=payload)


def ops_key(event: str, source: str, when: datetime) -> str:
    """The outbox key of an operator message: sized to its column whatever the source's name (up to
    100 characters) — a hash of the event, the source and the time, not the text of them."""
    digest = hashlib.sha256(f"{event}\x1f{source}\x1f{when.isoformat()}".encode("utf-8")).hexdigest()
    return f"{event}:{digest[:48]}"


class Planner:
    def __init__(self, settings: Settings, lexicon: Lexicon | Callable[[], Lexicon]) -> None:
        """``lexicon`` may be given as a function that loads it: a poll cycle with nothing new (or
        only failures) plans nothing that needs it, and is spared compiling it."""
        self.settings = settings
        self._lexicon = lexicon

    @property
    def lexicon(self) -> Lexicon:
        if not isinstance(self._lexicon, Lexicon):
            self._lexicon = self._lexicon()
        return self._lexicon

    @property
    def notifiers(self) -> Sequence[NotifierConfig]:
        return self.settings.notify

    # -- changes -----------------------------------------------------------------------------------
    def on_recorded(self, session: Session, rec: repo.Recorded, now: datetime, backfill: bool = False,
                    reported: datetime | None = None) -> bool:
        """Plan what a recorded statement owes; False when a new change is recorded without an
        alert (old news found by a source's first poll)."""
        if rec.outcome == "created":
            return self.alert(session, rec.change, now, backfill=backfill, reported=reported)
        if rec.outcome in ("date_set", "date_moved", "reversed") and rec.event is not None:
            self.update(session, rec.change, rec.event.id, now)
        return True

    def alert(self, session: Session, change: Change, now: datetime, backfill: bool = False,
              reported: datetime | None = None) -> bool:
        """Alert every notifier that wants the change. Not when it is old news: a change found only by
        re-extraction, or by the first poll of a new source (which holds its whole archive), alerts
        only while its effective date (for the first poll, else its report's date) is ahead or at
        most extract.alert_window back."""
        if change.found_by == "reextract" and not self._still_relevant(change, now):
            return False  # an extractor upgrade found an old change: recorded, but it is not news
        if backfill and not self._still_relevant(change, now, reported):
            return False
        for n in self.notifiers:
            if wants(n, change):
                session.add(_row(change.id, n.name, "alert", "", digest_slot(n, now), now))
                if n.reminders:
                    self._plan_reminders(session, change, n, now)
        return True

    def update(self, session: Session, change: Change, event_id: int, now: datetime) -> None:
        """One update message to every notifier that was told of the change; reminders follow the
        change: cancelled when it is reversed, re-planned when its date moves."""
        told = {d.notifier for d in repo.owed(session, change.id, "alert")}
        repo.cancel_reminders(session, change.id, "the change was reversed" if change.status == "reversed"
                              else "the effective date changed")
        for n in self.notifiers:
            if n.name in told and n.enabled:
                session.add(_row(change.id, n.name, "update", f"e{event_id}", digest_slot(n, now), now))
                if n.reminders and change.status == "active":
                    self._plan_reminders(session, change, n, now)

    # -- people's corrections (monitor.labels) -------------------------------------------------------
    def withdrawn(self, session: Session, change: Change, event_id: int, now: datetime) -> int:
        """A person judged the change not to be one: what was not sent yet is cancelled, and the
        notifiers that already received the alert get one update saying so. Returns the updates queued."""
        told = {d.notifier for d in repo.owed(session, change.id, "alert") if d.status == "sent"}
        repo.cancel_due(session, change.id, "a person labelled it not a link-policy change")
        queued = 0
        for n in self.notifiers:
            if n.name in told and n.enabled:
                session.add(_row(change.id, n.name, "update", f"e{event_id}", digest_slot(n, now), now))
                queued += 1
        return queued

    def corrected(self, session: Session, change: Change, event_id: int, now: datetime) -> int:
        """A person corrected the date, platform or action. Notifiers that received the alert get an
        update; an alert not sent yet goes out with the corrected fields (or is cancelled when the
        notifier's filters no longer select the change); a notifier that now selects it and was never
        told gets the alert. Reminders follow the corrected date. Returns the messages queued."""
        alerts = {d.notifier: d for d in repo.owed(session, change.id, "alert")}
        repo.cancel_reminders(session, change.id, "the change was corrected")
        queued = 0
        for n in self.notifiers:
            if not n.enabled:
                continue
            row = alerts.get(n.name)
            selected = wants(n, change) and change.status == "active"
            if row is not None and row.status == "sent":
                session.add(_row(change.id, n.name, "update", f"e{event_id}", digest_slot(n, now), now))
                queued += 1
            elif row is not None and row.status in repo.DUE:
                if not selected:
                    row.status, row.last_error = "cancelled", "a correction took the change out of this notifier's filters"
                    continue
            elif row is None and selected and (change.found_by != "reextract" or self._still_relevant(change, now)):
                session.add(_row(change.id, n.name, "alert", "", digest_slot(n, now), now))
                queued += 1
            else:
                continue
            if selected and n.reminders:
                self._plan_reminders(session, change, n, now)
        return queued

    def _still_relevant(self, change: Change, now: datetime, reported: datetime | None = None) -> bool:
        cutoff = now - self.settings.extract.alert_window
        if change.effective_date is None:
            reported = as_utc(reported)
            return reported is not None and reported >= cutoff
        return change.effective_date >= cutoff.date()

    def reminder_times(self, change: Change) -> list[tuple[timedelta, datetime]]:
        """Each configured offset before the effective date, at the configured local time of day."""
        if change.effective_date is None:
            return []
        p = self.lexicon.platforms.get(change.platform)
        tz = ZoneInfo(p.tz) if p and p.tz else timezone.utc
        hh, mm = (int(x) for x in self.settings.reminders.at.split(":"))
        out = []
        for offset in self.settings.reminders.offsets:
            day: date = change.effective_date - timedelta(days=offset.days)
            local = datetime.combine(day, time(hh, mm), tzinfo=tz) - timedelta(seconds=offset.seconds)
            out.append((offset, local.astimezone(timezone.utc)))
        return out

    def _plan_reminders(self, session: Session, change: Change, n: NotifierConfig, now: datetime) -> None:
        for offset, when in self.reminder_times(change):
            if when <= now:
                continue  # its time had passed when the change was found: skipped, never sent late
            key = f"{offset.days}d@{change.effective_date}"
            payload = {"days_before": offset.days, "at": when.isoformat()}
            earlier = repo.find_delivery(session, change.id, n.name, "reminder", key)
            if earlier is None:
                session.add(_row(change.id, n.name, "reminder", key, when, now, payload))
            elif earlier.status == "cancelled":
                # the date moved away and back: the same reminder is owed again
                earlier.status, earlier.attempts, earlier.next_attempt, earlier.last_error = "pending", 0, when, None

    # -- sources -----------------------------------------------------------------------------------
    def on_source_failed(self, session: Session, source: Source, now: datetime) -> None:
        """One operator message when a source has been failing longer than ops.failing_after."""
        since = as_utc(source.failing_since)
        if since is None or source.ops_alerted or now - since < self.settings.ops.failing_after:
            return
        source.ops_alerted = True
        payload = {"event": "failing", "source": source.name, "url": mask_url(source.url), "error": source.last_error,
                   "since": since.isoformat(), "failures": source.failures}
        for n in self.notifiers:
            if n.ops and n.enabled:
                session.add(_row(None, n.name, "ops", ops_key("fail", source.name, since), now, now, payload))

    def on_source_recovered(self, session: Session, source: Source, since: datetime | None, now: datetime) -> None:
        """One operator message when a source that was reported failing works again."""
        if not source.ops_alerted:
            return
        source.ops_alerted = False
        payload = {"event": "recovered", "source": source.name, "url": mask_url(source.url),
                   "since": since.isoformat() if since else None}
        for n in self.notifiers:
            if n.ops and n.enabled:
                session.add(_row(None, n.name, "ops", ops_key("ok", source.name, now), now, now, payload))
