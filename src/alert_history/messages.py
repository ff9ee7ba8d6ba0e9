"""Messages on the pipeline's channels, and the one-shot reply slot that acknowledges a request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

import trio

from alert_history.models import AlertEvent, WebhookBatch, WriteOutcome

T = TypeVar("T")


class Reply(Generic[T]):
    """A one-shot answer from the pipeline to the waiting request; the first answer wins."""

    __slots__ = ("_done", "_error", "_value")

    def __init__(self) -> None:
        self._done = trio.Event()
        self._value: T | None = None
        self._error: Exception | None = None

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def set(self, value: T) -> None:
        if not self._done.is_set():
            self._value = value
            self._done.set()

    def fail(self, error: Exception) -> None:
        if not self._done.is_set():
            self._error = error
            self._done.set()

    async def wait(self) -> T:
        """Return the value, or raise the error the pipeline reported."""
        await self._done.wait()
        if self._error is not None:
            raise self._error
        assert self._value is not None
        return self._value


@dataclass(frozen=True, slots=True)
class IngestRequest:
    """A validated notification from the HTTP edge; answered once its events are committed."""

    batch: WebhookBatch
    reply: Reply[WriteOutcome]


@dataclass(frozen=True, slots=True)
class EventBatch:
    """Alert events of one request on their way to the storage writer."""

    events: list[AlertEvent]
    reply: Reply[WriteOutcome]
