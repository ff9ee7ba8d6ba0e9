"""The LLM client against a real local chat-completions server: retries, Retry-After, timeouts."""

from __future__ import annotations

import socket

import httpx
import pytest
import trio

from alert_history.domain.llm_protocol import LLMProtocolError
from alert_history.llm import LLMClient, LLMUnavailable, RetryPolicy
from tests.llm_server import LLMServer, running_llm_server

ALERT = {"alertname": "DiskFull", "status": "firing", "labels": {"severity": "warning"},
         "annotations": {"summary": "disk"}}  # fmt: skip
FAST = RetryPolicy(max_retries=2, initial=0.01, maximum=0.05, jitter=0.0)


def client(http: httpx.AsyncClient, url: str, *, timeout: float = 5.0) -> LLMClient:
    return LLMClient(http, base_url=url, api_key="sk-test", model="gpt-4", timeout=timeout,
                     retry=FAST)  # fmt: skip


@pytest.mark.parametrize("mode", ["tool_calls", "function_call"])
async def test_a_good_answer_is_parsed_and_the_key_sent_both_ways(mode: str) -> None:
    async with running_llm_server(mode) as llm, httpx.AsyncClient() as http:  # type: ignore[arg-type]
        answer = await client(http, llm.url).classify(ALERT)
        assert (answer.severity, answer.confidence) == ("critical", 0.9)
        (request,) = llm.requests
        assert request.path == "/v1/chat/completions"
        assert request.headers["x-litellm-api-key"] == "sk-test"
        assert request.headers["authorization"] == "Bearer sk-test"
        assert request.body["model"] == "gpt-4"


async def test_server_errors_are_retried_then_reported() -> None:
    async with running_llm_server("error500") as llm, httpx.AsyncClient() as http:
        with pytest.raises(LLMUnavailable) as info:
            await client(http, llm.url).classify(ALERT)
        assert info.value.kind == "status_5xx"
        assert len(llm.requests) == 3  # the call and two retries


async def flip_to_good_after_first_request(llm: LLMServer) -> None:
    await llm.request_seen.wait()
    llm.mode = "tool_calls"


async def test_rate_limiting_honours_retry_after() -> None:
    async with running_llm_server("rate_limited") as llm, httpx.AsyncClient() as http:
        llm.retry_after = "0.3"
        async with trio.open_nursery() as nursery:
            nursery.start_soon(flip_to_good_after_first_request, llm)
            started = trio.current_time()
            answer = await client(http, llm.url).classify(ALERT)
            waited = trio.current_time() - started
        assert answer.severity == "critical"
        assert len(llm.requests) == 2
        assert waited >= 0.3  # Retry-After, not the 10 ms backoff


async def test_a_hung_llm_ends_each_attempt_at_the_timeout() -> None:
    async with running_llm_server("hang") as llm, httpx.AsyncClient() as http:
        started = trio.current_time()
        with pytest.raises(LLMUnavailable) as info:
            await client(http, llm.url, timeout=0.2).classify(ALERT)
        elapsed = trio.current_time() - started
        assert info.value.kind == "timeout"
        assert len(llm.requests) == 3
        assert 0.6 <= elapsed < 3.0  # three attempts of 0.2 s plus short backoffs


@pytest.mark.parametrize(("mode", "error"), [("malformed", LLMProtocolError),
                                             ("unauthorized", LLMUnavailable)])  # fmt: skip
async def test_answers_a_retry_cannot_fix_are_not_retried(mode: str, error: type) -> None:
    async with running_llm_server(mode) as llm, httpx.AsyncClient() as http:  # type: ignore[arg-type]
        with pytest.raises(error):
            await client(http, llm.url).classify(ALERT)
        assert len(llm.requests) == 1


async def test_connection_refused_is_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        async with httpx.AsyncClient() as http:
            with pytest.raises(LLMUnavailable) as info:
                await client(http, f"http://127.0.0.1:{port}").classify(ALERT)
    assert info.value.kind == "connect"
