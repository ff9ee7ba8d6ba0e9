"""The service as a process: SIGKILL loses nothing acknowledged; SIGTERM drains and exits 0."""

from __future__ import annotations

import random
from pathlib import Path

import httpx
import pytest
import trio

from tests.support import ServiceProcess, alert, encode, service_env, webhook

pytestmark = pytest.mark.slow


async def all_alertnames(url: str) -> set[str]:
    names: set[str] = set()
    cursor: str | None = None
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        while True:
            params: dict[str, str | int] = {"limit": 1000}
            if cursor:
                params["cursor"] = cursor
            body = (await client.get("/history", params=params)).json()
            names.update(a["alertname"] for a in body["alerts"])
            cursor = body["next_cursor"]
            if cursor is None:
                return names


class Load:
    """Posters that send distinct alerts until the server goes away; records every 2xx."""

    def __init__(self, url: str, stop_after: int) -> None:
        self.url = url
        self.acknowledged: set[str] = set()
        self.reached = trio.Event()
        self.stop_after = stop_after

    async def poster(self, worker: int) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as client:
            for n in range(100_000):
                name = f"W{worker}N{n}"
                body = encode(webhook(alert(name, instance=f"i{n % 7}")))
                try:
                    response = await client.post("/webhook", content=body)
                except httpx.TransportError:
                    return  # the server is gone
                if response.status_code == 200:
                    self.acknowledged.add(name)
                    if len(self.acknowledged) >= self.stop_after:
                        self.reached.set()
                elif response.status_code != 503:
                    raise AssertionError(response.text)


async def test_sigkill_at_a_random_moment_loses_no_acknowledged_alert(tmp_path: Path) -> None:
    seed = random.randrange(1_000_000)
    stop_after = random.Random(seed).randint(20, 400)
    env = service_env(tmp_path / "alerts.db")
    async with trio.open_nursery() as nursery:
        first = ServiceProcess(env)
        await first.start(nursery)
        load = Load(first.url, stop_after)
        async with trio.open_nursery() as posters:
            for worker in range(8):
                posters.start_soon(load.poster, worker)
            with trio.fail_after(60):
                await load.reached.wait()
            first.kill()
        assert await first.wait() == -9

        second = ServiceProcess(env)
        await second.start(nursery)
        stored = await all_alertnames(second.url)
        missing = load.acknowledged - stored
        assert not missing, f"seed={seed}: {len(missing)} acknowledged alerts lost"
        assert len(load.acknowledged) >= stop_after
        second.terminate()
        assert await second.wait() == 0


async def test_sigterm_turns_readiness_off_drains_and_exits_0(tmp_path: Path) -> None:
    env = service_env(tmp_path / "alerts.db", SHUTDOWN_DELAY="1", GRACEFUL_TIMEOUT="10")
    async with trio.open_nursery() as nursery:
        first = ServiceProcess(env)
        await first.start(nursery)
        load = Load(first.url, 50)
        async with trio.open_nursery() as posters:
            for worker in range(8):
                posters.start_soon(load.poster, worker)
            with trio.fail_after(60):
                await load.reached.wait()
            first.terminate()
            with trio.fail_after(10):
                await first.logged("shutting down")
            async with httpx.AsyncClient(base_url=first.url) as client:
                ready = await client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["draining"] is True
            with trio.fail_after(10 + 5):
                assert await first.wait() == 0
        assert any(entry.get("msg") == "stopped" for entry in first.log)

        second = ServiceProcess(env)
        await second.start(nursery)
        stored = await all_alertnames(second.url)
        assert load.acknowledged <= stored
        second.terminate()
        assert await second.wait() == 0
