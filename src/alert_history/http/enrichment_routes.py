"""GET/POST /enrichment/mode (legacy B§3.3): the mode and where it came from."""

from __future__ import annotations

from typing import get_args

import msgspec
from quart import Response, request
from quart_trio import QuartTrio

from alert_history.config.settings import EnrichmentMode
from alert_history.http.bodies import BodyError, decode_body
from alert_history.http.deps import HttpDeps
from alert_history.http.responses import field_error, json_response

_MODES = ", ".join(get_args(EnrichmentMode))


class ModeRequest(msgspec.Struct, frozen=True):
    mode: EnrichmentMode


_decode = msgspec.json.Decoder(ModeRequest)


def register_enrichment_routes(app: QuartTrio, deps: HttpDeps) -> None:
    metrics = deps.metrics

    @app.get("/enrichment/mode")
    async def get_mode() -> Response:
        mode, source = await deps.modes.get()
        metrics.enrichment_mode_requests.labels("GET", mode).inc()
        metrics.count_mode(mode)
        return json_response({"mode": mode, "source": source})

    @app.post("/enrichment/mode")
    async def set_mode() -> Response:
        try:
            body = decode_body(await request.get_data(), _decode)
        except BodyError as exc:
            message = exc.message
            if exc.path == "$.mode" and exc.kind == "value_error":
                message = f"{message}; expected one of: {_MODES}"
            return field_error(exc.status, exc.path, message, exc.kind)
        before, _ = await deps.modes.get()
        source = await deps.modes.set(body.mode)
        metrics.enrichment_mode_requests.labels("POST", body.mode).inc()
        if before != body.mode:
            metrics.enrichment_mode_switches.labels(before, body.mode).inc()
        metrics.count_mode(body.mode)
        return json_response({"mode": body.mode, "source": source})
