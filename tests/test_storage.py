"""The storage contract, run against every backend: SQLite and a real PostgreSQL."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest
import trio

from alert_history.errors import SchemaTooNew, StorageError
from alert_history.models import AlertEvent, Classification, HistoryQuery
from alert_history.storage import Db, SQLiteStorage, Storage, open_storage

T0 = 1_700_000_000_000_000_000
MINUTE = 60_000_000_000


def event(
    fp: str = "f1",
    *,
    status: str = "firing",
    starts_at: int = T0,
    ends_at: int = 0,
    received_at: int = T0,
    count: int = 1,
    name: str = "A",
    annotations: dict[str, str] | None = None,
) -> AlertEvent:
    return AlertEvent(
        fingerprint=fp, status="resolved" if status == "resolved" else "firing",
        starts_at=starts_at, ends_at=ends_at, alertname=name, namespace="ns", severity="warning",
        labels={"alertname": name, "fp": fp}, annotations=annotations or {"summary": "s"},
        generator_url="", receiver="r", group_key="g", source="alertmanager",
        received_at=received_at, notify_count=count,
    )  # fmt: skip


async def test_a_new_state_is_inserted_and_a_repeat_is_counted(storage: Storage) -> None:
    first = await storage.write_events([event(), event("f2")])
    assert (first.inserted, first.repeated) == (2, 0)
    again = await storage.write_events([event(received_at=T0 + MINUTE, count=3)])
    assert (again.inserted, again.repeated) == (0, 1)
    page = await storage.history(HistoryQuery(fingerprint="f1"))
    assert page.total == 1
    (row,) = page.events
    assert row.notify_count == 4
    assert (row.first_seen, row.last_seen) == (T0, T0 + MINUTE)


async def test_the_same_state_twice_in_one_transaction_is_one_row(storage: Storage) -> None:
    outcome = await storage.write_events([event(), event(received_at=T0 + 1)])
    assert (outcome.inserted, outcome.repeated) == (1, 1)
    (row,) = (await storage.history(HistoryQuery())).events
    assert row.notify_count == 2


async def test_every_distinct_state_of_an_alert_is_its_own_row(storage: Storage) -> None:
    await storage.write_events(
        [
            event(),
            event(status="resolved", ends_at=T0 + MINUTE),
            event(starts_at=T0 + 2 * MINUTE),  # the next episode
        ]
    )
    page = await storage.history(HistoryQuery(fingerprint="f1"))
    assert [(e.status, e.starts_at, e.ends_at) for e in page.events] == [
        ("firing", T0 + 2 * MINUTE, 0),
        ("resolved", T0, T0 + MINUTE),
        ("firing", T0, 0),
    ]


async def test_current_state_moves_forward_only(storage: Storage) -> None:
    await storage.write_events([event(status="resolved", ends_at=T0 + MINUTE)])
    await storage.write_events([event()])  # a late firing resend of the same episode
    current = await storage.current_state("f1")
    assert current is not None
    assert (current.status, current.ends_at) == ("resolved", T0 + MINUTE)

    await storage.write_events([event(starts_at=T0 + 5 * MINUTE, received_at=T0 + 5 * MINUTE)])
    current = await storage.current_state("f1")
    assert current is not None
    assert (current.status, current.starts_at) == ("firing", T0 + 5 * MINUTE)

    await storage.write_events([event(status="resolved", ends_at=T0 + MINUTE)])  # old episode
    current = await storage.current_state("f1")
    assert current is not None
    assert (current.status, current.starts_at) == ("firing", T0 + 5 * MINUTE)
    assert await storage.current_state("unknown") is None


async def test_latest_annotations_are_kept_for_a_repeated_state(storage: Storage) -> None:
    await storage.write_events([event(annotations={"value": "1"})])
    await storage.write_events([event(annotations={"value": "2"})])
    (row,) = (await storage.history(HistoryQuery())).events
    assert row.annotations == {"value": "2"}


async def test_history_pages_newest_first_with_a_keyset_cursor(storage: Storage) -> None:
    await storage.write_events([event(f"f{i}", received_at=T0 + i) for i in range(7)])
    first = await storage.history(HistoryQuery(limit=3))
    assert [e.fingerprint for e in first.events] == ["f6", "f5", "f4"]
    assert first.total == 7
    await storage.write_events([event("late", received_at=T0 + 100)])
    second = await storage.history(HistoryQuery(limit=3, before_id=first.next_before_id))
    assert [e.fingerprint for e in second.events] == ["f3", "f2", "f1"]
    third = await storage.history(HistoryQuery(limit=3, before_id=second.next_before_id))
    assert [e.fingerprint for e in third.events] == ["f0"]
    assert third.next_before_id is None


async def test_large_batches_span_several_statements(storage: Storage) -> None:
    events = [event(f"f{i}") for i in range(1_234)]
    outcome = await storage.write_events(events)
    assert outcome.inserted == 1_234
    assert (await storage.history(HistoryQuery(limit=1))).total == 1_234
    stats = await storage.stats()
    assert (stats.events, stats.current, stats.firing) == (1_234, 1_234, 1_234)


async def test_concurrent_writers_still_store_each_state_once(storage: Storage) -> None:
    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(storage.write_events, [event(), event("f2")])
    page = await storage.history(HistoryQuery())
    assert sorted((e.fingerprint, e.notify_count) for e in page.events) == [("f1", 5), ("f2", 5)]


async def test_unicode_and_large_values_round_trip(storage: Storage) -> None:
    labels = {
        "alertname": "Ünï",
        "emoji": "🔥🚒",
        "rtl": "שלום",
        "big": "x" * 65_536,
        "nul": "a\0b",
    }
    ev = msgspec.structs.replace(event(), labels=labels)
    await storage.write_events([ev])
    (row,) = (await storage.history(HistoryQuery())).events
    assert row.labels == labels


async def test_nul_in_any_string_is_stored_and_fails_no_other_alert(storage: Storage) -> None:
    # Alertmanager passes NUL through in label values; PostgreSQL's text cannot hold it, and
    # refused there it would fail every alert sharing the group commit
    labels = {"alertname": "A\0B", "namespace": "n\0s", "severity": "w\0", "k\0": "v\0"}
    odd = msgspec.structs.replace(
        event("f\0"), labels=labels, alertname="A\0B", namespace="n\0s", severity="w\0",
        annotations={"s\0": "t\0"}, generator_url="http://x/\0", receiver="r\0", group_key="g\0",
    )  # fmt: skip
    written = await storage.write_events([odd, event("f2")])
    assert (written.inserted, written.repeated) == (2, 0)
    repeat = await storage.write_events([odd])  # the same state again: a repeat, not a new row
    assert (repeat.inserted, repeat.repeated) == (0, 1)
    (found,) = (await storage.history(HistoryQuery(alertname="A\0B"))).events
    assert (found.labels, found.annotations, found.notify_count) == (labels, odd.annotations, 2)
    plain = {"sqlite": "A\0B", "postgres": "A\ufffdB"}[storage.backend]
    assert found.alertname == plain  # a column taken from the labels: U+FFFD on PostgreSQL
    assert len((await storage.history(HistoryQuery())).events) == 2
    item = classification(found.fingerprint, reasoning="r\0", severity="critical")
    assert await storage.write_classifications([item]) == 1
    got = await storage.get_classification(found.fingerprint)
    assert (
        got is not None
        and got.reasoning == {"sqlite": "r\0", "postgres": "r\ufffd"}[storage.backend]
    )


async def test_a_schema_newer_than_the_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    await (await open_storage(f"sqlite:///{path}")).aclose()  # creates and migrates
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_migrations VALUES (9999, 'future', 'x', 'now')")
    with pytest.raises(SchemaTooNew, match="newer than this code knows"):
        await open_storage(f"sqlite:///{path}")


async def test_an_edited_migration_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "edited.db"
    storage = await open_storage(f"sqlite:///{path}")
    await storage.aclose()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE schema_migrations SET checksum = 'tampered' WHERE version = 1")
    with pytest.raises(StorageError, match="checksum mismatch"):
        await open_storage(f"sqlite:///{path}")


async def test_pending_migrations_stop_start_up_when_auto_migrate_is_off(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="migrations pending"):
        await open_storage(f"sqlite:///{tmp_path}/fresh.db", migrate=False)
    storage = SQLiteStorage(str(tmp_path / "fresh.db"))
    await storage.open(migrate=False, check=False)
    names = [
        "initial",
        "classifications",
        "filter_rules",
        "event_extra",
        "classifier",
        "report_rollup",
        "history_indexes",
        "classification_claims",
        "report_keys",
        "report_spans",
        "report_hour_episodes",
        "report_names",
        "report_trailing_spans",
    ]
    assert [m.name for m in await storage.migrate(dry_run=True)] == names
    assert [m.name for m in await storage.migrate()] == names
    assert await storage.migrate() == []
    await storage.aclose()


async def test_purge_deletes_only_events_not_notified_since_the_cutoff(storage: Storage) -> None:
    old, recent = T0, T0 + 100 * MINUTE
    await storage.write_events([event(f"old{i}", received_at=old) for i in range(5)])
    await storage.write_events([event("kept", received_at=old)])
    await storage.write_events([event("kept", received_at=recent)])  # notified again later
    await storage.write_events([event("new", received_at=recent)])
    await storage.write_events(
        [event("gone", status="resolved", ends_at=T0 + MINUTE, received_at=old)]
    )
    cutoff = T0 + 50 * MINUTE
    assert await storage.purge(cutoff, 4) == 4  # bounded batches
    assert await storage.purge(cutoff, 4) == 2
    assert await storage.purge(cutoff, 4) == 0
    left = await storage.history(HistoryQuery())
    assert sorted(e.fingerprint for e in left.events) == ["kept", "new"]
    assert await storage.current_state("gone") is None  # resolved and old
    assert await storage.current_state("old0") is not None  # still firing: kept


async def test_label_matchers_select_like_alertmanager_on_every_backend(storage: Storage) -> None:
    def labelled(fp: str, **labels: str) -> AlertEvent:
        return msgspec.structs.replace(event(fp), labels={"alertname": fp, **labels})

    await storage.write_events(
        [
            labelled("a", severity="critical", namespace="prod"),
            labelled("b", severity="crit-ish", namespace="dev"),
            labelled("c", severity="warning", namespace="prod"),
            labelled("d", namespace="prod"),
            labelled("e", severity="critical", team="sre ops"),
        ]
    )

    async def select(*matchers: tuple[str, str, str]) -> list[str]:
        page = await storage.history(HistoryQuery(label_matchers=matchers))
        return sorted(e.fingerprint for e in page.events)

    assert await select(("severity", "=~", "crit.*"), ("namespace", "!=", "dev")) == ["a", "e"]
    assert await select(("severity", "=~", "crit")) == []  # anchored
    assert await select(("severity", "=", "")) == ["d"]  # missing equals empty
    assert await select(("severity", "!~", "crit.*|warning")) == ["d"]
    assert await select(("namespace", "=", "prod"), ("severity", "!=", "warning")) == ["a", "d"]
    assert await select(("team", "=~", "(?i)SRE.*")) == ["e"]
    assert await select(("x", "=~", "(a+)+b")) == []


# -- classifications ---------------------------------------------------------------------------


def classification(
    fp: str = "f1", *, created_at: int = T0, severity: str = "warning", **fields: object
) -> Classification:
    values: dict[str, object] = {
        "confidence": 0.75,
        "reasoning": "disk fills at 2 %/h",
        "recommendations": ["grow the volume", "prune old snapshots"],
        "processing_time": 1.25,
        "metadata": {"tags": ["disk", "capacity"], "tokens": {"prompt": 812}, "cached": False},
        "model": "gpt-4o-mini",
        "source": "llm",
        **fields,
    }
    return msgspec.convert(
        {"fingerprint": fp, "severity": severity, "created_at": created_at, **values},
        Classification,
    )


async def test_a_classification_round_trips_every_field(storage: Storage) -> None:
    item = classification(
        reasoning="Ünïcode 🔥 reasoning",
        metadata={"tags": ["a"], "nested": {"x": [1, 2.5, None, True]}, "note": "שלום"},
    )
    assert await storage.write_classifications([item]) == 1
    assert await storage.get_classification("f1") == item
    bare = classification("f2", processing_time=None, model=None, recommendations=[], metadata={})
    await storage.write_classifications([bare])
    assert await storage.get_classification("f2") == bare
    assert await storage.get_classification("unknown") is None


async def test_the_newest_classification_of_a_fingerprint_wins(storage: Storage) -> None:
    assert await storage.write_classifications([classification(severity="warning")]) == 1
    older = classification(created_at=T0 - MINUTE, severity="noise")
    assert await storage.write_classifications([older]) == 0
    same_time = classification(severity="info")
    assert await storage.write_classifications([same_time]) == 0
    kept = await storage.get_classification("f1")
    assert kept is not None and kept.severity == "warning"

    newer = classification(created_at=T0 + MINUTE, severity="critical", source="fallback")
    assert await storage.write_classifications([newer]) == 1
    assert await storage.get_classification("f1") == newer

    batch = [
        classification("f2", created_at=T0 + 2, severity="critical"),
        classification("f2", created_at=T0 + 1, severity="info"),
        classification("f3"),
    ]
    assert await storage.write_classifications(batch) == 2
    latest = await storage.get_classification("f2")
    assert latest is not None and latest.severity == "critical"


async def test_classification_json_with_nul_is_stored(storage: Storage) -> None:
    item = classification(recommendations=["a\0b"], metadata={"k\0": "v\0"})
    await storage.write_classifications([item])
    got = await storage.get_classification("f1")
    assert got is not None
    if storage.backend == "sqlite":
        assert got == item
    else:  # jsonb cannot hold U+0000
        assert (got.recommendations, got.metadata) == (["a\ufffdb"], {"k\ufffd": "v\ufffd"})


# -- imports -----------------------------------------------------------------------------------


def imported(
    fp: str = "f1",
    *,
    status: str = "firing",
    ends_at: int = 0,
    first: int = T0,
    last: int = T0,
    count: int = 1,
) -> AlertEvent:
    ev = event(fp, status=status, ends_at=ends_at, received_at=first, count=count)
    return msgspec.structs.replace(ev, last_seen=last, source="legacy-v1")


async def test_an_import_inserts_only_missing_states_keeping_counts_and_times(
    storage: Storage,
) -> None:
    await storage.write_events([event("live")])
    batch = [
        imported("live", count=7, first=T0 - MINUTE),  # already stored: left as it is
        imported("f1", count=3, first=T0, last=T0 + 5 * MINUTE),
        imported("f1", status="resolved", ends_at=T0 + 6 * MINUTE, first=T0 + 6 * MINUTE,
                 last=T0 + 6 * MINUTE),
    ]  # fmt: skip
    assert await storage.import_events(batch) == 2
    page = await storage.history(HistoryQuery())
    rows = {(e.fingerprint, e.status): e for e in page.events}
    live = rows[("live", "firing")]
    assert (live.notify_count, live.first_seen, live.source) == (1, T0, "alertmanager")
    firing = rows[("f1", "firing")]
    assert (firing.notify_count, firing.first_seen, firing.last_seen) == (3, T0, T0 + 5 * MINUTE)
    assert firing.source == "legacy-v1"
    current = await storage.current_state("f1")
    assert current is not None
    assert (current.status, current.ends_at, current.updated_at) == (
        "resolved",
        T0 + 6 * MINUTE,
        T0 + 6 * MINUTE,
    )

    assert await storage.import_events(batch) == 0
    assert (await storage.history(HistoryQuery())).events == page.events
    assert await storage.current_state("f1") == current


async def test_an_import_never_moves_the_current_state_back(storage: Storage) -> None:
    await storage.write_events([event(starts_at=T0 + 10 * MINUTE, received_at=T0 + 10 * MINUTE)])
    before = await storage.current_state("f1")
    assert await storage.import_events([imported(status="resolved", ends_at=T0 + MINUTE)]) == 1
    assert await storage.current_state("f1") == before


async def test_an_import_counts_a_state_repeated_in_one_batch_once(storage: Storage) -> None:
    assert await storage.import_events([imported(count=2), imported(count=9)]) == 1
    (row,) = (await storage.history(HistoryQuery())).events
    assert row.notify_count == 2


async def test_a_large_import_spans_several_statements(storage: Storage) -> None:
    batch = [imported(f"f{i}") for i in range(1_234)]
    assert await storage.import_events(batch) == 1_234
    assert await storage.import_events(batch) == 0
    stats = await storage.stats()
    assert (stats.current, stats.firing) == (1_234, 1_234)


async def test_write_events_keeps_received_at_as_first_and_last_seen(storage: Storage) -> None:
    await storage.write_events([event(received_at=T0 + 1)])
    (row,) = (await storage.history(HistoryQuery())).events
    assert (row.first_seen, row.last_seen) == (T0 + 1, T0 + 1)


async def test_feature_sql_runs_on_every_backend_with_one_placeholder_style(
    storage: Storage,
) -> None:
    await storage.write_events([event("f1", name="50% disk"), event("f2", name="other")])

    def count_like(db: Db) -> int:
        row = db.fetchone(
            "SELECT count(*) FROM alert_events WHERE alertname LIKE ? AND alertname LIKE '5%'",
            ["%disk"],
        )
        assert row is not None
        return int(row[0])

    assert await storage.read(count_like) == 1

    def delete_then_fail(db: Db) -> None:
        assert db.execute("DELETE FROM alert_events WHERE fingerprint = ?", ["f1"]) == 1
        raise RuntimeError("abort the transaction")

    with pytest.raises(RuntimeError):
        await storage.write(delete_then_fail)
    assert (await storage.history(HistoryQuery())).total == 2  # rolled back


async def test_format_extras_round_trip_and_the_latest_wins(storage: Storage) -> None:
    extra = {"orgId": 1, "values": {"B": 92.5, "C": None}, "message": "a\0b ünï"}
    await storage.write_events([msgspec.structs.replace(event(), extra=extra)])
    await storage.write_events([event()])  # a repeat without extras keeps them
    (row,) = (await storage.history(HistoryQuery())).events
    expected = extra if storage.backend == "sqlite" else {**extra, "message": "a\ufffdb ünï"}
    assert row.extra == expected


async def test_the_total_stops_counting_at_the_count_limit(storage: Storage) -> None:
    await storage.write_events([event(f"f{i}", received_at=T0 + i) for i in range(7)])
    capped = await storage.history(HistoryQuery(limit=2, count_limit=5))
    assert (capped.total, capped.total_capped, len(capped.events)) == (5, True, 2)
    exact = await storage.history(HistoryQuery(limit=2, count_limit=7))
    assert (exact.total, exact.total_capped) == (7, False)
    ranged = await storage.history(HistoryQuery(starts_from=T0, starts_to=T0, limit=3))
    assert [e.fingerprint for e in ranged.events] == ["f6", "f5", "f4"]  # newest first


async def test_a_starts_at_range_pages_newest_first_by_cursor_and_offset(
    storage: Storage,
) -> None:
    # ids follow arrival, starts_at does not: the page order is by id whatever the range index
    starts = [5, 1, 4, 2, 3, 9, 0, 6]
    await storage.write_events(
        [
            event(f"f{i}", starts_at=T0 + s * MINUTE, received_at=T0 + i)
            for i, s in enumerate(starts)
        ]
    )
    in_range = [f"f{i}" for i in reversed(range(len(starts))) if 1 <= starts[i] <= 5]
    assert in_range == ["f4", "f3", "f2", "f1", "f0"]
    seen: list[str] = []
    query = HistoryQuery(starts_from=T0 + MINUTE, starts_to=T0 + 5 * MINUTE, limit=2)
    while True:
        page = await storage.history(query)
        assert (page.total, page.total_capped) == (5, False)
        seen += [e.fingerprint for e in page.events]
        if page.next_before_id is None:
            break
        query = msgspec.structs.replace(query, before_id=page.next_before_id)
    assert seen == in_range
    offset = HistoryQuery(starts_from=T0 + MINUTE, alertname="A", limit=2, offset=3)
    assert [e.fingerprint for e in (await storage.history(offset)).events] == ["f3", "f2"]


# SQLite's memory statistics (storage/sqlite_library.py) are process-wide, so each case runs in
# a fresh interpreter: whether they can be switched off depends on what else the process holds.
_STATISTICS_SCRIPT = """
import sqlite3, sys, trio
from alert_history.storage import SQLiteStorage
from alert_history.storage.sqlite_library import statistics_counting

async def main(path, other):
    before = statistics_counting()
    held = sqlite3.connect(other) if other else None
    if held is not None:
        held.execute("CREATE TABLE t (x)")
    storage = SQLiteStorage(path)
    await storage.open()
    try:
        with sqlite3.connect(path) as conn:
            assert conn.execute("SELECT count(*) FROM alert_events").fetchone() == (0,)
        if held is not None:  # the connection open across the storage's opening still works
            held.execute("INSERT INTO t VALUES (1)")
            assert held.execute("SELECT x FROM t").fetchall() == [(1,)]
        print(before, statistics_counting())
    finally:
        await storage.aclose()

trio.run(main, sys.argv[1], sys.argv[2])
"""


@pytest.mark.parametrize(
    ("held", "expected"),
    [(False, "True False"), (True, "True True")],
    ids=["nothing-open", "a-connection-open"],
)
def test_sqlite_memory_statistics_are_off_unless_the_library_is_in_use(
    tmp_path: Path, held: bool, expected: str
) -> None:
    """Opening the first SQLite storage of a process switches SQLite's memory statistics (and
    their global mutex) off; with a connection already open elsewhere it leaves them on, and
    that connection keeps working."""
    other = str(tmp_path / "other.db") if held else ""
    done = subprocess.run(
        [sys.executable, "-c", _STATISTICS_SCRIPT, str(tmp_path / "h.db"), other],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[-2] == expected
