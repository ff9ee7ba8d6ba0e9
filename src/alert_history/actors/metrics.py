"""Metrics sampler: refresh gauges that come from storage (row counts, size, stale episodes).

No inbox: it wakes every `interval` seconds. Storage errors are counted and skipped; the next
round tries again. Cancellation stops it at once.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import trio

from alert_history.errors import StorageError
from alert_history.storage import Storage
from alert_history.storage.timeline import count_stale_firing
from alert_history.telemetry import Metrics


async def sample(storage: Storage, metrics: Metrics, stale_cutoff: int) -> None:
    """Read storage statistics once into the gauges."""
    metrics.stale_firing.set(await storage.read(partial(count_stale_firing, cutoff=stale_cutoff)))
    stats = await storage.stats()
    metrics.alerts_stored.set(stats.events)
    metrics.alerts_firing.set(stats.firing)
    if stats.size_bytes is not None:
        metrics.database_size.set(stats.size_bytes)


async def run(
    *,
    storage: Storage,
    metrics: Metrics,
    wall_clock_ns: Callable[[], int],
    stale_after: float,
    interval: float = 15.0,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    task_status.started()
    while True:
        try:
            await sample(storage, metrics, wall_clock_ns() - int(stale_after * 1e9))
        except StorageError:
            metrics.storage_errors.labels("stats").inc()
        await trio.sleep(interval)
