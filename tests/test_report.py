"""GET /report: the v1 numbers equal the legacy algorithm over the same rows, on every backend.

The reference is `alert_history.domain.flapping.report_v1`, fed the stored rows read back raw
and put in v1 order (alertname, updatedAt = first_seen, id) by Python, whose `str` order is the
byte-wise order the SQL promises. PostgreSQL runs twice: with the test server's C locale and
with an ICU `en-US` default collation, where "a" sorts before "B" unless the SQL says otherwise.
"""

from __future__ import annotations

import calendar
import contextlib
import itertools
import statistics
import threading
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import msgspec
import psycopg
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alert_history.domain.flapping import V1Row, report_v1
from alert_history.models import AlertEvent
from alert_history.storage import Db, Storage, open_storage, report_rollup, report_spans
from alert_history.storage.report import Report, ReportQuery, build_report
from alert_history.storage.report_rollup import (
    Computed,
    compute_day,
    refresh_all,
    refresh_day,
    store,
)
from tests.pg import PostgresServer
from tests.support import alert, encode, webhook

SECOND = 1_000_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR
T0 = calendar.timegm((2026, 3, 2, 8, 0, 0, 0, 0, 0)) * SECOND
NOW = T0 + DAY


# --- backends -------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres", "postgres-icu"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/report.db"
    server: PostgresServer = request.getfixturevalue("postgres")
    if request.param == "postgres":
        return server.create_database()
    # a default collation that is not byte order: "_" < "a" < "B" < "Ü" < "z"
    name = f"icu_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
        try:
            conn.execute(
                f'CREATE DATABASE "{name}" TEMPLATE template0 '
                "LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'"
            )
        except psycopg.Error as exc:  # a PostgreSQL built without ICU
            pytest.skip(f"no ICU collation: {exc}")
    return server.url(name)


# --- recorded sequences ---------------------------------------------------------------------


def event(
    name: str,
    namespace: str | None,
    fp: str,
    status: str,
    *,
    starts: int,
    ends: int = 0,
    at: int,
    count: int = 1,
) -> AlertEvent:
    labels = {"alertname": name, "instance": fp}
    if namespace is not None:
        labels["namespace"] = namespace
    return AlertEvent(
        fingerprint=fp, status="resolved" if status == "resolved" else "firing",
        starts_at=starts, ends_at=ends, alertname=name, namespace=namespace, severity="warning",
        labels=labels, annotations={"summary": name}, generator_url="", receiver="team",
        group_key="g", source="alertmanager", received_at=at, notify_count=count,
    )  # fmt: skip


def m(minutes: float) -> int:
    return T0 + int(minutes * MINUTE)


def at_minutes(
    name: str,
    namespace: str | None,
    fp: str,
    status: str,
    starts: float,
    ends: float | None,
    at: float,
    count: int = 1,
) -> AlertEvent:
    """A notification with its times in minutes after T0."""
    return event(
        name, namespace, fp, status,
        starts=m(starts), ends=0 if ends is None else m(ends), at=m(at), count=count,
    )  # fmt: skip


def recorded() -> list[list[AlertEvent]]:
    """A morning of notifications, in the batches the writer committed them in.

    Repeats of a state only bump its notify_count; the HighCPU/prod key has two fingerprints
    whose notifications interleave; DiskFull repeats often; one resolution arrives before its
    firing; alertnames differ in case and include a non-ASCII one; KubeJobFailed/nightly appears
    before KubeJobFailed/hourly but changes status after it.
    """
    crash = partial(at_minutes, "KubePodCrashLooping")
    cpu = partial(at_minutes, "HighCPU")
    disk = partial(at_minutes, "DiskFull", "prod", "disk-1", "firing", 7, None)
    backup = partial(at_minutes, "backup_failed", "ops", "bk")
    uber = partial(at_minutes, "ÜberLatency", "eu", "ub")
    latency = partial(at_minutes, "api_latency", None, "lat")
    job = partial(at_minutes, "KubeJobFailed")
    return [
        [crash("prod", "crash-p", "firing", 0, None, 0)],
        [cpu(None, "cpu-n", "firing", 1, None, 1)],
        [cpu("prod", "cpu-p1", "firing", 2, None, 2), cpu("prod", "cpu-p2", "firing", 2, None, 2)],
        [crash("staging", "crash-s", "firing", 3, None, 3)],
        [cpu(None, "cpu-n", "resolved", 1, 4, 4)],
        [
            crash("prod", "crash-p", "firing", 0, None, 5),
            job("nightly", "jb", "firing", 5, None, 5),
        ],
        [job("hourly", "jc", "firing", 6, None, 6)],
        [cpu(None, "cpu-n", "firing", 6, None, 6), disk(7)],
        [cpu(None, "cpu-n", "resolved", 6, 8, 8), job("hourly", "jc", "resolved", 6, 8, 8)],
        [cpu(None, "cpu-n", "firing", 9, None, 9), crash("prod", "crash-p", "firing", 0, None, 10)],
        [backup("firing", 11, None, 11), disk(11)],
        [crash("prod", "crash-p", "resolved", 0, 12, 12)],
        [backup("resolved", 11, 13, 13)],
        [cpu("prod", "cpu-p1", "resolved", 2, 15, 15), disk(15, 3)],
        [cpu("prod", "cpu-p2", "resolved", 2, 16, 16), cpu(None, "cpu-n", "firing", 9, None, 16)],
        [crash("prod", "crash-p", "firing", 20, None, 20)],
        [crash("prod", "crash-p", "resolved", 20, 23, 23), disk(23)],
        [uber("firing", 25, None, 25)],
        [uber("resolved", 25, 26, 26)],
        [
            crash("prod", "crash-p", "firing", 30, None, 30),
            job("nightly", "jb", "resolved", 5, 30, 30),
        ],
        [disk(31, 5)],
        [crash("prod", "crash-p", "resolved", 30, 34, 34)],
        [crash("prod", "crash-p", "resolved", 30, 34, 39)],  # a repeated resolution
        [crash("staging", "crash-s", "resolved", 3, 40, 40)],
        # the resolution of an episode arrives before its firing (a retried delivery)
        [latency("resolved", 42, 43, 44)],
        [latency("firing", 42, None, 45)],
        [crash("prod", "crash-p", "firing", 50, None, 50), disk(50)],
        [at_minutes("Watchdog", None, "wd", "firing", 0, None, 55, count=12)],
    ]


async def write(storage: Storage, batches: Sequence[Sequence[AlertEvent]]) -> None:
    for batch in batches:
        await storage.write_events(batch)


# --- the independent side -------------------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    id: int
    alertname: str
    namespace: str | None
    status: str
    first_seen: int
    fingerprint: str
    starts_at: int
    ends_at: int
    notify_count: int


def _all_rows(db: Db) -> list[tuple[Any, ...]]:
    return db.fetchall(
        "SELECT id, alertname, namespace, status, first_seen, fingerprint, starts_at, ends_at, "
        "notify_count FROM alert_events"
    )


async def stored_rows(storage: Storage) -> list[Stored]:
    """Every stored state, in v1 order as Python sorts it (no ORDER BY in the SQL)."""
    rows = [
        Stored(int(i), name, ns, status, int(first), fp, int(starts), int(ends), int(count))
        for i, name, ns, status, first, fp, starts, ends, count in await storage.read(_all_rows)
    ]
    return sorted(rows, key=lambda r: (r.alertname, r.first_seen, r.id))


def select(
    rows: Sequence[Stored],
    alertname: str | None = None,
    namespace: str | None = None,
    since: int | None = None,
    until: int | None = None,
) -> list[Stored]:
    return [
        r
        for r in rows
        if (alertname is None or r.alertname == alertname)
        and (namespace is None or r.namespace == namespace)
        and (since is None or r.first_seen >= since)
        and (until is None or r.first_seen <= until)
    ]


def v1_rows(rows: Sequence[Stored]) -> list[V1Row]:
    return [(r.alertname, r.namespace, r.status, r.first_seen) for r in rows]


async def run(storage: Storage, **params: Any) -> Report:
    query = ReportQuery(now=params.pop("now", NOW), **params)
    return await storage.read(partial(build_report, query=query))


FILTERS: list[dict[str, Any]] = [
    {},
    {"min_flap": 1},
    {"min_flap": 3, "top": 1},
    {"top": 2},
    {"top": 3, "min_flap": 1},
    {"alertname": "HighCPU", "min_flap": 1},
    {"namespace": "prod"},
    {"since": m(9), "min_flap": 1},
    {"until": m(20), "min_flap": 1},
    {"since": m(5), "until": m(30), "min_flap": 1, "top": 4},
    {"alertname": "nothing"},
]


# --- v1 -------------------------------------------------------------------------------------


async def test_v1_numbers_equal_the_legacy_algorithm_on_a_recorded_sequence(
    storage: Storage,
) -> None:
    await write(storage, recorded())
    rows = await stored_rows(storage)
    assert len(rows) == 30  # the repeats were folded into their states
    for params in FILTERS:
        report = await run(storage, **params)
        chosen = select(
            rows, params.get("alertname"), params.get("namespace"),
            params.get("since"), params.get("until"),
        )  # fmt: skip
        expected = report_v1(
            v1_rows(chosen), min_flap=params.get("min_flap", 2), top=params.get("top", 10)
        )
        assert report.v1 == expected, params


async def test_v1_ties_follow_first_appearance_in_byte_order(storage: Storage) -> None:
    await write(storage, recorded())
    report = await run(storage, min_flap=1)
    # byte order: "DiskFull" < "HighCPU" < "KubeJobFailed" < "KubePodCrashLooping" <
    # "Watchdog" < "api_latency" < "backup_failed" < "ÜberLatency"; ties keep the order of
    # first appearance in it (rows, then first_seen); 11 keys, the top 10 shown
    assert [(t["alertname"], t["namespace"], t["events"]) for t in report.v1["top_alerts"]] == [
        ("KubePodCrashLooping", "prod", 7),
        ("HighCPU", None, 5),
        ("HighCPU", "prod", 4),
        ("KubeJobFailed", "nightly", 2),
        ("KubeJobFailed", "hourly", 2),
        ("KubePodCrashLooping", "staging", 2),
        ("api_latency", None, 2),
        ("backup_failed", "ops", 2),
        ("ÜberLatency", "eu", 2),
        ("DiskFull", "prod", 1),
    ]
    # ties keep the order of each key's first change; the two HighCPU/prod instances
    # interleave (firing, firing, resolved, resolved): one change, as v1 counted it
    assert [(f["alertname"], f["namespace"], f["flaps"]) for f in report.v1["flapping_alerts"]] == [
        ("KubePodCrashLooping", "prod", 6),
        ("HighCPU", None, 4),
        ("HighCPU", "prod", 1),
        ("KubeJobFailed", "hourly", 1),
        ("KubeJobFailed", "nightly", 1),
        ("KubePodCrashLooping", "staging", 1),
        ("api_latency", None, 1),
        ("backup_failed", "ops", 1),
        ("ÜberLatency", "eu", 1),
    ]
    assert (report.v1["total_events"], report.v1["unique_alerts"]) == (30, 11)
    assert (await run(storage, top=2)).v1["flapping_alerts"] == [
        {"alertname": "KubePodCrashLooping", "namespace": "prod", "flaps": 6},
        {"alertname": "HighCPU", "namespace": None, "flaps": 4},
    ]


async def test_an_empty_history_reports_zeros(storage: Storage) -> None:
    report = await run(storage)
    assert report.v1 == {
        "total_events": 0, "unique_alerts": 0, "top_alerts": [], "flapping_alerts": []
    }  # fmt: skip
    summary = report.summary
    assert (summary["episodes"], summary["resolved_episodes"]) == (0, 0)
    assert summary["resolved_within_5m_share"] is None
    assert (summary["mttr_seconds"], summary["noisiest"], summary["flapping"]) == ([], [], [])
    assert summary["period"] == {"since": None, "until": NOW, "hours": None}


# --- random sequences -----------------------------------------------------------------------

KEYS = [("a", None), ("B", "x"), ("a", "x"), ("a", ""), ("é", None), ("_z", "x")]

notifications = st.lists(
    st.tuples(
        st.integers(0, len(KEYS) - 1),  # which alert
        st.integers(0, 1),  # which of its two fingerprints
        st.sampled_from(["firing", "resolved"]),
        st.integers(0, 2),  # episode
        st.sampled_from([0, 1, 5, 6]),  # resolution after this many minutes (0: no endsAt)
        st.sampled_from([0, 0, 1, 3]),  # minutes since the previous notification
        st.integers(1, 3),  # notify_count
        st.booleans(),  # commit before this one
    ),
    max_size=30,
)


def random_batches(
    draw: Sequence[tuple[int, int, str, int, int, int, int, bool]],
) -> list[list[AlertEvent]]:
    batches: list[list[AlertEvent]] = [[]]
    at = T0
    for key, instance, status, episode, duration, step, count, commit in draw:
        name, ns = KEYS[key]
        starts = T0 + episode * 10 * MINUTE
        ends = starts + duration * MINUTE if status == "resolved" and duration else 0
        at += step * MINUTE
        if commit and batches[-1]:
            batches.append([])
        fp = f"{key}-{instance}"
        batches[-1].append(
            event(name, ns, fp, status, starts=starts, ends=ends, at=at, count=count)
        )
    return batches


def empty(db: Db) -> None:
    db.execute("DELETE FROM alert_events")
    db.execute("DELETE FROM alert_current")


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    draw=notifications,
    min_flap=st.integers(1, 3),
    top=st.integers(1, 4),
    window=st.tuples(st.sampled_from([None, 0, 5, 20]), st.sampled_from([None, 10, 40])),
)
async def test_v1_numbers_equal_the_legacy_algorithm_on_random_sequences(
    storage_url: str,
    draw: list[tuple[int, int, str, int, int, int, int, bool]],
    min_flap: int,
    top: int,
    window: tuple[int | None, int | None],
) -> None:
    # one database for every example (fixtures are set up once): emptied first
    storage = await open_storage(storage_url)
    try:
        await storage.write(empty)
        await write(storage, random_batches(draw))
        since, until = (None if w is None else m(w) for w in window)
        rows = select(await stored_rows(storage), since=since, until=until)
        report = await run(storage, min_flap=min_flap, top=top, since=since, until=until)
    finally:
        await storage.aclose()
    assert report.v1 == report_v1(v1_rows(rows), min_flap=min_flap, top=top)
    assert_summary(report, rows, top=top, since=since, until=until)


# --- summary --------------------------------------------------------------------------------


def assert_summary(
    report: Report,
    rows: Sequence[Stored],
    *,
    top: int = 10,
    since: int | None = None,
    until: int | None = None,
    now: int = NOW,
) -> None:
    """Check the summary against a plain Python computation over the selected rows."""
    summary = report.summary
    episodes: dict[tuple[str, int], list[Stored]] = defaultdict(list)
    for r in rows:
        episodes[(r.fingerprint, r.starts_at)].append(r)
    durations: dict[str, list[int]] = defaultdict(list)
    for (_fp, starts), states in episodes.items():
        ends = [
            s.ends_at
            for s in states
            if s.status == "resolved" and s.ends_at != 0 and s.ends_at >= starts
        ]
        if ends:
            durations[states[0].alertname].append(min(ends) - starts)
    all_durations = [d for ds in durations.values() for d in ds]
    assert summary["episodes"] == len(episodes)
    assert summary["resolved_episodes"] == len(all_durations)
    if all_durations:
        quick = sum(1 for d in all_durations if d <= 300 * SECOND)
        assert summary["resolved_within_5m_share"] == pytest.approx(quick / len(all_durations))
    else:
        assert summary["resolved_within_5m_share"] is None

    mttr = sorted(
        ((name, statistics.mean(ds) / SECOND, len(ds)) for name, ds in durations.items()),
        key=lambda item: (-item[1], item[0]),
    )[:top]
    assert [(x["alertname"], x["resolved_episodes"]) for x in summary["mttr_seconds"]] == [
        (name, n) for name, _mttr, n in mttr
    ]
    assert [x["mttr_seconds"] for x in summary["mttr_seconds"]] == pytest.approx(
        [seconds for _name, seconds, _n in mttr]
    )

    notifications: Counter[tuple[str, str | None]] = Counter()
    for r in rows:
        notifications[(r.alertname, r.namespace)] += r.notify_count
    noisiest = sorted(
        notifications.items(),
        key=lambda item: (-item[1], item[0][0], item[0][1] is not None, item[0][1] or ""),
    )[:top]
    assert [(x["alertname"], x["namespace"], x["notifications"]) for x in summary["noisiest"]] == [
        (name, ns, n) for (name, ns), n in noisiest
    ]

    start = since if since is not None else min((r.first_seen for r in rows), default=None)
    end = now if until is None else min(until, now)
    hours = None if start is None or end <= start else (end - start) / HOUR
    assert summary["period"] == {"since": start, "until": end, "hours": hours}
    flaps = report.v1["flapping_alerts"]
    assert [{k: v for k, v in f.items() if k != "score"} for f in summary["flapping"]] == flaps
    expected_scores = [None if hours is None else f["flaps"] / hours for f in flaps]
    assert [f["score"] for f in summary["flapping"]] == pytest.approx(expected_scores)


async def test_summary_numbers_equal_a_plain_computation(storage: Storage) -> None:
    await write(storage, recorded())
    rows = await stored_rows(storage)
    for params in FILTERS:
        report = await run(storage, **params)
        chosen = select(
            rows, params.get("alertname"), params.get("namespace"),
            params.get("since"), params.get("until"),
        )  # fmt: skip
        assert_summary(
            report, chosen, top=params.get("top", 10),
            since=params.get("since"), until=params.get("until"),
        )  # fmt: skip


async def test_summary_of_the_recorded_morning(storage: Storage) -> None:
    await write(storage, recorded())
    summary = (await run(storage, now=m(60), top=3)).summary
    # crash-p x4, crash-s, cpu-n x3, cpu-p1, cpu-p2, disk, bk, ub, lat, wd, jb, jc
    assert (summary["episodes"], summary["resolved_episodes"]) == (17, 13)
    # within 5 min: crash-p 3 and 4 min, cpu-n 3 and 2, bk 2, ub 1, lat 1, jc 2; not: crash-p
    # 12, crash-s 37, cpu-p1 13, cpu-p2 14, jb 25
    assert summary["resolved_within_5m_share"] == pytest.approx(8 / 13)
    assert summary["mttr_seconds"] == [
        {"alertname": "KubePodCrashLooping", "mttr_seconds": (12 + 3 + 4 + 37) * 60 / 4,
         "resolved_episodes": 4},
        {"alertname": "KubeJobFailed", "mttr_seconds": (25 + 2) * 60 / 2,
         "resolved_episodes": 2},
        {"alertname": "HighCPU", "mttr_seconds": (3 + 2 + 13 + 14) * 60 / 4,
         "resolved_episodes": 4},
    ]  # fmt: skip
    assert summary["noisiest"] == [
        {"alertname": "DiskFull", "namespace": "prod", "notifications": 12},
        {"alertname": "Watchdog", "namespace": None, "notifications": 12},
        {"alertname": "KubePodCrashLooping", "namespace": "prod", "notifications": 10},
    ]
    # the period runs from the first row (T0) to now (60 min): one hour
    assert summary["period"] == {"since": T0, "until": m(60), "hours": 1.0}
    assert summary["flapping"] == [
        {"alertname": "KubePodCrashLooping", "namespace": "prod", "flaps": 6, "score": 6.0},
        {"alertname": "HighCPU", "namespace": None, "flaps": 4, "score": 4.0},
    ]


# --- v2 -------------------------------------------------------------------------------------


async def test_v2_groups_the_rows_first_seen_in_the_last_days(storage: Storage) -> None:
    old = [
        event("HighCPU", "prod", "old-1", "firing", starts=T0 - 10 * DAY, at=T0 - 10 * DAY),
        event("OldOnly", None, "old-2", "resolved", starts=T0 - 9 * DAY, ends=T0 - 9 * DAY + 1,
              at=T0 - 9 * DAY),
    ]  # fmt: skip
    await write(storage, [old, *recorded()])
    rows = await stored_rows(storage)
    now = m(60)

    for days in (7, 30):
        # any group_by other than alertname, status, namespace: one group ("all")
        for group_by in ("alertname", "status", "namespace", "severity"):
            v2 = (await run(storage, now=now, days=days, group_by=group_by)).v2
            assert v2 is not None
            expected = expected_v2(rows, now, days, group_by)
            assert v2 == expected
            assert list(v2["data"]) == list(expected["data"])  # byte order of the keys
    week = (await run(storage, now=now, days=7, group_by="status")).v2
    assert week is not None
    assert week["data"] == {
        "firing": {"count": 17, "firing": 17, "resolved": 0},
        "resolved": {"count": 13, "firing": 0, "resolved": 13},
    }
    month = (await run(storage, now=now, days=30, group_by="alertname")).v2
    assert month is not None and month["total_alerts"] == 32
    assert month["data"]["OldOnly"] == {"count": 1, "firing": 0, "resolved": 1}
    # the key filters narrow v2 too; an empty selection has no groups, even for "all"
    narrowed = (await run(storage, now=now, days=7, group_by="x", alertname="HighCPU")).v2
    assert narrowed is not None and narrowed["data"] == {
        "all": {"count": 9, "firing": 5, "resolved": 4}
    }
    empty = (await run(storage, now=now, days=7, group_by="all", alertname="none")).v2
    assert empty == {"period_days": 7, "group_by": "all", "data": {}, "total_alerts": 0}
    assert (await run(storage, now=now)).v2 is None


# --- HTTP -----------------------------------------------------------------------------------


async def post(client: httpx.AsyncClient, *alerts: dict[str, object]) -> None:
    response = await client.post("/webhook", content=encode(webhook(*alerts)))
    assert response.status_code == 200, response.text


async def test_report_through_the_running_service(client: httpx.AsyncClient) -> None:
    first = "2026-03-02T10:00:00Z"
    second = "2026-03-02T10:05:00Z"
    await post(client, alert("CPU", starts_at=first, namespace="prod"))
    await post(client, alert("CPU", status="resolved", starts_at=first,
                             ends_at="2026-03-02T10:02:00Z", namespace="prod"))  # fmt: skip
    await post(client, alert("CPU", starts_at=second, namespace="prod"))
    await post(client, alert("CPU", starts_at=second, namespace="prod"))  # a repeat
    await post(client, alert("CPU", status="resolved", starts_at=second,
                             ends_at="2026-03-02T10:09:00Z", namespace="prod"))  # fmt: skip
    await post(client, alert("Disk", starts_at=first))

    response = await client.get("/report")
    assert response.status_code == 200
    body = response.json()
    assert list(body)[:4] == ["total_events", "unique_alerts", "top_alerts", "flapping_alerts"]
    assert {k: body[k] for k in list(body)[:4]} == {
        "total_events": 5,
        "unique_alerts": 2,
        "top_alerts": [
            {"alertname": "CPU", "namespace": "prod", "events": 4},
            {"alertname": "Disk", "namespace": None, "events": 1},
        ],
        "flapping_alerts": [{"alertname": "CPU", "namespace": "prod", "flaps": 3}],
    }
    summary = body["summary"]
    assert (summary["episodes"], summary["resolved_episodes"]) == (3, 2)
    assert summary["mttr_seconds"] == [
        {"alertname": "CPU", "mttr_seconds": 180.0, "resolved_episodes": 2}
    ]
    assert summary["resolved_within_5m_share"] == 1.0
    assert summary["noisiest"][0] == {"alertname": "CPU", "namespace": "prod", "notifications": 5}
    assert summary["flapping"][0]["flaps"] == 3 and summary["flapping"][0]["score"] > 0
    assert summary["period"]["since"].endswith("Z") and summary["period"]["until"].endswith("Z")
    assert "period_days" not in body

    narrowed = (await client.get("/report", params={"alertname": "CPU", "min_flap": "4"})).json()
    assert (narrowed["total_events"], narrowed["flapping_alerts"]) == (4, [])
    assert (await client.get("/report", params={"since": "2200-01-01"})).json()["total_events"] == 0

    v2 = (await client.get("/report", params={"days": "7", "group_by": "status"})).json()
    assert {k: v2[k] for k in ("period_days", "group_by", "data", "total_alerts")} == {
        "period_days": 7,
        "group_by": "status",
        "data": {
            "firing": {"count": 3, "firing": 3, "resolved": 0},
            "resolved": {"count": 2, "firing": 0, "resolved": 2},
        },
        "total_alerts": 5,
    }
    assert v2["total_events"] == 5  # the v1 keys stay
    grouped = (await client.get("/report", params={"group_by": "namespace"})).json()
    assert grouped["period_days"] == 7  # v2's default
    assert grouped["data"] == {
        "prod": {"count": 4, "firing": 2, "resolved": 2},
        "unknown": {"count": 1, "firing": 1, "resolved": 0},
    }


async def test_bad_parameters_are_422s_naming_the_parameter(client: httpx.AsyncClient) -> None:
    bad = [
        ("min_flap", "0"), ("min_flap", "101"), ("min_flap", "two"),
        ("top", "0"), ("top", "101"), ("top", "1.5"),
        ("days", "0"), ("days", "3651"), ("days", "week"),
        ("since", "yesterday"), ("until", "2026-13-01T00:00:00"),
    ]  # fmt: skip
    for name, value in bad:
        response = await client.get("/report", params={name: value})
        assert response.status_code == 422, (name, value)
        (detail,) = response.json()["detail"]
        assert detail["loc"] == ["query", name], (name, value)
        assert detail["field"] == name
    for name, value in [("min_flap", "1"), ("min_flap", "100"), ("top", "100"), ("days", "3650")]:
        assert (await client.get("/report", params={name: value})).status_code == 200


# --- the rollup ------------------------------------------------------------------------------
#
# The report reads whole days that are not dirty from the rollup and every other row directly;
# the tests above never refresh it (every day dirty: the rows alone). Here notifications spread
# over several days, the rollup is refreshed between some of the batches (so clean days get
# repeats, new states, episodes that grow into other days), and every window, aligned to days
# or not, must give the legacy numbers and the plain summary.

rollup_notifications = st.lists(
    st.tuples(
        st.integers(0, len(KEYS) - 1),  # which alert
        st.integers(0, 1),  # which of its two fingerprints
        st.sampled_from(["firing", "resolved"]),
        st.integers(0, 3),  # episode (7 hours apart)
        st.sampled_from([0, 1, 5, 6, 600]),  # resolution after this many minutes (0: no endsAt)
        st.sampled_from([0, 1, 3, 120, 600, 1440]),  # minutes since the previous notification
        st.integers(1, 3),  # notify_count
        st.sampled_from(["", "", "commit", "refresh"]),  # before this one
    ),
    max_size=30,
)

ROLLUP_WINDOWS = [
    None,
    T0 - DAY,
    T0 - 8 * HOUR,
    T0 + 16 * HOUR,
    T0 + DAY + 7 * MINUTE,
    T0 + 3 * DAY,
]


def rollup_batches(
    draw: Sequence[tuple[int, int, str, int, int, int, int, str]],
) -> list[tuple[bool, list[AlertEvent]]]:
    """(refresh the rollup first?, batch) pairs, starting a day before T0."""
    batches: list[tuple[bool, list[AlertEvent]]] = [(False, [])]
    at = T0 - DAY - 3 * HOUR
    for key, instance, status, episode, duration, step, count, before in draw:
        name, ns = KEYS[key]
        starts = T0 - DAY + episode * 7 * HOUR
        ends = starts + duration * MINUTE if status == "resolved" and duration else 0
        at += step * MINUTE
        if before and batches[-1][1]:
            batches.append((before == "refresh", []))
        batches[-1][1].append(
            event(name, ns, f"{key}-{instance}", status, starts=starts, ends=ends, at=at,
                  count=count)
        )  # fmt: skip
    return batches


async def write_and_refresh(storage: Storage, batches: list[tuple[bool, list[AlertEvent]]]) -> None:
    for refresh_first, batch in batches:
        if refresh_first:
            await refresh_all(storage)
        await storage.write_events(batch)


def expected_v2(rows: Sequence[Stored], now: int, days: int, group_by: str) -> dict[str, Any]:
    keys: dict[str, Callable[[Stored], str]] = {
        "alertname": lambda r: r.alertname,
        "status": lambda r: r.status,
        "namespace": lambda r: r.namespace or "unknown",
    }
    key = keys.get(group_by, lambda r: "all")
    data: dict[str, dict[str, int]] = {}
    for r in rows:
        if now - days * DAY <= r.first_seen <= now:
            group = data.setdefault(key(r), {"count": 0, "firing": 0, "resolved": 0})
            group["count"] += 1
            group[r.status] += 1
    ordered = dict(sorted(data.items(), key=lambda item: item[0].encode()))
    return {
        "period_days": days,
        "group_by": group_by,
        "data": ordered,
        "total_alerts": sum(g["count"] for g in ordered.values()),
    }


async def assert_every_window(storage: Storage, *, min_flap: int = 1, top: int = 3) -> None:
    rows = await stored_rows(storage)
    now = T0 + 2 * DAY + 5 * HOUR
    for since in ROLLUP_WINDOWS:
        for until in ROLLUP_WINDOWS:
            # sums per alertname from report_names_* (no filter, an alertname) or from the
            # keys (a namespace)
            for name, namespace in ((None, None), ("a", None), (None, "x")):
                report = await run(
                    storage, now=now, since=since, until=until, alertname=name,
                    namespace=namespace, min_flap=min_flap, top=top,
                )  # fmt: skip
                chosen = select(rows, name, namespace, since, until)
                assert report.v1 == report_v1(v1_rows(chosen), min_flap=min_flap, top=top), (
                    since, until, name, namespace,
                )  # fmt: skip
                assert_summary(report, chosen, top=top, since=since, until=until, now=now)
    for days in (1, 2, 5):
        for group_by in ("alertname", "status", "namespace", "all"):
            v2 = (await run(storage, now=now, days=days, group_by=group_by)).v2
            assert v2 == expected_v2(rows, now, days, group_by), (days, group_by)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(draw=rollup_notifications, refresh_at_end=st.booleans())
async def test_the_rollup_gives_the_same_numbers_as_the_rows(
    storage_url: str,
    draw: list[tuple[int, int, str, int, int, int, int, str]],
    refresh_at_end: bool,
) -> None:
    storage = await open_storage(storage_url)
    try:
        await storage.write(empty)
        await storage.write(lambda db: db.execute("DELETE FROM report_days"))
        await storage.write(lambda db: db.execute("DELETE FROM report_names_days"))
        await storage.write(lambda db: db.execute("DELETE FROM report_multi"))
        await write_and_refresh(storage, rollup_batches(draw))
        if refresh_at_end:
            await refresh_all(storage)
        await assert_every_window(storage)
        await assert_names_add_up(storage)
    finally:
        await storage.aclose()


def spread() -> list[list[AlertEvent]]:
    """The recorded morning, then the same again a day and two days later (new episodes)."""
    days = []
    for shift in (0, DAY, 2 * DAY + 3 * HOUR):
        days += [
            [
                msgspec.structs.replace(
                    e, starts_at=e.starts_at + shift, received_at=e.received_at + shift,
                    ends_at=e.ends_at + shift if e.ends_at else 0,
                )
                for e in batch
            ]
            for batch in recorded()
        ]  # fmt: skip
    return days


@pytest.mark.parametrize("max_changes", [1000, 0])  # a store changes rows / replaces the day
async def test_the_rollup_follows_repeats_purges_and_imports(
    storage: Storage, max_changes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(report_rollup, "_MAX_CHANGES", max_changes)
    await write(storage, spread())
    assert await refresh_all(storage) == 3
    await assert_every_window(storage, min_flap=2, top=10)
    # repeats of states on clean days only add to their notify_count (the days stay clean)
    repeats = [e for batch in recorded() for e in batch if e.status == "firing"][:6]
    await storage.write_events(repeats)
    assert await storage.read(lambda db: db.fetchall("SELECT day FROM report_dirty")) == []
    await assert_every_window(storage, min_flap=2, top=10)
    # a resolution a day later joins an episode of a clean day
    late = at_minutes("DiskFull", "prod", "disk-1", "resolved", 7, 9, 24 * 60 + 70)
    await storage.write_events([late])
    await assert_every_window(storage, min_flap=2, top=10)
    await refresh_all(storage)
    await assert_every_window(storage, min_flap=2, top=10)
    # retention deletes the first morning
    assert await storage.purge(T0 + 12 * HOUR, 1000) == 30
    await assert_every_window(storage, min_flap=2, top=10)
    await refresh_all(storage)
    await assert_every_window(storage, min_flap=2, top=10)
    # a legacy import brings it back (and a state twice: once)
    imported = [e for batch in recorded() for e in batch]
    assert await storage.import_events(imported) == 30
    await assert_every_window(storage, min_flap=2, top=10)
    await refresh_all(storage)
    await assert_every_window(storage, min_flap=2, top=10)


async def test_a_refresh_computes_out_of_the_writers_way(storage: Storage) -> None:
    """A day is computed with reads: a write issued meanwhile completes before the computation
    does (on SQLite the writer connection is free, on PostgreSQL no lock is held); that write
    dirtied the day again, so the computed rows are not stored, and the next refresh stores it."""
    await write(storage, spread())
    assert await refresh_all(storage) == 3
    day = T0 // DAY
    # a late resolution of an episode of that day dirties it
    await storage.write_events([at_minutes("DiskFull", "prod", "disk-1", "resolved", 7, 9, 70)])
    computing, release = trio.Event(), threading.Event()
    order: list[object] = []

    def slow_compute(db: Db) -> Computed | None:
        computed = compute_day(db, day)
        trio.from_thread.run_sync(computing.set)
        # a safety bound only (the test fails, not hangs, if the write waited for this)
        release.wait(timeout=30)
        order.append("computed")
        return computed

    async def refresher() -> None:
        computed = await storage.read(slow_compute)
        assert computed is not None
        order.append(await storage.write(partial(store, computed=computed)))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(refresher)
        await computing.wait()
        await storage.write_events([at_minutes("DiskFull", "prod", "disk-2", "firing", 3, 3, 75)])
        order.append("written")
        release.set()
    assert order == ["written", "computed", False]  # not stored: the write dirtied the day again
    dirty = await storage.read(lambda db: db.fetchall("SELECT day FROM report_dirty"))
    assert (day,) in [tuple(row) for row in dirty]
    await assert_every_window(storage, min_flap=2, top=10)
    assert await refresh_day(storage, day)
    assert await storage.read(lambda db: db.fetchall("SELECT day FROM report_dirty")) == []
    await assert_every_window(storage, min_flap=2, top=10)


async def test_a_repeat_notification_while_a_day_is_computed_keeps_it_dirty(
    storage: Storage,
) -> None:
    """A repeat only adds to notify_count (no new row), yet a day computed before it must not
    be stored without it."""
    await write(storage, spread())
    assert await refresh_all(storage) == 3
    repeat = [e for batch in recorded() for e in batch if e.status == "firing"][:1]
    late = at_minutes("DiskFull", "prod", "disk-1", "resolved", 7, 9, 70)
    await storage.write_events([late])  # the first day is dirty
    day = T0 // DAY
    computed = await storage.read(partial(compute_day, day=day))
    assert computed is not None
    await storage.write_events(repeat)  # a repeat of a row of that day
    assert not await storage.write(partial(store, computed=computed))
    await assert_every_window(storage, min_flap=2, top=10)
    assert await refresh_day(storage, day)
    await assert_every_window(storage, min_flap=2, top=10)


async def test_every_key_is_numbered_whoever_writes_it(storage: Storage) -> None:
    """report_keys (migration 0009) gets every (alertname, namespace) that a row has, from the
    service's writes, imports and plain SQL alike, once each; the numbers of known keys stay."""
    await write(storage, spread())
    assert await refresh_all(storage) == 3

    def keys(db: Db) -> dict[tuple[str, str | None], int]:
        rows = db.fetchall("SELECT alertname, namespace, id FROM report_keys")
        return {(name, ns): int(i) for name, ns, i in rows}

    def row_keys(db: Db) -> set[tuple[str, str | None]]:
        return {(n, ns) for n, ns in db.fetchall("SELECT alertname, namespace FROM alert_events")}

    before = await storage.read(keys)
    assert set(before) == await storage.read(row_keys)
    await write(storage, recorded())  # repeats and known keys only
    assert await storage.read(keys) == before
    # a rename by plain SQL, in a clean day: a new key, and the report follows it
    await storage.write(
        lambda db: db.execute(
            "UPDATE alert_events SET alertname = 'Renamed', namespace = NULL"
            " WHERE alertname = 'HighCPU' AND namespace = 'prod'"
        )
    )
    after = await storage.read(keys)
    assert {k: v for k, v in after.items() if k in before} == before
    assert set(after) - set(before) == {("Renamed", None)}
    await assert_every_window(storage, min_flap=2, top=10)
    await refresh_all(storage)
    await assert_every_window(storage, min_flap=2, top=10)
    # a new key from an import (no alert_current row of its own needed)
    imported = event("Imported", "ops", "imp-1", "firing", starts=T0 + DAY, at=T0 + DAY)
    assert await storage.import_events([imported]) == 1
    assert ("Imported", "ops") in await storage.read(keys)
    await assert_every_window(storage, min_flap=2, top=10)


class _CacheSpy:
    """A Db that notes SQLite's page cache size at each statement of a report, and can fail
    the statement that reads the rollup's days."""

    def __init__(self, db: Db, *, fail: bool = False) -> None:
        self.db, self.dialect, self.fail = db, db.dialect, fail
        self.sizes: list[int] = []

    def _note(self, sql: str) -> None:
        row = self.db.fetchone("PRAGMA cache_size")
        assert row is not None
        self.sizes.append(int(row[0]))
        if self.fail and "report_days" in sql:
            raise RuntimeError("the statement failed")

    def fetchall(self, sql: str, params: Sequence[object] = ()) -> list[Any]:
        self._note(sql)
        return self.db.fetchall(sql, params)

    def fetchone(self, sql: str, params: Sequence[object] = ()) -> Any:
        return self.db.fetchone(sql, params)

    def execute(self, sql: str, params: Sequence[object] = ()) -> int:
        return self.db.execute(sql, params)


@pytest.mark.parametrize("fail", [False, True])
async def test_a_sqlite_report_sorts_in_a_larger_cache_for_itself_only(
    tmp_path: Path, fail: bool
) -> None:
    """On SQLite every statement of a report runs with a 64 MiB page cache (its sorts of a
    week's segments would spill to temporary files past the default 2 MiB), and the connection
    has its own size back afterwards, after an error too."""
    storage = await open_storage(f"sqlite:///{tmp_path / 'cache.db'}")
    try:
        await write(storage, spread())

        def report(db: Db) -> tuple[int, list[int]]:
            db.execute("PRAGMA cache_size = -1234")
            spy = _CacheSpy(db, fail=fail)
            with contextlib.suppress(RuntimeError):
                build_report(spy, ReportQuery(now=NOW + 3 * DAY, since=T0, days=7))  # type: ignore[arg-type]
            db.execute("BEGIN")  # the report's transaction is over (committed or rolled back)
            db.execute("ROLLBACK")
            row = db.fetchone("PRAGMA cache_size")
            assert row is not None
            db.execute("PRAGMA cache_size = -2000")
            return int(row[0]), spy.sizes

        after, sizes = await storage.read(report)
    finally:
        await storage.aclose()
    assert len(sizes) == (2 if fail else 3)  # the rollup's state, by key, v2
    assert set(sizes) == {-65536}
    assert after == -1234


# --- the spans -------------------------------------------------------------------------------
#
# Spans (storage/report_spans.py) stand for runs of 2-16 hours and 2-32 days. Here a fortnight
# of mornings (a key missing on some days, so that spans have keys on one side only) is
# refreshed, every span is built, and wide windows read them: the numbers must stay the
# legacy ones, after repeats added by the trigger and after late rows that drop spans.

FORTNIGHT_WINDOWS = [
    None,
    T0 - 2 * HOUR,
    T0 + 2 * DAY + 5 * HOUR + 7 * MINUTE,
    T0 + 3 * DAY,
    T0 + 9 * DAY + 30 * MINUTE,
    T0 + 15 * DAY,
]
FORTNIGHT_NOW = T0 + 16 * DAY


def fortnight() -> list[list[AlertEvent]]:
    """The recorded morning on each of 14 days, an hour later every third day, without HighCPU
    every fourth day."""
    batches = []
    for day in range(14):
        shift = day * DAY + (day % 3) * HOUR
        for batch in recorded():
            kept = [
                msgspec.structs.replace(
                    e, starts_at=e.starts_at + shift, received_at=e.received_at + shift,
                    ends_at=e.ends_at + shift if e.ends_at else 0,
                )
                for e in batch
                if day % 4 != 1 or e.alertname != "HighCPU"
            ]  # fmt: skip
            if kept:
                batches.append(kept)
    return batches


class _SqlSpy:
    """A Db that keeps the SQL it runs, and the parameters of its fetches."""

    def __init__(self, db: Db) -> None:
        self.db, self.dialect = db, db.dialect
        self.statements: list[str] = []
        self.params: list[object] = []

    def fetchall(self, sql: str, params: Sequence[object] = ()) -> list[Any]:
        self.statements.append(sql)
        self.params += params
        return self.db.fetchall(sql, params)

    def fetchone(self, sql: str, params: Sequence[object] = ()) -> Any:
        return self.db.fetchone(sql, params)

    def execute(self, sql: str, params: Sequence[object] = ()) -> int:
        return self.db.execute(sql, params)


async def assert_window(
    storage: Storage, rows: list[Stored], since: int | None, until: int | None
) -> _SqlSpy:
    """The window gives the legacy numbers and the plain summary; returns what it ran."""
    query = ReportQuery(now=FORTNIGHT_NOW, since=since, until=until, min_flap=2, top=10)

    def report(db: Db) -> tuple[Report, _SqlSpy]:
        spy = _SqlSpy(db)
        return build_report(spy, query), spy  # type: ignore[arg-type]

    result, spy = await storage.read(report)
    chosen = select(rows, None, None, since, until)
    assert result.v1 == report_v1(v1_rows(chosen), min_flap=2, top=10), (since, until)
    assert_summary(result, chosen, top=10, since=since, until=until, now=FORTNIGHT_NOW)
    return spy


async def assert_fortnight(storage: Storage) -> int:
    """Every window gives the legacy numbers and the plain summary; returns how many of the
    reports read spans."""
    rows = await stored_rows(storage)
    spanned = 0
    for since in FORTNIGHT_WINDOWS:
        for until in FORTNIGHT_WINDOWS:
            spy = await assert_window(storage, rows, since, until)
            spanned += any("(lo = ? AND hi = ?)" in sql for sql in spy.statements)
    for days in (3, 10):
        v2 = (await run(storage, now=FORTNIGHT_NOW, days=days, group_by="alertname")).v2
        assert v2 == expected_v2(rows, FORTNIGHT_NOW, days, "alertname"), days
    return spanned


async def assert_names_add_up(storage: Storage) -> None:
    """Every row of report_names_* (migration 0012) is its unit's rows per key summed by
    alertname, and there is no other."""

    def read(db: Db) -> list[tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]]:
        pairs = []
        for table, unit in (
            ("report_days", "r.day"),
            ("report_hours", "r.hour"),
            ("report_spans", "r.lo, r.hi"),
        ):
            names = report_spans.NAMES[table]
            keys = db.fetchall(
                f"SELECT {unit}, k.alertname, sum(r.events), sum(r.firing), min(r.first_seen),"
                " sum(r.episodes), sum(r.resolved_episodes), sum(r.quick_episodes),"
                f" sum(r.resolved_ns) FROM {table} r JOIN report_keys k ON k.id = r.key_id"
                f" GROUP BY {unit}, k.alertname"
            )
            stored = db.fetchall(f"SELECT * FROM {names}")
            pairs.append((keys, stored))
        return pairs

    for keys, stored in await storage.read(read):
        assert sorted(map(plain, stored)) == sorted(map(plain, keys))


def plain(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A row's values as Python numbers (PostgreSQL's sums come as Decimal)."""
    return tuple(int(v) if isinstance(v, Decimal) else v for v in row)


async def span_rows(storage: Storage) -> dict[tuple[int, int], list[tuple[Any, ...]]]:
    def read(db: Db) -> list[tuple[Any, ...]]:
        return db.fetchall("SELECT * FROM report_spans ORDER BY lo, hi, key_id")

    spans: dict[tuple[int, int], list[tuple[Any, ...]]] = defaultdict(list)
    for row in await storage.read(read):
        spans[(int(row[0]), int(row[1]))].append(tuple(row))
    return spans


def fortnight_spans(db: Db) -> list[Any]:
    """The built spans that end within the fortnight's data but the trailing ones (refresh_all
    also builds the trailing spans for its `now`, and the aligned spans in them after it)."""
    return db.fetchall(
        "SELECT lo, hi FROM report_spans_built b WHERE hi < ? AND NOT EXISTS ("
        " SELECT 1 FROM report_spans_trailing t WHERE t.lo = b.lo AND t.hi = b.hi)",
        [(T0 + 14 * DAY) // HOUR],
    )


async def test_reports_read_spans_and_keep_the_legacy_numbers(storage: Storage) -> None:
    await write(storage, fortnight())
    assert await refresh_all(storage) == 14
    await assert_names_add_up(storage)
    built = await storage.read(fortnight_spans)
    sizes = Counter(int(hi) - int(lo) + 1 for lo, hi in built)
    assert {2, 4, 8, 16, 48, 96, 192} <= set(sizes)
    assert await assert_fortnight(storage) >= 15
    # repeats of old states add to their spans (no day gets dirty), as a rebuild would
    before = await span_rows(storage)
    repeats = [
        msgspec.structs.replace(e, received_at=e.received_at + 5 * DAY + HOUR, notify_count=4)
        for batch in fortnight()[40:60]
        for e in batch
        if e.status == "firing"
    ]
    await storage.write_events(repeats)
    assert await storage.read(lambda db: db.fetchall("SELECT day FROM report_dirty")) == []
    after = await span_rows(storage)
    assert after.keys() == before.keys() and after != before
    await assert_fortnight(storage)
    await storage.write(lambda db: report_spans.drop(db, list(after)))
    assert await report_spans.build_all(storage, FORTNIGHT_NOW) == len(after)
    assert await span_rows(storage) == after
    await assert_names_add_up(storage)
    # a late resolution on day 5 of an episode of day 4: both days are stored again, the spans
    # holding them are dropped and built again from the new days
    late = msgspec.structs.replace(
        at_minutes("DiskFull", "prod", "disk-1", "resolved", 7, 9, 70),
        starts_at=m(7) + 4 * DAY + HOUR, ends_at=m(9) + 5 * DAY, received_at=m(9) + 5 * DAY,
    )  # fmt: skip
    await storage.write_events([late])
    assert await assert_fortnight(storage) >= 10  # the spans without those days still serve
    await refresh_all(storage, now_ns=FORTNIGHT_NOW)
    rebuilt = await storage.read(fortnight_spans)
    assert sorted(map(tuple, rebuilt)) == sorted(map(tuple, built))
    assert await assert_fortnight(storage) >= 15
    await assert_names_add_up(storage)


async def test_a_span_waits_for_an_uncommitted_repeat(postgres: PostgresServer) -> None:
    """On PostgreSQL a span built while a repeat of one of its rows is not committed yet waits
    for it and has it (the repeat's trigger holds report_spans first)."""
    url = postgres.create_database()
    storage = await open_storage(url)
    try:
        await write(storage, fortnight())
        await refresh_all(storage, now_ns=FORTNIGHT_NOW)
        day = (T0 + 2 * DAY) // DAY
        (span,) = [s for s in report_spans.holding_day(day) if s[1] - s[0] + 1 == 4 * 24]
        await storage.write(lambda db: report_spans.drop(db, report_spans.holding_day(day)))
        row_id, count = await storage.read(
            lambda db: db.fetchone(
                "SELECT id, notify_count FROM alert_events WHERE first_seen / ? = ? LIMIT 1",
                [DAY, day],
            )
        )
        built = trio.Event()
        with psycopg.connect(url) as conn:
            conn.execute(
                "UPDATE alert_events SET notify_count = %s WHERE id = %s", [count + 7, row_id]
            )

            async def builder() -> None:
                for half in report_spans.halves(span):
                    await storage.write(partial(report_spans.build, span=half))
                assert await storage.write(partial(report_spans.build, span=span))
                built.set()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(builder)
                # PostgreSQL shows the wait, nothing here can be awaited for it
                with trio.fail_after(30):
                    while not await storage.read(_waits_for_a_lock):  # noqa: ASYNC110
                        await trio.sleep(0.01)
                assert not built.is_set()
                conn.commit()
        assert built.is_set()
        rows = (await span_rows(storage))[span]
        await storage.write(lambda db: report_spans.drop(db, [span]))
        assert await storage.write(partial(report_spans.build, span=span))
        assert (await span_rows(storage))[span] == rows
        total = sum(int(r[6]) for r in rows)  # notifications
        assert total == await storage.read(
            lambda db: db.fetchone(
                "SELECT sum(notify_count) FROM alert_events"
                " WHERE first_seen >= ? AND first_seen < ?",
                [span[0] * HOUR, (span[1] + 1) * HOUR],
            )[0]
        )
    finally:
        await storage.aclose()


def _waits_for_a_lock(db: Db) -> bool:
    row = db.fetchone(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        " AND query LIKE '%report_spans%'"
    )
    return row is not None and int(row[0]) > 0


async def test_v2_from_v1s_window_equals_its_own(storage: Storage) -> None:
    """With `since` within an hour of v2's start (and `until` within an hour of now, or none),
    v2's counts come from v1's per-key sums, corrected by the rows between the windows; they
    equal v2's own computation, for every grouping, with or without a key filter."""
    await write(storage, fortnight())
    await refresh_all(storage)
    rows = await stored_rows(storage)
    now = T0 + 9 * DAY + 7 * MINUTE
    start = now - 7 * DAY
    folded = 0
    for since in (start - 59 * MINUTE, start, start + 31 * MINUTE, start - 3 * HOUR):
        for until in (None, now - 50 * MINUTE, now + 10 * MINUTE, now - 5 * HOUR):
            for group_by in ("alertname", "status", "namespace", "all"):
                for name in (None, "HighCPU"):
                    query = ReportQuery(
                        now=now, since=since, until=until, days=7, group_by=group_by,
                        alertname=name,
                    )  # fmt: skip

                    def report(db: Db, query: ReportQuery = query) -> tuple[Report, list[str]]:
                        spy = _SqlSpy(db)
                        return build_report(spy, query), spy.statements  # type: ignore[arg-type]

                    result, statements = await storage.read(report)
                    chosen = select(rows, name)
                    assert result.v2 == expected_v2(chosen, now, 7, group_by), (since, until)
                    folded += not any("HAVING sum(n) > 0\nORDER BY key" in s for s in statements)
    assert folded == 3 * 3 * 4 * 2  # the windows within an hour of each other at both ends


async def trailing_spans(storage: Storage) -> list[tuple[int, int]]:
    rows = await storage.read(lambda db: db.fetchall("SELECT lo, hi FROM report_spans_trailing"))
    return sorted((int(lo), int(hi)) for lo, hi in rows)


async def test_trailing_spans_serve_a_report_since_any_hour_and_keep_the_legacy_numbers(
    storage: Storage,
) -> None:
    """A trailing span runs from a report's first whole hour to the end of yesterday, merged
    from what the report would read for those hours: the numbers stay the legacy ones, with
    repeats added by the trigger and after a late row inside it, which drops it."""
    await write(storage, fortnight())
    await refresh_all(storage, now_ns=FORTNIGHT_NOW)
    rows = await stored_rows(storage)
    now_hour = FORTNIGHT_NOW // HOUR
    end = (now_hour // 24) * 24 - 1  # the last hour of yesterday

    async def assert_windows(first_hour: int) -> int:
        """The legacy numbers for windows from `first_hour`; how many read a trailing span."""
        read_it = 0
        for until in (None, T0 + 12 * DAY + 3 * HOUR, T0 + 15 * DAY):
            spy = await assert_window(storage, rows, first_hour * HOUR, until)
            pairs = set(itertools.pairwise(spy.params))
            trailing = await trailing_spans(storage)
            read_it += any(lo == first_hour and (lo, hi) in pairs for lo, hi in trailing)
        return read_it

    for hours_back in (7 * 24, 7 * 24 - 5, 9 * 24 + 13, 12 * 24 - 1):
        first_hour = now_hour - hours_back
        await report_spans.build_trailing(storage, FORTNIGHT_NOW, hours_back=hours_back)
        trailing = await trailing_spans(storage)
        assert trailing and all(hi == end and lo >= first_hour for lo, hi in trailing)
        assert (first_hour, end) in trailing or report_spans.is_aligned((first_hour, end))
        # a report since then reads it, until the end of yesterday or later
        assert await assert_windows(first_hour) >= 1 or (first_hour, end) not in trailing
    await assert_names_add_up(storage)
    # repeats of states inside it add to it, as to the days and hours it was merged from
    first_hour = now_hour - (9 * 24 + 13)
    await report_spans.build_trailing(storage, FORTNIGHT_NOW, hours_back=9 * 24 + 13)
    before = (await span_rows(storage))[(first_hour, end)]
    repeats = [
        msgspec.structs.replace(e, received_at=e.received_at + 5 * DAY + HOUR, notify_count=4)
        for batch in fortnight()[-30:]
        for e in batch
        if e.status == "firing"
    ]
    await storage.write_events(repeats)
    rows = await stored_rows(storage)
    after = (await span_rows(storage))[(first_hour, end)]
    assert after != before and len(after) == len(before)
    assert await assert_windows(first_hour) >= 1
    # the same span built again from its (repeated) pieces has the same rows
    await storage.write(lambda db: report_spans.drop(db, [(first_hour, end)]))
    assert await report_spans.build_trailing(storage, FORTNIGHT_NOW, hours_back=9 * 24 + 13)
    assert (await span_rows(storage))[(first_hour, end)] == after
    # a late row on a day inside it: the day is stored again, which drops the span; reports
    # read the pieces meanwhile, and the next round builds it again
    late = msgspec.structs.replace(
        at_minutes("DiskFull", "prod", "disk-1", "resolved", 7, 9, 70),
        starts_at=m(7) + 10 * DAY + HOUR, ends_at=m(9) + 11 * DAY, received_at=m(9) + 11 * DAY,
    )  # fmt: skip
    await storage.write_events([late])
    rows = await stored_rows(storage)
    dirty = await storage.read(
        lambda db: (
            db.fetchall("SELECT hour FROM report_dirty_hours"),
            db.fetchall("SELECT day FROM report_dirty"),
        )
    )
    for (hour,) in dirty[0]:
        assert await report_rollup.refresh_hour(storage, int(hour))
    for (day,) in dirty[1]:
        assert await report_rollup.refresh_day(storage, int(day))
    assert dirty[1] and (first_hour, end) not in await trailing_spans(storage)
    assert await assert_windows(first_hour) == 0
    await report_spans.build_trailing(storage, FORTNIGHT_NOW, hours_back=9 * 24 + 13)
    assert await assert_windows(first_hour) >= 1
    await assert_names_add_up(storage)
