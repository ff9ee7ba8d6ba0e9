"""The classification API and the classifier in the running service, against the stand-in LLM.

Every endpoint's shape, 404/422/503, the cache hit path (in-process and Redis), and the
classifier fed by committed webhooks.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import redis
import trio

from alert_history.actors import Hooks
from alert_history.app import Service
from alert_history.kv import ClassificationCache, RedisKV
from tests.conftest import SettingsFactory, running
from tests.llm_server import LLMServer, running_llm_server
from tests.pg import free_port
from tests.support import alert, webhook
from tests.test_classifier import Results

RESPONSE_KEYS = {"fingerprint", "severity", "confidence", "reasoning", "recommendations",
                 "processing_time", "metadata", "cached"}  # fmt: skip


@asynccontextmanager
async def classifying(
    make_settings: SettingsFactory, llm: LLMServer, **env: str
) -> AsyncIterator[tuple[Service, httpx.AsyncClient, Results]]:
    results = Results()
    defaults = {"LLM_ENABLED": "true", "LLM_PROXY_URL": llm.url, "LLM_API_KEY": "sk-test",
                "LLM_MAX_RETRIES": "0", "LLM_TIMEOUT": "10"}  # fmt: skip
    settings = make_settings(**{**defaults, **env})
    async with (
        running(settings, Hooks(classified=results)) as service,
        httpx.AsyncClient(base_url=service.url, timeout=30) as client,
    ):
        yield service, client, results


async def post_alerts(client: httpx.AsyncClient, *fps: str) -> dict[str, object]:
    body = webhook(*[alert(f"Alert{fp}", fingerprint=fp, severity="warning") for fp in fps])
    response = await client.post("/webhook", json=body)
    assert response.status_code == 200, response.text
    answer: dict[str, object] = response.json()
    return answer


def metric(service: Service, name: str, **labels: str) -> float:
    value = service.metrics.registry.get_sample_value(f"alert_history_{name}", labels)
    return 0.0 if value is None else value


async def test_committed_alerts_are_classified_stored_and_served(
    make_settings: SettingsFactory,
) -> None:
    async with (
        running_llm_server() as llm,
        classifying(make_settings, llm) as (service, client, results),
    ):
        answer = await post_alerts(client, "fp1")
        assert answer["mode"] == "enriched"
        await results.wait_for(lambda items: bool(results.of("fp1")))

        response = await client.get("/classification/fp1")
        assert response.status_code == 200
        body = response.json()
        assert body.keys() >= RESPONSE_KEYS
        assert (body["severity"], body["confidence"], body["cached"]) == ("critical", 0.9, True)
        assert body["recommendations"] == ["Check the runbook"]
        assert body["metadata"]["fallback"] is False
        assert body["metadata"]["prompt_version"] == "v1"
        assert len(llm.requests) == 1
        assert llm.requests[0].body["messages"][1]["content"].startswith("Name: Alertfp1")

        assert metric(service, "classification_total", severity="critical", model="gpt-4") == 1
        assert metric(service, "classification_tokens_total", model="gpt-4") == 160
        assert metric(service, "classification_duration_seconds_count", model="gpt-4") == 1
        text = (await client.get("/metrics")).text
        assert "alert_history_llm_circuit_breaker_state 0.0" in text
        assert "alert_history_enrichment_enriched_alerts_total 1.0" in text


async def test_unknown_fingerprints_are_404(make_settings: SettingsFactory) -> None:
    async with running_llm_server() as llm, classifying(make_settings, llm) as (_, client, _r):
        for method, path in [("GET", "/classification/nope"),
                             ("POST", "/classification/refresh/nope"),
                             ("GET", "/classification/nope%00x")]:  # fmt: skip
            response = await client.request(method, path)
            assert response.status_code == 404
            assert "nope" in response.json()["detail"]
        assert llm.requests == []


async def test_refresh_classifies_again_and_is_not_cached(make_settings: SettingsFactory) -> None:
    async with (
        running_llm_server() as llm,
        classifying(make_settings, llm) as (_, client, results),
    ):
        await post_alerts(client, "fp2")
        await results.wait_for(lambda items: bool(results.of("fp2")))
        llm.severity = "noise"
        response = await client.post("/classification/refresh/fp2")
        assert response.status_code == 200
        body = response.json()
        assert body.keys() >= RESPONSE_KEYS
        assert (body["severity"], body["cached"]) == ("noise", False)
        assert len(llm.requests) == 2
        assert (await client.get("/classification/fp2")).json()["severity"] == "noise"


async def test_bulk_answers_each_fingerprint_and_names_the_missing(
    make_settings: SettingsFactory,
) -> None:
    async with (
        running_llm_server() as llm,
        classifying(make_settings, llm) as (_, client, results),
    ):
        await post_alerts(client, "b1", "b2")
        await results.wait_for(lambda items: bool(results.of("b1") and results.of("b2")))
        response = await client.post(
            "/classification/bulk",
            json={"fingerprints": ["b1", "missing", "b2"], "include_recommendations": False},
        )
        assert response.status_code == 200
        body = response.json()
        assert set(body) == {"results", "total_processed", "errors", "processing_time"}
        assert [r["fingerprint"] for r in body["results"]] == ["b1", "b2"]
        assert all(r["cached"] and r["recommendations"] == [] for r in body["results"])
        assert body["total_processed"] == 2
        assert body["errors"] == [{"fingerprint": "missing", "error": "alert not found"}]
        assert len(llm.requests) == 2  # both answers came from the cache


@pytest.mark.parametrize(
    ("payload", "status", "field"),
    [
        ({"fingerprints": []}, 422, "$.fingerprints"),
        ({"fingerprints": [f"f{i}" for i in range(51)]}, 422, "$.fingerprints"),
        ({"fingerprints": [1]}, 422, "$.fingerprints[0]"),
        ({}, 422, "$.fingerprints"),
        ({"fingerprints": ["a"], "force_refresh": "yes"}, 422, "$.force_refresh"),
        ("{not json", 400, "$"),
    ],
)
async def test_bulk_refuses_bad_bodies_naming_the_field(
    make_settings: SettingsFactory, payload: object, status: int, field: str
) -> None:
    async with running_llm_server() as llm, classifying(make_settings, llm) as (_, client, _r):
        if isinstance(payload, str):
            response = await client.post("/classification/bulk", content=payload)
        else:
            response = await client.post("/classification/bulk", json=payload)
        assert response.status_code == status
        (detail,) = response.json()["detail"]
        assert detail["field"] == field


async def test_classify_inline_alert_then_a_cache_hit_without_an_llm_call(
    make_settings: SettingsFactory,
) -> None:
    payload = {"alert": {"alertname": "DiskFull", "labels": {"severity": "warning"},
                         "annotations": {"summary": "disk"}}}  # fmt: skip
    async with running_llm_server() as llm, classifying(make_settings, llm) as (svc, client, _r):
        first = await client.post("/classification/classify", json=payload)
        assert first.status_code == 200
        body = first.json()["classification"]
        assert {"severity", "confidence", "category", "reasoning", "model", "cached",
                "processing_time_ms"} <= body.keys()  # fmt: skip
        assert (body["severity"], body["category"], body["model"], body["cached"]) == (
            "critical",
            "test",
            "gpt-4",
            False,
        )
        second = await client.post("/classification/classify", json=payload)
        assert second.json()["classification"]["cached"] is True
        assert len(llm.requests) == 1
        assert metric(svc, "cache_hits_total", cache_type="classification") >= 1
        forced = await client.post("/classification/classify", json={**payload, "force": True})
        assert forced.json()["classification"]["cached"] is False
        assert len(llm.requests) == 2

        bad = await client.post("/classification/classify", json={"alert": {"labels": {}}})
        assert bad.status_code == 422
        assert bad.json()["detail"][0]["field"] == "$.alert.alertname"


async def test_the_cache_is_redis_when_configured(
    make_settings: SettingsFactory, redis_url: str
) -> None:
    payload = {"alert": {"alertname": "CacheMe", "labels": {"severity": "info"}}}
    async with (
        running_llm_server() as llm,
        classifying(make_settings, llm, REDIS_URL=redis_url, LLM_CACHE_TTL="120") as (
            _,
            client,
            _r,
        ),
    ):
        first = await client.post("/classification/classify", json=payload)
        second = await client.post("/classification/classify", json=payload)
        assert (first.json()["classification"]["cached"],
                second.json()["classification"]["cached"]) == (False, True)  # fmt: skip
        assert len(llm.requests) == 1
        health = (await client.get("/classification/health")).json()
        assert health["components"]["cache"] == {"status": "healthy", "enabled": True,
                                                 "type": "redis"}  # fmt: skip
    r = redis.Redis.from_url(redis_url)
    try:
        (key,) = r.keys("classification:*")
        assert 0 < r.ttl(key) <= 120
        assert b'"severity":"critical"' in r.get(key)
    finally:
        r.close()


async def test_redis_down_is_a_cache_miss_not_an_error(make_settings: SettingsFactory) -> None:
    payload = {"alert": {"alertname": "NoRedis"}}
    async with (
        running_llm_server() as llm,
        classifying(make_settings, llm, REDIS_URL="redis://127.0.0.1:1/0") as (_, client, _r),
    ):
        response = await client.post("/classification/classify", json=payload)
        assert response.status_code == 200
        assert response.json()["classification"]["cached"] is False
        health = (await client.get("/classification/health")).json()
        assert health["status"] == "degraded"
        assert health["components"]["cache"]["status"] == "unhealthy"


async def test_stats_health_and_models_shapes(make_settings: SettingsFactory) -> None:
    async with (
        running_llm_server() as llm,
        classifying(make_settings, llm) as (_, client, results),
    ):
        await post_alerts(client, "s1")
        await results.wait_for(lambda items: bool(results.of("s1")))
        await client.get("/classification/s1")

        stats = (await client.get("/classification/stats")).json()
        assert {"total_requests", "cache_hits", "llm_requests", "fallback_used", "errors",
                "cache_hit_rate", "llm_usage_rate", "fallback_rate",
                "error_rate"} <= stats.keys()  # fmt: skip
        assert stats["llm_requests"] == 1
        assert stats["by_severity"] == {"critical": {"count": 1, "avg_confidence": 0.9}}

        health = (await client.get("/classification/health")).json()
        assert health["status"] == "healthy"
        llm_part = health["components"]["llm_client"]
        assert llm_part["status"] == "healthy"
        assert llm_part["circuit_breaker"]["state"] == "closed"
        assert health["components"]["cache"] == {"status": "healthy", "enabled": True,
                                                 "type": "memory"}  # fmt: skip
        assert isinstance(health["timestamp"], float)

        models = (await client.get("/classification/models")).json()
        assert models["default_model"] == "gpt-4"
        (model,) = models["models"]
        assert (model["name"], model["status"], model["success_rate"]) == (
            "gpt-4",
            "available",
            1.0,
        )
        assert model["latency_p95_ms"] >= 0

        tree = (await client.get("/health/supervisor")).json()
        (pipeline,) = [c for c in tree["children"] if c["name"] == "pipeline"]
        (child,) = [c for c in pipeline["children"] if c["name"] == "classifier"]
        assert child["state"] == "running"
        assert child["circuit_breaker"]["state"] == "closed"


async def test_every_route_is_503_when_classification_is_disabled(
    make_settings: SettingsFactory,
) -> None:
    async with (
        running(make_settings()) as service,
        httpx.AsyncClient(base_url=service.url) as client,
    ):
        for method, path in [
                ("GET", "/classification/x"), ("POST", "/classification/refresh/x"),
                ("POST", "/classification/bulk"), ("GET", "/classification/stats"),
                ("GET", "/classification/health"), ("POST", "/classification/classify"),
                ("GET", "/classification/models"),
            ]:  # fmt: skip
            response = await client.request(method, path)
            assert response.status_code == 503, path
            assert response.json() == {"detail": "Classification service not available"}
        tree = (await client.get("/health/supervisor")).json()
        (pipeline,) = [c for c in tree["children"] if c["name"] == "pipeline"]
        assert "classifier" not in [c["name"] for c in pipeline["children"]]


async def test_a_webhook_never_waits_for_a_hung_llm(make_settings: SettingsFactory) -> None:
    async with (
        running_llm_server("hang") as llm,
        classifying(make_settings, llm, LLM_TIMEOUT="30") as (service, client, results),
    ):
        with trio.fail_after(10):
            await post_alerts(client, "h1")
            while not llm.requests:
                await llm.request_seen.wait()
        # the call for h1 hangs; more webhooks are answered while it does
        for i in range(5):
            with trio.fail_after(5):
                await post_alerts(client, f"h{i + 2}")
        assert results.items == []  # nothing finished: the LLM still holds the calls
        assert service.classification is not None
        assert service.classification.limiter.borrowed_tokens >= 1


@pytest.mark.slow
async def test_live_a_refusing_llm_opens_the_breaker_and_the_server_process_closes_it(
    make_settings: SettingsFactory,
) -> None:
    port = free_port()  # nothing listens yet: connections are refused
    reset = 2.0
    async with (
        running_llm_server() as unused,  # classifying() wants a server; this one is not used
        classifying(
            make_settings, unused, LLM_PROXY_URL=f"http://127.0.0.1:{port}",
            LLM_BREAKER_FAILURES="2", LLM_BREAKER_RESET=str(reset), LLM_POLL_INTERVAL="60",
        ) as (service, client, results),
    ):  # fmt: skip
        classification = service.classification
        assert classification is not None
        await post_alerts(client, "l1", "l2")
        await results.wait_for(lambda items: bool(results.of("l1") and results.of("l2")))
        assert all(item.fallback for item in results.items)
        health = (await client.get("/classification/health")).json()
        assert health["status"] == "unhealthy"
        assert health["components"]["llm_client"]["circuit_breaker"]["state"] == "open"
        assert metric(service, "llm_circuit_breaker_state") == 2
        tree = (await client.get("/health/supervisor")).json()
        (pipeline,) = [c for c in tree["children"] if c["name"] == "pipeline"]
        (child,) = [c for c in pipeline["children"] if c["name"] == "classifier"]
        assert child["circuit_breaker"]["state"] == "open"

        # while open, a new alert gets the fallback at once
        opened = classification.breaker_snapshot().opened_at
        assert opened is not None
        with trio.fail_after(reset / 2):
            await post_alerts(client, "l3")
            await results.wait_for(lambda items: bool(results.of("l3")))
        assert results.of("l3")[0].metadata["error"] == "circuit breaker open"

        # the stand-in LLM comes up as its own process on the refused port; at the reset time
        # the breaker half-opens, a fallback is retried as the trial call, and it closes
        process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "tests.llm_server", "--port", str(port)],
            stdout=subprocess.PIPE,
            cwd=Path(__file__).parents[1],
        )
        try:
            assert process.stdout is not None
            with trio.fail_after(30):
                assert b"http://127.0.0.1" in await process.stdout.receive_some()
                await classification.wait_closed()
            assert trio.current_time() - opened >= reset
            with trio.fail_after(30):
                await results.wait_for(
                    lambda items: all(not results.of(fp)[-1].fallback for fp in ("l1", "l2", "l3"))
                )
            stats = (await client.get(f"http://127.0.0.1:{port}/stats")).json()
            assert stats["requests"] == 3  # the trial and the two other fallbacks
            assert (await client.get("/classification/l1")).json()["metadata"]["fallback"] is False
        finally:
            process.kill()
            await process.wait()


async def test_a_redis_that_is_down_answers_every_read_as_a_miss() -> None:
    cache = ClassificationCache(
        redis=RedisKV("redis://127.0.0.1:1/0", timeout=0.2), ttl=60, max_size=10,
        clock=trio.current_time,
    )  # fmt: skip
    with trio.fail_after(5):
        assert await cache.get("fp") is None
        assert await cache.get("fp") is None  # skipped at once while it is down
    assert not cache.healthy


async def test_the_llm_api_key_is_sent_but_never_logged_or_served(
    make_settings: SettingsFactory, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "sk-live-0123456789abcdef"
    caplog.set_level("DEBUG")
    async with (
        running_llm_server("unauthorized") as llm,
        classifying(make_settings, llm, LLM_API_KEY=secret) as (_s, client, results),
    ):
        await post_alerts(client, "fpsecret")
        await results.wait_for(lambda items: bool(results.of("fpsecret")))
        sent = llm.requests[0].headers
        assert (sent["x-litellm-api-key"], sent["authorization"]) == (secret, f"Bearer {secret}")
        served = [
            await client.get(path)
            for path in (
                "/classification/fpsecret",
                "/classification/health",
                "/classification/stats",
                "/classification/models",
                "/health/supervisor",
                "/metrics",
                "/enrichment/mode",
            )
        ]
        assert [r.status_code for r in served] == [200] * len(served)
        assert served[0].json()["metadata"]["fallback"] is True  # the 401 fell back
    assert "fpsecret" in caplog.text  # the service's own log lines were captured
    texts = [r.text for r in served] + [caplog.text]
    assert not [t for t in texts if secret in t or "0123456789abcdef" in t]
