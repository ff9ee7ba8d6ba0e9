"""The enrichment mode, shared by every replica and kept without expiry.

With Redis: `enrichment:mode` = `{"mode": ...}`, a plain SET (the legacy service's SETEX made it
expire after an hour, B§16.5). Without Redis, or while Redis fails: the database (a
`service_settings` row), then this process's memory. Reading order: Redis, database, memory,
then the configured default; `source` says where the answer came from (B§3.3: redis, memory for
anything stored without Redis, default). Nothing shared is cached locally, so a switch through
any replica is seen by every replica's next read. A database only this process uses (SQLite,
`stored_shared=False`) is read once: after that this process's memory is the truth and every
switch is written through, so a webhook costs no database read for its mode.
"""

from __future__ import annotations

import logging
from typing import Literal, Protocol, get_args

import msgspec
import trio

from alert_history.config.settings import EnrichmentMode
from alert_history.errors import AlertHistoryError
from alert_history.kv.redis import RedisKV

log = logging.getLogger("alert_history.enrichment")

MODES: tuple[str, ...] = get_args(EnrichmentMode)
REDIS_KEY = "enrichment:mode"
SETTING_KEY = "enrichment_mode"
ModeSource = Literal["redis", "memory", "default"]


class _Stored(msgspec.Struct):
    mode: str


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(_Stored).decode


class _Read:
    """One resolution of the mode, shared by the callers that wait for it."""

    def __init__(self) -> None:
        self.done = trio.Event()
        self.value: tuple[EnrichmentMode, ModeSource] | None = None


class SettingsBackend(Protocol):
    """Durable key/value settings (storage's `StoredSettings`); raises AlertHistoryError."""

    async def get(self, key: str) -> str | None: ...

    async def put(self, key: str, value: str) -> None: ...


class ModeStore:
    def __init__(
        self,
        *,
        redis: RedisKV | None,
        stored: SettingsBackend | None,
        default: EnrichmentMode,
        stored_shared: bool = True,
    ) -> None:
        self._redis = redis
        self._stored = stored
        self._stored_shared = stored_shared
        self._stored_read = False  # an unshared database was read once: memory holds it
        self._memory: EnrichmentMode | None = None
        self.default: EnrichmentMode = default
        self.last: EnrichmentMode = default  # the mode read most recently, for gauges
        self._running: _Read | None = None  # the read in progress
        self._queued: _Read | None = None  # the next one, shared by who asked meanwhile

    async def get(self) -> tuple[EnrichmentMode, ModeSource]:
        """The current mode and where it came from.

        Callers share reads: one that asks while a read runs waits for the next read, which
        starts once the running one ends and serves everyone who asked meanwhile. Every caller
        thus gets a value read after it asked (a switch done before is seen), and a burst of
        webhooks costs two reads, not one each.
        """
        running = self._running
        if running is None:
            read = self._running = _Read()
            return await self._lead(read)
        queued = self._queued
        if queued is not None:
            await queued.done.wait()
            if queued.value is not None:
                return queued.value
            return await self._lead(_Read())  # its leader failed: read for myself
        read = self._queued = _Read()
        started = False
        try:
            await running.done.wait()
            self._queued = None
            self._running = read
            started = True
        finally:
            if not started:  # cancelled while waiting: the followers read for themselves
                if self._queued is read:
                    self._queued = None
                read.done.set()
        return await self._lead(read)

    async def _lead(self, read: _Read) -> tuple[EnrichmentMode, ModeSource]:
        try:
            read.value = await self._resolve()
        finally:
            if self._running is read:
                self._running = None
            read.done.set()
        self.last = read.value[0]
        return read.value

    async def mode(self) -> EnrichmentMode:
        return (await self.get())[0]

    async def set(self, mode: EnrichmentMode) -> ModeSource:
        """Store `mode` for every replica; return where it went (redis, else memory)."""
        value = _encode(_Stored(mode))
        self._memory = mode
        self.last = mode
        if self._redis is not None:
            try:
                await self._redis.set(REDIS_KEY, value)
                return "redis"
            except AlertHistoryError as exc:
                log.warning("enrichment mode not written to redis", extra={"error": str(exc)})
        if self._stored is not None:
            try:
                await self._stored.put(SETTING_KEY, value.decode())
            except AlertHistoryError as exc:
                log.warning("enrichment mode not stored", extra={"error": str(exc)})
        return "memory"

    async def _resolve(self) -> tuple[EnrichmentMode, ModeSource]:
        if self._redis is not None:
            try:
                found = _parse(await self._redis.get(REDIS_KEY))
                if found is not None:
                    return found, "redis"
            except AlertHistoryError:
                pass  # Redis down: the stored value or memory
        if self._stored is not None and not self._stored_read:
            try:
                raw = await self._stored.get(SETTING_KEY)
                found = _parse(None if raw is None else raw.encode())
                if not self._stored_shared:
                    self._stored_read = True
                    self._memory = self._memory or found
                if found is not None:
                    return found, "memory"
            except AlertHistoryError:
                pass
        if self._memory is not None:
            return self._memory, "memory"
        return self.default, "default"


def _parse(raw: bytes | None) -> EnrichmentMode | None:
    if raw is None:
        return None
    try:
        mode = _decode(raw).mode
    except msgspec.DecodeError:
        return None
    if mode in MODES:
        return mode  # type: ignore[return-value]
    return None
