"""Queries for one fingerprint's timeline and for stale firing episodes (both backends)."""

from __future__ import annotations

from alert_history.domain.episodes import StateChange
from alert_history.storage.executor import Db
from alert_history.storage.sql import decode_map

MAX_CHANGES = 10_000  # a timeline shows at most this many of the newest state changes


def state_changes(db: Db, fingerprint: str) -> list[StateChange]:
    """The newest state changes of `fingerprint`, returned oldest first."""
    rows = db.fetchall(
        "SELECT status, starts_at, ends_at, first_seen, last_seen, notify_count "
        "FROM alert_events WHERE fingerprint = ? ORDER BY first_seen DESC, id DESC LIMIT ?",
        [fingerprint, MAX_CHANGES],
    )
    return [StateChange(*row) for row in reversed(rows)]


def latest_labels(db: Db, fingerprint: str) -> tuple[str, dict[str, str]] | None:
    """(alertname, labels) of the newest state of `fingerprint`."""
    labels = "labels" if db.dialect == "sqlite" else "coalesce(labels_exact, labels::text)"
    row = db.fetchone(
        f"SELECT alertname, {labels} FROM alert_events WHERE fingerprint = ? "
        "ORDER BY first_seen DESC, id DESC LIMIT 1",
        [fingerprint],
    )
    return None if row is None else (row[0], decode_map(row[1]))


def count_stale_firing(db: Db, cutoff: int) -> int:
    """Episodes still firing whose last notification is older than `cutoff` (ns)."""
    row = db.fetchone(
        "SELECT count(*) FROM alert_current c JOIN alert_events e"
        " ON e.fingerprint = c.fingerprint AND e.starts_at = c.starts_at"
        " AND e.status = 'firing' AND e.ends_at = c.ends_at"
        " WHERE c.status = 'firing' AND e.last_seen < ?",
        [cutoff],
    )
    return 0 if row is None else int(row[0])
