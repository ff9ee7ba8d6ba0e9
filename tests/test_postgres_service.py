"""The service over a real PostgreSQL: idempotent ingest, a database restart, two replicas."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
import trio

from alert_history.config import Settings, load_settings
from alert_history.errors import SchemaTooNew
from alert_history.storage import open_storage
from alert_history.storage import postgres as postgres_backend
from tests.conftest import running
from tests.pg import PostgresServer, find_pg_bin
from tests.support import ServiceProcess, alert, encode, fixture_body, service_env, webhook

pytestmark = pytest.mark.slow


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL of this test's own, which it may stop and start."""
    bin_dir = find_pg_bin()
    assert bin_dir is not None, "PostgreSQL is not installed"
    base = Path(tempfile.mkdtemp(prefix="alert-history-pg-"))
    server = PostgresServer(base, bin_dir)
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def pg_settings(url: str, tmp_path: Path, **extra: str) -> Settings:
    return load_settings(service_env(tmp_path / "unused.db", DATABASE_URL=url, **extra))


async def history_names(client: httpx.AsyncClient) -> dict[str, int]:
    body = (await client.get("/history", params={"limit": 1000})).json()
    return {a["alertname"]: a["notifyCount"] for a in body["alerts"]}


async def test_repeats_on_postgres_are_one_state_each(pg_url: str, tmp_path: Path) -> None:
    async with (
        running(pg_settings(pg_url, tmp_path)) as service,
        httpx.AsyncClient(base_url=service.url, timeout=30) as client,
    ):
        body = fixture_body("group5")

        async def post() -> None:
            assert (await client.post("/webhook", content=body)).status_code == 200

        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(post)
        for _ in range(3):
            await post()
        stored = (await client.get("/history")).json()
        assert stored["total"] == 5
        assert {a["notifyCount"] for a in stored["alerts"]} == {6}
        ready = (await client.get("/readyz")).json()
        assert ready["dependencies"]["database"] is True


async def test_database_restart_loses_nothing_acknowledged_and_needs_no_service_restart(
    own_postgres: PostgresServer, tmp_path: Path
) -> None:
    url = own_postgres.create_database()
    settings = pg_settings(url, tmp_path, INGEST_COMMIT_TIMEOUT="3")
    acknowledged: set[str] = set()
    refused: list[int] = []
    async with (
        running(settings) as service,
        httpx.AsyncClient(base_url=service.url, timeout=30) as client,
    ):

        async def post(name: str) -> None:
            response = await client.post("/webhook", content=encode(webhook(alert(name))))
            if response.status_code == 200:
                acknowledged.add(name)
            else:
                assert response.status_code == 503, response.text
                assert response.headers["Retry-After"]
                refused.append(response.status_code)

        for i in range(20):
            await post(f"Before{i}")
        await trio.to_thread.run_sync(own_postgres.stop)
        async with trio.open_nursery() as nursery:  # webhooks while the database is down
            for i in range(5):
                nursery.start_soon(post, f"During{i}")
        assert len(refused) == 5
        down = await client.get("/readyz")
        assert down.status_code == 503
        assert down.json()["dependencies"]["database"] is False

        await trio.to_thread.run_sync(own_postgres.start)
        # The pool reconnects by itself; like Alertmanager, retry until the service answers.
        with trio.fail_after(30):
            while (await client.get("/readyz")).status_code != 200:  # noqa: ASYNC110
                await trio.sleep(0.2)
        for i in range(20):
            await post(f"After{i}")
        stored = await history_names(client)
        assert acknowledged <= set(stored)
        assert {f"After{i}" for i in range(20)} <= acknowledged


async def test_two_replicas_given_the_same_webhooks_store_each_state_once(
    pg_url: str, tmp_path: Path
) -> None:
    env = service_env(tmp_path / "unused.db", DATABASE_URL=pg_url)
    bodies = [
        encode(webhook(*[alert(f"HA{i}", instance=f"i{j}") for j in range(3)])) for i in range(30)
    ]
    async with trio.open_nursery() as nursery:
        replicas = [ServiceProcess(env), ServiceProcess(env)]
        for replica in replicas:
            await replica.start(nursery)

        async def peer(url: str) -> None:  # an Alertmanager HA peer sends every group too
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                for body in bodies:
                    assert (await client.post("/webhook", content=body)).status_code == 200

        async with trio.open_nursery() as peers:
            for replica in replicas:
                for _ in range(2):
                    peers.start_soon(peer, replica.url)

        async with httpx.AsyncClient(base_url=replicas[0].url) as client:
            body = (await client.get("/history", params={"limit": 1000})).json()
        assert body["total"] == 90
        assert {a["notifyCount"] for a in body["alerts"]} == {4}
        for replica in replicas:
            replica.terminate()
            assert await replica.wait() == 0


async def test_only_one_replica_purges_at_a_time(pg_url: str) -> None:
    storage = await open_storage(pg_url)
    try:
        with psycopg.connect(pg_url) as other, other.transaction():  # another replica purging
            other.execute("SELECT pg_advisory_xact_lock(%s)", (postgres_backend._PURGE_LOCK,))
            assert await storage.purge(cutoff=10**18, limit=100) is None
        assert await storage.purge(cutoff=10**18, limit=100) == 0
    finally:
        await storage.aclose()


async def test_a_schema_newer_than_the_code_is_refused_on_postgres(pg_url: str) -> None:
    await (await open_storage(pg_url)).aclose()
    with psycopg.connect(pg_url) as conn:
        conn.execute("INSERT INTO schema_migrations VALUES (9999, 'future', 'x', now())")
    with pytest.raises(SchemaTooNew, match="newer than this code knows"):
        await open_storage(pg_url)
