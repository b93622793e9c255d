"""The core the CLI and the daemon share: configuration, database, extractor and event bus, built
once per process from a validated config."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from monitor import clock
from monitor.config import Config, SourceConfig
from monitor.events import Bus, ChangeCorroborated, ChangeDetected, ChangeUpdated, SourceFailed, SourcePolled
from monitor.store import db, repo
from monitor.worker import dead_here, worker_id

if TYPE_CHECKING:  # loaded on first use: a query command needs none of them (apprise alone takes 0.4 s)
    from monitor.extract import Extractor
    from monitor.extract.lexicon import Lexicon
    from monitor.ledger import Ledger
    from monitor.metrics import Metrics
    from monitor.notify.dispatch import Dispatcher
    from monitor.notify.planner import Planner
    from monitor.notify.render import Renderer
    from monitor.sources.fetch import Fetcher, FetchLimits

if TYPE_CHECKING:
    from monitor.sources.browser import Browser

log = logging.getLogger("monitor")


@dataclass
class App:
    config: Config
    engine: Engine
    sessions: sessionmaker[Session]
    bus: Bus
    owner: str = field(default_factory=worker_id)        # this process, as a lease holder
    lease_renewed: dict[str, float] = field(default_factory=dict)

    @classmethod
    def open(cls, config: Config, migrate: bool = True, create: bool = True) -> "App":
        """The core on the configured database. ``create=False`` (commands that only read) refuses
        to create a SQLite database that does not exist yet, instead of showing an empty one."""
        engine = db.make_engine(config.database_url, create=create)
        if migrate:
            db.upgrade(engine)
        app = cls(config, engine, db.session_factory(engine), Bus())
        with app.sessions.begin() as s:
            repo.sync_sources(s, config.settings.sources)
        app._log_events()
        return app

    def lease_for(self, cfg: SourceConfig) -> timedelta:
        """How long a poll of ``cfg`` is leased: well past its fetch deadline (a poll renews it while
        it follows pages or writes batches), so only a dead worker's lease ever runs out."""
        timeout = cfg.timeout or self.config.settings.fetch.timeout
        return max(timedelta(minutes=2), 3 * timeout + timedelta(seconds=30))

    def release_dead_leases(self) -> int:
        """Free the leases left by killed processes on this machine (see monitor.worker)."""
        with self.sessions.begin() as s:
            dead = [(name, owner) for name, owner in repo.leases(s) if dead_here(owner)]
            freed = repo.free_leases(s, dead)
        if freed:
            log.info("released %d poll lease%s left by a process that no longer runs", freed, "s" * (freed != 1))
        return freed

    @cached_property
    def metrics(self) -> Metrics:
        """This core's Prometheus metrics (its own registry), counting the bus's events from now on."""
        from monitor.metrics import Metrics

        return Metrics(self)

    @cached_property
    def lexicon(self) -> Lexicon:
        from monitor.extract.lexicon import load as load_lexicon

        return load_lexicon(self.config.relative(self.config.settings.extract.lexicon))

    def check_lexicon(self) -> None:
        """Raise LexiconError now if the configured lexicon is broken; it is compiled on first use."""
        from monitor.extract.lexicon import check

        check(self.config.relative(self.config.settings.extract.lexicon))

    def deliver_due(self) -> None:
        """Deliver what is due; the dispatcher (apprise, templates, the lexicon: a third of a second
        and tens of megabytes) is only built once something is."""
        if "dispatcher" not in self.__dict__:
            with self.sessions() as s:
                if not repo.due_notifiers(s, clock.utcnow()):
                    return
        self.dispatcher.deliver_due()

    @cached_property
    def extractor(self) -> Extractor:
        from monitor.extract import Extractor

        return Extractor(self.lexicon, model_path=self.config.relative(self.config.settings.extract.model))

    @cached_property
    def renderer(self) -> Renderer:
        from monitor.notify.render import Renderer
        from monitor.output import zone

        return Renderer(self.lexicon, self.config.relative(self.config.settings.templates.dir),
                        zone(self.config.settings.display.timezone))

    @cached_property
    def dispatcher(self) -> Dispatcher:
        from monitor.notify.dispatch import Dispatcher

        return Dispatcher(self.sessions, self.config, self.renderer, self.bus)

    @cached_property
    def ledger(self) -> Ledger:
        """Where unchanged polls are recorded, in batches during a cycle (see monitor.ledger)."""
        from monitor.ledger import Ledger

        return Ledger(self.sessions, self.owner, lambda: self.planner)

    @cached_property
    def planner(self) -> Planner:
        from monitor.notify.planner import Planner

        return Planner(self.config.settings, lambda: self.lexicon)

    @property
    def fetch_limits(self) -> FetchLimits:
        from monitor.sources.fetch import FetchLimits

        f = self.config.settings.fetch
        return FetchLimits(timeout=f.timeout.total_seconds(), connect_timeout=f.connect_timeout.total_seconds(),
                           max_bytes=f.max_bytes, max_redirects=f.max_redirects, user_agent=f.user_agent,
                           proxy=f.proxy, host_concurrency=f.host_concurrency,
                           host_delay=f.host_delay.total_seconds(), max_retry_after=f.max_retry_after.total_seconds(),
                           allow_private=f.allow_private)

    @cached_property
    def fetcher(self) -> Fetcher:
        from monitor.sources.fetch import Fetcher

        return Fetcher(self.fetch_limits)

    @cached_property
    def browser(self) -> Browser:
        """The headless Chromium of ``kind = "browser"`` sources: made here, started on first use."""
        from monitor.sources.browser import Browser

        limits = self.fetch_limits
        return Browser(self.config.settings.browser, limits.user_agent, limits.max_bytes, self.fetcher.host_turn)

    def _log_events(self) -> None:
        """One log line per event that matters, always naming the source."""
        self.bus.subscribe(SourcePolled, lambda e: log.info(
            "source=%s polled: %s", e.source,
            "not modified" if e.not_modified else f"{e.items} items, {e.new_entries} new", extra={"source": e.source}))
        self.bus.subscribe(SourceFailed, lambda e: log.warning(
            "source=%s failed (%s in a row): %s", e.source, e.failures, e.error, extra={"source": e.source}))
        self.bus.subscribe(ChangeDetected, lambda e: log.info(
            "source=%s change #%s detected: %s", e.source, e.change_id, e.summary,
            extra={"source": e.source, "change_id": e.change_id}))
        self.bus.subscribe(ChangeUpdated, lambda e: log.info(
            "source=%s change #%s updated: %s (%s -> %s)", e.source, e.change_id, e.what, e.old, e.new,
            extra={"source": e.source, "change_id": e.change_id}))
        self.bus.subscribe(ChangeCorroborated, lambda e: log.info(
            "source=%s change #%s corroborated by entry #%s", e.source, e.change_id, e.entry_id,
            extra={"source": e.source, "change_id": e.change_id}))

    def close(self) -> None:
        if "browser" in self.__dict__:
            self.browser.close()
        if "fetcher" in self.__dict__:
            self.fetcher.close()
        self.engine.dispose()
