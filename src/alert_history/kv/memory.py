"""A bounded in-process map with a time to live, for when no Redis is configured."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

V = TypeVar("V")


class TTLCache(Generic[V]):
    """At most `max_size` entries, each kept `ttl` seconds of `clock`; the least recently used
    entry goes first when full. Not thread-safe: use it from one trio run."""

    def __init__(self, max_size: int, ttl: float, clock: Callable[[], float]) -> None:
        if max_size < 1 or not ttl > 0:
            raise ValueError("max_size must be >= 1 and ttl > 0")
        self._max = max_size
        self._ttl = ttl
        self._clock = clock
        self._items: OrderedDict[str, tuple[float, V]] = OrderedDict()

    def get(self, key: str) -> V | None:
        item = self._items.get(key)
        if item is None:
            return None
        expires, value = item
        if self._clock() >= expires:
            del self._items[key]
            return None
        self._items.move_to_end(key)
        return value

    def put(self, key: str, value: V) -> None:
        self._items[key] = (self._clock() + self._ttl, value)
        self._items.move_to_end(key)
        while len(self._items) > self._max:
            self._items.popitem(last=False)

    def delete(self, key: str) -> None:
        self._items.pop(key, None)

    def __len__(self) -> int:
        return len(self._items)
