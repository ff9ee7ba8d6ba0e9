"""Episodes, the timeline of one alert, flapping and stale firing, with time passed in."""

from __future__ import annotations

import httpx
import msgspec
import pytest

from alert_history.actors import metrics as metrics_actor
from alert_history.domain.episodes import NS, StateChange, build_timeline
from alert_history.domain.flapping import FlappingPolicy
from alert_history.models import AlertEvent
from alert_history.storage import Db, Storage, timeline
from alert_history.storage.timeline import AlertStates, alert_states, count_stale_firing
from alert_history.telemetry import Metrics
from tests.support import alert, encode, webhook

T0 = 1_800_000_000 * NS
MIN = 60 * NS
HOUR = 60 * MIN


def change(status: str, starts: int, first: int, *, ends: int = 0, last: int | None = None,
           count: int = 1) -> StateChange:  # fmt: skip
    return StateChange(status, starts, ends, first, last if last is not None else first, count)


def test_episodes_pair_firing_with_resolution_and_measure_durations() -> None:
    changes = [
        change("firing", T0, T0 + 5, count=3),
        change("resolved", T0, T0 + 10 * MIN, ends=T0 + 9 * MIN),
        change("firing", T0 + HOUR, T0 + HOUR, last=T0 + HOUR + 20 * MIN, count=7),
    ]
    now = T0 + 2 * HOUR
    built = build_timeline(changes, now, stale_after=HOUR)
    first, second = built.episodes
    assert (first.resolved, first.duration, first.notifications) == (True, 9 * MIN, 4)
    assert (second.resolved, second.duration, second.notifications) == (False, HOUR, 7)
    assert not second.stale  # last notified 40 min before now, window 1 h
    later = build_timeline(changes, T0 + 2 * HOUR + 21 * MIN, stale_after=HOUR)
    assert later.episodes[1].stale  # 61 min without a notification
    assert not later.episodes[0].stale  # resolved episodes are never stale


def test_flapping_starts_above_two_changes_in_the_window_and_stops_with_hysteresis() -> None:
    policy = FlappingPolicy(window=1800, start=2, stop=1)
    # firing/resolved every 5 minutes: changes at 5, 10, 15 minutes
    flaps = [
        change("firing" if i % 2 == 0 else "resolved", T0 + (i // 2) * 10 * MIN,
               T0 + i * 5 * MIN, ends=0 if i % 2 == 0 else T0 + i * 5 * MIN)
        for i in range(4)
    ]  # fmt: skip
    at_15 = build_timeline(flaps, T0 + 15 * MIN, stale_after=HOUR, policy=policy).flapping
    assert (at_15.flapping, at_15.changes_in_window) == (True, 3)
    assert at_15.since == (T0 + 15 * MIN) / NS
    # 30 minutes after the first change it leaves the window: 2 remain, above stop -> still
    at_35 = build_timeline(flaps, T0 + 35 * MIN, stale_after=HOUR, policy=policy).flapping
    assert (at_35.flapping, at_35.changes_in_window) == (True, 2)
    at_40 = build_timeline(flaps, T0 + 40 * MIN, stale_after=HOUR, policy=policy).flapping
    assert (at_40.flapping, at_40.changes_in_window) == (False, 1)
    two_changes = build_timeline(flaps[:3], T0 + 10 * MIN, stale_after=HOUR, policy=policy)
    assert not two_changes.flapping.flapping  # Alerta: more than 2


def event(fp: str, status: str, starts: int, received: int, ends: int = 0) -> AlertEvent:
    return AlertEvent(
        fingerprint=fp, status="resolved" if status == "resolved" else "firing", starts_at=starts,
        ends_at=ends, alertname=fp, namespace=None, severity=None, labels={"alertname": fp},
        annotations={}, generator_url="", receiver="", group_key="", source="test",
        received_at=received,
    )  # fmt: skip


async def test_state_changes_and_stale_episodes_on_every_backend(storage: Storage) -> None:
    await storage.write_events([event("a", "firing", T0, T0)])
    await storage.write_events([event("a", "resolved", T0, T0 + MIN, ends=T0 + MIN)])
    relabelled = {"alertname": "a", "team": "db"}  # the newest state's labels are the ones shown
    newest = msgspec.structs.replace(event("a", "firing", T0 + HOUR, T0 + HOUR), labels=relabelled)
    await storage.write_events([newest])
    await storage.write_events([event("quiet", "firing", T0, T0)])
    await storage.write_events([event("busy", "firing", T0, T0)])
    await storage.write_events([event("busy", "firing", T0, T0 + 5 * HOUR)])  # re-notified

    def read(db: Db) -> tuple[AlertStates | None, AlertStates | None, int]:
        return (
            alert_states(db, "a"),
            alert_states(db, "nobody"),
            count_stale_firing(db, cutoff=T0 + 4 * HOUR),
        )

    states, nobody, stale = await storage.read(read)
    assert states is not None and nobody is None
    assert [(c.status, c.starts_at) for c in states.changes] == [
        ("firing", T0), ("resolved", T0), ("firing", T0 + HOUR)
    ]  # fmt: skip
    assert (states.alertname, states.labels) == ("a", relabelled)
    assert stale == 2  # "quiet" and the second episode of "a"; "busy" was notified lately

    metrics = Metrics()
    await metrics_actor.sample(storage, metrics, stale_cutoff=T0 + 4 * HOUR)
    assert "alert_history_stale_firing_episodes 2.0" in metrics.render().decode()


async def test_states_come_in_the_order_received_and_only_the_newest(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    # received out of insertion order, two at the same time (then the earlier insert first)
    received = [3, 1, 8, 5, 8, 9, 2, 6]
    for n, minute in enumerate(received):
        await storage.write_events([event("t", "firing", T0 + n * HOUR, T0 + minute * MIN)])
    monkeypatch.setattr(timeline, "MAX_CHANGES", 5)

    states = await storage.read(lambda db: alert_states(db, "t"))

    assert states is not None
    expected = sorted(range(len(received)), key=lambda n: (received[n], n))[-5:]
    assert [c.starts_at for c in states.changes] == [T0 + n * HOUR for n in expected]
    assert [c.first_seen for c in states.changes] == [T0 + received[n] * MIN for n in expected]


async def test_timeline_endpoint_shows_changes_episodes_and_flapping(
    client: httpx.AsyncClient,
) -> None:
    firing = alert("Flappy", starts_at="2026-11-27T10:00:00Z", instance="x")
    resolved = alert("Flappy", status="resolved", starts_at="2026-11-27T10:00:00Z",
                     ends_at="2026-11-27T10:05:00Z", instance="x")  # fmt: skip
    again = alert("Flappy", starts_at="2026-11-27T10:10:00Z", instance="x")
    for body in (firing, firing, resolved, again):
        assert (await client.post("/webhook", content=encode(webhook(body)))).status_code == 200
    fp = (await client.get("/history")).json()["alerts"][0]["fingerprint"]
    timeline = (await client.get(f"/history/{fp}")).json()
    assert timeline["alertname"] == "Flappy"
    assert timeline["status"] == "firing"
    assert [c["status"] for c in timeline["changes"]] == ["firing", "resolved", "firing"]
    newest, oldest = timeline["episodes"]
    assert (oldest["status"], oldest["duration_seconds"], oldest["notifications"]) == (
        "resolved", 300.0, 3
    )  # fmt: skip
    assert newest["status"] == "firing" and newest["endsAt"] is None
    assert timeline["flapping"]["changes_in_window"] == 2  # received within seconds
    assert timeline["flapping"]["flapping"] is False
    missing = await client.get("/history/0123456789abcdef")
    assert missing.status_code == 404


def test_episodes_take_every_state_of_their_start() -> None:
    """States of one episode in any order: the latest end, the sums and extremes of all."""
    changes = [
        change("resolved", T0, T0 + 9 * MIN, ends=T0 + 8 * MIN),
        change("firing", T0, T0 + MIN, last=T0 + 20 * MIN, count=4),
        change("resolved", T0, T0 + 12 * MIN, ends=T0 + 11 * MIN, last=T0 + 13 * MIN, count=2),
        change("firing", T0 + HOUR, T0 + HOUR, last=T0 + HOUR, count=1),
        change("firing", T0 + HOUR, T0 + HOUR + 5, last=T0 + HOUR + 30 * MIN, count=2),
    ]
    first, second = build_timeline(changes, T0 + 3 * HOUR, stale_after=HOUR).episodes
    assert first.resolved and first.ends_at == T0 + 11 * MIN
    assert (first.duration, first.notifications) == (11 * MIN, 7)
    assert (first.first_seen, first.last_seen, first.stale) == (T0 + MIN, T0 + 20 * MIN, False)
    assert not second.resolved and second.ends_at == 0
    assert (second.notifications, second.first_seen) == (3, T0 + HOUR)
    assert second.last_seen == T0 + HOUR + 30 * MIN
    assert second.stale  # firing, last notified 90 min before now
    assert (
        build_timeline(changes, T0 + HOUR + 80 * MIN, stale_after=HOUR).episodes[1].stale is False
    )
