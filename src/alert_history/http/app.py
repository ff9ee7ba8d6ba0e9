"""The Quart application: routes for webhooks, history, health and metrics.

It receives everything from the composition root (`HttpDeps`): a way to reach the ingest
channel, read-only views of storage and health, and the metrics. It starts no tasks.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import partial

import trio
from quart import Response, g, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from alert_history.domain import decode_postable_alerts, decode_webhook
from alert_history.errors import AlertHistoryError, StorageError
from alert_history.http.classification_routes import register_classification_routes
from alert_history.http.deps import HttpDeps
from alert_history.http.enrichment_routes import register_enrichment_routes
from alert_history.http.fastpath import ASGIApp, WebhookFastPath
from alert_history.http.history import QueryError, parse_history_query, render_page
from alert_history.http.report_routes import register_report_routes
from alert_history.http.responses import error, field_error, json_response
from alert_history.http.rule_routes import register_rule_routes
from alert_history.http.timeline_routes import register_timeline_routes
from alert_history.http.webhook import accept_webhook
from alert_history.logs import request_id, request_id_from
from alert_history.telemetry import CONTENT_TYPE

log = logging.getLogger("alert_history.http")


def create_asgi(deps: HttpDeps) -> ASGIApp:
    """The service's ASGI app: the webhook fast path in front of the Quart app."""
    accept = partial(
        accept_webhook,
        ingest=deps.ingest,
        limits=deps.limits,
        metrics=deps.metrics,
        wall_clock=deps.wall_clock,
        mode=deps.modes.mode,
    )
    webhook = partial(accept, decode=decode_webhook)
    routes = {
        "/webhook": webhook,
        "/webhook/": webhook,
        # Prometheus can send here directly, as if this were an Alertmanager
        "/api/v2/alerts": partial(accept, decode=decode_postable_alerts),
    }
    return WebhookFastPath(
        create_app(deps),
        routes,
        max_body_bytes=deps.max_body_bytes,
        metrics=deps.metrics,
        draining=deps.draining,
    )


def create_app(deps: HttpDeps) -> QuartTrio:
    """The Quart app: every route but POST /webhook."""
    app = QuartTrio("alert_history")
    app.config.update(
        MAX_CONTENT_LENGTH=deps.max_body_bytes,
        BODY_TIMEOUT=30,
        RESPONSE_TIMEOUT=None,
        JSON_SORT_KEYS=False,
        PROVIDE_AUTOMATIC_OPTIONS=True,
    )

    @app.before_request
    async def _start() -> None:
        g.started = trio.current_time()
        rid = request_id_from(request.headers.get("X-Request-ID"))
        g.request_id = rid
        request_id.set(rid)

    @app.after_request
    async def _finish(response: Response) -> Response:
        rule = request.url_rule.rule if request.url_rule is not None else "unmatched"
        deps.metrics.request_latency.labels(rule).observe(trio.current_time() - g.started)
        response.headers["X-Request-ID"] = g.request_id
        if deps.draining():
            # Hypercorn keeps a busy keep-alive connection open through its graceful period
            # after shutdown; ask clients to reconnect (elsewhere, once this replica is gone).
            response.headers["Connection"] = "close"
        return response

    @app.errorhandler(HTTPException)
    async def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        if status == 413:
            return error(413, f"request body is larger than {deps.max_body_bytes} bytes")
        return error(status, exc.description or exc.name)

    @app.errorhandler(Exception)
    async def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error", extra={"path": request.path})
        if isinstance(exc, StorageError):
            return error(503, "storage unavailable, retry later", {"Retry-After": "5"})
        return error(500, "internal error")

    @app.get("/history")
    async def history() -> Response:
        try:
            query = parse_history_query(request.args)
        except QueryError as exc:
            return field_error(422, exc.name, exc.message, "value_error")
        page = await deps.storage.history(query)
        return json_response(render_page(page, query))

    register_report_routes(app, deps)
    register_rule_routes(app, deps, rules_changed=deps.rules_changed)
    register_timeline_routes(app, deps)
    register_enrichment_routes(app, deps)
    register_classification_routes(app, deps)

    @app.get("/healthz")
    async def healthz() -> Response:
        return json_response({"status": "healthy", "timestamp": deps.wall_clock()})

    @app.get("/readyz")
    async def readyz() -> Response:
        database = await _storage_ok(deps.storage.ping)
        actors = deps.actors_ready()
        draining = deps.draining()
        body: dict[str, object] = {
            "status": "ready",
            "uptime": round(deps.wall_clock() - deps.started_at, 3),
            "dependencies": {"database": database, "actors": actors},
            "draining": draining,
            "timestamp": deps.wall_clock(),
        }
        if database and actors and not draining:
            return json_response(body)
        body["status"] = "not_ready"
        body["detail"] = "Service not ready"
        return json_response(body, 503)

    @app.get("/health/supervisor")
    async def supervisor_health() -> Response:
        return json_response(deps.supervisor_tree())

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(deps.metrics.render(), content_type=CONTENT_TYPE)

    return app


async def _storage_ok(ping: Callable[[], Awaitable[None]]) -> bool:
    with trio.move_on_after(2.0):
        try:
            await ping()
        except AlertHistoryError:
            return False
        return True
    return False
