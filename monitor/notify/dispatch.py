"""Delivery of the outbox: what is due is claimed, rendered, sent through apprise, and its outcome
recorded in the same transaction, so a crash never loses a delivery (at worst it is sent again).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from monitor import clock
from monitor.config import Config
from monitor.events import Bus, DeliveryFinished
from monitor.extract.lexicon import Lexicon
from monitor.notify import channels
from monitor.notify.message import render_alert
from monitor.store import repo

log = logging.getLogger("monitor.notify")


@dataclass
class DeliveryReport:
    sent: int = 0
    failed: int = 0
    dead: int = 0
    errors: list[str] = field(default_factory=list)


def deliver_due(sessions: sessionmaker[Session], config: Config, lexicon: Lexicon, bus: Bus | None = None,
                limit: int = 1000) -> DeliveryReport:
    """Send every delivery that is due now, one row per transaction."""
    notifiers = {n.name: n for n in config.settings.notify}
    policy = config.settings.delivery
    report = DeliveryReport()
    tried: set[int] = set()
    for _ in range(limit):
        with sessions.begin() as session:
            now = clock.utcnow()
            d = repo.claim_due(session, now, tried)
            if d is None:
                break
            tried.add(d.id)
            notifier = notifiers.get(d.notifier)
            if notifier is None or not notifier.enabled:
                result = channels.SendResult(False, f"notifier {d.notifier!r} is not configured or is disabled")
            elif d.change is None:
                result = channels.SendResult(False, "the change of this delivery no longer exists")
            else:
                change = repo.get_change(session, d.change_id) if d.change_id is not None else None
                assert change is not None
                msg = render_alert(change, lexicon, clock.now())
                result = channels.send(notifier.url, msg.title, msg.body)
            if result.ok:
                repo.mark_sent(d, now)
                report.sent += 1
                log.info("delivered %s #%s of change #%s to notifier=%s", d.kind, d.id, d.change_id, d.notifier)
            else:
                repo.mark_failed(d, now, result.error or "failed", policy.max_attempts, policy.retry_after,
                                 policy.max_retry_after)
                if d.status == "dead":
                    report.dead += 1
                else:
                    report.failed += 1
                report.errors.append(f"notifier {d.notifier}: {result.error}")
                log.warning("delivery #%s to notifier=%s failed (attempt %s, now %s): %s", d.id, d.notifier,
                            d.attempts, d.status, result.error)
            event = DeliveryFinished(d.id, d.notifier, result.ok, d.status, result.error)
        if bus:
            bus.publish(event)
    return report
