"""psycopg from trio, measured on the service's own write: sync pool in threads vs trio-asyncio.

One "commit" is what the service's storage writer does for one group commit of eight 10-alert
webhooks: 80 alert states folded and sorted like `PostgresStorage.write_events`, then the
service's own one-statement commit (`_WRITE_EVENTS`: the events' insert and the current-state
upsert as data-modifying CTEs, autocommit) with its parameters built as the service builds them
(`event_params(..., exact_columns=True)`, `current_params`, one binary array per column by
`_columns`, on connections set up by the service's `_configure`). Every commit is new
states (a unique starts_at), like the 10-alert ingest load. Each task owns its fingerprints,
so concurrent tasks never wait on each other's row locks:
what differs between the variants is the driver path alone.

- **threads** (what the service does): `psycopg_pool.ConnectionPool` with the service's
  settings, each commit in `trio.to_thread.run_sync` under a CapacityLimiter of the pool size.
- **trio-asyncio**: `psycopg_pool.AsyncConnectionPool` with the same settings, each commit one
  `trio_asyncio.aio_as_trio(...)` call inside `trio_asyncio.open_loop()`. trio_asyncio is
  imported before psycopg (stack notes, pitfall 1: psycopg binds asyncio.get_running_loop at
  import).

Each measurement is its own process, `python -m bench.pgdriver --mode threads|asyncio ...`, which
prints one JSON line; the bench runs both variants with 1 and 8 tasks, alternating, on a fresh
database each time, and takes medians.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from statistics import median
from typing import TYPE_CHECKING, Any

import trio

from bench import machine

if TYPE_CHECKING:  # the parent's types; the child must not import psycopg before trio_asyncio
    from bench.pgserver import PostgresServer

MODES = ("threads", "asyncio")
LABELS = {
    "threads": "(a) sync `ConnectionPool` + `trio.to_thread.run_sync` (the service)",
    "asyncio": "(b) `AsyncConnectionPool` under `trio_asyncio`",
}
MARKER = "PGDRIVER_JSON "
REQUESTS_PER_COMMIT = 8
ALERTS_PER_REQUEST = 10
POOL_SIZE = 10  # the service's default (Settings.pool_size)
CLEARLY_FASTER = 1.15  # (b) replaces (a) only if this much faster at every task count


# -- the child: one measurement ---------------------------------------------------------------


@dataclass
class Workload:
    """Per task: 80 (labels, fingerprint) pairs; each commit gets a new starts_at."""

    task: int
    alerts: list[tuple[dict[str, str], str]]

    @classmethod
    def make(cls, task: int) -> Workload:
        from alert_history.domain.fingerprint import fingerprint

        alerts = []
        for req in range(REQUESTS_PER_COMMIT):
            for i in range(ALERTS_PER_REQUEST):
                labels = {
                    "alertname": "PgDriverBench",
                    "instance": f"host-{i + 1}:9100",
                    "job": "node",
                    "namespace": "bench",
                    "severity": "warning",
                    "sender": f"task-{task}-group-{req}",
                }
                alerts.append((labels, fingerprint(labels)))
        return cls(task, alerts)

    def batch(self, commit: int) -> Batch:
        """The rows of one commit, as `PostgresStorage.write_events` folds and orders them."""
        from alert_history.models import AlertEvent
        from alert_history.storage.sql import (
            current_params,
            current_winners,
            event_params,
            fold_group,
            state_key,
        )

        now = time.time_ns()
        starts = 1_900_000_000 * 10**9 + (self.task * 10**7 + commit) * 10**6
        events = [
            AlertEvent(
                fingerprint=fp,
                status="firing",
                starts_at=starts,
                ends_at=0,
                alertname=labels["alertname"],
                namespace=labels["namespace"],
                severity=labels["severity"],
                labels=labels,
                annotations={"summary": f"{labels['instance']} is slow"},
                generator_url="http://prometheus:9090/graph",
                receiver="bench",
                group_key=labels["sender"],
                source="alertmanager",
                received_at=now,
            )
            for labels, fp in self.alerts
        ]
        rows = sorted(fold_group(events), key=state_key)
        current = current_winners(rows)
        return event_params(rows, exact_columns=True), current_params(current)


Batch = tuple[list[object], list[object]]  # event parameters, current-state parameters


def _statement(conn: Any, batch: Batch) -> tuple[str, list[object]]:
    """The service's commit statement and its binary column arrays, built on `conn`."""
    from alert_history.storage.postgres import (
        _CURRENT_TYPES,
        _EVENT_TYPES,
        _WRITE_EVENTS,
        _columns,
    )

    events, current = batch
    return _WRITE_EVENTS, _columns(conn, events, _EVENT_TYPES) + _columns(
        conn, current, _CURRENT_TYPES
    )


async def _drive(
    commit: Callable[[Batch], Awaitable[int]],
    *,
    tasks: int,
    warmup: float,
    seconds: float,
) -> dict[str, Any]:
    workloads = [Workload.make(t) for t in range(tasks)]
    latencies: list[float] = []
    counts = {"commits": 0, "rows": 0}
    measuring = False

    async def worker(work: Workload) -> None:
        n = 0
        while True:
            n += 1
            batch = work.batch(n)
            began = time.perf_counter()
            inserted = await commit(batch)
            if measuring:
                latencies.append(1000 * (time.perf_counter() - began))
                counts["commits"] += 1
                counts["rows"] += inserted
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        for work in workloads:
            nursery.start_soon(worker, work)
        await trio.sleep(warmup)
        measuring = True
        cpu0, stat0 = _cpu(), machine.cpu_times()
        began = time.perf_counter()
        await trio.sleep(seconds)
        measuring = False
        elapsed = time.perf_counter() - began
        cpu = _cpu() - cpu0
        busy, _ = machine.busy_and_steal(stat0, machine.cpu_times())
        nursery.cancel_scope.cancel()
    latencies.sort()
    return {
        "commits": counts["commits"],
        "rows": counts["rows"],
        "seconds": elapsed,
        "cpu_s": cpu,
        "machine_busy": busy,
        "p50_ms": latencies[len(latencies) // 2] if latencies else 0.0,
        "p95_ms": latencies[int(len(latencies) * 0.95)] if latencies else 0.0,
    }


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _threads(url: str, tasks: int, warmup: float, seconds: float) -> dict[str, Any]:
    import psycopg_pool

    from alert_history.storage.postgres import _configure

    pool = psycopg_pool.ConnectionPool(
        url,
        min_size=tasks,
        max_size=POOL_SIZE,
        open=False,
        timeout=5.0,
        check=psycopg_pool.ConnectionPool.check_connection,
        configure=_configure,
        kwargs={"autocommit": True, "application_name": "bench-pgdriver"},
    )
    await trio.to_thread.run_sync(lambda: pool.open(wait=True, timeout=10))
    limiter = trio.CapacityLimiter(POOL_SIZE)

    def write(batch: Batch) -> int:
        with pool.connection() as conn:
            row = conn.execute(*_statement(conn, batch)).fetchone()
        assert row is not None
        return int(row[0])

    async def commit(batch: Batch) -> int:
        return await trio.to_thread.run_sync(write, batch, limiter=limiter)

    try:
        return await _drive(commit, tasks=tasks, warmup=warmup, seconds=seconds)
    finally:
        await trio.to_thread.run_sync(pool.close)


async def _asyncio(url: str, tasks: int, warmup: float, seconds: float) -> dict[str, Any]:
    import psycopg_pool
    import trio_asyncio

    from alert_history.storage.postgres import _Array, _ArrayDumper

    async def configure(conn: Any) -> None:  # the service's `_configure`, for async connections
        conn.adapters.register_dumper(_Array, _ArrayDumper)

    async with trio_asyncio.open_loop():
        aio = trio_asyncio.aio_as_trio
        pool = psycopg_pool.AsyncConnectionPool(
            url,
            min_size=tasks,
            max_size=POOL_SIZE,
            open=False,
            timeout=5.0,
            check=psycopg_pool.AsyncConnectionPool.check_connection,
            configure=configure,
            kwargs={"autocommit": True, "application_name": "bench-pgdriver"},
        )
        await aio(pool.open)(wait=True, timeout=10)

        async def write(batch: Batch) -> int:
            async with pool.connection() as conn:
                row = await (await conn.execute(*_statement(conn, batch))).fetchone()
            assert row is not None
            return int(row[0])

        async def commit(batch: Batch) -> int:
            return int(await aio(write)(batch))

        try:
            return await _drive(commit, tasks=tasks, warmup=warmup, seconds=seconds)
        finally:
            await aio(pool.close)()


def child(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pgdriver", description=__doc__)
    parser.add_argument("--mode", choices=MODES, required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--tasks", type=int, default=1)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args(argv)
    if args.mode == "asyncio":
        if "psycopg" in sys.modules:
            raise SystemExit("bench.pgdriver: psycopg was imported before trio_asyncio")
        import trio_asyncio  # noqa: F401 - before psycopg: it patches asyncio.get_running_loop
    run = _threads if args.mode == "threads" else _asyncio
    result = trio.run(run, args.url, args.tasks, args.warmup, args.seconds)
    result.update(mode=args.mode, tasks=args.tasks)
    print(MARKER + json.dumps(result), flush=True)
    return 0


# -- the parent: rounds, medians, report ----------------------------------------------------


@dataclass(frozen=True)
class Measurement:
    round: int
    mode: str
    tasks: int
    commits: int
    rows: int
    seconds: float
    cpu_s: float
    p50_ms: float
    p95_ms: float
    machine_busy: float  # share of all CPUs busy while measured (anyone's)

    @property
    def commits_per_s(self) -> float:
        return self.commits / self.seconds if self.seconds else 0.0

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms_per_commit(self) -> float:
        return 1000 * self.cpu_s / self.commits if self.commits else float("nan")


@dataclass
class DriverResults:
    measurements: list[Measurement]
    rounds: int
    tasks: list[int]
    warmup: float
    seconds: float
    pg_version: str
    pg_settings: str
    versions: str
    date: str
    command: str
    elapsed_s: float

    def med(self, mode: str, tasks: int, attr: str) -> float:
        values = [
            float(getattr(m, attr))
            for m in self.measurements
            if m.mode == mode and m.tasks == tasks
        ]
        return median(values) if values else float("nan")

    def spread(self, mode: str, tasks: int, attr: str) -> tuple[float, float]:
        values = [
            float(getattr(m, attr))
            for m in self.measurements
            if m.mode == mode and m.tasks == tasks
        ]
        return (min(values), max(values)) if values else (float("nan"), float("nan"))

    def ratio(self, tasks: int, attr: str = "commits_per_s") -> float:
        """(b) ÷ (a): the median of the per-round ratios (each pair measured back to back)."""
        a = {m.round: getattr(m, attr) for m in self.measurements if m.mode == "threads"
             and m.tasks == tasks}  # fmt: skip
        pairs = [
            getattr(m, attr) / a[m.round]
            for m in self.measurements
            if m.mode == "asyncio" and m.tasks == tasks and a.get(m.round)
        ]
        return median(pairs) if pairs else float("nan")

    @property
    def kept(self) -> str:
        faster = all(self.ratio(t) >= CLEARLY_FASTER for t in self.tasks)
        return "asyncio" if faster else "threads"


def _versions() -> str:
    from importlib import metadata

    names = ("psycopg", "psycopg-binary", "psycopg-pool", "trio", "trio-asyncio")
    out = []
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            out.append(f"{name} {metadata.version(name)}")
    return ", ".join(out)


def measure_one(url: str, mode: str, tasks: int, warmup: float, seconds: float) -> dict[str, Any]:
    argv = [sys.executable, "-m", "bench.pgdriver", "--mode", mode, "--url", url]
    argv += ["--tasks", str(tasks), "--warmup", str(warmup), "--seconds", str(seconds)]
    out = subprocess.run(
        argv, capture_output=True, text=True, check=False, timeout=120, cwd=_root()
    )
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith(MARKER)), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(
            f"bench.pgdriver failed (rc {out.returncode}): {' '.join(argv)}\n"
            f"{out.stdout[-2000:]}\n{out.stderr[-3000:]}"
        )
    result: dict[str, Any] = json.loads(line[len(MARKER) :])
    return result


def _root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(args: argparse.Namespace, *, pg: PostgresServer, command: str) -> DriverResults:
    from bench.loader import migrate

    began = time.monotonic()
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    measurements: list[Measurement] = []
    total = args.pgdriver_rounds * len(MODES) * len(args.pgdriver_tasks)
    for rnd in range(1, args.pgdriver_rounds + 1):
        order = MODES if rnd % 2 else tuple(reversed(MODES))
        for tasks in args.pgdriver_tasks:
            for mode in order:
                url = pg.create_database("pgdriver")
                try:
                    migrate(url)
                    pg.checkpoint()
                    got = measure_one(url, mode, tasks, args.pgdriver_warmup, args.pgdriver_seconds)
                finally:
                    if not args.keep:
                        pg.drop_database(url)
                m = Measurement(
                    round=rnd,
                    mode=mode,
                    tasks=tasks,
                    commits=int(got["commits"]),
                    rows=int(got["rows"]),
                    seconds=float(got["seconds"]),
                    cpu_s=float(got["cpu_s"]),
                    p50_ms=float(got["p50_ms"]),
                    p95_ms=float(got["p95_ms"]),
                    machine_busy=float(got["machine_busy"]),
                )
                measurements.append(m)
                print(
                    f"[{len(measurements):2d}/{total}] round {rnd} {mode:8s} {tasks} task(s) "
                    f"{m.commits_per_s:7.0f} commits/s {m.rows_per_s:8.0f} rows/s  "
                    f"p50 {m.p50_ms:5.1f}  p95 {m.p95_ms:5.1f} ms  "
                    f"CPU {m.cpu_ms_per_commit:.2f} ms/commit",
                    flush=True,
                )
    return DriverResults(
        measurements=measurements,
        rounds=args.pgdriver_rounds,
        tasks=list(args.pgdriver_tasks),
        warmup=args.pgdriver_warmup,
        seconds=args.pgdriver_seconds,
        pg_version=pg.version,
        pg_settings=pg.settings_text(),
        versions=_versions(),
        date=date,
        command=command,
        elapsed_s=time.monotonic() - began,
    )


def _table(header: list[str], rows: list[list[str]], align: str) -> list[str]:
    marks = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(marks) + " |"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def render(res: DriverResults) -> list[str]:
    rows = []
    for tasks in res.tasks:
        for mode in MODES:
            low, high = res.spread(mode, tasks, "commits_per_s")
            ratio = "" if mode == "threads" else f" (×{res.ratio(tasks):.2f})"
            rows.append(
                [
                    LABELS[mode],
                    str(tasks),
                    f"**{res.med(mode, tasks, 'commits_per_s'):,.0f}**{ratio} "
                    f"({low:,.0f}–{high:,.0f})",
                    f"{res.med(mode, tasks, 'rows_per_s'):,.0f}",
                    f"{res.med(mode, tasks, 'p50_ms'):.2f}",
                    f"{res.med(mode, tasks, 'p95_ms'):.2f}",
                    f"{res.med(mode, tasks, 'cpu_ms_per_commit'):.2f}",
                ]
            )
    kept = res.kept
    verdict = (
        f"**Kept: {LABELS[kept]}.** "
        + (
            "(b) is not clearly faster (the rule: the service switches only if (b) makes at "
            f"least ×{CLEARLY_FASTER:.2f} the commits/s of (a) at every task count): "
            if kept == "threads"
            else f"(b) makes at least ×{CLEARLY_FASTER:.2f} the commits/s of (a) at every task "
            "count: "
        )
        + "; ".join(
            f"{t} task(s): (b) ÷ (a) = ×{res.ratio(t):.2f} commits/s, "
            f"×{res.ratio(t, 'cpu_ms_per_commit'):.2f} client CPU per commit"
            for t in res.tasks
        )
        + ". The CPU per commit is the steadier figure on a shared box: commits/s moves with "
        "whatever else runs (see *all CPUs busy* below)."
    )
    appendix = [
        [
            str(m.round),
            m.mode,
            str(m.tasks),
            f"{m.commits_per_s:,.0f}",
            f"{m.rows_per_s:,.0f}",
            f"{m.p50_ms:.2f}",
            f"{m.p95_ms:.2f}",
            f"{m.cpu_ms_per_commit:.2f}",
            f"{100 * m.machine_busy:.0f} %",
        ]
        for m in res.measurements
    ]
    return [
        *_header(res),
        "### Results (medians)",
        "",
        *_table(
            [
                "variant",
                "trio tasks",
                "commits/s (×(a)) (min–max)",
                "rows/s",
                "commit p50 ms",
                "p95 ms",
                "CPU ms/commit",
            ],
            rows,
            "lrrrrrr",
        ),
        "",
        verdict,
        "",
        "Every measurement:",
        "",
        *_table(
            [
                "round",
                "variant",
                "tasks",
                "commits/s",
                "rows/s",
                "p50 ms",
                "p95 ms",
                "CPU ms",
                "all CPUs busy",
            ],
            appendix,
            "lllrrrrrr",
        ),
        "",
    ]


def _header(res: DriverResults) -> list[str]:
    return [
        "## psycopg driver choice: sync pool in threads vs AsyncConnectionPool under trio-asyncio",
        "",
        f"Generated {res.date} by `{res.command}` in {res.elapsed_s / 60:.1f} min.",
        "",
        "### Method",
        "",
        f"- One *commit* = the service's PostgreSQL group commit for {REQUESTS_PER_COMMIT} "
        f"webhooks × {ALERTS_PER_REQUEST} alerts: {REQUESTS_PER_COMMIT * ALERTS_PER_REQUEST} new "
        "alert states folded and sorted as `PostgresStorage.write_events` does, then the "
        "service's own one-statement commit imported from `alert_history.storage.postgres` "
        "(`_WRITE_EVENTS`: the insert and the current-state upsert as data-modifying CTEs, "
        "autocommit; one binary array per column built by `_columns` from `event_params(..., "
        "exact_columns=True)` and `current_params`, on connections set up by `_configure`). "
        "Building the parameters is inside the loop, as in the service. Each task has its own "
        "fingerprints (no row-lock waits between tasks).",
        f"- Pools with the service's settings: max {POOL_SIZE} connections (min = tasks, opened "
        "before timing), autocommit, `check_connection` on checkout. (a) runs each commit in "
        f"`trio.to_thread.run_sync` under a CapacityLimiter({POOL_SIZE}); (b) awaits each "
        "commit through `trio_asyncio.aio_as_trio` inside `open_loop()`, `trio_asyncio` "
        "imported before psycopg.",
        f"- Every measurement is a fresh process (`python -m bench.pgdriver --mode threads|asyncio "
        f"--tasks N`) on a fresh database with the migrations applied: {res.warmup:g} s warm-up, "
        f"{res.seconds:g} s measured, trio tasks committing in a closed loop. {res.rounds} "
        "rounds, alternating which variant goes first; medians (min–max of commits/s); *×(a)* "
        "is the median of the per-round ratios (b) ÷ (a), each pair measured back to back.",
        f"- PostgreSQL {res.pg_version} on the same machine (durable defaults, {res.pg_settings}); "
        f"{res.versions}.",
        "- *CPU ms/commit*: the benchmark process's CPU (all threads; not the server's) per "
        "commit. *All CPUs busy* (every measurement, below): the whole machine while measured, "
        "other jobs on the box included (2 cores: 50 % = one core).",
        "",
    ]


def console_summary(res: DriverResults) -> str:
    out = ["pgdriver (median commits/s, rows/s):"]
    for tasks in res.tasks:
        for mode in MODES:
            out.append(
                f"  {mode:8s} {tasks} task(s) {res.med(mode, tasks, 'commits_per_s'):7.0f} "
                f"{res.med(mode, tasks, 'rows_per_s'):8.0f}"
            )
    out.append(f"  kept: {res.kept}")
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(child())
