"""Fill a fresh database with a `Dataset`: PostgreSQL by COPY, SQLite by executemany.

The schema comes from the service's own migrations (`open_storage(url)` under trio, then
closed), so the loaded database is one the service opens as it is. Rows go in in arrival order,
so the ids the database assigns grow with `first_seen`; ids are not written, which keeps
PostgreSQL's identity sequence and SQLite's rowid where the service's next insert expects them.
"""

from __future__ import annotations

import os
import resource
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
import trio

from alert_history.storage import open_storage
from alert_history.storage.report_rollup import refresh_all
from alert_history.storage.sql import CURRENT_FIELDS, EVENT_FIELDS
from bench.dataset import Dataset

SQLITE_BATCH = 100_000  # rows per transaction


@dataclass(frozen=True)
class Loaded:
    backend: str
    url: str
    events: int
    current: int
    load_s: float  # inserting events and current rows, commits included
    after_s: float  # PostgreSQL: VACUUM ANALYZE; SQLite: the WAL checkpoint
    size_bytes: int
    client_cpu_s: float = 0.0  # this process's CPU while loading (SQLite: all of the work)
    server_cpu_s: float | None = None  # PostgreSQL's processes' CPU while loading

    @property
    def rows_per_s(self) -> float:
        return (self.events + self.current) / self.load_s if self.load_s else 0.0


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def migrate(url: str) -> None:
    """Apply the service's migrations to `url` (a fresh database)."""

    async def run() -> None:
        storage = await open_storage(url)
        await storage.aclose()

    trio.run(run)


_ROLLUP_TABLES = (
    "report_days, report_hours, report_spans, report_multi, report_multi_hours,"
    " report_names_days, report_names_hours, report_names_spans"
)


def build_report_rollup(url: str) -> None:
    """Refresh GET /report's rollup for the loaded rows (storage/report_rollup.py), as the
    service's housekeeping does after start: the report rows are then timed on it, and no
    backfill runs while other rows are timed. Not part of the load's timings."""

    async def run() -> None:
        storage = await open_storage(url)
        try:
            await refresh_all(storage, pause=0)
            if url.startswith("postgresql"):  # as autovacuum does after such a build
                await storage.write(lambda db: db.execute(f"ANALYZE {_ROLLUP_TABLES}"))
        finally:
            await storage.aclose()

    trio.run(run)


def load_sqlite(path: Path, data: Dataset) -> Loaded:
    url = f"sqlite:///{path}"
    migrate(url)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        # the service's own settings are WAL + synchronous=FULL; a bulk load commits rarely, so
        # only the page cache is raised (the service's connections keep the default)
        conn.execute("PRAGMA cache_size=-262144")  # 256 MiB
        began, cpu0 = time.monotonic(), _cpu()
        insert = f"INSERT INTO alert_events ({EVENT_FIELDS}) VALUES ({', '.join('?' * 17)})"
        for start in range(0, len(data.events), SQLITE_BATCH):
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(insert, data.events[start : start + SQLITE_BATCH])
            conn.execute("COMMIT")
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            f"INSERT INTO alert_current ({CURRENT_FIELDS}) VALUES ({', '.join('?' * 8)})",
            data.current,
        )
        conn.execute("COMMIT")
        load_s, cpu = time.monotonic() - began, _cpu() - cpu0
        began = time.monotonic()
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        after_s = time.monotonic() - began
        (events,) = conn.execute("SELECT count(*) FROM alert_events").fetchone()
    finally:
        conn.close()
    build_report_rollup(url)
    size = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    return Loaded("SQLite", url, int(events), len(data.current), load_s, after_s, size, cpu)


def load_postgres(url: str, data: Dataset, server_cpu: Callable[[], float]) -> Loaded:
    """COPY `data` into `url`; `server_cpu()` reads the PostgreSQL server's CPU seconds."""
    migrate(url)
    with psycopg.connect(url) as conn:
        began, cpu0, server0 = time.monotonic(), _cpu(), server_cpu()
        with conn.cursor() as cur:
            with cur.copy(f"COPY alert_events ({EVENT_FIELDS}) FROM STDIN") as copy:
                for row in data.events:
                    copy.write_row(row)
            with cur.copy(f"COPY alert_current ({CURRENT_FIELDS}) FROM STDIN") as copy:
                for row in data.current:
                    copy.write_row(row)
        conn.commit()
        load_s, cpu, server = time.monotonic() - began, _cpu() - cpu0, server_cpu() - server0
    build_report_rollup(url)
    with psycopg.connect(url, autocommit=True) as conn:
        # what autovacuum would do shortly after such a load: statistics and the visibility map
        began = time.monotonic()
        conn.execute("VACUUM ANALYZE alert_events")
        conn.execute("VACUUM ANALYZE alert_current")
        after_s = time.monotonic() - began
        count = conn.execute("SELECT count(*) FROM alert_events").fetchone()
        size_row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    events = int(count[0]) if count else 0
    size = int(size_row[0]) if size_row else 0
    return Loaded("PostgreSQL", url, events, len(data.current), load_s, after_s, size, cpu, server)


def file_size(path: str) -> int:
    return os.path.getsize(path) if os.path.exists(path) else 0
