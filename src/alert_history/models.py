"""Typed values that cross actor and storage boundaries (frozen msgspec Structs)."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

Status = Literal["firing", "resolved"]


class ParsedAlert(msgspec.Struct, frozen=True, kw_only=True):
    """One alert of an accepted payload, validated, timestamps in ns (0 = none)."""

    status: Status
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: int
    ends_at: int
    generator_url: str
    fingerprint: str | None
    extra: dict[str, Any] | None = None  # a format's own fields (Grafana's panelURL, values...)


class WebhookBatch(msgspec.Struct, frozen=True, kw_only=True):
    """A validated notification: the envelope facts and its alerts."""

    source: str
    receiver: str
    group_key: str
    status: Status
    truncated_alerts: int
    alerts: list[ParsedAlert]
    extra: dict[str, Any] | None = None  # a format's own envelope fields (Grafana's title...)


FilterAction = Literal["allow", "deny", "delay"]


class FilterDecision(msgspec.Struct, frozen=True, kw_only=True):
    """What the global filter rules said about an event when it was stored (legacy B§8).

    `rule` is None when no rule matched (allowed by default).
    """

    action: FilterAction
    rule: str | None
    reason: str


class AlertEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One alert state as stored: (fingerprint, starts_at, status, ends_at) is its identity."""

    fingerprint: str
    status: Status
    starts_at: int
    ends_at: int
    alertname: str
    namespace: str | None
    severity: str | None
    labels: dict[str, str]
    annotations: dict[str, str]
    generator_url: str
    receiver: str
    group_key: str
    source: str
    received_at: int
    fingerprint_computed: bool = False
    notify_count: int = 1
    # Last notification time when it differs from `received_at` (imports of older history);
    # None: `received_at` is both the first and the last time seen.
    last_seen: int | None = None
    # Set by the router before the event is stored; None: not decided (imports).
    filter_decision: FilterDecision | None = None
    # What the sender's format adds beyond Alertmanager's fields, kept as sent
    extra: dict[str, Any] | None = None


Severity = Literal["critical", "warning", "info", "noise"]
ClassificationSource = Literal["llm", "fallback", "import"]


class Classification(msgspec.Struct, frozen=True, kw_only=True):
    """What the classifier (or an import from the legacy service) said about one fingerprint.

    `severity` is one of `Severity` when produced here; imports keep any legacy string.
    """

    fingerprint: str
    severity: str
    confidence: float  # 0..1
    reasoning: str = ""
    recommendations: list[str] = msgspec.field(default_factory=list)
    processing_time: float | None = None  # seconds
    metadata: dict[str, object] = msgspec.field(default_factory=dict)
    model: str | None = None
    source: str  # a ClassificationSource
    created_at: int  # ns since the epoch
    prompt_version: str | None = None
    tokens: int | None = None  # total tokens the LLM used for it

    @property
    def fallback(self) -> bool:
        """Whether this is the rule-based answer given while the LLM was unavailable."""
        return self.source == "fallback" or self.metadata.get("fallback") is True


class StoredEvent(msgspec.Struct, frozen=True, kw_only=True):
    """An event row read back from storage."""

    id: int
    fingerprint: str
    status: Status
    starts_at: int
    ends_at: int
    alertname: str
    namespace: str | None
    severity: str | None
    labels: dict[str, str]
    annotations: dict[str, str]
    generator_url: str
    receiver: str
    source: str
    first_seen: int
    last_seen: int
    notify_count: int
    filter_decision: FilterDecision | None = None
    extra: dict[str, Any] | None = None


class WriteOutcome(msgspec.Struct, frozen=True):
    """What one group commit did: new states stored, repeats counted."""

    inserted: int
    repeated: int


class CurrentState(msgspec.Struct, frozen=True, kw_only=True):
    """The latest state of one fingerprint."""

    fingerprint: str
    status: Status
    starts_at: int
    ends_at: int
    alertname: str
    namespace: str | None
    severity: str | None
    updated_at: int


class HistoryQuery(msgspec.Struct, frozen=True, kw_only=True):
    """Filters of GET /history; times in ns; `before_id` is the keyset cursor."""

    alertname: str | None = None
    status: Status | None = None
    fingerprint: str | None = None
    namespace: str | None = None
    severity: str | None = None
    received_since: int | None = None
    received_until: int | None = None
    starts_from: int | None = None
    starts_to: int | None = None
    label_matchers: tuple[tuple[str, str, str], ...] = ()  # (name, op, value), all must hold
    filter_action: FilterAction | None = None  # the recorded decision's action
    before_id: int | None = None
    offset: int = 0
    limit: int = 100
    # counting every match of a broad query over millions of rows costs more than the page
    count_limit: int = 10_000


class HistoryPage(msgspec.Struct, frozen=True):
    events: list[StoredEvent]
    total: int  # exact up to the query's count_limit
    next_before_id: int | None
    total_capped: bool = False  # more than `total` rows match
