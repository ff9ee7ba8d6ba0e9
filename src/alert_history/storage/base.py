"""The storage contract every backend implements (SQLite now, PostgreSQL next)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

import msgspec

from alert_history.models import (
    AlertEvent,
    Classification,
    CurrentState,
    HistoryPage,
    HistoryQuery,
    WriteOutcome,
)
from alert_history.storage.executor import Db

T = TypeVar("T")


class StorageStats(msgspec.Struct, frozen=True):
    events: int
    current: int
    firing: int
    size_bytes: int | None


class Storage(Protocol):
    """Durable alert history. Methods raise `StorageError` subclasses, never driver errors."""

    backend: str

    async def write_events(self, events: Sequence[AlertEvent]) -> WriteOutcome:
        """Store states in one transaction: new states inserted, repeats counted."""
        ...

    async def import_events(self, events: Sequence[AlertEvent]) -> int:
        """Insert the states not stored yet, as given (counts and times kept); return how many.

        A state already stored is left exactly as it is, so running one import twice changes
        nothing the second time. The current state moves forward as with `write_events`.
        """
        ...

    async def write_classifications(self, items: Sequence[Classification]) -> int:
        """Store the classifications newer than the one kept per fingerprint; return how many."""
        ...

    async def get_classification(self, fingerprint: str) -> Classification | None:
        """Return the latest classification of `fingerprint`, or None."""
        ...

    async def history(self, query: HistoryQuery) -> HistoryPage:
        """Return events newest first (by arrival) with the total matching `query`."""
        ...

    async def current_state(self, fingerprint: str) -> CurrentState | None:
        """Return the latest state of `fingerprint`, or None if it was never seen."""
        ...

    async def purge(self, cutoff: int, limit: int) -> int | None:
        """Delete up to `limit` events not notified since `cutoff` (ns), and the current-state
        rows of resolved alerts last updated before it; return how many events went.

        Returns None when another replica is purging (PostgreSQL advisory lock).
        """
        ...

    async def read(self, fn: Callable[[Db], T]) -> T:
        """Run `fn(db)` in a worker thread with a read connection (feature queries)."""
        ...

    async def write(self, fn: Callable[[Db], T]) -> T:
        """Run `fn(db)` in a worker thread inside one write transaction."""
        ...

    async def ping(self) -> None:
        """Raise StorageUnavailable unless the database answers."""
        ...

    async def stats(self) -> StorageStats:
        """Return row counts and size, for gauges."""
        ...

    async def aclose(self) -> None:
        """Close every connection; pending calls finish first."""
        ...
