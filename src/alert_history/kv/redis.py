"""Redis from trio: the sync client in worker threads, every command bounded by a timeout.

redis-py has no trio mode; its sync client in `trio.to_thread` is the measured choice (stack
notes §4). Socket timeouts bound each command, so a thread never outlives its caller for long.
After a failure the client is skipped for `down_for` seconds: while Redis is down each caller
sees `SharedStateUnavailable` at once instead of paying a timeout per request.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeVar

import redis
import trio
from redis.backoff import NoBackoff
from redis.retry import Retry

from alert_history.errors import SharedStateUnavailable

T = TypeVar("T")


class RedisKV:
    """GET/SET/DEL of bytes values on one Redis; errors leave as `SharedStateUnavailable`."""

    def __init__(
        self, url: str, *, timeout: float = 0.5, threads: int = 16, down_for: float = 1.0
    ) -> None:
        self._client = redis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            max_connections=threads,
        )
        self._limiter = trio.CapacityLimiter(threads)
        self._down_for = down_for
        self._skip_until = -math.inf

    async def get(self, key: str) -> bytes | None:
        value = await self._call(lambda: self._client.get(key))
        if value is None or isinstance(value, bytes):
            return value
        return str(value).encode()

    async def set(self, key: str, value: bytes, *, ttl: int | None = None) -> None:
        """SET `key`; with `ttl` (seconds) it expires, without it it stays (no EX)."""
        await self._call(lambda: self._client.set(key, value, ex=ttl))

    async def delete(self, key: str) -> None:
        await self._call(lambda: self._client.delete(key))

    async def ping(self) -> None:
        await self._call(self._client.ping)

    def close(self) -> None:
        self._client.close()

    async def _call(self, fn: Callable[[], T]) -> T:
        if trio.current_time() < self._skip_until:
            raise SharedStateUnavailable("redis is down (recent failure)")
        try:
            return await trio.to_thread.run_sync(fn, limiter=self._limiter)
        except redis.RedisError as exc:
            self._skip_until = trio.current_time() + self._down_for
            raise SharedStateUnavailable(f"redis: {type(exc).__name__}: {exc}") from None
