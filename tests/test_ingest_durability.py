"""A 2xx is a promise: idempotent per alert state, 503 under pressure, nothing acknowledged lost."""

from __future__ import annotations

import httpx
import trio

from alert_history.actors import Hooks
from alert_history.domain import fingerprint
from alert_history.messages import EventBatch
from tests.conftest import SettingsFactory, running
from tests.support import alert, encode, fixture_body, webhook


async def history(client: httpx.AsyncClient, **params: str | int) -> list[dict[str, object]]:
    response = await client.get("/history", params={"limit": 1000, **params})
    assert response.status_code == 200
    alerts: list[dict[str, object]] = response.json()["alerts"]
    return alerts


async def test_same_webhook_three_times_concurrently_and_in_sequence_is_one_state_notified_6(
    client: httpx.AsyncClient,
) -> None:
    body = fixture_body("group5")
    statuses: list[int] = []

    async def post() -> None:
        statuses.append((await client.post("/webhook", content=body)).status_code)

    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(post)
    for _ in range(3):
        await post()

    assert statuses == [200] * 6
    stored = await history(client)
    assert len(stored) == 5
    assert {a["notifyCount"] for a in stored} == {6}
    assert sorted(a["fingerprint"] for a in stored) == sorted(
        fingerprint(a["labels"])
        for a in stored  # type: ignore[arg-type]
    )


async def test_each_state_of_an_alert_is_stored_once_and_resolution_adds_a_state(
    client: httpx.AsyncClient,
) -> None:
    for _ in range(2):
        assert (await client.post("/webhook", content=fixture_body("group5"))).status_code == 200
    for _ in range(2):
        assert (await client.post("/webhook", content=fixture_body("resolved"))).status_code == 200
    stored = await history(client)
    assert len(stored) == 10
    assert sorted(a["status"] for a in stored) == ["firing"] * 5 + ["resolved"] * 5
    assert {a["notifyCount"] for a in stored} == {2}
    resolved = await history(client, status="resolved")
    assert all(a["endsAt"] for a in resolved)
    assert all(a["endsAt"] is None for a in await history(client, status="firing"))


async def test_response_has_the_legacy_keys_and_comes_after_the_commit(
    make_settings: SettingsFactory,
) -> None:
    committed: list[str] = []
    hooks = Hooks(after_commit=lambda events: committed.extend(e.fingerprint for e in events))
    async with (
        running(make_settings(), hooks) as service,
        httpx.AsyncClient(base_url=service.url) as client,
    ):
        response = await client.post("/webhook/", content=fixture_body("single"))
        assert response.status_code == 200
        assert committed == ["0bc11abe41af2c6e"]  # committed before the answer was sent
        body = response.json()
        assert body["status"] == "success"
        assert body["processed"] == body["processed_alerts"] == 1
        for key in ("message", "mode", "processing_time_ms", "timestamp"):
            assert key in body


async def test_held_writer_gives_503_with_retry_after_within_budget_and_loses_nothing(
    make_settings: SettingsFactory,
) -> None:
    release = trio.Event()
    held = trio.Event()

    async def before_commit(_: int) -> None:
        held.set()
        await release.wait()

    settings = make_settings(
        INGEST_QUEUE_SIZE="2", DEDUP_QUEUE_SIZE="2", WRITER_QUEUE_SIZE="2",
        INGEST_ENQUEUE_TIMEOUT="0.3", INGEST_COMMIT_TIMEOUT="0.6", INGEST_RETRY_AFTER="7",
    )  # fmt: skip
    budget = 0.3 + 0.6
    answers: dict[str, tuple[int, str | None, float]] = {}
    async with (
        running(settings, Hooks(before_commit=before_commit)) as service,
        httpx.AsyncClient(base_url=service.url, timeout=30) as client,
    ):

        async def post(name: str) -> None:
            started = trio.current_time()
            response = await client.post("/webhook", content=encode(webhook(alert(name))))
            elapsed = trio.current_time() - started
            answers[name] = (response.status_code, response.headers.get("Retry-After"), elapsed)

        async with trio.open_nursery() as nursery:
            for i in range(20):
                nursery.start_soon(post, f"Held{i}")
        assert held.is_set()
        assert {status for status, _, _ in answers.values()} == {503}
        assert {retry for _, retry, _ in answers.values()} == {"7"}
        assert max(elapsed for _, _, elapsed in answers.values()) < budget + 1.0

        release.set()
        after = await client.post("/webhook", content=encode(webhook(alert("After"))))
        assert after.status_code == 200
        stored = {a["alertname"] for a in await history(client)}
        assert "After" in stored
        # a 503 promises nothing: some of the held ones may have been committed later
        assert stored <= {f"Held{i}" for i in range(20)} | {"After"}


async def test_deduplicator_crash_restarts_it_and_no_acknowledged_alert_is_lost(
    make_settings: SettingsFactory,
) -> None:
    crashed = trio.Event()

    async def crash_once(_: EventBatch) -> None:
        if not crashed.is_set():
            crashed.set()
            raise RuntimeError("injected deduplicator crash")

    async with (
        running(make_settings(), Hooks(before_dedup=crash_once)) as service,
        httpx.AsyncClient(base_url=service.url, timeout=30) as client,
    ):
        answers: dict[str, int] = {}

        async def post(name: str) -> None:
            response = await client.post("/webhook", content=encode(webhook(alert(name))))
            answers[name] = response.status_code

        async with trio.open_nursery() as nursery:
            for i in range(30):
                nursery.start_soon(post, f"Crash{i}")
        assert crashed.is_set()
        assert sorted(answers.values()).count(503) <= 1
        acknowledged = {name for name, status in answers.items() if status == 200}
        assert len(acknowledged) >= 29
        stored = {a["alertname"] for a in await history(client)}
        assert acknowledged <= stored

        tree = (await client.get("/health/supervisor")).json()
        pipeline = next(c for c in tree["children"] if c["name"] == "pipeline")
        dedup = next(c for c in pipeline["children"] if c["name"] == "deduplicator")
        assert dedup["restarts"] == 1
        assert dedup["state"] == "running"
        assert dedup["last_error"]["type"] == "RuntimeError"
        assert dedup["last_error"]["message"] == "injected deduplicator crash"
        metrics = (await client.get("/metrics")).text
        assert 'alert_history_actor_restarts_total{actor="deduplicator"} 1.0' in metrics
