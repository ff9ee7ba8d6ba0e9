"""GET /report in SQL: the legacy v1 numbers, the v2 grouping and a summary, on both dialects.

v1 counted one row per received notification; `alert_events` holds one row per alert *state*.
Here a v1 "event" is one stored state (a new firing episode, or its resolution), `updatedAt` is
`first_seen`, and v1's row order `alertname, updatedAt` is `alertname, first_seen, id` with
alertnames compared byte-wise on both backends (SQLite's BINARY, PostgreSQL's "C"), which is
also Python's `str` order.

* `top_alerts`: rows per (alertname, namespace), most first; ties in the order each key first
  appears in v1 row order (`Counter.most_common`).
* `flapping_alerts`: per key, the status changes between consecutive rows in `first_seen, id`
  order (LAG over the key), keys with at least `min_flap`, most first; ties in the order of each
  key's first change in v1 row order (v1 sorted a Counter stably, and a key entered it at its
  first change). Both lists hold at most `top` entries.

The summary covers the same rows. An episode is a (fingerprint, starts_at); it is resolved when
one of its resolved states has an `ends_at` set and not before `starts_at` (the earliest such
end counts). `mttr_seconds` is the mean resolution time per alertname (longest first, ties
byte-wise); `noisiest` ranks keys by notifications, `sum(notify_count)` (ties byte-wise, a null
namespace first); a flap `score` is flaps per hour over `period`: from `since` (else the first
selected row) to `until` capped at now (else now); null when that period is empty.

Everything is computed by the database (window functions, GROUP BY, ORDER BY, LIMIT); Python only
reads the few result rows. All statements of one report run in one read snapshot.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import TypedDict

from alert_history.domain.flapping import FlapRow, ReportV1, TopRow
from alert_history.storage.executor import Db, Dialect

_NS_PER_SECOND = 1_000_000_000
_NS_PER_HOUR = 3600 * _NS_PER_SECOND
_NS_PER_DAY = 86_400 * _NS_PER_SECOND
QUICK_RESOLUTION_NS = 300 * _NS_PER_SECOND  # `resolved_within_5m_share`

#: v2 `group_by` values with their key expression; any other value groups everything as "all".
#: v2 showed a missing (or empty) namespace as "unknown".
_GROUP_KEYS = {
    "alertname": "alertname",
    "status": "status",
    "namespace": "coalesce(nullif(namespace, ''), 'unknown')",
}

_BYTEWISE: dict[Dialect, str] = {"sqlite": "COLLATE BINARY", "postgres": 'COLLATE "C"'}


@dataclass(frozen=True, slots=True)
class ReportQuery:
    """The parameters of one report; times in ns since the epoch.

    `alertname`/`namespace` select by equality in every part; `since`/`until` bound `first_seen`
    (inclusive) for v1 and the summary. `days` asks for the v2 part, which has its own window:
    the rows first seen in the `days` days up to `now`.
    """

    now: int
    alertname: str | None = None
    namespace: str | None = None
    since: int | None = None
    until: int | None = None
    min_flap: int = 2
    top: int = 10
    days: int | None = None
    group_by: str = "alertname"


class FlapScore(TypedDict):
    alertname: str
    namespace: str | None
    flaps: int
    score: float | None  # flaps per hour over the period


class Mttr(TypedDict):
    alertname: str
    mttr_seconds: float
    resolved_episodes: int


class Noisy(TypedDict):
    alertname: str
    namespace: str | None
    notifications: int


class Period(TypedDict):
    since: int | None  # ns; None when no row matched and no `since` was given
    until: int  # ns
    hours: float | None  # None when the period is empty


class Summary(TypedDict):
    episodes: int
    resolved_episodes: int
    resolved_within_5m_share: float | None
    mttr_seconds: list[Mttr]
    noisiest: list[Noisy]
    flapping: list[FlapScore]
    period: Period


class GroupCounts(TypedDict):
    count: int
    firing: int
    resolved: int


class ReportV2(TypedDict):
    period_days: int
    group_by: str
    data: dict[str, GroupCounts]
    total_alerts: int


@dataclass(frozen=True, slots=True)
class Report:
    v1: ReportV1
    summary: Summary
    v2: ReportV2 | None


def build_report(db: Db, query: ReportQuery) -> Report:
    """Compute the whole report in one snapshot (run it through `Storage.read`)."""
    with _snapshot(db):
        where, args = _filters(query)
        period = _period(db, query, where, args)
        v1, flapping, noisiest = _by_key(db, query, where, args, period["hours"])
        episodes, resolved, share, mttr = _episodes(db, query, where, args)
        v2 = None if query.days is None else _v2(db, query)
    summary = Summary(
        episodes=episodes,
        resolved_episodes=resolved,
        resolved_within_5m_share=share,
        mttr_seconds=mttr,
        noisiest=noisiest,
        flapping=flapping,
        period=period,
    )
    return Report(v1=v1, summary=summary, v2=v2)


@contextmanager
def _snapshot(db: Db) -> Iterator[None]:
    """One read-only transaction, so the statements of a report agree with each other."""
    if db.dialect == "postgres":
        db.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    else:
        db.execute("BEGIN")  # deferred: a WAL read snapshot from the first SELECT
    try:
        yield
    except Exception:
        with suppress(Exception):  # the connection may be gone; the first error is the story
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _filters(query: ReportQuery) -> tuple[str, list[object]]:
    where: list[str] = []
    args: list[object] = []
    for condition, value in (
        ("alertname = ?", query.alertname),
        ("namespace = ?", query.namespace),
        ("first_seen >= ?", query.since),
        ("first_seen <= ?", query.until),
    ):
        if value is not None:
            where.append(condition)
            args.append(value)
    return " AND ".join(where) or "1 = 1", args


def _period(db: Db, query: ReportQuery, where: str, args: list[object]) -> Period:
    """The period flap scores are rated over: `since` (else the first row) to `until` or now."""
    start = query.since
    if start is None:
        row = db.fetchone(f"SELECT min(first_seen) FROM alert_events WHERE {where}", args)
        start = None if row is None or row[0] is None else int(row[0])
    end = query.now if query.until is None else min(query.until, query.now)
    hours = None if start is None or end <= start else (end - start) / _NS_PER_HOUR
    return Period(since=start, until=end, hours=hours)


# Everything per (alertname, namespace), in one statement: the totals (part 0), top_alerts
# (part 1), flapping_alerts with their scores (part 2) and the noisiest keys (part 3).
# `pos` is a row's place in v1 order; a key's first row and first change are found by it.
_BY_KEY = """
WITH f AS (
    SELECT id, alertname, namespace, status, first_seen, notify_count
    FROM alert_events
    WHERE {where}
), o AS (
    SELECT alertname, namespace, status, notify_count,
           row_number() OVER (ORDER BY alertname {bytewise}, first_seen, id) AS pos,
           lag(status) OVER (PARTITION BY alertname, namespace ORDER BY first_seen, id) AS prev
    FROM f
), k AS MATERIALIZED (
    SELECT alertname, namespace, count(*) AS events, min(pos) AS first_pos,
           count(CASE WHEN status <> prev THEN 1 END) AS flaps,
           min(CASE WHEN status <> prev THEN pos END) AS first_change,
           sum(notify_count) AS notifications
    FROM o
    GROUP BY alertname, namespace
)
SELECT 0 AS part, 0 AS place, NULL AS alertname, NULL AS namespace,
       CAST(coalesce(sum(events), 0) AS bigint) AS n, count(*) AS n_keys,
       CAST(NULL AS double precision) AS score
FROM k
UNION ALL
SELECT 1, place, alertname, namespace, events, NULL, NULL
FROM (SELECT alertname, namespace, events,
             row_number() OVER (ORDER BY events DESC, first_pos) AS place
      FROM k) AS t
WHERE place <= ?
UNION ALL
SELECT 2, place, alertname, namespace, flaps, NULL, CAST(flaps AS double precision) / ?
FROM (SELECT alertname, namespace, flaps,
             row_number() OVER (ORDER BY flaps DESC, first_change) AS place
      FROM k
      WHERE flaps >= ?) AS t
WHERE place <= ?
UNION ALL
SELECT 3, place, alertname, namespace, CAST(notifications AS bigint), NULL, NULL
FROM (SELECT alertname, namespace, notifications,
             row_number() OVER (ORDER BY notifications DESC, alertname {bytewise},
                                         namespace {bytewise} NULLS FIRST) AS place
      FROM k) AS t
WHERE place <= ?
ORDER BY part, place
"""


def _by_key(
    db: Db, query: ReportQuery, where: str, args: list[object], hours: float | None
) -> tuple[ReportV1, list[FlapScore], list[Noisy]]:
    sql = _BY_KEY.format(where=where, bytewise=_BYTEWISE[db.dialect])
    params = [*args, query.top, hours, query.min_flap, query.top, query.top]
    total_events = unique_alerts = 0
    top: list[TopRow] = []
    flapping: list[FlapScore] = []
    noisiest: list[Noisy] = []
    for part, _place, name, ns, n, keys, score in db.fetchall(sql, params):
        if part == 0:
            total_events, unique_alerts = int(n), int(keys)
        elif part == 1:
            top.append(TopRow(alertname=name, namespace=ns, events=int(n)))
        elif part == 2:
            score = None if score is None else float(score)
            flapping.append(FlapScore(alertname=name, namespace=ns, flaps=int(n), score=score))
        else:
            noisiest.append(Noisy(alertname=name, namespace=ns, notifications=int(n)))
    v1 = ReportV1(
        total_events=total_events,
        unique_alerts=unique_alerts,
        top_alerts=top,
        flapping_alerts=[
            FlapRow(alertname=f["alertname"], namespace=f["namespace"], flaps=f["flaps"])
            for f in flapping
        ],
    )
    return v1, flapping, noisiest


# Per episode, (fingerprint, starts_at): it is resolved when a resolved state of it has an end
# not before its start, and it ended at the earliest such end. Part 0 holds the totals, part 1
# the mean time to resolve per alertname, longest first.
_EPISODES = """
WITH e AS MATERIALIZED (
    SELECT fingerprint, starts_at, min(alertname) AS alertname,
           min(CASE WHEN status = 'resolved' AND ends_at <> 0 AND ends_at >= starts_at
                    THEN ends_at END) AS ended
    FROM alert_events
    WHERE {where}
    GROUP BY fingerprint, starts_at
)
SELECT 0 AS part, 0 AS place, NULL AS alertname, count(*) AS n, count(ended) AS resolved,
       CAST(count(CASE WHEN ended - starts_at <= ? THEN 1 END) AS double precision)
           / nullif(count(ended), 0) AS x
FROM e
UNION ALL
SELECT 1, place, alertname, n, NULL, mttr
FROM (SELECT alertname, count(*) AS n,
             avg(CAST(ended - starts_at AS double precision)) / 1000000000 AS mttr,
             row_number() OVER (
                 ORDER BY avg(CAST(ended - starts_at AS double precision)) DESC,
                          alertname {bytewise}) AS place
      FROM e
      WHERE ended IS NOT NULL
      GROUP BY alertname) AS t
WHERE place <= ?
ORDER BY part, place
"""


def _episodes(
    db: Db, query: ReportQuery, where: str, args: list[object]
) -> tuple[int, int, float | None, list[Mttr]]:
    """Episodes, resolved episodes, the share resolved within 5 min, and MTTR per alertname."""
    sql = _EPISODES.format(where=where, bytewise=_BYTEWISE[db.dialect])
    rows = db.fetchall(sql, [*args, QUICK_RESOLUTION_NS, query.top])
    (_part, _place, _name, episodes, resolved, share), *per_name = rows
    mttr = [
        Mttr(alertname=name, mttr_seconds=float(seconds), resolved_episodes=int(n))
        for _part, _place, name, n, _resolved, seconds in per_name
    ]
    return int(episodes), int(resolved), None if share is None else float(share), mttr


_V2_GROUPED = """
SELECT {key}, count(*),
       count(CASE WHEN status = 'firing' THEN 1 END),
       count(CASE WHEN status = 'resolved' THEN 1 END)
FROM alert_events
WHERE {where}
GROUP BY {key}
ORDER BY {key} {bytewise}
"""

_V2_ALL = """
SELECT 'all', count(*),
       count(CASE WHEN status = 'firing' THEN 1 END),
       count(CASE WHEN status = 'resolved' THEN 1 END)
FROM alert_events
WHERE {where}
HAVING count(*) > 0
"""


def _v2(db: Db, query: ReportQuery) -> ReportV2:
    """v2's counts per key over the rows first seen in the last `days` days (key filters hold)."""
    assert query.days is not None
    window = ReportQuery(
        now=query.now,
        alertname=query.alertname,
        namespace=query.namespace,
        since=query.now - query.days * _NS_PER_DAY,
        until=query.now,
    )
    where, args = _filters(window)
    key = _GROUP_KEYS.get(query.group_by)
    if key is None:
        sql = _V2_ALL.format(where=where)
    else:
        sql = _V2_GROUPED.format(key=key, where=where, bytewise=_BYTEWISE[db.dialect])
    data = {
        str(name): GroupCounts(count=int(n), firing=int(firing), resolved=int(resolved))
        for name, n, firing, resolved in db.fetchall(sql, args)
    }
    return ReportV2(
        period_days=query.days,
        group_by=query.group_by,
        data=data,
        total_alerts=sum(group["count"] for group in data.values()),
    )
