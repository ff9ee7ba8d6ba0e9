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
reads the few result rows. All statements of one report run in one read snapshot. Whole days and
hours come from the rollup (storage/report_rollup.py) when it is clean for them, the rest of the
window from the rows themselves; the numbers are the same either way.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from typing import Any, TypedDict

from alert_history.domain.flapping import FlapRow, ReportV1, TopRow
from alert_history.storage import report_spans as spans
from alert_history.storage.executor import Db, Dialect
from alert_history.storage.report_rollup import (
    NS_PER_DAY,
    NS_PER_HOUR,
    QUICK_RESOLUTION_NS,
    VALID_END,
    pos,
    segments,
)

_NS_PER_HOUR = NS_PER_HOUR
_NS_PER_DAY = NS_PER_DAY

#: v2 `group_by` values with their key expression; any other value groups everything as "all".
#: v2 showed a missing (or empty) namespace as "unknown".
_GROUP_KEYS = {
    "alertname": "alertname",
    "status": "status",
    "namespace": "coalesce(nullif(namespace, ''), 'unknown')",
}

_BYTEWISE: dict[Dialect, str] = {"sqlite": "COLLATE BINARY", "postgres": 'COLLATE "C"'}

#: the condition for the candidates' segments (`_BY_KEY`'s `cs`), in each part of their union
_CANDIDATE_KEYS: dict[Dialect, str] = {
    "sqlite": "key_id IN (SELECT key_id FROM tc UNION SELECT key_id FROM fc)",
    "postgres": "key_id = ANY (ARRAY(SELECT key_id FROM tc UNION SELECT key_id FROM fc))",
}


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
        units = _units(db, query)
        keys = _key_filters(query)
        window = _Split.of(query.since, query.until, units.days)
        by_hours = window.with_hours(units.hours).with_spans(units)
        by_key = _by_key(db, query, keys, window, by_hours)
        v1, flapping, noisiest, first_seen, eps = (
            by_key.v1,
            by_key.flapping,
            by_key.noisiest,
            by_key.first_seen,
            by_key.episodes,
        )
        v2: ReportV2 | None = None
        if by_key.v2 is not None:
            assert query.days is not None
            data = by_key.v2  # in key order (bytewise), as `_by_key` sorts them
            v2 = ReportV2(
                period_days=query.days,
                group_by=query.group_by,
                data=data,
                total_alerts=sum(group["count"] for group in data.values()),
            )
        elif query.days is not None:
            v2 = _v2(db, query, keys, units)
    start = query.since if query.since is not None else first_seen
    end = query.now if query.until is None else min(query.until, query.now)
    hours = None if start is None or end <= start else (end - start) / _NS_PER_HOUR
    scored = [
        FlapScore(
            alertname=f["alertname"],
            namespace=f["namespace"],
            flaps=f["flaps"],
            score=None if hours is None else float(f["flaps"]) / hours,
        )
        for f in flapping
    ]
    summary = Summary(
        episodes=eps.episodes,
        resolved_episodes=eps.resolved,
        resolved_within_5m_share=eps.share,
        mttr_seconds=eps.mttr,
        noisiest=noisiest,
        flapping=scored,
        period=Period(since=start, until=end, hours=hours),
    )
    return Report(v1=v1, summary=summary, v2=v2)


@contextmanager
def _snapshot(db: Db) -> Iterator[None]:
    """One read-only transaction, so the statements of a report agree with each other."""
    if db.dialect == "postgres":
        db.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        # the segments of a week (tens of thousands of rows) sort in memory, not on disk
        db.execute("SET LOCAL work_mem = '64MB'")
        yield from _transaction(db)
        return
    # likewise on SQLite, whose sorts spill to temporary files past the page cache (2 MiB by
    # default; a week's segments take a few MiB): a larger cache for this report only, then the
    # connection's own again (which frees the pages above it)
    row = db.fetchone("PRAGMA cache_size")
    previous = -2000 if row is None else int(row[0])
    db.execute(f"PRAGMA cache_size = {_SQLITE_CACHE_KIB}")
    try:
        db.execute("BEGIN")  # deferred: a WAL read snapshot from the first SELECT
        yield from _transaction(db)
    finally:
        with suppress(Exception):  # the connection may be gone; the first error is the story
            db.execute(f"PRAGMA cache_size = {previous}")


#: SQLite's page cache during a report, as PRAGMA cache_size (negative: KiB), as PostgreSQL's
#: work_mem above
_SQLITE_CACHE_KIB = -65536


def _transaction(db: Db) -> Iterator[None]:
    """The body of the transaction `_snapshot` began: COMMIT, or ROLLBACK on an error."""
    try:
        yield
    except Exception:
        with suppress(Exception):  # the connection may be gone; the first error is the story
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


# the dirty days (0) and hours (1), and the built spans (2) that end after a given hour
_UNITS = """
SELECT 0, day, 0 FROM report_dirty
UNION ALL
SELECT 1, hour, 0 FROM report_dirty_hours
UNION ALL
SELECT 2, lo, hi FROM report_spans_built WHERE hi >= ?
"""


@dataclass(frozen=True, slots=True)
class _Units:
    """What the rollup holds as of the report's snapshot: dirty days and hours, built spans
    (those that can fall in the report's windows)."""

    days: set[int]
    hours: set[int]
    built: set[spans.Span]


def _units(db: Db, query: ReportQuery) -> _Units:
    """The rollup's state for `query`: one statement; spans that end before the earliest
    window (v1's `since`, v2's start) starts are left out."""
    first_hour = 0  # v1's window has no start: every span
    if query.since is not None:
        start = query.since
        if query.days is not None:
            start = min(start, query.now - query.days * _NS_PER_DAY)
        first_hour = max(0, start // _NS_PER_HOUR)
    units = _Units(set(), set(), set())
    for kind, a, b in db.fetchall(_UNITS, [first_hour]):
        if kind == 0:
            units.days.add(int(a))
        elif kind == 1:
            units.hours.add(int(a))
        else:
            units.built.add((int(a), int(b)))
    return units


@dataclass(frozen=True, slots=True)
class _Keys:
    """The key filters: `raw` on alert_events, `rolled` on the rollup tables (by key_id)."""

    raw: str
    rolled: str
    args: list[object]


def _key_filters(query: ReportQuery) -> _Keys:
    where: list[str] = []
    args: list[object] = []
    for condition, value in (
        ("alertname = ?", query.alertname),
        ("namespace = ?", query.namespace),
    ):
        if value is not None:
            where.append(condition)
            args.append(value)
    if not where:
        return _Keys("1 = 1", "1 = 1", [])
    raw = " AND ".join(where)
    return _Keys(raw, f"key_id IN (SELECT id FROM report_keys WHERE {raw})", args)


@dataclass(frozen=True, slots=True)
class _Split:
    """A `first_seen` window [since, until] as whole days read from the rollup and the rest.

    `raw` holds inclusive `first_seen` ranges (None: unbounded) whose rows are read from
    alert_events: the partial first and last days and every dirty day. The rollup gives the
    whole days from `first_day` to `last_day` (None: unbounded) that are not dirty.
    """

    raw: tuple[tuple[int | None, int | None], ...]
    first_day: int
    last_day: int | None
    whole: bool
    #: counts only: rows to take away from the rollup's last day (the part after `until`)
    minus: tuple[tuple[int | None, int | None], ...] = ()
    #: inclusive ranges of hours read from report_hours (those not dirty), for what the days
    #: leave out
    hours: tuple[tuple[int, int], ...] = ()
    #: spans read from report_spans in place of their days and hours (`with_spans`)
    chosen: tuple[spans.Span, ...] = ()

    @classmethod
    def of(
        cls, since: int | None, until: int | None, dirty: set[int], *, counts: bool = False
    ) -> _Split:
        """With `counts` (sums only, as v2), a clean last day that `until` cuts is read from the
        rollup less its rows after `until` (usually none: `until` is now)."""
        # days before the epoch are never whole: SQL's integer division truncates toward zero
        first_day = 0 if since is None else max(0, -(-since // _NS_PER_DAY))
        last_day = None if until is None else (until + 1) // _NS_PER_DAY - 1
        if last_day is not None and last_day < first_day:
            return cls(((since, until),), 0, None, False)
        if (
            counts
            and until is not None
            and last_day is not None
            and (last_day + 1) * _NS_PER_DAY <= until
            and last_day + 1 not in dirty
        ):
            cut = replace(cls.of(since, (last_day + 2) * _NS_PER_DAY - 1, dirty), minus=())
            return replace(cut, minus=((until + 1, (last_day + 2) * _NS_PER_DAY - 1),))
        ranges: list[tuple[int | None, int | None]] = []
        if since is None or since < first_day * _NS_PER_DAY:
            ranges.append((since, first_day * _NS_PER_DAY - 1))
        for day in sorted(dirty):
            if day >= first_day and (last_day is None or day <= last_day):
                ranges.append((day * _NS_PER_DAY, (day + 1) * _NS_PER_DAY - 1))
        if last_day is not None and (last_day + 1) * _NS_PER_DAY <= until:  # type: ignore[operator]
            ranges.append(((last_day + 1) * _NS_PER_DAY, until))
        merged: list[tuple[int | None, int | None]] = []
        for lo, hi in ranges:
            if merged and lo is not None and merged[-1][1] is not None and merged[-1][1] + 1 >= lo:
                merged[-1] = (merged[-1][0], hi)
            else:
                merged.append((lo, hi))
        return cls(tuple(merged), first_day, last_day, True)

    def raw_rows(self, columns: str, keys: str, key_args: list[object]) -> tuple[str, list[object]]:
        """A SELECT of `columns` from the window's rows outside the rollup (maybe none)."""
        parts: list[str] = []
        args: list[object] = []
        for lo, hi in self.raw:
            where = [keys]
            args += key_args
            if lo is not None:
                where.append("first_seen >= ?")
                args.append(lo)
            if hi is not None:
                where.append("first_seen <= ?")
                args.append(hi)
            parts.append(f"SELECT {columns} FROM alert_events WHERE {' AND '.join(where)}")
        if not parts:
            return f"SELECT {columns} FROM alert_events WHERE 1 = 0", []
        return " UNION ALL ".join(parts), args

    def with_hours(self, dirty_hours: set[int]) -> _Split:
        """The same window with the whole clean hours of its `raw` ranges read from
        report_hours: only the partial hours at the edges and dirty hours stay raw."""
        raw: list[tuple[int | None, int | None]] = []
        hours: list[tuple[int, int]] = []
        for lo, hi in self.raw:
            if lo is None or hi is None or lo < 0:
                raw.append((lo, hi))
                continue
            first, last = -(-lo // _NS_PER_HOUR), (hi + 1) // _NS_PER_HOUR - 1
            if last < first:
                raw.append((lo, hi))
                continue
            if lo < first * _NS_PER_HOUR:
                raw.append((lo, first * _NS_PER_HOUR - 1))
            hours.append((first, last))
            for hour in sorted(dirty_hours):
                if first <= hour <= last:
                    raw.append((hour * _NS_PER_HOUR, (hour + 1) * _NS_PER_HOUR - 1))
            if (last + 1) * _NS_PER_HOUR <= hi:
                raw.append(((last + 1) * _NS_PER_HOUR, hi))
        return replace(self, raw=tuple(raw), hours=tuple(hours))

    def with_spans(self, units: _Units) -> _Split:
        """The same window with the built spans of clean days and hours that fit in it read
        from report_spans in place of their days and hours: a trailing span from its first
        whole hour (report_spans.build_trailing) where there is one, aligned spans for the
        rest."""
        chosen: list[spans.Span] = []
        trailing = self._trailing(units)
        after = None if trailing is None else trailing[1] // spans.HOURS_PER_DAY
        day_spans = [s for s in units.built if spans.is_day_span(s) and spans.is_aligned(s)]
        if self.whole and day_spans:
            first = max(self.first_day, min(lo for lo, _ in day_spans) // spans.HOURS_PER_DAY)
            if after is not None:
                first = max(first, after + 1)
            last = max(hi for _, hi in day_spans) // spans.HOURS_PER_DAY
            if self.last_day is not None:
                last = min(last, self.last_day)
            chosen += spans.cover(
                first, last, spans.DAY_SIZES, units.built, units.days.__contains__,
                unit=spans.HOURS_PER_DAY,
            )  # fmt: skip
        for first, last in self.hours:
            if trailing is not None and trailing[0] <= first and last <= trailing[1]:
                continue
            chosen += spans.cover(
                first, last, spans.HOUR_SIZES, units.built, units.hours.__contains__, unit=1
            )
        if trailing is not None:
            chosen.insert(0, trailing)
        return replace(self, chosen=tuple(chosen))

    def _trailing(self, units: _Units) -> spans.Span | None:
        """The longest built trailing span that starts at the window's first whole hour and
        ends by its last whole day, every day and hour of it clean."""
        if not self.whole:
            return None
        day_start = self.first_day * spans.HOURS_PER_DAY
        start = day_start
        if self.hours and self.hours[0][0] < day_start:
            if self.hours[0][1] != day_start - 1:
                return None  # the first day's hours are cut (a dirty hour, a partial day)
            start = self.hours[0][0]
        best: spans.Span | None = None
        for span in units.built:
            lo, hi = span
            if lo != start or spans.is_aligned(span) or (best is not None and hi <= best[1]):
                continue
            last, cut = divmod(hi + 1, spans.HOURS_PER_DAY)
            last -= 1
            if cut or (self.last_day is not None and last > self.last_day):
                continue
            if any(h in units.hours for h in range(lo, day_start)) or any(
                d in units.days for d in range(self.first_day, last + 1)
            ):
                continue
            best = span
        return best

    def _outside(
        self, ranges: list[tuple[int, int | None]], day: bool
    ) -> list[tuple[int, int | None]]:
        """`ranges` (inclusive, sorted, disjoint; None: unbounded) less the chosen spans, in
        days (`day`: the whole days a span holds) or in hours (its hours)."""
        per = spans.HOURS_PER_DAY
        covered = sorted(
            (-(-lo // per), (hi + 1) // per - 1) if day else (lo, hi) for lo, hi in self.chosen
        )
        out: list[tuple[int, int | None]] = []
        for first, last in ranges:
            start: int | None = first
            for lo, hi in covered:
                if hi < lo or start is None or (last is not None and lo > last) or hi < start:
                    continue
                if lo > start:
                    out.append((start, lo - 1))
                start = hi + 1 if last is None or hi < last else None
            if start is not None:
                out.append((start, last))
        return out

    @staticmethod
    def _between(column: str, ranges: list[tuple[int, int | None]]) -> tuple[str, list[object]]:
        parts: list[str] = []
        args: list[object] = []
        for first, last in ranges:
            if last is None:
                parts.append(f"{column} >= ?")
                args.append(first)
            else:
                parts.append(f"{column} BETWEEN ? AND ?")
                args += [first, last]
        return "(" + " OR ".join(parts) + ")", args

    def rolled_hours(self, keys: str, key_args: list[object]) -> tuple[str, list[object]]:
        """The condition on report_hours rows for the whole, clean hours outside spans."""
        ranges = self._outside([(lo, hi) for lo, hi in self.hours], day=False)
        if not ranges:
            return "1 = 0", []
        between, args = self._between("hour", ranges)
        where = [keys, between, "hour NOT IN (SELECT hour FROM report_dirty_hours)"]
        return " AND ".join(where), [*key_args, *args]

    def rolled_days(self, keys: str, key_args: list[object]) -> tuple[str, list[object]]:
        """The condition on report_days rows for the whole, clean days outside spans."""
        if not self.whole:
            return "1 = 0", []
        ranges = self._outside([(self.first_day, self.last_day)], day=True)
        if not ranges:
            return "1 = 0", []
        between, args = self._between("day", ranges)
        where = [keys, between, "day NOT IN (SELECT day FROM report_dirty)"]
        return " AND ".join(where), [*key_args, *args]

    def rolled_spans(
        self, keys: str, key_args: list[object], each: str = ""
    ) -> tuple[str, list[object]]:
        """The condition on report_spans rows for the chosen spans; `each` (no arguments) is
        added to each span's branch, where it can narrow the lookup of the span's rows."""
        if not self.chosen:
            return "1 = 0", []
        branch = f"(lo = ? AND hi = ? AND {each})" if each else "(lo = ? AND hi = ?)"
        chosen = " OR ".join([branch] * len(self.chosen))
        return f"{keys} AND ({chosen})", [*key_args, *(v for span in self.chosen for v in span)]

    def minus_rows(
        self, columns: str, keys: str, key_args: list[object]
    ) -> tuple[str, list[object]]:
        """A SELECT of `columns` from the rows to take away (maybe none)."""
        return replace(self, raw=self.minus).raw_rows(columns, keys, key_args)

    def rolled(self, keys: str, key_args: list[object]) -> tuple[str, list[object]]:
        """The condition on report_days / report_multi rows for the whole, clean days."""
        if not self.whole:
            return "1 = 0", []
        where = [keys, "day >= ?", "day NOT IN (SELECT day FROM report_dirty)"]
        args: list[object] = [*key_args, self.first_day]
        if self.last_day is not None:
            where.append("day <= ?")
            args.append(self.last_day)
        return " AND ".join(where), args


_EPISODE_COLUMNS = "episodes, resolved_episodes, quick_episodes, resolved_ns"
_NO_EPISODES: dict[Dialect, str] = {
    "sqlite": "0 AS episodes, 0 AS resolved_episodes, 0 AS quick_episodes, 0.0 AS resolved_ns",
    "postgres": "0 AS episodes, 0 AS resolved_episodes, 0 AS quick_episodes, "
    "CAST(0 AS double precision) AS resolved_ns",
}
#: what `k0` sums of each segment
_SEGMENT_COLUMNS = "key_id, events, firing, notifications, flaps, first_seen"
# what `cs` reads of the rollup's segments after key_id and start
_CANDIDATE_COLUMNS = (
    "first_seen, first_id, first_status, last_status, flaps, change_seen, change_id"
)
# the rows' own segments as the rollup's types (integer counts: PostgreSQL sums those as bigint,
# bigints as numeric)
_RAW_SEGMENT_COLUMNS = (
    "key_id, CAST(events AS integer) AS events, CAST(firing AS integer) AS firing,"
    " CAST(notifications AS integer) AS notifications, CAST(flaps AS integer) AS flaps,"
    " first_seen"
)

# Everything in one statement: per (alertname, namespace) the totals (part 0), top_alerts (part
# 1), flapping_alerts (part 2), the noisiest keys (part 3); the episodes (part 4) and the mean
# time to resolve per alertname, longest first (part 5). The window's rows come as segments (the
# rollup's clean spans, days and hours, the rest computed from the rows the same way), disjoint in
# time. Per key (`k`), plain sums over its segments give its rows, firing rows, notifications and
# the status changes within segments (`inner_flaps`); its resolved rows are the others (a status
# is one of the two); its first row is in the one segment holding its least first_seen. Per
# alertname (`ka`), the same units' sums per alertname (`_KA_FROM_NAMES`): the totals, the
# episodes and v2 by alertname read those. The changes between consecutive segments (LAG over
# them) are computed only for the keys that can make flapping_alerts (`fc`): a boundary adds at
# most one change, so a key whose inner changes plus boundaries (pieces - 1) stay below the
# `top`-th largest inner count (or below min_flap) is beaten by `top` keys or filtered out. Its
# first change is the earliest of its segments' (segments are disjoint in time, so `min` over
# their places finds it). Rollup rows carry integer key ids: the grouping runs on them, and the
# names are joined only where they count: the candidates and the ranked rows (top-N bounds on rows
# and notifications first, names for the order of ties).
# Per episode, (fingerprint, starts_at): it is
# resolved when a resolved state of it has an end not before its start, and it ended at the
# earliest such end; the rollup's days hold the episodes wholly inside them (per key: count,
# resolved, quick, total time to resolve), every other episode of the window is grouped from its
# rows (those read directly, over `window` without hours, and those of report_multi in the
# rollup's days).
# The CTEs read once are NOT MATERIALIZED: SQLite (3.40) would otherwise copy each into a temporary
# table before reading it (tens of thousands of rows, ~15 % of the statement); as co-routines
# they stream. PostgreSQL inlines such CTEs anyway. Those read several times are computed once:
# `k`, the candidates, their segments (`cs`, for both kinds), `a` and the raw segments (`rs`).
# The candidates' segments are read again from the rollup, by key: each part of `cs` has the
# candidates' keys in its condition, beside its day, hour or span (for spans, in each one's
# branch), which both databases turn into lookups of the primary key (unit, key_id), instead
# of keeping every segment (~20,000 rows) for the few tens of candidates'.
_BY_KEY = """
WITH r AS ({raw}),
{segments},
seg AS NOT MATERIALIZED (
    SELECT {raw_columns}{raw_episodes} FROM rs
    UNION ALL
    SELECT {columns}{episodes} FROM report_days WHERE {rolled}
    UNION ALL
    SELECT {columns}{episodes} FROM report_hours WHERE {rolled_hours}
    UNION ALL
    SELECT {columns}{episodes} FROM report_spans WHERE {rolled_spans}
), k0 AS NOT MATERIALIZED (
    SELECT key_id, sum(events) AS events, sum(firing) AS firing,
           sum(notifications) AS notifications,
           sum(flaps) AS inner_flaps, count(*) AS pieces, min(first_seen) AS first_seen{sums}
    FROM seg
    GROUP BY key_id
), k AS MATERIALIZED (
    SELECT key_id, events, firing, events - firing AS resolved, notifications, inner_flaps,
           pieces, first_seen{episodes}
    FROM k0
), ka AS MATERIALIZED (
    {ka}
), tc AS MATERIALIZED (
    SELECT key_id, alertname, namespace, events, first_seen
    FROM (SELECT k.key_id, n.alertname, n.namespace, k.events, k.first_seen,
                 rank() OVER (ORDER BY k.events DESC, n.alertname {bytewise}) AS place
          FROM k JOIN report_keys n ON n.id = k.key_id
          WHERE k.events >= (
              SELECT min(events) FROM (SELECT events FROM k ORDER BY events DESC LIMIT ?) AS x
          )) AS t
    WHERE place <= ?
), fc AS MATERIALIZED (
    SELECT key_id FROM k
    WHERE inner_flaps + pieces - 1 >= (
        SELECT max(t) FROM (
            SELECT CAST(? AS bigint) AS t
            UNION ALL
            SELECT inner_flaps
            FROM (SELECT inner_flaps FROM k ORDER BY inner_flaps DESC LIMIT 1 OFFSET ?) AS x
        ) AS y
    )
), cs AS MATERIALIZED (
    SELECT key_id, bucket * {hour_ns} AS start, first_seen, first_id, first_status,
           last_status, CAST(flaps AS integer) AS flaps, change_seen, change_id
    FROM rs WHERE {candidate_keys}
    UNION ALL
    SELECT key_id, day * {day_ns}, {candidate_columns} FROM report_days
    WHERE {candidate_keys} AND {rolled}
    UNION ALL
    SELECT key_id, hour * {hour_ns}, {candidate_columns} FROM report_hours
    WHERE {candidate_keys} AND {rolled_hours}
    UNION ALL
    SELECT key_id, lo * {hour_ns}, {candidate_columns} FROM report_spans
    WHERE {candidate_spans}
), tf AS NOT MATERIALIZED (
    SELECT s.key_id, min(s.first_id) AS first_id
    FROM cs s JOIN tc ON tc.key_id = s.key_id AND tc.first_seen = s.first_seen
    GROUP BY s.key_id
), fo AS NOT MATERIALIZED (
    SELECT s.key_id, s.first_seen, s.first_id, s.first_status, s.flaps, s.change_seen,
           s.change_id,
           lag(s.last_status) OVER (PARTITION BY s.key_id ORDER BY s.start) AS prev_last
    FROM cs s
    WHERE s.key_id IN (SELECT key_id FROM fc)
), fk AS NOT MATERIALIZED (
    SELECT key_id, sum(flaps + CASE WHEN first_status <> prev_last THEN 1 ELSE 0 END) AS flaps,
           min(CASE WHEN first_status <> prev_last THEN {first_pos}
                    WHEN flaps > 0 THEN {change_pos} END) AS change_pos
    FROM fo
    GROUP BY key_id
), er AS NOT MATERIALIZED ({episode_raw}),
ex AS NOT MATERIALIZED (
    SELECT fingerprint, starts_at, alertname, status, ends_at FROM er
    UNION ALL
    SELECT fingerprint, starts_at, alertname, status, ends_at FROM report_multi
    WHERE {multi}
    UNION ALL
    SELECT fingerprint, starts_at, alertname, status, ends_at FROM report_multi_hours
    WHERE {multi_hours}
), e AS NOT MATERIALIZED (
    SELECT fingerprint, starts_at, min(alertname) AS alertname,
           min(CASE WHEN {valid_end} THEN ends_at END) AS ended
    FROM ex
    GROUP BY fingerprint, starts_at
), en AS NOT MATERIALIZED (
    SELECT alertname, count(*) AS episodes, count(ended) AS resolved,
           count(CASE WHEN ended - starts_at <= ? THEN 1 END) AS quick,
           coalesce(sum(CAST(ended - starts_at AS double precision)), 0) AS ns
    FROM e
    GROUP BY alertname
    UNION ALL
    SELECT alertname, episodes, resolved_episodes, quick_episodes, resolved_ns
    FROM ka
    WHERE episodes > 0
), a AS MATERIALIZED (
    SELECT alertname, sum(episodes) AS episodes, sum(resolved) AS resolved,
           sum(quick) AS quick, sum(ns) AS ns
    FROM en
    GROUP BY alertname
)
SELECT 0 AS part, 0 AS place, NULL AS alertname, NULL AS namespace,
       CAST(coalesce(sum(events), 0) AS bigint) AS n,
       CAST((SELECT count(*) FROM k) AS bigint) AS n_keys,
       min(first_seen) AS first_seen, CAST(NULL AS double precision) AS ns
FROM ka
UNION ALL
SELECT 1, row_number() OVER (ORDER BY events DESC, alertname {bytewise}, first_seen, first_id),
       alertname, namespace, CAST(events AS bigint), NULL, NULL, NULL
FROM (SELECT tc.alertname, tc.namespace, tc.events, tc.first_seen, tf.first_id
      FROM tc JOIN tf ON tf.key_id = tc.key_id
      ORDER BY tc.events DESC, tc.alertname {bytewise}, tc.first_seen, tf.first_id
      LIMIT ?) AS t
UNION ALL
SELECT 2, row_number() OVER (ORDER BY flaps DESC, alertname {bytewise}, change_pos),
       alertname, namespace, CAST(flaps AS bigint), NULL, NULL, NULL
FROM (SELECT n.alertname, n.namespace, fk.flaps, fk.change_pos
      FROM fk JOIN report_keys n ON n.id = fk.key_id
      WHERE fk.flaps >= ?
      ORDER BY fk.flaps DESC, n.alertname {bytewise}, fk.change_pos
      LIMIT ?) AS t
UNION ALL
SELECT 3, row_number() OVER (ORDER BY notifications DESC, alertname {bytewise},
                                      namespace {bytewise} NULLS FIRST),
       alertname, namespace, CAST(notifications AS bigint), NULL, NULL, NULL
FROM (SELECT n.alertname, n.namespace, k.notifications
      FROM k JOIN report_keys n ON n.id = k.key_id
      WHERE k.notifications >= (
          SELECT min(notifications)
          FROM (SELECT notifications FROM k ORDER BY notifications DESC LIMIT ?) AS x
      )
      ORDER BY k.notifications DESC, n.alertname {bytewise}, n.namespace {bytewise} NULLS FIRST
      LIMIT ?) AS t
UNION ALL
SELECT 4, 0, NULL, NULL, CAST(coalesce(sum(episodes), 0) AS bigint),
       CAST(coalesce(sum(resolved), 0) AS bigint), CAST(coalesce(sum(quick), 0) AS bigint), NULL
FROM a
UNION ALL
SELECT 5, row_number() OVER (ORDER BY mean DESC, alertname {bytewise}), alertname, NULL,
       CAST(resolved AS bigint), NULL, NULL, mean / 1000000000
FROM (SELECT alertname, resolved, ns / CAST(resolved AS double precision) AS mean
      FROM a
      WHERE resolved > 0
      ORDER BY ns / CAST(resolved AS double precision) DESC, alertname {bytewise}
      LIMIT ?) AS t{v2_part}
"""

# The sums per alertname (`ka`): from report_names_* (migration 0012) over the same days, hours
# and spans as `seg`, with the raw segments' (no episodes: those are grouped from the rows);
# with a namespace filter (the names' sums are over every namespace) from `k`, which then sums
# the episodes per key too.
_KA_FROM_NAMES = """SELECT alertname, sum(events) AS events, sum(firing) AS firing,
           sum(events) - sum(firing) AS resolved, min(first_seen) AS first_seen,
           sum(episodes) AS episodes, sum(resolved_episodes) AS resolved_episodes,
           sum(quick_episodes) AS quick_episodes, sum(resolved_ns) AS resolved_ns
    FROM (SELECT alertname, CAST(events AS integer) AS events,
                 CAST(firing AS integer) AS firing, first_seen, {no_episodes}
          FROM rs
          UNION ALL
          SELECT {name_columns} FROM report_names_days WHERE {names_days}
          UNION ALL
          SELECT {name_columns} FROM report_names_hours WHERE {names_hours}
          UNION ALL
          SELECT {name_columns} FROM report_names_spans WHERE {names_spans}) AS x
    GROUP BY alertname"""
_KA_FROM_KEYS = """SELECT n.alertname, sum(k.events) AS events, sum(k.firing) AS firing,
           sum(k.resolved) AS resolved, min(k.first_seen) AS first_seen,
           sum(k.episodes) AS episodes, sum(k.resolved_episodes) AS resolved_episodes,
           sum(k.quick_episodes) AS quick_episodes, sum(k.resolved_ns) AS resolved_ns
    FROM k JOIN report_keys n ON n.id = k.key_id
    GROUP BY n.alertname"""
_KEY_EPISODE_SUMS = """,
           sum(episodes) AS episodes, sum(resolved_episodes) AS resolved_episodes,
           sum(quick_episodes) AS quick_episodes, sum(resolved_ns) AS resolved_ns"""

# v2's counts from the per-key sums over v1's window (part 6: per alertname straight from `ka`,
# else grouped from `k`), and the rows between the two windows grouped by the same key (part 7,
# counted +1 or -1 each); `_by_key` adds the two up. Neither part is ordered here: the rows
# of the statement come in no order, the caller sorts what it keeps.
_V2_PART = """
UNION ALL
SELECT 6, 0, key, NULL, CAST(n AS bigint), CAST(firing AS bigint), CAST(resolved AS bigint),
       NULL
FROM ({from_keys}) AS v
UNION ALL
SELECT 7, 0, key, NULL, CAST(sum(sign) AS bigint),
       CAST(sum(CASE WHEN status = 'firing' THEN sign ELSE 0 END) AS bigint),
       CAST(sum(CASE WHEN status = 'resolved' THEN sign ELSE 0 END) AS bigint), NULL
FROM (SELECT {raw_key} AS key, status, sign FROM ({corrections}) AS c) AS w
GROUP BY key"""
_V2_FROM_ALERTNAMES = "SELECT alertname AS key, events AS n, firing, resolved FROM ka"
_V2_FROM_KEYS = (
    "SELECT key, sum(n) AS n, sum(firing) AS firing, sum(resolved) AS resolved FROM ({keys}) AS g"
    " GROUP BY key"
)
_V2_KEYS = (
    "SELECT {key} AS key, events AS n, firing, resolved"
    " FROM k JOIN report_keys ON report_keys.id = k.key_id"
)
_V2_KEYS_STATUS = (
    "SELECT 'firing' AS key, firing AS n, firing, 0 AS resolved FROM k WHERE firing > 0"
    " UNION ALL SELECT 'resolved', resolved, 0, resolved FROM k WHERE resolved > 0"
)

#: v2 comes from v1's window when the two differ by at most this at either end (ns): a client
#: asking for both over the same days; the rows in between are read on their own
_V2_FOLD_NS = _NS_PER_HOUR


def _v2_corrections(query: ReportQuery) -> list[tuple[int, int | None, int]] | None:
    """The `first_seen` ranges (inclusive) to add (+1) to or take (-1) from the counts of v1's
    window to make v2's, or None when they differ by more than `_V2_FOLD_NS` at an end."""
    if query.days is None or query.since is None:
        return None
    since, until = query.since, query.until
    start, end = query.now - query.days * _NS_PER_DAY, query.now
    ranges: list[tuple[int, int | None, int]] = []
    if abs(since - start) > _V2_FOLD_NS:
        return None
    if since < start:
        ranges.append((since, start - 1, -1))
    elif since > start:
        ranges.append((start, since - 1, 1))
    if until is None or until > end:
        ranges.append((end + 1, until, -1))
    elif until < end:
        if end - until > _V2_FOLD_NS:
            return None
        ranges.append((until + 1, end, 1))
    return ranges


@dataclass(frozen=True, slots=True)
class _Episodes:
    episodes: int
    resolved: int
    share: float | None  # resolved within 5 min, of the resolved
    mttr: list[Mttr]


#: a row of a ranked part of `_BY_KEY`: place, alertname, namespace, number, mean time (part 5)
_Ranked = tuple[int, str, str | None, int, Any]


@dataclass(frozen=True, slots=True)
class _ByKey:
    v1: ReportV1
    flapping: list[FlapScore]
    noisiest: list[Noisy]
    first_seen: int | None
    episodes: _Episodes
    v2: dict[str, GroupCounts] | None  # when it came from v1's window (part 6)


def _by_key(db: Db, query: ReportQuery, keys: _Keys, window: _Split, by_hours: _Split) -> _ByKey:
    """The v1 numbers and the summary's over `window`: per key from its day segments
    (`by_hours`: the same days, the rest by hours), episodes from the days and the rows."""
    raw, raw_args = by_hours.raw_rows(
        "id, alertname, namespace, status, first_seen, notify_count", keys.raw, keys.args
    )
    rolled, rolled_args = by_hours.rolled_days(keys.rolled, keys.args)
    hours, hours_args = by_hours.rolled_hours(keys.rolled, keys.args)
    spanned, spanned_args = by_hours.rolled_spans(keys.rolled, keys.args)
    candidate_keys = _CANDIDATE_KEYS[db.dialect]
    candidate_spans, candidate_spans_args = by_hours.rolled_spans(
        keys.rolled, keys.args, each=candidate_keys
    )
    episode_raw, episode_raw_args = by_hours.raw_rows(
        "fingerprint, starts_at, alertname, status, ends_at", keys.raw, keys.args
    )
    # report_multi(_hours) have the texts; every clean hour's and day's, spans or not
    multi, multi_args = window.rolled(keys.raw, keys.args)
    multi_hours, multi_hours_args = replace(by_hours, chosen=()).rolled_hours(keys.raw, keys.args)
    v2_part, v2_args = _v2_part(query, keys)
    by_names = query.namespace is None
    ka_args: list[object] = []
    if by_names:  # the sums per alertname from report_names_*
        names_keys, names_args = _names_filter(query)
        names_days, names_days_args = by_hours.rolled_days(names_keys, names_args)
        names_hours, names_hours_args = by_hours.rolled_hours(names_keys, names_args)
        names_spans, names_spans_args = by_hours.rolled_spans(names_keys, names_args)
        ka = _KA_FROM_NAMES.format(
            no_episodes=_NO_EPISODES[db.dialect], name_columns=spans.NAME_COLUMNS,
            names_days=names_days, names_hours=names_hours, names_spans=names_spans,
        )  # fmt: skip
        ka_args = [*names_days_args, *names_hours_args, *names_spans_args]
    else:
        ka = _KA_FROM_KEYS
    sql = _BY_KEY.format(
        ka=ka,
        sums="" if by_names else _KEY_EPISODE_SUMS,
        episodes="" if by_names else ", " + _EPISODE_COLUMNS,
        raw_episodes="" if by_names else ", " + _NO_EPISODES[db.dialect],
        v2_part=v2_part,
        candidate_keys=candidate_keys,
        candidate_columns=_CANDIDATE_COLUMNS,
        candidate_spans=candidate_spans,
        raw=raw,
        segments=segments(db.dialect, "rs", "r", _NS_PER_HOUR),
        columns=_SEGMENT_COLUMNS,
        raw_columns=_RAW_SEGMENT_COLUMNS,
        rolled=rolled,
        rolled_hours=hours,
        rolled_spans=spanned,
        day_ns=_NS_PER_DAY,
        hour_ns=_NS_PER_HOUR,
        first_pos=pos(db.dialect, "first_seen", "first_id"),
        change_pos=pos(db.dialect, "change_seen", "change_id"),
        bytewise=_BYTEWISE[db.dialect],
        episode_raw=episode_raw,
        multi=multi,
        multi_hours=multi_hours,
        valid_end=VALID_END,
    )
    params = [
        *raw_args, *rolled_args, *hours_args, *spanned_args, *ka_args, query.top, query.top,
        query.min_flap,
        query.top - 1, *rolled_args, *hours_args, *candidate_spans_args, *episode_raw_args,
        *multi_args, *multi_hours_args, QUICK_RESOLUTION_NS,
        query.top, query.min_flap, query.top, query.top, query.top, query.top, *v2_args,
    ]  # fmt: skip
    total_events = unique_alerts = 0
    first_seen: int | None = None
    # the ranked parts' rows (place first; the statement returns its rows in no order)
    ranked: dict[int, list[_Ranked]] = {1: [], 2: [], 3: [], 5: []}
    counts: dict[str, list[int]] = {}  # v2: count, firing, resolved per key (parts 6 and 7)
    episodes = _Episodes(0, 0, None, [])
    for part, place, name, ns, n, keys_n, first, total in db.fetchall(sql, params):
        if part >= 6:  # ~one row per key: the hot path
            sums = counts.get(name)
            if sums is None:
                counts[name] = [n, keys_n, first]
            else:
                sums[0] += n
                sums[1] += keys_n
                sums[2] += first
        elif part == 0:
            total_events, unique_alerts = int(n), int(keys_n)
            first_seen = None if first is None else int(first)
        elif part == 4:
            quick, resolved = int(first), int(keys_n)
            share = None if resolved == 0 else float(quick) / resolved
            episodes = replace(episodes, episodes=int(n), resolved=resolved, share=share)
        else:
            ranked[part].append((place, name, ns, int(n), total))
    top = [TopRow(alertname=a, namespace=ns, events=n) for _, a, ns, n, _ in _by_place(ranked[1])]
    flapping = [
        FlapScore(alertname=a, namespace=ns, flaps=n, score=None)
        for _, a, ns, n, _ in _by_place(ranked[2])
    ]
    noisiest = [
        Noisy(alertname=a, namespace=ns, notifications=n) for _, a, ns, n, _ in _by_place(ranked[3])
    ]
    episodes.mttr.extend(
        Mttr(alertname=a, mttr_seconds=float(mttr), resolved_episodes=n)
        for _, a, _, n, mttr in _by_place(ranked[5])
    )
    v2: dict[str, GroupCounts] | None = None
    if v2_part:
        # keys in byte order (UTF-8's is the code points', Python's own), as v2 sorted them;
        # keys left with no row dropped
        v2 = {}
        for key in sorted(counts):
            c = counts[key]
            if c[0] > 0:
                v2[key] = {"count": c[0], "firing": c[1], "resolved": c[2]}
    v1 = ReportV1(
        total_events=total_events,
        unique_alerts=unique_alerts,
        top_alerts=top,
        flapping_alerts=[
            FlapRow(alertname=f["alertname"], namespace=f["namespace"], flaps=f["flaps"])
            for f in flapping
        ],
    )
    return _ByKey(v1, flapping, noisiest, first_seen, episodes, v2)


def _by_place(rows: list[_Ranked]) -> list[_Ranked]:
    return sorted(rows, key=lambda row: row[0])


def _v2_part(query: ReportQuery, keys: _Keys) -> tuple[str, list[object]]:
    """Part 6 of `_BY_KEY` (v2's counts) and its arguments, or nothing when v2 is not asked
    for or its window is not close enough to v1's."""
    corrections = _v2_corrections(query)
    if corrections is None:
        return "", []
    key = _GROUP_KEYS.get(query.group_by, "'all'")
    parts: list[str] = []
    args: list[object] = []
    for lo, hi, sign in corrections:
        where = [keys.raw, "first_seen >= ?"]
        args += [*keys.args, lo]
        if hi is not None:
            where.append("first_seen <= ?")
            args.append(hi)
        parts.append(
            f"SELECT alertname, namespace, status, {sign} AS sign FROM alert_events"
            f" WHERE {' AND '.join(where)}"
        )
    if not parts:
        parts.append("SELECT alertname, namespace, status, 0 AS sign FROM alert_events WHERE 1 = 0")
    if query.group_by == "alertname":
        from_keys = _V2_FROM_ALERTNAMES
    else:
        by = _V2_KEYS_STATUS if query.group_by == "status" else _V2_KEYS.format(key=key)
        from_keys = _V2_FROM_KEYS.format(keys=by)
    sql = _V2_PART.format(
        from_keys=from_keys,
        raw_key="status" if query.group_by == "status" else key,
        corrections=" UNION ALL ".join(parts),
    )
    return sql, args


# v2: the raw rows one by one and the rollup's days by their counts, grouped by the key.
_V2 = """
WITH r AS ({raw}), m AS ({minus})
SELECT key, sum(n), sum(firing), sum(resolved)
FROM (
    SELECT {key} AS key, 1 AS n,
           CASE WHEN status = 'firing' THEN 1 ELSE 0 END AS firing,
           CASE WHEN status = 'resolved' THEN 1 ELSE 0 END AS resolved
    FROM r
    UNION ALL
    SELECT {key}, -1, CASE WHEN status = 'firing' THEN -1 ELSE 0 END,
           CASE WHEN status = 'resolved' THEN -1 ELSE 0 END
    FROM m
    UNION ALL
    {rolled}
) AS x
GROUP BY key
HAVING sum(n) > 0
ORDER BY key {bytewise}
"""

_V2_ROLLED = (
    "SELECT {key}, x.events, x.firing, x.resolved"
    " FROM (SELECT key_id, sum(events) AS events, sum(firing) AS firing,"
    " sum(resolved) AS resolved FROM {table} WHERE {where} GROUP BY key_id) AS x"
    " JOIN report_keys ON report_keys.id = x.key_id"
)
#: by alertname from the sums per alertname (report_names_*) when no namespace filter holds
_V2_ROLLED_NAMES = "SELECT alertname, events, firing, events - firing FROM {table} WHERE {where}"
_V2_ROLLED_STATUS = (
    "SELECT 'firing', firing, firing, 0 FROM {table} WHERE {where} AND firing > 0 "
    "UNION ALL "
    "SELECT 'resolved', resolved, 0, resolved FROM {table} WHERE {where} AND resolved > 0"
)


def _names_filter(query: ReportQuery) -> tuple[str, list[object]]:
    """The key filters on report_names_* rows (an alertname; never a namespace)."""
    assert query.namespace is None
    if query.alertname is None:
        return "1 = 1", []
    return "alertname = ?", [query.alertname]


def _v2(db: Db, query: ReportQuery, keys: _Keys, units: _Units) -> ReportV2:
    """v2's counts per key over the rows first seen in the last `days` days (key filters hold)."""
    assert query.days is not None
    since = query.now - query.days * _NS_PER_DAY
    window = _Split.of(since, query.now, units.days, counts=True)
    window = window.with_hours(units.hours).with_spans(units)
    raw, raw_args = window.raw_rows("alertname, namespace, status", keys.raw, keys.args)
    minus, minus_args = window.minus_rows("alertname, namespace, status", keys.raw, keys.args)
    key = _GROUP_KEYS.get(query.group_by, "'all'")
    template = _V2_ROLLED_STATUS if query.group_by == "status" else _V2_ROLLED
    rolled_keys, rolled_key_args = keys.rolled, keys.args
    by_names = query.group_by == "alertname" and query.namespace is None
    if by_names:
        template = _V2_ROLLED_NAMES
        rolled_keys, rolled_key_args = _names_filter(query)
    rolled_parts: list[str] = []
    rolled_args: list[object] = []
    for table, (where, args) in (
        ("report_days", window.rolled_days(rolled_keys, rolled_key_args)),
        ("report_hours", window.rolled_hours(rolled_keys, rolled_key_args)),
        ("report_spans", window.rolled_spans(rolled_keys, rolled_key_args)),
    ):
        read = spans.NAMES[table] if by_names else table
        rolled_parts.append(template.format(key=key, table=read, where=where))
        rolled_args += [*args, *args] if query.group_by == "status" else args
    sql = _V2.format(
        raw=raw,
        minus=minus,
        key=key,
        rolled=" UNION ALL ".join(rolled_parts),
        bytewise=_BYTEWISE[db.dialect],
    )
    data = {
        str(name): GroupCounts(count=int(n), firing=int(firing), resolved=int(resolved))
        for name, n, firing, resolved in db.fetchall(sql, [*raw_args, *minus_args, *rolled_args])
    }
    return ReportV2(
        period_days=query.days,
        group_by=query.group_by,
        data=data,
        total_alerts=sum(group["count"] for group in data.values()),
    )
