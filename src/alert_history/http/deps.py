"""What the HTTP front gets from the composition root."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import trio

from alert_history.http.webhook import WebhookLimits
from alert_history.kv import ModeStore
from alert_history.messages import IngestRequest
from alert_history.models import Classification
from alert_history.storage import Storage
from alert_history.telemetry import Metrics


class ClassificationApi(Protocol):
    """What the classification routes use of the classifier (built by `app`)."""

    async def known(self, fingerprint: str) -> Classification | None:
        """The kept classification (cache, then storage), without calling the LLM."""
        ...

    async def classify_stored(
        self, fingerprint: str, *, force: bool = False
    ) -> tuple[Classification, bool] | None:
        """(classification, from cache) for a stored alert; None if it was never seen."""
        ...

    async def classify_alert(
        self, alert: dict[str, Any], *, force: bool = False
    ) -> tuple[Classification, bool]: ...

    def stats(self) -> dict[str, object]:
        """Counters since start (the legacy stats keys)."""
        ...

    def health(self) -> dict[str, object]:
        """Components: llm_client (with the breaker) and cache."""
        ...

    def models(self) -> list[dict[str, object]]: ...

    @property
    def model(self) -> str: ...


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
    modes: ModeStore
    #: None when classification is disabled (LLM_ENABLED false): /classification/* answer 503
    classification: ClassificationApi | None = None
