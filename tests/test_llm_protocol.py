"""The LLM wire protocol and the rule-based fallback (B§7)."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alert_history.domain.llm_protocol import (
    LLMProtocolError,
    classification_request,
    fallback_classification,
    parse_classification,
)

ARGS = {"severity": "critical", "confidence": 0.92, "reasoning": "Disk full on the primary",
        "recommendations": ["Free space", "Check growth"], "tags": ["storage"]}  # fmt: skip


def answer(message: dict[str, object], **extra: object) -> bytes:
    return json.dumps({"choices": [{"message": message}], "model": "gpt-4o", **extra}).encode()


def test_request_asks_for_the_classify_alert_function() -> None:
    body = classification_request(
        "gpt-4", {"alertname": "DiskFull", "status": "firing",
                  "labels": {"namespace": "prod", "severity": "warning"}, "annotations": {}}
    )  # fmt: skip
    assert body["model"] == "gpt-4"
    assert body["tool_choice"]["function"]["name"] == "classify_alert"
    schema = body["tools"][0]["function"]["parameters"]
    assert schema["required"] == ["severity", "confidence", "reasoning", "recommendations"]
    assert "Name: DiskFull" in body["messages"][1]["content"]
    assert "Namespace: prod" in body["messages"][1]["content"]


@pytest.mark.parametrize(
    "message",
    [
        {"tool_calls": [{"type": "function", "function": {"name": "classify_alert",
                                                          "arguments": json.dumps(ARGS)}}]},
        {"function_call": {"name": "classify_alert", "arguments": json.dumps(ARGS)}},
        {"function_call": {"name": "classify_alert", "arguments": ARGS}},  # already an object
    ],
)  # fmt: skip
def test_both_tool_call_styles_are_read(message: dict[str, object]) -> None:
    parsed = parse_classification(answer(message, usage={"total_tokens": 321}))
    assert (parsed.severity, parsed.confidence, parsed.tags) == ("critical", 0.92, ["storage"])
    assert parsed.recommendations == ["Free space", "Check growth"]
    assert (parsed.model, parsed.usage) == ("gpt-4o", {"total_tokens": 321})


def test_answers_are_validated_and_clamped() -> None:
    args = {**ARGS, "severity": " Warning ", "confidence": 1.7, "reasoning": " ",
            "recommendations": [f"r{i}" for i in range(8)]}  # fmt: skip
    parsed = parse_classification(answer({"function_call": {"arguments": json.dumps(args)}}))
    assert (parsed.severity, parsed.confidence) == ("warning", 1.0)
    assert parsed.reasoning == "No reasoning provided"
    assert len(parsed.recommendations) == 5


@pytest.mark.parametrize(
    "body",
    [b"not json", b"{}", b'{"choices": []}', answer({"content": "I think it is critical"}),
     answer({"function_call": {"arguments": "{bad json"}}),
     answer({"function_call": {"arguments": json.dumps({**ARGS, "severity": "apocalyptic"})}}),
     answer({"function_call": {"arguments": json.dumps({"severity": "info"})}})],
)  # fmt: skip
def test_unusable_answers_raise_a_protocol_error(body: bytes) -> None:
    with pytest.raises(LLMProtocolError):
        parse_classification(body)


@given(st.binary(max_size=300))
def test_any_bytes_parse_or_raise_a_protocol_error(body: bytes) -> None:
    with contextlib.suppress(LLMProtocolError):
        parse_classification(body)


@pytest.mark.parametrize(
    ("alertname", "severity_label", "expected"),
    [("HighCPU", "crit", ("critical", 0.3)), ("HighCPU", "warn", ("warning", 0.3)),
     ("HighCPU", "debug", ("info", 0.3)), ("HighCPU", "trace", ("noise", 0.3)),
     ("HighCPU", "weird", ("warning", 0.1)), ("HighCPU", "", ("warning", 0.1)),
     ("NodeDown", "info", ("critical", 0.4)), ("JobFailed", "", ("critical", 0.4))],
)  # fmt: skip
def test_fallback_follows_the_legacy_rules(
    alertname: str, severity_label: str, expected: tuple[str, float]
) -> None:
    result = fallback_classification("fp", alertname, {"severity": severity_label}, "timeout", 7)
    assert (result.severity, result.confidence) == expected
    assert result.metadata == {"fallback": True, "error": "timeout", "method": "label_analysis"}
    assert result.reasoning == "Fallback classification due to LLM error: timeout"
    assert (result.source, result.created_at, len(result.recommendations)) == ("fallback", 7, 3)
