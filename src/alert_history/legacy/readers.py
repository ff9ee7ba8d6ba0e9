"""Stream a legacy table in batches (blocking generators, run from worker threads).

Nothing is loaded whole: SQLite rows come from one cursor with `fetchmany`, PostgreSQL rows
from a server-side cursor in one read-only transaction (a consistent snapshot of the table).
Driver errors become LegacySourceError.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Generator

import psycopg

from alert_history.config import redact_url
from alert_history.legacy.detect import (
    LegacySource,
    LegacySourceError,
    connect_postgres,
    connect_sqlite,
)
from alert_history.legacy.schemas import Table

Batch = list[dict[str, object]]
Batches = Generator[Batch, None, None]


def read_batches(source: LegacySource, table: Table, size: int) -> Batches:
    """Yield the rows of `table` as canonical dicts, `size` at a time, in id order."""
    present = source.columns.get(table.name, frozenset())
    if source.backend == "sqlite":
        return _sqlite_batches(source.location, table.select(present, postgres=False), table, size)
    return _postgres_batches(source.location, table.select(present, postgres=True), table, size)


def _sqlite_batches(path: str, query: str, table: Table, size: int) -> Batches:
    conn = connect_sqlite(path)
    try:
        cursor = conn.execute(query)
        while rows := cursor.fetchmany(size):
            yield [table.shape(row) for row in rows]
    except sqlite3.Error as exc:
        raise LegacySourceError(f"{path}: reading {table.name}: {exc}") from exc
    finally:
        conn.close()


def _postgres_batches(url: str, query: str, table: Table, size: int) -> Batches:
    conn = connect_postgres(url)
    try:
        with conn.transaction(), conn.cursor(name=f"import_{table.name}") as cursor:
            cursor.itersize = size
            cursor.execute(query)
            while rows := cursor.fetchmany(size):
                yield [table.shape(row) for row in rows]
    except psycopg.Error as exc:
        raise LegacySourceError(f"{redact_url(url)}: reading {table.name}: {exc}") from exc
    finally:
        conn.close()
