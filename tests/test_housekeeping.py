"""Retention: the housekeeping actor purges old history at start and then every interval."""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing

from alert_history.actors import housekeeping
from alert_history.models import AlertEvent, HistoryQuery
from alert_history.storage import open_storage
from alert_history.telemetry import Metrics

DAY = housekeeping.NS_PER_DAY
NOW = 1_800_000_000_000_000_000


def event(fp: str, received_at: int) -> AlertEvent:
    return AlertEvent(
        fingerprint=fp, status="firing", starts_at=received_at, ends_at=0, alertname=fp,
        namespace=None, severity=None, labels={"alertname": fp}, annotations={},
        generator_url="", receiver="", group_key="", source="test", received_at=received_at,
    )  # fmt: skip


async def test_housekeeping_purges_at_start_and_every_interval_in_batches(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    storage = await open_storage(f"sqlite:///{tmp_path}/h.db")
    now = [NOW]
    await storage.write_events([event(f"old{i}", NOW - 40 * DAY) for i in range(25)])
    await storage.write_events([event("young", NOW - 20 * DAY)])
    metrics = Metrics()
    rounds: list[tuple[float, int]] = []
    round_done = trio.Event()

    def on_round(deleted: int) -> None:
        nonlocal round_done
        rounds.append((trio.current_time(), deleted))
        round_done.set()
        round_done = trio.Event()

    async with trio.open_nursery() as nursery:
        await nursery.start(
            lambda task_status: housekeeping.run(
                storage=storage, metrics=metrics, retention_days=30,
                wall_clock_ns=lambda: now[0], interval=3600, batch=10, pause=0.5,
                on_round=on_round, task_status=task_status,
            )
        )  # fmt: skip
        await round_done.wait()
        # no await before the clock moves on: a storage call in a thread lets the mock clock
        # jump to the next round
        assert rounds == [(1.0, 25)]  # three batches of at most 10, 0.5 s apart
        now[0] += 15 * DAY  # "young" is now 35 days old
        await round_done.wait()
        assert rounds[1] == (3601.0, 1)
        nursery.cancel_scope.cancel()
    assert (await storage.history(HistoryQuery())).total == 0
    await storage.aclose()
    text = metrics.render().decode()
    assert "alert_history_retention_deleted_events_total 26.0" in text
    assert 'alert_history_retention_runs_total{result="done"} 2.0' in text
