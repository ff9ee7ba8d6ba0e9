"""Settings changed at run time (`service_settings`): one JSON value per key, kept until replaced.

Without Redis, the enrichment mode lives here, so it survives restarts and every replica on the
same database reads the same value.
"""

from __future__ import annotations

from collections.abc import Callable

from alert_history.storage.base import Storage
from alert_history.storage.executor import Db

_UPSERT = """
INSERT INTO service_settings (key, value, updated_at) VALUES (?, ?, ?)
ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at
"""


def get_setting(db: Db, key: str) -> str | None:
    row = db.fetchone("SELECT value FROM service_settings WHERE key = ?", [key])
    return None if row is None else str(row[0])


def put_setting(db: Db, key: str, value: str, now: int) -> None:
    db.execute(_UPSERT, [key, value, now])


class StoredSettings:
    """`get`/`put` of one setting through `storage` (raises StorageError when it is down)."""

    def __init__(self, storage: Storage, wall_clock_ns: Callable[[], int]) -> None:
        self._storage = storage
        self._now = wall_clock_ns

    async def get(self, key: str) -> str | None:
        return await self._storage.read(lambda db: get_setting(db, key))

    async def put(self, key: str, value: str) -> None:
        now = self._now()
        await self._storage.write(lambda db: put_setting(db, key, value, now))
