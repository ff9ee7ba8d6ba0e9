"""Storage writer: group commit.

Inbox: `EventBatch` from the router. No outbox: `committed` is told of each commit's events
without waiting (the classifier's fast path). Every batch that waited while the previous
transaction ran goes into the next transaction, up to `batch_max` events; each request is
answered only after its transaction committed. A storage error answers the waiting requests
with it (the HTTP edge turns it into 503) and the writer carries on; any other error also
crashes the actor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import trio

from alert_history.actors.hooks import Hooks
from alert_history.errors import StorageError
from alert_history.messages import EventBatch
from alert_history.models import AlertEvent
from alert_history.storage import Storage
from alert_history.telemetry import Metrics

log = logging.getLogger("alert_history.writer")


def take_waiting(
    first: EventBatch, inbox: trio.MemoryReceiveChannel[EventBatch], batch_max: int
) -> list[EventBatch]:
    """Return `first` plus every batch already buffered, while under `batch_max` events."""
    group = [first]
    size = len(first.events)
    while size < batch_max:
        try:
            more = inbox.receive_nowait()
        except (trio.WouldBlock, trio.EndOfChannel):
            break
        group.append(more)
        size += len(more.events)
    return group


async def run(
    inbox: trio.MemoryReceiveChannel[EventBatch],
    *,
    storage: Storage,
    batch_max: int,
    metrics: Metrics,
    hooks: Hooks,
    committed: Callable[[list[AlertEvent]], None] | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    async with inbox:
        task_status.started()
        async for first in inbox:
            group = take_waiting(first, inbox, batch_max)
            events = [event for batch in group for event in batch.events]
            try:
                if hooks.before_commit is not None:
                    await hooks.before_commit(len(events))
                started = trio.current_time()
                outcome = await storage.write_events(events)
            except StorageError as exc:
                log.warning("group commit failed", extra={"error": str(exc), "alerts": len(events)})
                metrics.storage_errors.labels("write").inc()
                for batch in group:
                    batch.reply.fail(exc)
                continue
            except Exception as exc:
                for batch in group:
                    batch.reply.fail(exc)
                raise
            metrics.commit_latency.observe(trio.current_time() - started)
            metrics.commit_batch.observe(len(events))
            metrics.states_written.labels("new").inc(outcome.inserted)
            metrics.states_written.labels("repeat").inc(outcome.repeated)
            for batch in group:
                batch.reply.set(outcome)
            if committed is not None:
                committed(events)  # must not block: the classifier's hints
            if hooks.after_commit is not None:
                hooks.after_commit(events)
