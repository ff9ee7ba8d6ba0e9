"""Shared fast state: Redis from trio (sync client in threads) or in-process stand-ins."""

from alert_history.kv.cache import ClassificationCache, cache_key
from alert_history.kv.memory import TTLCache
from alert_history.kv.mode import MODES, ModeSource, ModeStore, SettingsBackend
from alert_history.kv.redis import RedisKV

__all__ = [
    "MODES",
    "ClassificationCache",
    "ModeSource",
    "ModeStore",
    "RedisKV",
    "SettingsBackend",
    "TTLCache",
    "cache_key",
]
