"""Helpers shared by the tests: fixture payloads, webhook builders, a service subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import trio

FIXTURES = Path(__file__).parent / "fixtures"


def fixture_body(name: str) -> bytes:
    """The raw body Alertmanager 0.25 sent in a captured scenario."""
    return (FIXTURES / "alertmanager" / f"{name}.json").read_bytes()


def webhook(*alerts: dict[str, Any], status: str = "firing", **envelope: Any) -> dict[str, Any]:
    """An Alertmanager v4 webhook around `alerts`."""
    return {
        "version": "4",
        "groupKey": '{}:{alertname="Test"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "test",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.local",
        "alerts": list(alerts),
        **envelope,
    }


def alert(
    name: str = "Test",
    *,
    status: str = "firing",
    starts_at: str = "2026-11-27T10:00:00.123456789Z",
    ends_at: str = "0001-01-01T00:00:00Z",
    fingerprint: str | None = None,
    **labels: str,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "status": status,
        "labels": {"alertname": name, **labels},
        "annotations": {"summary": f"{name} summary"},
        "startsAt": starts_at,
        "endsAt": ends_at,
        "generatorURL": "http://prometheus.local/graph",
    }
    if fingerprint is not None:
        body["fingerprint"] = fingerprint
    return body


def encode(payload: Any) -> bytes:
    return json.dumps(payload).encode()


def service_env(db_path: Path, **extra: str) -> dict[str, str]:
    """Settings for a service under test: SQLite in a temp dir, loopback, any free port."""
    return {
        "DATABASE_URL": f"sqlite:///{db_path}",
        "HOST": "127.0.0.1",
        "PORT": "0",
        "LOG_LEVEL": "WARNING",
        **extra,
    }


class ServiceProcess:
    """`python -m alert_history serve` in a subprocess; its URL is read from its JSON log."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = {**os.environ, **env, "LOG_LEVEL": "INFO", "LOG_JSON": "true"}
        self.process: trio.Process | None = None
        self.url = ""
        self.log: list[dict[str, Any]] = []
        self._waiters: list[tuple[str, trio.Event]] = []

    async def start(self, nursery: trio.Nursery) -> None:
        """Start the process and return once it logged that it is serving."""
        self.process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "alert_history", "serve"],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        serving = trio.Event()
        nursery.start_soon(self._read_log, serving)
        with trio.fail_after(30):
            await serving.wait()

    async def _read_log(self, serving: trio.Event) -> None:
        assert self.process is not None and self.process.stderr is not None
        buffer = b""
        async for chunk in self.process.stderr:
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                try:
                    entry = json.loads(line)
                except ValueError:
                    entry = {"msg": line.decode(errors="replace")}
                self.log.append(entry)
                for msg, event in self._waiters:
                    if entry.get("msg") == msg:
                        event.set()
                if entry.get("msg") == "serving":
                    self.url = entry["urls"][0]
                    serving.set()

    async def logged(self, msg: str) -> None:
        """Return once the process has logged a line whose `msg` is `msg`."""
        if any(entry.get("msg") == msg for entry in self.log):
            return
        event = trio.Event()
        self._waiters.append((msg, event))
        await event.wait()

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()

    def terminate(self) -> None:
        assert self.process is not None
        self.process.terminate()

    async def wait(self) -> int:
        assert self.process is not None
        return await self.process.wait()
