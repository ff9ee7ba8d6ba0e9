"""Decide whether an alert goes to a publishing target: the legacy filter rules (B§8).

A rule has an action (allow, deny, delay), conditions that must all hold (no conditions: always
matches), a priority (lower first) and an optional target. `decide` never raises: a rule that
cannot be evaluated is skipped and named in the decision (fail open). `parse_rule` validates rules
coming from the API, storage or Secrets, and `rule_to_dict` is its inverse.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import re2

Action = Literal["allow", "deny", "delay"]
ACTIONS: frozenset[str] = frozenset({"allow", "deny", "delay"})
CONDITION_KEYS: frozenset[str] = frozenset(
    {
        "llm_severity",
        "llm_confidence_below",
        "llm_confidence_above",
        "has_llm_classification",
        "namespace",
        "namespace_pattern",
        "alert_name",
        "alert_name_pattern",
        "label_exists",
        "label_equals",
        "status",
    }
)
STATUSES: frozenset[str] = frozenset({"firing", "resolved"})
DEFAULT_PRIORITY = 100
MIN_PRIORITY, MAX_PRIORITY = 1, 1000
DEFAULT_DELAY_SECONDS = 300
MAX_DELAY_SECONDS = 86_400
MAX_PATTERN_LENGTH = 512
MAX_NAME_LENGTH = 255
_FIELDS = frozenset(
    {"name", "action", "conditions", "priority", "enabled", "target_name", "delay_seconds"}
)


class RuleError(ValueError):
    """A rule is invalid; `field` names the offending part, e.g. `conditions.namespace_pattern`."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class FilterRule:
    """One rule; `target_name` None makes it global. Build it with `parse_rule` to validate.

    `conditions` is shared, not copied: treat it as read-only. `delay_seconds` is set only for
    the delay action.
    """

    name: str
    action: Action
    conditions: Mapping[str, object] = field(default_factory=dict)
    priority: int = DEFAULT_PRIORITY
    enabled: bool = True
    target_name: str | None = None
    delay_seconds: int | None = None


@dataclass(frozen=True, slots=True)
class FilterInput:
    """What the rules see of one alert; the LLM fields are None when it is not classified."""

    alertname: str
    namespace: str | None
    status: str
    labels: Mapping[str, str] = field(default_factory=dict)
    llm_severity: str | None = None
    llm_confidence: float | None = None

    @property
    def classified(self) -> bool:
        """Whether an LLM classification is known (`has_llm_classification`)."""
        return self.llm_severity is not None or self.llm_confidence is not None


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome: `rule` is None for the default allow; `skipped` lists unevaluable rules."""

    action: Action
    rule: str | None
    reason: str
    skipped: tuple[str, ...] = ()
    delay_seconds: int | None = None


#: The legacy global rules (B§8), in priority order. `min_confidence_threshold` is shadowed by
#: `block_low_confidence` while both are enabled; the legacy shipped them so.
DEFAULT_RULES: tuple[FilterRule, ...] = (
    FilterRule("allow_critical_alerts", "allow", {"llm_severity": "critical"}, 1),
    FilterRule(
        "high_confidence_only",
        "allow",
        {"llm_confidence_above": 0.7, "has_llm_classification": True},
        5,
        enabled=False,
    ),
    FilterRule("block_false_positives", "deny", {"llm_severity": "false_positive"}, 8),
    FilterRule("block_noise_alerts", "deny", {"llm_severity": "noise"}, 10),
    FilterRule(
        "block_low_confidence",
        "deny",
        {"llm_confidence_below": 0.5, "has_llm_classification": True},
        15,
    ),
    FilterRule(
        "min_confidence_threshold",
        "deny",
        {"llm_confidence_below": 0.3, "has_llm_classification": True},
        20,
    ),
    FilterRule(
        "block_test_namespaces",
        "deny",
        {"namespace_pattern": r".*test.*|.*dev.*|.*staging.*"},
        30,
        enabled=False,
    ),
)


# --- evaluation ---------------------------------------------------------------------------------


def decide(rules: Iterable[FilterRule], alert: FilterInput, target: str | None) -> Decision:
    """Return what the enabled rules say about publishing `alert` to `target`.

    Two layers, as in the legacy `should_publish`: first the global rules, then the rules of
    `target` (rules of other targets are ignored; `target` None means global rules only). Within
    a layer rules run by priority ascending, ties by name, and the first match decides that layer.
    A global deny is final. Otherwise a matching target rule decides (it is more specific), else
    the global match, else allow. A rule whose action or conditions `parse_rule` would reject is
    skipped; `skipped` names those met before the decision, in evaluation order.
    """
    enabled = [rule for rule in rules if rule.enabled is True]
    skipped: list[str] = []
    found = _first_match(_layer(enabled, None), alert, skipped)
    if found is not None and found.action == "deny":
        return _decision(found, "global", skipped)
    if target is not None:
        specific = _first_match(_layer(enabled, target), alert, skipped)
        if specific is not None:
            return _decision(specific, f"target {target!r}", skipped)
    if found is not None:
        return _decision(found, "global", skipped)
    return Decision("allow", None, "no rule matched: allowed by default", tuple(skipped))


def _layer(rules: list[FilterRule], target: str | None) -> list[FilterRule]:
    chosen = [rule for rule in rules if rule.target_name == target]
    chosen.sort(key=lambda rule: (rule.priority, rule.name))
    return chosen


def _first_match(
    rules: list[FilterRule], alert: FilterInput, skipped: list[str]
) -> FilterRule | None:
    for rule in rules:
        try:
            _check_action(rule.action)
            _check_conditions(rule.conditions)
        except RuleError:
            skipped.append(rule.name)
            continue
        if all(_holds(key, value, alert) for key, value in rule.conditions.items()):
            return rule
    return None


def _decision(rule: FilterRule, scope: str, skipped: list[str]) -> Decision:
    delay: int | None = None
    if rule.action == "delay":
        valid = isinstance(rule.delay_seconds, int) and rule.delay_seconds > 0
        delay = rule.delay_seconds if valid else DEFAULT_DELAY_SECONDS
    reason = f"{rule.action} by {scope} rule {rule.name!r} (priority {rule.priority})"
    return Decision(rule.action, rule.name, reason, tuple(skipped), delay)


def _holds(key: str, value: object, alert: FilterInput) -> bool:
    """Evaluate one condition already checked by `_check_condition`."""
    match key:
        case "llm_severity":
            severity = alert.llm_severity
            return severity is not None and severity.lower() == cast(str, value).lower()
        case "llm_confidence_below":
            confidence = alert.llm_confidence
            return confidence is not None and confidence < cast(float, value)
        case "llm_confidence_above":
            confidence = alert.llm_confidence
            return confidence is not None and confidence > cast(float, value)
        case "has_llm_classification":
            return alert.classified == value
        case "namespace":
            return alert.namespace == value
        case "namespace_pattern":
            namespace = alert.namespace
            return bool(namespace) and _pattern(cast(str, value)).match(namespace) is not None
        case "alert_name":
            return alert.alertname == value
        case "alert_name_pattern":
            return _pattern(cast(str, value)).match(alert.alertname) is not None
        case "label_exists":
            return value in alert.labels
        case "label_equals":
            wanted = cast(Mapping[str, str], value)
            return all(alert.labels.get(name) == label for name, label in wanted.items())
        case _:  # "status"; `_check_condition` admits no other key
            return alert.status == value


# --- validation ---------------------------------------------------------------------------------


def parse_rule(data: Mapping[str, object]) -> FilterRule:
    """Validate a rule given as JSON-like data; raise RuleError naming the first bad field.

    Fields: `name`, `action` and `conditions` are required; `priority` (default 100, 1..1000),
    `enabled` (default true), `target_name` (default null: global) and `delay_seconds` (only for
    delay: 1..86400, default 300) are optional. Unknown fields are rejected.
    """
    if not isinstance(data, Mapping):
        raise RuleError("rule", f"expected an object, not {type(data).__name__}")
    for key in data:
        if key not in _FIELDS:
            raise RuleError(str(key), "unknown field")
    name = _name(data.get("name"), "name", required=True)
    action = _check_action(data.get("action"))
    conditions = data.get("conditions")
    _check_conditions(conditions)
    priority = _int_between(data.get("priority", DEFAULT_PRIORITY), MIN_PRIORITY, MAX_PRIORITY)
    if priority is None:
        raise RuleError("priority", f"must be an integer from {MIN_PRIORITY} to {MAX_PRIORITY}")
    enabled = data.get("enabled", True)
    if not isinstance(enabled, bool):
        raise RuleError("enabled", "must be true or false")
    target_name = _name(data.get("target_name"), "target_name", required=False)
    given = data.get("delay_seconds")
    delay: int | None = None
    if action != "delay":
        if given is not None:
            raise RuleError("delay_seconds", "is only allowed with action 'delay'")
    elif given is None:
        delay = DEFAULT_DELAY_SECONDS
    elif (delay := _int_between(given, 1, MAX_DELAY_SECONDS)) is None:
        raise RuleError("delay_seconds", f"must be an integer from 1 to {MAX_DELAY_SECONDS}")
    return FilterRule(
        name=cast(str, name),
        action=action,
        conditions=_copy_conditions(cast(Mapping[str, object], conditions)),
        priority=priority,
        enabled=enabled,
        target_name=target_name,
        delay_seconds=delay,
    )


def rule_to_dict(rule: FilterRule) -> dict[str, object]:
    """Return the rule as JSON-ready data that `parse_rule` turns back into an equal rule."""
    return {
        "name": rule.name,
        "action": rule.action,
        "conditions": _copy_conditions(rule.conditions),
        "priority": rule.priority,
        "enabled": rule.enabled,
        "target_name": rule.target_name,
        "delay_seconds": rule.delay_seconds,
    }


def _copy_conditions(conditions: Mapping[str, object]) -> dict[str, object]:
    return {
        key: dict(value) if isinstance(value, Mapping) else value
        for key, value in conditions.items()
    }


def _int_between(value: object, low: int, high: int) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        return None
    return value


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _name(value: object, where: str, *, required: bool) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise RuleError(where, "must be a non-empty string")
    if len(value) > MAX_NAME_LENGTH:
        raise RuleError(where, f"must be at most {MAX_NAME_LENGTH} characters")
    return value


def _check_action(action: object) -> Action:
    if not isinstance(action, str) or action not in ACTIONS:
        raise RuleError("action", "must be one of 'allow', 'deny', 'delay'")
    return cast(Action, action)


def _check_conditions(conditions: object) -> None:
    if not isinstance(conditions, Mapping):
        raise RuleError("conditions", "must be an object mapping condition keys to values")
    for key, value in conditions.items():
        _check_condition(key, value)


def _check_condition(key: object, value: object) -> None:
    where = f"conditions.{key}"
    if not isinstance(key, str) or key not in CONDITION_KEYS:
        raise RuleError(where, f"unknown condition; known: {', '.join(sorted(CONDITION_KEYS))}")
    if key in ("llm_severity", "label_exists"):
        if not isinstance(value, str) or not value:
            raise RuleError(where, "must be a non-empty string")
    elif key in ("llm_confidence_below", "llm_confidence_above"):
        if not _is_number(value) or not 0 <= cast(float, value) <= 1:
            raise RuleError(where, "must be a number from 0 to 1")
    elif key == "has_llm_classification":
        if not isinstance(value, bool):
            raise RuleError(where, "must be true or false")
    elif key in ("namespace", "alert_name"):
        if not isinstance(value, str):
            raise RuleError(where, "must be a string")
    elif key == "status":
        if not isinstance(value, str) or value not in STATUSES:
            raise RuleError(where, "must be 'firing' or 'resolved'")
    elif key == "label_equals":
        _check_label_equals(value, where)
    else:
        _check_pattern(value, where)


def _check_label_equals(value: object, where: str) -> None:
    if not isinstance(value, Mapping):
        raise RuleError(where, "must be an object mapping label names to values")
    for name, label in value.items():
        if not isinstance(name, str) or not name:
            raise RuleError(where, "label names must be non-empty strings")
        if not isinstance(label, str):
            raise RuleError(f"{where}.{name}", "must be a string")


def _check_pattern(value: object, where: str) -> None:
    if not isinstance(value, str):
        raise RuleError(where, "must be a regular expression string")
    if len(value) > MAX_PATTERN_LENGTH:
        raise RuleError(where, f"must be at most {MAX_PATTERN_LENGTH} characters")
    try:
        re.compile(value)
        _pattern(value)
    except (re.error, re2.error, OverflowError, RecursionError) as error:
        raise RuleError(where, f"invalid regular expression: {error}") from None


@functools.lru_cache(maxsize=1024)
def _pattern(value: str) -> Any:
    """RE2 matches in linear time: a rule's pattern cannot make filtering hang."""
    return re2.compile(value)
