"""POST /webhook: validate, hand to ingest, answer only after the durable commit.

Any input gets a 2xx, a 4xx naming the field, or a 503 with Retry-After; never a 500 and never
a wait longer than the enqueue budget plus the commit budget.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio

from alert_history.domain import InvalidPayload
from alert_history.errors import StorageError
from alert_history.messages import IngestRequest, Reply
from alert_history.models import WebhookBatch, WriteOutcome
from alert_history.telemetry import Metrics

log = logging.getLogger("alert_history.webhook")

# Alertmanager and Grafana send application/json; curl -d sends form-urlencoded.
_ACCEPTED_TYPES = ("application/json", "text/plain", "application/x-www-form-urlencoded")


@dataclass(frozen=True)
class WebhookAnswer:
    status: int
    body: dict[str, object]
    retry_after: int | None = None


@dataclass(frozen=True)
class WebhookLimits:
    enqueue_timeout: float
    commit_timeout: float
    retry_after: int


def content_type_ok(content_type: str | None) -> bool:
    if not content_type:
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return media in _ACCEPTED_TYPES or media.endswith("+json")


def _invalid(exc: InvalidPayload) -> WebhookAnswer:
    loc: list[str | int] = ["body"]
    return WebhookAnswer(
        exc.status,
        {"detail": [{"loc": loc, "msg": exc.message, "type": exc.kind, "field": exc.path}]},
    )


def _busy(limits: WebhookLimits, reason: str) -> WebhookAnswer:
    return WebhookAnswer(503, {"detail": reason}, retry_after=limits.retry_after)


Decoder = Callable[[bytes, int], WebhookBatch]


async def accept_webhook(
    body: bytes,
    content_type: str | None,
    *,
    decode: Decoder,
    ingest: Callable[[], trio.MemorySendChannel[IngestRequest] | None],
    limits: WebhookLimits,
    metrics: Metrics,
    wall_clock: Callable[[], float],
    mode: Callable[[], Awaitable[str]] | None = None,
) -> WebhookAnswer:
    """Return the answer for one webhook body."""
    started = trio.current_time()
    if not content_type_ok(content_type):
        metrics.webhook_errors.labels("content_type").inc()
        return WebhookAnswer(
            415, {"detail": f"Content-Type {content_type!r} is not JSON; send application/json"}
        )
    try:
        batch = decode(body, int(wall_clock() * 1e9))
    except InvalidPayload as exc:
        metrics.webhook_errors.labels(exc.kind).inc()
        log.info("webhook rejected", extra={"status": exc.status, "field": exc.path})
        return _invalid(exc)
    channel = ingest()
    if channel is None:
        return _busy(limits, "service is not accepting webhooks")
    reply: Reply[WriteOutcome] = Reply()
    with trio.move_on_after(limits.enqueue_timeout) as enqueue:
        try:
            await channel.send(IngestRequest(batch, reply))
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            metrics.webhook_errors.labels("shutting_down").inc()
            return _busy(limits, "service is shutting down")
    if enqueue.cancelled_caught:
        metrics.webhook_errors.labels("queue_full").inc()
        log.warning("ingest queue full", extra={"alerts": len(batch.alerts)})
        return _busy(limits, "ingest queue is full, retry later")
    with trio.move_on_after(limits.commit_timeout):
        try:
            await reply.wait()
        except StorageError as exc:
            log.warning("webhook not stored", extra={"error": str(exc)})
            return _busy(limits, "storage unavailable, retry later")
        except Exception as exc:
            log.warning("webhook not stored", extra={"error": f"{type(exc).__name__}: {exc}"})
            metrics.webhook_errors.labels("pipeline").inc()
            return _busy(limits, "pipeline restarting, retry later")
        count = len(batch.alerts)
        # read per webhook: a switch through any replica applies to the next webhook
        current = "enriched" if mode is None else await mode()
        metrics.count_mode(current, count)
        elapsed_ms = int((trio.current_time() - started) * 1000)
        log.info(
            "webhook stored",
            extra={"alerts": count, "receiver": batch.receiver, "status": batch.status},
        )
        return WebhookAnswer(
            200,
            {
                "status": "success",
                "message": "Webhook processed successfully",
                "processed": count,
                "processed_alerts": count,
                "mode": current,
                "processing_time_ms": elapsed_ms,
                "timestamp": wall_clock(),
            },
        )
    metrics.webhook_errors.labels("commit_timeout").inc()
    log.warning("commit did not finish in time", extra={"alerts": len(batch.alerts)})
    return _busy(limits, "storage is slow, retry later")
