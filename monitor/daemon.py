"""The long-running daemon: APScheduler runs one interval job per source and one delivery job.

Each source job has jitter (so a hundred sources do not hit the network in the same second), runs
at most one instance at a time, and coalesces missed runs. A failing source is backed off in the
database (``next_poll``), so its job simply skips until then. SIGTERM/SIGINT stop the scheduler
and wait for in-flight polls and deliveries before exiting 0.

With ``[http] listen`` set, the same process serves the web pages, API and feeds (as
``policy-monitor serve`` does) from a uvicorn thread, stopped with the rest on SIGTERM.
"""

from __future__ import annotations

import logging
import signal
import threading
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

if TYPE_CHECKING:
    from monitor.web.server import HTTPServer

log = logging.getLogger("monitor.daemon")


class Daemon:
    def __init__(self, app: App) -> None:
        self.app = app
        workers = app.config.settings.fetch.workers + 1  # the polls, plus the delivery job
        self.stopping = threading.Event()
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

    def _poll_job(self, cfg: SourceConfig) -> None:
        if self.stopping.is_set():
            return
        # Claim the poll in the database: with several daemons sharing one PostgreSQL, only the first
        # whose job fires polls the source; a failing source is skipped until its backoff ends.
        slack = 2 * self._jitter(cfg) + timedelta(seconds=5)
        with self.app.sessions.begin() as s:
            claimed = repo.claim_poll(s, cfg.name, clock.utcnow(), slack, cfg.interval)
        if not claimed:
            return
        try:
            poll(self.app, cfg)
        except Exception:  # a bug, or the database gone: log, and let the next run try again
            log.exception("source=%s poll crashed", cfg.name)

    def _deliver_job(self) -> None:
        try:
            self.app.dispatcher.deliver_due()
        except Exception:
            log.exception("delivery pass crashed; the outbox is intact and will be retried")

    def wake_delivery(self) -> None:
        job = self.scheduler.get_job("deliver")
        if job is not None and not self.stopping.is_set():
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

    def run(self) -> int:
        def stop(signum: int, _frame: object) -> None:
            log.info("received %s: finishing in-flight work", signal.Signals(signum).name)
            self.stopping.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        self.schedule()
        enabled = [s.name for s in self.app.config.settings.sources if s.enabled]
        log.info("daemon started: %d sources, %d notifiers, database %s", len(enabled),
                 len(self.app.config.settings.notify), self.app.engine.url.render_as_string(hide_password=True))
        self.scheduler.start()
        if self.http is not None:
            self.http.start()
            log.info("serving %s (%s)", self.http.address,
                     "corrections allowed with the token" if self.app.config.settings.http.token else "read-only")
        while not self.stopping.wait(1.0):
            pass
        if self.http is not None:
            self.http.stop()
        self.scheduler.shutdown(wait=True)
        self.app.close()
        log.info("daemon stopped")
        return 0
