"""Test hooks: points where a test can crash or hold a real actor. All None in production."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from alert_history.messages import EventBatch


@dataclass(frozen=True)
class Hooks:
    #: awaited by the deduplicator before each batch; raising crashes the actor
    before_dedup: Callable[[EventBatch], Awaitable[None]] | None = None
    #: awaited by the storage writer before each group commit; blocking holds the writer
    before_commit: Callable[[int], Awaitable[None]] | None = None
