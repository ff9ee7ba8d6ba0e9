"""Composition root: open storage, build channels and the supervisor tree, serve.

Tree (children start in order, stop in reverse):
    root (one_for_one)
    ├── pipeline (one_for_one): [llm-worker, classifier], writer, router, deduplicator, ingest
    │                           (consumers first; the classifier only with LLM_ENABLED, its
    │                           LLM calls' worker process only with LLM_WORKER)
    ├── metrics
    └── http                                                   (started last, stopped first)
Every channel is opened here once; each actor incarnation gets `.clone()`s, so a restart loses
nothing buffered. Stopping closes the edge into an actor and lets it drain.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import msgspec
import trio

from alert_history.actors import (
    ClassificationService,
    Hooks,
    classifier,
    deduplicator,
    housekeeping,
    ingest,
    metrics,
    rollup,
    router,
    writer,
)
from alert_history.config import Settings, redacted
from alert_history.domain import FingerprintVerifier
from alert_history.domain.breaker import BreakerPolicy, CircuitBreaker
from alert_history.http import HttpDeps, WebhookLimits, create_asgi, serve_http
from alert_history.http.server import hypercorn_config
from alert_history.kv import ClassificationCache, ModeStore, RedisKV
from alert_history.llm import LLM, LLMConfig, LLMWorker, WorkerConfig, open_llm_client
from alert_history.messages import EventBatch, IngestRequest
from alert_history.storage import Storage, open_storage
from alert_history.storage.classifications import Subject
from alert_history.storage.rules import RuleBook
from alert_history.storage.service_settings import StoredSettings
from alert_history.supervisor import ChildSpec, Restart, Supervisor
from alert_history.telemetry import Metrics

log = logging.getLogger("alert_history.app")


@dataclass
class Service:
    """A running service: what tests and the CLI need to reach it."""

    settings: Settings
    storage: Storage
    metrics: Metrics
    root: Supervisor
    modes: ModeStore
    classification: ClassificationService | None = None
    redis: RedisKV | None = None
    llm_http: httpx.AsyncClient | None = None
    bound: list[str] = field(default_factory=list)
    draining: bool = False

    @property
    def url(self) -> str:
        """The first bound URL, with a wildcard host replaced by 127.0.0.1."""
        return self.bound[0].replace("0.0.0.0", "127.0.0.1")

    async def aclose(self) -> None:
        """Close the clients the service opened (after the tree stopped)."""
        if self.llm_http is not None:
            await self.llm_http.aclose()
        if self.redis is not None:
            self.redis.close()

    async def shutdown(self) -> None:
        """Orderly stop: readiness off, HTTP drains, channels drain in order, last commit."""
        if not self.draining:
            log.info(
                "shutting down", extra={"grace_seconds": self.settings.server.graceful_timeout}
            )
        self.draining = True
        # Let load balancers see /readyz fail before the listener closes (Kubernetes preStop).
        await trio.sleep(self.settings.server.shutdown_delay)
        await self.root.stop(deadline=self.settings.server.graceful_timeout)


class _HttpSlot:
    """What the current http incarnation exposes: its ingest channel clone and its stop event."""

    def __init__(self) -> None:
        self.ingest: trio.MemorySendChannel[IngestRequest] | None = None
        self.shutdown: trio.Event | None = None

    def stop(self) -> None:
        if self.shutdown is not None:
            self.shutdown.set()


def build_service(
    settings: Settings,
    storage: Storage,
    *,
    hooks: Hooks,
    wall_clock: Callable[[], float] = time.time,
) -> Service:
    """Wire channels, actors, the HTTP app and the supervisor tree (nothing runs yet)."""

    def wall_clock_ns() -> int:
        return int(wall_clock() * 1e9)

    m = Metrics()
    cfg = settings.ingest
    ingest_send, ingest_recv = trio.open_memory_channel[IngestRequest](cfg.queue_size)
    dedup_send, dedup_recv = trio.open_memory_channel[EventBatch](cfg.dedup_queue_size)
    router_send, router_recv = trio.open_memory_channel[EventBatch](cfg.dedup_queue_size)
    writer_send, writer_recv = trio.open_memory_channel[EventBatch](cfg.writer_queue_size)
    verifier = FingerprintVerifier()
    rules = RuleBook(storage)
    redis = None
    if settings.redis.url:
        redis = RedisKV(settings.redis.url, timeout=settings.redis.timeout)
    modes = ModeStore(
        redis=redis,
        stored=StoredSettings(storage, wall_clock_ns),
        default=settings.enrichment_mode,
        stored_shared=storage.backend != "sqlite",  # SQLite: one process, its memory suffices
    )
    m.count_mode(settings.enrichment_mode)
    llm_cfg = settings.llm
    classify_send, classify_recv = trio.open_memory_channel[Subject](llm_cfg.queue_size)
    classification, llm_http = _classification(settings, storage, redis, m, wall_clock_ns, hooks)
    llm_worker = None if classification is None else classification.llm

    async def start_writer(task_status: trio.TaskStatus[None]) -> None:
        await writer.run(
            writer_recv.clone(),
            storage=storage,
            batch_max=cfg.writer_batch_max,
            metrics=m,
            hooks=hooks,
            committed=None if classification is None else classifier.feeder(classify_send, m),
            task_status=task_status,
        )

    async def start_classifier(task_status: trio.TaskStatus[None]) -> None:
        assert classification is not None
        await classifier.run(
            classify_recv.clone(),
            service=classification,
            mode=modes.mode,
            concurrency=llm_cfg.concurrency,
            poll_interval=llm_cfg.poll_interval,
            page_size=llm_cfg.page_size,
            task_status=task_status,
        )

    async def start_router(task_status: trio.TaskStatus[None]) -> None:
        await router.run(
            router_recv.clone(), writer_send.clone(), rules=rules, task_status=task_status
        )

    async def start_dedup(task_status: trio.TaskStatus[None]) -> None:
        await deduplicator.run(
            dedup_recv.clone(),
            router_send.clone(),
            verifier=verifier,
            metrics=m,
            hooks=hooks,
            task_status=task_status,
        )

    async def start_ingest(task_status: trio.TaskStatus[None]) -> None:
        await ingest.run(
            ingest_recv.clone(),
            dedup_send.clone(),
            wall_clock_ns=wall_clock_ns,
            metrics=m,
            task_status=task_status,
        )

    async def start_metrics(task_status: trio.TaskStatus[None]) -> None:
        await metrics.run(
            storage=storage,
            metrics=m,
            wall_clock_ns=wall_clock_ns,
            stale_after=settings.stale_firing_after,
            task_status=task_status,
        )

    async def start_housekeeping(task_status: trio.TaskStatus[None]) -> None:
        await housekeeping.run(
            storage=storage,
            metrics=m,
            retention_days=settings.retention_days,
            wall_clock_ns=wall_clock_ns,
            task_status=task_status,
        )

    async def start_rollup(task_status: trio.TaskStatus[None]) -> None:
        await rollup.run(storage=storage, wall_clock_ns=wall_clock_ns, task_status=task_status)

    http = _HttpSlot()
    app = create_asgi(
        HttpDeps(
            storage=storage,
            metrics=m,
            ingest=lambda: http.ingest,
            limits=WebhookLimits(cfg.enqueue_timeout, cfg.commit_timeout, cfg.retry_after),
            max_body_bytes=settings.server.max_body_bytes,
            supervisor_tree=lambda: _with_breaker(root.health().to_dict(), classification),
            actors_ready=lambda: root.health().critical_children_running(),
            draining=lambda: service.draining,
            wall_clock=wall_clock,
            started_at=wall_clock(),
            rules_changed=rules.invalidate,
            stale_firing_after=settings.stale_firing_after,
            modes=modes,
            classification=classification,
        )
    )
    server = settings.server
    config = hypercorn_config(
        server.host,
        server.port,
        graceful_timeout=server.graceful_timeout,
        keep_alive=server.keep_alive_timeout,
    )

    async def start_http(task_status: trio.TaskStatus[None]) -> None:
        http.shutdown = trio.Event()
        async with ingest_send.clone() as channel:
            http.ingest = channel
            try:
                await serve_http(
                    app, config, shutdown=http.shutdown, bound=service.bound,
                    task_status=task_status,
                )  # fmt: skip
            finally:
                http.ingest = None

    grace = server.graceful_timeout
    classifier_children = []
    if isinstance(llm_worker, LLMWorker):
        # the LLM calls' process: restarted when it dies; its calls' alerts stay pending
        classifier_children.append(ChildSpec("llm-worker", llm_worker.run, shutdown_timeout=1.0))
    if classification is not None:
        # started before the writer that feeds it, stopped after it
        classifier_children.append(
            ChildSpec(
                "classifier",
                start_classifier,
                stop=classify_send.close,
                inbox=classify_recv,
                shutdown_timeout=1.0,
            )
        )
    pipeline = Supervisor(
        "pipeline",
        [
            *classifier_children,
            ChildSpec(
                "writer",
                start_writer,
                stop=writer_send.close,
                critical=True,
                inbox=writer_recv,
                shutdown_timeout=grace,
            ),
            ChildSpec(
                "router",
                start_router,
                stop=router_send.close,
                critical=True,
                inbox=router_recv,
                shutdown_timeout=grace,
            ),
            ChildSpec(
                "deduplicator",
                start_dedup,
                stop=dedup_send.close,
                critical=True,
                inbox=dedup_recv,
                shutdown_timeout=grace,
            ),
            ChildSpec(
                "ingest",
                start_ingest,
                stop=ingest_send.close,
                critical=True,
                inbox=ingest_recv,
                shutdown_timeout=grace,
            ),
        ],
    )
    root = Supervisor(
        "root",
        [
            pipeline,
            ChildSpec("metrics", start_metrics, restart=Restart.PERMANENT, shutdown_timeout=1.0),
            ChildSpec("housekeeping", start_housekeeping, shutdown_timeout=1.0),
            ChildSpec("rollup", start_rollup, shutdown_timeout=1.0),
            ChildSpec("http", start_http, stop=http.stop, critical=True, shutdown_timeout=grace),
        ],
    )
    m.watch(
        {
            "ingest": ingest_recv,
            "deduplicator": dedup_recv,
            "router": router_recv,
            "writer": writer_recv,
            "classifier": classify_recv,
        },
        lambda: root.health().walk(),
    )
    service = Service(
        settings=settings,
        storage=storage,
        metrics=m,
        root=root,
        modes=modes,
        classification=classification,
        redis=redis,
        llm_http=llm_http,
    )
    return service


def _classification(
    settings: Settings,
    storage: Storage,
    redis: RedisKV | None,
    metrics: Metrics,
    wall_clock_ns: Callable[[], int],
    hooks: Hooks,
) -> tuple[ClassificationService | None, httpx.AsyncClient | None]:
    """The classifier's engine when LLM classification is enabled, and its HTTP client."""
    cfg = settings.llm
    if not cfg.enabled:
        return None, None
    http = None
    llm: LLM
    config = LLMConfig(
        base_url=cfg.proxy_url, api_key=cfg.api_key, model=cfg.model, timeout=cfg.timeout,
        max_retries=cfg.max_retries, concurrency=cfg.concurrency,
    )  # fmt: skip
    if cfg.worker:  # the calls in a process of their own (an `llm-worker` child)
        fields = msgspec.structs.asdict(config)
        llm = LLMWorker(WorkerConfig(**fields, nice=cfg.worker_nice))
    else:
        http, llm = open_llm_client(config)
    policy = BreakerPolicy(
        failure_threshold=cfg.breaker_failures,
        failure_rate=cfg.breaker_failure_rate,
        window=cfg.breaker_window,
        min_calls=cfg.breaker_min_calls,
        slow_call=cfg.breaker_slow_call,
        reset_timeout=cfg.breaker_reset,
    )
    cache = ClassificationCache(
        redis=redis, ttl=cfg.cache_ttl, max_size=cfg.cache_size, clock=trio.current_time
    )
    service = ClassificationService(
        storage=storage,
        llm=llm,
        cache=cache,
        breaker=CircuitBreaker(policy),
        concurrency=cfg.concurrency,
        timeout=cfg.timeout,
        metrics=metrics,
        wall_clock_ns=wall_clock_ns,
        on_result=hooks.classified,
    )
    return service, http


def _with_breaker(
    tree: dict[str, object], classification: ClassificationService | None
) -> dict[str, object]:
    """The supervision tree with the LLM breaker's state on the classifier child."""
    if classification is None:
        return tree
    children = tree.get("children")
    if isinstance(children, list):
        for child in children:
            if not isinstance(child, dict):
                continue
            if child.get("name") == "classifier" and child.get("kind") == "child":
                child["circuit_breaker"] = classification.breaker_view()
            else:
                _with_breaker(child, classification)
    return tree


async def run_service(
    settings: Settings,
    *,
    hooks: Hooks | None = None,
    handle_signals: bool = False,
    task_status: trio.TaskStatus[Service] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Open storage, run the tree until stopped (SIGTERM when `handle_signals`), close storage."""
    log.info("starting", extra={"settings": redacted(settings)})
    db = settings.database
    storage = await open_storage(
        db.url, migrate=db.auto_migrate, pool_size=db.pool_size, query_timeout=db.query_timeout
    )
    built: Service | None = None
    try:
        service = built = build_service(settings, storage, hooks=hooks or Hooks())
        async with trio.open_nursery() as nursery:

            async def supervise(task_status: trio.TaskStatus[None]) -> None:
                try:
                    await service.root.run(task_status=task_status)
                finally:
                    nursery.cancel_scope.cancel()  # the signal watcher

            if handle_signals:
                nursery.start_soon(_stop_on_signal, service)
            await nursery.start(supervise)
            log.info("serving", extra={"urls": service.bound})
            task_status.started(service)
    finally:
        with trio.move_on_after(5) as cleanup:
            cleanup.shield = True
            if built is not None:
                await built.aclose()
            await storage.aclose()
    log.info("stopped")


async def _stop_on_signal(service: Service) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            log.info("signal received", extra={"signal": signal.Signals(signum).name})
            await service.shutdown()
            return


__all__ = ["Service", "build_service", "run_service"]
