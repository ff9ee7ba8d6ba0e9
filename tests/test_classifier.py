"""The classifier actor on a virtual clock: breaker, fallback, re-classification, timeouts, bounds.

Real parts: SQLite storage, the real LLM client on httpx, and the stand-in chat-completions
server (its ASGI app through httpx's ASGITransport, so no socket makes the autojump clock jump)
or a closed port for a refusing LLM. Times are asserted exactly in virtual seconds.
"""

from __future__ import annotations

import json
import math
import socket
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
import trio
import trio.testing

from alert_history.actors import ClassificationService, classifier
from alert_history.domain.breaker import BreakerPolicy, BreakerState, CircuitBreaker
from alert_history.kv import ClassificationCache
from alert_history.llm import LLMClient, RetryPolicy
from alert_history.models import AlertEvent, Classification
from alert_history.storage import Db, open_storage
from alert_history.storage.classifications import Subject, load_classification
from alert_history.storage.executor import SqliteDb
from alert_history.telemetry import Metrics
from tests.llm_server import LLMServer, asgi_app

EPOCH = 1_800_000_000 * 10**9
T = TypeVar("T")
POLICY = BreakerPolicy(failure_threshold=3, min_calls=10, slow_call=3.0, reset_timeout=30.0)
TIMEOUT = 5.0


def event(fp: str, *, status: str = "firing", name: str = "DiskFull") -> AlertEvent:
    return AlertEvent(
        fingerprint=fp, status="resolved" if status == "resolved" else "firing", starts_at=EPOCH,
        ends_at=0, alertname=name, namespace="ns", severity="warning",
        labels={"alertname": name, "fp": fp, "severity": "warning"},
        annotations={"summary": "s"}, generator_url="", receiver="r", group_key="g",
        source="alertmanager", received_at=EPOCH,
    )  # fmt: skip


class Results:
    """Every classification the service stored, and a way to wait for one that matches."""

    def __init__(self) -> None:
        self.items: list[Classification] = []
        self._changed = trio.Event()

    def __call__(self, item: Classification) -> None:
        self.items.append(item)
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for(self, done: Callable[[list[Classification]], bool]) -> None:
        while not done(self.items):
            await self._changed.wait()

    def of(self, fp: str) -> list[Classification]:
        return [item for item in self.items if item.fingerprint == fp]


@pytest.fixture
def clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


class InlineSqlite:
    """Real SQLite (migrated by the real storage), queried on the trio thread.

    The classifier only uses `read(fn)`/`write(fn)`; running them inline keeps worker-thread
    waits out of the virtual clock, so the autojump clock measures only the classifier's own
    waits (timeouts, the breaker's reset).
    """

    backend = "sqlite"

    def __init__(self, path: str) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)

    async def read(self, fn: Callable[[Db], T]) -> T:
        await trio.lowlevel.checkpoint()
        return fn(SqliteDb(self._conn))

    async def write(self, fn: Callable[[Db], T]) -> T:
        await trio.lowlevel.checkpoint()
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(SqliteDb(self._conn))
        except Exception:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")
        return result

    async def write_events(self, events: list[AlertEvent]) -> None:
        def insert(db: Db) -> None:
            for e in events:
                db.execute(
                    "INSERT INTO alert_events (fingerprint, status, starts_at, ends_at, alertname,"
                    " namespace, severity, labels, annotations, first_seen, last_seen)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [e.fingerprint, e.status, e.starts_at, e.ends_at, e.alertname, e.namespace,
                     e.severity, json.dumps(e.labels), json.dumps(e.annotations), e.received_at,
                     e.received_at],
                )  # fmt: skip
                db.execute(
                    "INSERT INTO alert_current VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (fingerprint) DO UPDATE SET status = excluded.status",
                    [e.fingerprint, e.status, e.starts_at, e.ends_at, e.alertname, e.namespace,
                     e.severity, e.received_at],
                )  # fmt: skip

        await self.write(insert)

    def close(self) -> None:
        self._conn.close()


@pytest.fixture
async def sqlite(tmp_path: Path) -> AsyncIterator[InlineSqlite]:
    path = f"{tmp_path}/c.db"
    await (await open_storage(f"sqlite:///{path}")).aclose()  # create and migrate
    storage = InlineSqlite(path)
    try:
        yield storage
    finally:
        storage.close()


def closed_port() -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def llm_client(http: httpx.AsyncClient, url: str) -> LLMClient:
    return LLMClient(http, base_url=url, api_key="sk", model="gpt-4", timeout=TIMEOUT,
                     retry=RetryPolicy(max_retries=0))  # fmt: skip


def make_service(
    storage: InlineSqlite, llm: LLMClient, results: Results, *, concurrency: int = 4
) -> ClassificationService:
    return ClassificationService(
        storage=storage,  # type: ignore[arg-type]
        llm=llm,
        cache=ClassificationCache(redis=None, ttl=3600, max_size=100, clock=trio.current_time),
        breaker=CircuitBreaker(POLICY),
        concurrency=concurrency,
        timeout=TIMEOUT,
        metrics=Metrics(),
        wall_clock_ns=lambda: EPOCH + int(trio.current_time() * 1e9),
        on_result=results,
        write_linger=0.0,  # exact virtual times: results are stored at once
    )


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(f"alert_history_{name}", labels)
    return 0.0 if value is None else value


async def transparent() -> str:
    return "transparent"


async def enriched() -> str:
    return "enriched"


@asynccontextmanager
async def running_classifier(
    service: ClassificationService,
    *,
    queue_size: int = 16,
    concurrency: int = 4,
    mode: Callable[[], object] = enriched,
    poll_interval: float = math.inf,
) -> AsyncIterator[tuple[trio.MemorySendChannel[Subject], trio.MemoryReceiveChannel[Subject]]]:
    send, recv = trio.open_memory_channel[Subject](queue_size)
    async with trio.open_nursery() as nursery:
        await nursery.start(
            partial(
                classifier.run, recv.clone(), service=service, mode=mode,  # type: ignore[arg-type]
                concurrency=concurrency, poll_interval=poll_interval, page_size=50,
            )
        )  # fmt: skip
        yield send, recv
        nursery.cancel_scope.cancel()


async def commit(
    storage: InlineSqlite, feed: Callable[[list[AlertEvent]], None], *fps: str
) -> None:
    events = [event(fp) for fp in fps]
    await storage.write_events(events)
    feed(events)


async def test_a_refusing_llm_opens_the_breaker_then_alerts_fall_back_at_once_and_recover(
    clock: trio.testing.MockClock, sqlite: InlineSqlite
) -> None:
    results = Results()
    server = LLMServer()
    async with (
        httpx.AsyncClient() as refusing,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi_app(server))) as good,
    ):
        url = next(closed_port())
        service = make_service(sqlite, llm_client(refusing, url), results)
        async with running_classifier(service) as (send, _):
            feed = classifier.feeder(send, service.metrics)
            # three refused calls: the configured failures open the breaker
            for fp in ("a1", "a2", "a3"):
                await commit(sqlite, feed, fp)
                await results.wait_for(lambda items, fp=fp: bool(results.of(fp)))
            snap = service.breaker_snapshot()
            assert snap.state is BreakerState.OPEN
            assert all(item.fallback for item in results.items)
            assert "refused" in str(results.items[0].metadata["error"]).lower() or (
                "unreachable" in str(results.items[0].metadata["error"]).lower()
            )
            opened_at = snap.opened_at
            assert opened_at is not None

            # later alerts get the fallback at once: no virtual time passes, no call goes out
            before = trio.current_time()
            await commit(sqlite, feed, "b1", "b2")
            await results.wait_for(lambda items: bool(results.of("b1") and results.of("b2")))
            assert trio.current_time() == before
            (b1,) = results.of("b1")
            assert b1.fallback and b1.metadata["error"] == "circuit breaker open"
            assert b1.processing_time == 0.0
            assert (
                sample(service.metrics, "classification_errors_total", error_type="breaker_open")
                == 2
            )

            # the LLM comes back while the breaker is open: nothing is sent until the reset time
            service.llm = llm_client(good, "http://llm")
            await trio.sleep_until(opened_at + POLICY.reset_timeout - 0.001)
            assert service.breaker_snapshot().state is BreakerState.OPEN
            assert server.requests == []

            # at the reset time the breaker half-opens, the poller retries one fallback as the
            # trial call, it succeeds and the breaker closes, with no new alert needed
            await service.wait_closed()
            assert trio.current_time() == opened_at + POLICY.reset_timeout
            assert service.breaker_snapshot().state is BreakerState.CLOSED
            assert service.closed_at_ns == EPOCH + int(trio.current_time() * 1e9)

            # every fallback made before the closing is classified again
            fallbacks = ("a1", "a2", "a3", "b1", "b2")
            await results.wait_for(
                lambda items: all(not results.of(fp)[-1].fallback for fp in fallbacks)
            )
            for fp in fallbacks:
                stored = await sqlite.read(partial(load_classification, fingerprint=fp))
                assert stored is not None and stored.source == "llm" and not stored.fallback
                assert (stored.model, stored.prompt_version, stored.tokens) == ("gpt-4", "v1", 160)
            assert len(server.requests) == 5


async def test_a_hung_llm_ends_each_call_at_the_timeout_and_the_queue_stays_bounded(
    clock: trio.testing.MockClock, sqlite: InlineSqlite
) -> None:
    results = Results()
    server = LLMServer(mode="hang")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi_app(server))) as http:
        service = make_service(sqlite, llm_client(http, "http://llm"), results, concurrency=2)
        async with running_classifier(service, queue_size=4, concurrency=2) as (send, recv):
            feed = classifier.feeder(send, service.metrics)
            started = trio.current_time()
            fps = [f"h{i}" for i in range(20)]
            await sqlite.write_events([event(fp) for fp in fps])
            feed([event(fp) for fp in fps])  # never blocks: what does not fit is dropped
            dropped = sample(service.metrics, "classification_hints_dropped_total")
            assert 20 - 4 - 1 <= dropped <= 20 - 4  # 4 buffered, maybe 1 handed to the actor
            while len(server.requests) < 2:
                await server.request_seen.wait()
            # in memory: at most 2 calls in flight and 4 hints waiting
            assert service.limiter.borrowed_tokens == 2
            assert len(server.requests) == 2
            assert recv.statistics().current_buffer_used <= 4
            # the calls end at exactly the timeout, as fallbacks
            await results.wait_for(lambda items: len(items) >= 2)
            first = results.items[:2]
            assert trio.current_time() == started + TIMEOUT
            assert [item.processing_time for item in first] == [TIMEOUT, TIMEOUT]
            assert all(item.fallback for item in first)
            assert "no classification within 5.0 s" in str(first[0].metadata["error"])
            assert sample(service.metrics, "classification_errors_total", error_type="timeout") >= 2


async def test_transparent_mode_classifies_nothing(
    clock: trio.testing.MockClock, sqlite: InlineSqlite
) -> None:
    results = Results()
    server = LLMServer()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi_app(server))) as http:
        service = make_service(sqlite, llm_client(http, "http://llm"), results)
        async with running_classifier(service, mode=transparent, poll_interval=60) as (send, recv):
            await commit(sqlite, classifier.feeder(send, service.metrics), "t1")
            await trio.testing.wait_all_tasks_blocked()
            assert recv.statistics().current_buffer_used == 0
            await trio.sleep(120)  # two poll intervals of virtual time
    assert results.items == [] and server.requests == []


async def test_the_poller_classifies_rows_the_fast_path_never_saw(
    clock: trio.testing.MockClock, sqlite: InlineSqlite
) -> None:
    results = Results()
    server = LLMServer()
    await sqlite.write_events([event("p1"), event("p2"), event("gone", status="resolved")])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi_app(server))) as http:
        service = make_service(sqlite, llm_client(http, "http://llm"), results)
        async with running_classifier(service):
            await results.wait_for(lambda items: len(items) >= 2)
    assert sorted(item.fingerprint for item in results.items) == ["p1", "p2"]
    assert all(item.source == "llm" for item in results.items)


async def test_slow_answers_count_as_failures(
    clock: trio.testing.MockClock, sqlite: InlineSqlite
) -> None:
    results = Results()
    server = LLMServer(delay=4.0)  # slower than the policy's 3 s slow-call limit
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi_app(server))) as http:
        service = make_service(sqlite, llm_client(http, "http://llm"), results, concurrency=1)
        async with running_classifier(service, concurrency=1) as (send, _):
            feed = classifier.feeder(send, service.metrics)
            for fp in ("s1", "s2", "s3"):
                await commit(sqlite, feed, fp)
            await results.wait_for(lambda items: len(items) >= 3)
    assert all(item.source == "llm" for item in results.items)  # the answers are still used
    assert service.breaker_snapshot().state is BreakerState.OPEN


async def test_replicas_sharing_a_database_send_each_alert_to_the_llm_once(pg_url: str) -> None:
    # Real time and a real PostgreSQL: two classifiers poll the same pending rows at once.
    fps = [f"shared{i}" for i in range(12)]
    first, second = await open_storage(pg_url), await open_storage(pg_url)
    try:
        await first.write_events([event(fp) for fp in fps])
        server, results = LLMServer(delay=0.05), Results()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi_app(server))) as http:
            a, b = (
                make_service(storage, llm_client(http, "http://llm"), results)  # type: ignore[arg-type]
                for storage in (first, second)
            )
            assert a.shared and b.shared and a.owner != b.owner
            with trio.fail_after(30):
                async with (
                    running_classifier(a, poll_interval=0.05),
                    running_classifier(b, poll_interval=0.05),
                ):
                    await results.wait_for(lambda items: {i.fingerprint for i in items} >= set(fps))
        assert len(server.requests) == len(fps)
        assert sorted(item.fingerprint for item in results.items) == sorted(fps)
    finally:
        await first.aclose()
        await second.aclose()
