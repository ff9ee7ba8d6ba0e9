"""SQLite backend: WAL, one writer connection used from one thread at a time, pooled readers.

sqlite3 blocks, so every call runs in a worker thread (`trio.to_thread.run_sync`) under a
CapacityLimiter sized to its connections. Writes are group commits: the caller hands one
sequence for all the requests that waited, and it becomes one transaction.
"""

from __future__ import annotations

import functools
import os
import queue
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any, TypeVar

import msgspec
import trio

from alert_history.domain import sqlite_regexp
from alert_history.errors import StorageError, StorageUnavailable
from alert_history.models import (
    AlertEvent,
    Classification,
    CurrentState,
    HistoryPage,
    HistoryQuery,
    WriteOutcome,
)
from alert_history.storage.base import StorageStats
from alert_history.storage.executor import Db, SqliteDb
from alert_history.storage.migrations import Migration, known_migrations, pending
from alert_history.storage.sql import (
    CLASSIFICATION_FIELDS,
    CURRENT_FIELDS,
    EVENT_COLUMNS,
    EVENT_WRITE_FIELDS,
    EVENT_WRITE_PARAMS,
    PURGE_CURRENT,
    PURGE_EVENTS,
    classification_params,
    count_matching,
    current_params,
    current_winners,
    event_params,
    fold_group,
    history_filters,
    inserted_events,
    newest_classifications,
    one_row,
    page_matching,
    row_to_classification,
    row_to_event,
    values,
)
from alert_history.storage.sqlite_library import statistics_off

T = TypeVar("T")

# Rows per statement: 18 parameters a row stays far below SQLite's 32,766 variables.
_CHUNK = 500


@functools.lru_cache(maxsize=64)
def _insert_events(rows: int) -> str:
    return f"""
INSERT INTO alert_events ({EVENT_WRITE_FIELDS})
VALUES {values(rows, EVENT_WRITE_PARAMS, "?")}
ON CONFLICT (fingerprint, starts_at, status, ends_at) DO UPDATE SET
    notify_count = notify_count + excluded.notify_count,
    last_seen = max(last_seen, excluded.last_seen),
    annotations = excluded.annotations,
    filter_decision = coalesce(excluded.filter_decision, filter_decision),
    extra = coalesce(excluded.extra, extra)
"""


# Imports insert what is missing and touch nothing else; RETURNING names the rows inserted.
@functools.lru_cache(maxsize=64)
def _import_events(rows: int) -> str:
    return f"""
INSERT INTO alert_events ({EVENT_WRITE_FIELDS})
VALUES {values(rows, EVENT_WRITE_PARAMS, "?")}
ON CONFLICT (fingerprint, starts_at, status, ends_at) DO NOTHING
RETURNING fingerprint, starts_at, status, ends_at
"""


@functools.lru_cache(maxsize=64)
def _upsert_classifications(rows: int) -> str:
    return f"""
INSERT INTO classifications ({CLASSIFICATION_FIELDS}) VALUES {values(rows, 10, "?")}
ON CONFLICT (fingerprint) DO UPDATE SET
    severity = excluded.severity, confidence = excluded.confidence,
    reasoning = excluded.reasoning, recommendations = excluded.recommendations,
    processing_time = excluded.processing_time, metadata = excluded.metadata,
    model = excluded.model, source = excluded.source, created_at = excluded.created_at
WHERE excluded.created_at > classifications.created_at
"""


# Out-of-order deliveries never move the current state back: a later episode wins, and within
# one episode `resolved` wins over `firing`.
@functools.lru_cache(maxsize=64)
def _upsert_current(rows: int) -> str:
    return f"""
INSERT INTO alert_current ({CURRENT_FIELDS}) VALUES {values(rows, 8, "?")}
ON CONFLICT (fingerprint) DO UPDATE SET
    status = excluded.status, starts_at = excluded.starts_at, ends_at = excluded.ends_at,
    alertname = excluded.alertname, namespace = excluded.namespace,
    severity = excluded.severity, updated_at = excluded.updated_at
WHERE excluded.starts_at > alert_current.starts_at
   OR (excluded.starts_at = alert_current.starts_at
       AND (excluded.status = 'resolved' OR alert_current.status = 'firing'))
"""


_EVENT_COLUMNS = EVENT_COLUMNS.format(labels="labels", annotations="annotations")
#: the names of _EVENT_COLUMNS's results, in order (`x`, `... AS x`)
_EVENT_NAMES = ", ".join(c.rsplit(" AS ", 1)[-1].strip() for c in _EVENT_COLUMNS.split(","))
_decode_rows = msgspec.json.Decoder(list[tuple[Any, ...]]).decode
_ID = itemgetter(0)


def sqlite_path(url: str) -> str:
    """Return the file path of a `sqlite:///path` URL (`sqlite:////abs` or `sqlite:///rel`)."""
    if not url.startswith("sqlite://"):
        raise StorageError(f"not a SQLite URL: {url!r}")
    path = url[len("sqlite://") :]
    return path[1:] if path.startswith("/") else path


class SQLiteStorage:
    """The embedded default backend."""

    backend = "sqlite"

    def __init__(self, path: str, *, readers: int = 4) -> None:
        self.path = path
        self._writer: sqlite3.Connection | None = None
        self._write_limiter = trio.CapacityLimiter(1)
        self._read_limiter = trio.CapacityLimiter(readers)
        self._readers: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._reader_count = readers
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self, *, migrate: bool = True, check: bool = True) -> None:
        """Create the file and folder if needed, apply migrations, open the connections.

        With `migrate` false, pending migrations are an error unless `check` is false too (the
        `migrate` command opens that way); a schema newer than the code is always an error.
        """
        await trio.to_thread.run_sync(self._open_sync, migrate, check)

    def _open_sync(self, migrate: bool, check: bool) -> None:
        folder = os.path.dirname(self.path)
        if folder:
            try:
                os.makedirs(folder, exist_ok=True)
            except OSError as exc:
                raise StorageUnavailable(f"cannot create {folder}: {exc}") from exc
        statistics_off()  # before our connections: readers in parallel (sqlite_library.py)
        self._writer = self._connect()
        self._writer.execute("PRAGMA journal_mode=WAL")
        if migrate:
            self._migrate_sync(self._writer, dry_run=False)
        else:
            todo = self._pending_sync(self._writer)
            if todo and check:
                raise StorageError(f"{len(todo)} migrations pending; run `alert-history migrate`")
        for _ in range(self._reader_count):
            self._readers.put(self._connect())

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StorageUnavailable(f"cannot open {self.path}: {exc}") from exc
        conn.create_function("regexp", 2, sqlite_regexp, deterministic=True)
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        async with self._write_limiter:
            if self._writer is not None:
                self._writer.close()
        while True:
            try:
                self._readers.get_nowait().close()
            except queue.Empty:
                break

    # -- migrations ------------------------------------------------------------------------

    async def migrate(self, *, dry_run: bool = False) -> list[Migration]:
        """Apply (or with dry_run only list) pending migrations; return them."""
        return await self._write(lambda conn: self._migrate_sync(conn, dry_run=dry_run))

    def _pending_sync(self, conn: sqlite3.Connection) -> list[Migration]:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
            " name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        applied = dict(conn.execute("SELECT version, checksum FROM schema_migrations"))
        return pending(known_migrations("sqlite"), applied)

    def _migrate_sync(self, conn: sqlite3.Connection, *, dry_run: bool) -> list[Migration]:
        todo = self._pending_sync(conn)
        if dry_run:
            return todo
        for migration in todo:
            now = datetime.now(UTC).isoformat()
            conn.executescript(
                f"BEGIN IMMEDIATE;\n{migration.sql}\n"
                f"INSERT INTO schema_migrations VALUES ({migration.version}, "
                f"'{migration.name}', '{migration.checksum}', '{now}');\nCOMMIT;"
            )
        return todo

    # -- writes ----------------------------------------------------------------------------

    async def write_events(self, events: Sequence[AlertEvent]) -> WriteOutcome:
        rows = fold_group(events)
        current = current_winners(rows)
        inserted = await self._write(lambda conn: self._write_events_sync(conn, rows, current))
        return WriteOutcome(inserted, len(events) - inserted)

    @staticmethod
    def _write_events_sync(
        conn: sqlite3.Connection, events: Sequence[AlertEvent], current: Sequence[AlertEvent]
    ) -> int:
        # One multi-row statement per chunk: every call into sqlite3 hands the GIL back to the
        # event loop thread, and getting it back costs more than the statement itself.
        conn.execute("BEGIN IMMEDIATE")
        try:
            (before,) = conn.execute("SELECT coalesce(max(id), 0) FROM alert_events").fetchone()
            after = before
            for start in range(0, len(events), _CHUNK):
                chunk = events[start : start + _CHUNK]
                cursor = conn.execute(_insert_events(len(chunk)), event_params(chunk))
                # the rowid of the last row this statement inserted; repeats do not move it
                after = max(after, cursor.lastrowid or 0)
            for start in range(0, len(current), _CHUNK):
                chunk = current[start : start + _CHUNK]
                conn.execute(_upsert_current(len(chunk)), current_params(chunk))
            conn.execute("COMMIT")
        except Exception:
            conn.execute("ROLLBACK")
            raise
        # new rows get max(id) + 1, + 2, ... (INTEGER PRIMARY KEY; the newest row is never
        # deleted first), so the ids they took say how many were inserted
        return int(after - before)

    async def import_events(self, events: Sequence[AlertEvent]) -> int:
        return await self._write(lambda conn: self._import_events_sync(conn, events))

    @staticmethod
    def _import_events_sync(conn: sqlite3.Connection, events: Sequence[AlertEvent]) -> int:
        conn.execute("BEGIN IMMEDIATE")
        try:
            inserted: list[AlertEvent] = []
            for start in range(0, len(events), _CHUNK):
                chunk = events[start : start + _CHUNK]
                keys = conn.execute(_import_events(len(chunk)), event_params(chunk)).fetchall()
                inserted += inserted_events(chunk, keys)
            current = current_winners(inserted)
            for start in range(0, len(current), _CHUNK):
                rows = current[start : start + _CHUNK]
                conn.execute(_upsert_current(len(rows)), current_params(rows))
            conn.execute("COMMIT")
        except Exception:
            conn.execute("ROLLBACK")
            raise
        return len(inserted)

    async def write_classifications(self, items: Sequence[Classification]) -> int:
        rows = newest_classifications(items)

        def run(conn: sqlite3.Connection) -> int:
            written = 0
            conn.execute("BEGIN IMMEDIATE")
            try:
                for start in range(0, len(rows), _CHUNK):
                    chunk = rows[start : start + _CHUNK]
                    cursor = conn.execute(
                        _upsert_classifications(len(chunk)), classification_params(chunk)
                    )
                    written += cursor.rowcount  # inserts and updates; not rows kept as they were
                conn.execute("COMMIT")
            except Exception:
                conn.execute("ROLLBACK")
                raise
            return written

        return await self._write(run)

    async def purge(self, cutoff: int, limit: int) -> int | None:
        def run(conn: sqlite3.Connection) -> int:
            conn.execute("BEGIN IMMEDIATE")
            try:
                deleted = conn.execute(PURGE_EVENTS.format(p="?"), (cutoff, cutoff, limit)).rowcount
                conn.execute(PURGE_CURRENT.format(p="?"), (cutoff,))
                conn.execute("COMMIT")
            except Exception:
                conn.execute("ROLLBACK")
                raise
            return int(deleted)

        return await self._write(run)

    # -- reads -----------------------------------------------------------------------------

    async def history(self, query: HistoryQuery) -> HistoryPage:
        return await self._read(lambda conn: _history_sync(conn, query))

    async def current_state(self, fingerprint: str) -> CurrentState | None:
        def run(conn: sqlite3.Connection) -> CurrentState | None:
            row = conn.execute(
                f"SELECT {CURRENT_FIELDS} FROM alert_current WHERE fingerprint = ?",
                (fingerprint,),
            ).fetchone()
            if row is None:
                return None
            fp, status, starts, ends, name, ns, sev, updated = row
            return CurrentState(
                fingerprint=fp, status=status, starts_at=starts, ends_at=ends, alertname=name,
                namespace=ns, severity=sev, updated_at=updated,
            )  # fmt: skip

        return await self._read(run)

    async def get_classification(self, fingerprint: str) -> Classification | None:
        def run(conn: sqlite3.Connection) -> Classification | None:
            row = conn.execute(
                f"SELECT {CLASSIFICATION_FIELDS} FROM classifications WHERE fingerprint = ?",
                (fingerprint,),
            ).fetchone()
            return None if row is None else row_to_classification(row)

        return await self._read(run)

    async def ping(self) -> None:
        await self._read(lambda conn: conn.execute("SELECT 1").fetchone())

    async def stats(self) -> StorageStats:
        def run(conn: sqlite3.Connection) -> StorageStats:
            events = conn.execute("SELECT max(id) FROM alert_events").fetchone()[0] or 0
            current, firing = conn.execute(
                "SELECT count(*), coalesce(sum(status = 'firing'), 0) FROM alert_current"
            ).fetchone()
            size = os.path.getsize(self.path) if os.path.exists(self.path) else None
            return StorageStats(events, current, firing, size)

        return await self._read(run)

    # -- plumbing --------------------------------------------------------------------------

    async def read(self, fn: Callable[[Db], T]) -> T:
        return await self._read(lambda conn: fn(SqliteDb(conn)))

    async def write(self, fn: Callable[[Db], T]) -> T:
        def run(conn: sqlite3.Connection) -> T:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(SqliteDb(conn))
                conn.execute("COMMIT")
            except Exception:
                conn.execute("ROLLBACK")
                raise
            return result

        return await self._write(run)

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        async with self._write_limiter:
            conn = self._writer
            if conn is None or self._closed:
                raise StorageUnavailable("storage is closed")
            return await trio.to_thread.run_sync(_translated, fn, conn, limiter=None)

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        async with self._read_limiter:
            if self._closed:
                raise StorageUnavailable("storage is closed")
            with self._borrow() as conn:
                return await trio.to_thread.run_sync(_translated, fn, conn, limiter=None)

    @contextmanager
    def _borrow(self) -> Iterator[sqlite3.Connection]:
        conn = self._readers.get_nowait()
        try:
            yield conn
        finally:
            self._readers.put(conn)


def _translated(fn: Callable[[sqlite3.Connection], T], conn: sqlite3.Connection) -> T:
    try:
        return fn(conn)
    except sqlite3.OperationalError as exc:
        raise StorageUnavailable(f"sqlite: {exc}") from exc
    except sqlite3.Error as exc:
        raise StorageError(f"sqlite: {exc}") from exc


def _history_sync(conn: sqlite3.Connection, q: HistoryQuery) -> HistoryPage:
    filters, args = history_filters(q, "?", "sqlite")
    (total,) = conn.execute(count_matching(filters, "?"), [*args, q.count_limit + 1]).fetchone()
    if q.before_id is not None:
        filters += " AND id < ?"
        args.append(q.before_id)
    page = page_matching(_EVENT_COLUMNS, filters, q, "?")
    (packed,) = conn.execute(one_row(page, _EVENT_NAMES), [*args, q.limit + 1, q.offset]).fetchone()
    rows = _decode_rows(packed)
    rows.sort(key=_ID, reverse=True)  # newest first, as the page
    events = [row_to_event(row) for row in rows[: q.limit]]
    next_id = events[-1].id if len(rows) > q.limit else None
    return HistoryPage(events, min(total, q.count_limit), next_id, total > q.count_limit)
