"""The LLM calls in a worker process of their own, so the service's process stays free for webhooks.

Each classification's HTTP exchange with the LLM proxy (httpx, TLS, JSON encoding and the
tool-call parsing) costs CPU; in the service's process it competed with webhooks for the GIL
and the event loop. Here it runs in a child process (`python -m alert_history.llm._process`),
at a lower CPU priority (`LLM_WORKER_NICE`), so the kernel prefers the service when the cores
are busy. The service keeps everything else: the breaker, the limiter, the timeout, leases,
the cache and storage writes.

- `LLMWorker` (service side) quacks like `LLMClient` (`model`, `classify`). Its `run` is a
  supervised child: it starts the process, hands it the settings on its stdin (the API key
  never appears in argv or the environment), and relays answers until the process ends. An
  unexpected exit raises `LLMWorkerExited`, so the supervisor sees it and restarts it (with its
  intensity limit and backoff). Calls in flight on a process that died raise `LLMWorkerLost`:
  the classifier leaves their alerts pending, and the poller hands them to the next process
  (storage is the queue: nothing is lost). A call made while no process runs waits for one,
  within the caller's timeout.
- The worker process runs `LLMClient` (retries, `Retry-After`, per-attempt timeouts) on trio
  and answers requests concurrently; it ends when its stdin closes (the service stopped or
  died), so it never outlives the service.

Frames both ways: a 4-byte big-endian length, then a msgpack message.
"""

from __future__ import annotations

import itertools
import logging
import os
import signal
import struct
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from typing import Any

import msgspec
import trio

from alert_history.domain.llm_protocol import LLMProtocolError, ParsedAnswer
from alert_history.errors import AlertHistoryError
from alert_history.llm.client import LLMConfig, LLMUnavailable, open_llm_client

log = logging.getLogger("alert_history.llm.worker")

_HEADER = struct.Struct(">I")
MAX_FRAME = 4 << 20  # bytes; an answer is at most 1 MiB (MAX_ANSWER_BYTES)


class WorkerConfig(LLMConfig, frozen=True, kw_only=True):
    """What the worker process is told once, on its stdin, before any request."""

    nice: int = 0


class Request(msgspec.Struct, frozen=True):
    id: int
    alert: dict[str, Any]


class Reply(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    answer: ParsedAnswer | None = None
    error: str = ""
    kind: str = ""  # LLMUnavailable's kind, or "malformed" (LLMProtocolError)
    retry_after: float | None = None


_encode = msgspec.msgpack.Encoder().encode
_config = msgspec.msgpack.Decoder(WorkerConfig)
_request = msgspec.msgpack.Decoder(Request)
_reply = msgspec.msgpack.Decoder(Reply)
_READY = b"ready"


class LLMWorkerLost(AlertHistoryError):
    """The worker process holding this call ended before answering (the call was not lost
    by the LLM; it may be made again)."""


class LLMWorkerExited(AlertHistoryError):
    """The worker process ended on its own; raised by `LLMWorker.run` so it is restarted."""


def frame(payload: bytes) -> bytes:
    return _HEADER.pack(len(payload)) + payload


async def frames(stream: trio.abc.ReceiveStream) -> AsyncIterator[bytes]:
    """The frames read from `stream` until it ends (a partial frame at the end is dropped)."""
    buffer = bytearray()
    while True:
        chunk = await stream.receive_some(1 << 16)
        if not chunk:
            return
        buffer += chunk
        while len(buffer) >= _HEADER.size:
            (size,) = _HEADER.unpack_from(buffer)
            if size > MAX_FRAME:
                raise ValueError(f"frame of {size} bytes")
            end = _HEADER.size + size
            if len(buffer) < end:
                break
            yield bytes(buffer[_HEADER.size : end])
            del buffer[:end]


class _Call:
    __slots__ = ("done", "reply")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.reply: Reply | None = None  # None once done: the process ended


class _Connection:
    """One running worker process: its stdin and the calls waiting for its answers."""

    def __init__(self, stdin: trio.abc.SendStream) -> None:
        self.stdin = stdin
        self.send_lock = trio.StrictFIFOLock()
        self.calls: dict[int, _Call] = {}

    def answer(self, reply: Reply) -> None:
        call = self.calls.pop(reply.id, None)
        if call is not None:  # else: its caller gave up (timeout, cancel)
            call.reply = reply
            call.done.set()

    def lose_all(self) -> None:
        calls, self.calls = self.calls, {}
        for call in calls.values():
            call.done.set()


class LLMWorker:
    """The service's side of the LLM worker process (see the module docstring)."""

    def __init__(self, config: WorkerConfig, *, python: str = sys.executable) -> None:
        self.config = config
        self.model = config.model
        self._python = python
        self._conn: _Connection | None = None
        self._changed = trio.Event()
        self._ids = itertools.count()
        self.starts = 0  # processes started so far
        self.pid: int | None = None  # of the running process

    @property
    def running(self) -> bool:
        return self._conn is not None

    async def classify(self, alert: Mapping[str, Any]) -> ParsedAnswer:
        """Like `LLMClient.classify`, in the worker process; waits for one to run."""
        while self._conn is None:
            await self._changed.wait()
        conn = self._conn
        call_id = next(self._ids)
        call = conn.calls[call_id] = _Call()
        try:
            payload = frame(_encode(Request(call_id, dict(alert))))
            async with conn.send_lock:
                await conn.stdin.send_all(payload)
            await call.done.wait()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the process is gone: lost, below
        finally:
            conn.calls.pop(call_id, None)
        reply = call.reply
        if reply is None:
            raise LLMWorkerLost("the LLM worker process ended during the call")
        if reply.answer is not None:
            return reply.answer
        if reply.kind == "malformed":
            raise LLMProtocolError(reply.error)
        raise LLMUnavailable(reply.error, kind=reply.kind, retry_after=reply.retry_after)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """One worker process, from its start until it ends (raise) or this is cancelled."""
        process = await trio.lowlevel.open_process(
            [self._python, "-m", "alert_history.llm._process"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert process.stdin is not None and process.stdout is not None
        self.starts += 1
        conn = _Connection(process.stdin)
        try:
            await process.stdin.send_all(frame(_encode(self.config)))
            replies = frames(process.stdout)
            with trio.fail_after(30):
                ready = await replies.__anext__()
            if ready != _READY:
                raise LLMWorkerExited(f"the LLM worker said {ready[:40]!r}, not ready")
            self.pid = process.pid
            self._set(conn)
            log.info("llm worker running", extra={"pid": process.pid})
            task_status.started()
            async for payload in replies:
                conn.answer(_reply.decode(payload))
            code = await process.wait()
            raise LLMWorkerExited(f"the LLM worker process exited with code {code}")
        except StopAsyncIteration:
            code = await process.wait()
            raise LLMWorkerExited(f"the LLM worker process exited with code {code}") from None
        finally:
            if self._conn is conn:
                self._set(None)
            self.pid = None
            conn.lose_all()
            with trio.move_on_after(2) as cleanup:
                cleanup.shield = True
                await process.stdin.aclose()  # the worker ends when its stdin closes
                await process.wait()
            if process.returncode is None:
                process.kill()
                with trio.move_on_after(2) as reap:
                    reap.shield = True
                    await process.wait()

    def _set(self, conn: _Connection | None) -> None:
        self._conn = conn
        self._changed.set()
        self._changed = trio.Event()


# -- the worker process ---------------------------------------------------------------------


async def _serve(stdin: trio.abc.ReceiveStream, stdout: trio.abc.SendStream) -> None:
    requests = frames(stdin)
    try:
        config = _config.decode(await requests.__anext__())
    except StopAsyncIteration:
        return
    if config.nice:
        os.nice(config.nice)
    send_lock = trio.StrictFIFOLock()

    async def send(reply: Reply) -> None:
        async with send_lock:
            await stdout.send_all(frame(_encode(reply)))

    http, client = open_llm_client(config)
    async with http:

        async def answer(request: Request) -> None:
            reply = Reply(
                id=request.id, error=f"no classification within {config.timeout} s", kind="timeout"
            )
            with trio.move_on_after(config.timeout):
                try:
                    reply = Reply(id=request.id, answer=await client.classify(request.alert))
                except LLMUnavailable as exc:
                    reply = Reply(
                        id=request.id, error=str(exc), kind=exc.kind, retry_after=exc.retry_after
                    )
                except LLMProtocolError as exc:
                    reply = Reply(id=request.id, error=str(exc), kind="malformed")
            await send(reply)

        await stdout.send_all(frame(_READY))
        async with trio.open_nursery() as nursery:
            async for payload in requests:
                nursery.start_soon(answer, _request.decode(payload))
            nursery.cancel_scope.cancel()  # stdin closed: the service is gone


def main() -> None:
    # a Ctrl-C reaches the whole process group: the service stops this one by closing stdin
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stdin = trio.lowlevel.FdStream(os.dup(0))
    stdout = trio.lowlevel.FdStream(os.dup(1))
    os.dup2(2, 1)  # a stray print goes to stderr, not into the frames
    trio.run(_serve, stdin, stdout)
