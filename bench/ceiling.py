"""The ceiling: a bare ASGI app on Hypercorn's trio worker, with the service's Hypercorn config.

It reads the whole request body and answers 200 with a small constant JSON body, so what it
measures is Hypercorn (h11 + trio) alone. Run it as `python -m bench.ceiling --port N`; SIGTERM
or SIGINT stops it gracefully.

It imports only trio and Hypercorn (not the service's package, which pulls in Quart), so its
memory is that of the bare server. `config()` restates the service's Hypercorn settings (the
service's defaults: graceful 30 s, keep-alive 75 s); the runner checks before every bench that it
equals `alert_history.http.server.hypercorn_config()` attribute for attribute.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from functools import partial
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

BODY = b'{"status":"success","message":"Webhook processed successfully"}'
HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(BODY)).encode()),
]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
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
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


GRACEFUL_TIMEOUT = 30.0  # ServerSettings.graceful_timeout
KEEP_ALIVE_TIMEOUT = 75.0  # ServerSettings.keep_alive_timeout


def config(host: str, port: int) -> Config:
    """The same settings as alert_history.http.server.hypercorn_config with the defaults."""
    cfg = Config()
    cfg.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    cfg.graceful_timeout = GRACEFUL_TIMEOUT
    cfg.keep_alive_timeout = KEEP_ALIVE_TIMEOUT
    cfg.keep_alive_max_requests = 100_000
    cfg.include_server_header = False
    cfg.accesslog = None
    cfg.errorlog = logging.getLogger("hypercorn.error")
    return cfg


async def run(host: str, port: int) -> None:
    cfg = config(host, port)
    stop = trio.Event()

    async def stop_on_signal() -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for _ in signals:
                stop.set()
                return

    async with trio.open_nursery() as nursery:
        nursery.start_soon(stop_on_signal)
        await nursery.start(partial(serve, app, cfg, shutdown_trigger=stop.wait))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ceiling", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    trio.run(run, args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
