"""Ingest: turn validated notifications into alert events.

Inbox: `IngestRequest` from the HTTP edge. Outbox: `EventBatch` to the deduplicator.
Stamps the arrival time and derives the indexed fields (alertname, namespace, severity).
Returns when the inbox is closed and drained; on cancellation, requests in the buffer stay
there for the next incarnation (the supervisor owns the channel).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import trio

from alert_history.messages import EventBatch, IngestRequest
from alert_history.models import AlertEvent, WebhookBatch
from alert_history.telemetry import Metrics


def to_events(batch: WebhookBatch, received_at: int) -> list[AlertEvent]:
    """Normalise a batch; fingerprints stay as sent ("" when absent) for the deduplicator."""
    return [
        AlertEvent(
            fingerprint=alert.fingerprint or "",
            status=alert.status,
            starts_at=alert.starts_at,
            ends_at=alert.ends_at,
            alertname=alert.labels.get("alertname", ""),
            namespace=alert.labels.get("namespace"),
            severity=alert.labels.get("severity"),
            labels=alert.labels,
            annotations=alert.annotations,
            generator_url=alert.generator_url,
            receiver=batch.receiver,
            group_key=batch.group_key,
            source=batch.source,
            received_at=received_at,
            extra=_extra(batch.extra, alert.extra),
        )
        for alert in batch.alerts
    ]


def _extra(envelope: dict[str, Any] | None, alert: dict[str, Any] | None) -> dict[str, Any] | None:
    if envelope is None:
        return alert
    return envelope if alert is None else {**envelope, **alert}


async def run(
    inbox: trio.MemoryReceiveChannel[IngestRequest],
    outbox: trio.MemorySendChannel[EventBatch],
    *,
    wall_clock_ns: Callable[[], int],
    metrics: Metrics,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    async with inbox, outbox:
        task_status.started()
        async for request in inbox:
            events = to_events(request.batch, wall_clock_ns())
            counts = Counter((event.alertname, event.status) for event in events)
            for (alertname, status), count in counts.items():
                metrics.webhook_events.labels(alertname, status).inc(count)
            await outbox.send(EventBatch(events, request.reply))
