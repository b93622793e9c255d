"""The core the CLI and the daemon share: configuration, database, extractor and event bus, built
once per process from a validated config."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from monitor.config import Config
from monitor.events import Bus, ChangeCorroborated, ChangeDetected, ChangeUpdated, SourceFailed, SourcePolled
from monitor.extract import Extractor
from monitor.extract.lexicon import Lexicon, load as load_lexicon
from monitor.notify.dispatch import Dispatcher
from monitor.notify.planner import Planner
from monitor.notify.render import Renderer
from monitor.sources.fetch import Fetcher, FetchLimits
from monitor.store import db, repo

if TYPE_CHECKING:
    from monitor.sources.browser import Browser

log = logging.getLogger("monitor")


@dataclass
class App:
    config: Config
    engine: Engine
    sessions: sessionmaker[Session]
    bus: Bus

    @classmethod
    def open(cls, config: Config, migrate: bool = True) -> "App":
        engine = db.make_engine(config.database_url)
        if migrate:
            db.upgrade(engine)
        app = cls(config, engine, db.session_factory(engine), Bus())
        with app.sessions.begin() as s:
            repo.sync_sources(s, config.settings.sources)
        app._log_events()
        return app

    @cached_property
    def lexicon(self) -> Lexicon:
        return load_lexicon(self.config.relative(self.config.settings.extract.lexicon))

    @cached_property
    def extractor(self) -> Extractor:
        return Extractor(self.lexicon, model_path=self.config.relative(self.config.settings.extract.model))

    @cached_property
    def renderer(self) -> Renderer:
        return Renderer(self.lexicon, self.config.relative(self.config.settings.templates.dir))

    @cached_property
    def dispatcher(self) -> Dispatcher:
        return Dispatcher(self.sessions, self.config, self.renderer, self.bus)

    @cached_property
    def planner(self) -> Planner:
        return Planner(self.config.settings, self.lexicon)

    @property
    def fetch_limits(self) -> FetchLimits:
        f = self.config.settings.fetch
        return FetchLimits(timeout=f.timeout.total_seconds(), connect_timeout=f.connect_timeout.total_seconds(),
                           max_bytes=f.max_bytes, max_redirects=f.max_redirects, user_agent=f.user_agent,
                           proxy=f.proxy, host_concurrency=f.host_concurrency,
                           host_delay=f.host_delay.total_seconds(), max_retry_after=f.max_retry_after.total_seconds(),
                           allow_private=f.allow_private)

    @cached_property
    def fetcher(self) -> Fetcher:
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
            "not modified" if e.not_modified else f"{e.items} items, {e.new_entries} new"))
        self.bus.subscribe(SourceFailed, lambda e: log.warning(
            "source=%s failed (%s in a row): %s", e.source, e.failures, e.error))
        self.bus.subscribe(ChangeDetected, lambda e: log.info(
            "source=%s change #%s detected: %s", e.source, e.change_id, e.summary))
        self.bus.subscribe(ChangeUpdated, lambda e: log.info(
            "source=%s change #%s updated: %s (%s -> %s)", e.source, e.change_id, e.what, e.old, e.new))
        self.bus.subscribe(ChangeCorroborated, lambda e: log.info(
            "source=%s change #%s corroborated by entry #%s", e.source, e.change_id, e.entry_id))

    def close(self) -> None:
        if "browser" in self.__dict__:
            self.browser.close()
        if "fetcher" in self.__dict__:
            self.fetcher.close()
        self.engine.dispose()
