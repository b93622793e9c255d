"""Prometheus metrics of one process core, served at ``/metrics``.

Counters and histograms are fed by the event bus (the pipeline and the dispatcher publish events;
nothing here reaches into them). Figures kept in the database (the outbox, failing sources, each
source's last success) are read at scrape time, so every daemon sharing a database reports the same
and a restart loses nothing. Each ``App`` has its own registry, not prometheus-client's global one,
so two cores in one process (the tests) never mix their counts.
"""

from __future__ import annotations

import logging
import threading
from typing import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.metrics_core import Metric
from sqlalchemy.orm import Session, sessionmaker

from monitor import clock
from monitor.app import App
from monitor.events import (
    ChangeDetected,
    DeliveryFinished,
    EntryExtracted,
    PollFinished,
    SourceFailed,
    SourcePolled,
)
from monitor.service import database_counts

log = logging.getLogger("monitor.metrics")
PREFIX = "policy_monitor_"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
POLL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
EXTRACT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

#: Every metric name, for the README and the tests.
NAMES = (
    "policy_monitor_polls_total", "policy_monitor_poll_duration_seconds", "policy_monitor_entries_total",
    "policy_monitor_changes_total", "policy_monitor_extraction_seconds", "policy_monitor_deliveries_total",
    "policy_monitor_outbox_pending", "policy_monitor_outbox_dead", "policy_monitor_sources_failing",
    "policy_monitor_source_last_success_age_seconds", "policy_monitor_database_up",
)


class Metrics:
    def __init__(self, app: App) -> None:
        # No ``*_created`` series: in the text format they are one more series per counter and label
        # set (a third of the body with many sources) that nobody queries.
        disable_created_metrics()
        self.app = app
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.polls = Counter(f"{PREFIX}polls", "Polls ended, by source and outcome (ok, not_modified, failed).",
                             ["source", "outcome"], registry=r)
        self.poll_seconds = Histogram(f"{PREFIX}poll_duration_seconds", "How long a poll took, fetch to commit.",
                                      buckets=POLL_BUCKETS, registry=r)
        self.entries = Counter(f"{PREFIX}entries", "New entries stored, by source.", ["source"], registry=r)
        self.changes = Counter(f"{PREFIX}changes", "Policy changes found (new ones), by source.", ["source"],
                               registry=r)
        self.extract_seconds = Histogram(f"{PREFIX}extraction_seconds", "Extraction time of one item.",
                                         buckets=EXTRACT_BUCKETS, registry=r)
        self.deliveries = Counter(f"{PREFIX}deliveries", "Delivery attempts ended, by notifier, kind "
                                  "(alert, update, reminder, ops) and the status they left (sent, failed, dead, "
                                  "unknown).", ["notifier", "kind", "status"], registry=r)
        for cfg in app.config.settings.sources:
            if cfg.enabled:   # zeros from the start: rate() and absent() then work before the first poll
                for outcome in ("ok", "not_modified", "failed"):
                    self.polls.labels(cfg.name, outcome)
                self.entries.labels(cfg.name)
                self.changes.labels(cfg.name)
        self.reads: sessionmaker[Session] = app.sessions
        self._scrape = threading.Lock()
        r.register(_DatabaseCollector(self))
        bus = app.bus
        bus.subscribe(SourcePolled, self._polled)
        bus.subscribe(SourceFailed, lambda e: self.polls.labels(e.source, "failed").inc())
        bus.subscribe(PollFinished, lambda e: self.poll_seconds.observe(e.seconds))
        bus.subscribe(EntryExtracted, lambda e: self.extract_seconds.observe(e.seconds))
        bus.subscribe(ChangeDetected, lambda e: self.changes.labels(e.source).inc())
        bus.subscribe(DeliveryFinished, lambda e: self.deliveries.labels(e.notifier, e.kind, e.status).inc())

    def _polled(self, e: SourcePolled) -> None:
        self.polls.labels(e.source, "not_modified" if e.not_modified else "ok").inc()
        if e.new_entries:
            self.entries.labels(e.source).inc(e.new_entries)

    def exposition(self, reads: sessionmaker[Session] | None = None) -> bytes:
        """The text format; the database gauges read through ``reads`` (the web's read-only sessions)."""
        with self._scrape:
            if reads is not None:
                self.reads = reads
            return generate_latest(self.registry)


class _DatabaseCollector(Collector):
    """Gauges read from the database at each scrape. A database that does not answer gives
    ``policy_monitor_database_up 0`` and no other of these gauges, rather than a failed scrape."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def describe(self) -> Iterator[Metric]:
        return iter(())   # read at scrape time only: nothing to read while registering

    def collect(self) -> Iterator[Metric]:
        app = self.metrics.app
        names = [s.name for s in app.config.settings.sources if s.enabled]
        up = GaugeMetricFamily(f"{PREFIX}database_up", "1 when the database answered this scrape, else 0.")
        try:
            with self.metrics.reads() as s:
                counts = database_counts(s, names)
        except Exception as exc:
            log.warning("metrics: the database did not answer: %s", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield GaugeMetricFamily(f"{PREFIX}outbox_pending", "Deliveries owed and not yet sent (pending or "
                                "failed and waiting for a retry).", value=counts.pending)
        yield GaugeMetricFamily(f"{PREFIX}outbox_dead", "Deliveries that gave up after delivery.max_attempts "
                                "(`policy-monitor deliveries retry` sends them again).", value=counts.dead)
        yield GaugeMetricFamily(f"{PREFIX}sources_failing", "Configured sources whose last poll failed.",
                                value=counts.failing)
        age = GaugeMetricFamily(f"{PREFIX}source_last_success_age_seconds", "Seconds since each source's last "
                                "successful poll (absent for a source never polled successfully).",
                                labels=["source"])
        now = clock.utcnow()
        for name in names:
            last = counts.last_success.get(name)
            if last is not None:
                age.add_metric([name], max(0.0, (now - last).total_seconds()))
        yield age
