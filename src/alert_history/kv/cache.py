"""The classification cache: `classification:<fingerprint>` in Redis, else in-process.

With Redis, a bounded in-process copy lives `local_ttl` seconds (5 s) in front of it.

Values are the Classification as a JSON object (the legacy service cached a string, B§16.6).
Redis down is a miss, never an error: the caller goes on to storage or the LLM.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal

import msgspec

from alert_history.errors import SharedStateUnavailable
from alert_history.kv.memory import TTLCache
from alert_history.kv.redis import RedisKV
from alert_history.models import Classification

log = logging.getLogger("alert_history.cache")

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Classification).decode


def cache_key(fingerprint: str) -> str:
    return f"classification:{fingerprint}"


class ClassificationCache:
    """Redis when `redis` is given (TTL `ttl` s), else a bounded in-process map on `clock`."""

    def __init__(
        self,
        *,
        redis: RedisKV | None,
        ttl: int,
        max_size: int,
        clock: Callable[[], float],
        local_ttl: float = 5.0,
    ) -> None:
        self._redis = redis
        self._ttl = ttl
        # without Redis the whole cache; with Redis a short-lived copy of what this replica
        # read or wrote, so hot hits skip a round trip (another replica's change shows within
        # `local_ttl` seconds)
        local = ttl if redis is None else min(float(ttl), local_ttl)
        self._memory: TTLCache[Classification] = TTLCache(max_size, local, clock)
        self.kind: Literal["redis", "memory"] = "memory" if redis is None else "redis"
        self.healthy = True  # the last Redis command answered

    async def get(self, fingerprint: str) -> Classification | None:
        local = self._memory.get(fingerprint)
        if self._redis is None or local is not None:
            return local
        try:
            raw = await self._redis.get(cache_key(fingerprint))
        except SharedStateUnavailable as exc:
            self._down(exc)
            return None
        self.healthy = True
        if raw is None:
            return None
        try:
            found = _decode(raw)
        except msgspec.DecodeError:
            return None  # another writer's format (the legacy service's string): a miss
        self._memory.put(fingerprint, found)
        return found

    async def put(self, item: Classification) -> None:
        self._memory.put(item.fingerprint, item)
        if self._redis is None:
            return
        try:
            await self._redis.set(cache_key(item.fingerprint), _encode(item), ttl=self._ttl)
            self.healthy = True
        except SharedStateUnavailable as exc:
            self._down(exc)

    async def delete(self, fingerprint: str) -> None:
        self._memory.delete(fingerprint)
        if self._redis is None:
            return
        try:
            await self._redis.delete(cache_key(fingerprint))
        except SharedStateUnavailable as exc:
            self._down(exc)

    def _down(self, exc: SharedStateUnavailable) -> None:
        if self.healthy:
            log.warning("classification cache unavailable", extra={"error": str(exc)})
        self.healthy = False
