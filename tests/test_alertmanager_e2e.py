"""End to end with a real Alertmanager: what it sends to /webhook is in /history once per state.

Each test runs the service in-process and an Alertmanager subprocess pointed at its /webhook
(group_wait 1s, group_interval 2s, send_resolved), pushes alerts through Alertmanager's API and
waits, on events set by the writer's after_commit hook, until the expected (fingerprint, status)
pairs were committed. Alertmanager re-sends whole groups, so the same state may arrive more than
once: /history must still hold exactly one row per (fingerprint, startsAt, status).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import trio

from alert_history.actors import Hooks
from alert_history.app import Service
from alert_history.domain import fingerprint, parse_rfc3339_ns
from alert_history.models import AlertEvent
from tests.alertmanager import Alertmanager, find_alertmanager, running_alertmanager
from tests.conftest import SettingsFactory, running

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        find_alertmanager() is None,
        reason="Alertmanager binary not found (apt-get install prometheus-alertmanager, "
        "or set ALERTMANAGER_BIN)",
    ),
]

ARRIVAL_TIMEOUT = 60
State = tuple[str, str]  # (fingerprint, status)


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass
class Commits:
    """The writer's after_commit hook: records every committed event, wakes waiting tests."""

    batches: list[list[AlertEvent]] = field(default_factory=list)
    seen: set[State] = field(default_factory=set)
    waiters: list[tuple[frozenset[State], trio.Event]] = field(default_factory=list)

    def after_commit(self, events: list[AlertEvent]) -> None:
        self.batches.append(list(events))
        self.seen.update((event.fingerprint, event.status) for event in events)
        for wanted, arrived in self.waiters:
            if wanted <= self.seen:
                arrived.set()

    def events(self, states: Iterable[State]) -> list[AlertEvent]:
        wanted = set(states)
        return [e for batch in self.batches for e in batch if (e.fingerprint, e.status) in wanted]

    async def wait_for(self, states: Iterable[State], am: Alertmanager) -> None:
        wanted = frozenset(states)
        arrived = trio.Event()
        self.waiters.append((wanted, arrived))
        if wanted <= self.seen:
            arrived.set()
        try:
            with trio.fail_after(ARRIVAL_TIMEOUT):
                await arrived.wait()
        except trio.TooSlowError:
            raise AssertionError(
                f"not committed within {ARRIVAL_TIMEOUT}s: {sorted(wanted - self.seen)}; "
                f"committed: {sorted(self.seen)}\nAlertmanager log:\n{am.log_text()}"
            ) from None
        finally:
            self.waiters.remove((wanted, arrived))


@dataclass
class E2E:
    service: Service
    am: Alertmanager
    commits: Commits
    client: httpx.AsyncClient

    async def push_and_fingerprint(self, alerts: list[dict[str, Any]]) -> dict[str, str]:
        """Push alerts of one alertname; return {instance (else alertname): fingerprint} for
        every active alert of that name, as Alertmanager's own API lists them.

        Checks that each fingerprint is the one `alert_history.domain.fingerprint` computes from
        the labels Alertmanager kept.
        """
        await self.am.push(alerts)
        (name,) = {a["labels"]["alertname"] for a in alerts}
        listed = await self.am.alerts(f'alertname="{name}"')
        fingerprints: dict[str, str] = {}
        for item in listed:
            labels: dict[str, str] = item["labels"]
            assert item["fingerprint"] == fingerprint(labels), labels
            fingerprints[labels.get("instance", name)] = item["fingerprint"]
        pushed = {a["labels"].get("instance", name) for a in alerts}
        assert pushed <= set(fingerprints), listed
        return fingerprints

    async def history(self, **params: str) -> list[dict[str, Any]]:
        response = await self.client.get("/history", params={"limit": "1000", **params})
        assert response.status_code == 200, response.text
        page: dict[str, Any] = response.json()
        rows: list[dict[str, Any]] = page["alerts"]
        assert page["total"] == len(rows)
        assert page["next_cursor"] is None
        return rows


def assert_once_per_state(
    rows: list[dict[str, Any]], expected: Mapping[State, tuple[str, str | None]]
) -> dict[State, dict[str, Any]]:
    """One row per (fingerprint, startsAt, status), exactly the expected states, each notified.

    `expected` maps (fingerprint, status) to the pushed (startsAt, endsAt or None for firing).
    """
    per_state = Counter(
        (row["fingerprint"], parse_rfc3339_ns(row["startsAt"]), row["status"]) for row in rows
    )
    duplicated = {state: n for state, n in per_state.items() if n != 1}
    assert not duplicated, f"states stored more than once: {duplicated}"
    by_state = {(row["fingerprint"], row["status"]): row for row in rows}
    assert set(by_state) == set(expected)
    for state, (starts_at, ends_at) in expected.items():
        row = by_state[state]
        assert row["notifyCount"] >= 1, row
        assert parse_rfc3339_ns(row["startsAt"]) == parse_rfc3339_ns(starts_at), row
        if ends_at is None:
            assert row["endsAt"] is None, row
        else:
            assert parse_rfc3339_ns(row["endsAt"]) == parse_rfc3339_ns(ends_at), row
    return by_state


def assert_sender_fingerprints(events: list[AlertEvent], fingerprints: Iterable[str]) -> None:
    """The webhook carried each fingerprint (kept, not recomputed) and it matches the labels."""
    assert events
    assert {e.fingerprint for e in events} == set(fingerprints)
    for event in events:
        assert not event.fingerprint_computed, event
        assert fingerprint(event.labels) == event.fingerprint, event.labels


@pytest.fixture
async def e2e(make_settings: SettingsFactory) -> AsyncIterator[E2E]:
    commits = Commits()
    hooks = Hooks(after_commit=commits.after_commit)
    async with (
        running(make_settings(), hooks=hooks) as service,
        running_alertmanager(f"{service.url}/webhook") as am,
        httpx.AsyncClient(base_url=service.url, timeout=30) as client,
    ):
        yield E2E(service, am, commits, client)


async def test_firing_repeat_and_resolution_once_per_state(e2e: E2E) -> None:
    starts_at = rfc3339(datetime.now(UTC) - timedelta(minutes=1))

    def firing(instance: str) -> dict[str, Any]:
        return {
            "labels": {"alertname": "E2EFiring", "instance": instance, "severity": "warning"},
            "annotations": {"summary": f"{instance} is on fire"},
            "startsAt": starts_at,
            "generatorURL": "http://prometheus.test/graph?g0.expr=up",
        }

    fp1 = (await e2e.push_and_fingerprint([firing("host-1")]))["host-1"]
    await e2e.commits.wait_for([(fp1, "firing")], e2e.am)

    # A sibling joins the group: Alertmanager re-sends the whole group, host-1 included.
    fp2 = (await e2e.push_and_fingerprint([firing("host-2")]))["host-2"]
    await e2e.commits.wait_for([(fp2, "firing")], e2e.am)
    assert len(e2e.commits.events([(fp1, "firing")])) >= 2, "host-1 was not re-sent"

    # Resolution: the same labels and startsAt again, endsAt in the past. Pushed only once the
    # firing state was delivered: Alertmanager never sends a resolution it did not announce.
    ends_at = rfc3339(datetime.now(UTC) - timedelta(seconds=1))
    await e2e.am.push([{**firing("host-1"), "endsAt": ends_at}])
    await e2e.commits.wait_for([(fp1, "resolved")], e2e.am)

    states = [(fp1, "firing"), (fp2, "firing"), (fp1, "resolved")]
    assert_sender_fingerprints(e2e.commits.events(states), [fp1, fp2])
    rows = await e2e.history(alertname="E2EFiring")
    by_state = assert_once_per_state(
        rows,
        {
            (fp1, "firing"): (starts_at, None),
            (fp2, "firing"): (starts_at, None),
            (fp1, "resolved"): (starts_at, ends_at),
        },
    )
    # Each re-sent state was counted on its one row, not stored again.
    assert by_state[(fp1, "firing")]["notifyCount"] >= 2
    assert by_state[(fp2, "firing")]["notifyCount"] >= 2  # re-sent with host-1's resolution
    for (fp, _), row in by_state.items():
        instance = "host-1" if fp == fp1 else "host-2"
        assert row["labels"] == firing(instance)["labels"]
        assert row["annotations"] == firing(instance)["annotations"]
    host1 = await e2e.history(fingerprint=fp1)
    assert [row["status"] for row in host1] == ["resolved", "firing"]  # newest first


async def test_group_of_five_once_each(e2e: E2E) -> None:
    # Starting now, not earlier: Alertmanager flushes a group at once when its alert is older
    # than group_wait; within it, the five wait together for one notification.
    starts_at = rfc3339(datetime.now(UTC))
    alerts = [
        {
            "labels": {"alertname": "E2EGroup", "instance": f"host-{i}", "severity": "critical"},
            "annotations": {"summary": f"host-{i} down"},
            "startsAt": starts_at,
        }
        for i in range(5)
    ]
    fingerprints = await e2e.push_and_fingerprint(alerts)
    assert len(set(fingerprints.values())) == 5
    states = [(fp, "firing") for fp in fingerprints.values()]
    await e2e.commits.wait_for(states, e2e.am)

    events = e2e.commits.events(states)
    assert_sender_fingerprints(events, fingerprints.values())
    # One group: delivered together in one notification, under one groupKey.
    first = next(
        batch
        for batch in e2e.commits.batches
        if set(states) & {(e.fingerprint, e.status) for e in batch}
    )
    assert {(e.fingerprint, e.status) for e in first} >= set(states)
    group_keys = {e.group_key for e in events}
    assert len(group_keys) == 1
    assert 'alertname="E2EGroup"' in group_keys.pop()

    rows = await e2e.history(alertname="E2EGroup")
    by_state = assert_once_per_state(rows, {state: (starts_at, None) for state in states})
    for instance, fp in fingerprints.items():
        assert by_state[(fp, "firing")]["labels"]["instance"] == instance


def sized_utf8(pattern: str, size: int) -> str:
    """`pattern` repeated up to `size` UTF-8 bytes, padded with ASCII to exactly `size`."""
    text = ""
    for char in pattern * size:
        if len((text + char).encode()) > size:
            break
        text += char
    return text + "." * (size - len(text.encode()))


async def test_unicode_payload_round_trips(e2e: E2E) -> None:
    big = sized_utf8("漢字🔥e\u0301שלום-", 4096)
    assert len(big.encode()) == 4096
    labels = {
        "alertname": "E2EUnicode",
        "emoji": "🔥🚨 disk 💾 full 👩‍💻",
        "rtl": "שגיאה בשרת – خطأ في الخادم",
        "combining": "e\u0301 n\u0303 a\u030a Z\u0335\u0317",  # decomposed: must stay so
        "cjk": "数据库连接失败 データベース 데이터베이스",
        "go_escaped": "<b> & </b>",
        "big": big,
    }
    annotations = {
        "summary": "💥 العربية and עברית mixed with 中文",
        "description": big,
        "combining": "a\u0308\u0301",
    }
    starts_at = rfc3339(datetime.now(UTC) - timedelta(seconds=10))
    with_empty = {**labels, "empty": ""}  # Alertmanager drops empty-valued labels
    pushed: dict[str, Any] = {
        "labels": with_empty,
        "annotations": annotations,
        "startsAt": starts_at,
    }
    fp = (await e2e.push_and_fingerprint([pushed]))["E2EUnicode"]
    assert fp == fingerprint(labels) != fingerprint(with_empty)
    (listed,) = await e2e.am.alerts('alertname="E2EUnicode"')
    assert listed["labels"] == labels

    await e2e.commits.wait_for([(fp, "firing")], e2e.am)
    events = e2e.commits.events([(fp, "firing")])
    assert_sender_fingerprints(events, [fp])
    assert all(e.labels == labels and e.annotations == annotations for e in events)

    rows = await e2e.history(alertname="E2EUnicode")
    (row,) = assert_once_per_state(rows, {(fp, "firing"): (starts_at, None)}).values()
    assert row["labels"] == labels  # exact code points: no normalization, no truncation
    assert row["annotations"] == annotations
    assert await e2e.history(fingerprint=fp) == rows
