"""PostgreSQL backend: psycopg 3's sync connection pool, called from trio worker threads.

psycopg's async API runs only on asyncio; the sync pool in threads needs no second event loop
(stack notes measured it faster with several concurrent writers). Every call is bounded:
`connect_timeout`, the pool's checkout `timeout` and the server-side `statement_timeout`, so a
lost database answers with `StorageUnavailable` in seconds instead of hanging a request. The
pool checks connections on checkout (`_check_connection`) and reconnects by itself when the
database comes back.
"""

from __future__ import annotations

import functools
import select
import struct
import weakref
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import psycopg
import psycopg_pool
import trio
from psycopg import errors as pg_errors
from psycopg import pq
from psycopg.abc import Buffer
from psycopg.adapt import Dumper
from psycopg.types.string import StrBinaryDumper, StrDumperUnknown

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
from alert_history.storage.executor import Db, PostgresDb
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
    page_matching,
    row_to_classification,
    row_to_event,
    state_key,
    values,
)

T = TypeVar("T")
Conn = psycopg.Connection[tuple[Any, ...]]

_CHUNK = 500  # rows per statement: 20 parameters a row, far below the protocol's 65,535
_MIGRATION_LOCK = 7_314_001  # pg_advisory_xact_lock key: one replica migrates at a time
_PURGE_LOCK = 7_314_002  # pg_try_advisory_xact_lock key: one replica purges at a time
_RETRIES = 3  # deadlocks and serialization failures between replicas are retried
_REPLAN_ROWS = 2_000  # a connection re-plans after inserting this many rows (`_replan`)

# jsonb read back as text, decoded by msgspec as on SQLite
_CLASSIFICATION_COLUMNS = (
    "fingerprint, severity, confidence, reasoning, recommendations::text, processing_time, "
    "metadata::text, model, source, created_at"
)

_NO_PARALLEL = "SET LOCAL max_parallel_workers_per_gather = 0"

_EVENT_COLUMNS = EVENT_COLUMNS.format(
    labels="coalesce(labels_exact, labels::text)",
    annotations="coalesce(annotations_exact, annotations::text)",
)


# One fixed statement over arrays (unnest), not VALUES with a placeholder per cell: psycopg
# prepares and caches a statement only below 4,096 characters and 50 parameters, and parsing a
# multi-row VALUES statement cost half the writer's CPU (bench/RESULTS.md).
_EVENT_TYPES = (
    "text", "text", "bigint", "bigint", "text", "text", "text", "jsonb", "jsonb", "text", "text",
    "text", "text", "boolean", "bigint", "bigint", "integer", "jsonb", "jsonb", "text", "text",
)  # fmt: skip
_CURRENT_TYPES = ("text", "text", "bigint", "bigint", "text", "text", "text", "bigint")
assert len(_EVENT_TYPES) == EVENT_WRITE_PARAMS + 2, "one type per written column"


def _unnest(types: tuple[str, ...]) -> str:
    # %b: arrays go in binary, each element as its length and bytes; the text format quotes and
    # escapes every element with a regex (JSON is full of quotes): most of the writer's CPU.
    return "SELECT * FROM unnest(" + ", ".join(f"%b::{t}[]" for t in types) + ")"


class _Array(bytes):
    """A one-dimensional PostgreSQL array in the binary wire format, sent as it is."""


class _ArrayDumper(Dumper):
    # oid 0: the statement's cast (`%b::text[]`) gives the parameter its type; the element
    # type in the array's header must match it, or the server refuses the array
    format = pq.Format.BINARY

    def dump(self, obj: object) -> Buffer:
        assert isinstance(obj, _Array)
        return obj


_HEAD = struct.Struct(">iiIii").pack  # dimensions, has nulls, element oid, length, lower bound
_LEN = _INT4 = struct.Struct(">i").pack
_INT8 = struct.Struct(">q").pack
_NULL = _LEN(-1)
_ELEMENT_OIDS = {"text": 25, "jsonb": 3802, "bigint": 20, "integer": 23, "boolean": 16}


def _array(values: list[Any], type_: str, encoding: str) -> _Array:
    """`values` as a binary `type_[]`: each element its length and its bytes (NULL: length -1).

    psycopg would dump each element through its Python list dumper, 0.65 ms of the writer's
    thread per 50-alert commit with the GIL held (the HTTP server waits for it); this is a
    third of that. jsonb's binary form is a version byte (1) and the JSON text.
    """
    oid = _ELEMENT_OIDS[type_]
    count = len(values)
    head = _HEAD(1, 0 if None not in values else 1, oid, count, 1)
    if type_ == "bigint" and None not in values:
        flat: list[int] = [8] * (2 * count)
        flat[1::2] = values
        return _Array(head + struct.pack(">" + "iq" * count, *flat))
    if type_ == "text":
        data = [None if v is None else _nul_free(v).encode(encoding) for v in values]
    elif type_ == "jsonb":
        data = [None if v is None else b"\x01" + v.encode(encoding) for v in values]
    elif type_ == "boolean":
        data = [None if v is None else (b"\x01" if v else b"\x00") for v in values]
    elif type_ == "integer":
        data = [None if v is None else _INT4(v) for v in values]
    else:
        data = [None if v is None else _INT8(v) for v in values]
    parts: list[bytes] = [_NULL] * (2 * count)
    parts[0::2] = [_NULL if d is None else _LEN(len(d)) for d in data]
    parts[1::2] = [b"" if d is None else d for d in data]
    return _Array(head + b"".join(parts))


def _columns(conn: Conn, params: list[object], types: tuple[str, ...]) -> list[_Array]:
    """Row-major parameters as one binary array per column, for unnest."""
    width, encoding = len(types), conn.info.encoding
    return [_array(params[column::width], types[column], encoding) for column in range(width)]


_INSERT_EVENTS = f"""
INSERT INTO alert_events AS e ({EVENT_WRITE_FIELDS}, labels_exact, annotations_exact)
{_unnest(_EVENT_TYPES)}
ON CONFLICT (fingerprint, starts_at, status, ends_at) DO UPDATE SET
    notify_count = e.notify_count + excluded.notify_count,
    last_seen = greatest(e.last_seen, excluded.last_seen),
    annotations = excluded.annotations,
    annotations_exact = excluded.annotations_exact,
    filter_decision = coalesce(excluded.filter_decision, e.filter_decision),
    extra = coalesce(excluded.extra, e.extra)
RETURNING (xmax = 0) AS inserted
"""


# Imports insert what is missing and touch nothing else; RETURNING names the rows inserted.
@functools.lru_cache(maxsize=64)
def _import_events(rows: int) -> str:
    return f"""
INSERT INTO alert_events ({EVENT_WRITE_FIELDS}, labels_exact, annotations_exact)
VALUES {values(rows, EVENT_WRITE_PARAMS + 2, "%s")}
ON CONFLICT (fingerprint, starts_at, status, ends_at) DO NOTHING
RETURNING fingerprint, starts_at, status, ends_at
"""


@functools.lru_cache(maxsize=64)
def _upsert_classifications(rows: int) -> str:
    return f"""
INSERT INTO classifications AS c ({CLASSIFICATION_FIELDS})
VALUES {values(rows, 10, "%s")}
ON CONFLICT (fingerprint) DO UPDATE SET
    severity = excluded.severity, confidence = excluded.confidence,
    reasoning = excluded.reasoning, recommendations = excluded.recommendations,
    processing_time = excluded.processing_time, metadata = excluded.metadata,
    model = excluded.model, source = excluded.source, created_at = excluded.created_at
WHERE excluded.created_at > c.created_at
"""


# Out-of-order deliveries never move the current state back: a later episode wins, and within
# one episode `resolved` wins over `firing`.
_UPSERT_CURRENT = f"""
INSERT INTO alert_current AS c ({CURRENT_FIELDS}) {_unnest(_CURRENT_TYPES)}
ON CONFLICT (fingerprint) DO UPDATE SET
    status = excluded.status, starts_at = excluded.starts_at, ends_at = excluded.ends_at,
    alertname = excluded.alertname, namespace = excluded.namespace,
    severity = excluded.severity, updated_at = excluded.updated_at
WHERE excluded.starts_at > c.starts_at
   OR (excluded.starts_at = c.starts_at AND (excluded.status = 'resolved' OR c.status = 'firing'))
"""


# A group commit is this one statement in autocommit: its own transaction, one round trip.
# Each round trip hands the GIL back and the writer's thread waits for the event loop thread to
# yield it again (up to sys.getswitchinterval(), 5 ms, while HTTP keeps it busy): BEGIN,
# INSERT, UPSERT and COMMIT apart cost several of those waits per commit.
_WRITE_EVENTS = f"""
WITH written AS ({_INSERT_EVENTS.strip()}),
current AS ({_UPSERT_CURRENT.strip()})
SELECT count(*) FILTER (WHERE inserted) FROM written
"""


def _upsert_current(conn: Conn, events: Sequence[AlertEvent]) -> None:
    if events:
        conn.execute(_UPSERT_CURRENT, _columns(conn, current_params(events), _CURRENT_TYPES))


class PostgresStorage:
    """The backend for replicated deployments."""

    backend = "postgres"

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        connect_timeout: float = 5.0,
        statement_timeout: float = 30.0,
    ) -> None:
        self._checkout_timeout = connect_timeout
        self._pool = psycopg_pool.ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            open=False,
            timeout=connect_timeout,
            reconnect_timeout=0,  # keep trying for ever; readiness reports the outage
            check=_check_connection,
            configure=_configure,
            kwargs={
                "autocommit": True,
                "connect_timeout": max(1, int(connect_timeout)),
                # JIT compiles for tens of ms: more than any of the service's queries runs
                "options": f"-c statement_timeout={int(statement_timeout * 1000)} -c jit=off",
                "application_name": "alert-history",
            },
            name="alert-history",
        )
        self._limiter = trio.CapacityLimiter(pool_size)
        self._closed = False
        # per connection: rows it inserted since its cached plans were made
        self._unplanned: weakref.WeakKeyDictionary[Conn, int] = weakref.WeakKeyDictionary()

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self, *, migrate: bool = True, check: bool = True) -> None:
        """Connect, then apply migrations (or with `migrate` false require none pending)."""
        try:
            await trio.to_thread.run_sync(
                functools.partial(self._pool.open, wait=True, timeout=self._checkout_timeout)
            )
        except psycopg_pool.PoolTimeout as exc:
            raise StorageUnavailable(f"cannot connect to PostgreSQL: {exc}") from exc
        if migrate:
            await self.migrate()
        else:
            todo = await self.migrate(dry_run=True)
            if todo and check:
                raise StorageError(f"{len(todo)} migrations pending; run `alert-history migrate`")

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await trio.to_thread.run_sync(self._pool.close)

    # -- migrations ------------------------------------------------------------------------

    async def migrate(self, *, dry_run: bool = False) -> list[Migration]:
        return await self._run(lambda conn: _migrate_sync(conn, dry_run=dry_run))

    # -- writes ----------------------------------------------------------------------------

    async def write_events(self, events: Sequence[AlertEvent]) -> WriteOutcome:
        # a fixed row order keeps concurrent replicas from deadlocking on each other's rows
        rows = sorted(fold_group(events), key=state_key)
        current = current_winners(rows)

        def write(conn: Conn) -> int:
            params = _columns(conn, event_params(rows, exact_columns=True), _EVENT_TYPES)
            params += _columns(conn, current_params(current), _CURRENT_TYPES)
            self._replan(conn)
            (inserted,) = _one(conn.execute(_WRITE_EVENTS, params))
            self._unplanned[conn] = self._unplanned.get(conn, 0) + int(inserted)
            return int(inserted)

        inserted = await self._run(write, retry=True)
        return WriteOutcome(inserted, len(events) - inserted)

    def _replan(self, conn: Conn) -> None:
        """Drop the connection's cached plans once it has inserted `_REPLAN_ROWS` rows since.

        The report triggers' statements (migration 0006) are planned at their first run on a
        connection, and the plan is kept until the table's statistics change (autovacuum's
        ANALYZE, a minute or more away). The plan depends on the sizes at that moment: on a
        nearly empty alert_events (a new deployment, every bench run), or with a commit large
        against the table, the probe of alert_events by (fingerprint, starts_at) is a hash
        join over a sequential scan, and every later commit reads the whole, growing table
        (over a 10 s bench run, 7.4 ms of the statement's 10.8 ms per commit). Planned again
        on the grown table it is an index probe per row. Planning again costs about 1.5 ms,
        once per 2,000 rows.
        """
        if self._unplanned.get(conn, 0) >= _REPLAN_ROWS:
            conn.execute("DISCARD PLANS")
            self._unplanned[conn] = 0

    async def import_events(self, events: Sequence[AlertEvent]) -> int:
        rows = sorted(events, key=state_key)  # lock order, as in write_events

        def write(conn: Conn) -> int:
            inserted: list[AlertEvent] = []
            with conn.transaction():
                for start in range(0, len(rows), _CHUNK):
                    chunk = rows[start : start + _CHUNK]
                    params = event_params(chunk, exact_columns=True)
                    keys = conn.execute(_import_events(len(chunk)), params).fetchall()
                    inserted += inserted_events(chunk, keys)
                _upsert_current(conn, current_winners(inserted))
            return len(inserted)

        return await self._run(write, retry=True)

    async def write_classifications(self, items: Sequence[Classification]) -> int:
        rows = newest_classifications(items)

        def write(conn: Conn) -> int:
            written = 0
            with conn.transaction():
                for start in range(0, len(rows), _CHUNK):
                    chunk = rows[start : start + _CHUNK]
                    params = classification_params(chunk, jsonb=True)
                    written += conn.execute(_upsert_classifications(len(chunk)), params).rowcount
            return written

        return await self._run(write, retry=True)

    async def purge(self, cutoff: int, limit: int) -> int | None:
        def run(conn: Conn) -> int | None:
            with conn.transaction():
                (leader,) = _one(
                    conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (_PURGE_LOCK,))
                )
                if not leader:
                    return None
                deleted = conn.execute(
                    PURGE_EVENTS.format(p="%s"), (cutoff, cutoff, limit)
                ).rowcount
                conn.execute(PURGE_CURRENT.format(p="%s"), (cutoff,))
                return deleted

        return await self._run(run, retry=True)

    # -- reads -----------------------------------------------------------------------------

    async def history(self, query: HistoryQuery) -> HistoryPage:
        def read(conn: Conn) -> HistoryPage:
            filters, args = history_filters(query, "%s", "postgres")
            counted = [*args, query.count_limit + 1]
            with conn.transaction():
                # Parallel workers take longer to start than these queries take to run.
                conn.execute(_NO_PARALLEL)
                (total,) = _one(conn.execute(count_matching(filters, "%s"), counted))
                if query.before_id is not None:
                    filters += " AND id < %s"
                    args.append(query.before_id)
                rows = conn.execute(
                    page_matching(_EVENT_COLUMNS, filters, query, "%s"),
                    [*args, query.limit + 1, query.offset],
                ).fetchall()
            events = [row_to_event(row) for row in rows[: query.limit]]
            next_id = events[-1].id if len(rows) > query.limit else None
            capped = total > query.count_limit
            return HistoryPage(events, min(total, query.count_limit), next_id, capped)

        return await self._run(read, abandon=True)

    async def current_state(self, fingerprint: str) -> CurrentState | None:
        def read(conn: Conn) -> CurrentState | None:
            row = conn.execute(
                f"SELECT {CURRENT_FIELDS} FROM alert_current WHERE fingerprint = %s",
                (fingerprint,),
            ).fetchone()
            if row is None:
                return None
            fp, status, starts, ends, name, ns, sev, updated = row
            return CurrentState(
                fingerprint=fp, status=status, starts_at=starts, ends_at=ends, alertname=name,
                namespace=ns, severity=sev, updated_at=updated,
            )  # fmt: skip

        return await self._run(read, abandon=True)

    async def get_classification(self, fingerprint: str) -> Classification | None:
        def read(conn: Conn) -> Classification | None:
            row = conn.execute(
                f"SELECT {_CLASSIFICATION_COLUMNS} FROM classifications WHERE fingerprint = %s",
                (fingerprint,),
            ).fetchone()
            return None if row is None else row_to_classification(row)

        return await self._run(read, abandon=True)

    async def ping(self) -> None:
        await self._run(lambda conn: conn.execute("SELECT 1").fetchone(), abandon=True)

    async def stats(self) -> StorageStats:
        def read(conn: Conn) -> StorageStats:
            (events,) = _one(conn.execute("SELECT coalesce(max(id), 0) FROM alert_events"))
            current, firing = _one(
                conn.execute(
                    "SELECT count(*), count(*) FILTER (WHERE status = 'firing') FROM alert_current"
                )
            )
            (size,) = _one(conn.execute("SELECT pg_database_size(current_database())"))
            return StorageStats(
                int(str(events)), int(str(current)), int(str(firing)), int(str(size))
            )

        return await self._run(read, abandon=True)

    async def read(self, fn: Callable[[Db], T]) -> T:
        return await self._run(lambda conn: fn(PostgresDb(conn)), abandon=True)

    async def write(self, fn: Callable[[Db], T]) -> T:
        def run(conn: Conn) -> T:
            with conn.transaction():
                return fn(PostgresDb(conn))

        return await self._run(run, retry=True)

    # -- plumbing --------------------------------------------------------------------------

    async def _run(
        self, fn: Callable[[Conn], T], *, retry: bool = False, abandon: bool = False
    ) -> T:
        """Run `fn` with a pooled connection in a worker thread, translating driver errors.

        With `abandon`, a cancelled caller returns at once and the thread finishes on its own
        (bounded by the timeouts); writes are never abandoned halfway.
        """
        if self._closed:
            raise StorageUnavailable("storage is closed")
        attempts = _RETRIES if retry else 1
        for attempt in range(1, attempts + 1):
            try:
                return await trio.to_thread.run_sync(
                    self._call, fn, limiter=self._limiter, abandon_on_cancel=abandon
                )
            except (pg_errors.DeadlockDetected, pg_errors.SerializationFailure) as exc:
                if attempt == attempts:
                    raise StorageError(f"postgres: {exc}") from exc
        raise AssertionError("unreachable")

    def _call(self, fn: Callable[[Conn], T]) -> T:
        try:
            with self._pool.connection() as conn:
                return fn(conn)
        except (pg_errors.DeadlockDetected, pg_errors.SerializationFailure):
            raise
        except psycopg_pool.PoolTimeout as exc:
            raise StorageUnavailable(f"postgres: no connection: {exc}") from exc
        except psycopg.OperationalError as exc:
            raise StorageUnavailable(f"postgres: {exc}") from exc
        except psycopg.Error as exc:
            raise StorageError(f"postgres: {exc}") from exc


def _nul_free(text: str) -> str:
    """`text` with U+0000 as U+FFFD: PostgreSQL's text cannot hold NUL.

    Alertmanager passes NUL through in label values (and a generic alert or an LLM answer may
    carry one anywhere); refused by the server, one such string would fail the whole group
    commit it shares. Labels and annotations keep it exactly (their JSON text escapes it); the
    columns taken from them (alertname, namespace, severity) and the other plain strings store
    U+FFFD, and a query's strings are sent the same way, so a filter still finds them.
    """
    return text.replace("\0", "\ufffd") if "\0" in text else text


class _NulFreeText(StrDumperUnknown):
    def dump(self, obj: str) -> Buffer | None:
        return super().dump(_nul_free(obj))


class _NulFreeBinaryText(StrBinaryDumper):
    def dump(self, obj: str) -> Buffer | None:
        return super().dump(_nul_free(obj))


def _configure(conn: Conn) -> None:
    """Set up each new connection of the pool: the group commit's arrays, NUL-free strings."""
    conn.adapters.register_dumper(_Array, _ArrayDumper)
    conn.adapters.register_dumper(str, _NulFreeBinaryText)
    conn.adapters.register_dumper(str, _NulFreeText)  # the last registered serves `%s`


def _check_connection(conn: Conn) -> None:
    """The pool's check on checkout: a round trip only when the server has said something.

    An idle connection has nothing to read; one the server closed (restart, terminated
    backend, idle timeout) has its goodbye or end of file waiting on the socket. Only then the
    pool's own check (an empty query) runs, and fails, so the pool connects again. This spares
    every checkout a round trip (a group commit had two) and its thread wake-up.
    """
    if conn.closed:
        raise psycopg.OperationalError("the connection is closed")
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN)
    if poller.poll(0):
        psycopg_pool.ConnectionPool.check_connection(conn)


def _one(cursor: psycopg.Cursor[tuple[Any, ...]]) -> tuple[Any, ...]:
    row = cursor.fetchone()
    assert row is not None
    return row


def _migrate_sync(conn: Conn, *, dry_run: bool) -> list[Migration]:
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY,"
            " name text NOT NULL, checksum text NOT NULL, applied_at timestamptz NOT NULL)"
        )
        rows = conn.execute("SELECT version, checksum FROM schema_migrations").fetchall()
        applied: dict[int, str] = dict(rows)
        todo = pending(known_migrations("postgres"), applied)
        if dry_run:
            return todo
        for migration in todo:
            conn.execute(migration.sql.encode())
            conn.execute(
                "INSERT INTO schema_migrations VALUES (%s, %s, %s, now())",
                (migration.version, migration.name, migration.checksum),
            )
    return todo
