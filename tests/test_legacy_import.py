"""`alert-history import-legacy`: the legacy service's databases, built from its DDL with known
rows, imported into SQLite and PostgreSQL, every field checked through the storage API."""

from __future__ import annotations

import calendar
import contextlib
import hashlib
import json
import os
import pty
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from alert_history.domain import fingerprint
from alert_history.legacy import (
    Skip,
    TableCounts,
    detect,
    import_legacy,
    map_event,
    parse_legacy_time,
)
from alert_history.models import Classification, HistoryQuery, StoredEvent
from alert_history.storage import Storage, open_storage
from tests.pg import PostgresServer, free_port

SCHEMAS = Path(__file__).parent / "fixtures" / "legacy_schemas"


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0, ns: int = 0) -> int:
    """Nanoseconds since the epoch, computed independently of the parsers under test."""
    return calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) * 1_000_000_000 + ns


@dataclass(frozen=True)
class Expected:
    """An event as it must come out of the import."""

    fingerprint: str
    status: str
    starts_at: int
    ends_at: int
    alertname: str
    namespace: str | None
    severity: str | None
    labels: dict[str, str]
    annotations: dict[str, str]
    generator_url: str
    source: str
    first_seen: int
    last_seen: int


def actual(event: StoredEvent) -> Expected:
    return Expected(
        event.fingerprint, event.status, event.starts_at, event.ends_at, event.alertname,
        event.namespace, event.severity, event.labels, event.annotations, event.generator_url,
        event.source, event.first_seen, event.last_seen,
    )  # fmt: skip


# -- v1: alert_history_service.py ------------------------------------------------------------

CPU_LABELS = {"alertname": "HighCPU", "namespace": "prod", "severity": "warning", "instance": "n1"}
CPU: dict[str, Any] = {
    "status": "firing",
    "labels": CPU_LABELS,
    "annotations": {"summary": "CPU > 90%", "runbook_url": "https://runbooks.local/cpu"},
    "startsAt": "2024-06-01T12:00:00.123456789Z",
    "endsAt": "0001-01-01T00:00:00Z",
    "generatorURL": "http://prometheus:9090/graph?g0.expr=cpu",
    "fingerprint": "c0ffee0000000001",
}
DISK_LABELS = {"alertname": "DiskFull", "namespace": "storage", "severity": "critical"}
UNI_LABELS = {"alertname": "Ünïcode", "team": "команда", "emoji": "🔥", "namespace": "日本"}
V1_ALERTS: list[tuple[dict[str, Any], str]] = [
    (CPU, "2024-06-01T12:00:05.123456"),
    ({**CPU, "status": "resolved", "endsAt": "2024-06-01T12:30:00.5Z"}, "2024-06-01T12:30:01"),
    (
        {
            "status": "resolved",
            "labels": DISK_LABELS,
            "annotations": {"summary": "disk"},
            "startsAt": "2024-06-01T14:00:00+02:00",
            "endsAt": "2024-06-01T15:00:00.25+02:00",
            "generatorURL": "",
            "fingerprint": "d15cf011d15cf011",
        },
        "2024-06-01T13:00:00.000001",
    ),
    (  # no fingerprint and no generatorURL: v1 stored ''
        {
            "status": "firing",
            "labels": {"alertname": "NoFingerprint", "job": "api"},
            "annotations": {},
            "startsAt": "2024-06-02T08:00:00.5",
            "endsAt": "0001-01-01T00:00:00Z",
        },
        "2024-06-02T08:00:01",
    ),
    (  # no fingerprint: v1 stored the generatorURL in its place
        {
            "status": "firing",
            "labels": {"alertname": "UrlAsFingerprint", "job": "web"},
            "startsAt": "2024-06-02T09:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph?g0.expr=up",
        },
        "2024-06-02T09:00:00.999999",
    ),
    (
        {
            "status": "firing",
            "labels": UNI_LABELS,
            "annotations": {"description": "שלום 🌍"},
            "startsAt": "2024-06-03T00:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "fingerprint": "abcdef0123456789",
        },
        "2024-06-03T00:00:02",
    ),
    (
        {
            "status": "firing",
            "labels": {"alertname": "Broken"},
            "startsAt": "2024-13-45T99:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "fingerprint": "b0000000000000b0",
        },
        "2024-06-03T00:00:03",
    ),
]


def v1_insert(conn: sqlite3.Connection, alert: dict[str, Any], updated_at: str) -> None:
    """Store one received alert the way the v1 webhook handler did."""
    labels = alert.get("labels", {})
    conn.execute(
        "INSERT INTO alert_history (alertname, fingerprint, status, labels, startsAt, endsAt, "
        "updatedAt, raw_json, namespace) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            labels.get("alertname", "unknown"),
            alert.get("fingerprint") or alert.get("generatorURL") or "",
            alert.get("status", "unknown"),
            json.dumps(labels, sort_keys=True),
            alert.get("startsAt"),
            alert.get("endsAt"),
            updated_at,
            json.dumps(alert, ensure_ascii=False),
            labels.get("namespace", ""),
        ),
    )


def make_v1(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        conn.executescript((SCHEMAS / "v1_sqlite.sql").read_text())
        for alert, updated_at in V1_ALERTS:
            v1_insert(conn, alert, updated_at)
        # a row without raw_json, its namespace only in the column
        conn.execute(
            "INSERT INTO alert_history (alertname, fingerprint, status, labels, startsAt, endsAt, "
            "updatedAt, namespace) VALUES ('ColumnsOnly', 'c0100000000000c0', 'firing', "
            "'{\"alertname\": \"ColumnsOnly\"}', '2024-06-04T00:00:00Z', NULL, "
            "'2024-06-04T00:00:01', 'legacy-ns')"
        )
    conn.close()
    return str(path)


def v1_expected() -> list[Expected]:
    cpu_start = utc(2024, 6, 1, 12, ns=123_456_789)
    cpu_url = CPU["generatorURL"]
    cpu_notes = CPU["annotations"]
    no_fp = {"alertname": "NoFingerprint", "job": "api"}
    url_fp = {"alertname": "UrlAsFingerprint", "job": "web"}
    return [
        Expected("c0ffee0000000001", "firing", cpu_start, 0, "HighCPU", "prod", "warning",
                 CPU_LABELS, cpu_notes, cpu_url, "legacy-v1",
                 utc(2024, 6, 1, 12, 0, 5, 123_456_000), utc(2024, 6, 1, 12, 0, 5, 123_456_000)),
        Expected("c0ffee0000000001", "resolved", cpu_start, utc(2024, 6, 1, 12, 30, ns=500_000_000),
                 "HighCPU", "prod", "warning", CPU_LABELS, cpu_notes, cpu_url, "legacy-v1",
                 utc(2024, 6, 1, 12, 30, 1), utc(2024, 6, 1, 12, 30, 1)),
        Expected("d15cf011d15cf011", "resolved", utc(2024, 6, 1, 12),
                 utc(2024, 6, 1, 13, ns=250_000_000), "DiskFull", "storage", "critical",
                 DISK_LABELS, {"summary": "disk"}, "", "legacy-v1",
                 utc(2024, 6, 1, 13, ns=1_000), utc(2024, 6, 1, 13, ns=1_000)),
        Expected(fingerprint(no_fp), "firing", utc(2024, 6, 2, 8, ns=500_000_000), 0,
                 "NoFingerprint", None, None, no_fp, {}, "", "legacy-v1",
                 utc(2024, 6, 2, 8, 0, 1), utc(2024, 6, 2, 8, 0, 1)),
        Expected(fingerprint(url_fp), "firing", utc(2024, 6, 2, 9), 0, "UrlAsFingerprint", None,
                 None, url_fp, {}, "http://prometheus:9090/graph?g0.expr=up", "legacy-v1",
                 utc(2024, 6, 2, 9, 0, 0, 999_999_000), utc(2024, 6, 2, 9, 0, 0, 999_999_000)),
        Expected("abcdef0123456789", "firing", utc(2024, 6, 3), 0, "Ünïcode", "日本", None,
                 UNI_LABELS, {"description": "שלום 🌍"}, "", "legacy-v1",
                 utc(2024, 6, 3, 0, 0, 2), utc(2024, 6, 3, 0, 0, 2)),
        Expected("c0100000000000c0", "firing", utc(2024, 6, 4), 0, "ColumnsOnly", "legacy-ns",
                 None, {"alertname": "ColumnsOnly"}, {}, "", "legacy-v1",
                 utc(2024, 6, 4, 0, 0, 1), utc(2024, 6, 4, 0, 0, 1)),
    ]  # fmt: skip


# -- v2 SQLite: SQLiteLegacyStorage ----------------------------------------------------------

MEM_FP = hashlib.sha256(b"MemoryHigh").hexdigest()
MEM_LABELS = {"alertname": "MemoryHigh", "namespace": "prod", "severity": "warning"}
NANO_LABELS = {"alertname": "Nanos", "pod": "p-1"}


def make_v2_sqlite(path: Path) -> str:
    alert_columns = (
        "fingerprint, alertname, status, labels, annotations, starts_at, ends_at, "
        "generator_url, received_at"
    )
    alerts = [
        (MEM_FP, "MemoryHigh", "firing", MEM_LABELS, {"summary": "mem"},
         "2024-06-01T12:00:00.123456+00:00", None, "http://prom/g", "2024-06-01T12:00:01.000001"),
        (MEM_FP, "MemoryHigh", "resolved", MEM_LABELS, {"summary": "mem"},
         "2024-05-31T10:00:00+02:00", "2024-05-31T09:00:00+00:00", "http://prom/g",
         "2024-05-31 09:00:02"),
        ("", "Nanos", "firing", NANO_LABELS, {}, "2024-06-01T12:00:00.123456789Z",
         "0001-01-01T00:00:00Z", None, "2024-06-01 12:00:03"),
        ("u" * 64, "Ünïcode", "firing", UNI_LABELS, {"description": "שלום"},
         "2024-06-02T00:00:00Z", "", "", "2024-06-02T00:00:00.5"),
        ("b" * 64, "Broken", "firing", {"alertname": "Broken"}, {}, "not a time", None, None,
         "2024-06-02 00:00:00"),
    ]  # fmt: skip
    classification_columns = (
        "fingerprint, severity, confidence, reasoning, recommendations, processing_time, "
        "metadata, created_at"
    )
    classifications = [
        (MEM_FP, "critical", 0.92, "Memory climbs 5 %/h", '["Add memory", "Check for leaks"]',
         1.5, '{"tags": ["memory"], "tokens": {"prompt": 812}}', "2024-06-01T12:00:02.5"),
        ("o" * 64, "false_positive", 0.3, None, "[]", None, None, "2024-06-01 12:00:04"),
        ("x" * 64, "info", "high", "", "[]", 0.1, None, "2024-06-01 12:00:05"),
    ]  # fmt: skip
    with sqlite3.connect(path) as conn:
        conn.executescript((SCHEMAS / "v2_sqlite.sql").read_text())
        for row in alerts:
            fp, name, status, labels, notes, *rest = row
            conn.execute(
                f"INSERT INTO alerts ({alert_columns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (fp, name, status, json.dumps(labels, sort_keys=True),
                 json.dumps(notes, sort_keys=True), *rest),
            )  # fmt: skip
        conn.executemany(
            f"INSERT INTO alert_classifications ({classification_columns}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            classifications,
        )
    conn.close()
    return str(path)


def v2_sqlite_expected() -> list[Expected]:
    return [
        Expected(MEM_FP, "firing", utc(2024, 6, 1, 12, ns=123_456_000), 0, "MemoryHigh", "prod",
                 "warning", MEM_LABELS, {"summary": "mem"}, "http://prom/g", "legacy-v2",
                 utc(2024, 6, 1, 12, 0, 1, 1_000), utc(2024, 6, 1, 12, 0, 1, 1_000)),
        Expected(MEM_FP, "resolved", utc(2024, 5, 31, 8), utc(2024, 5, 31, 9), "MemoryHigh",
                 "prod", "warning", MEM_LABELS, {"summary": "mem"}, "http://prom/g", "legacy-v2",
                 utc(2024, 5, 31, 9, 0, 2), utc(2024, 5, 31, 9, 0, 2)),
        Expected(fingerprint(NANO_LABELS), "firing", utc(2024, 6, 1, 12, ns=123_456_789), 0,
                 "Nanos", None, None, NANO_LABELS, {}, "", "legacy-v2",
                 utc(2024, 6, 1, 12, 0, 3), utc(2024, 6, 1, 12, 0, 3)),
        Expected("u" * 64, "firing", utc(2024, 6, 2), 0, "Ünïcode", "日本", None, UNI_LABELS,
                 {"description": "שלום"}, "", "legacy-v2",
                 utc(2024, 6, 2, ns=500_000_000), utc(2024, 6, 2, ns=500_000_000)),
    ]  # fmt: skip


V2_SQLITE_CLASSIFICATIONS = [
    Classification(
        fingerprint=MEM_FP, severity="critical", confidence=0.92, reasoning="Memory climbs 5 %/h",
        recommendations=["Add memory", "Check for leaks"], processing_time=1.5,
        metadata={"tags": ["memory"], "tokens": {"prompt": 812}}, model=None, source="import",
        created_at=utc(2024, 6, 1, 12, 0, 2, 500_000_000),
    ),
    Classification(
        fingerprint="o" * 64, severity="false_positive", confidence=0.3, reasoning="",
        recommendations=[], processing_time=None, metadata={}, model=None, source="import",
        created_at=utc(2024, 6, 1, 12, 0, 4),
    ),
]  # fmt: skip


# -- v2 PostgreSQL -----------------------------------------------------------------------------

LAT_LABELS = {"alertname": "LatencyHigh", "severity": "critical", "service": "api"}
ANON_LABELS = {"alertname": "Anon", "x": "y"}


def make_v2_postgres(url: str) -> str:
    ddl = (SCHEMAS / "v2_postgres.sql").read_text()
    extensions = [line for line in ddl.splitlines() if line.startswith("CREATE EXTENSION")]
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in extensions:
            # an extension this server does not ship: nothing below needs it
            with contextlib.suppress(psycopg.Error):
                conn.execute(statement.encode())
        rest = "\n".join(line for line in ddl.splitlines() if line not in extensions)
        conn.execute(rest.encode())
        insert_alert = (
            "INSERT INTO alerts (fingerprint, alert_name, namespace, status, labels, annotations, "
            "starts_at, ends_at, generator_url, timestamp, created_at, updated_at) "
            "VALUES (%s, %s, %s, %s, %s::jsonb, %s::jsonb, %s, %s, %s, %s, %s, %s)"
        )
        alerts = [
            ("pgfp1", "LatencyHigh", "checkout", "resolved", LAT_LABELS, {"summary": "p99 > 1s"},
             "2024-06-01 14:00:00.123456+02", "2024-06-01T12:30:00Z", "http://prom/lat",
             "2024-06-01T12:00:01Z", "2024-06-01T12:00:02Z", "2024-06-01T12:30:05Z"),
            ("pgfp2", "Ünïcode", None, "firing", UNI_LABELS, {"description": "שלום"},
             "2024-06-02T00:00:00.000001Z", None, None, "2024-06-02T00:00:01Z",
             "2024-06-02T00:00:01Z", "2024-06-02T00:00:01Z"),
            ("", "Anon", None, "firing", ANON_LABELS, {}, "2024-06-03T00:00:00Z", None, "",
             "2024-06-03T00:00:01Z", "2024-06-03T00:00:01Z", "2024-06-03T00:00:01Z"),
            ("pginf", "Broken", None, "firing", {"alertname": "Broken"}, {}, "infinity", None,
             None, "2024-06-03T00:00:02Z", "2024-06-03T00:00:02Z", "2024-06-03T00:00:02Z"),
        ]  # fmt: skip
        for fp, name, ns, status, labels, notes, *rest_values in alerts:
            conn.execute(
                insert_alert,
                (fp, name, ns, status, json.dumps(labels), json.dumps(notes), *rest_values),
            )
        conn.execute(
            "INSERT INTO alert_classifications (alert_fingerprint, severity, confidence, "
            "created_at, updated_at) VALUES ('pgfp1', 'warning', 0.5, "
            "'2024-06-01T12:00:03Z', '2024-06-01T12:00:03Z')"
        )
        conn.execute(
            "INSERT INTO alert_classifications (alert_fingerprint, severity, confidence, "
            "reasoning, recommendations, processing_time, metadata, llm_model, llm_version, "
            "cache_hit, created_at, updated_at, expires_at) VALUES ('pgfp1', 'critical', 0.875, "
            "'Latency SLO burn', '[\"Scale api\", \"Check the DB\"]', 2.125, "
            "'{\"tags\": [\"latency\"]}', 'gpt-4o', '2024-05-13', true, "
            "'2024-06-01T12:00:04.5Z', '2024-06-01T12:00:04.5Z', '2024-06-02T12:00:04.5Z')"
        )
        conn.execute(
            "INSERT INTO alert_classifications (alert_fingerprint, severity, confidence, "
            "created_at, updated_at) VALUES ('pgfp2', 'info', 0.7, "
            "'2024-06-02T00:00:01Z', '2024-06-02T00:00:01Z')"
        )
    return url


def v2_postgres_expected() -> list[Expected]:
    return [
        Expected("pgfp1", "resolved", utc(2024, 6, 1, 12, ns=123_456_000), utc(2024, 6, 1, 12, 30),
                 "LatencyHigh", "checkout", "critical", LAT_LABELS, {"summary": "p99 > 1s"},
                 "http://prom/lat", "legacy-v2", utc(2024, 6, 1, 12, 0, 1),
                 utc(2024, 6, 1, 12, 30, 5)),
        Expected("pgfp2", "firing", utc(2024, 6, 2, ns=1_000), 0, "Ünïcode", "日本", None,
                 UNI_LABELS, {"description": "שלום"}, "", "legacy-v2", utc(2024, 6, 2, 0, 0, 1),
                 utc(2024, 6, 2, 0, 0, 1)),
        Expected(fingerprint(ANON_LABELS), "firing", utc(2024, 6, 3), 0, "Anon", None, None,
                 ANON_LABELS, {}, "", "legacy-v2", utc(2024, 6, 3, 0, 0, 1),
                 utc(2024, 6, 3, 0, 0, 1)),
    ]  # fmt: skip


V2_POSTGRES_CLASSIFICATIONS = [
    Classification(
        fingerprint="pgfp1", severity="critical", confidence=0.875, reasoning="Latency SLO burn",
        recommendations=["Scale api", "Check the DB"], processing_time=2.125,
        metadata={
            "tags": ["latency"],
            "legacy": {
                "llm_version": "2024-05-13", "cache_hit": True,
                "updated_at": "2024-06-01T12:00:04.5Z", "expires_at": "2024-06-02T12:00:04.5Z",
            },
        },
        model="gpt-4o", source="import", created_at=utc(2024, 6, 1, 12, 0, 4, 500_000_000),
    ),
    Classification(
        fingerprint="pgfp2", severity="info", confidence=0.7, reasoning="", recommendations=[],
        processing_time=None,
        metadata={"legacy": {"cache_hit": False, "updated_at": "2024-06-02T00:00:01Z"}},
        model=None, source="import", created_at=utc(2024, 6, 2, 0, 0, 1),
    ),
]  # fmt: skip


# -- the cases -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[Path, PostgresServer | None], str]
    events: Callable[[], list[Expected]]
    classifications: list[Classification]
    lines: list[str]  # summary lines of a first import
    again: list[str]  # ... and of the second


CASES = [
    Case(
        "v1-sqlite",
        lambda tmp, _pg: make_v1(tmp / "alert_history.sqlite3"),
        v1_expected,
        [],
        ["events: read 8, written 7, skipped 1 (already imported 0, unparsable 1)"],
        ["events: read 8, written 0, skipped 8 (already imported 7, unparsable 1)"],
    ),
    Case(
        "v2-sqlite",
        lambda tmp, _pg: make_v2_sqlite(tmp / "alert_history.sqlite3"),
        v2_sqlite_expected,
        V2_SQLITE_CLASSIFICATIONS,
        [
            "events: read 5, written 4, skipped 1 (already imported 0, unparsable 1)",
            "classifications: read 3, written 2, skipped 1 (already imported 0, unparsable 1)",
        ],
        [
            "events: read 5, written 0, skipped 5 (already imported 4, unparsable 1)",
            "classifications: read 3, written 0, skipped 3 (already imported 2, unparsable 1)",
        ],
    ),
    Case(
        "v2-postgres",
        lambda _tmp, pg: make_v2_postgres(_server(pg).create_database()),
        v2_postgres_expected,
        V2_POSTGRES_CLASSIFICATIONS,
        [  # pgfp1's older classification is not written: the newer one is kept
            "events: read 4, written 3, skipped 1 (already imported 0, unparsable 1)",
            "classifications: read 3, written 2, skipped 1 (already imported 1, unparsable 0)",
        ],
        [
            "events: read 4, written 0, skipped 4 (already imported 3, unparsable 1)",
            "classifications: read 3, written 0, skipped 3 (already imported 3, unparsable 0)",
        ],
    ),
]


def _server(pg: PostgresServer | None) -> PostgresServer:
    assert pg is not None
    return pg


@pytest.fixture(params=CASES, ids=[case.name for case in CASES])
def case(request: pytest.FixtureRequest) -> Case:
    case: Case = request.param
    return case


@pytest.fixture
def legacy(case: Case, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    pg = request.getfixturevalue("postgres") if case.name.endswith("postgres") else None
    return case.make(tmp_path, pg)


async def everything(storage: Storage) -> list[StoredEvent]:
    return (await storage.history(HistoryQuery(limit=1000))).events


def lines(results: list[TableCounts]) -> list[str]:
    return [counts.line() for counts in results]


async def test_every_field_of_a_legacy_database_is_imported_once(
    case: Case, legacy: str, storage: Storage
) -> None:
    source = detect(legacy)
    first = await import_legacy(source, storage, batch=2)
    assert lines(first) == case.lines
    stored = await everything(storage)
    assert sorted(map(actual, stored), key=repr) == sorted(case.events(), key=repr)
    assert all(e.notify_count == 1 and e.receiver == "" for e in stored)
    for item in case.classifications:
        assert await storage.get_classification(item.fingerprint) == item

    second = await import_legacy(source, storage)
    assert lines(second) == case.again
    assert await everything(storage) == stored  # notify counts and times untouched


@pytest.mark.parametrize("case", CASES[1:], ids=[c.name for c in CASES[1:]], indirect=True)
async def test_a_legacy_database_can_also_be_the_target(case: Case, legacy: str) -> None:
    url = legacy if legacy.startswith("postgresql://") else f"sqlite:///{legacy}"
    storage = await open_storage(url)  # the service's tables beside the legacy ones
    try:
        assert lines(await import_legacy(detect(legacy), storage)) == case.lines
        for item in case.classifications:
            assert await storage.get_classification(item.fingerprint) == item
        assert lines(await import_legacy(detect(legacy), storage)) == case.again
    finally:
        await storage.aclose()


async def test_an_import_moves_the_current_state_to_the_latest_legacy_state(
    tmp_path: Path, storage: Storage
) -> None:
    await import_legacy(detect(make_v1(tmp_path / "v1.db")), storage)
    current = await storage.current_state("c0ffee0000000001")
    assert current is not None
    assert (current.status, current.ends_at, current.updated_at) == (
        "resolved",
        utc(2024, 6, 1, 12, 30, ns=500_000_000),
        utc(2024, 6, 1, 12, 30, 1),
    )


async def test_unparsable_rows_are_counted_with_their_reason(tmp_path: Path) -> None:
    source = detect(make_v1(tmp_path / "v1.db"))
    (counts,) = await import_legacy(source, None)
    assert counts.line() == "events: read 8, would write 7, skipped 1 (unparsable 1)"
    assert counts.details() == [
        "  unparsable events: starts_at 1",
        "    alert_history id=7: starts_at: invalid timestamp '2024-13-45T99:00:00Z': "
        "month must be in 1..12",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-06-01T12:00:00.123456789Z", utc(2024, 6, 1, 12, ns=123_456_789)),
        ("2024-06-01T12:00:00.123456789", utc(2024, 6, 1, 12, ns=123_456_789)),  # naive = UTC
        ("2024-06-01T12:00:00.123456", utc(2024, 6, 1, 12, ns=123_456_000)),  # utcnow()
        ("2024-06-01 12:00:04", utc(2024, 6, 1, 12, 0, 4)),  # CURRENT_TIMESTAMP
        ("2024-06-01T14:00:00+02:00", utc(2024, 6, 1, 12)),
        ("2024-06-01T14:00:00.5+0200", utc(2024, 6, 1, 12, ns=500_000_000)),
        ("2024-06-01 14:00:00.123456+02", utc(2024, 6, 1, 12, ns=123_456_000)),  # PostgreSQL
        ("2024-06-01 02:30:00-09:30", utc(2024, 6, 1, 12)),
        ("0001-01-01T00:00:00Z", 0),
        ("0001-01-01 00:00:00+00", 0),
    ],
)
def test_legacy_timestamps_parse_to_utc_nanoseconds(text: str, expected: int) -> None:
    assert parse_legacy_time(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "not a time", "2024-13-45T99:00:00Z", "infinity", "2024-06-01T12:00:00.1234567891Z"],
)
def test_broken_legacy_timestamps_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_legacy_time(text)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"status": "unknown"}, "status"),
        ({"starts_at": None}, "starts_at"),
        ({"starts_at": "0001-01-01T00:00:00Z"}, "starts_at"),
        ({"ends_at": "yesterday"}, "ends_at"),
        ({"labels": "{not json"}, "labels"),
        ({"labels": '{"a": 1}'}, "labels"),
        ({"raw_json": "[1]"}, "raw_json"),
        ({"seen": ["2024-02-30T00:00:00"]}, "received_at"),
    ],
)
def test_a_row_that_cannot_be_mapped_names_its_field(change: dict[str, object], field: str) -> None:
    row: dict[str, object] = {
        "fingerprint": "f",
        "status": "firing",
        "labels": '{"alertname": "A"}',
        "starts_at": "2024-06-01T00:00:00Z",
        "seen": ["2024-06-01T00:00:01"],
        **change,
    }
    skipped = map_event(row, source="legacy-v1")
    assert isinstance(skipped, Skip)
    assert skipped.field == field


# -- the command -----------------------------------------------------------------------------


def cli(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "alert_history", "import-legacy", *args],
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_command_imports_shows_progress_and_imports_nothing_twice(tmp_path: Path) -> None:
    source = make_v1(tmp_path / "alert_history.sqlite3")
    url = f"sqlite:///{tmp_path}/target.db"
    first = cli(source, "--batch", "3", database_url=url)
    assert first.returncode == 0, first.stderr
    out = first.stdout.splitlines()
    assert out[0] == f"legacy v1 SQLite {source} (alert_history) -> {url}"
    assert out[1] == "events: read 8, written 7, skipped 1 (already imported 0, unparsable 1)"
    assert out[2] == "  unparsable events: starts_at 1"
    progress = [line for line in first.stderr.splitlines() if line.startswith("import-legacy: ev")]
    assert progress == [  # not a terminal: one line per batch
        "import-legacy: events: read 3, written 3, skipped 0 (already imported 0, unparsable 0)",
        "import-legacy: events: read 6, written 6, skipped 0 (already imported 0, unparsable 0)",
        "import-legacy: events: read 8, written 7, skipped 1 (already imported 0, unparsable 1)",
    ]
    again = cli(source, database_url=url)
    assert again.returncode == 0, again.stderr
    assert "events: read 8, written 0, skipped 8 (already imported 7, unparsable 1)" in (
        again.stdout.splitlines()
    )


def test_the_command_imports_legacy_postgres_into_postgres(
    tmp_path: Path, postgres: PostgresServer
) -> None:
    source = make_v2_postgres(postgres.create_database())
    target = postgres.create_database()
    result = cli(source, database_url=target)
    assert result.returncode == 0, result.stderr
    assert [line for line in result.stdout.splitlines()[1:] if line[0] != " "] == CASES[2].lines
    with psycopg.connect(target) as conn:
        rows = conn.execute("SELECT count(*), sum(notify_count) FROM alert_events").fetchone()
    assert rows == (3, 3)


def test_a_dry_run_reads_everything_and_writes_nothing(tmp_path: Path) -> None:
    source = f"sqlite:///{make_v2_sqlite(tmp_path / 'legacy.db')}"  # a path or a URL
    result = cli(source, "--dry-run", database_url=f"sqlite:///{tmp_path}/target.db")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1:3] == [
        "events: read 5, would write 4, skipped 1 (unparsable 1)",
        "  unparsable events: starts_at 1",
    ]
    assert "classifications: read 3, would write 2, skipped 1 (unparsable 1)" in result.stdout
    assert not (tmp_path / "target.db").exists()


def test_progress_is_one_updating_line_on_a_terminal(tmp_path: Path) -> None:
    source = make_v1(tmp_path / "legacy.db")
    leader, follower = pty.openpty()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "alert_history", "import-legacy", source, "--batch", "2"],
            env={"PATH": "/usr/bin:/bin", "DATABASE_URL": f"sqlite:///{tmp_path}/t.db"},
            stdout=subprocess.PIPE,
            stderr=follower,
            text=True,
            timeout=120,
        )
        os.close(follower)
        follower = -1
        screen = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the other side is closed and drained
                break
            if not chunk:
                break
            screen += chunk
    finally:
        if follower != -1:
            os.close(follower)
        os.close(leader)
    assert result.returncode == 0
    text = screen.decode().replace("\r\n", "\n")  # the terminal's own newline translation
    assert text.count("\r") == 4  # four batches, one line
    assert text.rstrip("\r\n").endswith(
        "events: read 8, written 7, skipped 1 (already imported 0, unparsable 1)"
    )


def test_a_source_that_cannot_be_read_exits_1_and_usage_errors_exit_2(
    tmp_path: Path, postgres: PostgresServer
) -> None:
    url = f"sqlite:///{tmp_path}/target.db"
    missing = cli(str(tmp_path / "missing.db"), database_url=url)
    assert (missing.returncode, missing.stdout) == (1, "")
    assert "missing.db: no such file" in missing.stderr

    (tmp_path / "text.db").write_text("not a database " * 100)
    garbage = cli(str(tmp_path / "text.db"), database_url=url)
    assert garbage.returncode == 1
    assert "file is not a database" in garbage.stderr

    sqlite3.connect(tmp_path / "empty.db").close()
    empty = cli(str(tmp_path / "empty.db"), database_url=url)
    assert empty.returncode == 1
    assert "holds no legacy alert-history tables" in empty.stderr

    no_tables = cli(postgres.create_database(), database_url=url)
    assert no_tables.returncode == 1
    assert "holds no legacy alert-history tables" in no_tables.stderr

    down = f"postgresql://legacy:hunter2@127.0.0.1:{free_port()}/legacy"
    refused = cli(down, database_url=url)
    assert refused.returncode == 1
    assert "cannot read the legacy database" in refused.stderr
    assert "hunter2" not in refused.stderr

    assert not (tmp_path / "target.db").exists()
    source = make_v1(tmp_path / "v1.db")
    unwritable = cli(source, database_url=f"sqlite:///{source}/under/a/file.db")
    assert unwritable.returncode == 1
    assert "cannot write to" in unwritable.stderr

    assert cli(str(tmp_path / "x.db"), "--batch", "0", database_url=url).returncode == 2
    assert cli(database_url=url).returncode == 2
