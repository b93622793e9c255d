"""Delivery of the outbox: each notifier is served by its own worker, so a failing or hung channel
never delays another. A due row is claimed, rendered in the notifier's language and the channel's
format, sent through apprise within a time limit, and its outcome recorded right after the send: a
crash never loses a delivery (killed between the channel's accept and that commit, it is sent again:
the at-least-once window). A send that times out is *unknown*, not failed: it may have gone out, so
it is never retried on its own (that is how a slow SMTP server ended up with three copies of each
alert); if it completes while the process still runs, the row records that.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable

from sqlalchemy.orm import Session, sessionmaker

from monitor import clock
from monitor.config import Config, NotifierConfig
from monitor.events import Bus, DeliveryFinished
from monitor.notify import channels
from monitor.notify.render import Message, Renderer
from monitor.store import repo
from monitor.store.models import Delivery

log = logging.getLogger("monitor.notify")
#: A reminder more than this late (the daemon was down on the day) is skipped rather than sent.
REMINDER_GRACE = timedelta(hours=24)


@dataclass
class DeliveryReport:
    sent: int = 0
    failed: int = 0
    dead: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, other: "DeliveryReport") -> None:
        self.sent += other.sent
        self.failed += other.failed
        self.dead += other.dead
        self.errors += other.errors


class Dispatcher:
    def __init__(self, sessions: sessionmaker[Session], config: Config, renderer: Renderer,
                 bus: Bus | None = None) -> None:
        self.sessions = sessions
        self.config = config
        self.renderer = renderer
        self.bus = bus
        self.notifiers = {n.name: n for n in config.settings.notify}

    def deliver_due(self) -> DeliveryReport:
        """Send everything due now, one worker per notifier."""
        with self.sessions() as s:
            names = repo.due_notifiers(s, clock.utcnow())
        report = DeliveryReport()
        if not names:
            return report
        with ThreadPoolExecutor(max_workers=min(8, len(names)), thread_name_prefix="deliver") as pool:
            for r in pool.map(self._serve, names):
                report.add(r)
        return report

    # -- one notifier ------------------------------------------------------------------------------
    @property
    def _lease(self) -> timedelta:
        return self.config.settings.delivery.timeout * 2 + timedelta(seconds=30)

    def _serve(self, name: str) -> DeliveryReport:
        report = DeliveryReport()
        notifier = self.notifiers.get(name)
        try:
            if notifier is not None and notifier.digest is not None:
                self._digest(notifier, report)
            while True:
                with self.sessions.begin() as s:
                    rows = repo.claim_due(s, clock.utcnow(), name, self._lease)
                    if not rows:
                        break
                    d = rows[0]
                    delivery_id = d.id
                    outcome = self._prepare(s, d, notifier)
                    if isinstance(outcome, channels.SendResult):  # decided without sending
                        self._finish(d, outcome, report, final=True)
                        continue
                    if outcome is None:                           # skipped
                        continue
                assert notifier is not None
                result = channels.send_bounded(notifier.url, outcome.title, outcome.body, outcome.format,
                                               self.config.settings.delivery.timeout.total_seconds(),
                                               late=self._late([delivery_id]))
                with self.sessions.begin() as s:
                    row = s.get(Delivery, delivery_id)
                    if row is not None:
                        self._finish(row, result, report)
        except Exception:  # a bug or a database outage: the rows stay due and are retried next pass
            log.exception("delivery to notifier=%s crashed; its outbox is intact", name)
        return report

    def _prepare(self, s: Session, d: Delivery, notifier: NotifierConfig | None
                 ) -> Message | channels.SendResult | None:
        """The message to send for ``d``; or a final failure; or None when it is skipped."""
        now = clock.utcnow()
        if notifier is None or not notifier.enabled:
            return channels.SendResult(False, f"notifier {d.notifier!r} is not configured or is disabled")
        scheduled = d.created_at if d.kind != "reminder" else (d.payload or {}).get("at")
        if d.kind == "reminder" and d.attempts == 0 and scheduled:
            late = now - datetime.fromisoformat(str(scheduled))
            if late > REMINDER_GRACE:
                d.status, d.last_error = "skipped", "too late: the reminder's time passed while nothing was running"
                return None
        message = self._message(s, d, notifier)
        if message is None:
            return channels.SendResult(False, "the change of this delivery no longer exists")
        return message

    def _format(self, notifier: NotifierConfig) -> tuple[str, int | None]:
        channel = channels.describe(notifier.url)
        return (channel.format if notifier.format == "auto" else notifier.format), channel.body_limit

    def _message(self, s: Session, d: Delivery, notifier: NotifierConfig) -> Message | None:
        fmt, budget = self._format(notifier)
        now = clock.now()
        if d.kind == "ops":
            return self.renderer.render("ops", notifier.lang, fmt, now, ops=d.payload or {}, budget=budget)
        change = repo.get_change(s, d.change_id) if d.change_id is not None else None
        if change is None:
            return None
        event = self._event(change, d) if d.kind == "update" else None
        days = (d.payload or {}).get("days_before") if d.kind == "reminder" else None
        return self.renderer.render(d.kind, notifier.lang, fmt, now, change=change, event=event, days_before=days,
                                    budget=budget)

    def _event(self, change: object, d: Delivery) -> dict[str, str | None]:
        from monitor.notify.render import WORDS

        key = d.key[1:] if d.key.startswith("e") else ""
        for ev in getattr(change, "history", []):
            if str(ev.id) == key:
                lang = self.notifiers[d.notifier].lang if d.notifier in self.notifiers else "en"
                new_word = WORDS[lang]["action"].get(ev.new_value or "", ev.new_value)
                return {"kind": ev.kind, "old": ev.old_value, "new": ev.new_value, "new_word": new_word}
        return {"kind": "date_set", "old": None, "new": None, "new_word": None}

    def _digest(self, notifier: NotifierConfig, report: DeliveryReport) -> None:
        """All alerts and updates due for a digest notifier go out as one message."""
        with self.sessions.begin() as s:
            rows = repo.claim_due(s, clock.utcnow(), notifier.name, self._lease, limit=500, kinds=("alert", "update"))
            if not rows:
                return
            ids = [d.id for d in rows]
            items = []
            for d in rows:
                change = repo.get_change(s, d.change_id) if d.change_id is not None else None
                if change is not None:
                    items.append((d.kind, change))
            fmt, budget = self._format(notifier)
            message = self.renderer.render("digest", notifier.lang, fmt, clock.now(), items=items, budget=budget)
        result = channels.send_bounded(notifier.url, message.title, message.body, message.format,
                                       self.config.settings.delivery.timeout.total_seconds(), late=self._late(ids))
        with self.sessions.begin() as s:
            for delivery_id in ids:
                row = s.get(Delivery, delivery_id)
                if row is not None:
                    self._finish(row, result, report)

    def _late(self, ids: list[int]) -> Callable[[channels.SendResult], None]:
        """What to do when a send abandoned at its time limit ends after all."""

        def record(result: channels.SendResult) -> None:
            if not result.ok:
                return  # still unknown: a late error may come after the message was accepted
            confirmed: list[DeliveryFinished] = []
            with self.sessions.begin() as s:
                for delivery_id in ids:
                    row = s.get(Delivery, delivery_id)
                    if row is not None and row.status == "unknown":
                        row.status, row.sent_at = "sent", clock.utcnow()
                        row.last_error = "sent, but answered only after delivery.timeout"
                        log.info("delivery #%s to notifier=%s answered late: sent", row.id, row.notifier,
                                 extra=_ids(row))
                        confirmed.append(DeliveryFinished(row.id, row.notifier, True, "sent", None, row.kind))
            for event in confirmed:  # after the commit: counters and heartbeats see it as sent
                if self.bus:
                    self.bus.publish(event)

        return record

    def _finish(self, d: Delivery, result: channels.SendResult, report: DeliveryReport, final: bool = False) -> None:
        now = clock.utcnow()
        policy = self.config.settings.delivery
        if result.ok:
            repo.mark_sent(d, now)
            report.sent += 1
            log.info("delivered %s #%s (change #%s) to notifier=%s", d.kind, d.id, d.change_id, d.notifier,
                     extra=_ids(d))
        elif result.unknown:
            repo.mark_unknown(d, now, result.error or "timed out")
            report.failed += 1
            report.errors.append(f"notifier {d.notifier}: {result.error}; not retried on its own "
                                 f"(policy-monitor deliveries retry {d.id} sends it again)")
            log.warning("delivery #%s (%s) to notifier=%s is unknown: %s; not retried on its own "
                        "(policy-monitor deliveries retry %s sends it again)", d.id, d.kind, d.notifier, result.error,
                        d.id, extra=_ids(d))
        else:
            repo.mark_failed(d, now, result.error or "failed", 1 if final else policy.max_attempts,
                             policy.retry_after, policy.max_retry_after)
            report.dead += d.status == "dead"
            report.failed += d.status == "failed"
            report.errors.append(f"notifier {d.notifier}: {result.error}")
            log.warning("delivery #%s (%s) to notifier=%s failed, attempt %s, now %s: %s", d.id, d.kind, d.notifier,
                        d.attempts, d.status, result.error, extra=_ids(d))
        if self.bus:
            self.bus.publish(DeliveryFinished(d.id, d.notifier, result.ok, d.status, result.error, d.kind))


def _ids(d: Delivery) -> dict[str, object]:
    """The ids a JSON log line of a delivery carries (see monitor.logs)."""
    return {"delivery_id": d.id, "change_id": d.change_id, "notifier": d.notifier, "kind": d.kind}
