"""Events of the pipeline and a small synchronous bus.

Side effects that must survive a crash are written to the database before an event is published;
subscribers (logging, waking the delivery job) only react, so losing one costs nothing durable.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, TypeVar

log = logging.getLogger("monitor.events")


@dataclass(frozen=True)
class SourcePolled:
    source: str
    items: int
    new_entries: int
    not_modified: bool


@dataclass(frozen=True)
class PollFinished:
    """A poll's end, whatever came of it (after SourcePolled or SourceFailed): how long it took."""

    source: str
    ok: bool
    seconds: float


@dataclass(frozen=True)
class EntryExtracted:
    """The extractor read one fetched item (before it is stored): how long that took."""

    source: str
    seconds: float
    changes: int


@dataclass(frozen=True)
class SourceFailed:
    source: str
    error: str
    failures: int


@dataclass(frozen=True)
class EntryDiscovered:
    source: str
    entry_id: int
    title: str


@dataclass(frozen=True)
class ChangeDetected:
    source: str
    change_id: int
    summary: str


@dataclass(frozen=True)
class ChangeCorroborated:
    source: str
    change_id: int
    entry_id: int


@dataclass(frozen=True)
class ChangeUpdated:
    source: str
    change_id: int
    what: str               # date_set | date_moved | reversed
    old: str | None
    new: str | None


@dataclass(frozen=True)
class DeliveryFinished:
    delivery_id: int
    notifier: str
    ok: bool
    status: str
    error: str | None
    kind: str = "alert"     # alert | update | reminder | ops


Event = (SourcePolled | SourceFailed | EntryDiscovered | ChangeDetected | ChangeCorroborated | ChangeUpdated
         | DeliveryFinished | PollFinished | EntryExtracted)
E = TypeVar("E")


class Bus:
    """Publish/subscribe by event type; a failing subscriber is logged and never stops the others."""

    def __init__(self) -> None:
        self._subs: dict[type, list[Callable[[object], None]]] = defaultdict(list)

    def subscribe(self, kind: type[E], handler: Callable[[E], None]) -> None:
        self._subs[kind].append(handler)  # type: ignore[arg-type]

    def publish(self, event: object) -> None:
        for handler in list(self._subs.get(type(event), ())):
            try:
                handler(event)
            except Exception:  # pragma: no cover - a bug in a subscriber
                log.exception("subscriber %r failed on %r", handler, event)
