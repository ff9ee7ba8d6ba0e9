"""A real Alertmanager in a subprocess, for end-to-end tests.

    async with running_alertmanager(f"{service.url}/webhook") as am:
        await am.push([{"labels": {...}, "startsAt": ...}])

One process per block: its own config and storage in a temporary directory, no gossip
(`--cluster.listen-address=`), the web API on a free loopback port. Every alert goes to one webhook
receiver with `send_resolved: true`, grouped by `alertname`, with short group timers so a new
group is delivered about `group_wait` after the push. The block returns once Alertmanager logged
that it listens (its configuration is loaded before that), and on exit, failure or cancellation
included, the process is killed and reaped.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import trio
import yaml

from tests.subprocesses import running_program

#: Debian names the binary `prometheus-alertmanager`, upstream release tarballs `alertmanager`.
BINARY_NAMES = ("prometheus-alertmanager", "alertmanager")
LISTENING = "Listening on"


def find_alertmanager() -> str | None:
    """The Alertmanager binary: `$ALERTMANAGER_BIN`, else the first of BINARY_NAMES on PATH."""
    explicit = os.environ.get("ALERTMANAGER_BIN")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    for name in BINARY_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def alertmanager_config(
    webhook_url: str,
    *,
    group_wait: str = "1s",
    group_interval: str = "2s",
    repeat_interval: str = "1h",
    group_by: Sequence[str] = ("alertname",),
) -> dict[str, Any]:
    """One route, one webhook receiver that is also told about resolutions."""
    return {
        "route": {
            "receiver": "history",
            "group_by": list(group_by),
            "group_wait": group_wait,
            "group_interval": group_interval,
            "repeat_interval": repeat_interval,
        },
        "receivers": [
            {
                "name": "history",
                "webhook_configs": [{"url": webhook_url, "send_resolved": True}],
            }
        ],
    }


class AlertmanagerError(RuntimeError):
    """Alertmanager did not start; the message ends with its log."""


class Alertmanager:
    """A started Alertmanager: its API URL, its log so far, and a client for its API."""

    def __init__(self, url: str, process: trio.Process, log: list[str]) -> None:
        self.url = url
        self.process = process
        self.log = log
        self.http = httpx.AsyncClient(base_url=url, timeout=10)

    async def push(self, alerts: Sequence[dict[str, Any]]) -> None:
        """POST /api/v2/alerts: a list of {labels, annotations, startsAt, endsAt, generatorURL}."""
        response = await self.http.post("/api/v2/alerts", json=list(alerts))
        if response.status_code != 200:
            raise AssertionError(
                f"Alertmanager refused the alerts: {response.status_code} {response.text}"
            )

    async def alerts(self, *matchers: str) -> list[dict[str, Any]]:
        """GET /api/v2/alerts (active alerts, with Alertmanager's fingerprints) for `matchers`,
        e.g. 'alertname="X"'."""
        response = await self.http.get("/api/v2/alerts", params=[("filter", m) for m in matchers])
        response.raise_for_status()
        found: list[dict[str, Any]] = response.json()
        return found

    def log_text(self) -> str:
        return "\n".join(self.log)


@asynccontextmanager
async def running_alertmanager(
    webhook_url: str,
    *,
    binary: str | None = None,
    workdir: Path | None = None,
    start_timeout: float = 15,
    **timers: str,
) -> AsyncIterator[Alertmanager]:
    """Run Alertmanager sending every alert to `webhook_url` until the block ends.

    `timers` override group_wait (1s), group_interval (2s) and repeat_interval (1h).
    `workdir` holds the config and storage; a temporary directory by default.
    """
    exe = binary or find_alertmanager()
    if exe is None:
        raise AlertmanagerError(f"no Alertmanager binary ({' or '.join(BINARY_NAMES)}) on PATH")
    with tempfile.TemporaryDirectory(prefix="alertmanager-") as scratch:
        base = workdir or Path(scratch)
        config = base / "alertmanager.yml"
        config.write_text(yaml.safe_dump(alertmanager_config(webhook_url, **timers)))
        storage = base / "data"
        storage.mkdir(exist_ok=True)

        def argv(port: int) -> list[str]:
            return [
                exe,
                f"--config.file={config}",
                f"--storage.path={storage}",
                "--cluster.listen-address=",
                f"--web.listen-address=127.0.0.1:{port}",
            ]

        # The configuration is loaded before the web server binds: "Listening on" means ready.
        async with running_program(
            "Alertmanager", argv, LISTENING, start_timeout=start_timeout, error=AlertmanagerError
        ) as (process, port, log):
            client = Alertmanager(f"http://127.0.0.1:{port}", process, log.lines)
            try:
                # One confirmation, not a poll: it logged that it is ready.
                ready = await client.http.get("/-/ready")
                if ready.status_code != 200:
                    raise AlertmanagerError(
                        f"/-/ready answered {ready.status_code}:\n{client.log_text()}"
                    )
                yield client
            finally:
                with trio.CancelScope(shield=True):
                    await client.http.aclose()
