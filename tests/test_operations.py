"""What operators see: readiness, the supervisor tree, metrics, JSON logs and the CLI."""

from __future__ import annotations

import json
import logging
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trio

from alert_history.actors import Hooks
from alert_history.app import Service
from alert_history.logs import JsonFormatter
from alert_history.messages import EventBatch
from alert_history.models import AlertEvent
from tests.conftest import SettingsFactory, running
from tests.support import alert, encode, fixture_body, service_env, webhook


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "alert_history", *args],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_readyz_is_ready_then_503_when_storage_is_gone(
    service: Service, client: httpx.AsyncClient
) -> None:
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["dependencies"] == {"database": True, "actors": True}
    await service.storage.aclose()
    gone = await client.get("/readyz")
    assert gone.status_code == 503
    assert gone.json()["dependencies"]["database"] is False
    healthz = await client.get("/healthz")  # liveness checks nothing external
    assert healthz.status_code == 200
    assert healthz.json()["status"] == "healthy"


async def test_supervisor_tree_names_every_actor_with_its_state_and_inbox(
    client: httpx.AsyncClient,
) -> None:
    tree = (await client.get("/health/supervisor")).json()
    assert (tree["name"], tree["strategy"], tree["state"]) == ("root", "one_for_one", "running")
    children = {c["name"]: c for c in tree["children"]}
    assert list(children) == ["pipeline", "metrics", "housekeeping", "rollup", "http"]
    pipeline = {c["name"]: c for c in children["pipeline"]["children"]}
    assert list(pipeline) == ["writer", "router", "deduplicator", "ingest"]
    for child in pipeline.values():
        assert child["state"] == "running"
        assert child["restarts"] == 0
        assert child["last_error"] is None
        assert child["inbox_depth"] == 0
        assert child["inbox_capacity"] == 256
        assert child["since"].endswith("Z")


async def test_metrics_count_events_by_alertname_and_status_and_time_requests(
    client: httpx.AsyncClient,
) -> None:
    await client.post("/webhook", content=fixture_body("group5"))
    await client.post("/webhook", content=fixture_body("resolved"))
    await client.post("/webhook", content=b"nope")
    text = (await client.get("/metrics")).text
    assert (
        'alert_history_webhook_events_total{alertname="HarnessGroup",status="firing"} 5.0' in text
    )
    assert (
        'alert_history_webhook_events_total{alertname="HarnessGroup",status="resolved"} 5.0' in text
    )
    assert 'alert_history_request_latency_seconds_count{endpoint="/webhook"} 3.0' in text
    assert 'alert_history_webhook_errors_total{reason="invalid_json"} 1.0' in text
    assert 'alert_history_alert_states_written_total{kind="new"} 10.0' in text
    assert 'alert_history_channel_capacity{channel="writer"} 256.0' in text
    assert 'alert_history_actor_restarts_total{actor="ingest"} 0.0' in text
    assert "process_resident_memory_bytes" in text


async def test_waiting_batches_are_committed_in_one_transaction(
    make_settings: SettingsFactory,
) -> None:
    release, held, all_waiting, second_commit = (
        trio.Event(),
        trio.Event(),
        trio.Event(),
        trio.Event(),
    )
    groups: list[list[str]] = []
    waiting_seen: list[str] = []

    async def before_commit(_: int) -> None:
        held.set()
        await release.wait()

    async def before_dedup(batch: EventBatch) -> None:
        name = batch.events[0].alertname
        if name.startswith("Waiting"):
            waiting_seen.append(name)
            if len(waiting_seen) == 5:
                all_waiting.set()
        elif name == "Last":
            # the deduplicator handles batches in order: all five are in the writer's inbox
            release.set()
            await second_commit.wait()

    def after_commit(events: list[AlertEvent]) -> None:
        groups.append(sorted(e.alertname for e in events))
        if len(groups) == 2:
            second_commit.set()

    hooks = Hooks(before_commit=before_commit, before_dedup=before_dedup, after_commit=after_commit)
    async with (
        running(make_settings(), hooks) as service,
        httpx.AsyncClient(base_url=service.url, timeout=30) as client,
    ):
        statuses: list[int] = []

        async def post(name: str) -> None:
            response = await client.post("/webhook", content=encode(webhook(alert(name))))
            statuses.append(response.status_code)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(post, "First")
            await held.wait()
            for i in range(5):
                nursery.start_soon(post, f"Waiting{i}")
            await all_waiting.wait()
            nursery.start_soon(post, "Last")
        assert statuses == [200] * 7
        assert groups == [["First"], [f"Waiting{i}" for i in range(5)], ["Last"]]


async def test_unicode_and_64k_values_round_trip_through_history(client: httpx.AsyncClient) -> None:
    raw = fixture_body("unicode")
    assert (await client.post("/webhook", content=raw)).status_code == 200
    sent = {a["fingerprint"]: a for a in json.loads(raw)["alerts"]}
    stored = (await client.get("/history")).json()["alerts"]
    assert {a["fingerprint"] for a in stored} == set(sent)
    for item in stored:
        assert item["labels"] == sent[item["fingerprint"]]["labels"]
        assert item["annotations"] == sent[item["fingerprint"]]["annotations"]


def test_json_log_lines_carry_the_request_id() -> None:
    from alert_history.logs import request_id

    token = request_id.set("abc123")
    try:
        record = logging.LogRecord("x", logging.INFO, "f", 1, "webhook stored", None, None)
        record.alerts = 3
        line = json.loads(JsonFormatter().format(record))
    finally:
        request_id.reset(token)
    assert line["msg"] == "webhook stored"
    assert line["request_id"] == "abc123"
    assert line["alerts"] == 3
    assert line["level"] == "info"


async def test_request_id_is_echoed_and_generated(client: httpx.AsyncClient) -> None:
    given = await client.get("/healthz", headers={"X-Request-ID": "from-client"})
    assert given.headers["X-Request-ID"] == "from-client"
    generated = await client.get("/healthz")
    assert len(generated.headers["X-Request-ID"]) == 16


def test_config_command_prints_effective_settings_with_secrets_redacted(tmp_path: Path) -> None:
    env = service_env(tmp_path / "a.db", LLM_API_KEY="sk-very-secret", PORT="9999")
    result = cli("config", env=env)
    assert result.returncode == 0, result.stderr
    settings = json.loads(result.stdout)
    assert settings["server"]["port"] == 9999
    assert settings["llm"]["api_key"] == "***"
    assert "sk-very-secret" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("env", "named"),
    [({"PORT": "eighty"}, "PORT"), ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
     ({"INGEST_QUEUE_SIZE": "0"}, "INGEST_QUEUE_SIZE")],
)  # fmt: skip
def test_invalid_setting_stops_start_up_naming_it(
    tmp_path: Path, env: dict[str, str], named: str
) -> None:
    result = cli("serve", env={**service_env(tmp_path / "a.db"), **env})
    assert result.returncode == 2
    assert named in result.stderr


def test_unknown_config_file_key_stops_start_up_naming_its_path(tmp_path: Path) -> None:
    config = tmp_path / "settings.yaml"
    config.write_text("server:\n  prot: 1\n")
    result = cli("--config", str(config), "serve", env=service_env(tmp_path / "a.db"))
    assert result.returncode == 2
    assert "server.prot" in result.stderr


def test_migrate_applies_then_reports_up_to_date_and_a_newer_schema_is_refused(
    tmp_path: Path,
) -> None:
    env = service_env(tmp_path / "a.db")
    dry = cli("migrate", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert "pending: 0001_initial" in dry.stdout
    applied = cli("migrate", env=env)
    assert "applied: 0001_initial" in applied.stdout
    assert "schema is up to date" in cli("migrate", env=env).stdout

    with sqlite3.connect(tmp_path / "a.db") as conn:
        conn.execute("INSERT INTO schema_migrations VALUES (999, 'future', 'x', 'now')")
    refused = cli("migrate", env=env)
    assert refused.returncode == 1
    assert "newer than this code knows" in refused.stderr


async def test_an_unsafe_request_id_is_replaced(client: httpx.AsyncClient) -> None:
    for path in ("/healthz", "/webhook"):
        response = await client.request(
            "POST" if path == "/webhook" else "GET",
            path,
            headers={"X-Request-ID": "bad id\twith spaces"},
            content=fixture_body("single") if path == "/webhook" else None,
        )
        rid = response.headers["X-Request-ID"]
        assert rid != "bad id\twith spaces"
        assert len(rid) == 16
