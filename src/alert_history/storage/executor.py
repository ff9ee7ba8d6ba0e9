"""A small dialect-neutral view of a connection, for feature queries kept in their own modules.

Feature SQL (reports, timelines, rules) is written once with `?` placeholders and runs on both
backends through `Storage.read(fn)` / `Storage.write(fn)`: `fn(db)` runs in a worker thread with
a `Db`, inside one transaction for `write`. Dialect differences that remain are named by
`db.dialect` ("sqlite" or "postgres").
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any, Literal, Protocol

import psycopg

Dialect = Literal["sqlite", "postgres"]
Row = tuple[Any, ...]


class Db(Protocol):
    dialect: Dialect

    def fetchall(self, sql: str, params: Sequence[object] = ()) -> list[Row]: ...

    def fetchone(self, sql: str, params: Sequence[object] = ()) -> Row | None: ...

    def execute(self, sql: str, params: Sequence[object] = ()) -> int:
        """Run a statement; return the number of rows it changed."""
        ...


class SqliteDb:
    dialect: Dialect = "sqlite"

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def fetchall(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        return self._conn.execute(sql, params).fetchall()

    def fetchone(self, sql: str, params: Sequence[object] = ()) -> Row | None:
        row: Row | None = self._conn.execute(sql, params).fetchone()
        return row

    def execute(self, sql: str, params: Sequence[object] = ()) -> int:
        return int(self._conn.execute(sql, params).rowcount)


class PostgresDb:
    dialect: Dialect = "postgres"

    def __init__(self, conn: psycopg.Connection[Row]) -> None:
        self._conn = conn

    @staticmethod
    def _sql(sql: str) -> bytes:
        # feature SQL uses `?`; psycopg wants `%s` (and a literal % doubled)
        return sql.replace("%", "%%").replace("?", "%s").encode()

    def fetchall(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        return self._conn.execute(self._sql(sql), params).fetchall()

    def fetchone(self, sql: str, params: Sequence[object] = ()) -> Row | None:
        return self._conn.execute(self._sql(sql), params).fetchone()

    def execute(self, sql: str, params: Sequence[object] = ()) -> int:
        return self._conn.execute(self._sql(sql), params).rowcount
