"""Queries for one fingerprint's timeline and for stale firing episodes (both backends)."""

from __future__ import annotations

from operator import itemgetter
from typing import NamedTuple

import msgspec

from alert_history.domain.episodes import StateChange
from alert_history.storage.executor import Db
from alert_history.storage.sql import decode_map, one_row

MAX_CHANGES = 10_000  # a timeline shows at most this many of the newest state changes


class AlertStates(NamedTuple):
    """One fingerprint's newest state changes, oldest first, and its newest state's labels."""

    alertname: str
    labels: dict[str, str]
    changes: list[StateChange]


def alert_states(db: Db, fingerprint: str) -> AlertStates | None:
    """The newest state changes of `fingerprint` and the labels of the newest; None if none."""
    if db.dialect == "sqlite":
        row = db.fetchone(one_row(_NEWEST, _COLUMNS), [fingerprint, MAX_CHANGES])
        rows = _decode_rows(row[0]) if row is not None else []
        rows.sort(key=_RECEIVED)
    else:
        rows = db.fetchall(_NEWEST, [fingerprint, MAX_CHANGES])
        rows.reverse()
    if not rows:
        return None
    labels = "labels" if db.dialect == "sqlite" else "coalesce(labels_exact, labels::text)"
    # the newest row again by its key, rather than sorting the fingerprint's rows a second time
    newest = db.fetchone(
        f"SELECT alertname, {labels} FROM alert_events WHERE id = ?", [rows[-1][6]]
    )
    if newest is None:  # deleted (retention) between the two statements
        return None
    make = StateChange._make
    return AlertStates(newest[0], decode_map(newest[1]), [make(row[:6]) for row in rows])


_COLUMNS = "status, starts_at, ends_at, first_seen, last_seen, notify_count, id"
_NEWEST = (
    f"SELECT {_COLUMNS} FROM alert_events WHERE fingerprint = ?"
    " ORDER BY first_seen DESC, id DESC LIMIT ?"
)
_decode_rows = msgspec.json.Decoder(list[tuple[str, int, int, int, int, int, int]]).decode
_RECEIVED = itemgetter(3, 6)  # (first_seen, id): the order received


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
