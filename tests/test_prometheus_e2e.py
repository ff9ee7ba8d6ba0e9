"""End to end with a real Prometheus sending straight to the service as its Alertmanager.

The service runs in-process; Prometheus (a subprocess) evaluates two alerting rules every second,
scrapes a tiny target the test controls, and POSTs to the service's /api/v2/alerts: new and
re-sent firing alerts (every `--rules.alert.resend-delay` = 1s, endsAt a few resends ahead) and,
when a rule stops matching, the resolved alert (endsAt = resolution time). The test waits, on
events set by the writer's after_commit hook, for what must be committed, then reads /history.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import trio
import yaml

from alert_history.actors import Hooks
from alert_history.domain import fingerprint, parse_rfc3339_ns
from alert_history.models import AlertEvent
from tests.conftest import SettingsFactory, running
from tests.prometheus import (
    Prometheus,
    check_rules,
    find_prometheus,
    find_promtool,
    running_prometheus,
    running_scrape_target,
)

pytestmark = pytest.mark.slow

ARRIVAL_TIMEOUT = 60
SWITCH = "e2e_switch"
SWITCH_JOB = "switch"
ALWAYS = "E2EPrometheusAlways"
FLAPPING = "E2EPrometheusFlapping"

RULES: dict[str, Any] = {
    "groups": [
        {
            "name": "alert-history-e2e",
            "rules": [
                {
                    "alert": ALWAYS,
                    "expr": "vector(1)",
                    "for": "0s",
                    "labels": {"severity": "warning", "team": "e2e"},
                    "annotations": {"summary": "always firing"},
                },
                {
                    # Fires while the test's target serves 1, resolves once it serves 0.
                    "alert": FLAPPING,
                    "expr": f'{SWITCH}{{job="{SWITCH_JOB}"}} == 1',
                    "for": "0s",
                    "labels": {"severity": "critical"},
                    "annotations": {"summary": "switch {{ $labels.instance }} is on"},
                },
            ],
        }
    ]
}


@dataclass
class Commits:
    """The writer's after_commit hook: records every committed event, wakes waiting tests."""

    events: list[AlertEvent] = field(default_factory=list)
    changed: trio.Event = field(default_factory=trio.Event)

    def after_commit(self, events: list[AlertEvent]) -> None:
        self.events.extend(events)
        self.changed.set()
        self.changed = trio.Event()

    def of(self, alertname: str, status: str | None = None) -> list[AlertEvent]:
        return [
            e
            for e in self.events
            if e.labels.get("alertname") == alertname and status in (None, e.status)
        ]

    def notifications(self, fp: str, status: str) -> int:
        """How many notifications of (fp, status) were committed, repeats included."""
        return sum(e.notify_count for e in self.events if (e.fingerprint, e.status) == (fp, status))

    async def wait_until(self, done: Callable[[], bool], what: str, prom: Prometheus) -> None:
        try:
            with trio.fail_after(ARRIVAL_TIMEOUT):
                while not done():
                    await self.changed.wait()
        except trio.TooSlowError:
            committed = sorted(
                {(e.fingerprint, e.status, tuple(sorted(e.labels.items()))) for e in self.events}
            )
            raise AssertionError(
                f"not committed within {ARRIVAL_TIMEOUT}s: {what}\ncommitted: {committed}\n"
                f"Prometheus alerts: {await prom.alerts()}\nPrometheus log:\n{prom.log_text()}"
            ) from None


async def history(client: httpx.AsyncClient, **params: str) -> list[dict[str, Any]]:
    response = await client.get("/history", params={"limit": "1000", **params})
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    rows: list[dict[str, Any]] = page["alerts"]
    assert page["total"] == len(rows)
    return rows


async def checked_rule_file(tmp_path: Path) -> Path:
    """The rules, checked by promtool: a broken rule file fails here, not as a timeout."""
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(RULES, sort_keys=False))
    report = await check_rules(path)
    assert "SUCCESS: 2 rules found" in report, report
    return path


async def test_prometheus_firing_resends_and_resolution(
    make_settings: SettingsFactory, tmp_path: Path
) -> None:
    if find_prometheus() is None or find_promtool() is None:
        pytest.fail(
            "Prometheus is not installed: `make test` installs it (apt-get install prometheus), "
            "or set PROMETHEUS_BIN and PROMTOOL_BIN"
        )
    rule_file = await checked_rule_file(tmp_path)
    commits = Commits()
    async with (
        running(make_settings(), hooks=Hooks(after_commit=commits.after_commit)) as service,
        httpx.AsyncClient(base_url=service.url, timeout=30) as client,
        running_scrape_target({SWITCH: 1}) as target,
        running_prometheus(
            urlsplit(service.url).netloc,
            rule_files=[rule_file],
            scrape_jobs={SWITCH_JOB: [target.address]},
            resend_delay="1s",
        ) as prom,
    ):
        # Prometheus sends no fingerprint: the service computes Alertmanager's from the labels.
        always_labels = {"alertname": ALWAYS, "severity": "warning", "team": "e2e"}
        flapping_labels = {
            "alertname": FLAPPING,
            "instance": target.address,
            "job": SWITCH_JOB,
            "severity": "critical",
        }
        always_fp = fingerprint(always_labels)
        flapping_fp = fingerprint(flapping_labels)
        assert always_fp != flapping_fp

        # Both fire, and the always-firing alert is re-sent at least once.
        await commits.wait_until(
            lambda: (
                commits.notifications(always_fp, "firing") >= 2
                and commits.notifications(flapping_fp, "firing") >= 1
            ),
            f"{ALWAYS} firing twice, {FLAPPING} firing",
            prom,
        )

        # Alerts evaluated before Prometheus's discovery delivered its Alertmanager (about 5 s
        # after start) are dropped by Prometheus itself; from here on none may be.
        dropped_before = await prom.own_metric("prometheus_notifications_dropped_total")

        # Flip the switch: the next scrape reads 0, the next evaluation resolves the alert.
        flipped_at = time.time_ns()
        target.set(SWITCH, 0)
        await commits.wait_until(
            lambda: commits.notifications(flapping_fp, "resolved") >= 1,
            f"{FLAPPING} resolved",
            prom,
        )
        resolved_committed_at = time.time_ns()
        always_sent = commits.notifications(always_fp, "firing")

        # What Prometheus sent, as committed: source, labels, computed fingerprints, one episode.
        for name, labels, fp in (
            (ALWAYS, always_labels, always_fp),
            (FLAPPING, flapping_labels, flapping_fp),
        ):
            events = commits.of(name)
            assert events
            for event in events:
                assert event.source == "prometheus", event
                assert event.labels == labels, event
                assert event.fingerprint == fp == fingerprint(event.labels), event
                assert event.fingerprint_computed, event
            assert len({e.starts_at for e in events}) == 1, "one firing episode"
            # A firing alert's moving endsAt (a few resends ahead) is normalised to none.
            assert all(e.ends_at == 0 for e in events if e.status == "firing"), events
        assert not commits.of(ALWAYS, "resolved")
        flapping_starts_at = commits.of(FLAPPING)[0].starts_at
        (resolved_ends_at,) = {e.ends_at for e in commits.of(FLAPPING, "resolved")}
        # Resolved at an evaluation after the scrape that read 0 (Prometheus stamps a scrape
        # with its start, which may precede the flip by the request's latency).
        assert flipped_at - 1_000_000_000 <= resolved_ends_at <= resolved_committed_at

        # Prometheus was never refused (a 4xx/5xx or transport error counts here).
        assert await prom.own_metric("prometheus_notifications_errors_total") == 0, prom.log_text()
        dropped = await prom.own_metric("prometheus_notifications_dropped_total")
        assert dropped == dropped_before, prom.log_text()
        assert await prom.own_metric("prometheus_notifications_sent_total") >= 4

        # /history: the always-firing state is one row, its re-sends counted on it.
        (always,) = await history(client, alertname=ALWAYS)
        assert always["fingerprint"] == always_fp
        assert always["status"] == "firing"
        assert always["endsAt"] is None
        assert always["source"] == "prometheus"
        assert always["labels"] == always_labels
        assert always["annotations"] == {"summary": "always firing"}
        assert always["notifyCount"] >= always_sent >= 2

        # The flapping alert: one firing row, then one resolved row with its endsAt.
        rows = await history(client, alertname=FLAPPING)
        assert [row["status"] for row in rows] == ["resolved", "firing"]  # newest first
        resolved, firing = rows
        assert await history(client, fingerprint=flapping_fp) == rows
        assert await history(client, alertname=FLAPPING, status="resolved") == [resolved]
        for row in rows:
            assert row["fingerprint"] == flapping_fp
            assert row["source"] == "prometheus"
            assert row["labels"] == flapping_labels
            assert row["annotations"] == {"summary": f"switch {target.address} is on"}
            assert parse_rfc3339_ns(row["startsAt"]) == flapping_starts_at
            assert row["notifyCount"] >= 1
        assert firing["endsAt"] is None
        assert resolved["endsAt"] is not None
        assert parse_rfc3339_ns(resolved["endsAt"]) == resolved_ends_at > flapping_starts_at
