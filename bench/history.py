"""History at scale: GET /history latency on a million events, SQLite and PostgreSQL.

For each backend: a fresh database gets the service's migrations and the `dataset` rows
(`loader`), then the service starts on it and wrk (`get.lua`, `-t1`, concurrency 4) sends one
prepared GET /history URL per row of the table, after a warm-up, for a few seconds each. Before
timing a row one plain GET checks the answer: its `total` against the count computed from the
generated rows (the `filter` row is marked *not available yet* when the service answers 4xx or
ignores the parameter). After the service stops, the two statements behind each row (the
`count(*)` for `total` and the page itself) are timed directly on the database, to show which
of the two costs the time.

`HISTORY_ROWS=report-7d,timeline python -m bench --only history` times only the rows named
(their keys, see `queries`); the data is built and loaded all the same.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import sqlite3
import subprocess
import sys
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from statistics import median
from typing import Any

import psycopg

from alert_history.domain import parse_rfc3339_ns
from bench import load, machine
from bench.dataset import Dataset, Spec, build
from bench.loader import Loaded, load_postgres, load_sqlite
from bench.pgserver import PostgresServer
from bench.servers import Server

TARGET_P95_MS = {"PostgreSQL": 50.0, "SQLite": 100.0}
PAGE_LIMIT = 100
CURSOR_PAGE = 50
LABEL_FILTER = '{severity=~"crit.*",namespace!="dev"}'
NOT_AVAILABLE = "not available yet"
MET, NOT_MET = "**met**", "**NOT met**"
#: the data ends this hour and spans 30 days: with the default 30-day retention the service's
#: housekeeping would start deleting the oldest events while they are being queried
SERVICE_ENV = {"RETENTION_DAYS": "365"}
#: a row whose single GET takes this long (the faster of two) is not given to wrk (a 5 s window
#: would hold a handful of responses): SEQUENTIAL single GETs in a row instead
SLOW_MS = 1000.0
SEQUENTIAL = 3


@dataclass(frozen=True)
class Query:
    key: str
    label: str
    params: dict[str, str]
    #: the total the service must answer, from the generated rows (None: not checked)
    expected: int | None
    #: checks one returned event (a dict as rendered by the API)
    check: Callable[[dict[str, Any]], bool] | None = None
    #: follow next_cursor this many times before timing (the cursor row)
    follow: int = 0
    #: the endpoint; rows other than /history are checked for a 200 only
    base: str = "/history"
    #: p95 target in ms when it is not the backend's /history target (issue #4's endpoints)
    target_ms: float | None = None
    #: parameters computed when the row is prepared (times relative to the wall clock)
    at_request: Callable[[], dict[str, str]] | None = None

    def path(self, extra: dict[str, str] | None = None) -> str:
        params = dict(self.params, **(extra or {}))
        if not params:
            return self.base
        return self.base + "?" + urllib.parse.urlencode(params, quote_via=urllib.parse.quote)


@dataclass
class Row:
    query: Query
    backend: str
    path: str = ""
    status: int = 0
    total: int | None = None
    returned: int = 0
    note: str = ""
    available: bool = True
    result: load.WrkResult | None = None
    single_ms: float | None = None  # the checking GET, alone (no concurrency)
    #: rows too slow for a wrk window: more single GETs, one after the other (ms)
    sequential: list[float] | None = None
    cpu_ms: float | None = None  # the service's CPU per response while measured
    machine_busy: float | None = None  # share of all CPUs busy while measured (anyone's)
    #: issue #4's endpoints only: the same wrk window with one connection (no queueing behind
    #: other requests), after the concurrent one
    alone: load.WrkResult | None = None
    alone_cpu_ms: float | None = None

    @property
    def measured(self) -> bool:
        return self.available and (self.result is not None or bool(self.sequential))

    def latency(self, attr: str) -> float | None:
        """p50_ms / p95_ms / p99_ms from wrk; for a sequential row the median or the maximum."""
        if self.sequential:
            return median(self.sequential) if attr == "p50_ms" else max(self.sequential)
        if self.result is None or self.timed_out:
            return None
        return float(getattr(self.result, attr))

    count_ms: float | None = None  # SELECT count(*) behind `total`, run directly, median
    page_ms: float | None = None  # the page's SELECT, run directly, median

    @property
    def timed_out(self) -> bool:
        """wrk got no response at all in its window: every request took longer."""
        return self.result is not None and self.result.ok == 0

    @property
    def target_ms(self) -> float:
        return self.query.target_ms or TARGET_P95_MS[self.backend]

    def verdict(self) -> str:
        if self.available and self.sequential:
            return NOT_MET if median(self.sequential) >= self.target_ms else MET
        if not self.available or self.result is None:
            return NOT_AVAILABLE
        if self.timed_out:
            return NOT_MET
        return MET if self.result.p95_ms < self.target_ms else NOT_MET


@dataclass
class BackendRun:
    loaded: Loaded
    rows: list[Row]
    peak_rss_kb: int
    startup_s: float
    returncode: int | None
    #: the report's ms (median) by the hour of day of `since`, without ("pieces") and with
    #: ("trailing") the trailing span of its window (`time_report_hours`)
    report_by_hour: dict[str, dict[int, float]] | None = None


@dataclass
class HistoryResults:
    spec: Spec
    data_facts: dict[str, str]
    build_s: float
    runs: list[BackendRun]
    pg_version: str
    pg_settings: str
    wrk_example: list[str]
    concurrency: int
    warmup: float
    duration: float
    elapsed_s: float
    date: str
    command: str
    loadavg: str


def _day(ns: int) -> str:
    return datetime.fromtimestamp(ns // 1_000_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _seven_days_ago() -> dict[str, str]:
    """`since` as a dashboard asks for the last 7 days: 7 days before the start of the hour
    (the data ends at the hour the section started, which the row may run after)."""
    hour = 3_600 * 10**9
    return {"since": _day(time.time_ns() // hour * hour - 7 * 86_400 * 10**9)}


def queries(data: Dataset) -> list[Query]:
    spec = data.spec
    by_count = data.alertname_counts.most_common()
    frequent, frequent_n = by_count[0]
    rare, rare_n = by_count[-1]
    day0 = spec.start_ns + (spec.days // 2) * 86_400 * 1_000_000_000
    day1 = day0 + 86_400 * 1_000_000_000
    limit = {"limit": str(PAGE_LIMIT)}
    per_fingerprint = Counter(str(row[0]) for row in data.events)  # fingerprint is column 0
    busiest, busiest_n = per_fingerprint.most_common(1)[0]
    return [
        Query("all", "no filter", limit, len(data.events)),
        Query(
            "alertname-frequent",
            f"alertname={frequent} (the most frequent: {frequent_n:,} events)",
            {"alertname": frequent, **limit},
            frequent_n,
            lambda e: e["alertname"] == frequent,
        ),
        Query(
            "alertname-rare",
            f"alertname={rare} (the rarest: {rare_n:,} events)",
            {"alertname": rare, **limit},
            rare_n,
            lambda e: e["alertname"] == rare,
        ),
        Query(
            "namespace-firing",
            "namespace=prod&status=firing",
            {"namespace": "prod", "status": "firing", **limit},
            data.count(namespace="prod", status="firing"),
            lambda e: e["namespace"] == "prod" and e["status"] == "firing",
        ),
        Query(
            "filter",
            f"filter={LABEL_FILTER}",
            {"filter": LABEL_FILTER, **limit},
            data.count(severity=lambda s: s.startswith("crit"), namespace=lambda n: n != "dev"),
            lambda e: (
                e["labels"].get("severity", "").startswith("crit")
                and e["labels"].get("namespace") != "dev"
            ),
        ),
        Query(
            "time-range",
            f"start_time={_day(day0)}&end_time={_day(day1)} (one day of starts_at)",
            {"start_time": _day(day0), "end_time": _day(day1), **limit},
            data.count(starts_at=lambda t: day0 <= t <= day1),
            lambda e: day0 <= parse_rfc3339_ns(e["startsAt"]) <= day1,
        ),
        Query(
            "cursor-50",
            f"page {CURSOR_PAGE} by cursor (limit={PAGE_LIMIT}, no filter)",
            limit,
            len(data.events),
            follow=CURSOR_PAGE - 1,
        ),
        # issue #4's endpoints: their own targets, same data
        Query(
            "report-7d",
            "/report?days=7&since=<7 days ago> (v1 + v2 + summary over 7 days; target 200 ms)",
            {"days": "7"},
            None,
            base="/report",
            target_ms=200.0,
            at_request=_seven_days_ago,
        ),
        Query(
            "timeline",
            f"/history/<fingerprint> (the busiest: {busiest_n:,} state changes; target 30 ms)",
            {},
            None,
            base=f"/history/{busiest}",
            target_ms=30.0,
        ),
    ]


def selected(rows: list[Query]) -> list[Query]:
    """The rows named in $HISTORY_ROWS (comma-separated keys, e.g. `report-7d,timeline`, to
    iterate on issue #4's endpoints without timing the others); all rows when it is unset."""
    wanted = {key.strip() for key in os.environ.get("HISTORY_ROWS", "").split(",") if key.strip()}
    unknown = wanted - {row.key for row in rows}
    if unknown:
        raise SystemExit(
            f"HISTORY_ROWS: no such row {sorted(unknown)}; rows: {[r.key for r in rows]}"
        )
    return [row for row in rows if not wanted or row.key in wanted]


def _probe(server: Server, path: str) -> tuple[int, dict[str, Any] | None, str]:
    status, body = server.fetch(path, timeout_s=60)
    try:
        doc = json.loads(body)
    except ValueError:
        return status, None, body[:200]
    return status, doc if isinstance(doc, dict) else None, body[:200]


def prepare(server: Server, query: Query, backend: str, unfiltered: int | None) -> Row:
    """One plain GET (following cursors first): is the row measurable, and is it right?"""
    row = Row(query, backend, path=query.path(query.at_request() if query.at_request else None))
    for _ in range(query.follow):
        status, doc, text = _probe(server, row.path)
        cursor = doc.get("next_cursor") if doc else None
        if status != 200 or not cursor:
            row.available, row.note = False, f"cursor chain broke: HTTP {status} {text}"
            return row
        row.path = query.path({"cursor": cursor})
    began = time.perf_counter()
    status, doc, text = _probe(server, row.path)
    row.single_ms = 1000 * (time.perf_counter() - began)
    row.status = status
    if query.base != "/history":
        row.available = status == 200 and doc is not None
        row.note = "ok" if row.available else f"HTTP {status}: {text}"
        return row
    if status != 200 or doc is None:
        row.available = False
        row.note = f"HTTP {status}: {text}"
        if query.key == "filter" and 400 <= status < 500:
            row.note = f"{NOT_AVAILABLE}: HTTP {status} ({text[:120]})"
        return row
    row.total = doc.get("total")
    if doc.get("total_capped") and query.expected is not None:
        # the service stops counting at a cap; a capped total is right when it is the cap
        query = replace(query, expected=min(query.expected, int(row.total or 0)))
    alerts = doc.get("alerts") or []
    row.returned = len(alerts)
    wrong = [a for a in alerts if query.check is not None and not query.check(a)]
    ignored = row.total == unfiltered and not doc.get("total_capped")
    if query.key == "filter" and (ignored or wrong):
        row.available = False
        row.note = f"{NOT_AVAILABLE}: the service answered 200 but ignored `filter`"
        return row
    notes = []
    if query.expected is not None and row.total != query.expected:
        notes.append(f"total {row.total} ≠ expected {query.expected}")
    if wrong:
        notes.append(f"{len(wrong)} returned events do not match")
    if row.returned != min(PAGE_LIMIT, query.expected or PAGE_LIMIT):
        notes.append(f"{row.returned} events on the page")
    row.note = "; ".join(notes) if notes else "ok"
    return row


def settle(server: Server, limit_s: float = 120.0) -> None:
    """Wait until the service is idle: requests that wrk gave up on may still be running."""
    began = time.monotonic()
    while time.monotonic() - began < limit_s:
        cpu = server.cpu_seconds()
        time.sleep(0.25)
        if server.cpu_seconds() - cpu < 0.25 * 0.1:
            return


# -- the statements behind a row, timed directly --------------------------------------------


def _statements(
    path: str, placeholder: str, dialect: str
) -> tuple[str, list[object], str, list[object]]:
    """The count and page statements the service runs for `path` (its own query builder)."""
    from werkzeug.datastructures import MultiDict

    from alert_history.http.history import parse_history_query
    from alert_history.storage import sql

    columns = "id, labels, annotations"
    backend = importlib.import_module(f"alert_history.storage.{dialect}")
    columns = getattr(backend, "_EVENT_COLUMNS", columns)
    q = parse_history_query(MultiDict(urllib.parse.parse_qsl(urllib.parse.urlsplit(path).query)))
    build: Any = sql.history_filters  # its signature has changed before: look before calling
    if "dialect" in inspect.signature(build).parameters:
        filters, values = build(q, placeholder, dialect)
    else:
        filters, values = build(q, placeholder)
    count_sql, count_values = f"SELECT count(*) FROM alert_events WHERE {filters}", list(values)
    capped = getattr(sql, "count_matching", None)
    if capped is not None:  # what the service runs: it stops counting at q.count_limit
        count_sql = capped(filters, placeholder)
        count_values.append(q.count_limit + 1)
    page_filters, page_values = filters, list(values)
    if q.before_id is not None:
        page_filters += f" AND id < {placeholder}"
        page_values.append(q.before_id)
    paged = getattr(sql, "page_matching", None)
    if paged is not None:  # what the service runs: a starts_at range reads its index first
        page_sql = paged(columns, page_filters, q, placeholder)
    else:
        page_sql = (
            f"SELECT {columns} FROM alert_events WHERE {page_filters} "
            f"ORDER BY id DESC LIMIT {placeholder} OFFSET {placeholder}"
        )
    return count_sql, count_values, page_sql, [*page_values, q.limit + 1, q.offset]


def _fetch(conn: Any, sql: str, args: list[object]) -> object:
    return conn.execute(sql, args).fetchall()


def _timed(run: Callable[[], object], repeats: int = 5, slow_ms: float = 500.0) -> float:
    """Median of `repeats` runs, in ms; a single run when the first takes `slow_ms` or more."""
    times: list[float] = []
    while len(times) < repeats:
        began = time.perf_counter()
        run()
        times.append(1000 * (time.perf_counter() - began))
        if times[0] >= slow_ms:
            break
    return median(times)


def time_statements(rows: list[Row], loaded: Loaded) -> None:
    """Fill count_ms and page_ms for the rows that were measured (service stopped)."""
    measured = [r for r in rows if r.available and r.query.base == "/history"]
    if loaded.backend == "SQLite":
        path = loaded.url[len("sqlite:///") :]
        conn: Any = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        regexp = getattr(
            importlib.import_module("alert_history.storage.sqlite"), "sqlite_regexp", None
        )
        if regexp is not None:  # the service's REGEXP, for label matchers
            conn.create_function("regexp", 2, regexp, deterministic=True)
        mark, dialect = "?", "sqlite"
    else:
        # the service's session: no JIT, and no parallel workers for its history reads
        options = "-c jit=off -c max_parallel_workers_per_gather=0"
        conn = psycopg.connect(loaded.url, autocommit=True, options=options)
        mark, dialect = "%s", "postgres"
    try:
        for row in measured:
            try:
                count_sql, count_args, page_sql, page_args = _statements(row.path, mark, dialect)
            except Exception as exc:  # the query builder changed under us: leave it out
                row.note += f"; statements not timed ({type(exc).__name__}: {exc})"
                continue
            row.count_ms = _timed(partial(_fetch, conn, count_sql, count_args))
            row.page_ms = _timed(partial(_fetch, conn, page_sql, page_args))
    finally:
        conn.close()


def time_report_hours(loaded: Loaded, repeats: int = 3) -> dict[str, dict[int, float]] | None:
    """The report row's work by the hour of day of its `since` (service stopped).

    The report row asks for the 7 days before the start of the hour it runs in, so its cost
    depends on the hour: a `since` at midnight reads whole days, one at 01:00 the 23 hours of
    its first day from hourly spans and episodes. Here `build_report` (the service's code, one
    connection, what a request runs but HTTP) for `since` at each hour of the day 7 days ago,
    in a fresh interpreter: SQLite's memory statistics go off there as in the service (in this
    process the loader's connections keep them on, which costs ~20 % per report).
    """
    code = "import sys; from bench.history import _report_hours; _report_hours(*sys.argv[1:])"
    done = subprocess.run(
        [sys.executable, "-c", code, loaded.backend, loaded.url, str(repeats)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        print(f"  ! report by hour not timed: {done.stderr.strip()[-500:]}", flush=True)
        return None
    return {
        kind: {int(h): ms for h, ms in by_hour.items()}
        for kind, by_hour in json.loads(done.stdout).items()
    }


def _report_hours(backend: str, url: str, repeats: str) -> None:
    """`time_report_hours` in its own interpreter: prints {"pieces": {hour: ms}, "trailing":
    {hour: ms}} as JSON: the report since each hour as the aligned spans leave it (no trailing
    span), then with the trailing span the rollup keeps for that hour's window."""
    import trio

    from alert_history.storage import open_storage, report_spans
    from alert_history.storage.executor import PostgresDb, SqliteDb
    from alert_history.storage.report import ReportQuery, build_report

    hour, day = 3_600 * 10**9, 86_400 * 10**9
    now = time.time_ns()
    base = (now - 7 * day) // day * day
    db: Any
    if backend == "SQLite":
        with suppress(ImportError):  # as the service does before its first connection
            from alert_history.storage.sqlite_library import statistics_off

            statistics_off()
        conn: Any = sqlite3.connect(url[len("sqlite:///") :], isolation_level=None)
        db = SqliteDb(conn)
    else:
        conn = psycopg.connect(url, autocommit=True, options="-c jit=off")
        db = PostgresDb(conn)

    def timed(h: int) -> float:
        query = ReportQuery(now=now, since=base + h * hour, days=7)
        return _timed(partial(build_report, db, query), int(repeats))

    async def sweep() -> dict[str, dict[int, float]]:
        storage = await open_storage(url)
        try:
            trailing = db.fetchall("SELECT lo, hi FROM report_spans_trailing")
            await storage.write(
                lambda w: report_spans.drop(w, [(int(lo), int(hi)) for lo, hi in trailing])
            )
            pieces = {h: timed(h) for h in range(24)}
            with_span: dict[int, float] = {}
            for h in reversed(range(24)):  # each hour's span starts with the next hour's
                back = now // hour - (base // hour + h)
                await report_spans.build_trailing(storage, now, hours_back=back)
                with_span[h] = timed(h)
            return {"pieces": pieces, "trailing": dict(sorted(with_span.items()))}
        finally:
            await storage.aclose()

    try:
        print(json.dumps(trio.run(sweep)))
    finally:
        conn.close()


# -- one backend ------------------------------------------------------------------------------


def run_backend(
    loaded: Loaded,
    data: Dataset,
    *,
    wrk: str,
    args: argparse.Namespace,
    tmp: Path,
) -> BackendRun:
    tag = loaded.backend.lower()
    server = Server.service_on(
        loaded.url, tmp / f"history-{tag}.log", name=f"history-{tag}", extra_env=SERVICE_ENV
    )
    server.start(deadline_s=120)
    rows: list[Row] = []
    try:
        _, doc, _ = _probe(server, queries(data)[0].path())
        unfiltered = doc.get("total") if doc else None
        for query in selected(queries(data)):
            row = prepare(server, query, loaded.backend, unfiltered)
            rows.append(row)
            if row.available and (row.single_ms or 0) >= SLOW_MS:
                # a second GET (caches warm) decides; both count as sequential samples
                row.sequential = [row.single_ms or 0.0]
                cpu0, stat0 = server.cpu_seconds(), machine.cpu_times()
                for _ in range(SEQUENTIAL - 1):
                    began = time.perf_counter()
                    server.fetch(row.path, timeout_s=120)
                    row.sequential.append(1000 * (time.perf_counter() - began))
                    if row.sequential[-1] < SLOW_MS:
                        row.sequential = None
                        break
                else:
                    row.cpu_ms = 1000 * (server.cpu_seconds() - cpu0) / (SEQUENTIAL - 1)
                    row.machine_busy = machine.busy_and_steal(stat0, machine.cpu_times())[0]
            if row.available and not row.sequential:
                paths = tmp / f"history-{tag}-{query.key}.paths"
                paths.write_text(row.path + "\n", encoding="utf-8")

                def argv(
                    seconds: float, paths: Path = paths, connections: int | None = None
                ) -> list[str]:
                    return load.get_command(
                        wrk,
                        server.url,
                        paths_file=paths,
                        connections=connections or args.history_concurrency,
                        threads=1,
                        seconds=seconds,
                        timeout=args.timeout,
                    )

                if args.history_warmup > 0:
                    load.run(argv(args.history_warmup))
                    settle(server)
                cpu0, stat0 = server.cpu_seconds(), machine.cpu_times()
                row.result = load.run(argv(args.history_duration))
                row.machine_busy = machine.busy_and_steal(stat0, machine.cpu_times())[0]
                if row.result.ok:
                    row.cpu_ms = 1000 * (server.cpu_seconds() - cpu0) / row.result.ok
                settle(server)
                if query.target_ms is not None and args.history_concurrency > 1:
                    cpu0 = server.cpu_seconds()
                    row.alone = load.run(argv(args.history_duration, connections=1))
                    if row.alone.ok:
                        row.alone_cpu_ms = 1000 * (server.cpu_seconds() - cpu0) / row.alone.ok
                    settle(server)
            res = row.result
            print(
                f"  {loaded.backend:10s} {query.key:18s} "
                + (
                    f"{res.rps:7.0f} req/s  p50 {res.p50_ms:7.1f}  p95 {res.p95_ms:7.1f}  "
                    f"p99 {res.p99_ms:7.1f} ms  non-2xx {res.status_errors}  "
                    if res
                    else ""
                )
                + (
                    f"{len(row.sequential)} sequential GETs: median "
                    f"{median(row.sequential):,.0f} ms  "
                    if row.sequential
                    else ""
                )
                + f"total {row.total}  {row.note}",
                flush=True,
            )
        peak = server.status_kb("VmHWM")
    finally:
        server.stop()
    if server.returncode != 0:
        print(f"  ! history {tag}: exit code {server.returncode}\n{server.log_tail()}", flush=True)
    time_statements(rows, loaded)
    by_hour = time_report_hours(loaded) if any(r.query.key == "report-7d" for r in rows) else None
    return BackendRun(loaded, rows, peak, server.startup_s, server.returncode, by_hour)


def run(
    args: argparse.Namespace,
    *,
    wrk: str,
    tmp: Path,
    pg: PostgresServer | None,
    command: str,
) -> HistoryResults:
    began = time.monotonic()
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    loadavg = machine.loadavg()
    spec = Spec(events=args.history_events)
    print(f"history: building {spec.events:,} events", flush=True)
    data = build(spec)
    print(
        f"history: built in {data.build_s:.1f} s ({data.fingerprints:,} fingerprints)", flush=True
    )
    runs: list[BackendRun] = []
    loaders: list[tuple[str, Callable[[], Loaded]]] = []
    if pg is not None:
        pg_url = pg.create_database("history")
        loaders.append(("PostgreSQL", lambda: load_postgres(pg_url, data, pg.cpu_seconds)))
    loaders.append(("SQLite", lambda: load_sqlite(tmp / "history.db", data)))
    for name, loader in loaders:
        print(f"history: loading {name}", flush=True)
        loaded = loader()
        print(
            f"history: {name}: {loaded.events:,} events + {loaded.current:,} current rows in "
            f"{loaded.load_s:.1f} s ({loaded.rows_per_s:,.0f} rows/s), "
            f"{loaded.size_bytes / 2**20:,.0f} MiB",
            flush=True,
        )
        if pg is not None and name == "PostgreSQL":
            pg.checkpoint()
        runs.append(run_backend(loaded, data, wrk=wrk, args=args, tmp=tmp))
        if name == "PostgreSQL" and pg is not None and not args.keep:
            pg.drop_database(loaded.url)
        if name == "SQLite" and not args.keep:
            for leftover in tmp.glob("history.db*"):
                leftover.unlink()
    by_count = data.alertname_counts.most_common()
    firing = sum(1 for r in data.current if r[1] == "firing")
    facts = {
        "alertnames": f"{len(by_count):,} (top {by_count[0][1]:,} events, rarest "
        f"{by_count[-1][1]:,}; Zipf s={spec.zipf_s})",
        "fingerprints": f"{data.fingerprints:,} (alert_current rows; {firing:,} firing)",
        "events": f"{len(data.events):,} "
        f"({sum(1 for r in data.events if r[1] == 'firing'):,} firing, "
        f"{sum(1 for r in data.events if r[1] == 'resolved'):,} resolved)",
        "window": f"{spec.days} days of starts_at, {_day(spec.start_ns)} to "
        f"{_day(spec.start_ns + spec.days * 86_400 * 10**9)}",
        "row": f"{median(len(str(r[7])) + len(str(r[8])) for r in data.events[:10_000]):.0f} "
        "bytes of labels + annotations JSON (median)",
    }
    example = load.get_command(
        wrk,
        "http://127.0.0.1:PORT",
        paths_file=Path("<paths file>"),
        connections=args.history_concurrency,
        threads=1,
        seconds=args.history_duration,
        timeout=args.timeout,
    )
    return HistoryResults(
        spec=spec,
        data_facts=facts,
        build_s=data.build_s,
        runs=runs,
        pg_version=pg.version if pg else "",
        pg_settings=pg.settings_text() if pg else "",
        wrk_example=example,
        concurrency=args.history_concurrency,
        warmup=args.history_warmup,
        duration=args.history_duration,
        elapsed_s=time.monotonic() - began,
        date=date,
        command=command,
        loadavg=loadavg,
    )


# -- the report section -----------------------------------------------------------------------


def _ms(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.1f}" if value < 100 else f"{value:,.0f}"


def _table(header: list[str], rows: list[list[str]], align: str) -> list[str]:
    marks = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(marks) + " |"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def render(res: HistoryResults) -> list[str]:
    wrk_shown = " ".join(["wrk", *res.wrk_example[1:]]).replace(
        str(load.GET_SCRIPT.parent.parent) + "/", ""
    )
    lines = [
        "## History at scale: GET /history latency on a loaded database",
        "",
        f"Generated {res.date} by `{res.command}` in {res.elapsed_s / 60:.1f} min. Load average "
        f"when the section started: {res.loadavg} (the box is shared; see *all CPUs busy*).",
        "",
        "### Method",
        "",
        f"- Data (`bench/dataset.py`, seeded, built in {res.build_s:.0f} s): "
        f"{res.data_facts['events']} events; alertnames {res.data_facts['alertnames']}; "
        f"{res.spec.namespaces} namespaces; severities critical / warning / info; "
        f"fingerprints {res.data_facts['fingerprints']}, one per (alertname, instance); "
        f"{res.data_facts['window']}; firing/resolved pairs, `first_seen` increasing with id; "
        f"{res.data_facts['row']}.",
        "- Loading (`bench/loader.py`): a fresh database per backend, the service's migrations "
        "applied first by `open_storage(url)` under trio, then PostgreSQL by `COPY ... FROM "
        "STDIN` (psycopg `cursor.copy`, `write_row`, one transaction) followed by `VACUUM "
        "ANALYZE` (what autovacuum does soon after a bulk load), SQLite by `executemany` in "
        "transactions of 100,000 rows (no `ANALYZE`: the service never runs it) followed by a "
        "WAL checkpoint. alert_current gets one row per fingerprint, its latest state.",
        f"- PostgreSQL {res.pg_version}: a throwaway server from the installed binaries, "
        f"default durability (fsync, synchronous_commit, full_page_writes on), "
        f"{res.pg_settings}; the service's own pool (10 connections).",
        f"- Client: **wrk** with `bench/get.lua` (GETs the prepared URLs of a file in turn; "
        f"here one URL per row), `-t1`, **concurrency {res.concurrency}**, "
        f"{res.warmup:g} s warm-up + **{res.duration:g} s measured** per row, against "
        f"`alert-history serve` on the loaded database (with `RETENTION_DAYS=365`: the data "
        "ends this hour and spans 30 days, so the default 30-day retention would start deleting "
        "the oldest events while they are queried). wrk and the PostgreSQL server share the "
        f"machine's cores with the service. Example: `{wrk_shown}`.",
        "- Before a row is timed one plain GET checks it: `total` must equal the count computed "
        "from the generated rows and every returned event must match the filter. The cursor "
        f"row follows `next_cursor` {CURSOR_PAGE - 1} times (limit {PAGE_LIMIT}) and then "
        f"times the request for page {CURSOR_PAGE} over and over. The report row's `since` is "
        "7 days before the start of the hour in which the row runs, as a dashboard asks for the "
        "last 7 days.",
        "- *count ms* / *page ms*: after the service stopped, the two statements the service "
        "runs for the row (`SELECT count(*) ... WHERE` for `total`, then the page `ORDER BY id "
        "DESC LIMIT 101`), built by the service's own `history_filters`, timed directly on the "
        "database from one connection (median of 5; one run when it takes over 0.5 s): which of "
        "the two costs the time.",
        "",
        "### Loading",
        "",
    ]
    load_rows = []
    for r in res.runs:
        ld = r.loaded
        how = "COPY" if ld.backend == "PostgreSQL" else "executemany"
        after = "VACUUM ANALYZE" if ld.backend == "PostgreSQL" else "WAL checkpoint"
        rows_n = ld.events + ld.current
        cpu = f"bench {1e6 * ld.client_cpu_s / rows_n:.0f}" + (
            f", PostgreSQL {1e6 * ld.server_cpu_s / rows_n:.0f}"
            if ld.server_cpu_s is not None
            else ""
        )
        load_rows.append(
            [
                ld.backend,
                how,
                f"{ld.events:,} + {ld.current:,}",
                f"{ld.load_s:.1f}",
                f"**{ld.rows_per_s:,.0f}**",
                cpu,
                f"{after} {ld.after_s:.1f} s",
                f"**{ld.size_bytes / 2**20:,.0f}**",
                f"{r.startup_s:.2f}",
            ]
        )
    lines += _table(
        [
            "backend",
            "load",
            "events + current rows",
            "seconds",
            "rows/s",
            "CPU µs/row",
            "then",
            "DB size MiB",
            "service start s",
        ],
        load_rows,
        "llrrrllrr",
    )
    lines += [
        "",
        f"### Latency (wrk, concurrency {res.concurrency})",
        "",
        "*CPU ms/req*: the service process's CPU time (all threads) per response while measured; "
        "the PostgreSQL server's CPU is not in it. *All CPUs busy*: the whole machine while "
        "measured (2 cores: 50 % = one core; other jobs on the box included). *1 GET ms*: the "
        "checking GET, alone. A row "
        f"whose single GET takes {SLOW_MS:g} ms or more is not given to wrk: {SEQUENTIAL} GETs "
        "one after the other instead, p50 = their median, p95/p99 = their maximum.",
        "",
    ]
    rows = []
    for r in res.runs:
        for row in r.rows:
            res_ = row.result
            how = f"{len(row.sequential)} GETs in a row" if row.sequential else ""
            p95 = row.latency("p95_ms")
            over = f"> {res.duration:g} s" if row.timed_out else "–"
            rows.append(
                [
                    row.backend,
                    row.query.label,
                    f"{row.total:,}" if row.total is not None else "–",
                    f"{res_.rps:,.0f}" if res_ else how or "–",
                    _ms(row.latency("p50_ms")) if not row.timed_out else over,
                    f"**{_ms(p95)}**" if p95 is not None else f"**{over}**",
                    _ms(row.latency("p99_ms")) if not row.timed_out else over,
                    str(res_.status_errors + res_.socket_errors) if res_ else "–",
                    _ms(row.cpu_ms),
                    f"{100 * row.machine_busy:.0f} %" if row.machine_busy is not None else "–",
                    _ms(row.single_ms),
                    _ms(row.count_ms),
                    _ms(row.page_ms),
                    f"< {row.target_ms:g} ms: {row.verdict()}",
                    row.note + ("; wrk got no response in its window" if row.timed_out else ""),
                ]
            )
    lines += _table(
        [
            "backend",
            "query",
            "total",
            "req/s",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "errors",
            "CPU ms/req",
            "all CPUs busy",
            "1 GET ms",
            "count ms",
            "page ms",
            "target p95",
            "check",
        ],
        rows,
        "llrrrrrrrrrrrll",
    )
    alone = [row for r in res.runs for row in r.rows if row.alone is not None]
    if alone:
        lines += [
            "",
            "Issue #4's endpoints again with **one connection** (`-c1`, same window, after the "
            f"concurrency-{res.concurrency} run): each request alone, none queued behind "
            "another. The targets above are judged at the table's concurrency; this shows how "
            "much of that p95 is queueing for the cores.",
            "",
        ]
        lines += _table(
            ["backend", "query", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors", "CPU ms/req"],
            [
                [
                    row.backend,
                    row.query.key,
                    f"{a.rps:,.1f}",
                    _ms(a.p50_ms),
                    f"**{_ms(a.p95_ms)}**",
                    _ms(a.p99_ms),
                    str(a.status_errors + a.socket_errors),
                    _ms(row.alone_cpu_ms),
                ]
                for row in alone
                if (a := row.alone) is not None
            ],
            "llrrrrrr",
        )
    lines += _by_hour(res)
    lines += ["", "### Targets", ""]
    for r in res.runs:
        measured = [row for row in r.rows if row.measured]
        met = [row for row in measured if row.verdict() == MET]
        missing = [row.query.key for row in r.rows if not row.measured]
        failed = [row for row in measured if row.verdict() != MET]
        lines.append(
            f"- {r.loaded.backend}: p95 under the row's *target p95* **met for "
            f"{len(met)} of {len(measured)}** measured rows"
            + (f" ({', '.join(missing)}: {NOT_AVAILABLE})" if missing else "")
            + (
                "; not met: "
                + ", ".join(
                    f"{row.query.key} "
                    + (
                        f"> {res.duration:g} s (no response in wrk's window)"
                        if row.timed_out
                        else f"{_ms(row.latency('p95_ms'))} ms"
                    )
                    for row in failed
                )
                if failed
                else ""
            )
            + "."
        )
    lines.append("")
    lines += notes(res)
    return lines


def _by_hour(res: HistoryResults) -> list[str]:
    runs = [r for r in res.runs if r.report_by_hour]
    if not runs:
        return []
    lines = [
        "",
        "The report row's `since` is 7 days before the start of the hour it runs in, so its "
        "work depends on the hour of day. With the aligned spans alone (*pieces*) a `since` at "
        "midnight reads whole days, one at 01:00 its first day's 23 hours as five spans of "
        "hours. The rollup actor keeps a trailing span from the current window's first hour "
        "to the end of yesterday (*trailing*: what the wrk row reads). `build_report` (the "
        "service's code on one connection, the service stopped; no HTTP) for `since` at each "
        "hour of the day 7 days ago, first with no trailing span, then with each hour's, "
        "median of 3, ms:",
        "",
    ]
    header = ["since at"]
    for r in runs:
        header += [f"{r.loaded.backend} pieces", f"{r.loaded.backend} trailing"]
    table = []
    for h in range(24):
        line = [f"{h:02d}:00"]
        for r in runs:
            by_kind = r.report_by_hour or {}
            line += [_ms(by_kind.get(kind, {}).get(h)) for kind in ("pieces", "trailing")]
        table.append(line)
    lines += _table(header, table, "l" + "r" * (len(header) - 1))
    lines.append("")
    for r in runs:
        wrk_row = next((row for row in r.rows if row.query.key == "report-7d"), None)
        asked = _since_hour(wrk_row.path) if wrk_row else None
        parts = []
        for kind in ("pieces", "trailing"):
            by_hour = (r.report_by_hour or {}).get(kind) or {}
            if not by_hour:
                continue
            slow = max(by_hour, key=by_hour.__getitem__)
            fast = min(by_hour, key=by_hour.__getitem__)
            parts.append(
                f"{kind} {by_hour[fast]:,.1f}–{by_hour[slow]:,.1f} ms (median "
                f"{median(by_hour.values()):,.1f}; slowest since {slow:02d}:00)"
            )
        lines.append(
            f"- {r.loaded.backend}: "
            + "; ".join(parts)
            + (f"; the wrk row above asked since {asked:02d}:00" if asked is not None else "")
            + "."
        )
    return lines


def _since_hour(path: str) -> int | None:
    """The hour of day of a report path's `since` (`...&since=2026-11-21T01:00:00Z`)."""
    since = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query).get("since")
    return parse_rfc3339_ns(since[0]) // (3_600 * 10**9) % 24 if since else None


def notes(res: HistoryResults) -> list[str]:
    """Observations computed from the figures: where the time goes in the rows not met."""
    out = []
    for r in res.runs:
        target = TARGET_P95_MS[r.loaded.backend]
        failed = [
            row
            for row in r.rows
            if row.measured
            and row.verdict() != MET
            and row.count_ms is not None
            and row.page_ms is not None
        ]
        counted = [row for row in failed if (row.count_ms or 0) > 2 * (row.page_ms or 0)]
        if counted:
            out.append(
                f"- {r.loaded.backend}: in "
                + ", ".join(
                    f"{row.query.key} (count {_ms(row.count_ms)} ms, page {_ms(row.page_ms)} ms)"
                    for row in counted
                )
                + " the `count(*)` behind `total` costs more than the page itself."
            )
        paged = [row for row in failed if (row.page_ms or 0) > 2 * (row.count_ms or 0)]
        if paged:
            out.append(
                f"- {r.loaded.backend}: in "
                + ", ".join(
                    f"{row.query.key} (page {_ms(row.page_ms)} ms, count {_ms(row.count_ms)} ms)"
                    for row in paged
                )
                + " the page query itself is the slow statement."
            )
        cpu_bound = [
            row
            for row in failed
            if row.cpu_ms is not None
            and (row.count_ms or 0) + (row.page_ms or 0) < 0.5 * row.cpu_ms
            and res.concurrency * row.cpu_ms >= 0.5 * target
        ]
        if cpu_bound:
            out.append(
                f"- {r.loaded.backend}: in "
                + ", ".join(
                    f"{row.query.key} (database {_ms((row.count_ms or 0) + (row.page_ms or 0))} "
                    f"ms, service CPU {_ms(row.cpu_ms)} ms/req)"
                    for row in cpu_bound
                )
                + " the service's own CPU per response (reading, decoding and rendering the page "
                f"of events) dominates: {res.concurrency} concurrent requests queue on one core, "
                f"so p50 ≈ {res.concurrency} × CPU ms/req."
            )
    return [*out, ""] if out else []


def console_summary(res: HistoryResults) -> str:
    out = ["history (p95 ms, target):"]
    for r in res.runs:
        for row in r.rows:
            p95 = row.latency("p95_ms")
            shown = (
                f"{p95:7.1f}" if p95 is not None else ("timeout" if row.timed_out else "      –")
            )
            out.append(f"  {row.backend:10s} {row.query.key:18s} {shown}  {row.verdict()}")
            if row.alone is not None:
                out.append(
                    f"  {row.backend:10s} {row.query.key + ' (c1)':18s} {row.alone.p95_ms:7.1f}"
                )
    return "\n".join(out)
