"""POST /webhook as a raw ASGI handler in front of the Quart app.

Quart's request machinery costs about as much CPU per request as Hypercorn itself (bench/), and
the webhook is the one hot path, so it is served here directly: same validation, same answers,
same request id, latency metric and drain behaviour as the Quart routes. Every other request,
and the lifespan protocol, goes to the Quart app.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

import msgspec
import trio
from hypercorn.typing import (
    ASGIFramework,
    ASGIReceiveCallable,
    ASGISendCallable,
    HTTPScope,
    Scope,
)

from alert_history.http.webhook import WebhookAnswer
from alert_history.logs import request_id, request_id_from
from alert_history.telemetry import Metrics

ASGIApp = ASGIFramework

Accept = Callable[[bytes, str | None], Awaitable[WebhookAnswer]]
BODY_TIMEOUT = 30.0

log = logging.getLogger("alert_history.http")
_encode = msgspec.json.Encoder().encode


class WebhookFastPath:
    """An ASGI app: POSTs to the paths of `routes` to their handler, everything else to `app`."""

    def __init__(
        self,
        app: ASGIApp,
        routes: Mapping[str, Accept],
        *,
        max_body_bytes: int,
        metrics: Metrics,
        draining: Callable[[], bool],
    ) -> None:
        self._app = app
        self._routes = routes
        self._max_body = max_body_bytes
        self._metrics = metrics
        self._draining = draining

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] != "http" or scope["path"] not in self._routes:
            await self._app(scope, receive, send)
        elif scope["method"] == "POST":
            await self._webhook(scope, receive, send, self._routes[scope["path"]])
        else:
            detail: dict[str, object] = {"detail": "Method Not Allowed: use POST"}
            await _respond(send, 405, detail, [(b"allow", b"POST")])

    async def _webhook(
        self,
        scope: HTTPScope,
        receive: ASGIReceiveCallable,
        send: ASGISendCallable,
        accept: Accept,
    ) -> None:
        started = trio.current_time()
        headers = _headers(scope)
        rid = request_id_from(headers.get("x-request-id"))
        token = request_id.set(rid)
        try:
            answer = await self._answer(headers, receive, accept)
            if answer is None:
                return  # the client went away
            extra = [(b"x-request-id", rid.encode())]
            if answer.retry_after is not None:
                extra.append((b"retry-after", str(answer.retry_after).encode()))
            if self._draining():
                extra.append((b"connection", b"close"))
            await _respond(send, answer.status, answer.body, extra)
        finally:
            self._metrics.request_latency.labels(scope["path"].rstrip("/")).observe(
                trio.current_time() - started
            )
            request_id.reset(token)

    async def _answer(
        self, headers: dict[str, str], receive: ASGIReceiveCallable, accept: Accept
    ) -> WebhookAnswer | None:
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self._max_body:
            return self._too_large()
        body = bytearray()
        with trio.move_on_after(BODY_TIMEOUT) as timeout:
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return None  # http.disconnect
                body += message["body"]
                if len(body) > self._max_body:
                    return self._too_large()
                if not message["more_body"]:
                    break
        if timeout.cancelled_caught:
            return WebhookAnswer(408, {"detail": "request body not received in time"})
        try:
            return await accept(bytes(body), headers.get("content-type"))
        except Exception:
            log.exception("webhook failed")
            return WebhookAnswer(500, {"detail": "internal error"})

    def _too_large(self) -> WebhookAnswer:
        self._metrics.webhook_errors.labels("too_large").inc()
        return WebhookAnswer(413, {"detail": f"request body is larger than {self._max_body} bytes"})


def _headers(scope: HTTPScope) -> dict[str, str]:
    wanted = (b"content-length", b"content-type", b"x-request-id")
    return {
        name.decode("latin-1"): value.decode("latin-1")
        for name, value in scope["headers"]
        if name in wanted  # ASGI header names are lowercase
    }


async def _respond(
    send: ASGISendCallable,
    status: int,
    payload: dict[str, object],
    extra: list[tuple[bytes, bytes]],
) -> None:
    body = _encode(payload)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
