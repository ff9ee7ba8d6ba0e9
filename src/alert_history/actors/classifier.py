"""Classifier: classify committed firing alerts, at most `concurrency` LLM calls at a time.

Inbox: the committed firing alerts (`feeder`, non-blocking: when the inbox is full the hint is
dropped and the row stays pending); hints waiting together are checked with one query. The
durable queue is storage itself: a poller reads, in pages, the firing alerts with no
classification, and the fallbacks made before the breaker last closed (each page's alerts
with one more read, not one per alert). It runs every
`poll_interval`, when an open breaker lets a trial call through (one fallback is retried, no
new alert is needed) and at once when the breaker closes. Nothing happens while the
enrichment mode is `transparent`. On a shared database an alert is classified only under its
lease (`ClassificationService.claim`): replicas polling the same rows split them.
Memory stays bounded: the inbox's buffer plus 2 x `concurrency` alerts in flight, of which at
most `concurrency` are LLM calls (the service's limiter); the others wait for a call or a commit.
A storage error, or a call lost with the LLM worker process, leaves the alert pending
(logged); other errors crash the actor. When the inbox
ends (shutdown) or on cancellation, work in flight is cancelled: its rows stay pending.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import partial

import trio

from alert_history.actors.classification import ClassificationService
from alert_history.errors import StorageError
from alert_history.llm import LLMWorkerLost
from alert_history.models import AlertEvent, Classification
from alert_history.storage.classifications import Subject, pending_fingerprints
from alert_history.telemetry import Metrics

log = logging.getLogger("alert_history.classifier")

ModeReader = Callable[[], Awaitable[str]]


HINTS_PER_READ = 64  # hints checked against storage with one query


def feeder(
    send: trio.MemorySendChannel[Subject], metrics: Metrics
) -> Callable[[list[AlertEvent]], None]:
    """A callback for the writer: hand committed firing alerts over without waiting.

    A hint carries what the LLM is told (labels, annotations), so the fast path reads nothing
    back from storage but whether the alert is classified already.
    """

    def feed(events: list[AlertEvent]) -> None:
        firing = {e.fingerprint: e for e in events if e.status == "firing"}
        for sent, event in enumerate(firing.values()):
            subject = Subject(
                fingerprint=event.fingerprint, alertname=event.alertname, status=event.status,
                labels=event.labels, annotations=event.annotations,
            )  # fmt: skip
            try:
                send.send_nowait(subject)
            except trio.WouldBlock:
                metrics.classification_hints_dropped.inc(len(firing) - sent)
                return
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                return

    return feed


class _Work:
    """The alerts in flight: at most `slots`, each fingerprint once."""

    def __init__(self, service: ClassificationService, concurrency: int) -> None:
        self.service = service
        self.slots = trio.Semaphore(concurrency)
        self.in_flight: set[str] = set()
        self.finished = 0  # alerts done so far
        self._finished = trio.Event()

    async def wait_finished(self, since: int) -> None:
        """Return once more than `since` alerts are done."""
        while self.finished <= since:
            await self._finished.wait()

    async def start(
        self,
        nursery: trio.Nursery,
        fingerprint: str,
        known: tuple[Classification | None, Subject],
    ) -> bool:
        """Start classifying `fingerprint` once a slot is free; False if it is in flight.

        `known`: what is kept for it and its state, as read (the hint's, or the page's).
        """
        if fingerprint in self.in_flight:
            return False
        await self.slots.acquire()
        if fingerprint in self.in_flight:  # started while this waited for a slot
            self.slots.release()
            return False
        self.in_flight.add(fingerprint)
        nursery.start_soon(self._handle, fingerprint, known)
        return True

    async def _handle(self, fingerprint: str, known: tuple[Classification | None, Subject]) -> None:
        try:
            self.service.counters.total_requests += 1
            await self.service.classify_subject(
                known[1], store=True, kept=known[0], retry_lost=True
            )
        except StorageError as exc:
            self.service.metrics.classification_errors.labels("storage").inc()
            log.warning(
                "classification left pending", extra={"fingerprint": fingerprint, "error": str(exc)}
            )
        except LLMWorkerLost as exc:  # the poller hands it to the next worker process
            log.warning(
                "classification left pending", extra={"fingerprint": fingerprint, "error": str(exc)}
            )
        finally:
            self.in_flight.discard(fingerprint)
            self.slots.release()
            self.finished += 1
            self._finished.set()
            self._finished = trio.Event()

    def due(self, kept: Classification) -> bool:
        """Whether `kept` is a fallback due to be classified again (see `refallback_before`)."""
        before = self.service.refallback_before()
        return kept.fallback and before is not None and kept.created_at < before


async def _classifying(mode: ModeReader) -> bool:
    """Whether the current enrichment mode asks for classification (read each time: the mode
    store shares concurrent reads, and a switch applies at once, as to the webhook's answer)."""
    return await mode() != "transparent"


async def _poll(
    work: _Work, nursery: trio.Nursery, mode: ModeReader, *, interval: float, page_size: int
) -> None:
    service = work.service
    while True:
        again = busy = False
        finished, moves = work.finished, service.transitions
        try:
            if await _classifying(mode):
                page = await service.storage.read(
                    partial(
                        pending_fingerprints,
                        refallback_before=service.refallback_before(),
                        limit=page_size,
                    )
                )
                idle = [fp for fp in page if fp not in work.in_flight]
                mine = await service.claim(idle)  # others: another replica classifies them
                due = await service.pending_page(mine)  # one read for the page
                started = [await work.start(nursery, fp, known) for fp, known in due.items()]
                # a full page that made progress is followed at once; otherwise wait
                again = len(page) == page_size and any(started) and service.accepting_calls()
                busy = len(idle) < len(page) or not all(started)  # look again when one is done
        except StorageError as exc:
            log.warning("classification queue not read", extra={"error": str(exc)})
        if not again:
            # wake when the breaker moves, or lets a trial call through (a fallback's retry)
            reopens = service.reopens_in()
            with trio.move_on_after(interval if reopens is None else min(interval, reopens)):
                await _first(
                    partial(service.wait_moved, moves),
                    partial(work.wait_finished, finished) if busy else trio.sleep_forever,
                )


async def _first(*waits: Callable[[], Awaitable[None]]) -> None:
    """Return as soon as one of `waits` returns."""
    async with trio.open_nursery() as nursery:

        async def wait(fn: Callable[[], Awaitable[None]]) -> None:
            await fn()
            nursery.cancel_scope.cancel()

        for fn in waits:
            nursery.start_soon(wait, fn)


async def run(
    inbox: trio.MemoryReceiveChannel[Subject],
    *,
    service: ClassificationService,
    mode: ModeReader,
    concurrency: int,
    poll_interval: float,
    page_size: int,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    async with inbox, trio.open_nursery() as nursery:
        # twice the LLM calls: the LLM's slots stay busy while answers wait for their commit
        work = _Work(service, 2 * concurrency)
        nursery.start_soon(
            lambda: _poll(work, nursery, mode, interval=poll_interval, page_size=page_size)
        )
        task_status.started()
        async for first in inbox:
            hints = {first.fingerprint: first}
            while len(hints) < HINTS_PER_READ:
                try:
                    hint = inbox.receive_nowait()
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
                hints[hint.fingerprint] = hint
            if not await _classifying(mode):
                continue
            fresh = [fp for fp in hints if fp not in work.in_flight]
            try:
                kept = await service.kept(fresh)
                fresh = await service.claim(
                    [fp for fp in fresh if fp not in kept or work.due(kept[fp])]
                )
            except StorageError as exc:
                log.warning("classification hints left pending", extra={"error": str(exc)})
                continue
            for fp in fresh:
                await work.start(nursery, fp, (kept.get(fp), hints[fp]))
        nursery.cancel_scope.cancel()  # the poller and work in flight: their rows stay pending
