"""The LLM worker process: real processes, the stand-in LLM over real HTTP.

The worker answers like the in-process client (answers, each kind of error), ends with the
service's side, and when it dies the supervisor starts another one: the alerts whose calls it
held are classified by the next one, and the breaker never hears of it.
"""

from __future__ import annotations

import os
import signal

import httpx
import pytest
import trio
import trio.testing

from alert_history.domain.llm_protocol import LLMProtocolError
from alert_history.llm import (
    LLMUnavailable,
    LLMWorker,
    LLMWorkerExited,
    LLMWorkerLost,
    WorkerConfig,
)
from alert_history.llm.worker import MAX_FRAME, frame, frames
from tests.conftest import SettingsFactory
from tests.llm_server import LLMServer, running_llm_server
from tests.test_classification_api import classifying, metric, post_alerts

ALERT = {"alertname": "DiskFull", "status": "firing", "labels": {"severity": "warning"},
         "annotations": {"summary": "s"}}  # fmt: skip


def config(llm: LLMServer, **changes: object) -> WorkerConfig:
    base = WorkerConfig(
        base_url=llm.url, api_key="sk-worker", model="gpt-4", timeout=10, max_retries=0,
        concurrency=4, nice=5,
    )  # fmt: skip
    return WorkerConfig(**{**{f: getattr(base, f) for f in base.__struct_fields__}, **changes})  # type: ignore[arg-type]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_the_worker_answers_like_the_client_and_ends_with_its_caller() -> None:
    async with running_llm_server() as llm, trio.open_nursery() as nursery:
        worker = LLMWorker(config(llm))
        await nursery.start(worker.run)
        pid = worker.pid
        assert pid is not None and pid != os.getpid()
        with trio.fail_after(20):
            answer = await worker.classify(ALERT)
            assert (answer.severity, answer.confidence, answer.tags) == ("critical", 0.9, ["test"])
            sent = llm.requests[-1]
            assert sent.headers["authorization"] == "Bearer sk-worker"
            assert "DiskFull" in sent.body["messages"][1]["content"]
            # the worker runs at the configured niceness, above the service's
            assert os.getpriority(os.PRIO_PROCESS, pid) == min(
                19, os.getpriority(os.PRIO_PROCESS, 0) + 5
            )

            llm.mode = "error500"
            with pytest.raises(LLMUnavailable) as unavailable:
                await worker.classify(ALERT)
            assert unavailable.value.kind == "status_5xx"
            llm.mode = "rate_limited"
            with pytest.raises(LLMUnavailable) as limited:
                await worker.classify(ALERT)
            assert (limited.value.kind, limited.value.retry_after) == ("rate_limited", 2.0)
            llm.mode = "malformed"
            with pytest.raises(LLMProtocolError):
                await worker.classify(ALERT)
            # calls in flight together are each answered with their own answer
            llm.mode = "tool_calls"
            answers: list[str] = []

            async def one() -> None:
                answers.append((await worker.classify(ALERT)).severity)

            async with trio.open_nursery() as calls:
                for _ in range(8):
                    calls.start_soon(one)
            assert answers == ["critical"] * 8
        nursery.cancel_scope.cancel()
    assert worker.pid is None and not worker.running
    assert not alive(pid)  # reaped: the worker never outlives its caller


async def test_a_call_held_by_a_killed_worker_is_lost_not_failed() -> None:
    async with running_llm_server("hang") as llm, trio.open_nursery() as nursery:
        worker = LLMWorker(config(llm))

        async def run_once(task_status: trio.TaskStatus[None]) -> None:
            with pytest.raises(LLMWorkerExited, match="exited with code -9"):
                await worker.run(task_status=task_status)

        await nursery.start(run_once)
        assert worker.pid is not None
        lost: list[BaseException] = []

        async def call() -> None:
            try:
                await worker.classify(ALERT)
            except LLMWorkerLost as exc:
                lost.append(exc)

        with trio.fail_after(20):
            async with trio.open_nursery() as calls:
                calls.start_soon(call)
                while not llm.requests:
                    await llm.request_seen.wait()
                os.kill(worker.pid, signal.SIGKILL)
        assert len(lost) == 1 and not worker.running


@pytest.mark.slow
async def test_a_killed_worker_is_restarted_and_its_alerts_are_still_classified(
    make_settings: SettingsFactory,
) -> None:
    async with (
        running_llm_server("hang") as llm,
        classifying(make_settings, llm, LLM_POLL_INTERVAL="0.5") as (service, client, results),
    ):
        classification = service.classification
        assert classification is not None
        worker = classification.llm
        assert isinstance(worker, LLMWorker)
        first = worker.pid
        assert first is not None
        with trio.fail_after(20):
            await post_alerts(client, "k1", "k2")
            while len(llm.requests) < 2:  # both calls hang in the worker
                await llm.request_seen.wait()
        assert results.items == []
        llm.mode = "tool_calls"  # the next calls are answered
        os.kill(first, signal.SIGKILL)
        with trio.fail_after(30):
            await results.wait_for(lambda items: bool(results.of("k1") and results.of("k2")))
        assert [item.fallback for item in results.items] == [False, False]
        assert {item.fingerprint for item in results.items} == {"k1", "k2"}
        assert worker.starts == 2 and worker.pid not in (None, first)
        assert not alive(first)
        # the breaker was never told: a lost worker is not the LLM failing
        assert classification.breaker_view()["state"] == "closed"
        assert classification.counters.errors == 0
        assert metric(service, "classification_errors_total", error_type="worker_lost") == 2
        tree = (await client.get("/health/supervisor")).json()
        (pipeline,) = [c for c in tree["children"] if c["name"] == "pipeline"]
        (child,) = [c for c in pipeline["children"] if c["name"] == "llm-worker"]
        assert (child["state"], child["restarts"]) == ("running", 1)
        assert "exited with code -9" in child["last_error"]["message"]
        stats = (await client.get("/classification/stats")).json()
        assert stats["fallback_used"] == 0


async def test_no_worker_process_when_disabled(make_settings: SettingsFactory) -> None:
    async with (
        running_llm_server() as llm,
        classifying(make_settings, llm, LLM_WORKER="false") as (s, client, results),
    ):
        assert s.classification is not None and not isinstance(s.classification.llm, LLMWorker)
        await post_alerts(client, "w1")
        with trio.fail_after(20):
            await results.wait_for(lambda items: bool(results.of("w1")))
        assert not results.of("w1")[0].fallback
        tree = (await client.get("/health/supervisor")).json()
        (pipeline,) = [c for c in tree["children"] if c["name"] == "pipeline"]
        assert "llm-worker" not in [c["name"] for c in pipeline["children"]]
        assert isinstance(client, httpx.AsyncClient)


async def test_frames_are_read_whole_across_any_chunking() -> None:
    send, receive = trio.testing.memory_stream_one_way_pair()
    payloads = [b"", b"x", bytes(range(256)) * 300]
    wire = b"".join(frame(p) for p in payloads)
    read: list[bytes] = []

    async def reader() -> None:
        async for payload in frames(receive):
            read.append(payload)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        for start in range(0, len(wire), 7):  # frames split anywhere, headers included
            await send.send_all(wire[start : start + 7])
        await send.aclose()
    assert read == payloads


async def test_an_oversized_frame_is_refused() -> None:
    send, receive = trio.testing.memory_stream_one_way_pair()
    await send.send_all((MAX_FRAME + 1).to_bytes(4, "big"))
    with pytest.raises(ValueError, match="frame of"):
        async for _ in frames(receive):
            pass
