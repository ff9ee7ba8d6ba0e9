"""GET /report's rollup: per UTC day (and hour) and (alertname, namespace), what a report needs.

Tables (migrations 0006, 0009, 0011, 0012): `report_keys` numbers every (alertname, namespace) of
alert_events (the triggers add new keys; the rollup rows name a key by its `key_id`, which a
report groups and sorts much faster than two texts); `report_days` holds one row per (day, key)
with the day's counts, notifications, first row, first and last status, the status changes
between the day's rows of the key and the first of them, and the episodes that lie wholly in
that day and key ("single": every row of the episode in the day and key); `report_multi` holds
the rows of every other episode, one row each; `report_hours` and `report_multi_hours` hold the
same per hour; `report_names_days` / `report_names_hours` hold a day's / hour's rows summed per
alertname (no notifications), written by `store` with them. `report_dirty` /
`report_dirty_hours` name the days / hours whose rows are not (or no longer) what the rollup
says.

Triggers on `alert_events` mark a day and an hour dirty when one of its rows, or a row of an
episode with a row in it, is inserted, deleted or changed, whatever writes it (the
service's group commit, imports, retention, bulk loads, plain SQL), in the writer's own
transaction. A repeat notification, which only adds to a row's notify_count, is added to the
day's and hour's rows instead, so old days stay clean while their alerts keep firing.

`refresh_all` / `refresh_day` / `refresh_hour` recompute dirty days / hours from their rows (the
`rollup` actor runs them: every dirty hour and day each round, today's day at most every 5
minutes). A report reads whole clean days from `report_days`, the whole clean hours of
the rest from `report_hours`, and every other row of its window (partial hours, dirty hours and
days) from `alert_events`, so its numbers never depend on how fresh the rollup is, only its
speed does.

A refresh stays out of ingest's way: it computes a day (seconds for a busy one) with plain reads
(a SQLite reader connection, no PostgreSQL lock) and then stores the result in a short write
transaction (a delete and an insert of the day's rollup rows) only if the day's `gen` in
`report_dirty` is what it was before the computation; every trigger above changes `gen` when it
touches a dirty day or hour, so a write in between leaves the day dirty for the next round. On
PostgreSQL the store locks the day's `report_dirty` row, so it waits for a writer that dirtied
the day and has not committed yet (and sees its `gen`), and a writer's trigger waits for the
store's few ms; `gen` is a transaction id there, never reused, so replicas refreshing the same
day cannot mistake a newer dirtying for theirs.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import partial

import trio

from alert_history.storage import report_spans as spans
from alert_history.storage.base import Storage
from alert_history.storage.executor import Db, Dialect, Row

log = logging.getLogger("alert_history.report_rollup")

NS_PER_DAY = 86_400 * 1_000_000_000
NS_PER_HOUR = 3_600 * 1_000_000_000
QUICK_RESOLUTION_NS = 300 * 1_000_000_000  # `resolved_within_5m_share`

# A resolved state ends its episode when it has an end not before the start.
VALID_END = "status = 'resolved' AND ends_at <> 0 AND ends_at >= starts_at"


# A row's place in v1 order within its key, (first_seen, id), as one value that min() and max()
# compare in that order (with the status after it when asked): an array on PostgreSQL,
# fixed-width digits on SQLite (times and ids are never negative).
def pos(dialect: Dialect, seen: str, ident: str, status: str | None = None) -> str:
    if dialect == "postgres":
        extra = "" if status is None else f", CASE WHEN {status} = 'firing' THEN 0 ELSE 1 END"
        return f"ARRAY[{seen}, {ident}{extra}]"
    if status is None:
        return f"printf('%020d%020d', {seen}, {ident})"
    return f"printf('%020d%020d%s', {seen}, {ident}, {status})"


def _seen(dialect: Dialect, value: str) -> str:
    return f"({value})[1]" if dialect == "postgres" else f"CAST(substr({value}, 1, 20) AS INTEGER)"


def _ident(dialect: Dialect, value: str) -> str:
    if dialect == "postgres":
        return f"({value})[2]"
    return f"CAST(substr({value}, 21, 20) AS INTEGER)"


def _status(dialect: Dialect, value: str) -> str:
    if dialect == "postgres":
        return f"CASE ({value})[3] WHEN 0 THEN 'firing' ELSE 'resolved' END"
    return f"substr({value}, 41)"


def same_key(dialect: Dialect, a: str, b: str) -> str:
    """`a` and `b` (tables with alertname and namespace) are the same key (null namespaces
    alike); on PostgreSQL as equalities only, which a hash join can take."""
    if dialect == "postgres":
        return (
            f"{a}.alertname = {b}.alertname"
            f" AND coalesce({a}.namespace, '') = coalesce({b}.namespace, '')"
            f" AND ({a}.namespace IS NULL) = ({b}.namespace IS NULL)"
        )
    return f"{a}.alertname = {b}.alertname AND {a}.namespace IS {b}.namespace"


def segments(dialect: Dialect, name: str, src: str, bucket_ns: int = NS_PER_DAY) -> str:
    """CTEs ending in `name`: per (bucket, alertname, namespace) over the rows of `src` (with id,
    alertname, namespace, status, first_seen, notify_count), `bucket` (first_seen / bucket_ns),
    the key's `key_id` (report_keys: every key of alert_events is there) and the columns of
    report_days from `events` to `change_id`. One window: each row's predecessor within its key
    and bucket."""
    head, change = f"{name}_p.head", f"{name}_p.change"
    return f"""
{name}_o AS (
    SELECT first_seen / {bucket_ns} AS bucket, alertname, namespace, status, first_seen, id,
           notify_count,
           lag(status) OVER (PARTITION BY first_seen / {bucket_ns}, alertname, namespace
                             ORDER BY first_seen, id) AS prev
    FROM {src}
), {name}_p AS (
    SELECT bucket, alertname, namespace, count(*) AS events,
           count(CASE WHEN status = 'firing' THEN 1 END) AS firing,
           count(CASE WHEN status = 'resolved' THEN 1 END) AS resolved,
           sum(notify_count) AS notifications,
           min({pos(dialect, "first_seen", "id", "status")}) AS head,
           max({pos(dialect, "first_seen", "id", "status")}) AS tail,
           count(CASE WHEN status <> prev THEN 1 END) AS flaps,
           min(CASE WHEN status <> prev THEN {pos(dialect, "first_seen", "id")} END) AS change
    FROM {name}_o
    GROUP BY bucket, alertname, namespace
), {name} AS (
    SELECT bucket, {name}_k.id AS key_id, {name}_p.alertname, {name}_p.namespace, events,
           firing, resolved, notifications,
           {_seen(dialect, head)} AS first_seen, {_ident(dialect, head)} AS first_id,
           {_status(dialect, head)} AS first_status,
           {_status(dialect, f"{name}_p.tail")} AS last_status, flaps,
           {_seen(dialect, change)} AS change_seen, {_ident(dialect, change)} AS change_id
    FROM {name}_p JOIN report_keys {name}_k ON {same_key(dialect, f"{name}_k", f"{name}_p")}
)"""


def _unit_rows(bucket_ns: int) -> str:
    """The rows of one day or hour (`bucket_ns`), each with `multi`: whether its episode has a
    row in another bucket or key."""
    return f"""
SELECT id, fingerprint, starts_at, ends_at, alertname, namespace, status, first_seen,
       notify_count,
       CASE WHEN EXISTS (
           SELECT 1 FROM alert_events s
           WHERE s.fingerprint = e.fingerprint AND s.starts_at = e.starts_at
             AND (s.first_seen / {bucket_ns} <> e.first_seen / {bucket_ns}
                  OR s.alertname <> e.alertname
                  OR s.namespace IS NULL AND e.namespace IS NOT NULL
                  OR s.namespace IS NOT NULL AND e.namespace IS NULL
                  OR s.namespace <> e.namespace)
       ) THEN 1 ELSE 0 END AS multi
FROM alert_events e
WHERE first_seen >= ? AND first_seen < ?
"""


_DAY_COLUMNS = "day, " + spans.COLUMNS
_HOUR_COLUMNS = "hour, " + spans.COLUMNS
_MULTI_COLUMNS = "day, fingerprint, starts_at, alertname, namespace, status, ends_at"
_MULTI_HOUR_COLUMNS = "hour" + _MULTI_COLUMNS.removeprefix("day")


def _rollup_rows(dialect: Dialect, bucket_ns: int) -> str:
    """A day's or hour's rollup rows: per key its segment and the episodes wholly inside."""
    return f"""
WITH d AS MATERIALIZED ({_unit_rows(bucket_ns)}),
{segments(dialect, "seg", "d", bucket_ns)},
single AS (
    SELECT alertname, namespace, starts_at,
           min(CASE WHEN {VALID_END} THEN ends_at END) AS ended
    FROM d
    WHERE multi = 0
    GROUP BY fingerprint, starts_at, alertname, namespace
), eps AS (
    SELECT alertname, namespace, count(*) AS episodes, count(ended) AS resolved_episodes,
           count(CASE WHEN ended - starts_at <= {QUICK_RESOLUTION_NS} THEN 1 END)
               AS quick_episodes,
           sum(CAST(ended - starts_at AS double precision)) AS resolved_ns
    FROM single
    GROUP BY alertname, namespace
)
SELECT seg.bucket, seg.key_id, seg.events, seg.firing, seg.resolved,
       seg.notifications, seg.first_seen, seg.first_id, seg.first_status, seg.last_status,
       seg.flaps, seg.change_seen, seg.change_id,
       coalesce(eps.episodes, 0), coalesce(eps.resolved_episodes, 0),
       coalesce(eps.quick_episodes, 0), coalesce(eps.resolved_ns, 0)
FROM seg LEFT JOIN eps ON {same_key(dialect, "eps", "seg")}
"""


def _multi_rows(bucket_ns: int) -> str:
    """The rows of a day or hour whose episodes are not wholly inside it."""
    return f"""
SELECT first_seen / {bucket_ns}, fingerprint, starts_at, alertname, namespace, status, ends_at
FROM ({_unit_rows(bucket_ns)}) AS d
WHERE multi = 1
"""


# A refresh never runs its queries in the writer's way: `compute_*` reads a dirty day's (hour's)
# `gen` and then computes its rollup rows with plain reads (Storage.read: on SQLite a reader
# connection, on PostgreSQL no lock but the rows' own); `store` then replaces the rollup rows in
# a short write transaction, only if `gen` is still what was read, i.e. nothing made the day
# dirty again meanwhile (a write in between changes `gen`, in the writer's transaction: the
# triggers of migration 0006). Otherwise the day stays dirty, for the next round.


#: past this many changed rows a store replaces all of the day's (hour's) rows instead
_MAX_CHANGES = 1000
_INSERT_CHUNK = 500  # rows per INSERT: at most 17 * 500 parameters


@dataclass(frozen=True)
class Computed:
    """What to change in the rollup rows of one dirty day (hour) as of `gen`: usually a few
    rows (a day gets dirty by a late row or two), so that the store is short."""

    table: str  # "report_days" or "report_hours"
    key: int  # the day (hour)
    gen: int
    rows: list[Row]  # every row of the day (hour) if `replace_all`, else the new or changed
    stale: list[Row]  # the (day, key_id) of rows to delete (not `replace_all`)
    replace_all: bool
    multi: list[Row]  # report_multi(_hours) rows likewise
    stale_multi: list[Row]
    replace_multi: bool


def _plain(rows: list[Row]) -> list[Row]:
    """PostgreSQL's sums of bigints come as Decimal: ints, for JSON (they are whole)."""
    return [tuple(int(v) if isinstance(v, Decimal) else v for v in row) for row in rows]


def _changes(old: list[Row], new: list[Row], width: int) -> tuple[list[Row], list[Row], bool]:
    """(rows to insert, keys of rows to delete, replace everything?) from `old` to `new`; a
    row's key is its first `width` values (all of them for report_multi, where a row can be
    there twice: a changed row's copies are all deleted and inserted again)."""
    if not old or not new:
        return new, [], True
    old_n, new_n = Counter(old), Counter(new)
    changed = [row for row in old_n.keys() | new_n.keys() if old_n[row] != new_n[row]]
    if len(changed) > _MAX_CHANGES:
        return new, [], True
    stale = sorted({row[:width] for row in changed if row in old_n}, key=repr)
    fresh = sorted({row for row in changed if row in new_n}, key=repr)
    return [row for row in fresh for _ in range(new_n[row])], stale, False


def compute_day(db: Db, day: int) -> Computed | None:
    """The changes to the rollup rows of `day` if it is dirty (None if not); reads only, run it
    through `Storage.read`."""
    return _compute(db, day, hours=False)


def compute_hour(db: Db, hour: int) -> Computed | None:
    """The changes to the rollup rows of `hour` if it is dirty (None if not); reads only."""
    return _compute(db, hour, hours=True)


def _compute(db: Db, unit: int, *, hours: bool) -> Computed | None:
    if hours:
        dirty, name, table, columns = "report_dirty_hours", "hour", "report_hours", _HOUR_COLUMNS
        multi_table, multi_columns, bucket_ns = (
            "report_multi_hours",
            _MULTI_HOUR_COLUMNS,
            NS_PER_HOUR,
        )
    else:
        dirty, name, table, columns = "report_dirty", "day", "report_days", _DAY_COLUMNS
        multi_table, multi_columns, bucket_ns = "report_multi", _MULTI_COLUMNS, NS_PER_DAY
    row = db.fetchone(f"SELECT gen FROM {dirty} WHERE {name} = ?", [unit])
    if row is None:
        return None
    lo, hi = unit * bucket_ns, (unit + 1) * bucket_ns
    rows = db.fetchall(_rollup_rows(db.dialect, bucket_ns), [lo, hi])
    old = db.fetchall(f"SELECT {columns} FROM {table} WHERE {name} = ?", [unit])
    multi = db.fetchall(_multi_rows(bucket_ns), [lo, hi])
    old_multi = db.fetchall(f"SELECT {multi_columns} FROM {multi_table} WHERE {name} = ?", [unit])
    rows, stale, replace_all = _changes(_plain(old), _plain(rows), 2)
    multi, stale_multi, replace_multi = _changes(_plain(old_multi), _plain(multi), 7)
    return Computed(
        table, unit, int(row[0]), rows, stale, replace_all, multi, stale_multi, replace_multi,
    )  # fmt: skip


# PostgreSQL's types of the rollup columns (report_days' first 13 are report_hours')
_PG_TYPES = {
    "report_days": ["bigint", "integer", *["bigint"] * 4, "bigint", "bigint", "text", "text",
                    *["bigint"] * 3, *["bigint"] * 3, "double precision"],
    "report_hours": ["bigint", "integer", *["bigint"] * 4, "bigint", "bigint", "text", "text",
                     *["bigint"] * 3, *["bigint"] * 3, "double precision"],
    "report_multi": ["bigint", "text", "bigint", "text", "text", "text", "bigint"],
    "report_multi_hours": ["bigint", "text", "bigint", "text", "text", "text", "bigint"],
}  # fmt: skip


def _insert(db: Db, table: str, columns: str, rows: Sequence[Row]) -> None:
    if not rows:
        return
    if db.dialect == "postgres":
        # the rows as one JSON text: psycopg dumps arrays or a long VALUES list value by value
        # in Python (~40 us a row), PostgreSQL parses JSON in C
        values = ", ".join(f"(r->>{i})::{t}" for i, t in enumerate(_PG_TYPES[table]))
        db.execute(
            f"INSERT INTO {table} ({columns})"
            f" SELECT {values} FROM jsonb_array_elements(?::jsonb) r",
            [json.dumps(rows)],
        )
        return
    width = columns.count(",") + 1
    one = "(" + ", ".join("?" * width) + ")"
    for start in range(0, len(rows), _INSERT_CHUNK):
        chunk = rows[start : start + _INSERT_CHUNK]
        db.execute(
            f"INSERT INTO {table} ({columns}) VALUES {', '.join([one] * len(chunk))}",
            [value for row in chunk for value in row],
        )


def _delete(db: Db, table: str, columns: str, keys: Sequence[Row]) -> None:
    if not keys:
        return
    names = [column.strip() for column in columns.split(",")]
    if db.dialect == "postgres":  # one statement (a round trip costs ms), as _insert
        types = _PG_TYPES[table]
        where = " AND ".join(
            f"t.{name} IS NOT DISTINCT FROM (r->>{i})::{types[i]}"
            if name == "namespace"
            else f"t.{name} = (r->>{i})::{types[i]}"
            for i, name in enumerate(names)
        )
        db.execute(
            f"DELETE FROM {table} t USING jsonb_array_elements(?::jsonb) r WHERE {where}",
            [json.dumps(keys)],
        )
        return
    # `=` where the index can serve it; only namespace is ever null
    where = " AND ".join("namespace IS ?" if n == "namespace" else f"{n} = ?" for n in names)
    for key in keys:
        db.execute(f"DELETE FROM {table} WHERE {where}", list(key))


# a day's (hour's) sums per alertname from its rows per key (migration 0012)
_STORE_NAMES = f"""
INSERT INTO {{names}} ({{unit}}, {spans.NAME_COLUMNS})
SELECT r.{{unit}}, k.alertname, sum(r.events), sum(r.firing), min(r.first_seen),
       sum(r.episodes), sum(r.resolved_episodes), sum(r.quick_episodes), sum(r.resolved_ns)
FROM {{table}} r JOIN report_keys k ON k.id = r.key_id
WHERE r.{{unit}} = ?
GROUP BY r.{{unit}}, k.alertname
"""


def store(db: Db, computed: Computed) -> bool:
    """Apply `computed` to the rollup if nothing changed the day (hour) since it was computed
    (its `gen` unchanged) and mark it clean; return whether it did. Run it through
    `Storage.write`: a few statements (usually a few rows; a whole day's a few thousand)."""
    day = computed.table == "report_days"
    dirty, unit = ("report_dirty", "day") if day else ("report_dirty_hours", "hour")
    if db.dialect == "postgres":
        # first, as the notifications' trigger: a span being built is finished (and seen by
        # `spans.drop` below) or waits for this transaction (report_spans.py)
        db.execute("LOCK TABLE report_spans IN ROW EXCLUSIVE MODE")
    # on PostgreSQL the row lock waits for a writer that changed the day but has not committed
    # yet (its `gen` is then new); a writer that comes after waits for this transaction
    lock = " FOR UPDATE" if db.dialect == "postgres" else ""
    row = db.fetchone(f"SELECT gen FROM {dirty} WHERE {unit} = ?{lock}", [computed.key])
    if row is None or int(row[0]) != computed.gen:
        return False
    columns = _DAY_COLUMNS if day else _HOUR_COLUMNS
    if computed.replace_all:
        db.execute(f"DELETE FROM {computed.table} WHERE {unit} = ?", [computed.key])
    _delete(db, computed.table, f"{unit}, key_id", computed.stale)
    _insert(db, computed.table, columns, computed.rows)
    multi_table = "report_multi" if day else "report_multi_hours"
    multi_columns = _MULTI_COLUMNS if day else _MULTI_HOUR_COLUMNS
    if computed.replace_multi:
        db.execute(f"DELETE FROM {multi_table} WHERE {unit} = ?", [computed.key])
    _delete(db, multi_table, multi_columns, computed.stale_multi)
    _insert(db, multi_table, multi_columns, computed.multi)
    names = spans.NAMES[computed.table]
    db.execute(f"DELETE FROM {names} WHERE {unit} = ?", [computed.key])
    db.execute(_STORE_NAMES.format(names=names, table=computed.table, unit=unit), [computed.key])
    db.execute(f"DELETE FROM {dirty} WHERE {unit} = ?", [computed.key])
    if day:
        spans.drop(db, spans.holding_day(computed.key))
        first = computed.key * spans.HOURS_PER_DAY
        spans.drop_trailing(db, first, first + spans.HOURS_PER_DAY - 1)
    else:
        spans.drop(db, spans.holding_hour(computed.key))
        spans.drop_trailing(db, computed.key, computed.key)
    return True


async def refresh_day(storage: Storage, day: int) -> bool:
    """Refresh `day` if it is dirty; return whether it is clean now (False: writes dirtied it
    again while it was computed)."""
    computed = await storage.read(partial(compute_day, day=day))
    return computed is None or await storage.write(partial(store, computed=computed))


async def refresh_hour(storage: Storage, hour: int) -> bool:
    """Refresh `hour` likewise."""
    computed = await storage.read(partial(compute_hour, hour=hour))
    return computed is None or await storage.write(partial(store, computed=computed))


async def refresh_all(
    storage: Storage,
    *,
    skip_day: int | None = None,
    pause: float = 0.05,
    attempts: int = 3,
    now_ns: int | None = None,
) -> int:
    """Refresh every dirty hour, then every dirty day but `skip_day` (oldest first; each up to
    `attempts` times while writes keep dirtying it), then build the missing spans of the hours
    and days finished by `now_ns` (default: the wall clock); return how many days were
    refreshed. The writer is held only for each store and each span."""
    hours = await storage.read(lambda db: db.fetchall("SELECT hour FROM report_dirty_hours"))
    for (hour,) in sorted(hours):
        for _ in range(attempts):
            if await refresh_hour(storage, int(hour)):
                break
    days = await storage.read(lambda db: db.fetchall("SELECT day FROM report_dirty"))
    total = 0
    for (day,) in sorted(days):
        if day == skip_day:
            continue
        for _ in range(attempts):
            if await refresh_day(storage, int(day)):
                total += 1
                break
        await trio.sleep(pause)
    await spans.build_all(storage, time.time_ns() if now_ns is None else now_ns)
    await spans.build_trailing(storage, time.time_ns() if now_ns is None else now_ns)
    return total
