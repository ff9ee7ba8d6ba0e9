"""The http actor: Hypercorn's trio server around the Quart app, stopped by an event."""

from __future__ import annotations

import logging
from functools import partial

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from alert_history.http.fastpath import ASGIApp


def hypercorn_config(host: str, port: int, *, graceful_timeout: float, keep_alive: float) -> Config:
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.graceful_timeout = graceful_timeout
    config.keep_alive_timeout = keep_alive
    config.keep_alive_max_requests = 100_000
    config.include_server_header = False
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    return config


async def serve_http(
    app: ASGIApp,
    config: Config,
    *,
    shutdown: trio.Event,
    bound: list[str],
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until `shutdown` is set, then finish in-flight requests (graceful_timeout) and return.

    The bound URLs (port 0 resolved) are written into `bound` before `started()`.
    """
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(partial(serve, app, config, shutdown_trigger=shutdown.wait))
        bound[:] = list(urls)
        task_status.started()
