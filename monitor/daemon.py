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
``policy-monitor serve`` does) from a uvicorn thread, stopped with the rest, plus ``/metrics`` and a
``/healthz`` that also checks this loop.

Under systemd (``Type=notify``) it says ``READY=1`` once the scheduler runs, keeps ``STATUS=`` up to
date, pings ``WATCHDOG=1`` from the executor the polls run on (see monitor.service.Liveness) and says
``STOPPING=1`` when asked to stop. Every ``[log] heartbeat`` it logs one line summing up what it did.
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
from monitor.sdnotify import Notifier
from monitor.service import Counts, DatabaseCounts, Liveness, database_counts, heartbeat_line, status_line
from monitor.store import repo
from monitor.store.db import shown

if TYPE_CHECKING:
    from monitor.web.server import HTTPServer

log = logging.getLogger("monitor.daemon")
#: Retention ([retention]) runs this long after the start, then once a day.
PRUNE_FIRST = timedelta(minutes=2)
PRUNE_EVERY = timedelta(days=1)


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
        self.notify = Notifier()
        self.counts = Counts(app.bus)
        watchdog = self.notify.watchdog_seconds
        # The watchdog is pinged at half its period; without one the tick still proves the loop to /healthz.
        self.tick = watchdog / 2 if watchdog else 30.0
        self.liveness = Liveness(self.tick if watchdog else None, self.notify.watchdog)
        # /healthz calls the loop stuck after this long without a tick or a job ending: the watchdog's
        # period, else long enough that an executor busy with slow fetches is not taken for a stuck one.
        self.stale_after = watchdog or max(120.0, 4 * app.config.settings.fetch.timeout.total_seconds())

    def open_http(self) -> None:
        """Bind ``[http] listen`` now, so a taken port stops the start with a clear error."""
        listen = self.app.config.settings.http.listen
        if not listen:
            return
        from monitor.web.app import create_app
        from monitor.web.server import HTTPServer, bind

        asgi = create_app(self.app)
        asgi.state.liveness = self.loop_problem
        _ = self.app.metrics  # counting from the first poll on
        self.http = HTTPServer(asgi, bind(listen))

    def loop_problem(self) -> str | None:
        """Why this daemon's polling loop is not healthy, or None (for /healthz)."""
        if self.stopping.is_set():
            return "stopping"
        if not self.scheduler.running:
            return "the scheduler is not running"
        silent = self.liveness.silent_for()
        if silent > self.stale_after:
            return f"the polling loop has made no progress for {silent:.0f}s"
        return None

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
            self.liveness.beat()

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
            self.liveness.beat()

    def _database_counts(self) -> DatabaseCounts | None:
        names = [s.name for s in self.app.config.settings.sources if s.enabled]
        try:
            with self.app.sessions() as s:
                return database_counts(s, names)
        except Exception as exc:
            log.warning("cannot read the counts for the heartbeat/status: %s", type(exc).__name__)
            return None

    def _status_text(self) -> str:
        sources = sum(1 for s in self.app.config.settings.sources if s.enabled)
        return status_line(self.counts.total, self._database_counts(), sources)

    def _heartbeat_job(self) -> None:
        sources = sum(1 for s in self.app.config.settings.sources if s.enabled)
        db_counts = self._database_counts()
        log.info("%s", heartbeat_line(self.counts.take(), db_counts, sources,
                                      _span(self.app.config.settings.log.heartbeat.total_seconds())))
        if self.notify.enabled:
            self.notify.status(status_line(self.counts.total, db_counts, sources))

    def _status_job(self) -> None:
        self.notify.status(self._status_text())

    def _prune_job(self) -> None:
        """Apply [retention]: one log line with what was removed."""
        if self.stopping.is_set():
            return
        self._work(+1)
        try:
            from monitor.store.retention import prune

            started = time.monotonic()
            result = prune(self.app.sessions, self.app.config.settings.retention, clock.utcnow(),
                           stop=self.stopping.is_set)
            log.info("retention: removed %s in %.1fs", result.line(), time.monotonic() - started)
        except Exception:  # the database busy or gone: the next daily run tries again
            log.exception("retention pass crashed; nothing is lost, it runs again tomorrow")
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
        self.scheduler.add_job(self._prune_job, "interval", id="prune", name="prune",
                               seconds=PRUNE_EVERY.total_seconds(), next_run_time=now + PRUNE_FIRST)
        # On the executor the polls use: it runs only while the scheduler dispatches and a thread is free.
        self.scheduler.add_job(self.liveness.beat, "interval", id="tick", name="tick", seconds=self.tick,
                               next_run_time=now)
        heartbeat = settings.log.heartbeat.total_seconds()
        if heartbeat > 0:
            self.scheduler.add_job(self._heartbeat_job, "interval", id="heartbeat", name="heartbeat",
                                   seconds=heartbeat)
        if self.notify.enabled and not 0 < heartbeat <= 30:
            self.scheduler.add_job(self._status_job, "interval", id="status", name="status", seconds=30)
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
        if self.notify.enabled:
            self.notify.ready(self._status_text())
            if self.notify.watchdog_seconds:
                log.info("systemd watchdog: pinging every %gs", self.tick)
        while not self.stopping.wait(1.0):
            pass
        self.notify.stopping("stopping: finishing the polls and deliveries in flight")
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


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _exit(status: int) -> None:
    """Exit now, without waiting for worker threads stuck in I/O (os._exit skips the interpreter's
    join of them); the log is flushed first. The database rolls back whatever they had not committed."""
    logging.shutdown()
    os._exit(status)
