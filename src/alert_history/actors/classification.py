"""Classify one alert: cache, then the LLM through the circuit breaker, else the fallback rules.

Shared by the classifier actor (committed alerts) and the HTTP API (on demand), so both see one
breaker, one concurrency limit and one set of counters. The breaker's pure core is driven by
`trio.current_time()`. While it is open no call goes out: the fallback classification
(`metadata.fallback = true`) is stored at once. A call, retries included, ends after `timeout`;
slow calls count as failures. When the breaker closes again, `closed_at_ns` moves forward and
the poller is woken, so fallbacks made before it are re-classified.
"""

from __future__ import annotations

import logging
import statistics
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import msgspec
import trio

from alert_history.domain.breaker import BreakerSnapshot, BreakerState, CircuitBreaker
from alert_history.domain.fingerprint import fingerprint as fingerprint_of
from alert_history.domain.llm_protocol import (
    PROMPT_VERSION,
    LLMProtocolError,
    ParsedAnswer,
    fallback_classification,
)
from alert_history.errors import StorageError
from alert_history.kv import ClassificationCache
from alert_history.llm import LLM, LLMUnavailable, LLMWorkerLost
from alert_history.models import Classification
from alert_history.storage import Db, Storage
from alert_history.storage.classifications import (
    Subject,
    claim_classifications,
    load_classification,
    load_classifications,
    load_subject,
    save_classifications,
)
from alert_history.telemetry import Metrics

log = logging.getLogger("alert_history.classifier")

CLAIM_MARGIN = 10.0  # seconds a lease outlives LLM_TIMEOUT (the answer's commit, clock skew)
_BREAKER_GAUGE = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


@dataclass
class Counters:
    """The legacy service's classification statistics (B§7), since this process started."""

    total_requests: int = 0
    cache_hits: int = 0
    llm_requests: int = 0
    llm_successes: int = 0
    fallback_used: int = 0
    errors: int = 0

    def to_dict(self) -> dict[str, object]:
        total = self.total_requests

        def rate(n: int) -> float:
            return round(n / total, 4) if total else 0.0

        return {
            "total_requests": total,
            "cache_hits": self.cache_hits,
            "llm_requests": self.llm_requests,
            "fallback_used": self.fallback_used,
            "errors": self.errors,
            "cache_hit_rate": rate(self.cache_hits),
            "llm_usage_rate": rate(self.llm_requests),
            "fallback_rate": rate(self.fallback_used),
            "error_rate": rate(self.errors),
        }


class ClassificationService:
    def __init__(
        self,
        *,
        storage: Storage,
        llm: LLM,
        cache: ClassificationCache,
        breaker: CircuitBreaker,
        concurrency: int,
        timeout: float,
        metrics: Metrics,
        wall_clock_ns: Callable[[], int],
        on_result: Callable[[Classification], None] | None = None,
        write_linger: float = 0.1,
    ) -> None:
        self.storage = storage
        self.llm = llm
        self.cache = cache
        self.breaker = breaker
        self.limiter = trio.CapacityLimiter(concurrency)
        self.timeout = timeout
        self.metrics = metrics
        self.counters = Counters()
        self.latencies: deque[float] = deque(maxlen=500)  # seconds of recent LLM successes
        self._now_ns = wall_clock_ns
        self._on_result = on_result
        self._writes = _GroupWriter(storage, write_linger)
        # fallbacks made before this (ns) are re-classified; the breaker starts closed
        self.closed_at_ns = wall_clock_ns()
        self._closed = trio.Event()
        self._moved = trio.Event()
        self.transitions = 0  # breaker state changes seen (open, close)
        self.shared = storage.backend != "sqlite"  # replicas share the database: lease alerts
        self.owner = uuid.uuid4().hex  # this process, in classification_claims
        metrics.breaker_state.set_function(self._breaker_gauge)

    async def claim(self, fingerprints: list[str]) -> list[str]:
        """Those of `fingerprints` this replica may classify now. On a database of its own
        (SQLite) all of them; on a shared one those whose lease it took, for about the time
        one classification may take: another replica is classifying the rest."""
        if not self.shared or not fingerprints:
            return fingerprints
        now = self._now_ns()
        lease = now + int((self.timeout + CLAIM_MARGIN) * 1e9)
        return await self.storage.write(
            partial(
                claim_classifications, fingerprints=fingerprints, owner=self.owner, now=now,
                until=lease,
            )
        )  # fmt: skip

    # -- views ----------------------------------------------------------------------------

    def breaker_snapshot(self) -> BreakerSnapshot:
        return self.breaker.snapshot(trio.current_time())

    def breaker_view(self) -> dict[str, object]:
        """The breaker as JSON: state, counts and, while open, seconds until the next trial."""
        now = trio.current_time()
        snap = self.breaker.snapshot(now)
        return {
            "state": snap.state.value,
            "consecutive_failures": snap.consecutive_failures,
            "calls_in_window": snap.calls_in_window,
            "failures_in_window": snap.failures_in_window,
            "opened_count": snap.opened_count,
            "retry_in_seconds": None if snap.retry_at is None else round(snap.retry_at - now, 3),
        }

    def accepting_calls(self) -> bool:
        return self.breaker.state(trio.current_time()) is not BreakerState.OPEN

    def refallback_before(self) -> int | None:
        """Fallbacks made before this (ns) are due to be classified again; None: none are.

        Closed: those made before it last closed. Half-open: any (one becomes the trial call,
        the others keep their fallback). Open: none.
        """
        state = self.breaker.state(trio.current_time())
        if state is BreakerState.OPEN:
            return None
        if state is BreakerState.HALF_OPEN:
            return self._now_ns() + 1
        return self.closed_at_ns

    def reopens_in(self) -> float | None:
        """Seconds until an open breaker lets a trial call through; None unless open."""
        now = trio.current_time()
        retry_at = self.breaker.snapshot(now).retry_at
        return None if retry_at is None else max(0.0, retry_at - now)

    def latency_p95(self) -> float | None:
        if len(self.latencies) < 2:
            return self.latencies[0] if self.latencies else None
        return statistics.quantiles(self.latencies, n=20)[-1]

    @property
    def model(self) -> str:
        return self.llm.model

    def stats(self) -> dict[str, object]:
        return self.counters.to_dict()

    def health(self) -> dict[str, object]:
        breaker = self.breaker_view()
        llm = {"closed": "healthy", "half_open": "degraded"}.get(str(breaker["state"]), "unhealthy")
        cache = "healthy" if self.cache.healthy else "unhealthy"
        overall = llm if llm != "healthy" else ("healthy" if cache == "healthy" else "degraded")
        return {
            "status": overall,
            "components": {
                "llm_client": {
                    "status": llm,
                    "model": self.llm.model,
                    "circuit_breaker": breaker,
                    "in_flight": self.limiter.borrowed_tokens,
                    "concurrency": int(self.limiter.total_tokens),
                },
                "cache": {"status": cache, "enabled": True, "type": self.cache.kind},
            },
        }

    def models(self) -> list[dict[str, object]]:
        p95 = self.latency_p95()
        calls = self.counters.llm_requests
        return [
            {
                "name": self.llm.model,
                "status": "available" if self.accepting_calls() else "unavailable",
                "latency_p95_ms": None if p95 is None else round(p95 * 1000, 1),
                "success_rate": round(self.counters.llm_successes / calls, 4) if calls else None,
            }
        ]

    async def wait_closed(self) -> None:
        """Return the next time the breaker closes after having been open."""
        await self._closed.wait()

    async def wait_moved(self, since: int) -> None:
        """Return once the breaker changed state (opened or closed) more than `since` times."""
        while self.transitions <= since:
            await self._moved.wait()

    # -- operations -----------------------------------------------------------------------

    async def known(self, fingerprint: str) -> Classification | None:
        """The classification kept for `fingerprint` (cache, then storage), without the LLM."""
        found = await self.cache.get(fingerprint)
        self._count_cache(found is not None)
        if found is not None:
            return found
        stored = await self.storage.read(lambda db: load_classification(db, fingerprint))
        if stored is not None:
            await self.cache.put(stored)
        return stored

    async def subject(self, fingerprint: str) -> Subject | None:
        return await self.storage.read(lambda db: load_subject(db, fingerprint))

    async def kept(self, fingerprints: list[str]) -> dict[str, Classification]:
        """What is kept for each of `fingerprints`: the cache, then one query for the rest."""
        found: dict[str, Classification] = {}
        for fp in fingerprints:
            cached = await self.cache.get(fp)
            self._count_cache(cached is not None)
            if cached is not None:
                found[fp] = cached
        missing = [fp for fp in fingerprints if fp not in found]
        if missing:
            found.update(
                await self.storage.read(partial(load_classifications, fingerprints=missing))
            )
        return found

    async def pending_page(
        self, fingerprints: list[str]
    ) -> dict[str, tuple[Classification | None, Subject]]:
        """Of `fingerprints` (a page of the queue), those still due for classifying, with what
        is kept for each and its newest (firing) state: one storage read for the whole page,
        not one per alert."""
        if not fingerprints:
            return {}
        before = self.refallback_before()

        def read(db: Db) -> dict[str, tuple[Classification | None, Subject]]:
            kept = load_classifications(db, fingerprints)
            due: dict[str, tuple[Classification | None, Subject]] = {}
            for fp in fingerprints:
                item = kept.get(fp)
                if item is not None and not (
                    item.fallback and before is not None and item.created_at < before
                ):
                    continue  # classified meanwhile
                subject = load_subject(db, fp)
                if subject is not None and subject.status == "firing":
                    due[fp] = (item, subject)
            return due

        return await self.storage.read(read)

    async def classify_stored(
        self, fingerprint: str, *, force: bool = False
    ) -> tuple[Classification, bool] | None:
        """Classify the stored alert `fingerprint`; None if it was never seen.

        Returns the classification and whether it came from the cache. Without `force` a
        kept classification is returned, unless it is a fallback and the LLM is reachable.
        """
        self.counters.total_requests += 1
        if not force:
            kept = await self.cache.get(fingerprint)
            self._count_cache(kept is not None)
            if kept is not None:
                self.counters.cache_hits += 1
            else:
                kept = await self.storage.read(lambda db: load_classification(db, fingerprint))
            if kept is not None and not (kept.fallback and self.accepting_calls()):
                return kept, True
        subject = await self.subject(fingerprint)
        if subject is None:
            return None
        return await self.classify_subject(subject, store=True), False

    async def classify_alert(
        self, alert: dict[str, Any], *, force: bool = False
    ) -> tuple[Classification, bool]:
        """Classify an alert given inline (not stored); cached under its labels' fingerprint."""
        self.counters.total_requests += 1
        labels = {str(k): str(v) for k, v in alert.get("labels", {}).items()}
        labels.setdefault("alertname", str(alert.get("alertname", "")))
        fingerprint = fingerprint_of(labels)
        if not force:
            kept = await self.cache.get(fingerprint)
            self._count_cache(kept is not None)
            if kept is not None and not (kept.fallback and self.accepting_calls()):
                self.counters.cache_hits += 1
                return kept, True
        subject = Subject(
            fingerprint=fingerprint,
            alertname=labels["alertname"],
            status=str(alert.get("status", "firing")),
            labels=labels,
            annotations={str(k): str(v) for k, v in alert.get("annotations", {}).items()},
        )
        return await self.classify_subject(subject, store=False), False

    async def classify_subject(
        self,
        subject: Subject,
        *,
        store: bool,
        kept: Classification | None = None,
        retry_lost: bool = False,
    ) -> Classification:
        """Ask the LLM through the breaker, else fall back; store and cache the result.

        While the breaker refuses calls, a `kept` fallback stays as it is. A call lost with
        the LLM worker process (not the LLM's failure: the breaker is not told) raises
        `LLMWorkerLost` when `retry_lost` (the caller leaves the alert pending), else falls back.
        """
        if not self.breaker.allow(trio.current_time()):
            if kept is not None and kept.fallback:
                return kept
            self.metrics.classification_errors.labels("breaker_open").inc()
            result = self._fallback(subject, "circuit breaker open")
        else:
            try:
                result = await self._call_llm(subject)
            except LLMWorkerLost as exc:
                self.metrics.classification_errors.labels("worker_lost").inc()
                if retry_lost:
                    raise
                self.counters.errors += 1
                result = self._fallback(subject, str(exc))
        if store:
            await self._writes.save(result)
        await self.cache.put(result)
        model = "fallback" if result.fallback else (result.model or self.llm.model)
        self.metrics.classifications.labels(result.severity, model).inc()
        if self._on_result is not None:
            self._on_result(result)
        return result

    async def _call_llm(self, subject: Subject) -> Classification:
        before = self.breaker.state(trio.current_time())
        self.counters.llm_requests += 1
        async with self.limiter:
            started = trio.current_time()
            error: str | None = None
            answer: ParsedAnswer | None = None
            with trio.move_on_after(self.timeout) as deadline:
                try:
                    answer = await self.llm.classify(subject.to_prompt())
                except LLMUnavailable as exc:
                    error, kind = str(exc), exc.kind
                except LLMProtocolError as exc:
                    error, kind = str(exc), "malformed"
            if deadline.cancelled_caught:
                error, kind = f"no classification within {self.timeout} s", "timeout"
            ended = trio.current_time()
        duration = ended - started
        self.breaker.record(ended, ok=answer is not None, duration=duration)
        self._breaker_moved(before, ended)
        if answer is None:
            assert error is not None
            self.counters.errors += 1
            self.metrics.classification_errors.labels(kind).inc()
            log.info(
                "classification failed",
                extra={"fingerprint": subject.fingerprint, "error": error, "kind": kind},
            )
            return self._fallback(subject, error, spent=duration)
        model = answer.model or self.llm.model
        self.counters.llm_successes += 1
        self.latencies.append(duration)
        self.metrics.classification_duration.labels(model).observe(duration)
        tokens = _total_tokens(answer.usage)
        if tokens:
            self.metrics.classification_tokens.labels(model).inc(tokens)
        return Classification(
            fingerprint=subject.fingerprint,
            severity=answer.severity,
            confidence=answer.confidence,
            reasoning=answer.reasoning,
            recommendations=answer.recommendations,
            processing_time=round(duration, 6),
            metadata={
                "fallback": False,
                "model": model,
                "tags": answer.tags,
                "llm_usage": answer.usage,
                "prompt_version": PROMPT_VERSION,
            },
            model=model,
            source="llm",
            created_at=self._now_ns(),
            prompt_version=PROMPT_VERSION,
            tokens=tokens,
        )

    def _fallback(self, subject: Subject, error: str, *, spent: float = 0.0) -> Classification:
        """The rule-based classification; `spent` is how long the failed call took (s)."""
        self.counters.fallback_used += 1
        result = fallback_classification(
            subject.fingerprint, subject.alertname, subject.labels, error, self._now_ns()
        )
        return msgspec.structs.replace(
            result, prompt_version=PROMPT_VERSION, processing_time=round(spent, 6)
        )

    def _breaker_moved(self, before: BreakerState, now: float) -> None:
        after = self.breaker.state(now)
        if after is before:
            return
        log.warning("llm circuit breaker", extra={"from": before.value, "to": after.value})
        self.transitions += 1
        self._moved.set()
        self._moved = trio.Event()
        if after is BreakerState.OPEN:
            self.metrics.breaker_opened.inc()
        elif after is BreakerState.CLOSED:
            self.closed_at_ns = self._now_ns()
            self._closed.set()
            self._closed = trio.Event()

    def _count_cache(self, hit: bool) -> None:
        (self.metrics.cache_hits if hit else self.metrics.cache_misses).labels(
            "classification"
        ).inc()

    def _breaker_gauge(self) -> float:
        try:
            now = trio.current_time()
        except RuntimeError:  # scraped outside trio (tests rendering after the run)
            return float(_BREAKER_GAUGE[self.breaker.snapshot(float("-inf")).state])
        return float(_BREAKER_GAUGE[self.breaker.state(now)])


class _Batch:
    def __init__(self) -> None:
        self.items: list[Classification] = []
        self.done = trio.Event()
        self.error: Exception | None = None


class _GroupWriter:
    """Store classifications in group commits: whoever finds no write running waits `linger`
    seconds (0: none), then writes every classification waiting in one transaction, until none
    waits; the others wait for the transaction holding theirs. Ingest shares the database's
    writer (and its fsync per commit): the linger keeps classifications to a few commits a
    second instead of one per answer, which measurably delayed webhooks."""

    def __init__(self, storage: Storage, linger: float) -> None:
        self._storage = storage
        self._linger = linger  # seconds a writer waits for more before its transaction
        self._next = _Batch()
        self._writing = False

    async def save(self, item: Classification) -> None:
        """Return once `item` is committed; raise the storage error that prevented it."""
        batch = self._next
        batch.items.append(item)
        if self._writing:
            await batch.done.wait()
        else:
            self._writing = True
            try:
                while self._next.items:
                    if self._linger:
                        await trio.sleep(self._linger)
                    current, self._next = self._next, _Batch()
                    try:
                        await self._storage.write(
                            partial(save_classifications, items=current.items)
                        )
                    except Exception as exc:
                        current.error = exc
                    finally:
                        current.done.set()
            finally:
                self._writing = False
                if self._next.items:  # this writer was cancelled: nobody would write them
                    abandoned, self._next = self._next, _Batch()
                    abandoned.error = StorageError("classification write abandoned")
                    abandoned.done.set()
        if batch.error is not None:
            raise batch.error


def _total_tokens(usage: dict[str, Any]) -> int | None:
    total = usage.get("total_tokens")
    if isinstance(total, int) and total >= 0:
        return total
    parts = [usage.get("prompt_tokens"), usage.get("completion_tokens")]
    if all(isinstance(p, int) for p in parts):
        return sum(p for p in parts if isinstance(p, int))
    return None


__all__ = ["ClassificationService", "Counters"]
