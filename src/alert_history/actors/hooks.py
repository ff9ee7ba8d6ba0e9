"""Test hooks: points where a test can crash or hold a real actor. All None in production."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from alert_history.messages import EventBatch
from alert_history.models import AlertEvent, Classification


@dataclass(frozen=True)
class Hooks:
    #: awaited by the deduplicator before each batch; raising crashes the actor
    before_dedup: Callable[[EventBatch], Awaitable[None]] | None = None
    #: awaited by the storage writer before each group commit; blocking holds the writer
    before_commit: Callable[[int], Awaitable[None]] | None = None
    #: called by the storage writer after each group commit with the events it committed
    after_commit: Callable[[list[AlertEvent]], None] | None = None
    #: called by the classifier with every classification it stored (LLM or fallback)
    classified: Callable[[Classification], None] | None = None
