"""Shared plumbing for tests that start real programs: their log, read live, and their end."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import trio


class ProcessLog:
    """A program's stderr, line by line; `settled` is set once `marker` appears or it exits."""

    def __init__(self, marker: str) -> None:
        self.marker = marker
        self.lines: list[str] = []
        self.ready = False
        self.closed = False
        self.settled = trio.Event()

    async def read(self, process: trio.Process) -> None:
        assert process.stderr is not None
        buffer = b""
        async for chunk in process.stderr:
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                text = line.decode(errors="replace")
                self.lines.append(text)
                if self.marker in text and not self.ready:
                    self.ready = True
                    self.settled.set()
        if buffer:
            self.lines.append(buffer.decode(errors="replace"))
        self.closed = True
        self.settled.set()


async def stop_process(process: trio.Process) -> None:
    """Kill and reap, even inside a cancelled scope."""
    with trio.CancelScope(shield=True):
        if process.returncode is None:
            process.kill()
        await process.wait()
        if process.stderr is not None:
            await process.stderr.aclose()


PORT_TAKEN = "address already in use"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@asynccontextmanager
async def running_program(
    name: str,
    argv: Callable[[int], list[str]],
    marker: str,
    *,
    start_timeout: float,
    error: type[Exception],
    attempts: int = 3,
) -> AsyncIterator[tuple[trio.Process, int, ProcessLog]]:
    """Run `argv(port)` on a free loopback port until the block ends; ready once `marker` logs.

    Retries on another port when the one chosen was taken meanwhile. stderr is drained for the
    whole block (a full pipe would stall the program). The block's own exception reaches the
    caller as itself, not wrapped in an exception group.
    """
    for attempt in range(1, attempts + 1):
        port = free_port()
        log = ProcessLog(marker)
        process = await trio.lowlevel.open_process(
            argv(port),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        failure: BaseException | None = None
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(log.read, process)
                with trio.move_on_after(start_timeout):
                    await log.settled.wait()
                if log.ready:
                    try:
                        yield process, port, log
                    except BaseException as exc:  # re-raised below, outside the nursery
                        failure = exc
                nursery.cancel_scope.cancel()
        finally:
            await stop_process(process)
        if failure is not None:
            raise failure
        if log.ready:
            return
        if attempt < attempts and any(PORT_TAKEN in line for line in log.lines):
            continue
        raise error(
            f"{name} {'exited' if log.closed else 'timed out'} before it was ready on "
            f"127.0.0.1:{port}:\n" + "\n".join(log.lines)
        )
    raise error(f"no free port after {attempts} attempts")
