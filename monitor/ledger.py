"""The bookkeeping of unchanged polls, written in batches.

A source that answers 304 (or whose content is what was stored) leaves nothing to keep but a
timestamp: its status, last success, next poll, and the release of its lease. Written one
transaction per source, that was most of an unchanged cycle's cost; here a cycle's 304s are queued
and written together, one statement per batch.

Crash-safety: a queued row carries nothing fetched, detected or owed, so losing the queue (a kill
before the flush) loses no entry, change or delivery: the source is simply polled again once its
lease is freed (``App.release_dead_leases`` at the next start) or expires. Everything else a poll
finds is still written by the poll itself, in its own transactions, before it returns.

Outside a batch (``batched``) each row is written at once, as the poll's own transaction: a single
``poll()`` (tests, `once --source`) behaves as it always did.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Callable, Iterator

from sqlalchemy.orm import Session, sessionmaker

from monitor.clock import as_utc
from monitor.sanitize import mask_urls_in
from monitor.store import repo

if TYPE_CHECKING:
    from monitor.notify.planner import Planner

log = logging.getLogger("monitor.pipeline")


class Ledger:
    def __init__(self, sessions: sessionmaker[Session], owner: str, planner: Callable[[], Planner],
                 max_rows: int = 250, max_wait: float = 1.0) -> None:
        self.sessions = sessions
        self.owner = owner
        self.planner = planner
        self.max_rows = max_rows          # a batch is written once it holds this many rows ...
        self.max_wait = max_wait          # ... or its oldest row waited this long (seconds)
        self._lock = threading.Lock()
        self._rows: list[repo.Unchanged] = []
        self._since = 0.0
        self._deferred = 0

    @contextmanager
    def batched(self) -> Iterator[None]:
        """Queue unchanged polls while the block runs (a cycle of `once`); what is queued is
        written on the way out, whatever ends the block."""
        self.start_batching()
        try:
            yield
        finally:
            self.stop_batching()

    def start_batching(self) -> None:
        with self._lock:
            self._deferred += 1

    def stop_batching(self) -> None:
        """Back to writing each row at once, after writing what is queued."""
        with self._lock:
            self._deferred -= 1
        self.flush()

    def unchanged(self, name: str, at: datetime, interval: timedelta, etag: str | None,
                  last_modified: str | None) -> None:
        row = repo.Unchanged(name, at, at + interval, etag, last_modified)
        with self._lock:
            if not self._rows:
                self._since = time.monotonic()
            self._rows.append(row)
            due = (not self._deferred or len(self._rows) >= self.max_rows
                   or time.monotonic() - self._since >= self.max_wait)
        if due:
            self.flush(raising=not self._deferred)

    def pending(self, name: str) -> bool:
        with self._lock:
            return any(r.name == name for r in self._rows)

    def flush_due(self) -> None:
        """Write the queue if its oldest row has waited ``max_wait`` (the daemon's timer)."""
        with self._lock:
            due = bool(self._rows) and time.monotonic() - self._since >= self.max_wait
        if due:
            self.flush()

    def flush(self, raising: bool = False) -> int:
        """Write every queued row in one transaction; the number written."""
        with self._lock:
            rows, self._rows = self._rows, []
        if not rows:
            return 0
        try:
            with self.sessions.begin() as s:
                alerted = repo.ops_alerted_among(s, [r.name for r in rows])
                repo.record_unchanged(s, [r for r in rows if r.name not in alerted], self.owner)
                for r in rows:
                    if r.name in alerted:  # the rare source an operator was told is failing: the full path
                        src = repo.get_source(s, r.name)
                        since = as_utc(src.failing_since)
                        repo.record_success(s, src, r.at, r.next_poll - r.at, r.etag, r.last_modified, 0,
                                            owner=self.owner, warning=src.last_warning)
                        self.planner().on_source_recovered(s, src, since, r.at)
        except Exception as exc:
            if raising:
                raise
            log.warning("could not record %d unchanged poll%s (source=%s ...): %s: %s; those sources are "
                        "polled again when their leases end", len(rows), "s" * (len(rows) != 1),
                        ",".join(r.name for r in rows[:3]), type(exc).__name__, mask_urls_in(str(exc))[:300])
            log.debug("unchanged polls not recorded", exc_info=True)
            return 0
        return len(rows)
