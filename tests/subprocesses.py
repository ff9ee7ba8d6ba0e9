"""Shared plumbing for tests that start real programs: their log, read live, and their end."""

from __future__ import annotations

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
