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
MODE_STATUS = {"transparent": 0, "enriched": 1, "transparent_with_recommendations": 2}


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
        self._classification(r)
        self._enrichment(r)

    def _classification(self, r: CollectorRegistry) -> None:
        self.classifications = Counter(
            "alert_history_classification",
            "Classifications made, by severity and model (model 'fallback': rule-based)",
            ["severity", "model"],
            registry=r,
        )
        self.classification_duration = Histogram(
            "alert_history_classification_duration_seconds",
            "Duration of one LLM classification, retries included",
            ["model"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60),
            registry=r,
        )
        self.classification_errors = Counter(
            "alert_history_classification_errors",
            "LLM classifications that failed: timeout, connect, status_5xx, rate_limited, "
            "status_4xx, malformed, breaker_open, storage",
            ["error_type"],
            registry=r,
        )
        self.classification_tokens = Counter(
            "alert_history_classification_tokens",
            "Tokens the LLM used for classifications",
            ["model"],
            registry=r,
        )
        self.classification_hints_dropped = Counter(
            "alert_history_classification_hints_dropped",
            "Committed alerts not handed to the classifier at once (its queue was full); "
            "the poller classifies them later",
            registry=r,
        )
        self.cache_hits = Counter(
            "alert_history_cache_hits", "Cache hits", ["cache_type"], registry=r
        )
        self.cache_misses = Counter(
            "alert_history_cache_misses", "Cache misses", ["cache_type"], registry=r
        )
        self.breaker_state = Gauge(
            "alert_history_llm_circuit_breaker_state",
            "State of the LLM circuit breaker: 0 closed, 1 half-open, 2 open",
            registry=r,
        )
        self.breaker_opened = Counter(
            "alert_history_llm_circuit_breaker_opened",
            "Times the LLM circuit breaker opened",
            registry=r,
        )

    def _enrichment(self, r: CollectorRegistry) -> None:
        self.enrichment_mode_status = Gauge(
            "alert_history_enrichment_mode_status",
            "Enrichment mode: 0 transparent, 1 enriched, 2 transparent_with_recommendations",
            registry=r,
        )
        self.enrichment_mode_switches = Counter(
            "alert_history_enrichment_mode_switches",
            "Enrichment mode changes",
            ["from_mode", "to_mode"],
            registry=r,
        )
        self.enrichment_mode_requests = Counter(
            "alert_history_enrichment_mode_requests",
            "Requests to /enrichment/mode",
            ["method", "mode"],
            registry=r,
        )
        self.enrichment_transparent_alerts = Counter(
            "alert_history_enrichment_transparent_alerts",
            "Alerts received while the mode was transparent",
            registry=r,
        )
        self.enrichment_enriched_alerts = Counter(
            "alert_history_enrichment_enriched_alerts",
            "Alerts received while the mode was enriched or transparent_with_recommendations",
            registry=r,
        )

    def watch(
        self,
        channels: Mapping[str, HasStatistics],
        restarts: Callable[[], Iterator[_ChildRestarts]],
    ) -> None:
        """Export channel depth/capacity and per-actor restarts, read at scrape time."""
        self.registry.register(_LiveCollector(channels, restarts))

    def count_mode(self, mode: str, alerts: int = 0) -> None:
        """Set the mode gauge and count `alerts` received in `mode`."""
        self.enrichment_mode_status.set(MODE_STATUS.get(mode, 1))
        if mode == "transparent":
            self.enrichment_transparent_alerts.inc(alerts)
        else:
            self.enrichment_enriched_alerts.inc(alerts)

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
