"""Every payload format is detected and stored with Alertmanager-compatible fingerprints."""

from __future__ import annotations

import json

import httpx
import pytest

from alert_history.domain import (
    NONE_NS,
    InvalidPayload,
    decode_postable_alerts,
    decode_webhook,
    fingerprint,
    parse_rfc3339_ns,
)
from tests.support import alert, encode, fixture_body, webhook

NOW = parse_rfc3339_ns("2026-11-27T12:00:00Z")
GRAFANA_LABELS = {"alertname": "HighCPU", "grafana_folder": "Infra", "instance": "node-1"}


def grafana_payload() -> dict[str, object]:
    """Grafana unified alerting's webhook, as its documentation shows it."""
    return {
        "receiver": "My Super Webhook",
        "status": "firing",
        "orgId": 1,
        "alerts": [
            {
                "status": "firing",
                "labels": GRAFANA_LABELS,
                "annotations": {"summary": "CPU above 90%"},
                "startsAt": "2026-11-27T13:59:00+02:00",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://grafana.local/alerting/grafana/abc/view",
                "fingerprint": fingerprint(GRAFANA_LABELS),
                "silenceURL": "http://grafana.local/alerting/silence/new?alertmanager=grafana",
                "dashboardURL": "http://grafana.local/d/dash",
                "panelURL": "http://grafana.local/d/dash?viewPanel=1",
                "values": {"B": 92.5, "C": 1},
                "valueString": "[ var='B' labels={instance=node-1} value=92.5 ]",
                "imageURL": "http://grafana.local/img.png",
            }
        ],
        "groupLabels": {"alertname": "HighCPU"},
        "commonLabels": GRAFANA_LABELS,
        "commonAnnotations": {},
        "externalURL": "http://grafana.local/",
        "version": "1",
        "groupKey": '{}:{alertname="HighCPU"}',
        "truncatedAlerts": 0,
        "title": "[FIRING:1] HighCPU Infra",
        "state": "alerting",
        "message": "**Firing**\n\nValue: B=92.5",
    }


def test_alertmanager_webhook_is_detected() -> None:
    batch = decode_webhook(fixture_body("group5"), NOW)
    assert batch.source == "alertmanager"
    assert len(batch.alerts) == 5


def test_grafana_webhook_is_detected_with_its_offset_timestamps() -> None:
    batch = decode_webhook(encode(grafana_payload()), NOW)
    assert batch.source == "grafana"
    (only,) = batch.alerts
    assert only.starts_at == parse_rfc3339_ns("2026-11-27T11:59:00Z")
    assert only.fingerprint == fingerprint(GRAFANA_LABELS)


def test_generic_single_alert_and_list_are_detected() -> None:
    one = {"labels": {"alertname": "Gen"}, "startsAt": "2026-11-27T11:00:00Z", "status": "firing"}
    batch = decode_webhook(encode(one), NOW)
    assert (batch.source, batch.alerts[0].status, batch.alerts[0].fingerprint) == (
        "generic",
        "firing",
        None,  # computed like Alertmanager by the deduplicator
    )
    many = decode_webhook(encode([one, {**one, "labels": {"alertname": "Gen2"}}]), NOW)
    assert [a.labels["alertname"] for a in many.alerts] == ["Gen", "Gen2"]


def test_postable_alerts_derive_status_from_ends_at_like_alertmanager() -> None:
    body = [
        {"labels": {"alertname": "Up"}, "startsAt": "2026-11-27T11:00:00Z",
         "endsAt": "2026-11-27T12:04:00Z"},  # Prometheus: a firing alert ends in the future
        {"labels": {"alertname": "Gone"}, "startsAt": "2026-11-27T11:00:00Z",
         "endsAt": "2026-11-27T11:30:00Z"},
        {"labels": {"alertname": "NoStart"}},
    ]  # fmt: skip
    batch = decode_postable_alerts(encode(body), NOW)
    assert batch.source == "prometheus"
    up, gone, no_start = batch.alerts
    assert (up.status, up.ends_at) == ("firing", NONE_NS)  # a moving endsAt is no new state
    assert (gone.status, gone.ends_at) == ("resolved", parse_rfc3339_ns("2026-11-27T11:30:00Z"))
    assert (no_start.status, no_start.starts_at) == ("firing", NOW)


@pytest.mark.parametrize(
    ("body", "path", "words"),
    [
        (b'{"foo": 1}', "$.alerts", ["none of the supported formats", "generic alert"]),
        (b'{"labels": {"a": 1}}', "$.labels[...]", ["Expected `str`"]),
        (b'[{"labels": {}, "startsAt": "x"}]', "$[0].startsAt", ["RFC 3339"]),
        (b"[]", "$", ["no alerts"]),
        (b'{"alerts": [{"labels": {}}]}', "$.alerts[0].startsAt", ["missing required field"]),
    ],
)
def test_an_unrecognised_body_says_what_was_tried(body: bytes, path: str, words: list[str]) -> None:
    with pytest.raises(InvalidPayload) as info:
        decode_webhook(body, NOW)
    assert info.value.status == 422
    assert info.value.path == path
    for word in words:
        assert word in info.value.message


async def test_every_format_is_stored_with_alertmanager_fingerprints(
    client: httpx.AsyncClient,
) -> None:
    generic = {"labels": {"alertname": "Gen", "job": "x"}, "startsAt": "2026-11-27T11:00:00Z"}
    postable = [{"labels": {"alertname": "Prom", "job": "y"}, "startsAt": "2026-11-27T11:00:00Z"}]
    for path, body in (
        ("/webhook", encode(grafana_payload())),
        ("/webhook", encode(generic)),
        ("/api/v2/alerts", encode(postable)),
        ("/webhook", encode(webhook(alert("AM")))),
    ):
        response = await client.post(path, content=body)
        assert response.status_code == 200, response.text
    stored = (await client.get("/history")).json()["alerts"]
    by_name = {a["alertname"]: a for a in stored}
    assert {n: a["source"] for n, a in by_name.items()} == {
        "HighCPU": "grafana", "Gen": "generic", "Prom": "prometheus", "AM": "alertmanager"
    }  # fmt: skip
    for item in stored:
        assert item["fingerprint"] == fingerprint(item["labels"])
    grafana = by_name["HighCPU"]["extra"]  # Grafana's own fields are kept as sent
    assert grafana["orgId"] == 1 and grafana["title"] == "[FIRING:1] HighCPU Infra"
    assert (grafana["state"], grafana["values"]) == ("alerting", {"B": 92.5, "C": 1})
    assert grafana["panelURL"] == "http://grafana.local/d/dash?viewPanel=1"
    assert grafana["message"].startswith("**Firing**")
    assert by_name["AM"]["extra"] is None
    unknown = await client.post("/webhook", content=json.dumps({"foo": 1}))
    assert unknown.status_code == 422
    assert "none of the supported formats" in unknown.json()["detail"][0]["msg"]
