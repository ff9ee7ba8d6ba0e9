"""`python -m bench`: the sections of bench/RESULTS.md, all by default, or `--only` some.

- ingest: alternate the ceiling, the service on SQLite and (10-alert cells only) the service on
  PostgreSQL over every cell. A cell is (payload, concurrency). Each round runs, for each cell,
  one run per server kind back to back, in alternating order (odd rounds ceiling first, even
  rounds last). Every run starts a fresh server process (the service with a fresh SQLite file in
  a temp folder or a fresh PostgreSQL database), warms it up, measures, reads peak RSS, stops it
  with SIGTERM and, for the service, checks the database against the 2xx responses.
- history: GET /history latency on a million loaded events, both backends (`bench.history`).
- pgdriver: psycopg's sync pool in threads against AsyncConnectionPool under trio-asyncio, on
  the service's own group-commit statements (`bench.pgdriver`).
- classify: LLM classifications/s, cache hits/s, webhook p95 with classification on vs off
  (`bench.classify`).

One throwaway PostgreSQL server (`bench.pgserver`) is started for the whole bench.
"""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import shutil
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench import ceiling, classify, history, load, machine, pgdriver, profile, report
from bench.payloads import Payload, one_alert, ten_alerts
from bench.pgserver import PostgresServer
from bench.servers import ROOT, Server

SERVERS = ("ceiling", "service", "postgres")
#: the payloads the service on PostgreSQL is run with (the other kinds run every payload)
POSTGRES_PAYLOADS = ("10-alert",)
SECTIONS = ("ingest", "history", "pgdriver", "classify")


@dataclass(frozen=True)
class DbCheck:
    rows: int
    notify_sum: int
    ok_alerts: int  # alerts carried by 2xx responses, warm-up included
    non_ok_alerts: int  # alerts carried by non-2xx responses

    @property
    def passed(self) -> bool:
        return self.notify_sum >= self.ok_alerts


@dataclass(frozen=True)
class Internals:
    """The service's own view, from its /metrics after the load (warm-up included)."""

    commits: int
    commit_s: float  # sum of group-commit durations (trio side: thread hand-off included)
    batched_alerts: int
    new_states: int
    repeat_states: int
    fingerprint_mismatches: int
    wall_s: float  # warm-up start to end of the measured load

    @property
    def mean_batch(self) -> float:
        return self.batched_alerts / self.commits if self.commits else 0.0

    @property
    def mean_commit_ms(self) -> float:
        return 1000 * self.commit_s / self.commits if self.commits else 0.0

    @property
    def writer_busy(self) -> float:
        return self.commit_s / self.wall_s if self.wall_s else 0.0


def read_internals(text: str, wall_s: float) -> Internals:
    from prometheus_client.parser import text_string_to_metric_families

    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = sample.name + "".join(f"|{v}" for v in sample.labels.values())
            values[key] = values.get(key, 0.0) + sample.value
    return Internals(
        commits=int(values.get("alert_history_commit_seconds_count", 0)),
        commit_s=values.get("alert_history_commit_seconds_sum", 0.0),
        batched_alerts=int(values.get("alert_history_commit_batch_alerts_sum", 0)),
        new_states=int(values.get("alert_history_alert_states_written_total|new", 0)),
        repeat_states=int(values.get("alert_history_alert_states_written_total|repeat", 0)),
        fingerprint_mismatches=int(values.get("alert_history_fingerprint_mismatches_total", 0)),
        wall_s=wall_s,
    )


@dataclass(frozen=True)
class Run:
    round: int
    server: str
    payload: Payload
    concurrency: int
    warmup: load.WrkResult | None
    result: load.WrkResult
    peak_rss_kb: int
    cpu_s: float  # server CPU time during the measured load
    wrk_cpu_s: float  # wrk's CPU time during the measured load
    machine_busy: float  # share of all CPUs busy during the measured load (0..1)
    steal: float  # share of CPU time stolen by the hypervisor (0..1)
    startup_s: float
    stop_s: float
    returncode: int | None
    db: DbCheck | None
    internals: Internals | None
    db_cpu_s: float = 0.0  # the PostgreSQL server's CPU during the measured load (postgres runs)

    @property
    def alerts_per_s(self) -> float:
        return self.result.rps * self.payload.alerts

    @property
    def cpu_ms_per_request(self) -> float:
        return 1000 * self.cpu_s / self.result.ok if self.result.ok else float("nan")


_cpu_times = machine.cpu_times
_busy_and_steal = machine.busy_and_steal


def _children_cpu() -> float:
    """CPU time of the children waited for so far (wrk runs; the servers are waited at stop)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def check_ceiling_config() -> None:
    """The ceiling must run with exactly the service's Hypercorn configuration."""
    from alert_history.config.settings import ServerSettings
    from alert_history.http.server import hypercorn_config

    defaults = ServerSettings()
    service = hypercorn_config(
        "127.0.0.1",
        1,
        graceful_timeout=defaults.graceful_timeout,
        keep_alive=defaults.keep_alive_timeout,
    )
    bare = ceiling.config("127.0.0.1", 1)
    differ = []
    for name in dir(service):
        if name.startswith("_") or name == "log":  # `log` is built anew from the log settings
            continue
        try:
            mine, theirs = getattr(service, name), getattr(bare, name)
        except AttributeError:  # write-only properties (cert_reqs)
            continue
        if not callable(mine) and mine != theirs:
            differ.append(name)
    if differ:
        raise SystemExit(
            f"bench: the ceiling's Hypercorn config differs from the service's: {differ}"
        )


DB_CHECK = "SELECT count(*), coalesce(sum(notify_count), 0) FROM alert_events"


def read_db(path: Path) -> tuple[int, int]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        rows, total = conn.execute(DB_CHECK).fetchone()
    return int(rows), int(total)


def read_pg(url: str) -> tuple[int, int]:
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute(DB_CHECK).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


class Bench:
    def __init__(
        self, args: argparse.Namespace, wrk: str, tmp: Path, pg: PostgresServer | None
    ) -> None:
        self.args = args
        self.wrk = wrk
        self.tmp = tmp
        self.pg = pg
        self.payloads = [one_alert(args.one_alert_unique_every), ten_alerts(args.ten_unique_every)]
        self.templates = {p.key: p.write(tmp) for p in self.payloads}

    def wrk_argv(
        self, url: str, payload: Payload, concurrency: int, seconds: float, salt: int
    ) -> list[str]:
        return load.command(
            self.wrk,
            url,
            template=self.templates[payload.key],
            starts_at=payload.starts_at,
            unique_every=payload.unique_every,
            salt=salt,
            connections=concurrency,
            threads=self.args.threads,
            seconds=seconds,
            timeout=self.args.timeout,
        )

    def run_one(self, rnd: int, kind: str, payload: Payload, concurrency: int) -> Run:
        tag = f"r{rnd}-{kind}-{payload.key}-c{concurrency}"
        log_path = self.tmp / f"{tag}.log"
        db_path = self.tmp / f"{tag}.db"
        pg_url = ""
        if kind == "postgres":
            assert self.pg is not None
            pg_url = self.pg.create_database("ingest")
            self.pg.checkpoint()  # not one landing inside the run
            server = Server.service_on(pg_url, log_path, name="postgres")
        elif kind == "service":
            server = Server.service(db_path, log_path)
        else:
            server = Server.ceiling(log_path)
        server.start()
        try:
            url = server.url + "/webhook"
            began = time.monotonic()
            warm = None
            if self.args.warmup > 0:
                warm = load.run(self.wrk_argv(url, payload, concurrency, self.args.warmup, 1))
            db0 = self.pg.cpu_seconds() if pg_url and self.pg else 0.0
            cpu0, stat0, wrk0 = server.cpu_seconds(), _cpu_times(), _children_cpu()
            result = load.run(self.wrk_argv(url, payload, concurrency, self.args.duration, 2))
            cpu1, stat1, wrk1 = server.cpu_seconds(), _cpu_times(), _children_cpu()
            db_cpu = (self.pg.cpu_seconds() - db0) if pg_url and self.pg else 0.0
            wall = time.monotonic() - began
            peak = server.status_kb("VmHWM")
            internals = read_internals(server.get("/metrics"), wall) if kind != "ceiling" else None
        finally:
            server.stop()
        if server.returncode != 0:
            print(f"  ! {tag}: exit code {server.returncode}\n{server.log_tail()}", flush=True)
        busy, steal = _busy_and_steal(stat0, stat1)
        db = None
        if kind != "ceiling":
            rows, notify_sum = read_pg(pg_url) if pg_url else read_db(db_path)
            responses = [r for r in (warm, result) if r is not None]
            db = DbCheck(
                rows=rows,
                notify_sum=notify_sum,
                ok_alerts=sum(r.ok for r in responses) * payload.alerts,
                non_ok_alerts=sum(r.status_errors for r in responses) * payload.alerts,
            )
            if not self.args.keep:
                for leftover in db_path.parent.glob(db_path.name + "*"):
                    leftover.unlink()
                if pg_url and self.pg is not None:
                    self.pg.drop_database(pg_url)
        return Run(
            round=rnd,
            server=kind,
            payload=payload,
            concurrency=concurrency,
            warmup=warm,
            result=result,
            peak_rss_kb=peak,
            cpu_s=cpu1 - cpu0,
            wrk_cpu_s=wrk1 - wrk0,
            machine_busy=busy,
            steal=steal,
            startup_s=server.startup_s,
            stop_s=server.stop_s,
            returncode=server.returncode,
            db=db,
            internals=internals,
            db_cpu_s=db_cpu,
        )

    def kinds(self, payload: Payload) -> tuple[str, ...]:
        """The server kinds run for `payload`, in the order of SERVERS."""
        return tuple(
            k
            for k in SERVERS
            if k != "postgres" or (self.pg is not None and payload.key in POSTGRES_PAYLOADS)
        )

    def run(self) -> list[Run]:
        runs: list[Run] = []
        cells = [(p, c) for p in self.payloads for c in self.args.concurrency]
        total = self.args.rounds * sum(len(self.kinds(p)) for p, _ in cells)
        for rnd in range(1, self.args.rounds + 1):
            for payload, concurrency in cells:
                kinds = self.kinds(payload)
                order = kinds if rnd % 2 else tuple(reversed(kinds))
                for kind in order:
                    run = self.run_one(rnd, kind, payload, concurrency)
                    runs.append(run)
                    res = run.result
                    print(
                        f"[{len(runs):2d}/{total}] round {rnd} {kind:8s} {payload.key:8s} "
                        f"c{concurrency:<3d} {res.rps:8.0f} req/s  p50 {res.p50_ms:6.1f}  "
                        f"p95 {res.p95_ms:6.1f}  p99 {res.p99_ms:6.1f} ms  "
                        f"non-2xx {res.status_errors}  sock-err {res.socket_errors}  "
                        f"cpu {100 * run.cpu_s / res.duration_s:3.0f}%  "
                        f"rss {run.peak_rss_kb / 1024:5.1f} MiB"
                        + (f"  db {'ok' if run.db.passed else 'MISMATCH'}" if run.db else ""),
                        flush=True,
                    )
        return runs


def _sections(text: str) -> list[str]:
    names = [x.strip() for x in text.split(",") if x.strip()]
    unknown = [n for n in names if n not in SECTIONS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(SECTIONS)} (comma-separated)")
    return [n for n in SECTIONS if n in names]


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",")]


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Webhook ingest against a bare Hypercorn trio app (SQLite and PostgreSQL), "
        "GET /history on a million events, and the psycopg driver choice.",
    )
    parser.add_argument(
        "--only",
        type=_sections,
        default=list(SECTIONS),
        metavar="SECTIONS",
        help="comma-separated sections to run: ingest, history, pgdriver, classify (default: "
        "all); the "
        "others keep what bench/RESULTS.md already has",
    )
    parser.add_argument(
        "--postgres",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="start a throwaway PostgreSQL for the PostgreSQL runs (default); --no-postgres "
        "runs SQLite only and skips pgdriver",
    )
    ingest = parser.add_argument_group("ingest")
    ingest.add_argument("--duration", type=float, default=8.0, help="measured seconds per run")
    ingest.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per run")
    ingest.add_argument("--rounds", type=int, default=3, help="rounds (medians are taken)")
    ingest.add_argument(
        "--concurrency",
        type=_ints,
        default=[16, 64],
        help="comma-separated connection counts (default 16,64)",
    )
    ingest.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    parser.add_argument("--timeout", type=float, default=10.0, help="wrk request timeout, s")
    ingest.add_argument(
        "--one-alert-unique-every",
        type=int,
        default=100,
        metavar="N",
        help="1-alert load: every Nth request is a new episode, the rest repeats (default 100)",
    )
    ingest.add_argument(
        "--ten-unique-every",
        type=int,
        default=1,
        metavar="N",
        help="10-alert load: every Nth request is a new episode (default 1: all)",
    )
    ingest.add_argument(
        "--profile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="add an untimed py-spy run of the service (default: when py-spy is installed)",
    )
    ingest.add_argument("--profile-seconds", type=float, default=8.0)
    hist = parser.add_argument_group("history")
    hist.add_argument(
        "--history-events", type=int, default=1_000_000, help="events loaded (default 1,000,000)"
    )
    hist.add_argument("--history-concurrency", type=int, default=4, help="wrk connections (4)")
    hist.add_argument("--history-warmup", type=float, default=1.0, help="warm-up s per query")
    hist.add_argument("--history-duration", type=float, default=5.0, help="measured s per query")
    drv = parser.add_argument_group("pgdriver")
    drv.add_argument("--pgdriver-rounds", type=int, default=3, help="rounds (medians)")
    drv.add_argument(
        "--pgdriver-tasks", type=_ints, default=[1, 8], help="concurrent trio tasks (1,8)"
    )
    drv.add_argument("--pgdriver-warmup", type=float, default=0.5)
    drv.add_argument("--pgdriver-seconds", type=float, default=2.5, help="measured s per run")
    cls = parser.add_argument_group("classify")
    cls.add_argument(
        "--classify-rounds", type=int, default=2, help="LLM and cache rounds (medians)"
    )
    cls.add_argument(
        "--classify-pairs", type=int, default=6, help="webhook p95 off/on run pairs (6)"
    )
    cls.add_argument("--classify-alerts", type=int, default=400, help="alerts sent to the LLM")
    cls.add_argument(
        "--classify-requests", type=int, default=1500, help="webhooks per p95 run (1500)"
    )
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "RESULTS.md")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (logs, DBs)")
    args = parser.parse_args(argv)
    if args.threads < 1 or any(c < args.threads for c in args.concurrency):
        parser.error("need 1 <= --threads <= every --concurrency")
    if args.only == ["pgdriver"] and not args.postgres:
        parser.error("pgdriver needs PostgreSQL (drop --no-postgres)")
    return args


def _estimate_s(args: argparse.Namespace, profiling: bool) -> dict[str, float]:
    out = {}
    if "ingest" in args.only:
        runs = args.rounds * len(args.concurrency) * (5 if args.postgres else 4)
        out["ingest"] = runs * (args.warmup + args.duration + 2.5) + (
            2 * (args.profile_seconds + 6) if profiling else 0
        )
    if "history" in args.only:
        per_million = 110 if args.postgres else 45
        rows = 7 * (2 if args.postgres else 1)
        out["history"] = (
            per_million * args.history_events / 1e6
            + rows * (args.history_warmup + args.history_duration + 1)
            + 40
        )
    if "pgdriver" in args.only and args.postgres:
        runs = args.pgdriver_rounds * 2 * len(args.pgdriver_tasks)
        out["pgdriver"] = runs * (args.pgdriver_warmup + args.pgdriver_seconds + 2.5)
    if "classify" in args.only:
        out["classify"] = args.classify_rounds * (args.classify_alerts / 60 + 10) + (
            args.classify_pairs * 2 * (args.classify_requests / 100 + 5)
        )
    return out


def run_ingest(
    args: argparse.Namespace,
    *,
    wrk: str,
    tmp: Path,
    pg: PostgresServer | None,
    py_spy: str | None,
    command: str,
) -> tuple[list[str], str]:
    """The ingest section: its lines and the console summary."""
    started = time.monotonic()
    facts = report.machine_facts(wrk, tmp)
    if pg is not None:
        facts["postgres"] = f"PostgreSQL {pg.version} ({pg.settings_text()})"
    bench = Bench(args, wrk, tmp, pg)
    runs = bench.run()
    profiles: list[tuple[str, profile.Profile]] = []
    if py_spy is not None:
        conc = max(args.concurrency)
        for payload in bench.payloads:
            print(f"bench: py-spy on the service ({payload.key}, c{conc})", flush=True)
            prof = profile.profile_service(
                py_spy,
                wrk,
                payload,
                bench.templates[payload.key],
                concurrency=conc,
                threads=args.threads,
                seconds=args.profile_seconds,
                tmp=tmp,
            )
            profiles.append((f"{payload.key}, c{conc}", prof))
    lines = report.render(
        runs,
        payloads=bench.payloads,
        args=args,
        command=command,
        facts=facts,
        wrk_example=bench.wrk_argv(
            "http://127.0.0.1:PORT/webhook",
            bench.payloads[0],
            args.concurrency[0],
            args.duration,
            2,
        ),
        profiles=profiles if py_spy is not None else None,
        elapsed_s=time.monotonic() - started,
    )
    return lines, report.console_summary(runs, args)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    command = shlex.join(
        [
            os.path.relpath(sys.executable, ROOT),
            "-m",
            "bench",
            *(sys.argv[1:] if argv is None else argv),
        ]
    )
    wrk = load.ensure_wrk()
    py_spy = None
    if "ingest" in args.only:
        check_ceiling_config()
        py_spy = profile.find_py_spy() if args.profile is not False else None
        if args.profile and py_spy is None:
            raise SystemExit("bench: --profile needs py-spy (`.venv/bin/pip install py-spy`)")
    if "pgdriver" in args.only and not args.postgres:
        print("bench: --no-postgres: skipping pgdriver", flush=True)
    pg = PostgresServer.find() if args.postgres else None
    tmp = Path(tempfile.mkdtemp(prefix="alert-history-bench-"))
    estimate = _estimate_s(args, py_spy is not None)
    print(
        f"bench: sections {', '.join(args.only)}, about {sum(estimate.values()) / 60:.1f} min ("
        + ", ".join(f"{k} {v / 60:.1f}" for k, v in estimate.items())
        + f"); temp folder {tmp}",
        flush=True,
    )
    started = time.monotonic()
    sections: dict[str, list[str]] = {}
    summaries: list[str] = []
    try:
        if pg is not None:
            pg.start()
            print(f"bench: PostgreSQL {pg.version} on port {pg.port} ({pg.base})", flush=True)
        if "ingest" in args.only:
            print("bench: == ingest ==", flush=True)
            lines, summary = run_ingest(
                args, wrk=wrk, tmp=tmp, pg=pg, py_spy=py_spy, command=command
            )
            sections["ingest"] = lines
            summaries.append(summary)
        if "history" in args.only:
            print("bench: == history ==", flush=True)
            hist = history.run(args, wrk=wrk, tmp=tmp, pg=pg, command=command)
            sections["history"] = history.render(hist)
            summaries.append(history.console_summary(hist))
        if "pgdriver" in args.only and pg is not None:
            print("bench: == pgdriver ==", flush=True)
            drv = pgdriver.run(args, pg=pg, command=command)
            sections["pgdriver"] = pgdriver.render(drv)
            summaries.append(pgdriver.console_summary(drv))
        if "classify" in args.only:
            print("bench: == classify ==", flush=True)
            cls = classify.run(args, command=command)
            sections["classify"] = classify.render(cls)
            summaries.append(classify.console_summary(cls))
        elapsed = time.monotonic() - started
        previous = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        args.output.write_text(report.assemble(sections, previous), encoding="utf-8")
        print("\n".join(summaries), flush=True)
        print(f"bench: wrote {args.output} in {elapsed / 60:.1f} min", flush=True)
    finally:
        if pg is not None:
            pg.stop(remove=not args.keep)
        if args.keep:
            print(f"bench: kept {tmp}" + (f" and {pg.base}" if pg is not None else ""))
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0
