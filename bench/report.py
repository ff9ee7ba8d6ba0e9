"""Aggregate the runs (medians, ratios against the ceiling) and render bench/RESULTS.md."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import shlex
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from statistics import median
from typing import TYPE_CHECKING

from bench import load
from bench.payloads import Payload
from bench.servers import ROOT

if TYPE_CHECKING:
    from bench.profile import Profile
    from bench.runner import Run

TARGET_RPS = 1500
TARGET_RATIO = 0.5
TARGET_P95_MS = 50.0
TARGET_P95_CONCURRENCY = 64
TARGET_RSS_MIB = 150
TARGET_PG_VS_SQLITE = 0.9  # PostgreSQL within 10 % of SQLite (alerts/s)
TARGET_ALERTS_PER_S = 10_000  # with 10-alert payloads
SERVER_LABELS = {
    "ceiling": "ceiling",
    "service": "**service** (SQLite)",
    "postgres": "**service (PostgreSQL)**",
}
BACKEND = {"service": "SQLite", "postgres": "PostgreSQL"}
REQUIRED_RPS = TARGET_P95_CONCURRENCY * 1000 / TARGET_P95_MS  # closed loop: c / latency
MET, NOT_MET = "**met**", "**NOT met**"


# -- facts ---------------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _filesystem(path: Path) -> str:
    best, fstype = "", "unknown"
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            mount, kind = parts[1], parts[2]
            if str(path).startswith(mount) and len(mount) > len(best):
                best, fstype = mount, kind
    except OSError:
        pass
    return f"{fstype} (mounted on {best or '?'})"


def _git(*args: str) -> str:
    out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    return out.stdout.strip() if out.returncode == 0 else ""


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "-"


def machine_facts(wrk: str, tmp: Path) -> dict[str, str]:
    commit = _git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = [ln for ln in _git("status", "--porcelain", "--", "src").splitlines() if ln]
    packages = ", ".join(
        f"{name} {_version(name)}"
        for name in ("hypercorn", "h11", "trio", "quart", "quart-trio", "msgspec")
    )
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": f"{len(os.sched_getaffinity(0))} (os.cpu_count() {os.cpu_count()})",
        "cpu": _cpu_model(),
        "kernel": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {sys.version.split()[0]}",
        "packages": packages,
        "sqlite": sqlite3.sqlite_version,
        "wrk": load.wrk_version(wrk),
        "db_folder": f"{tmp} on {_filesystem(tmp)}",
        "loadavg": " / ".join(Path("/proc/loadavg").read_text().split()[:3]),
        "git": f"{commit}"
        + (f" with {len(dirty)} uncommitted change(s) under src/" if dirty else " (src/ clean)"),
    }


# -- aggregation ---------------------------------------------------------------------------------


@dataclass
class Cell:
    payload: Payload
    concurrency: int
    ceiling: list[Run]
    service: list[Run]
    postgres: list[Run] = field(default_factory=list)

    def servers(self) -> list[str]:
        return [s for s in ("ceiling", "service", "postgres") if getattr(self, s)]

    def med(self, server: str, attr: str) -> float:
        return median(_value(r, attr) for r in getattr(self, server))

    def ratio(self, attr: str, server: str = "service", base: str = "ceiling") -> float:
        """Median over rounds of server / base, each pair from the same round."""
        ref = {r.round: _value(r, attr) for r in getattr(self, base)}
        pairs = [_value(r, attr) / ref[r.round] for r in getattr(self, server) if ref.get(r.round)]
        return median(pairs) if pairs else float("nan")

    def spread(self, server: str, attr: str) -> tuple[float, float]:
        values = [_value(r, attr) for r in getattr(self, server)]
        return min(values), max(values)

    def total(self, server: str, attr: str) -> int:
        return sum(int(_value(r, attr)) for r in getattr(self, server))


def _value(run: Run, attr: str) -> float:
    if hasattr(run.result, attr):
        return float(getattr(run.result, attr))
    return float(getattr(run, attr))


def cells(runs: list[Run]) -> list[Cell]:
    out: dict[tuple[str, int], Cell] = {}
    for run in runs:
        key = (run.payload.key, run.concurrency)
        cell = out.setdefault(key, Cell(run.payload, run.concurrency, [], []))
        getattr(cell, run.server).append(run)
    return list(out.values())


# -- formatting ----------------------------------------------------------------------------------


def _n(value: float) -> str:
    return f"{value:,.0f}"


def _ms(value: float) -> str:
    return f"{value:.1f}" if value < 100 else f"{value:,.0f}"


def _x(value: float) -> str:
    return f"×{value:.2f}"


def _mib(kb: float) -> str:
    return f"{kb / 1024:.1f}"


def _table(header: list[str], rows: list[list[str]], align: str = "") -> list[str]:
    align = align or "l" * len(header)
    marks = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(marks) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _fig(cell: Cell, server: str, attr: str, fmt: Callable[[float], str]) -> str:
    """The median; for the service (either backend) also its ratio against the ceiling."""
    text = fmt(cell.med(server, attr))
    return f"{text} ({_x(cell.ratio(attr, server))})" if server != "ceiling" else text


def results_table(all_cells: list[Cell]) -> list[str]:
    header = [
        "payload",
        "conc.",
        "server",
        "req/s (min–max)",
        "alerts/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "non-2xx (sock. err), all rounds",
        "CPU ms/req",
        "peak RSS MiB",
    ]
    rows = []
    for cell in all_cells:
        for server in cell.servers():
            low, high = cell.spread(server, "rps")
            rows.append(
                [
                    cell.payload.key,
                    str(cell.concurrency),
                    SERVER_LABELS[server],
                    _fig(cell, server, "rps", _n) + f" ({_n(low)}–{_n(high)})",
                    _fig(cell, server, "alerts_per_s", _n),
                    _fig(cell, server, "p50_ms", _ms),
                    _fig(cell, server, "p95_ms", _ms),
                    _fig(cell, server, "p99_ms", _ms),
                    f"{cell.total(server, 'status_errors')} "
                    f"({cell.total(server, 'socket_errors')})",
                    _fig(cell, server, "cpu_ms_per_request", lambda v: f"{v:.2f}"),
                    _fig(cell, server, "peak_rss_kb", _mib),
                ]
            )
    return _table(header, rows, "llllrrrrrrr")


def targets(all_cells: list[Cell], runs: list[Run]) -> tuple[list[str], list[str]]:
    """The four targets from the issue: table lines and one-line verdicts for the console."""
    one = [c for c in all_cells if c.payload.alerts == 1]
    rows, verdicts = [], []

    def add(name: str, measured: str, ok: bool) -> None:
        rows.append([name, measured, MET if ok else NOT_MET])
        verdicts.append(f"{'met    ' if ok else 'NOT met'}  {name}: {measured}")

    ok = bool(one) and all(c.med("service", "rps") >= TARGET_RPS for c in one)
    measured = "; ".join(
        f"c{c.concurrency}: {_n(c.med('service', 'rps'))} (ceiling {_n(c.med('ceiling', 'rps'))})"
        for c in one
    )
    add(f"≥ {TARGET_RPS:,} webhook req/s, 1-alert payloads", measured, ok)

    worst = min(all_cells, key=lambda c: c.ratio("rps"))
    measured = "; ".join(
        f"{c.payload.key} c{c.concurrency}: {_x(c.ratio('rps'))}" for c in all_cells
    )
    add(
        f"≥ {TARGET_RATIO:.0%} of the ceiling (req/s, every cell)",
        measured + f" (worst {worst.payload.key} c{worst.concurrency})",
        all(c.ratio("rps") >= TARGET_RATIO for c in all_cells),
    )

    high = [c for c in all_cells if c.concurrency == TARGET_P95_CONCURRENCY]
    measured = "; ".join(
        f"{c.payload.key}: {_ms(c.med('service', 'p95_ms'))} ms "
        f"(ceiling {_ms(c.med('ceiling', 'p95_ms'))} ms)"
        for c in high
    )
    add(
        f"p95 < {TARGET_P95_MS:g} ms at concurrency {TARGET_P95_CONCURRENCY}",
        measured or f"concurrency {TARGET_P95_CONCURRENCY} not measured",
        bool(high) and all(c.med("service", "p95_ms") < TARGET_P95_MS for c in high),
    )

    peak = max(r.peak_rss_kb for r in runs if r.server != "ceiling")
    ceil_peak = max(r.peak_rss_kb for r in runs if r.server == "ceiling")
    add(
        f"peak RSS < {TARGET_RSS_MIB} MB",
        f"{_mib(peak)} MiB, the highest VmHWM of all service runs, either backend (ceiling "
        f"{_mib(ceil_peak)} MiB)",
        peak < TARGET_RSS_MIB * 1024,
    )

    pg_cells = [c for c in all_cells if c.postgres]
    if pg_cells:
        measured = "; ".join(
            f"{c.payload.key} c{c.concurrency}: PostgreSQL {_n(c.med('postgres', 'alerts_per_s'))}"
            f" vs SQLite {_n(c.med('service', 'alerts_per_s'))} alerts/s "
            f"({_x(c.ratio('alerts_per_s', 'postgres', 'service'))})"
            for c in pg_cells
        )
        add(
            f"PostgreSQL within {100 * (1 - TARGET_PG_VS_SQLITE):.0f} % of SQLite "
            "(alerts/s, same round)",
            measured,
            all(
                c.ratio("alerts_per_s", "postgres", "service") >= TARGET_PG_VS_SQLITE
                for c in pg_cells
            ),
        )
    ten = [c for c in all_cells if c.payload.alerts == 10]
    if ten:
        backends = [s for s in ("service", "postgres") if any(getattr(c, s) for c in ten)]
        measured = "; ".join(
            f"{c.payload.key} c{c.concurrency}: "
            + ", ".join(f"{BACKEND[s]} {_n(c.med(s, 'alerts_per_s'))}" for s in backends)
            + f" (ceiling {_n(c.med('ceiling', 'alerts_per_s'))})"
            for c in ten
        )
        add(
            f"≥ {TARGET_ALERTS_PER_S:,} alerts/s with 10-alert payloads (each backend)",
            measured,
            all(
                c.med(s, "alerts_per_s") >= TARGET_ALERTS_PER_S
                for c in ten
                for s in backends
                if getattr(c, s)
            ),
        )
    return _table(["target (from the issue)", "measured (medians)", "verdict"], rows), verdicts


def durability(runs: list[Run]) -> list[str]:
    rows = []
    for run in runs:
        if run.db is None:
            continue
        ok_requests = run.result.ok + (run.warmup.ok if run.warmup else 0)
        rows.append(
            [
                str(run.round),
                BACKEND[run.server],
                run.payload.key,
                str(run.concurrency),
                _n(ok_requests),
                _n(run.db.ok_alerts),
                _n(run.db.notify_sum),
                _n(run.db.rows),
                _n(run.db.notify_sum - run.db.ok_alerts),
                _n(run.db.non_ok_alerts),
                "ok" if run.db.passed else "**MISMATCH**",
            ]
        )
    header = [
        "round",
        "backend",
        "payload",
        "conc.",
        "2xx responses",
        "alerts in 2xx",
        "sum(notify_count)",
        "rows",
        "surplus",
        "alerts in non-2xx",
        "check",
    ]
    return _table(header, rows, "llllrrrrrrl")


def profile_sections(profiles: list[tuple[str, Profile]] | None) -> list[str]:
    if profiles is None:
        return [
            "Not run (py-spy is not installed; `.venv/bin/pip install py-spy`, then "
            "`make bench` profiles automatically, or pass `--profile`)."
        ]
    lines = [
        "One extra, untimed service run per payload, sampled with py-spy (all threads; py-spy "
        "drops most idle samples, a few waits such as epoll and the thread cache still show). "
        "Sampling slows the service, so only the shares matter.",
        "",
        "*Layer* charges each sample once, to the innermost frame that belongs to a library or "
        "to the service (trio and stdlib frames are charged to the library frame that called "
        "them, e.g. Hypercorn restarting a task per request counts as Hypercorn); SQLite's C "
        "code shows as the Python frame that called it. *Inclusive* counts a component when "
        "any frame of the sample's task stack (below trio's run loop) is in it: Quart's "
        "inclusive share contains the service code it calls and the Hypercorn send path under "
        "it.",
    ]
    for label, prof in profiles:
        lines += ["", f"#### {label}", "", *profile_section(prof)]
    return lines


def profile_section(prof: Profile) -> list[str]:
    if prof.error or not prof.samples:
        return [f"py-spy run failed: {prof.error or 'no samples'}"]
    lines = [
        f"`{prof.command}`: {prof.samples:,} samples; {_n(prof.rps)} req/s while sampled.",
        "",
    ]
    rows = [
        [name, f"{100 * count / prof.samples:.0f} %"] for name, count in prof.by_layer.most_common()
    ]
    lines += _table(["layer (each sample once)", "share"], rows, "lr")
    lines += [""]
    rows = [
        [name, f"{100 * count / prof.samples:.0f} %"]
        for name, count in prof.incl_by_component.most_common()
    ]
    lines += _table(["component (inclusive)", "share"], rows, "lr")
    lines += ["", "Hottest functions (self):", ""]
    rows = [
        [f"`{name}`", f"{100 * count / prof.samples:.1f} %"]
        for name, count in prof.self_by_function.most_common(12)
    ]
    lines += _table(["function (file)", "self"], rows, "lr")
    lines += ["", "Service code, inclusive:", ""]
    rows = [
        [f"`{name}`", f"{100 * count / prof.samples:.1f} %"]
        for name, count in prof.incl_by_app_function.most_common(10)
    ]
    lines += _table(["function (file)", "inclusive"], rows, "lr")
    return lines


def internals(all_cells: list[Cell]) -> list[str]:
    header = [
        "backend",
        "payload",
        "conc.",
        "group commits/s",
        "alerts per commit",
        "commit ms (mean)",
        "writer busy",
        "new / repeat states",
        "fingerprint mismatches",
    ]
    rows = []
    for cell, server in [(c, s) for c in all_cells for s in ("service", "postgres")]:
        got = [r.internals for r in getattr(cell, server) if r.internals is not None]
        if not got:
            continue
        rows.append(
            [
                BACKEND[server],
                cell.payload.key,
                str(cell.concurrency),
                _n(median(i.commits / i.wall_s for i in got if i.wall_s)),
                f"{median(i.mean_batch for i in got):.1f}",
                f"{median(i.mean_commit_ms for i in got):.2f}",
                f"{100 * median(i.writer_busy for i in got):.0f} %",
                f"{_n(sum(i.new_states for i in got))} / {_n(sum(i.repeat_states for i in got))}",
                str(sum(i.fingerprint_mismatches for i in got)),
            ]
        )
    return _table(header, rows, "lllrrrrrr")


def cost_notes(all_cells: list[Cell]) -> list[str]:
    """Server CPU per request: what the service adds to the bare server, per request and alert."""
    lines = []
    for cell in all_cells:
        svc, ceil = (
            cell.med("service", "cpu_ms_per_request"),
            cell.med("ceiling", "cpu_ms_per_request"),
        )
        lines.append(
            f"- {cell.payload.key} c{cell.concurrency}: service {svc:.2f} ms of CPU per request, "
            f"bare server {ceil:.2f} ms: the service adds {svc - ceil:.2f} ms."
        )
        if cell.postgres:
            pg = cell.med("postgres", "cpu_ms_per_request")
            db = median(1000 * r.db_cpu_s / r.result.ok for r in cell.postgres if r.result.ok)
            got = [r.internals for r in cell.postgres if r.internals is not None]
            busy = median(
                r.cpu_s / r.result.duration_s for r in cell.postgres if r.result.duration_s
            )
            writer = (
                f"; the process ran at {100 * busy:.0f} % of a core while its storage writer "
                f"was busy {100 * median(i.writer_busy for i in got):.0f} % of the time "
                f"({median(i.mean_commit_ms for i in got):.1f} ms per group commit of "
                f"{median(i.mean_batch for i in got):.0f} alerts on average)"
                if got
                else ""
            )
            lines.append(
                f"- {cell.payload.key} c{cell.concurrency}, the service on PostgreSQL: "
                f"{pg:.2f} ms of the service process's CPU per request ({pg - svc:+.2f} ms "
                f"against SQLite), plus {db:.2f} ms in the PostgreSQL server's processes"
                f"{writer}."
            )
    by = {(c.payload.alerts, c.concurrency): c for c in all_cells}
    for (alerts, conc), cell in by.items():
        single = by.get((1, conc))
        if alerts > 1 and single is not None:
            extra = cell.med("service", "cpu_ms_per_request") - single.med(
                "service", "cpu_ms_per_request"
            )
            lines.append(
                f"- c{conc}: each alert beyond the first costs about "
                f"{extra / (alerts - 1):.2f} ms of CPU ({cell.payload.key}, insert path, against "
                "1-alert, mostly repeats)."
            )
    return lines


def appendix(runs: list[Run]) -> list[str]:
    header = [
        "round",
        "server",
        "payload",
        "conc.",
        "req/s",
        "p50",
        "p95",
        "p99",
        "max ms",
        "non-2xx",
        "sock. err / timeouts",
        "server CPU",
        "wrk CPU",
        "all CPUs busy",
        "steal",
        "peak RSS MiB",
        "start s",
        "stop s",
        "exit",
    ]
    rows = []
    for r in runs:
        res = r.result
        rows.append(
            [
                str(r.round),
                r.server,
                r.payload.key,
                str(r.concurrency),
                _n(res.rps),
                _ms(res.p50_ms),
                _ms(res.p95_ms),
                _ms(res.p99_ms),
                _ms(res.max_ms),
                str(res.status_errors),
                f"{res.socket_errors} / {res.timeouts}",
                f"{100 * r.cpu_s / res.duration_s:.0f} %",
                f"{100 * r.wrk_cpu_s / res.duration_s:.0f} %",
                f"{100 * r.machine_busy:.0f} %",
                f"{100 * r.steal:.1f} %",
                _mib(r.peak_rss_kb),
                f"{r.startup_s:.2f}",
                f"{r.stop_s:.2f}",
                str(r.returncode),
            ]
        )
    return _table(header, rows, "llllrrrrrrrrrrrrrrr")


# -- the document --------------------------------------------------------------------------------


def render(
    runs: list[Run],
    *,
    payloads: list[Payload],
    args: argparse.Namespace,
    command: str,
    facts: dict[str, str],
    wrk_example: list[str],
    profiles: list[tuple[str, Profile]] | None,
    elapsed_s: float,
) -> list[str]:
    """The ingest section of bench/RESULTS.md."""
    all_cells = cells(runs)
    target_lines, _ = targets(all_cells, runs)
    checks = [r.db for r in runs if r.db is not None]
    ok_alerts = sum(c.ok_alerts for c in checks)
    notify_sum = sum(c.notify_sum for c in checks)
    failed = [c for c in checks if not c.passed]
    wrk_shown = shlex.join(["wrk", *wrk_example[1:]]).replace(str(ROOT) + "/", "")
    payload_lines = [
        f"- **{p.key}** ({len(p.body):,} bytes): {p.description}. Mix: {p.mix()}." for p in payloads
    ]
    c_list = ", ".join(str(c) for c in args.concurrency)
    ceiling_below = [
        c for c in all_cells if c.payload.alerts == 1 and c.med("ceiling", "rps") < TARGET_RPS
    ]
    pg_runs = [r for r in runs if r.server == "postgres"]
    pg_keys = sorted({r.payload.key for r in pg_runs})
    lines = [
        "## Webhook ingest: the service on SQLite and on PostgreSQL against the bare server",
        "",
        f"Generated {facts['date']} by `{command}` (from the repository root) in "
        f"{elapsed_s / 60:.1f} min.",
        "",
        "### Machine",
        "",
        f"- nproc: {facts['nproc']}; CPU: {facts['cpu']}; {facts['kernel']}",
        f"- Python: {facts['python']} ({sys.executable.replace(str(ROOT) + '/', '')})",
        f"- Packages: {facts['packages']}; SQLite {facts['sqlite']}",
        f"- Code: commit {facts['git']}",
        f"- Load average when the bench started: {facts['loadavg']}. The box is shared: other "
        "processes may run during the bench (see *all CPUs busy* and *steal* in the appendix).",
        f"- Databases: a fresh SQLite file per service run in {facts['db_folder']}"
        + (
            f"; a fresh database per PostgreSQL run on one throwaway {facts['postgres']} server "
            "on the same machine (its data under /tmp, same disk)"
            if "postgres" in facts
            else ""
        ),
        "",
        "### Method",
        "",
        f"- Load tool: **{facts['wrk']}**, `-t{args.threads}` (one load thread; wrk shares the "
        f"{facts['nproc'].split()[0]} cores with the server, about one core for the server and one "
        f"for wrk), concurrency (connections) {c_list}, **{args.warmup:g} s warm-up + "
        f"{args.duration:g} s measured** per run, request timeout {args.timeout:g} s, "
        f"script `bench/post.lua`. Example: `{wrk_shown}`.",
        "- **Ceiling**: `python -m bench.ceiling` — a bare ASGI app on Hypercorn's trio worker "
        "with the service's Hypercorn config (checked attribute for attribute against "
        "`hypercorn_config()`: keep_alive_max_requests 100,000, no server header, no access "
        "log). It reads the body and answers 200 with a 64-byte JSON body.",
        "- **Service**: `alert-history serve` with `DATABASE_URL=sqlite:///<temp>/<run>.db`, "
        "`HOST=127.0.0.1`, `PORT=<free port>`, `LOG_LEVEL=WARNING`; POST /webhook answers 200 "
        "only after the group commit (WAL, synchronous=FULL).",
        *(
            [
                "- **Service on PostgreSQL** (payloads: "
                + ", ".join(pg_keys)
                + "): the same command with `DATABASE_URL=postgresql://postgres@127.0.0.1:PORT/"
                "<fresh database>`; the group commit is one autocommit statement (the events' "
                "`INSERT ... ON CONFLICT` and the current-state upsert as data-modifying CTEs, "
                "one binary array per column) through psycopg's sync pool in worker threads, "
                "synchronous_commit on. The database is dropped after the run.",
            ]
            if pg_runs
            else []
        ),
        "- Every run starts a fresh process (and database), waits for GET /readyz = 200, warms "
        "up, measures, reads VmHWM from /proc/<pid>/status, then stops it with SIGTERM and waits.",
        f"- Rounds: {args.rounds}; in each round every cell (payload × concurrency) runs the "
        "ceiling, the service on SQLite and, where listed, on PostgreSQL back to back, "
        "alternating the order (odd rounds ceiling first, even rounds ceiling last). Figures are "
        "medians over the rounds.",
        "- Payloads (Alertmanager v4 webhook bodies):",
        *("  " + line for line in payload_lines),
        "",
        "### How to read",
        "",
        "- *req/s* counts 2xx responses per second; *alerts/s* = req/s × alerts per body. "
        "The ceiling does no work per alert, so its alerts/s is what the bare server could carry.",
        "- *(×r)* on a service figure = service ÷ ceiling, from the same round and cell (median of "
        "the per-round ratios). ×0.60 on req/s: the service reaches 60 % of the bare server; ×2.00 "
        "on a latency: twice the bare server's latency.",
        "- Latency is wrk's, request written to response read, per connection in a closed loop "
        "(wrk, not wrk2: no coordinated-omission correction). With a closed loop latency ≈ "
        "concurrency ÷ throughput, so at c64 a slower server shows up as a higher p50 too.",
        "- *CPU ms/req* is the server process's CPU time (user + system, all threads) per 2xx "
        "response during the measured window; it is the figure least disturbed by other load on "
        "the box. The servers are single-process and CPU-bound on one core (see *server CPU* in "
        "the appendix), so req/s ≈ 1000 ÷ CPU ms/req.",
        "- Absolute numbers are this 2-core machine's, with wrk on the same cores; compare ratios.",
        "",
        f"### Results (medians, rounds: {args.rounds})",
        "",
        *results_table(all_cells),
        "",
        "### Targets",
        "",
        *target_lines,
        "",
    ]
    if ceiling_below:
        lines += [
            f"Note: the bare Hypercorn trio server itself measured below {TARGET_RPS:,} req/s "
            "on this machine in this run ("
            + ", ".join(f"c{c.concurrency}: {_n(c.med('ceiling', 'rps'))}" for c in ceiling_below)
            + f"), so the {TARGET_RPS:,} req/s target cannot be met here by any app on this "
            "server stack; on this box the ratio target is the meaningful one.",
            "",
        ]
    high = [c for c in all_cells if c.concurrency == TARGET_P95_CONCURRENCY]
    slow_ceiling = [c for c in high if c.med("ceiling", "p95_ms") >= TARGET_P95_MS]
    if slow_ceiling:
        lines += [
            f"Note: at concurrency {TARGET_P95_CONCURRENCY} the bare server's own p95 is already "
            f"≥ {TARGET_P95_MS:g} ms ("
            + ", ".join(
                f"{c.payload.key}: {_ms(c.med('ceiling', 'p95_ms'))} ms" for c in slow_ceiling
            )
            + "). In a closed loop every connection waits its turn on the one busy core "
            f"(p50 ≈ {TARGET_P95_CONCURRENCY} ÷ req/s), so a p95 under {TARGET_P95_MS:g} ms "
            f"needs well over {_n(REQUIRED_RPS)} req/s ({TARGET_P95_CONCURRENCY} ÷ "
            f"{TARGET_P95_MS / 1000:g} s) from a single process on this machine.",
            "",
        ]
    ten = [c for c in all_cells if c.payload.alerts == 10]
    if ten:
        lines += [
            f"Note: the ceiling for {TARGET_ALERTS_PER_S:,} alerts/s with 10-alert bodies is "
            "the bare server's req/s × 10 ("
            + ", ".join(f"c{c.concurrency}: {_n(c.med('ceiling', 'alerts_per_s'))}" for c in ten)
            + f" on this machine): the service reaches {TARGET_ALERTS_PER_S:,} only at ×"
            + "/".join(f"{TARGET_ALERTS_PER_S / c.med('ceiling', 'alerts_per_s'):.2f}" for c in ten)
            + " of the bare server or more, while parsing and storing 10 alerts per request "
            "on the same core as the HTTP server.",
            "",
        ]
    lines += [
        "### Where the CPU goes per request",
        "",
        "Both servers are CPU-bound on one core (appendix: *server CPU* ≈ 100 %), so CPU per "
        "request sets the throughput:",
        "",
        *cost_notes(all_cells),
        "",
        "### Service internals (its /metrics after each run, medians)",
        "",
        "*writer busy*: share of the run's wall time (warm-up included) the storage writer spent "
        "in group commits, measured on the trio side (thread hand-off included); near 100 % "
        "would mean the database is the bottleneck. *Fingerprint mismatches* must be 0 (the "
        "10-alert body carries fingerprints computed like Alertmanager's).",
        "",
        *internals(all_cells),
        "",
        "### Durability cross-check",
        "",
        "After each service run stops (SIGTERM, drained), its database is read: every alert "
        "in a 2xx response (warm-up included) must be counted in `sum(notify_count)` over "
        "`alert_events` (a repeat notification adds 1 to its row, a new episode adds a row). "
        "A *surplus* is allowed: requests in flight when wrk stopped were committed but not "
        "counted by wrk.",
        "",
        f"Total: {_n(ok_alerts)} alerts in 2xx responses, sum(notify_count) {_n(notify_sum)}: "
        + (
            "**consistent** in every run."
            if not failed
            else f"**{len(failed)} run(s) stored fewer than they acknowledged.**"
        ),
        "",
        *durability(runs),
        "",
        "### Where the time goes (py-spy, the service on SQLite)",
        "",
        *profile_sections(profiles),
        "",
        "### Appendix: every run",
        "",
        "*server CPU*: the server process's CPU over the measured window (100 % = one core); "
        "*wrk CPU* likewise for wrk; *all CPUs busy*: the whole machine (all processes); *stop s*: "
        "SIGTERM to exit.",
        "",
        *appendix(runs),
        "",
    ]
    return lines


def console_summary(runs: list[Run], args: argparse.Namespace) -> str:
    all_cells = cells(runs)
    out = [f"\nmedians, rounds: {args.rounds} (service ×ceiling):"]
    for c in all_cells:
        out.append(
            f"  {c.payload.key:8s} c{c.concurrency:<3d} ceiling {c.med('ceiling', 'rps'):7.0f} "
            f"req/s p95 {c.med('ceiling', 'p95_ms'):6.1f} ms | service "
            f"{c.med('service', 'rps'):7.0f} req/s ({_x(c.ratio('rps'))}) "
            f"{c.med('service', 'alerts_per_s'):7.0f} alerts/s p95 "
            f"{c.med('service', 'p95_ms'):6.1f} ms ({_x(c.ratio('p95_ms'))})"
        )
        if c.postgres:
            out.append(
                f"  {'':8s} {'':4s} on PostgreSQL: {c.med('postgres', 'rps'):7.0f} req/s "
                f"({_x(c.ratio('rps', 'postgres'))}) "
                f"{c.med('postgres', 'alerts_per_s'):7.0f} alerts/s p95 "
                f"{c.med('postgres', 'p95_ms'):6.1f} ms; ÷ SQLite "
                f"{_x(c.ratio('alerts_per_s', 'postgres', 'service'))}"
            )
    _, verdicts = targets(all_cells, runs)
    return "\n".join([*out, "targets:", *("  " + v for v in verdicts)])


# -- the document: sections between markers, so that `--only` rewrites just its own -----------

TITLE = "# alert-history benchmark"
SECTION_ORDER = ("ingest", "history", "pgdriver", "classify")
_SECTION = re.compile(r"<!-- bench:(\w+) -->\n(.*?)<!-- /bench:\1 -->", re.S)


def sections_of(text: str) -> dict[str, str]:
    """The sections of an existing RESULTS.md, by name (markers included in neither)."""
    return {m.group(1): m.group(2) for m in _SECTION.finditer(text)}


def assemble(new: dict[str, list[str]], previous: str) -> str:
    """RESULTS.md: the sections just run, and the others as `previous` had them."""
    kept = sections_of(previous)
    body = {name: "\n".join(lines).rstrip("\n") + "\n" for name, lines in new.items()}
    out = [
        TITLE,
        "",
        "Written by `python -m bench` (`make bench` runs every section). Each section says when "
        "and by which command it was produced: `python -m bench --only "
        "ingest|history|pgdriver|classify` (comma-separated) rewrites only those sections and "
        "keeps the others as they were.",
        "",
        "- [Webhook ingest: SQLite, PostgreSQL and the bare server]"
        "(#webhook-ingest-the-service-on-sqlite-and-on-postgresql-against-the-bare-server)",
        "- [History at scale](#history-at-scale-get-history-latency-on-a-loaded-database)",
        "- [psycopg driver choice]"
        "(#psycopg-driver-choice-sync-pool-in-threads-vs-asyncconnectionpool-under-trio-asyncio)",
        "- [Classification](#classification-llm-throughput-cache-hits-webhook-cost)",
        "",
    ]
    for name in SECTION_ORDER:
        text = body.get(name, kept.get(name))
        if text is None:
            text = f"*Section `{name}`: not run yet (`python -m bench --only {name}`).*"
        out += [f"<!-- bench:{name} -->", text.rstrip("\n"), "", f"<!-- /bench:{name} -->", ""]
    return "\n".join(out)
