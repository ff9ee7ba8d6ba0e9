"""`python -m bench`: alternate the ceiling and the service over every cell, then report.

A cell is (payload, concurrency). Each round runs, for each cell, one ceiling run and one service
run back to back, in alternating order (round 1 ceiling first, round 2 service first, ...). Every
run starts a fresh server process (the service with a fresh SQLite file in a temp folder), warms
it up, measures, reads peak RSS, stops it with SIGTERM and, for the service, checks the database
against the 2xx responses.
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

from bench import ceiling, load, profile, report
from bench.payloads import Payload, one_alert, ten_alerts
from bench.servers import ROOT, Server

SERVERS = ("ceiling", "service")


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

    @property
    def alerts_per_s(self) -> float:
        return self.result.rps * self.payload.alerts

    @property
    def cpu_ms_per_request(self) -> float:
        return 1000 * self.cpu_s / self.result.ok if self.result.ok else float("nan")


def _cpu_times() -> list[int]:
    first = Path("/proc/stat").read_text().splitlines()[0].split()
    return [int(x) for x in first[1:]]


def _children_cpu() -> float:
    """CPU time of the children waited for so far (wrk runs; the servers are waited at stop)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _busy_and_steal(before: list[int], after: list[int]) -> tuple[float, float]:
    delta = [b - a for a, b in zip(before, after, strict=False)]
    total = sum(delta[:8]) or 1  # user nice system idle iowait irq softirq steal
    idle = delta[3] + delta[4]
    return (total - idle) / total, delta[7] / total


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


def read_db(path: Path) -> tuple[int, int]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        rows, total = conn.execute(
            "SELECT count(*), coalesce(sum(notify_count), 0) FROM alert_events"
        ).fetchone()
    return int(rows), int(total)


class Bench:
    def __init__(self, args: argparse.Namespace, wrk: str, tmp: Path) -> None:
        self.args = args
        self.wrk = wrk
        self.tmp = tmp
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
        server = (
            Server.service(db_path, log_path) if kind == "service" else Server.ceiling(log_path)
        )
        server.start()
        try:
            url = server.url + "/webhook"
            began = time.monotonic()
            warm = None
            if self.args.warmup > 0:
                warm = load.run(self.wrk_argv(url, payload, concurrency, self.args.warmup, 1))
            cpu0, stat0, wrk0 = server.cpu_seconds(), _cpu_times(), _children_cpu()
            result = load.run(self.wrk_argv(url, payload, concurrency, self.args.duration, 2))
            cpu1, stat1, wrk1 = server.cpu_seconds(), _cpu_times(), _children_cpu()
            wall = time.monotonic() - began
            peak = server.status_kb("VmHWM")
            internals = read_internals(server.get("/metrics"), wall) if kind == "service" else None
        finally:
            server.stop()
        if server.returncode != 0:
            print(f"  ! {tag}: exit code {server.returncode}\n{server.log_tail()}", flush=True)
        busy, steal = _busy_and_steal(stat0, stat1)
        db = None
        if kind == "service":
            rows, notify_sum = read_db(db_path)
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
        )

    def run(self) -> list[Run]:
        runs: list[Run] = []
        cells = [(p, c) for p in self.payloads for c in self.args.concurrency]
        total = self.args.rounds * len(cells) * len(SERVERS)
        for rnd in range(1, self.args.rounds + 1):
            order = SERVERS if rnd % 2 else tuple(reversed(SERVERS))
            for payload, concurrency in cells:
                for kind in order:
                    run = self.run_one(rnd, kind, payload, concurrency)
                    runs.append(run)
                    res = run.result
                    print(
                        f"[{len(runs):2d}/{total}] round {rnd} {kind:7s} {payload.key:8s} "
                        f"c{concurrency:<3d} {res.rps:8.0f} req/s  p50 {res.p50_ms:6.1f}  "
                        f"p95 {res.p95_ms:6.1f}  p99 {res.p99_ms:6.1f} ms  "
                        f"non-2xx {res.status_errors}  sock-err {res.socket_errors}  "
                        f"cpu {100 * run.cpu_s / res.duration_s:3.0f}%  "
                        f"rss {run.peak_rss_kb / 1024:5.1f} MiB"
                        + (f"  db {'ok' if run.db.passed else 'MISMATCH'}" if run.db else ""),
                        flush=True,
                    )
        return runs


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Webhook throughput of the service against a bare Hypercorn trio app.",
    )
    parser.add_argument("--duration", type=float, default=8.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per run")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (medians are taken)")
    parser.add_argument(
        "--concurrency",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[16, 64],
        help="comma-separated connection counts (default 16,64)",
    )
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    parser.add_argument("--timeout", type=float, default=10.0, help="wrk request timeout, s")
    parser.add_argument(
        "--one-alert-unique-every",
        type=int,
        default=100,
        metavar="N",
        help="1-alert load: every Nth request is a new episode, the rest repeats (default 100)",
    )
    parser.add_argument(
        "--ten-unique-every",
        type=int,
        default=1,
        metavar="N",
        help="10-alert load: every Nth request is a new episode (default 1: all)",
    )
    parser.add_argument(
        "--profile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="add an untimed py-spy run of the service (default: when py-spy is installed)",
    )
    parser.add_argument("--profile-seconds", type=float, default=8.0)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "RESULTS.md")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (logs, DBs)")
    args = parser.parse_args(argv)
    if args.threads < 1 or any(c < args.threads for c in args.concurrency):
        parser.error("need 1 <= --threads <= every --concurrency")
    return args


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
    check_ceiling_config()
    py_spy = profile.find_py_spy() if args.profile is not False else None
    if args.profile and py_spy is None:
        raise SystemExit("bench: --profile needs py-spy (`.venv/bin/pip install py-spy`)")
    tmp = Path(tempfile.mkdtemp(prefix="alert-history-bench-"))
    facts = report.machine_facts(wrk, tmp)
    per_run = args.warmup + args.duration + 2.5
    cells = 2 * len(args.concurrency)
    estimate = args.rounds * cells * 2 * per_run + (2 * args.profile_seconds + 12 if py_spy else 0)
    print(
        f"bench: {args.rounds} rounds x {cells} cells x ceiling+service, "
        f"{args.warmup:g}+{args.duration:g} s each, about {estimate / 60:.1f} min; "
        f"temp folder {tmp}",
        flush=True,
    )
    started = time.monotonic()
    try:
        bench = Bench(args, wrk, tmp)
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
        elapsed = time.monotonic() - started
        text = report.render(
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
            elapsed_s=elapsed,
        )
        args.output.write_text(text, encoding="utf-8")
        print(report.console_summary(runs, args), flush=True)
        print(f"bench: wrote {args.output} in {elapsed / 60:.1f} min", flush=True)
    finally:
        if args.keep:
            print(f"bench: kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0
