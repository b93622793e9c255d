"""What the daemon tells the outside about itself: counts of what it did (the heartbeat log line and
systemd's ``STATUS=``), the state of the database behind them, and whether its polling loop is alive
(systemd's watchdog, ``/healthz``).

The counts come from the event bus, so they cost the polls nothing; the figures that live in the
database (failing sources, deliveries pending and dead) are read when a line is written, so they
are true even with several daemons sharing one database.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from monitor import clock
from monitor.events import Bus, ChangeDetected, DeliveryFinished, SourceFailed, SourcePolled
from monitor.store.models import Delivery, Source
from monitor.store.repo import DUE


@dataclass(frozen=True)
class DatabaseCounts:
    """The figures of the shared database: per-source last success, failing sources, the outbox."""

    failing: int
    pending: int
    dead: int
    last_success: dict[str, datetime | None]


def database_counts(session: Session, sources: Sequence[str]) -> DatabaseCounts:
    """Counts over the configured ``sources`` (a source removed from the config no longer counts)."""
    rows = session.execute(select(Source.name, Source.status, Source.last_success)
                           .where(Source.name.in_(list(sources)))).all()
    outbox = dict(session.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all())
    return DatabaseCounts(
        failing=sum(1 for _n, status, _s in rows if status == "failing"),
        pending=sum(int(outbox.get(status, 0)) for status in DUE),
        dead=int(outbox.get("dead", 0)),
        last_success={name: clock.as_utc(last) for name, _st, last in rows},
    )


@dataclass
class Tally:
    """What happened between two heartbeats (or since the start)."""

    polls: int = 0
    failed: int = 0
    sources: set[str] = field(default_factory=set)
    changes: int = 0
    sent: int = 0
    not_sent: int = 0
    dead: int = 0


class Counts:
    """Counts the bus's events: one tally since the last heartbeat, one since the start."""

    def __init__(self, bus: Bus) -> None:
        self._lock = threading.Lock()
        self.since_last = Tally()
        self.total = Tally()
        bus.subscribe(SourcePolled, lambda e: self._add(source=e.source))
        bus.subscribe(SourceFailed, lambda e: self._add(source=e.source, failed=1))
        bus.subscribe(ChangeDetected, lambda e: self._add(changes=1))
        bus.subscribe(DeliveryFinished, lambda e: self._add(
            sent=int(e.ok), not_sent=int(not e.ok), dead=int(e.status == "dead")))

    def _add(self, source: str | None = None, failed: int = 0, changes: int = 0, sent: int = 0,
             not_sent: int = 0, dead: int = 0) -> None:
        with self._lock:
            for t in (self.since_last, self.total):
                if source is not None:
                    t.polls += 1
                    t.sources.add(source)
                t.failed += failed
                t.changes += changes
                t.sent += sent
                t.not_sent += not_sent
                t.dead += dead

    def take(self) -> Tally:
        """The tally since the last call, starting a new one."""
        with self._lock:
            taken, self.since_last = self.since_last, Tally()
        return taken


def _state(db: DatabaseCounts | None) -> str:
    return (f"{db.failing} failing, {db.pending} deliveries pending, {db.dead} dead"
            if db is not None else "database unreadable")


def heartbeat_line(t: Tally, db: DatabaseCounts | None, sources: int, span: str) -> str:
    """One line saying what the daemon did in ``span``; the database figures are now's."""
    state = _state(db)
    return (f"heartbeat: last {span}: polled {len(t.sources)} of {sources} sources ({t.polls} polls, "
            f"{t.failed} failed), {t.changes} changes found, {t.sent} deliveries sent, {t.not_sent} not sent "
            f"({t.dead} gave up); now: {state}")


def status_line(t: Tally, db: DatabaseCounts | None, sources: int) -> str:
    """systemd's one-line ``STATUS=`` (shown by ``systemctl status``): totals since the start."""
    return f"{sources} sources, {_state(db)}; since start: {t.polls} polls, {t.changes} changes found, {t.sent} sent"


class Liveness:
    """Proof that the polling loop makes progress: the scheduler's tick job and every poll or delivery
    job that ends call ``beat()``, on the executor the polls run on. The watchdog is pinged only from
    there, so a scheduler that stopped dispatching, or an executor whose every thread is stuck, stops
    the pings and systemd restarts the daemon."""

    def __init__(self, ping_every: float | None, ping: Callable[[], object] | None = None) -> None:
        self.last_beat = time.monotonic()
        self.ping_every = ping_every
        self._ping = ping
        self._last_ping = 0.0
        self._lock = threading.Lock()

    def beat(self) -> None:
        now = time.monotonic()
        self.last_beat = now
        if self._ping is None or self.ping_every is None:
            return
        with self._lock:
            # Jobs ending in a busy executor beat often: ping at most twice per period.
            if now - self._last_ping < self.ping_every / 2:
                return
            self._last_ping = now
        self._ping()

    def silent_for(self) -> float:
        return time.monotonic() - self.last_beat

