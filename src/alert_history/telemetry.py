"""Prometheus metrics on a registry of our own, plus a collector that reads live statistics.

Channel depths and supervisor restarts are read at scrape time (`statistics()`, `health()`),
so no actor has to push them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _ChannelStats(Protocol):
    @property
    def current_buffer_used(self) -> int: ...
    @property
    def max_buffer_size(self) -> int | float: ...


class HasStatistics(Protocol):
    def statistics(self) -> _ChannelStats: ...


class _ChildRestarts(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def restarts(self) -> int: ...


class Metrics:
    """Every metric the service exports; one instance per process, passed down from `app`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        ProcessCollector(registry=r)
        self.webhook_events = Counter(
            "alert_history_webhook_events",
            "Alerts received in accepted webhooks",
            ["alertname", "status"],
            registry=r,
        )
        self.webhook_errors = Counter(
            "alert_history_webhook_errors",
            "Webhooks rejected or failed, by reason",
            ["reason"],
            registry=r,
        )
        self.request_latency = Histogram(
            "alert_history_request_latency_seconds",
            "HTTP request latency by endpoint",
            ["endpoint"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.states_written = Counter(
            "alert_history_alert_states_written",
            "Alert states committed, new or repeat notification of a stored state",
            ["kind"],
            registry=r,
        )
        self.commit_batch = Histogram(
            "alert_history_commit_batch_alerts",
            "Alerts per group commit",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000),
            registry=r,
        )
        self.commit_latency = Histogram(
            "alert_history_commit_seconds",
            "Duration of one group commit",
            registry=r,
        )
        self.storage_errors = Counter(
            "alert_history_storage_errors",
            "Storage operations that failed",
            ["operation"],
            registry=r,
        )
        self.fingerprint_mismatches = Counter(
            "alert_history_fingerprint_mismatches",
            "Sender fingerprints that differ from the one computed from the labels",
            registry=r,
        )
        self.retention_deleted = Counter(
            "alert_history_retention_deleted_events",
            "Events deleted by the retention purge",
            registry=r,
        )
        self.retention_runs = Counter(
            "alert_history_retention_runs",
            "Retention purge rounds: done, skipped (another replica purges) or failed",
            ["result"],
            registry=r,
        )
        self.stale_firing = Gauge(
            "alert_history_stale_firing_episodes",
            "Episodes still firing with no notification for longer than STALE_FIRING_AFTER",
            registry=r,
        )
        self.alerts_stored = Gauge(
            "alert_history_alerts_stored", "Alert events in storage", registry=r
        )
        self.alerts_firing = Gauge(
            "alert_history_alerts_firing", "Fingerprints whose current state is firing", registry=r
        )
        self.database_size = Gauge(
            "alert_history_database_size_bytes", "Size of the database file", registry=r
        )

    def watch(
        self,
        channels: Mapping[str, HasStatistics],
        restarts: Callable[[], Iterator[_ChildRestarts]],
    ) -> None:
        """Export channel depth/capacity and per-actor restarts, read at scrape time."""
        self.registry.register(_LiveCollector(channels, restarts))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _LiveCollector(Collector):
    def __init__(
        self,
        channels: Mapping[str, HasStatistics],
        restarts: Callable[[], Iterator[_ChildRestarts]],
    ) -> None:
        self._channels = channels
        self._restarts = restarts

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "alert_history_channel_depth", "Items buffered in a channel", labels=["channel"]
        )
        capacity = GaugeMetricFamily(
            "alert_history_channel_capacity", "Buffer size of a channel", labels=["channel"]
        )
        for name, channel in self._channels.items():
            stats = channel.statistics()
            depth.add_metric([name], stats.current_buffer_used)
            capacity.add_metric([name], float(stats.max_buffer_size))
        yield depth
        yield capacity
        restarts = CounterMetricFamily(
            "alert_history_actor_restarts", "Restarts of a supervised actor", labels=["actor"]
        )
        for child in self._restarts():
            restarts.add_metric([child.name], child.restarts)
        yield restarts
