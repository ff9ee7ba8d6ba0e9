"""A real Prometheus in a subprocess, and a scrape target the test controls, for end-to-end tests.

    async with (
        running_scrape_target({"e2e_switch": 1}) as target,
        running_prometheus(
            alertmanager="127.0.0.1:8080",
            rule_files=[rules],
            scrape_jobs={"switch": [target.address]},
        ) as prom,
    ):
        target.set("e2e_switch", 0)

One process per block: its own config and TSDB in a temporary directory, the web API on a free
loopback port, rules evaluated and targets scraped every second, and active alerts re-sent to the
one Alertmanager (`api_version: v2`, so `POST /api/v2/alerts`) every `resend_delay`. The block
returns once Prometheus logged that it is ready (configuration and rules loaded), and on exit,
failure or cancellation included, the process is killed and reaped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import trio
import yaml

from tests.subprocesses import running_program

READY = "Server is ready to receive web requests."


def find_prometheus() -> str | None:
    """The Prometheus binary: `$PROMETHEUS_BIN`, else `prometheus` on PATH."""
    explicit = os.environ.get("PROMETHEUS_BIN")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    return shutil.which("prometheus")


def find_promtool() -> str | None:
    """`promtool`: `$PROMTOOL_BIN`, else next to the Prometheus binary, else on PATH."""
    explicit = os.environ.get("PROMTOOL_BIN")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    prometheus = find_prometheus()
    if prometheus is not None:
        sibling = Path(prometheus).with_name("promtool")
        if os.access(sibling, os.X_OK):
            return str(sibling)
    return shutil.which("promtool")


class PrometheusError(RuntimeError):
    """Prometheus did not start, or promtool refused a file; the message ends with its output."""


async def check_rules(*rule_files: Path, promtool: str | None = None) -> str:
    """`promtool check rules`: return its report, raise PrometheusError if a file is invalid."""
    exe = promtool or find_promtool()
    if exe is None:
        raise PrometheusError("no promtool binary on PATH (apt-get install prometheus)")
    result = await trio.run_process(
        [exe, "check", "rules", *map(str, rule_files)],
        stdin=subprocess.DEVNULL,
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    report = (result.stdout + result.stderr).decode(errors="replace")
    if result.returncode != 0:
        raise PrometheusError(f"promtool check rules failed ({result.returncode}):\n{report}")
    return report


def prometheus_config(
    alertmanager: str,
    *,
    rule_files: Sequence[Path] = (),
    scrape_jobs: Mapping[str, Sequence[str]] | None = None,
    evaluation_interval: str = "1s",
    scrape_interval: str = "1s",
) -> dict[str, Any]:
    """Rules from `rule_files`, `scrape_jobs` ({job: [host:port]}, plain HTTP /metrics), and one
    Alertmanager at `alertmanager` (host:port) spoken to with API v2 under the default prefix."""
    return {
        "global": {
            "evaluation_interval": evaluation_interval,
            "scrape_interval": scrape_interval,
            "scrape_timeout": scrape_interval,
        },
        "alerting": {
            "alertmanagers": [
                {
                    "api_version": "v2",
                    "scheme": "http",
                    "timeout": "5s",
                    "static_configs": [{"targets": [alertmanager]}],
                }
            ]
        },
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": list(targets)}]}
            for job, targets in (scrape_jobs or {}).items()
        ],
    }


class Prometheus:
    """A started Prometheus: its URL, its log so far, and a client for its API."""

    def __init__(self, url: str, process: trio.Process, log: list[str]) -> None:
        self.url = url
        self.process = process
        self.log = log
        self.http = httpx.AsyncClient(base_url=url, timeout=10)

    async def alerts(self) -> list[dict[str, Any]]:
        """GET /api/v1/alerts: the active (pending or firing) alerts, as Prometheus sees them."""
        response = await self.http.get("/api/v1/alerts")
        response.raise_for_status()
        found: list[dict[str, Any]] = response.json()["data"]["alerts"]
        return found

    async def own_metric(self, name: str) -> float:
        """The sum over all series of `name` on Prometheus's own /metrics (0 if absent), e.g.
        `prometheus_notifications_errors_total`."""
        response = await self.http.get("/metrics")
        response.raise_for_status()
        total = 0.0
        for line in response.text.splitlines():
            series, _, value = line.rpartition(" ")
            if series == name or series.startswith(name + "{"):
                total += float(value)
        return total

    def log_text(self) -> str:
        return "\n".join(self.log)


@asynccontextmanager
async def running_prometheus(
    alertmanager: str,
    *,
    rule_files: Sequence[Path] = (),
    scrape_jobs: Mapping[str, Sequence[str]] | None = None,
    resend_delay: str = "1s",
    binary: str | None = None,
    workdir: Path | None = None,
    start_timeout: float = 15,
    **intervals: str,
) -> AsyncIterator[Prometheus]:
    """Run Prometheus, sending its alerts to the Alertmanager at `alertmanager` (host:port),
    until the block ends.

    `intervals` override evaluation_interval and scrape_interval (1s each). `resend_delay` is
    `--rules.alert.resend-delay`. `workdir` holds the config and the TSDB; a temporary directory
    by default.
    """
    exe = binary or find_prometheus()
    if exe is None:
        raise PrometheusError("no Prometheus binary on PATH (apt-get install prometheus)")
    with tempfile.TemporaryDirectory(prefix="prometheus-") as scratch:
        base = workdir or Path(scratch)
        config = base / "prometheus.yml"
        config.write_text(
            yaml.safe_dump(
                prometheus_config(
                    alertmanager, rule_files=rule_files, scrape_jobs=scrape_jobs, **intervals
                )
            )
        )
        storage = base / "data"
        storage.mkdir(exist_ok=True)

        def argv(port: int) -> list[str]:
            return [
                exe,
                f"--config.file={config}",
                f"--storage.tsdb.path={storage}",
                f"--web.listen-address=127.0.0.1:{port}",
                f"--rules.alert.resend-delay={resend_delay}",
            ]

        # Logged once the TSDB is open and the configuration (rules included) is loaded.
        async with running_program(
            "Prometheus", argv, READY, start_timeout=start_timeout, error=PrometheusError
        ) as (process, port, log):
            client = Prometheus(f"http://127.0.0.1:{port}", process, log.lines)
            try:
                # One confirmation, not a poll: it logged that it is ready.
                ready = await client.http.get("/-/ready")
                if ready.status_code != 200:
                    raise PrometheusError(
                        f"/-/ready answered {ready.status_code}:\n{client.log_text()}"
                    )
                yield client
            finally:
                with trio.CancelScope(shield=True):
                    await client.http.aclose()


class ScrapeTarget:
    """A tiny /metrics endpoint: gauges (no labels) whose values the test sets."""

    def __init__(self, address: str, values: dict[str, float]) -> None:
        self.address = address  # host:port, as a scrape config target
        self.values = values
        self.scrapes = 0

    def set(self, name: str, value: float) -> None:
        self.values[name] = value

    def exposition(self) -> bytes:
        lines = [f"# TYPE {name} gauge\n{name} {value}\n" for name, value in self.values.items()]
        return "".join(lines).encode()

    async def serve(self, stream: trio.SocketStream) -> None:
        """One request per connection: read the request head, answer, close."""
        async with stream:
            head = b""
            with trio.move_on_after(5):
                while b"\r\n\r\n" not in head and len(head) < 65536:
                    chunk = await stream.receive_some(4096)
                    if not chunk:
                        return
                    head += chunk
            if b"\r\n\r\n" not in head:
                return
            self.scrapes += 1
            body = self.exposition()
            response = (
                b"HTTP/1.1 200 OK\r\n"
                b"Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\n"
                b"Connection: close\r\n\r\n" + body
            )
            with suppress(trio.BrokenResourceError):  # Prometheus gave up (scrape timeout)
                await stream.send_all(response)


@asynccontextmanager
async def running_scrape_target(values: Mapping[str, float]) -> AsyncIterator[ScrapeTarget]:
    """Serve `values` as gauges on a free loopback port until the block ends."""
    # Raised after the nursery, so callers get their own exception, not a group.
    error: BaseException | None = None
    async with trio.open_nursery() as nursery:
        target = ScrapeTarget("", dict(values))
        listeners: list[trio.SocketListener] = await nursery.start(
            partial(trio.serve_tcp, target.serve, 0, host="127.0.0.1")
        )
        host, port = listeners[0].socket.getsockname()[:2]
        target.address = f"{host}:{port}"
        try:
            yield target
        except BaseException as exc:
            error = exc
        finally:
            nursery.cancel_scope.cancel()
    if error is not None:
        raise error
