"""Bad input gets a 4xx JSON error naming the field, never a 500 or a hang."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from alert_history.app import Service
from tests.conftest import SettingsFactory, running
from tests.support import alert, encode, webhook

MAX_BODY = 65_536
GOOD_TIME = "2026-11-27T10:00:00Z"


def one(**overrides: object) -> bytes:
    body = alert("Bad")
    body.update(overrides)
    return encode(webhook(body))


def nested(depth: int) -> bytes:
    return b'{"alerts": [], "extra": ' + b"[" * depth + b"]" * depth + b"}"


# (case id, body, content type, status, field named in the error)
CASES: list[tuple[str, bytes, str | None, int, str]] = [
    ("not-json", b"hello", "application/json", 400, "$"),
    ("empty-body", b"", "application/json", 400, "$"),
    ("whitespace-body", b"   \n", "application/json", 400, "$"),
    ("truncated-json", b'{"alerts": [', "application/json", 400, "$"),
    ("invalid-utf8", one(labels={"alertname": "X"}).replace(b'"X"', b'"\xff\xfe"'),
     "application/json", 400, "$"),
    ("deep-nesting", nested(20_000), "application/json", 400, "$"),
    ("json-array", b"[]", "application/json", 422, "$"),
    ("json-string", b'"alerts"', "application/json", 422, "$"),
    ("json-null", b"null", "application/json", 422, "$"),
    ("missing-alerts", b"{}", "application/json", 422, "$.alerts"),
    ("alerts-not-a-list", b'{"alerts": {}}', "application/json", 422, "$.alerts"),
    ("alert-not-an-object", b'{"alerts": [1]}', "application/json", 422, "$.alerts[0]"),
    ("alert-missing-labels", encode(webhook({"startsAt": GOOD_TIME})), None, 422,
     "$.alerts[0].labels"),
    ("alert-missing-startsAt", encode(webhook({"labels": {"a": "b"}})), None, 422,
     "$.alerts[0].startsAt"),
    ("labels-not-an-object", one(labels=["a"]), None, 422, "$.alerts[0].labels"),
    ("label-value-a-number", one(labels={"alertname": 1}), None, 422, "$.alerts[0].labels[...]"),
    ("annotation-value-a-list", one(annotations={"x": []}), None, 422,
     "$.alerts[0].annotations[...]"),
    ("startsAt-not-a-time", one(startsAt="yesterday"), None, 422, "$.alerts[0].startsAt"),
    ("startsAt-date-only", one(startsAt="2026-11-27"), None, 422, "$.alerts[0].startsAt"),
    ("startsAt-month-13", one(startsAt="2026-13-01T00:00:00Z"), None, 422, "$.alerts[0].startsAt"),
    ("startsAt-a-number", one(startsAt=1700000000), None, 422, "$.alerts[0].startsAt"),
    ("startsAt-zero-time", one(startsAt="0001-01-01T00:00:00Z"), None, 422,
     "$.alerts[0].startsAt"),
    ("startsAt-out-of-range", one(startsAt="9999-01-01T00:00:00Z"), None, 422,
     "$.alerts[0].startsAt"),
    ("endsAt-before-startsAt", one(endsAt="2000-01-01T00:00:00Z"), None, 422,
     "$.alerts[0].endsAt"),
    ("endsAt-ten-fraction-digits", one(endsAt="2026-11-28T00:00:00.0123456789Z"), None, 422,
     "$.alerts[0].endsAt"),
    ("alert-status-unknown", one(status="pending"), None, 422, "$.alerts[0].status"),
    ("envelope-status-unknown", encode(webhook(alert(), status="bad")), None, 422, "$.status"),
    ("truncatedAlerts-a-string", encode(webhook(alert(), truncatedAlerts="x")), None, 422,
     "$.truncatedAlerts"),
    ("receiver-a-number", encode(webhook(alert(), receiver=7)), None, 422, "$.receiver"),
    ("fingerprint-too-long", one(fingerprint="f" * 200), None, 422, "$.alerts[0].fingerprint"),
    ("second-alert-bad", encode(webhook(alert(), alert(starts_at="nope"))), None, 422,
     "$.alerts[1].startsAt"),
    ("content-type-xml", encode(webhook(alert())), "application/xml", 415, ""),
    ("content-type-multipart", encode(webhook(alert())), "multipart/form-data; boundary=x", 415,
     ""),
    ("body-over-limit", b"{" + b" " * MAX_BODY + b"}", "application/json", 413, ""),
]  # fmt: skip


@pytest.fixture
async def small_body_service(make_settings: SettingsFactory) -> AsyncIterator[Service]:
    async with running(make_settings(MAX_BODY_BYTES=str(MAX_BODY))) as svc:
        yield svc


async def test_every_malformed_request_gets_a_4xx_naming_the_field(
    small_body_service: Service,
) -> None:
    assert len(CASES) >= 25
    async with httpx.AsyncClient(base_url=small_body_service.url, timeout=10) as client:
        for case, body, content_type, status, field in CASES:
            headers = {"Content-Type": content_type} if content_type else {}
            response = await client.post("/webhook", content=body, headers=headers)
            assert response.status_code == status, (case, response.text[:300])
            assert response.headers["content-type"] == "application/json", case
            detail = response.json()["detail"]
            if field:
                assert detail[0]["field"] == field, (case, detail)
                assert detail[0]["msg"], case
            else:
                assert isinstance(detail, str) and detail, case
        # the service keeps serving, and stored none of the bad input
        ok = await client.post("/webhook", content=encode(webhook(alert("Good"))))
        assert ok.status_code == 200
        history = (await client.get("/history")).json()
        assert [a["alertname"] for a in history["alerts"]] == ["Good"]


async def test_chunked_body_over_the_limit_is_refused(small_body_service: Service) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(MAX_BODY // 4096 + 2):
            yield b" " * 4096

    async with httpx.AsyncClient(base_url=small_body_service.url, timeout=10) as client:
        response = await client.post("/webhook", content=chunks())
        assert response.status_code == 413
        assert "larger than" in response.json()["detail"]


async def test_a_body_of_exactly_the_limit_is_read(small_body_service: Service) -> None:
    payload = encode(webhook(alert("Edge")))
    body = payload[:-1] + b" " * (MAX_BODY - len(payload)) + b"}"
    assert len(body) == MAX_BODY
    async with httpx.AsyncClient(base_url=small_body_service.url, timeout=10) as client:
        response = await client.post("/webhook", content=body)
        assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/webhook", 405), ("POST", "/nope", 404), ("GET", "/history?limit=0", 422),
     ("GET", "/history?limit=abc", 422), ("GET", "/history?status=open", 422),
     ("GET", "/history?since=notatime", 422), ("GET", "/history?cursor=%%%", 422),
     ("GET", "/history?offset=-1", 422)],
)  # fmt: skip
async def test_other_bad_requests_answer_json_errors(
    client: httpx.AsyncClient, method: str, path: str, status: int
) -> None:
    response = await client.request(method, path)
    assert response.status_code == status
    body = response.json()
    assert "detail" in body
    if status == 422:
        param = path.split("?")[1].split("=")[0]
        assert body["detail"][0]["field"] == param


async def test_curl_style_form_content_type_with_a_json_body_is_accepted(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/webhook",
        content=json.dumps(webhook(alert("Curl"))),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
