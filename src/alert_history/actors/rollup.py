"""Rollup: keep GET /report's rollup fresh (storage/report_rollup.py).

No inbox: every `interval` seconds it recomputes the dirty hours and days but today's, and
today's day at most every `today_every` seconds (it is dirty again after every write; reports
read its hours meanwhile), then builds the spans (storage/report_spans.py) of the finished hours
and days that are missing, and the trailing spans from 7 days before the current hour. A
refresh computes with reads and stores in a short write, so it never holds up ingest; if writes
dirtied a day while it was computed, the next round tries again. Storage errors are logged and
the next round tries again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import trio

from alert_history.errors import StorageError
from alert_history.storage import Storage
from alert_history.storage.report_rollup import NS_PER_DAY, refresh_all, refresh_day

log = logging.getLogger("alert_history.rollup")


async def run(
    *,
    storage: Storage,
    wall_clock_ns: Callable[[], int],
    interval: float = 15.0,
    today_every: float = 300.0,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    task_status.started()
    today_done = float("-inf")
    while True:
        today = wall_clock_ns() // NS_PER_DAY
        try:
            await refresh_all(storage, skip_day=today, now_ns=wall_clock_ns())
            due = trio.current_time() - today_done >= today_every
            if due and await refresh_day(storage, today):
                today_done = trio.current_time()
        except StorageError as exc:
            log.warning("report rollup refresh failed", extra={"error": str(exc)})
        await trio.sleep(interval)
