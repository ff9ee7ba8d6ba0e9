"""GET /report's rollup: per UTC day (and hour) and (alertname, namespace), what a report needs.

Tables (migration 0006): `report_days` holds one row per (day, alertname, namespace) with the
day's counts, notifications, first row, first and last status, the status changes between the
day's rows of the key and the first of them, and the episodes that lie wholly in that day and
key ("single": every row of the episode in the day and key); `report_multi` holds the rows of
every other episode, one row each; `report_hours` holds the same as `report_days` per hour,
without the episodes. `report_dirty` / `report_dirty_hours` name the days / hours whose rows
are not (or no longer) what the rollup says.

Triggers on `alert_events` mark a day dirty when one of its rows, or a row of an episode with a
row in it, is inserted, deleted or changed, and the row's hour likewise, whatever writes it (the
service's group commit, imports, retention, bulk loads, plain SQL), in the writer's own
transaction. A repeat notification, which only adds to a row's notify_count, is added to the
day's and hour's rows instead, so old days stay clean while their alerts keep firing.

`refresh` / `refresh_hours` recompute dirty days / hours from their rows (the housekeeping actor
runs `keep_fresh`: every dirty hour each round, one day per transaction, today's day at most
every 5 minutes). A report reads whole clean days from `report_days`, the whole clean hours of
the rest from `report_hours` (not for episodes), and every other row of its window (partial
hours, dirty hours and days) from `alert_events`, so its numbers never depend on how fresh the
rollup is, only its speed does. On PostgreSQL a refresh locks its tables against the triggers
(SHARE ROW EXCLUSIVE) before it reads, so a writer's trigger waits for it, never interleaves
with it; readers are not blocked.
"""

from __future__ import annotations

import logging
import time
from functools import partial

import trio

from alert_history.errors import StorageError
from alert_history.storage.base import Storage
from alert_history.storage.executor import Db, Dialect

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


def segments(dialect: Dialect, name: str, src: str, bucket_ns: int = NS_PER_DAY) -> str:
    """CTEs ending in `name`: per (bucket, alertname, namespace) over the rows of `src` (with id,
    alertname, namespace, status, first_seen, notify_count), `bucket` (first_seen / bucket_ns)
    and the columns of report_days from `events` to `change_id`. One window: each row's
    predecessor within its key and bucket."""
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
    SELECT bucket, alertname, namespace, events, firing, resolved, notifications,
           {_seen(dialect, head)} AS first_seen, {_ident(dialect, head)} AS first_id,
           {_status(dialect, head)} AS first_status,
           {_status(dialect, f"{name}_p.tail")} AS last_status, flaps,
           {_seen(dialect, change)} AS change_seen, {_ident(dialect, change)} AS change_id
    FROM {name}_p
)"""


_DAY_ROWS = f"""
SELECT id, fingerprint, starts_at, ends_at, alertname, namespace, status, first_seen,
       notify_count,
       CASE WHEN EXISTS (
           SELECT 1 FROM alert_events s
           WHERE s.fingerprint = e.fingerprint AND s.starts_at = e.starts_at
             AND (s.first_seen / {NS_PER_DAY} <> e.first_seen / {NS_PER_DAY}
                  OR s.alertname <> e.alertname
                  OR s.namespace IS NULL AND e.namespace IS NOT NULL
                  OR s.namespace IS NOT NULL AND e.namespace IS NULL
                  OR s.namespace <> e.namespace)
       ) THEN 1 ELSE 0 END AS multi
FROM alert_events e
WHERE first_seen >= ? AND first_seen < ?
"""


def _refresh_day(dialect: Dialect) -> str:
    return f"""
INSERT INTO report_days (day, alertname, namespace, events, firing, resolved, notifications,
    first_seen, first_id, first_status, last_status, flaps, change_seen, change_id,
    episodes, resolved_episodes, quick_episodes, resolved_ns)
WITH d AS MATERIALIZED ({_DAY_ROWS}),
{segments(dialect, "seg", "d")},
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
SELECT seg.bucket, seg.alertname, seg.namespace, seg.events, seg.firing, seg.resolved,
       seg.notifications, seg.first_seen, seg.first_id, seg.first_status, seg.last_status,
       seg.flaps, seg.change_seen, seg.change_id,
       coalesce(eps.episodes, 0), coalesce(eps.resolved_episodes, 0),
       coalesce(eps.quick_episodes, 0), coalesce(eps.resolved_ns, 0)
FROM seg LEFT JOIN eps
  ON eps.alertname = seg.alertname
 AND coalesce(eps.namespace, '') = coalesce(seg.namespace, '')
 AND (eps.namespace IS NULL) = (seg.namespace IS NULL)
"""


_REFRESH_MULTI = f"""
INSERT INTO report_multi (day, fingerprint, starts_at, alertname, namespace, status, ends_at)
SELECT first_seen / {NS_PER_DAY}, fingerprint, starts_at, alertname, namespace, status, ends_at
FROM ({_DAY_ROWS}) AS d
WHERE multi = 1
"""


def _refresh_hour(dialect: Dialect) -> str:
    return f"""
INSERT INTO report_hours (hour, alertname, namespace, events, firing, resolved, notifications,
    first_seen, first_id, first_status, last_status, flaps, change_seen, change_id)
WITH h AS (
    SELECT id, alertname, namespace, status, first_seen, notify_count FROM alert_events
    WHERE first_seen >= ? AND first_seen < ?
),
{segments(dialect, "seg", "h", NS_PER_HOUR)}
SELECT bucket, alertname, namespace, events, firing, resolved, notifications, first_seen,
       first_id, first_status, last_status, flaps, change_seen, change_id
FROM seg
"""


def refresh_hours(db: Db, max_hours: int = 24) -> int:
    """Recompute up to `max_hours` dirty hours (oldest first) in the caller's write
    transaction; return how many. Cheap: an hour's rows, no episodes."""
    if db.dialect == "postgres":
        db.execute("LOCK TABLE report_dirty_hours, report_hours IN SHARE ROW EXCLUSIVE MODE")
    rows = db.fetchall("SELECT hour FROM report_dirty_hours ORDER BY hour LIMIT ?", [max_hours])
    hours = [int(hour) for (hour,) in rows]
    for hour in hours:
        db.execute("DELETE FROM report_hours WHERE hour = ?", [hour])
        db.execute(_refresh_hour(db.dialect), [hour * NS_PER_HOUR, (hour + 1) * NS_PER_HOUR])
        db.execute("DELETE FROM report_dirty_hours WHERE hour = ?", [hour])
    return len(hours)


def refresh(db: Db, max_days: int = 1, skip_day: int | None = None) -> int:
    """Recompute up to `max_days` dirty days (oldest first, not `skip_day`) in the caller's
    write transaction; return how many. Run it through `Storage.write`."""
    if db.dialect == "postgres":
        db.execute("LOCK TABLE report_dirty, report_days, report_multi IN SHARE ROW EXCLUSIVE MODE")
    rows = db.fetchall(
        "SELECT day FROM report_dirty WHERE day <> ? ORDER BY day LIMIT ?",
        [-1 if skip_day is None else skip_day, max_days],
    )
    days = [int(day) for (day,) in rows]
    for day in days:
        lo, hi = day * NS_PER_DAY, (day + 1) * NS_PER_DAY
        db.execute("DELETE FROM report_days WHERE day = ?", [day])
        db.execute("DELETE FROM report_multi WHERE day = ?", [day])
        db.execute(_refresh_day(db.dialect), [lo, hi])
        db.execute(_REFRESH_MULTI, [lo, hi])
        db.execute("DELETE FROM report_dirty WHERE day = ?", [day])
    return len(days)


async def refresh_all(storage: Storage, *, skip_day: int | None = None, pause: float = 0.05) -> int:
    """Refresh every dirty hour, then every dirty day but `skip_day`, one day (or a day of
    hours) per transaction (the writer is free in between); return how many days."""
    for _ in range(1_000_000):  # a day of hours per transaction, until none is left
        if await storage.write(partial(refresh_hours, max_hours=24)) < 24:
            break
        await trio.sleep(pause)
    total = 0
    while await storage.write(partial(refresh, max_days=1, skip_day=skip_day)):
        total += 1
        await trio.sleep(pause)
    return total


async def keep_fresh(
    storage: Storage, *, interval: float = 15.0, today_every: float = 300.0
) -> None:
    """Refresh dirty days every `interval` seconds, for ever (the housekeeping actor runs it).

    Today's day is dirty again after every write: it is refreshed at most every `today_every`
    seconds (a day's refresh holds the writer for a while); reports read its hours meanwhile.
    """
    today_done = float("-inf")
    while True:
        today = time.time_ns() // NS_PER_DAY
        with_today = trio.current_time() - today_done >= today_every
        try:
            await refresh_all(storage, skip_day=None if with_today else today)
            if with_today:
                today_done = trio.current_time()
        except StorageError as exc:
            log.warning("report rollup refresh failed", extra={"error": str(exc)})
        await trio.sleep(interval)
