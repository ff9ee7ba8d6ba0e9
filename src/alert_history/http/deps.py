"""What the HTTP front gets from the composition root."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio

from alert_history.http.webhook import WebhookLimits
from alert_history.messages import IngestRequest
from alert_history.storage import Storage
from alert_history.telemetry import Metrics


@dataclass(frozen=True)
class HttpDeps:
    storage: Storage
    metrics: Metrics
    ingest: Callable[[], trio.MemorySendChannel[IngestRequest] | None]
    limits: WebhookLimits
    max_body_bytes: int
    supervisor_tree: Callable[[], dict[str, Any]]
    actors_ready: Callable[[], bool]
    draining: Callable[[], bool]
    wall_clock: Callable[[], float]
    started_at: float
    #: called after a filter rule is created, replaced or deleted: reload the rules now
    rules_changed: Callable[[], None]
    stale_firing_after: float
