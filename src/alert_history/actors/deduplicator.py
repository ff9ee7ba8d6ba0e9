"""Deduplicator: give every event its Alertmanager fingerprint and fold repeats in a batch.

Inbox: `EventBatch` from ingest. Outbox: `EventBatch` to the storage writer.
A sender's fingerprint is kept (mismatches with the recomputed one are counted); a missing one
is computed like Alertmanager. The same state twice in one batch becomes one event with its
notifications summed; across requests and replicas the storage's unique constraint decides.
A failure while handling a batch answers that batch's request with the error, then raises so
the supervisor restarts the actor; buffered batches wait in the channel for the next one.
"""

from __future__ import annotations

import msgspec
import trio

from alert_history.actors.hooks import Hooks
from alert_history.domain import FingerprintVerifier
from alert_history.messages import EventBatch
from alert_history.models import AlertEvent
from alert_history.telemetry import Metrics

StateKey = tuple[str, int, str, int]


def fold(events: list[AlertEvent], verifier: FingerprintVerifier) -> list[AlertEvent]:
    """Resolve fingerprints and merge identical states, keeping first-seen order."""
    merged: dict[StateKey, AlertEvent] = {}
    for event in events:
        fp, computed = verifier.resolve(event.fingerprint or None, event.labels)
        key = (fp, event.starts_at, event.status, event.ends_at)
        previous = merged.get(key)
        if previous is None:
            if fp != event.fingerprint:
                event = msgspec.structs.replace(
                    event, fingerprint=fp, fingerprint_computed=computed
                )
            merged[key] = event
        else:
            merged[key] = msgspec.structs.replace(
                event,
                fingerprint=fp,
                fingerprint_computed=computed,
                notify_count=previous.notify_count + event.notify_count,
            )
    return list(merged.values())


async def run(
    inbox: trio.MemoryReceiveChannel[EventBatch],
    outbox: trio.MemorySendChannel[EventBatch],
    *,
    verifier: FingerprintVerifier,
    metrics: Metrics,
    hooks: Hooks,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    async with inbox, outbox:
        task_status.started()
        async for batch in inbox:
            try:
                if hooks.before_dedup is not None:
                    await hooks.before_dedup(batch)
                before = verifier.mismatches
                events = fold(batch.events, verifier)
            except Exception as exc:
                batch.reply.fail(exc)
                raise
            if verifier.mismatches > before:
                metrics.fingerprint_mismatches.inc(verifier.mismatches - before)
            await outbox.send(EventBatch(events, batch.reply))
