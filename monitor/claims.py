"""`once` claims its sources a few dozen at a time, just ahead of the workers that poll them.

One conditional UPDATE per chunk (``repo.claim_polls``) instead of one transaction per source: with
every source unchanged, the claims were a third of a cycle. A chunk is claimed when a worker first
asks for one of its sources, so a lease is never held long before its poll starts (a chunk is twice
the number of workers); whatever was claimed and then not polled (Ctrl-C) is released by
``release_unpolled``.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Sequence

from monitor import clock
from monitor.store import repo

if TYPE_CHECKING:
    from monitor.app import App
    from monitor.config import SourceConfig


class Claims:
    def __init__(self, app: App, sources: Sequence[SourceConfig], chunk: int) -> None:
        self.app = app
        self.sources = list(sources)
        self.chunk = max(1, chunk)
        self._index = {cfg.name: i for i, cfg in enumerate(self.sources)}
        self._asked: set[str] = set()       # claimed (or tried) already
        self._held: dict[str, repo.PollState] = {}
        self._lock = threading.Lock()

    def take(self, cfg: SourceConfig) -> repo.PollState | None:
        """This source's poll state if this process holds its lease now, else None (another
        worker polls it)."""
        with self._lock:
            if cfg.name not in self._asked:
                self._claim_from(self._index[cfg.name])
            return self._held.pop(cfg.name, None)

    def _claim_from(self, start: int) -> None:
        batch = [c for c in self.sources[start:] if c.name not in self._asked][:self.chunk]
        lease = max(self.app.lease_for(c) for c in batch)
        with self.app.sessions.begin() as s:
            self._held.update(repo.claim_polls(s, [c.name for c in batch], self.app.owner, clock.utcnow(), lease))
        self._asked.update(c.name for c in batch)

    def release_unpolled(self) -> int:
        """Give back the leases claimed and never polled (the run was interrupted)."""
        with self._lock:
            names, self._held = list(self._held), {}
        if not names:
            return 0
        with self.app.sessions.begin() as s:
            return repo.free_leases(s, [(n, self.app.owner) for n in names])
