"""Housekeeping: delete history older than the retention period, in bounded batches.

No inbox: it runs once at start and then every `interval` seconds. Each batch is its own short
transaction (no long locks on the tables ingest writes to), with a pause between batches so
ingest gets the writer in between. On PostgreSQL only one replica purges at a time (an
advisory lock); the others skip the round. Storage errors are counted and the round ends; the
next round tries again. Cancellation stops it between batches.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import trio

from alert_history.errors import StorageError
from alert_history.storage import Storage
from alert_history.telemetry import Metrics

log = logging.getLogger("alert_history.housekeeping")

NS_PER_DAY = 86_400 * 1_000_000_000


async def purge_expired(
    storage: Storage, cutoff: int, *, batch: int, pause: float, metrics: Metrics
) -> int:
    """Delete every event older than `cutoff`, batch by batch; return how many."""
    total = 0
    while True:
        deleted = await storage.purge(cutoff, batch)
        if deleted is None:
            metrics.retention_runs.labels("skipped").inc()
            return total
        total += deleted
        metrics.retention_deleted.inc(deleted)
        if deleted < batch:
            metrics.retention_runs.labels("done").inc()
            return total
        await trio.sleep(pause)


async def run(
    *,
    storage: Storage,
    metrics: Metrics,
    retention_days: int,
    wall_clock_ns: Callable[[], int],
    interval: float = 3600.0,
    batch: int = 1000,
    pause: float = 0.05,
    on_round: Callable[[int], None] | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    task_status.started()
    while True:
        cutoff = wall_clock_ns() - retention_days * NS_PER_DAY
        deleted = 0
        try:
            deleted = await purge_expired(
                storage, cutoff, batch=batch, pause=pause, metrics=metrics
            )
        except StorageError as exc:
            metrics.retention_runs.labels("failed").inc()
            log.warning("retention purge failed", extra={"error": str(exc)})
        if deleted:
            log.info("retention purge", extra={"deleted": deleted, "days": retention_days})
        if on_round is not None:
            on_round(deleted)
        await trio.sleep(interval)
