"""Which legacy schema a source holds, found by its tables and columns (blocking calls)."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

import psycopg

from alert_history.config import redact_url
from alert_history.errors import AlertHistoryError
from alert_history.legacy.schemas import Table, postgres_tables, sqlite_tables
from alert_history.storage import sqlite_path

CONNECT_TIMEOUT = 10  # seconds


class LegacySourceError(AlertHistoryError):
    """The legacy database cannot be opened or read, or holds no legacy tables."""


@dataclass(frozen=True)
class LegacySource:
    """A legacy database: where it is, its schema's label, the tables to import."""

    location: str  # a SQLite path or a PostgreSQL URL
    backend: Literal["sqlite", "postgres"]
    label: str
    tables: tuple[Table, ...]
    columns: Mapping[str, frozenset[str]]  # lower-case column names per table

    @property
    def display(self) -> str:
        return redact_url(self.location)


def is_postgres_url(source: str) -> bool:
    return source.startswith(("postgresql://", "postgres://"))


def detect(source: str) -> LegacySource:
    """Find the legacy tables of a SQLite file (or `sqlite:///` URL) or `postgresql://` URL.

    Raises LegacySourceError when the source cannot be read or holds no legacy table.
    """
    if is_postgres_url(source):
        columns = _postgres_columns(source)
        tables, label = postgres_tables(columns)
        found = LegacySource(source, "postgres", label, tables, columns)
    else:
        path = sqlite_path(source) if source.startswith("sqlite://") else source
        columns = _sqlite_columns(path)
        tables, label = sqlite_tables(columns)
        found = LegacySource(path, "sqlite", label, tables, columns)
    if not found.tables:
        raise LegacySourceError(
            f"{found.display} holds no legacy alert-history tables (expected v1 `alert_history`, "
            "v2 SQLite `alerts` with `starts_at` and `received_at`, or v2 PostgreSQL `alerts` "
            "with `alert_name`)"
        )
    return found


def connect_sqlite(path: str) -> sqlite3.Connection:
    """Open a legacy SQLite file read-only (never created, never written)."""
    if not os.path.isfile(path):
        raise LegacySourceError(f"{path}: no such file")
    uri = f"file:{quote(os.path.abspath(path))}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
    except sqlite3.Error as exc:
        raise LegacySourceError(f"{path}: {exc}") from exc
    conn.execute("PRAGMA busy_timeout=5000")  # the legacy service may still be writing
    return conn


def connect_postgres(url: str) -> psycopg.Connection[tuple[Any, ...]]:
    """Connect to a legacy PostgreSQL database in read-only transactions, times in UTC."""
    try:
        conn = psycopg.connect(
            url, autocommit=True, connect_timeout=CONNECT_TIMEOUT, application_name="import-legacy"
        )
    except psycopg.Error as exc:
        raise LegacySourceError(f"{redact_url(url)}: {exc}") from exc
    try:
        conn.execute("SET default_transaction_read_only = on")
        conn.execute("SET TIME ZONE 'UTC'")  # timestamps read as text come in UTC
    except psycopg.Error as exc:
        conn.close()
        raise LegacySourceError(f"{redact_url(url)}: {exc}") from exc
    return conn


def _sqlite_columns(path: str) -> dict[str, frozenset[str]]:
    conn = connect_sqlite(path)
    try:
        names = [n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {
            name.lower(): _lower(row[1] for row in conn.execute(f'PRAGMA table_info("{name}")'))
            for name in names
        }
    except sqlite3.Error as exc:
        raise LegacySourceError(f"{path}: {exc}") from exc
    finally:
        conn.close()


def _postgres_columns(url: str) -> dict[str, frozenset[str]]:
    conn = connect_postgres(url)
    try:
        rows = conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = ANY(current_schemas(false))"
            " AND table_name IN ('alerts', 'alert_classifications')"
        ).fetchall()
    except psycopg.Error as exc:
        raise LegacySourceError(f"{redact_url(url)}: {exc}") from exc
    finally:
        conn.close()
    columns: dict[str, set[str]] = {}
    for table, column in rows:
        columns.setdefault(str(table), set()).add(str(column).lower())
    return {table: frozenset(names) for table, names in columns.items()}


def _lower(names: Iterable[object]) -> frozenset[str]:
    return frozenset(str(n).lower() for n in names)
