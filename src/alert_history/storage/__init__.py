"""Storage: the `Storage` protocol and its backends; `open_storage` picks one by URL."""

from __future__ import annotations

from alert_history.errors import StorageError
from alert_history.storage.base import Storage, StorageStats
from alert_history.storage.executor import Db, Dialect, Row
from alert_history.storage.migrations import Migration
from alert_history.storage.postgres import PostgresStorage
from alert_history.storage.sqlite import SQLiteStorage, sqlite_path


async def open_storage(
    url: str,
    *,
    migrate: bool = True,
    check: bool = True,
    pool_size: int = 10,
    query_timeout: float = 30.0,
) -> SQLiteStorage | PostgresStorage:
    """Open the backend named by `url`, applying migrations unless `migrate` is false."""
    if url.startswith("sqlite://"):
        storage = SQLiteStorage(sqlite_path(url))
        await storage.open(migrate=migrate, check=check)
        return storage
    if url.startswith(("postgresql://", "postgres://")):
        backend = PostgresStorage(url, pool_size=pool_size, statement_timeout=query_timeout)
        try:
            await backend.open(migrate=migrate, check=check)
        except Exception:
            await backend.aclose()
            raise
        return backend
    raise StorageError(f"unsupported database URL scheme: {url.split(':', 1)[0]!r}")


__all__ = [
    "Db",
    "Dialect",
    "Migration",
    "PostgresStorage",
    "Row",
    "SQLiteStorage",
    "Storage",
    "StorageStats",
    "open_storage",
    "sqlite_path",
]
