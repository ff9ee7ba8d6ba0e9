"""Classification API (legacy B§3.5, the §16 route-order bug fixed) under /classification.

Every route answers 503 `{"detail": "Classification service not available"}` when classification
is disabled. Static paths (`/stats`, `/health`, `/models`, `/bulk`, `/classify`) are registered
before `/<fingerprint>`, and Quart prefers static rules anyway.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
import trio
from quart import Response, request
from quart_trio import QuartTrio

from alert_history.http.bodies import BodyError, decode_body
from alert_history.http.deps import ClassificationApi, HttpDeps
from alert_history.http.responses import error, field_error, json_response
from alert_history.models import Classification
from alert_history.storage import Db

UNAVAILABLE = "Classification service not available"
MAX_BULK = 50


class BulkRequest(msgspec.Struct, frozen=True):
    fingerprints: Annotated[list[str], msgspec.Meta(min_length=1, max_length=MAX_BULK)]
    force_refresh: bool = False
    include_recommendations: bool = True


class InlineAlert(msgspec.Struct, frozen=True):
    alertname: Annotated[str, msgspec.Meta(min_length=1)]
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    status: str = "firing"


class ClassifyRequest(msgspec.Struct, frozen=True):
    alert: InlineAlert
    force: bool = False


_bulk = msgspec.json.Decoder(BulkRequest)
_classify = msgspec.json.Decoder(ClassifyRequest)


def classification_response(
    item: Classification, *, cached: bool, recommendations: bool = True
) -> dict[str, object]:
    """The legacy ClassificationResponse."""
    return {
        "fingerprint": item.fingerprint,
        "severity": item.severity,
        "confidence": item.confidence,
        "reasoning": item.reasoning,
        "recommendations": list(item.recommendations) if recommendations else [],
        "processing_time": item.processing_time,
        "metadata": item.metadata or None,
        "cached": cached,
        "model": item.model,
        "fallback": item.fallback,
        "created_at": item.created_at / 1e9,
    }


def register_classification_routes(app: QuartTrio, deps: HttpDeps) -> None:
    def service() -> ClassificationApi | None:
        return deps.classification

    @app.get("/classification/stats")
    async def classification_stats() -> Response:
        svc = service()
        if svc is None:
            return error(503, UNAVAILABLE)
        by_severity = await deps.storage.read(_by_severity)
        return json_response({**svc.stats(), "by_severity": by_severity})

    @app.get("/classification/health")
    async def classification_health() -> Response:
        svc = service()
        if svc is None:
            return error(503, UNAVAILABLE)
        return json_response({**svc.health(), "timestamp": deps.wall_clock()})

    @app.get("/classification/models")
    async def classification_models() -> Response:
        svc = service()
        if svc is None:
            return error(503, UNAVAILABLE)
        return json_response({"models": svc.models(), "default_model": svc.model})

    @app.post("/classification/bulk")
    async def classification_bulk() -> Response:
        svc = service()
        if svc is None:
            return error(503, UNAVAILABLE)
        try:
            body = decode_body(await request.get_data(), _bulk)
        except BodyError as exc:
            return field_error(exc.status, exc.path, exc.message, exc.kind)
        started = trio.current_time()
        found: dict[str, dict[str, object]] = {}
        errors: dict[str, str] = {}

        async def one(fingerprint: str) -> None:
            result = None
            if _storable(fingerprint):
                result = await svc.classify_stored(fingerprint, force=body.force_refresh)
            if result is None:
                errors[fingerprint] = "alert not found"
                return
            item, cached = result
            found[fingerprint] = classification_response(
                item, cached=cached, recommendations=body.include_recommendations
            )

        async with trio.open_nursery() as nursery:
            for fingerprint in dict.fromkeys(body.fingerprints):
                nursery.start_soon(one, fingerprint)
        order = list(dict.fromkeys(body.fingerprints))
        return json_response(
            {
                "results": [found[fp] for fp in order if fp in found],
                "total_processed": len(found),
                "errors": [
                    {"fingerprint": fp, "error": errors[fp]} for fp in order if fp in errors
                ],
                "processing_time": round(trio.current_time() - started, 6),
            }
        )

    @app.post("/classification/classify")
    async def classification_classify() -> Response:
        svc = service()
        if svc is None:
            return error(503, UNAVAILABLE)
        try:
            body = decode_body(await request.get_data(), _classify)
        except BodyError as exc:
            return field_error(exc.status, exc.path, exc.message, exc.kind)
        started = trio.current_time()
        alert: dict[str, Any] = msgspec.to_builtins(body.alert)
        item, cached = await svc.classify_alert(alert, force=body.force)
        tags = item.metadata.get("tags")
        category = tags[0] if isinstance(tags, list) and tags else None
        return json_response(
            {
                "classification": {
                    "severity": item.severity,
                    "confidence": item.confidence,
                    "category": category,
                    "reasoning": item.reasoning,
                    "recommendations": item.recommendations,
                    "model": item.model or ("fallback" if item.fallback else svc.model),
                    "fallback": item.fallback,
                    "cached": cached,
                    "processing_time_ms": round((trio.current_time() - started) * 1000, 3),
                }
            }
        )

    @app.post("/classification/refresh/<path:fingerprint>")
    async def classification_refresh(fingerprint: str) -> Response:
        svc = service()
        if svc is None:
            return error(503, UNAVAILABLE)
        result = (
            await svc.classify_stored(fingerprint, force=True) if _storable(fingerprint) else None
        )
        if result is None:
            return error(404, f"Alert {fingerprint!r} not found")
        return json_response(classification_response(result[0], cached=False))

    @app.get("/classification/<path:fingerprint>")
    async def classification_get(fingerprint: str) -> Response:
        svc = service()
        if svc is None:
            return error(503, UNAVAILABLE)
        item = await svc.known(fingerprint) if _storable(fingerprint) else None
        if item is None:
            return error(404, f"No classification for {fingerprint!r}")
        return json_response(classification_response(item, cached=True))


def _storable(fingerprint: str) -> bool:
    """No stored fingerprint holds U+0000 (PostgreSQL cannot even compare one): not found."""
    return "\0" not in fingerprint


def _by_severity(db: Db) -> dict[str, dict[str, object]]:
    rows = db.fetchall(
        "SELECT severity, count(*), avg(confidence) FROM classifications GROUP BY severity"
    )
    return {
        str(severity): {"count": int(count), "avg_confidence": round(float(avg or 0), 4)}
        for severity, count, avg in rows
    }
