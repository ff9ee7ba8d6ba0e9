"""The LLM proxy's wire protocol (OpenAI-compatible chat completions) and the fallback rules.

Pure: `classification_request` builds the body the legacy service sent (B§7: the
`classify_alert` function schema), `parse_classification` reads an answer in either tool-call
style (`tool_calls` or the older `function_call`), and `fallback_classification` is the
rule-based answer used while the LLM is unavailable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from alert_history.models import Classification

SEVERITIES = ("critical", "warning", "info", "noise")
PROMPT_VERSION = "v1"
MAX_RECOMMENDATIONS = 5

SYSTEM_PROMPT = (
    "You are an SRE assistant classifying Prometheus alerts by their real severity. "
    "CRITICAL: user-facing outage or data loss, act now. WARNING: degradation that needs "
    "attention soon. INFO: informational, no action needed. NOISE: flapping, misconfigured or "
    "not actionable. Weigh impact and urgency, give a confidence between 0 and 1, a short "
    "reasoning and concrete recommendations for the on-call engineer."
)

CLASSIFY_FUNCTION: dict[str, Any] = {
    "name": "classify_alert",
    "description": "Classify an alert and recommend actions",
    "parameters": {
        "type": "object",
        "properties": {
            "severity": {"type": "string", "enum": list(SEVERITIES)},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "reasoning": {"type": "string"},
            "recommendations": {"type": "array", "items": {"type": "string"}},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["severity", "confidence", "reasoning", "recommendations"],
    },
}

_FALLBACK_RECOMMENDATIONS = [
    "Review LLM service connectivity",
    "Check alert labeling for better classification",
    "Consider manual review of this alert",
]
_SEVERITY_ALIASES = {
    "crit": "critical", "critical": "critical", "error": "critical", "err": "critical",
    "warn": "warning", "warning": "warning",
    "info": "info", "information": "info", "inf": "info", "debug": "info",
    "trace": "noise", "noise": "noise",
}  # fmt: skip
_CRITICAL_WORDS = ("down", "dead", "failed", "error", "critical", "outage")


class LLMProtocolError(ValueError):
    """The answer is not a usable classification."""


class _Arguments(msgspec.Struct):
    severity: str
    confidence: float
    reasoning: str = ""
    recommendations: list[str] = []
    tags: list[str] = []


class ParsedAnswer(msgspec.Struct, frozen=True):
    severity: str
    confidence: float
    reasoning: str
    recommendations: list[str]
    tags: list[str]
    model: str | None
    usage: dict[str, Any]


_arguments = msgspec.json.Decoder(_Arguments)
_any = msgspec.json.Decoder()


def classification_request(model: str, alert: Mapping[str, Any]) -> dict[str, Any]:
    """The chat-completions body for one alert (`alertname, status, labels, annotations`)."""
    labels = alert.get("labels", {})
    user = (
        f"Name: {alert.get('alertname', '')}\nStatus: {alert.get('status', '')}\n"
        f"Namespace: {labels.get('namespace', '')}\n"
        f"Current Severity: {labels.get('severity', '')}\n"
        f"Labels: {msgspec.json.encode(labels).decode()}\n"
        f"Annotations: {msgspec.json.encode(alert.get('annotations', {})).decode()}\n"
        "Please classify this alert and provide recommendations."
    )
    return {
        "model": model,
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": user},
        ],
        "tools": [{"type": "function", "function": CLASSIFY_FUNCTION}],
        "tool_choice": {"type": "function", "function": {"name": "classify_alert"}},
        "temperature": 0.1,
        "max_tokens": 1000,
    }


def parse_classification(body: bytes) -> ParsedAnswer:
    """Read `choices[0].message` in either tool-call style; raise LLMProtocolError otherwise."""
    try:
        answer = _any.decode(body)
        message = answer["choices"][0]["message"]
        calls = message.get("tool_calls") or []
        if calls:
            raw = calls[0]["function"]["arguments"]
        elif message.get("function_call"):
            raw = message["function_call"]["arguments"]
        else:
            raise LLMProtocolError("the answer holds no classify_alert call")
        args = _arguments.decode(raw.encode() if isinstance(raw, str) else msgspec.json.encode(raw))
    except LLMProtocolError:
        raise
    except (msgspec.DecodeError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise LLMProtocolError(f"malformed answer: {exc}") from None
    severity = args.severity.strip().lower()
    if severity not in SEVERITIES:
        raise LLMProtocolError(f"unknown severity {args.severity[:32]!r}")
    usage = answer.get("usage") if isinstance(answer.get("usage"), dict) else {}
    model = answer.get("model") if isinstance(answer.get("model"), str) else None
    return ParsedAnswer(
        severity=severity,
        confidence=min(1.0, max(0.0, float(args.confidence))),
        reasoning=args.reasoning.strip() or "No reasoning provided",
        recommendations=[r for r in args.recommendations if r.strip()][:MAX_RECOMMENDATIONS],
        tags=args.tags,
        model=model,
        usage=usage,
    )


def fallback_classification(
    fingerprint: str, alertname: str, labels: Mapping[str, str], error: str, now: int
) -> Classification:
    """B§7's rule-based classification, marked `metadata.fallback = true`."""
    severity = _SEVERITY_ALIASES.get(labels.get("severity", "").strip().lower())
    confidence = 0.3 if severity else 0.1
    if any(word in alertname.lower() for word in _CRITICAL_WORDS):
        severity, confidence = "critical", 0.4
    return Classification(
        fingerprint=fingerprint,
        severity=severity or "warning",
        confidence=confidence,
        reasoning=f"Fallback classification due to LLM error: {error}",
        recommendations=list(_FALLBACK_RECOMMENDATIONS),
        metadata={"fallback": True, "error": error, "method": "label_analysis"},
        model=None,
        source="fallback",
        created_at=now,
    )
