"""The service over a real PostgreSQL: idempotent ingest, a database restart, two replicas,
the group commit's plans as the table grows."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import psycopg
import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from alert_history.config import Settings, load_settings
from alert_history.errors import SchemaTooNew
from alert_history.models import AlertEvent
from alert_history.storage import open_storage
from alert_history.storage import postgres as postgres_backend
from alert_history.storage.postgres import PostgresStorage
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


def episodes(first: int, count: int, *, alerts: int = 10) -> list[AlertEvent]:
    """`count` new episodes (one startsAt each) of the same `alerts` fingerprints."""
    made = []
    for i in range(first, first + count):
        for j in range(alerts):
            event = AlertEvent(
                fingerprint=f"fp{j:02d}", status="firing", starts_at=10**18 + i, ends_at=0,
                alertname="Grow", namespace="prod", severity="warning",
                labels={"alertname": "Grow", "instance": f"i{j}"}, annotations={"summary": "s"},
                generator_url="", receiver="r", group_key="g", source="alertmanager",
                received_at=10**18 + i,
            )  # fmt: skip
            made.append(event)
    return made


async def test_group_commits_stop_scanning_alert_events_once_it_has_grown(pg_url: str) -> None:
    # The report trigger (migration 0006) looks up each new row's episode in alert_events. A
    # plan made on the nearly empty table reads the whole table on every commit; the writer's
    # connection must plan again as the table grows, so commits probe the index instead.
    storage = PostgresStorage(pg_url, pool_size=1)  # one connection: the one that plans
    await storage.open()
    try:
        assert (await storage.write_events(episodes(0, 1))).inserted == 10  # planned on 10 rows
        for n in range(5):  # 10,000 rows in commits of 2,000
            assert (await storage.write_events(episodes(1 + 200 * n, 200))).inserted == 2_000

        async def sequential_scans() -> int:
            # flushed to the shared statistics when the connection goes idle
            await storage.read(lambda db: db.fetchone("SELECT pg_stat_force_next_flush()"))
            row = await storage.read(
                lambda db: db.fetchone(
                    "SELECT seq_scan FROM pg_stat_user_tables WHERE relname = 'alert_events'"
                )
            )
            assert row is not None
            return int(row[0])

        before = await sequential_scans()
        for n in range(3):
            assert (await storage.write_events(episodes(10_000 + n, 1))).inserted == 10
        assert await sequential_scans() == before
    finally:
        await storage.aclose()


async def test_a_connection_the_server_closed_while_idle_is_replaced_before_a_write(
    pg_url: str,
) -> None:
    storage = PostgresStorage(pg_url, pool_size=2)
    await storage.open()
    try:
        assert (await storage.write_events(episodes(0, 1))).inserted == 10
        with psycopg.connect(pg_url, autocommit=True) as admin:  # e.g. idle_session_timeout
            ended = admin.execute(
                "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchall()
        assert ended and all(ok for (ok,) in ended)
        # no 503 for the next webhooks: the pool notices and connects again
        assert (await storage.write_events(episodes(1, 1))).inserted == 10
        assert (await storage.write_events(episodes(2, 1))).inserted == 10
    finally:
        await storage.aclose()


_TEXT = st.characters(blacklist_categories=("Cs",))
_ELEMENTS = {  # jsonb is made NUL-free before (sql._jsonb_safe); text here, as U+FFFD
    "text": st.text(_TEXT),
    "jsonb": st.dictionaries(
        st.text(_TEXT.filter(lambda c: c != "\0"), max_size=5),
        st.integers() | st.text(_TEXT.filter(lambda c: c != "\0")),
    ),
    "bigint": st.integers(-(2**63), 2**63 - 1),
    "integer": st.integers(-(2**31), 2**31 - 1),
    "boolean": st.booleans(),
}


@pytest.mark.parametrize("type_", sorted(_ELEMENTS))
def test_the_binary_arrays_of_the_group_commit_read_back_as_sent(pg_url: str, type_: str) -> None:
    # the group commit builds its unnest arrays in the wire format by hand: whatever values a
    # column holds, NULLs and any text included, PostgreSQL must read back what was sent
    with psycopg.connect(pg_url, autocommit=True) as conn:
        postgres_backend._configure(conn)

        @settings(max_examples=60, deadline=None)
        @given(st.lists(st.none() | _ELEMENTS[type_], max_size=20))
        def round_trip(values: list[object]) -> None:
            sent = [
                msgspec.json.encode(v).decode() if type_ == "jsonb" and v is not None else v
                for v in values
            ]
            array = postgres_backend._array(sent, type_, conn.info.encoding)
            (back,) = postgres_backend._one(conn.execute(f"SELECT %b::{type_}[]", [array]))
            if type_ == "text":
                values = [None if v is None else str(v).replace("\0", "\ufffd") for v in values]
            assert back == values

        round_trip()
