"""GET /history: legacy v1 and v2 parameters, union fields, total, and a stable keyset cursor."""

from __future__ import annotations

import httpx

from tests.support import alert, encode, webhook


async def post(client: httpx.AsyncClient, *alerts: dict[str, object]) -> None:
    response = await client.post("/webhook", content=encode(webhook(*alerts)))
    assert response.status_code == 200, response.text


async def test_cursor_pages_stay_correct_while_new_alerts_arrive(client: httpx.AsyncClient) -> None:
    for i in range(25):
        await post(client, alert(f"Page{i:02d}"))
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"limit": 10}
        if cursor:
            params["cursor"] = cursor
        body = (await client.get("/history", params=params)).json()
        seen.extend(a["alertname"] for a in body["alerts"])
        cursor = body["next_cursor"]
        pages += 1
        if pages == 1:
            assert body["total"] == 25
            for i in range(5):  # arrivals between page 1 and page 2 must not shift the pages
                await post(client, alert(f"Late{i}"))
        if cursor is None:
            break
    assert pages == 3
    assert seen == [f"Page{i:02d}" for i in reversed(range(25))]


async def test_filters_of_v1_and_v2_select_the_same_rows_as_the_data(
    client: httpx.AsyncClient,
) -> None:
    await post(
        client,
        alert("CPU", namespace="prod", severity="critical", starts_at="2026-01-01T10:00:00Z"),
        alert("CPU", namespace="dev", severity="warning", starts_at="2026-01-02T10:00:00Z"),
        alert("Disk", namespace="prod", starts_at="2026-01-03T10:00:00+02:00"),
    )
    await post(
        client,
        alert("CPU", status="resolved", namespace="prod", severity="critical",
              starts_at="2026-01-01T10:00:00Z", ends_at="2026-01-01T11:00:00Z"),
    )  # fmt: skip

    async def names(**params: str) -> list[tuple[str, str | None, str]]:
        body = (await client.get("/history", params=params)).json()
        if "offset" not in params:
            assert body["total"] == len(body["alerts"])
        return [(a["alertname"], a["namespace"], a["status"]) for a in body["alerts"]]

    assert await names(alertname="CPU", namespace="prod") == [
        ("CPU", "prod", "resolved"), ("CPU", "prod", "firing")
    ]  # fmt: skip
    assert await names(status="resolved") == [("CPU", "prod", "resolved")]
    assert await names(severity="warning") == [("CPU", "dev", "firing")]
    assert await names(start_time="2026-01-02T00:00:00Z") == [
        ("Disk", "prod", "firing"), ("CPU", "dev", "firing")
    ]  # fmt: skip
    assert await names(end_time="2026-01-01T23:59:59") == [
        ("CPU", "prod", "resolved"), ("CPU", "prod", "firing")
    ]  # fmt: skip
    assert await names(since="2000-01-01T00:00:00", alertname="Disk") == [
        ("Disk", "prod", "firing")
    ]
    assert await names(until="2000-01-01T00:00:00") == []
    assert await names(offset="1", limit="2") == [
        ("Disk", "prod", "firing"),
        ("CPU", "dev", "firing"),
    ]


async def test_each_alert_carries_the_union_of_legacy_fields(client: httpx.AsyncClient) -> None:
    await post(client, alert("Union", namespace="ns1", severity="info",
                             starts_at="2026-11-27T10:00:00.123456789+01:00"))  # fmt: skip
    item = (await client.get("/history")).json()["alerts"][0]
    for key in ("alertname", "fingerprint", "status", "labels", "annotations", "startsAt",
                "endsAt", "generatorURL", "updatedAt", "namespace", "severity"):  # fmt: skip
        assert key in item, key
    assert item["startsAt"] == "2026-11-27T09:00:00.123456789Z"
    assert item["endsAt"] is None
    assert (item["namespace"], item["severity"]) == ("ns1", "info")
    assert item["labels"]["alertname"] == "Union"


async def test_filter_takes_alertmanager_matchers_and_names_a_bad_one(
    client: httpx.AsyncClient,
) -> None:
    await post(
        client,
        alert("A", severity="critical", namespace="prod"),
        alert("B", severity="critical", namespace="dev"),
        alert("C", severity="warning", namespace="prod"),
    )
    body = (
        await client.get("/history", params={"filter": '{severity=~"crit.*",namespace!="dev"}'})
    ).json()
    assert [a["alertname"] for a in body["alerts"]] == ["A"]
    assert body["total"] == 1
    both = await client.get(
        "/history", params=[("filter", 'namespace="prod"'), ("filter", "severity=warning")]
    )
    assert [a["alertname"] for a in both.json()["alerts"]] == ["C"]
    bad = await client.get("/history", params={"filter": '{severity=~"crit['})
    assert bad.status_code == 422
    detail = bad.json()["detail"][0]
    assert detail["field"] == "filter"
    assert "quoted string" in detail["msg"] or "regular expression" in detail["msg"]


async def test_a_label_matcher_counts_up_to_its_own_cap_and_says_so(
    client: httpx.AsyncClient,
) -> None:
    # 1,005 matching alerts and 1 that does not: a matcher's total stops at 1,000 (each
    # candidate row's labels are decoded), a plain filter keeps counting to 10,000.
    for first in range(0, 1005, 201):
        await post(
            client,
            *(alert(f"Many{n}", severity="critical") for n in range(first, first + 201)),
        )
    await post(client, alert("Other", severity="warning"))
    matched = (await client.get("/history", params={"filter": 'severity="critical"'})).json()
    assert (matched["total"], matched["total_capped"]) == (1000, True)
    assert len(matched["alerts"]) == 100
    plain = (await client.get("/history", params={"severity": "critical"})).json()
    assert (plain["total"], plain["total_capped"]) == (1005, False)
    everything = (await client.get("/history")).json()
    assert (everything["total"], everything["total_capped"]) == (1006, False)
