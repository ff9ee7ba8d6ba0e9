"""Classification (#5): LLM throughput, cache hits, and what classifying costs a webhook.

The stand-in LLM (`tests/llm_server.py`, its own process) answers every request after 200 ms.

- **LLM classifications/s**: the classifier actor with 16 calls in flight, over alerts stored
  in SQLite, fed through its fast path; classifications stored per second of wall time.
- **Cache hits/s**: `classify_stored` on already classified alerts from 1 and 16 tasks, the
  in-process cache, and Redis when `redis-server` is installed (sync client in worker threads).
- **Webhook p95**: the service (`python -m alert_history serve`) with classification off, then
  on (enriched mode, every alert a new fingerprint, so every webhook feeds the classifier),
  alternating in pairs (off/on, then on/off, ...); each run posts 1-alert webhooks at a steady
  100/s from 8 concurrent clients. A p95 of one run varies a lot on a shared 2-core machine, so
  there are `--classify-pairs` pairs (6), and the table states the spread of the off
  runs (what off-vs-off varies), the on/off ratio of each pair, the p95 of all runs of a kind
  pooled, and the service's CPU time per webhook (its own utime + stime, less noisy).

`python -m bench.classify [--pairs N] [--requests N]` runs only the webhook pairs and prints
them (no RESULTS.md), for quick A/B comparisons.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from statistics import median

import httpx
import trio

from bench import machine
from bench.servers import ROOT

LLM_DELAY = 0.2
IN_FLIGHT = 16
RATE = 100  # webhooks per second in the p95 runs
WORKER_NICE = 10  # LLM_WORKER_NICE's default
PAIRS = 6  # off/on webhook run pairs (`--classify-pairs`, `--pairs`)
TARGETS = {"llm_per_s": 60.0, "cache_per_s": 5000.0, "p95_ratio": 1.10}


@dataclass(frozen=True)
class ClassifyResults:
    llm_per_s: list[float]
    cache_per_s: dict[str, float]
    p95_ms: dict[str, list[float]]  # off / on -> one p95 per run, in pair order
    pooled_p95_ms: dict[str, float]  # off / on -> the p95 of all their runs' latencies
    cpu_ms: dict[str, list[float]]  # off / on -> service CPU ms per webhook, per run
    classified_per_s: dict[str, list[float]]  # on -> LLM classifications/s during each run
    requests_per_run: int
    at: str
    command: str
    machine: str


@contextmanager
def _process(argv: list[str], env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def stand_in_llm() -> Iterator[str]:
    # niced: a real LLM proxy runs elsewhere; here it shares the 2 cores with the service
    argv = ["nice", "-n", "19", sys.executable, "-m", "tests.llm_server", "--delay", str(LLM_DELAY)]
    with _process(argv) as proc:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()


@contextmanager
def redis_server(tmp: Path) -> Iterator[str | None]:
    binary = "/usr/bin/redis-server"
    if not Path(binary).exists():
        yield None
        return
    from tests.pg import free_port

    port = free_port()
    with _process([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                   "--appendonly", "no", "--dir", str(tmp)]):  # fmt: skip
        url = f"redis://127.0.0.1:{port}/0"
        import redis

        client = redis.Redis.from_url(url)
        for _ in range(200):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        client.close()
        yield url


async def _llm_and_cache(llm_url: str, tmp: Path, alerts: int, redis_url: str | None) -> tuple[
    float, dict[str, float]
]:  # fmt: skip
    from tests.test_classifier import Results, event

    from alert_history.actors import ClassificationService, classifier
    from alert_history.domain.breaker import CircuitBreaker
    from alert_history.kv import ClassificationCache, RedisKV
    from alert_history.llm import LLMWorker, WorkerConfig
    from alert_history.storage import open_storage
    from alert_history.telemetry import Metrics

    storage = await open_storage(f"sqlite:///{tmp}/classify-{time.monotonic_ns()}.db")
    results = Results()
    try:
        async with trio.open_nursery() as process:
            # the LLM calls in their worker process, as the service makes them by default
            llm = LLMWorker(
                WorkerConfig(base_url=llm_url, api_key="sk", model="gpt-4", timeout=30,
                             max_retries=0, concurrency=IN_FLIGHT, nice=WORKER_NICE)
            )  # fmt: skip
            await process.start(llm.run)

            def service(cache: ClassificationCache) -> ClassificationService:
                return ClassificationService(
                    storage=storage, llm=llm, cache=cache, breaker=CircuitBreaker(),
                    concurrency=IN_FLIGHT, timeout=30, metrics=Metrics(),
                    wall_clock_ns=time.time_ns, on_result=results,
                )  # fmt: skip

            memory = ClassificationCache(redis=None, ttl=3600, max_size=alerts * 2,
                                         clock=trio.current_time)  # fmt: skip
            svc = service(memory)
            fps = [f"bench{i:06d}" for i in range(alerts)]
            await storage.write_events([event(fp) for fp in fps])
            send, recv = trio.open_memory_channel[str](alerts)
            async with trio.open_nursery() as nursery:
                await nursery.start(
                    lambda task_status: classifier.run(
                        recv, service=svc, mode=_enriched, concurrency=IN_FLIGHT,
                        poll_interval=3600, page_size=100, task_status=task_status,
                    )
                )  # fmt: skip
                started = time.perf_counter()
                classifier.feeder(send, svc.metrics)([event(fp) for fp in fps])
                await results.wait_for(lambda items: len(items) >= alerts)
                llm_rate = alerts / (time.perf_counter() - started)
                nursery.cancel_scope.cancel()

            caches = {"in-process": svc}
            if redis_url is not None:
                for name, local_ttl in (("Redis round trip", 1e-9), ("Redis + 5 s local", 5.0)):
                    redis_cache = ClassificationCache(
                        redis=RedisKV(redis_url), ttl=3600, max_size=alerts * 2,
                        clock=trio.current_time, local_ttl=local_ttl,
                    )  # fmt: skip
                    for item in results.items:
                        await redis_cache.put(item)
                    caches[name] = service(redis_cache)
            cache_rates = {}
            for name, svc_ in caches.items():
                for tasks in (1, IN_FLIGHT):
                    cache_rates[
                        f"{name}, {tasks} task{'s' if tasks > 1 else ''}"
                    ] = await _cache_hits(svc_, fps, tasks)
            process.cancel_scope.cancel()
        return llm_rate, cache_rates
    finally:
        await storage.aclose()


async def _cache_hits(svc: object, fps: list[str], tasks: int, seconds: float = 2.0) -> float:
    """`classify_stored` calls per second on classified alerts (all cache hits)."""
    calls = 0
    started = time.perf_counter()

    async def loop(offset: int) -> None:
        nonlocal calls
        while time.perf_counter() - started < seconds:
            for fp in fps[offset : offset + 100]:
                found = await svc.classify_stored(fp)  # type: ignore[attr-defined]
                assert found is not None and found[1], "expected a cache hit"
                calls += 1

    async with trio.open_nursery() as nursery:
        for i in range(tasks):
            nursery.start_soon(loop, (i * 100) % max(1, len(fps) - 100))
    return calls / (time.perf_counter() - started)


async def _enriched() -> str:
    return "enriched"


async def _webhook_latencies(url: str, requests: int, concurrency: int, tag: str) -> list[float]:
    """Sorted latencies (s) of `requests` webhooks sent at RATE per second from `concurrency`
    clients."""
    from tests.support import alert, webhook

    latencies: list[float] = []
    bodies = iter(
        (i, json.dumps(webhook(alert(f"Bench{tag}", fingerprint=f"{tag}{i:08x}"))).encode())
        for i in range(requests)
    )
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        start = trio.current_time()

        async def worker() -> None:
            for i, body in bodies:
                await trio.sleep_until(start + i / RATE)  # paced: a steady Alertmanager load
                started = time.perf_counter()
                response = await client.post(
                    "/webhook", content=body, headers={"content-type": "application/json"}
                )
                latencies.append(time.perf_counter() - started)
                assert response.status_code == 200, response.text

        async with trio.open_nursery() as nursery:
            for _ in range(concurrency):
                nursery.start_soon(worker)
    latencies.sort()
    return latencies


def _p95_ms(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return ordered[max(0, int(len(ordered) * 0.95) - 1)] * 1000


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) process `pid` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _serve(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "alert_history", "serve"],
        cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _served_url(proc: subprocess.Popen[str]) -> str:
    assert proc.stderr is not None
    for line in proc.stderr:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("msg") == "serving":
            # keep draining the log, or the service blocks on a full pipe
            threading.Thread(target=proc.stderr.read, daemon=True).start()
            return str(entry["urls"][0]).replace("0.0.0.0", "127.0.0.1")
    raise RuntimeError("the service exited before serving")


@dataclass
class _Webhooks:
    p95_ms: dict[str, list[float]]
    pooled_p95_ms: dict[str, float]
    cpu_ms: dict[str, list[float]]
    classified_per_s: dict[str, list[float]]


ON_OFF = {"off": {"LLM_ENABLED": "false"}, "on": {"LLM_ENABLED": "true"}}


def _webhook_pairs(
    llm_url: str, tmp: Path, pairs: int, requests: int, kinds: dict[str, dict[str, str]] = ON_OFF
) -> _Webhooks:
    """A run of each kind per round, the order rotating (off/on, on/off, ...); a fresh service
    and database each. `kinds`: name -> environment of the service."""
    names = list(kinds)
    p95: dict[str, list[float]] = {k: [] for k in names}
    pooled: dict[str, list[float]] = {k: [] for k in names}
    cpu: dict[str, list[float]] = {k: [] for k in names}
    done: dict[str, list[float]] = {k: [] for k in names if kinds[k]["LLM_ENABLED"] == "true"}
    for pair in range(pairs):
        shift = pair % len(names)
        for kind in names[shift:] + names[:shift]:
            env = {
                "DATABASE_URL": f"sqlite:///{tmp}/svc-{pair}-{kind}.db", "HOST": "127.0.0.1",
                "PORT": "0", "LOG_LEVEL": "INFO", "LOG_JSON": "true", "LLM_PROXY_URL": llm_url,
                "LLM_API_KEY": "sk", "LLM_CONCURRENCY": str(IN_FLIGHT), **kinds[kind],
            }  # fmt: skip
            proc = _serve(env)
            try:
                url = _served_url(proc)
                trio.run(_webhook_latencies, url, 100, 8, f"w{pair}{kind}")  # warm-up
                cpu_before, started = _cpu_s(proc.pid), time.time()
                llm_before = _llm_calls(url) if kind in done else 0
                latencies = trio.run(_webhook_latencies, url, requests, 8, f"m{pair}{kind}")
                cpu[kind].append((_cpu_s(proc.pid) - cpu_before) * 1000 / requests)
                if kind in done:
                    done[kind].append((_llm_calls(url) - llm_before) / (time.time() - started))
            finally:
                proc.terminate()
                proc.wait(timeout=30)
            p95[kind].append(_p95_ms(latencies))
            pooled[kind] += latencies
            classified = f", {done[kind][-1]:.1f} classified/s" if kind in done else ""
            print(
                f"bench: classify pair {pair + 1}/{pairs} {kind}: p95 {p95[kind][-1]:.1f} ms, "
                f"service CPU {cpu[kind][-1]:.2f} ms/webhook{classified}",
                flush=True,
            )
    return _Webhooks(p95, {k: _p95_ms(v) for k, v in pooled.items()}, cpu, done)


def _llm_calls(url: str) -> int:
    """LLM classifications the service has stored so far (successes, not fallbacks)."""
    stats = httpx.get(f"{url}/classification/stats", timeout=10).json()
    return int(stats["llm_requests"]) - int(stats["errors"])


def run(args: argparse.Namespace, *, command: str) -> ClassifyResults:
    rounds = args.classify_rounds
    requests = args.classify_requests
    tmp = Path(tempfile.mkdtemp(prefix="alert-history-bench-classify-"))
    cpu_before = machine.cpu_times()
    llm_rates: list[float] = []
    cache_rates: dict[str, list[float]] = {}
    with stand_in_llm() as llm_url, redis_server(tmp) as redis_url:
        for rnd in range(rounds):
            print(f"bench: classify round {rnd + 1}/{rounds}: LLM and cache", flush=True)
            rate, caches = trio.run(_llm_and_cache, llm_url, tmp, args.classify_alerts, redis_url)
            llm_rates.append(rate)
            for name, value in caches.items():
                cache_rates.setdefault(name, []).append(value)
        hooks = _webhook_pairs(llm_url, tmp, args.classify_pairs, requests)
    return ClassifyResults(
        llm_per_s=llm_rates,
        cache_per_s={name: median(values) for name, values in cache_rates.items()},
        p95_ms=hooks.p95_ms,
        pooled_p95_ms=hooks.pooled_p95_ms,
        cpu_ms=hooks.cpu_ms,
        classified_per_s=hooks.classified_per_s,
        requests_per_run=requests,
        at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        command=command,
        machine=(
            f"All CPUs were {machine.busy_and_steal(cpu_before, machine.cpu_times())[0]:.0%} "
            f"busy during the section (load {machine.loadavg()})."
        ),
    )


def _mark(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _runs(values: list[float], digits: int = 1) -> str:
    return ", ".join(f"{v:.{digits}f}" for v in values)


def _spread(values: list[float]) -> str:
    """min..max around the median, in % of the median."""
    mid = median(values)
    if not mid:
        return "n/a"
    return f"{(min(values) / mid - 1) * 100:+.0f} % .. {(max(values) / mid - 1) * 100:+.0f} %"


def _ratios(res: ClassifyResults) -> list[float]:
    """on/off p95 of each pair."""
    return [on / off for off, on in zip(res.p95_ms["off"], res.p95_ms["on"], strict=False) if off]


def _webhook_rows(res: ClassifyResults) -> list[str]:
    off, on = median(res.p95_ms["off"]), median(res.p95_ms["on"])
    ratio = on / off if off else float("inf")
    ratios = _ratios(res)
    pooled = res.pooled_p95_ms
    return [
        f"| webhook p95, classification off | {off:.1f} ms (runs: {_runs(res.p95_ms['off'])}; "
        f"spread {_spread(res.p95_ms['off'])}) | | |",
        f"| webhook p95, classification on | {on:.1f} ms (runs: {_runs(res.p95_ms['on'])}; "
        f"spread {_spread(res.p95_ms['on'])}) | within 10 % of off | "
        f"{_mark(ratio <= TARGETS['p95_ratio'])} ({(ratio - 1) * 100:+.1f} %) |",
        f"| webhook p95 on/off, per pair | median {median(ratios):.2f} "
        f"(pairs: {_runs(ratios, 2)}) | <= 1.10 | |",
        f"| webhook p95, all runs pooled | off {pooled['off']:.1f} ms, on {pooled['on']:.1f} ms "
        f"({(pooled['on'] / pooled['off'] - 1) * 100:+.1f} %) | | |",
        f"| service CPU per webhook | off {median(res.cpu_ms['off']):.2f} ms "
        f"(runs: {_runs(res.cpu_ms['off'], 2)}), on {median(res.cpu_ms['on']):.2f} ms "
        f"(runs: {_runs(res.cpu_ms['on'], 2)}) | | |",
        f"| LLM classifications/s during the on runs | "
        f"{median(res.classified_per_s['on']):.1f} (runs: {_runs(res.classified_per_s['on'])}) "
        "| | |",
    ]


def render(res: ClassifyResults) -> list[str]:
    llm = median(res.llm_per_s)
    pairs = len(res.p95_ms["off"])
    lines = [
        "## Classification: LLM throughput, cache hits, webhook cost",
        "",
        f"Run {res.at} by `{res.command}`. {res.machine}".rstrip(),
        "",
        f"The stand-in LLM (`tests/llm_server.py`, its own process, at `nice 19`: a real LLM "
        f"proxy runs on other machines, here it shares the cores with the service) answers after "
        f"{LLM_DELAY * 1000:.0f} ms. LLM and cache: medians over {len(res.llm_per_s)} rounds; "
        f"webhook p95: medians over {pairs} off/on pairs.",
        "",
        "| measure | result | target | |",
        "|---|---|---|---|",
        f"| LLM classifications/s, {IN_FLIGHT} in flight | {llm:,.1f} "
        f"(runs: {_runs(res.llm_per_s)}) | >= 60 | "
        f"{_mark(llm >= TARGETS['llm_per_s'])} |",
    ]
    for name, rate in res.cache_per_s.items():
        lines.append(
            f"| cache-hit classifications/s ({name}) | {rate:,.0f} | >= 5,000 | "
            f"{_mark(rate >= TARGETS['cache_per_s'])} |"
        )
    lines += [
        *_webhook_rows(res),
        "",
        f"Webhook runs: {res.requests_per_run} one-alert webhooks at {RATE}/s from 8 concurrent "
        "clients, every alert a new fingerprint (so with classification on, every webhook feeds "
        "the classifier, more than the LLM can take: the rest waits in storage), after 100 "
        "warm-up webhooks; a fresh service and SQLite file per run, off and on alternating "
        "(off/on, on/off, ...). The spread of the off runs is what off-vs-off varies: an on/off "
        "difference within it is not resolved. Service CPU: the service process's user + system "
        "time during the measured webhooks, per webhook.",
    ]
    return lines


def console_summary(res: ClassifyResults) -> str:
    off, on = median(res.p95_ms["off"]), median(res.p95_ms["on"])
    caches = ", ".join(f"{k} {v:,.0f}/s" for k, v in res.cache_per_s.items())
    return (
        f"classify: LLM {median(res.llm_per_s):.1f}/s at {IN_FLIGHT} in flight; cache hits "
        f"{caches}; webhook p95 off {off:.1f} ms (spread {_spread(res.p95_ms['off'])}), "
        f"on {on:.1f} ms (spread {_spread(res.p95_ms['on'])}), on/off per pair median "
        f"{median(_ratios(res)):.2f}"
    )


def main(argv: list[str] | None = None) -> None:
    """Only the webhook pairs, printed: for A/B comparisons while changing the service."""
    parser = argparse.ArgumentParser(prog="python -m bench.classify")
    parser.add_argument("--pairs", type=int, default=PAIRS, help=f"off/on pairs ({PAIRS})")
    parser.add_argument("--requests", type=int, default=1500, help="webhooks per run (1500)")
    parser.add_argument(
        "--kind",
        action="append",
        default=[],
        metavar="NAME:VAR=VALUE,...",
        help="one more kind of run, classification on with these settings, in each round "
        "(e.g. inproc:ALERT_HISTORY_LLM_WORKER=false)",
    )
    args = parser.parse_args(argv)
    kinds = dict(ON_OFF)
    for spec in args.kind:
        name, _, assignments = spec.partition(":")
        extra = dict(a.split("=", 1) for a in assignments.split(",") if a)
        kinds[name] = {"LLM_ENABLED": "true", **extra}
    tmp = Path(tempfile.mkdtemp(prefix="alert-history-bench-classify-"))
    cpu_before = machine.cpu_times()
    with stand_in_llm() as llm_url:
        hooks = _webhook_pairs(llm_url, tmp, args.pairs, args.requests, kinds)
    res = ClassifyResults(
        llm_per_s=[0.0], cache_per_s={}, p95_ms=hooks.p95_ms, pooled_p95_ms=hooks.pooled_p95_ms,
        cpu_ms=hooks.cpu_ms, classified_per_s=hooks.classified_per_s,
        requests_per_run=args.requests, at="", command="", machine="",
    )  # fmt: skip
    busy = machine.busy_and_steal(cpu_before, machine.cpu_times())[0]
    print("\n".join(_webhook_rows(res)))
    for name in list(kinds)[2:]:
        values, cpu = hooks.p95_ms[name], hooks.cpu_ms[name]
        print(
            f"| {name} | p95 {median(values):.1f} ms (runs: {_runs(values)}; spread "
            f"{_spread(values)}), pooled {hooks.pooled_p95_ms[name]:.1f} ms, CPU "
            f"{median(cpu):.2f} ms/webhook (runs: {_runs(cpu, 2)}), "
            f"{median(hooks.classified_per_s[name]):.1f} classified/s |"
        )
    print(f"(all CPUs {busy:.0%} busy, load {machine.loadavg()})")


if __name__ == "__main__":
    main()
