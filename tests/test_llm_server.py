"""The stand-in LLM server answers as told (so the client tests exercise real HTTP)."""

from __future__ import annotations

import httpx
import pytest
import trio

from alert_history.domain.llm_protocol import (
    LLMProtocolError,
    classification_request,
    parse_classification,
)
from tests.llm_server import Mode, running_llm_server

REQUEST = classification_request("gpt-4", {"alertname": "X", "labels": {}, "annotations": {}})


@pytest.mark.parametrize("mode", ["tool_calls", "function_call"])
async def test_good_answers_in_both_styles_parse(mode: Mode) -> None:
    async with running_llm_server(mode) as llm, httpx.AsyncClient(base_url=llm.url) as client:
        response = await client.post("/v1/chat/completions", json=REQUEST,
                                     headers={"x-litellm-api-key": "k"})  # fmt: skip
        assert response.status_code == 200
        assert parse_classification(response.content).severity == "critical"
        assert llm.requests[0].headers["x-litellm-api-key"] == "k"
        assert llm.requests[0].body["model"] == "gpt-4"


async def test_failure_modes_answer_as_told() -> None:
    async with running_llm_server("error500") as llm, httpx.AsyncClient(base_url=llm.url) as c:
        assert (await c.post("/v1/chat/completions", json=REQUEST)).status_code == 500
        llm.mode = "rate_limited"
        limited = await c.post("/v1/chat/completions", json=REQUEST)
        assert (limited.status_code, limited.headers["retry-after"]) == (429, "2")
        llm.mode = "malformed"
        with pytest.raises(LLMProtocolError):
            parse_classification((await c.post("/v1/chat/completions", json=REQUEST)).content)
        llm.mode = "hang"
        with trio.move_on_after(0.3) as hung:
            await c.post("/v1/chat/completions", json=REQUEST)
        assert hung.cancelled_caught
