"""GET /report's spans: the rollup of aligned runs of hours and days, merged from two halves.

A week's report would otherwise read one rollup row per key for every day and hour of its
window (~47,000 rows at 1,000,000 events). A span holds, per key, what report_days holds for a
run of units: 2, 4, 8 or 16 hours from the start of a UTC day (made of two hours or two smaller
spans), or 2, 4, 8, 16 or 32 days aligned on the day number (made of two days or two smaller
spans), with the episodes wholly inside one of its hours or days (report_multi_hours and
report_multi hold the others' rows). A span is named by its first and last hour, `lo` and `hi`,
both inclusive (migrations 0010, 0011); report_names_spans holds its rows summed per alertname
(migration 0012), as report_names_days / _hours do for a day and an hour.

* `build` merges a span's two halves, per key: the counts add up, the first row is the left
  half's, the last status the right half's, and the status changes are both halves' plus one
  when the left's last status differs from the right's first (the first change is then the
  right's first row, unless the left has one); per alertname the halves' sums add up. It builds
  only when every unit of the span is clean and both halves are there; `build_all` builds,
  bottom up, the spans of every finished hour and day that are missing.
* `drop` (from report_rollup.store, in the same transaction) deletes the spans holding a day or
  hour whose rollup rows it replaces (and their sums per alertname); the update trigger adds a
  repeat notification to the spans holding its hour, as to its day and hour. So a span is always
  what its halves say, except while one of its units is dirty, and a report (`cover`) uses it
  only while none is.
* Trailing spans (migration 0013): `build_trailing` merges, right to left, what a report since
  a given hour (7 days before the current one) would read up to the end of yesterday, one
  `link` of two parts at a time, keeping each step as a span of its own (the next hours' start
  with them). They are named in report_spans_trailing, which the repeat trigger reads; a store
  drops those holding its day or hour (`drop_trailing`), and each round those no longer
  wanted.
* On PostgreSQL `build` holds report_spans in SHARE ROW EXCLUSIVE mode, which waits for (and
  holds off) the stores and the notifications' trigger, which take ROW EXCLUSIVE first: its
  reads see every committed change of the halves, and a change after it sees the new span.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial

import trio

from alert_history.storage.base import Storage
from alert_history.storage.executor import Db

HOURS_PER_DAY = 24
_NS_PER_HOUR = 3_600 * 1_000_000_000
#: span sizes in hours, largest first: within a day, then runs of days (report_span_sizes)
HOUR_SIZES = (16, 8, 4, 2)
#: the trailing spans start this many hours before the current hour: GET /report?days=7 as a
#: dashboard asks, since 7 days before the start of the hour
TRAILING_HOURS = 7 * 24
DAY_SIZES = (768, 384, 192, 96, 48)
SIZES = HOUR_SIZES + DAY_SIZES

Span = tuple[int, int]  # (lo, hi): first and last hour, inclusive

#: a rollup row's columns after its day, hour or span (report_days, report_hours, report_spans)
COLUMNS = (
    "key_id, events, firing, resolved, notifications, first_seen, first_id, first_status,"
    " last_status, flaps, change_seen, change_id, episodes, resolved_episodes, quick_episodes,"
    " resolved_ns"
)


#: the sums per alertname of each rollup table (migration 0012) and their columns after the unit
NAMES = {
    "report_days": "report_names_days",
    "report_hours": "report_names_hours",
    "report_spans": "report_names_spans",
}
NAME_COLUMNS = (
    "alertname, events, firing, first_seen, episodes, resolved_episodes, quick_episodes,"
    " resolved_ns"
)


def is_day_span(span: Span) -> bool:
    return span[1] - span[0] + 1 >= 2 * HOURS_PER_DAY


def holding_hour(hour: int) -> list[Span]:
    """The hours' spans that hold `hour`."""
    day_start = hour // HOURS_PER_DAY * HOURS_PER_DAY
    spans = []
    for size in HOUR_SIZES:
        lo = day_start + (hour - day_start) // size * size
        if lo + size <= day_start + HOURS_PER_DAY:
            spans.append((lo, lo + size - 1))
    return spans


def holding_day(day: int) -> list[Span]:
    """The days' spans that hold `day`."""
    hour = day * HOURS_PER_DAY
    return [(hour // size * size, hour // size * size + size - 1) for size in DAY_SIZES]


def halves(span: Span) -> tuple[Span, Span]:
    lo, hi = span
    mid = (lo + hi + 1) // 2
    return (lo, mid - 1), (mid, hi)


def _is_unit(span: Span) -> bool:
    """A single hour or day: rows of report_hours / report_days, not a span."""
    return span[1] - span[0] + 1 in (1, HOURS_PER_DAY)


def _half(part: Span, alias: str) -> tuple[str, str, list[object]]:
    """For one half: its table, the condition on it (as `alias`) and its arguments."""
    lo, hi = part
    if hi == lo:
        return "report_hours", f"{alias}.hour = ?", [lo]
    if hi - lo + 1 == HOURS_PER_DAY:
        return "report_days", f"{alias}.day = ?", [lo // HOURS_PER_DAY]
    return "report_spans", f"{alias}.lo = ? AND {alias}.hi = ?", [lo, hi]


# Per key of either half, the halves merged (the left's rows come first); each half is read
# by its primary key.
_MERGE = """
INSERT INTO report_spans (lo, hi, {columns})
SELECT ?, ?, k.key_id,
       coalesce(l.events, 0) + coalesce(r.events, 0),
       coalesce(l.firing, 0) + coalesce(r.firing, 0),
       coalesce(l.resolved, 0) + coalesce(r.resolved, 0),
       coalesce(l.notifications, 0) + coalesce(r.notifications, 0),
       CASE WHEN l.key_id IS NULL THEN r.first_seen ELSE l.first_seen END,
       CASE WHEN l.key_id IS NULL THEN r.first_id ELSE l.first_id END,
       CASE WHEN l.key_id IS NULL THEN r.first_status ELSE l.first_status END,
       CASE WHEN r.key_id IS NULL THEN l.last_status ELSE r.last_status END,
       coalesce(l.flaps, 0) + coalesce(r.flaps, 0)
           + CASE WHEN l.last_status <> r.first_status THEN 1 ELSE 0 END,
       CASE WHEN l.change_seen IS NOT NULL THEN l.change_seen
            WHEN l.last_status <> r.first_status THEN r.first_seen
            ELSE r.change_seen END,
       CASE WHEN l.change_seen IS NOT NULL THEN l.change_id
            WHEN l.last_status <> r.first_status THEN r.first_id
            ELSE r.change_id END,
       coalesce(l.episodes, 0) + coalesce(r.episodes, 0),
       coalesce(l.resolved_episodes, 0) + coalesce(r.resolved_episodes, 0),
       coalesce(l.quick_episodes, 0) + coalesce(r.quick_episodes, 0),
       coalesce(l.resolved_ns, 0) + coalesce(r.resolved_ns, 0)
FROM (SELECT key_id FROM {left} AS l WHERE {left_where}
      UNION SELECT key_id FROM {right} AS r WHERE {right_where}) AS k
LEFT JOIN {left} AS l ON {left_where} AND l.key_id = k.key_id
LEFT JOIN {right} AS r ON {right_where} AND r.key_id = k.key_id
"""


# Per alertname, the halves' sums added up.
_MERGE_NAMES = f"""
INSERT INTO report_names_spans (lo, hi, {NAME_COLUMNS})
SELECT ?, ?, alertname, sum(events), sum(firing), min(first_seen), sum(episodes),
       sum(resolved_episodes), sum(quick_episodes), sum(resolved_ns)
FROM (SELECT {NAME_COLUMNS} FROM {{left}} AS l WHERE {{left_where}}
      UNION ALL
      SELECT {NAME_COLUMNS} FROM {{right}} AS r WHERE {{right_where}}) AS x
GROUP BY alertname
"""


def _merge_names(span: Span, parts: tuple[Span, Span] | None = None) -> tuple[str, list[object]]:
    """The INSERT of `span`'s sums per alertname from its halves' (or `parts`'), with its
    arguments."""
    left, right = parts or halves(span)
    left_table, left_where, left_args = _half(left, "l")
    right_table, right_where, right_args = _half(right, "r")
    sql = _MERGE_NAMES.format(
        left=NAMES[left_table], right=NAMES[right_table], left_where=left_where,
        right_where=right_where,
    )  # fmt: skip
    return sql, [*span, *left_args, *right_args]


def _merge(span: Span, parts: tuple[Span, Span] | None = None) -> tuple[str, list[object]]:
    """The INSERT of `span`'s rows from its halves (or `parts`), with its arguments."""
    left, right = parts or halves(span)
    left_table, left_where, left_args = _half(left, "l")
    right_table, right_where, right_args = _half(right, "r")
    sql = _MERGE.format(
        columns=COLUMNS, left=left_table, right=right_table, left_where=left_where,
        right_where=right_where,
    )  # fmt: skip
    return sql, [*span, *left_args, *right_args, *left_args, *right_args]


def _dirty(db: Db, span: Span, *, hours: bool | None = None) -> bool:
    """Whether a day (`hours` False) or an hour (True) of `span` is dirty; by default its days
    for a days' span, its hours for an hours' span."""
    lo, hi = span
    if not hours if hours is not None else is_day_span(span):
        sql = "SELECT 1 FROM report_dirty WHERE day BETWEEN ? AND ? LIMIT 1"
        return db.fetchone(sql, [lo // HOURS_PER_DAY, hi // HOURS_PER_DAY]) is not None
    sql = "SELECT 1 FROM report_dirty_hours WHERE hour BETWEEN ? AND ? LIMIT 1"
    return db.fetchone(sql, [lo, hi]) is not None


def _built(db: Db, span: Span) -> bool:
    sql = "SELECT 1 FROM report_spans_built WHERE lo = ? AND hi = ?"
    return db.fetchone(sql, list(span)) is not None


def build(db: Db, span: Span) -> bool:
    """Build `span` from its halves if it is missing, every unit of it is clean and both
    halves are there; return whether it did. Run it through `Storage.write`."""
    if db.dialect == "postgres":
        db.execute("LOCK TABLE report_spans IN SHARE ROW EXCLUSIVE MODE")
    if _built(db, span) or _dirty(db, span):
        return False
    left, right = halves(span)
    if not all(_is_unit(half) or _built(db, half) for half in (left, right)):
        return False
    db.execute(*_merge(span))
    db.execute(*_merge_names(span))
    db.execute("INSERT INTO report_spans_built (lo, hi) VALUES (?, ?)", list(span))
    return True


def drop(db: Db, spans: Iterable[Span]) -> None:
    """Delete `spans` (those built): their rows no longer add up to their halves'."""
    for lo, hi in spans:
        if db.execute("DELETE FROM report_spans_built WHERE lo = ? AND hi = ?", [lo, hi]):
            db.execute("DELETE FROM report_spans WHERE lo = ? AND hi = ?", [lo, hi])
            db.execute("DELETE FROM report_names_spans WHERE lo = ? AND hi = ?", [lo, hi])
            db.execute("DELETE FROM report_spans_trailing WHERE lo = ? AND hi = ?", [lo, hi])


def wanted(first_hour: int, last_hour: int, finished: int) -> list[Span]:
    """Every span that ends by the hour `finished` and starts after the largest span holding
    `first_hour` does, up to `last_hour`, smallest first: a span's halves come before it, and
    the halves of every span are there (empty before `first_hour`)."""
    spans: list[Span] = []
    start = first_hour // DAY_SIZES[0] * DAY_SIZES[0]
    for size in reversed(HOUR_SIZES):
        for day in range(first_hour // HOURS_PER_DAY, last_hour // HOURS_PER_DAY + 1):
            for lo in range(day * HOURS_PER_DAY, (day + 1) * HOURS_PER_DAY - size + 1, size):
                if lo + size - 1 <= finished:
                    spans.append((lo, lo + size - 1))
    for size in reversed(DAY_SIZES):
        for lo in range(start, last_hour + 1, size):
            if lo + size - 1 <= finished:
                spans.append((lo, lo + size - 1))
    return spans


def is_aligned(span: Span) -> bool:
    """An aligned span: 2-16 hours from the start of a UTC day, or 2-32 days on the day number."""
    lo, hi = span
    size = hi - lo + 1
    if size in HOUR_SIZES:
        day_start = lo // HOURS_PER_DAY * HOURS_PER_DAY
        return (lo - day_start) % size == 0 and lo + size <= day_start + HOURS_PER_DAY
    return size in DAY_SIZES and lo % size == 0


def drop_trailing(db: Db, first_hour: int, last_hour: int) -> None:
    """Delete the trailing spans that hold any of the hours `first_hour`..`last_hour` (a store
    of a day or an hour replaces rows they were merged from)."""
    rows = db.fetchall(
        "SELECT lo, hi FROM report_spans_trailing WHERE lo <= ? AND hi >= ?",
        [last_hour, first_hour],
    )
    drop(db, [(int(lo), int(hi)) for lo, hi in rows])


def link(db: Db, left: Span, right: Span) -> bool:
    """Build the span from `left`'s first hour to `right`'s last from the two, if it is
    missing, every unit of it is clean and both parts are there; return whether it did. An
    aligned span so built is one as `build` makes it (a merge adds up the same in any order);
    any other is a trailing span. Run it through `Storage.write`."""
    span = (left[0], right[1])
    if left[1] + 1 != right[0] or _is_unit(span):
        return False
    if db.dialect == "postgres":
        db.execute("LOCK TABLE report_spans IN SHARE ROW EXCLUSIVE MODE")
    if _built(db, span) or _dirty(db, span, hours=True) or _dirty(db, span, hours=False):
        return False
    if not all(_is_unit(part) or _built(db, part) for part in (left, right)):
        return False
    db.execute(*_merge(span, (left, right)))
    db.execute(*_merge_names(span, (left, right)))
    db.execute("INSERT INTO report_spans_built (lo, hi) VALUES (?, ?)", list(span))
    if not is_aligned(span):
        db.execute("INSERT INTO report_spans_trailing (lo, hi) VALUES (?, ?)", list(span))
    return True


def pieces(
    first_hour: int, last_day: int, built: set[Span], dirty_days: set[int], dirty_hours: set[int]
) -> list[Span] | None:
    """What a report reads for the hours from `first_hour` to the end of `last_day`, in order:
    the first day's hours from `first_hour` (aligned spans of them where built), then the days
    (aligned spans of them where built); None while any of them is dirty."""
    day = -(-first_hour // HOURS_PER_DAY)
    if any(h in dirty_hours for h in range(first_hour, day * HOURS_PER_DAY)) or any(
        d in dirty_days for d in range(day, last_day + 1)
    ):
        return None
    out: list[Span] = []
    for first, last, sizes, unit in (
        (first_hour, day * HOURS_PER_DAY - 1, HOUR_SIZES, 1),
        (day, last_day, DAY_SIZES, HOURS_PER_DAY),
    ):
        chosen = {
            lo: (lo, hi) for lo, hi in cover(first, last, sizes, built, lambda _: False, unit=unit)
        }
        x = first * unit
        while x <= last * unit + unit - 1 and first <= last:
            piece = chosen.get(x, (x, x + unit - 1))
            out.append(piece)
            x = piece[1] + 1
    return out


async def build_trailing(storage: Storage, now_ns: int, *, hours_back: int = TRAILING_HOURS) -> int:
    """Build the trailing span from `hours_back` hours before the hour of `now_ns` to the end of
    yesterday (a report since then reads it for all of that), merging its pieces right to left
    and keeping each step (the next hours' spans start with them); drop the trailing spans that
    start before it or end elsewhere. Return how many were built."""
    now_hour = now_ns // _NS_PER_HOUR
    first_hour = now_hour - hours_back
    last_day = now_hour // HOURS_PER_DAY - 1

    def state(db: Db) -> tuple[set[Span], set[Span], set[int], set[int]]:
        trailing = db.fetchall("SELECT lo, hi FROM report_spans_trailing")
        built = db.fetchall("SELECT lo, hi FROM report_spans_built")
        days = db.fetchall("SELECT day FROM report_dirty")
        hours = db.fetchall("SELECT hour FROM report_dirty_hours")
        return (
            {(int(lo), int(hi)) for lo, hi in trailing},
            {(int(lo), int(hi)) for lo, hi in built},
            {int(day) for (day,) in days},
            {int(hour) for (hour,) in hours},
        )

    trailing, built, dirty_days, dirty_hours = await storage.read(state)
    end = (last_day + 1) * HOURS_PER_DAY - 1
    stale = [span for span in trailing if span[1] != end or span[0] < first_hour]
    if stale:
        await storage.write(lambda db: drop(db, stale))
    parts = (
        pieces(first_hour, last_day, built, dirty_days, dirty_hours) if end > first_hour else None
    )
    if not parts:
        return 0
    count = 0
    right = parts[-1]
    for part in reversed(parts[:-1]):
        span = (part[0], end)
        if span not in built:
            if not await storage.write(partial(link, left=part, right=right)):
                return count  # a unit got dirty meanwhile: the next round
            count += 1
        right = span
    return count


async def build_all(storage: Storage, now_ns: int, *, pause: float = 0.0) -> int:
    """Build the missing spans over the hours with rollup rows that are finished by `now_ns`
    (a write each, `pause` seconds apart); return how many were built. Spans with a dirty
    unit wait for a later round."""

    def state(db: Db) -> tuple[tuple[int, int] | None, set[Span], set[int], set[int]]:
        # one aggregate each: SQLite reads a min() or max() alone off the index, both together
        # by a scan of every row
        row = db.fetchone(
            "SELECT (SELECT min(hour) FROM report_hours), (SELECT max(hour) FROM report_hours)"
        )
        spans = db.fetchall("SELECT lo, hi FROM report_spans_built")
        days = db.fetchall("SELECT day FROM report_dirty")
        hours = db.fetchall("SELECT hour FROM report_dirty_hours")
        return (
            None if row is None or row[0] is None else (int(row[0]), int(row[1])),
            {(int(lo), int(hi)) for lo, hi in spans},
            {int(day) for (day,) in days},
            {int(hour) for (hour,) in hours},
        )

    hours, built, dirty_days, dirty_hours = await storage.read(state)
    if hours is None:
        return 0
    count = 0
    for span in wanted(*hours, now_ns // _NS_PER_HOUR - 1):
        lo, hi = span
        if is_day_span(span):
            dirty = any(
                d in dirty_days for d in range(lo // HOURS_PER_DAY, hi // HOURS_PER_DAY + 1)
            )
        else:
            dirty = any(h in dirty_hours for h in range(lo, hi + 1))
        ready = all(_is_unit(half) or half in built for half in halves(span))
        if span in built or dirty or not ready:
            continue
        if await storage.write(partial(build, span=span)):
            built.add(span)
            count += 1
        if pause:
            await trio.sleep(pause)
    return count


def cover(
    first: int,
    last: int,
    sizes: tuple[int, ...],
    built: set[Span],
    dirty: Callable[[int], bool],
    *,
    unit: int,
) -> list[Span]:
    """The spans, largest first at each place, that a report reads for the units `first` to
    `last` (days: `unit` 24, or hours within one day: `unit` 1), every unit of them clean;
    the units they leave out are read as they are."""
    spans: list[Span] = []
    x = first
    while x <= last:
        step = 1
        for size in sizes:
            n = size // unit  # units in the span
            lo = x * unit
            day_start = lo // HOURS_PER_DAY * HOURS_PER_DAY
            aligned = lo % size == 0 if unit == HOURS_PER_DAY else (lo - day_start) % size == 0
            span = (lo, lo + size - 1)
            if (
                aligned
                and x + n - 1 <= last
                and span in built
                and not any(dirty(u) for u in range(x, x + n))
            ):
                spans.append(span)
                step = n
                break
        x += step
    return spans
