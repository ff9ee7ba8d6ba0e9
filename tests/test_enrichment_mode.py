"""GET/POST /enrichment/mode: sources, validation, persistence without expiry, replicas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import trio
import trio.testing

from alert_history.app import Service
from alert_history.kv import ModeStore
from alert_history.storage import open_storage
from alert_history.storage.service_settings import StoredSettings
from tests.conftest import SettingsFactory, running
from tests.support import ServiceProcess, alert, service_env, webhook


def metric(service: Service, name: str, **labels: str) -> float:
    value = service.metrics.registry.get_sample_value(f"alert_history_{name}", labels)
    return 0.0 if value is None else value


async def test_the_default_comes_from_the_settings(make_settings: SettingsFactory) -> None:
    async with (
        running(make_settings(ENRICHMENT_MODE="transparent")) as service,
        httpx.AsyncClient(base_url=service.url) as client,
    ):
        response = await client.get("/enrichment/mode")
        assert response.json() == {"mode": "transparent", "source": "default"}
        assert metric(service, "enrichment_mode_status") == 0
        assert metric(service, "enrichment_mode_requests_total", method="GET", mode="transparent")


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (b'{"mode": "metrics-only"}', 422, "$.mode"),
        (b'{"mode": 1}', 422, "$.mode"),
        (b"{}", 422, "$.mode"),
        (b"", 422, "$"),
        (b"{nope", 400, "$"),
    ],
)
async def test_a_bad_mode_is_refused_naming_the_field(
    make_settings: SettingsFactory, body: bytes, status: int, field: str
) -> None:
    async with (
        running(make_settings()) as service,
        httpx.AsyncClient(base_url=service.url) as client,
    ):
        response = await client.post("/enrichment/mode", content=body)
        assert response.status_code == status
        (detail,) = response.json()["detail"]
        assert detail["field"] == field
        if body == b'{"mode": "metrics-only"}':
            assert "transparent_with_recommendations" in detail["msg"]
        assert (await client.get("/enrichment/mode")).json()["mode"] == "enriched"


async def test_without_redis_the_mode_is_stored_and_survives_a_restart(
    make_settings: SettingsFactory,
) -> None:
    settings = make_settings()
    async with running(settings) as service, httpx.AsyncClient(base_url=service.url) as client:
        response = await client.post("/enrichment/mode", json={"mode": "transparent"})
        assert response.json() == {"mode": "transparent", "source": "memory"}
        assert metric(service, "enrichment_mode_status") == 0
        assert metric(
            service, "enrichment_mode_switches_total", from_mode="enriched", to_mode="transparent"
        )
        answer = await client.post("/webhook", json=webhook(alert("A")))
        assert answer.json()["mode"] == "transparent"
        assert metric(service, "enrichment_transparent_alerts_total") == 1
        # the same mode again is a request, not a switch
        await client.post("/enrichment/mode", json={"mode": "transparent"})
        assert metric(
            service, "enrichment_mode_switches_total", from_mode="transparent",
            to_mode="transparent",
        ) == 0  # fmt: skip
    async with running(settings) as service, httpx.AsyncClient(base_url=service.url) as client:
        response = await client.get("/enrichment/mode")
        assert response.json() == {"mode": "transparent", "source": "memory"}


async def test_with_redis_the_mode_is_a_key_without_expiry(
    make_settings: SettingsFactory, redis_url: str
) -> None:
    async with (
        running(make_settings(REDIS_URL=redis_url)) as service,
        httpx.AsyncClient(base_url=service.url) as client,
    ):
        assert (await client.get("/enrichment/mode")).json()["source"] == "default"
        response = await client.post(
            "/enrichment/mode", json={"mode": "transparent_with_recommendations"}
        )
        assert response.json() == {"mode": "transparent_with_recommendations", "source": "redis"}
        assert (await client.get("/enrichment/mode")).json() == {
            "mode": "transparent_with_recommendations",
            "source": "redis",
        }
        assert metric(service, "enrichment_mode_status") == 2
    r = redis.Redis.from_url(redis_url)
    try:
        assert r.get("enrichment:mode") == b'{"mode":"transparent_with_recommendations"}'
        assert r.ttl("enrichment:mode") == -1  # no expiry (the legacy SETEX bug, B§16.5)
    finally:
        r.close()


async def test_redis_down_falls_back_to_the_database(make_settings: SettingsFactory) -> None:
    async with (
        running(make_settings(REDIS_URL="redis://127.0.0.1:1/0")) as service,
        httpx.AsyncClient(base_url=service.url) as client,
    ):
        response = await client.post("/enrichment/mode", json={"mode": "transparent"})
        assert response.json() == {"mode": "transparent", "source": "memory"}
        assert (await client.get("/enrichment/mode")).json() == {
            "mode": "transparent",
            "source": "memory",
        }
        answer = await client.post("/webhook", json=webhook(alert("B")))
        assert answer.status_code == 200 and answer.json()["mode"] == "transparent"


@pytest.mark.slow
async def test_a_switch_through_one_replica_is_used_by_another_for_its_next_webhook(
    tmp_path: Path, redis_url: str
) -> None:
    a = ServiceProcess(service_env(tmp_path / "a.db", REDIS_URL=redis_url))
    b = ServiceProcess(service_env(tmp_path / "b.db", REDIS_URL=redis_url))
    async with trio.open_nursery() as nursery:
        await a.start(nursery)
        await b.start(nursery)
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                for mode, via, to in [
                    ("transparent", a, b),
                    ("transparent_with_recommendations", b, a),
                    ("enriched", a, b),
                ]:
                    switched = await client.post(f"{via.url}/enrichment/mode", json={"mode": mode})
                    assert switched.json() == {"mode": mode, "source": "redis"}
                    answer = await client.post(f"{to.url}/webhook", json=webhook(alert("R")))
                    assert answer.status_code == 200
                    assert answer.json()["mode"] == mode
                metrics = (await client.get(f"{b.url}/metrics")).text
                assert "alert_history_enrichment_transparent_alerts_total 1.0" in metrics
                assert "alert_history_enrichment_enriched_alerts_total 1.0" in metrics
        finally:
            for process in (a, b):
                process.terminate()
            for process in (a, b):
                with trio.fail_after(30):
                    assert await process.wait() == 0
            nursery.cancel_scope.cancel()


class CountingSettings(StoredSettings):
    """The real stored settings, counting its reads."""

    reads = 0

    async def get(self, key: str) -> str | None:
        self.reads += 1
        return await super().get(key)


def _clock() -> int:
    return 1_700_000_000_000_000_000


async def test_an_unshared_database_is_read_once_and_switches_write_through(
    tmp_path: Path,
) -> None:
    storage = await open_storage(f"sqlite:///{tmp_path}/modes.db")
    try:
        stored = CountingSettings(storage, _clock)
        modes = ModeStore(redis=None, stored=stored, default="enriched", stored_shared=False)
        assert [await modes.get() for _ in range(3)] == [("enriched", "default")] * 3
        assert await modes.set("transparent") == "memory"
        assert await modes.get() == ("transparent", "memory")
        assert stored.reads == 1  # once, not per webhook
        restarted = CountingSettings(storage, _clock)
        again = ModeStore(redis=None, stored=restarted, default="enriched", stored_shared=False)
        assert [await again.get() for _ in range(2)] == [("transparent", "memory")] * 2
        assert restarted.reads == 1
    finally:
        await storage.aclose()


async def test_a_shared_database_is_read_for_every_answer(pg_url: str) -> None:
    first, second = await open_storage(pg_url), await open_storage(pg_url)
    try:
        a = ModeStore(redis=None, stored=StoredSettings(first, _clock), default="enriched")
        b = ModeStore(redis=None, stored=StoredSettings(second, _clock), default="enriched")
        assert await b.get() == ("enriched", "default")
        await a.set("transparent")
        assert await b.get() == ("transparent", "memory")
        await b.set("transparent_with_recommendations")
        assert await a.get() == ("transparent_with_recommendations", "memory")
    finally:
        await first.aclose()
        await second.aclose()


class GatedSettings(CountingSettings):
    """The first read holds its value until `release`: a read that is slow to come back."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.entered, self.release = trio.Event(), trio.Event()

    async def get(self, key: str) -> str | None:
        value = await super().get(key)
        self.entered.set()
        await self.release.wait()
        return value


async def test_callers_share_reads_and_each_sees_a_switch_made_before_it_asked(
    tmp_path: Path,
) -> None:
    storage = await open_storage(f"sqlite:///{tmp_path}/shared.db")
    try:
        stored = GatedSettings(storage, _clock)
        modes = ModeStore(redis=None, stored=stored, default="enriched")  # read every time
        other = ModeStore(redis=None, stored=StoredSettings(storage, _clock), default="enriched")
        seen: dict[str, tuple[str, str]] = {}

        async def ask(name: str) -> None:
            seen[name] = await modes.get()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask, "before")
            await stored.entered.wait()  # its read is done, the value not yet returned
            await other.set("transparent")  # another replica switches
            for name in ("after1", "after2", "after3"):
                nursery.start_soon(ask, name)
            await trio.testing.wait_all_tasks_blocked()
            stored.release.set()
        assert seen["before"] == ("enriched", "default")  # asked before the switch
        assert {seen[n] for n in ("after1", "after2", "after3")} == {("transparent", "memory")}
        assert stored.reads == 2  # four callers, two reads
    finally:
        await storage.aclose()
