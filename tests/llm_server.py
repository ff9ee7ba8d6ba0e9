"""A real OpenAI-compatible chat-completions server on 127.0.0.1 for tests of the LLM client.

Each request is answered by the current `mode` of its `LLMServer`: a good answer in either
tool-call style, a 500, a 429 with Retry-After, a hang, or malformed JSON. Every request is
recorded (headers and body) so tests can assert what the client sent.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope

Mode = Literal[
    "tool_calls", "function_call", "error500", "rate_limited", "hang", "malformed", "unauthorized"
]


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class LLMServer:
    mode: Mode = "tool_calls"
    severity: str = "critical"
    retry_after: str = "2"
    delay: float = 0.0  # seconds before answering (real time)
    requests: list[Recorded] = field(default_factory=list)
    url: str = ""
    request_seen: trio.Event = field(default_factory=trio.Event)

    def answer_arguments(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "confidence": 0.9,
            "reasoning": "The test server says so",
            "recommendations": ["Check the runbook"],
            "tags": ["test"],
        }

    async def app(self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return
            body += message["body"]
            if not message["more_body"]:
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        try:
            parsed = json.loads(body or b"{}")
        except ValueError:
            parsed = {"_raw": body.decode(errors="replace")}
        self.requests.append(Recorded(scope["path"], headers, parsed))
        self.request_seen.set()
        self.request_seen = trio.Event()
        if self.delay:
            await trio.sleep(self.delay)
        status, payload, extra = self._response(parsed)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), *extra],
            }
        )
        await send({"type": "http.response.body", "body": payload, "more_body": False})

    def _response(self, request: dict[str, Any]) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        if self.mode == "hang":
            return 0, b"", []  # never reached: see _hang
        if self.mode == "error500":
            return 500, b'{"error": {"message": "upstream exploded"}}', []
        if self.mode == "rate_limited":
            return (
                429,
                b'{"error": {"message": "slow down"}}',
                [(b"retry-after", self.retry_after.encode())],
            )
        if self.mode == "unauthorized":
            return 401, b'{"error": {"message": "bad key"}}', []
        if self.mode == "malformed":
            return 200, b'{"choices": [{"message": {"function_call": {"arguments": "{nope', []
        arguments = json.dumps(self.answer_arguments())
        if self.mode == "function_call":
            message: dict[str, Any] = {
                "role": "assistant",
                "function_call": {"name": "classify_alert", "arguments": arguments},
            }
        else:
            message = {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "classify_alert", "arguments": arguments},
                    }
                ],
            }
        answer = {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "model": request.get("model", "test-model"),
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 120, "completion_tokens": 40, "total_tokens": 160},
        }
        return 200, json.dumps(answer).encode(), []


async def _app(server: LLMServer, scope: Scope, receive: ASGIReceiveCallable,
               send: ASGISendCallable) -> None:  # fmt: skip
    if scope["type"] == "http" and scope["path"] == "/stats":  # not recorded: the count so far
        body = json.dumps({"requests": len(server.requests), "mode": server.mode}).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})  # fmt: skip
        await send({"type": "http.response.body", "body": body, "more_body": False})
        return
    if scope["type"] == "http" and server.mode == "hang":
        server.requests.append(Recorded(scope["path"], {}, {}))
        server.request_seen.set()
        server.request_seen = trio.Event()
        await trio.sleep_forever()
    await server.app(scope, receive, send)


def asgi_app(server: LLMServer) -> Any:
    """The server's ASGI app, for httpx.ASGITransport (no sockets: virtual-clock tests)."""
    return partial(_app, server)


@asynccontextmanager
async def running_llm_server(
    mode: Mode = "tool_calls", *, port: int = 0, delay: float = 0.0
) -> AsyncIterator[LLMServer]:
    """Serve on 127.0.0.1 (a free port unless `port`) until the block ends."""
    server = LLMServer(mode=mode, delay=delay)
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("tests.llm_server")
    config.graceful_timeout = 0.1
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(partial(serve, partial(_app, server), config))
        server.url = urls[0]
        try:
            yield server
        finally:
            nursery.cancel_scope.cancel()


async def _serve_forever(mode: Mode, port: int, delay: float) -> None:
    async with running_llm_server(mode, port=port, delay=delay) as server:
        print(server.url, flush=True)  # the parent reads the URL: the server is listening
        await trio.sleep_forever()


def main() -> None:
    """`python -m tests.llm_server --port P [--mode M] [--delay S]`: a stand-in LLM process."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--mode", default="tool_calls")
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    trio.run(_serve_forever, args.mode, args.port, args.delay)  # ends on SIGTERM (killed)


if __name__ == "__main__":
    main()
