"""The long-running daemon: APScheduler runs one interval job per source and one delivery job.

Each source job has jitter (so a hundred sources do not hit the network in the same second), runs
at most one instance at a time, and coalesces missed runs. A poll is claimed by a lease on the
source's row, so two daemons sharing a database never poll one source at once, however short its
interval; a failing source is backed off in the database (``next_poll``), so its job simply skips
until then.

Stopping: the first SIGTERM/SIGINT stops taking work and says so; polls and deliveries in flight get
``daemon.shutdown_grace`` to finish, then the fetches still running are cut off (those polls are
redone at the next start: a poll is idempotent) and the daemon exits 0. A second signal exits at
once.

With ``[http] listen`` set, the same process serves the web pages, API and feeds (as
``policy-monitor serve`` does) from a uvicorn thread, stopped with the rest.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from datetime import timedelta
from typing import TYPE_CHECKING

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from monitor import clock
from monitor.app import App
from monitor.config import SourceConfig
from monitor.events import ChangeDetected
from monitor.pipeline import poll
from monitor.store import repo
from monitor.store.db import shown

if TYPE_CHECKING:
    from monitor.web.server import HTTPServer

log = logging.getLogger("monitor.daemon")


class Daemon:
    def __init__(self, app: App) -> None:
        self.app = app
        workers = app.config.settings.fetch.workers + 1  # the polls, plus the delivery job
        self.stopping = threading.Event()
        self._busy = 0
        self._busy_lock = threading.Lock()
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(workers)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone="UTC",
        )
        # A new change is delivered at once rather than at the next delivery tick.
        app.bus.subscribe(ChangeDetected, lambda _e: self.wake_delivery())
        self.http: HTTPServer | None = None

    def open_http(self) -> None:
        """Bind ``[http] listen`` now, so a taken port stops the start with a clear error."""
        listen = self.app.config.settings.http.listen
        if not listen:
            return
        from monitor.web.app import create_app
        from monitor.web.server import HTTPServer, bind

        self.http = HTTPServer(create_app(self.app), bind(listen))

    def _jitter(self, cfg: SourceConfig) -> timedelta:
        return min(self.app.config.settings.daemon.jitter, cfg.interval / 4)

    def _work(self, delta: int) -> None:
        with self._busy_lock:
            self._busy += delta

    def _poll_job(self, cfg: SourceConfig) -> None:
        if self.stopping.is_set():
            return
        self._work(+1)
        try:
            # Lease the poll in the database: with several daemons sharing one database only one
            # holds it; a failing source is skipped until its backoff ends. A job may fire up to its
            # jitter early; a source polled less than half an interval ago is never due again.
            now = clock.utcnow()
            early = min(self._jitter(cfg) + timedelta(seconds=1), cfg.interval / 2)
            if self.app.ledger.pending(cfg.name):  # its last 304 is still queued, with our lease
                self.app.ledger.flush()
            with self.app.sessions.begin() as s:
                claimed = repo.claim_poll_state(s, cfg.name, self.app.owner, now, self.app.lease_for(cfg),
                                                now + early)
            if claimed is not None and not self.stopping.is_set():
                poll(self.app, cfg, claimed)
            elif claimed is not None:
                with self.app.sessions.begin() as s:
                    repo.release_lease(repo.get_source(s, cfg.name), self.app.owner)
        except Exception:  # the database gone, say: log, and let the next run try again
            log.exception("source=%s poll crashed", cfg.name)
        finally:
            self._work(-1)

    def _deliver_job(self) -> None:
        if self.stopping.is_set():
            return
        self._work(+1)
        try:
            self.app.deliver_due()
        except Exception:
            log.exception("delivery pass crashed; the outbox is intact and will be retried")
        finally:
            self._work(-1)

    def wake_delivery(self) -> None:
        if self.stopping.is_set():
            return
        job = self.scheduler.get_job("deliver")
        if job is not None:
            job.modify(next_run_time=clock.now())

    def schedule(self) -> None:
        settings = self.app.config.settings
        now = clock.now()
        for cfg in settings.sources:
            if not cfg.enabled:
                continue
            with self.app.sessions() as s:
                next_poll = clock.as_utc(repo.get_source(s, cfg.name).next_poll)
            first = max(now, next_poll) if next_poll else now
            self.scheduler.add_job(
                self._poll_job, "interval", args=[cfg], id=f"source:{cfg.name}", name=cfg.name,
                seconds=cfg.interval.total_seconds(), jitter=int(self._jitter(cfg).total_seconds()),
                next_run_time=first,
            )
        self.scheduler.add_job(self._deliver_job, "interval", id="deliver", name="deliver",
                               seconds=settings.daemon.deliver_every.total_seconds(), next_run_time=now)
        # unchanged polls are recorded in batches (monitor.ledger): at most about a second late
        self.scheduler.add_job(self.app.ledger.flush_due, "interval", id="ledger", name="ledger", seconds=0.5)

    def run(self) -> int:
        grace = self.app.config.settings.daemon.shutdown_grace.total_seconds()

        def stop(signum: int, _frame: object) -> None:
            name = signal.Signals(signum).name
            if self.stopping.is_set():
                log.warning("received %s again: exiting now; unfinished polls are redone at the next start", name)
                _exit(128 + signum)
            log.info("received %s: taking no new work; in-flight polls and deliveries get %gs to finish "
                     "(send it again to exit now)", name, grace)
            self.stopping.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        self.app.release_dead_leases()
        self.app.ledger.start_batching()
        self.schedule()
        enabled = [s.name for s in self.app.config.settings.sources if s.enabled]
        log.info("daemon started: %d sources, %d notifiers, database %s", len(enabled),
                 len(self.app.config.settings.notify), shown(self.app.engine.url.render_as_string(hide_password=False)))
        self.scheduler.start()
        if self.http is not None:
            self.http.start()
            log.info("serving %s (%s)", self.http.address,
                     "corrections allowed with the token" if self.app.config.settings.http.token else "read-only")
        while not self.stopping.wait(1.0):
            pass
        if self.http is not None:
            self.http.stop()
        self.scheduler.shutdown(wait=False)
        if not self._drain(grace):
            log.info("cutting off %d unfinished poll%s (redone at the next start)", self._busy,
                     "s" * (self._busy != 1))
            self.app.fetcher.abort()
            # A poll cut off ends within moments; a delivery keeps its own limit (delivery.timeout).
            if not self._drain(self.app.config.settings.delivery.timeout.total_seconds() + 5):
                log.warning("%d job%s still running; exiting anyway", self._busy, "s" * (self._busy != 1))
                self.app.ledger.stop_batching()
                log.info("daemon stopped")
                _exit(0)
        self.app.ledger.stop_batching()
        self.app.close()
        log.info("daemon stopped")
        return 0

    def _drain(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for the jobs in flight; True when none is left."""
        deadline = time.monotonic() + seconds
        while self._busy > 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        return self._busy <= 0


def _exit(status: int) -> None:
    """Exit now, without waiting for worker threads stuck in I/O (os._exit skips the interpreter's
    join of them); the log is flushed first. The database rolls back whatever they had not committed."""
    logging.shutdown()
    os._exit(status)
