"""Filter rules: the legacy condition keys, priorities, layers, fail-open, and validation."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alert_history.domain.filter_rules import (
    CONDITION_KEYS,
    DEFAULT_RULES,
    Decision,
    FilterInput,
    FilterRule,
    RuleError,
    decide,
    parse_rule,
    rule_to_dict,
)

ALERT = FilterInput(
    alertname="KubePodCrashLooping",
    namespace="payments-prod",
    status="firing",
    labels={"team": "payments", "severity": "warning"},
    llm_severity="warning",
    llm_confidence=0.6,
)
UNCLASSIFIED = FilterInput("KubePodCrashLooping", "payments-prod", "firing", {"team": "payments"})


def rule(conditions: Mapping[str, object], **kwargs: Any) -> FilterRule:
    return FilterRule(kwargs.pop("name", "r"), kwargs.pop("action", "deny"), conditions, **kwargs)


def matches(conditions: Mapping[str, object], alert: FilterInput = ALERT) -> bool:
    return decide([rule(conditions)], alert, None).rule == "r"


# --- condition keys -------------------------------------------------------------------------

CASES: list[tuple[dict[str, object], FilterInput, bool]] = [
    # (conditions, alert, matches)
    ({"llm_severity": "warning"}, ALERT, True),
    ({"llm_severity": "WARNING"}, ALERT, True),  # case-insensitive, as the legacy
    ({"llm_severity": "critical"}, ALERT, False),
    ({"llm_severity": "warning"}, UNCLASSIFIED, False),
    ({"llm_confidence_below": 0.7}, ALERT, True),
    ({"llm_confidence_below": 0.6}, ALERT, False),  # strictly below
    ({"llm_confidence_below": 0.7}, UNCLASSIFIED, False),
    ({"llm_confidence_above": 0.5}, ALERT, True),
    ({"llm_confidence_above": 0.6}, ALERT, False),  # strictly above
    ({"llm_confidence_above": 0.5}, UNCLASSIFIED, False),
    ({"has_llm_classification": True}, ALERT, True),
    ({"has_llm_classification": True}, UNCLASSIFIED, False),
    ({"has_llm_classification": False}, UNCLASSIFIED, True),
    ({"has_llm_classification": False}, ALERT, False),
    ({"namespace": "payments-prod"}, ALERT, True),
    ({"namespace": "payments"}, ALERT, False),
    ({"namespace_pattern": "pay"}, ALERT, True),  # anchored at the start only, like re.match
    ({"namespace_pattern": "prod"}, ALERT, False),
    ({"namespace_pattern": ".*prod$"}, ALERT, True),
    ({"namespace_pattern": ".*"}, FilterInput("A", None, "firing"), False),  # no namespace
    ({"namespace_pattern": ".*"}, FilterInput("A", "", "firing"), False),
    ({"alert_name": "KubePodCrashLooping"}, ALERT, True),
    ({"alert_name": "KubePod"}, ALERT, False),
    ({"alert_name_pattern": "Kube"}, ALERT, True),
    ({"alert_name_pattern": "Pod"}, ALERT, False),
    ({"label_exists": "team"}, ALERT, True),
    ({"label_exists": "owner"}, ALERT, False),
    ({"label_equals": {"team": "payments", "severity": "warning"}}, ALERT, True),
    ({"label_equals": {"team": "payments", "severity": "critical"}}, ALERT, False),
    ({"label_equals": {"owner": ""}}, ALERT, False),  # a missing label is not ""
    ({"status": "firing"}, ALERT, True),
    ({"status": "resolved"}, ALERT, False),
    ({}, ALERT, True),  # no conditions: matches everything
    ({"namespace": "payments-prod", "status": "resolved"}, ALERT, False),  # all must hold
]


@pytest.mark.parametrize(("conditions", "alert", "expected"), CASES)
def test_condition(conditions: dict[str, object], alert: FilterInput, expected: bool) -> None:
    assert matches(conditions, alert) is expected


def test_every_condition_key_is_covered_matching_and_not_matching() -> None:
    for key in CONDITION_KEYS:
        outcomes = {expected for conditions, _, expected in CASES if set(conditions) == {key}}
        assert outcomes == {True, False}, key


def test_classified_means_either_llm_field_is_known() -> None:
    assert FilterInput("A", None, "firing", llm_confidence=0.2).classified
    assert FilterInput("A", None, "firing", llm_severity="info").classified
    assert not FilterInput("A", None, "firing").classified


# --- order, layers, defaults ----------------------------------------------------------------


def test_no_rule_matching_allows_by_default() -> None:
    assert decide([rule({"status": "resolved"})], ALERT, "slack") == Decision(
        "allow", None, "no rule matched: allowed by default"
    )


def test_the_lowest_priority_number_wins() -> None:
    rules = [rule({}, name="late", priority=50), rule({}, name="early", action="allow", priority=2)]
    assert decide(rules, ALERT, None).rule == "early"


def test_priority_ties_are_broken_by_name() -> None:
    rules = [rule({}, name="b", action="allow"), rule({}, name="a", action="deny")]
    decision = decide(rules, ALERT, None)
    assert (decision.rule, decision.action) == ("a", "deny")


def test_disabled_rules_are_ignored() -> None:
    assert decide([rule({}, enabled=False)], ALERT, None).rule is None


def test_a_global_deny_is_final_even_against_a_target_allow() -> None:
    rules = [rule({}, name="g"), rule({}, name="t", action="allow", priority=1, target_name="s")]
    assert decide(rules, ALERT, "s").rule == "g"


def test_a_target_rule_can_deny_what_a_global_rule_allows() -> None:
    rules = [rule({}, name="g", action="allow"), rule({}, name="t", target_name="s")]
    decision = decide(rules, ALERT, "s")
    assert (decision.action, decision.rule) == ("deny", "t")
    assert decision.reason == "deny by target 's' rule 't' (priority 100)"


def test_a_global_allow_stands_when_no_target_rule_matches() -> None:
    rules = [rule({}, name="g", action="allow"), rule({"status": "resolved"}, target_name="s")]
    decision = decide(rules, ALERT, "s")
    assert (decision.action, decision.rule) == ("allow", "g")
    assert decision.reason == "allow by global rule 'g' (priority 100)"


def test_rules_of_other_targets_and_target_rules_without_a_target_are_ignored() -> None:
    rules = [rule({}, target_name="pagerduty")]
    assert decide(rules, ALERT, "slack").rule is None
    assert decide(rules, ALERT, None).rule is None


def test_delay_carries_its_delay() -> None:
    decision = decide([rule({}, action="delay", delay_seconds=90)], ALERT, None)
    assert (decision.action, decision.delay_seconds) == ("delay", 90)
    assert decide([rule({}, action="delay")], ALERT, None).delay_seconds == 300


def test_the_default_rules_are_the_legacy_table() -> None:
    table = [(r.name, r.action, dict(r.conditions), r.priority, r.enabled) for r in DEFAULT_RULES]
    assert table == [
        ("allow_critical_alerts", "allow", {"llm_severity": "critical"}, 1, True),
        (
            "high_confidence_only",
            "allow",
            {"llm_confidence_above": 0.7, "has_llm_classification": True},
            5,
            False,
        ),
        ("block_false_positives", "deny", {"llm_severity": "false_positive"}, 8, True),
        ("block_noise_alerts", "deny", {"llm_severity": "noise"}, 10, True),
        (
            "block_low_confidence",
            "deny",
            {"llm_confidence_below": 0.5, "has_llm_classification": True},
            15,
            True,
        ),
        (
            "min_confidence_threshold",
            "deny",
            {"llm_confidence_below": 0.3, "has_llm_classification": True},
            20,
            True,
        ),
        (
            "block_test_namespaces",
            "deny",
            {"namespace_pattern": ".*test.*|.*dev.*|.*staging.*"},
            30,
            False,
        ),
    ]
    assert all(r.target_name is None and r.delay_seconds is None for r in DEFAULT_RULES)
    assert [parse_rule(rule_to_dict(r)) for r in DEFAULT_RULES] == list(DEFAULT_RULES)


@pytest.mark.parametrize(
    ("severity", "confidence", "namespace", "expected"),
    [
        ("critical", 0.1, "test", ("allow", "allow_critical_alerts")),
        ("noise", 0.9, "prod", ("deny", "block_noise_alerts")),
        ("false_positive", 0.9, "prod", ("deny", "block_false_positives")),
        ("warning", 0.4, "prod", ("deny", "block_low_confidence")),
        ("warning", 0.5, "prod", ("allow", None)),
        ("info", 0.9, "test", ("allow", None)),  # block_test_namespaces is off
        (None, None, "prod", ("allow", None)),
    ],
)
def test_the_default_rules_decide_as_the_legacy(
    severity: str | None, confidence: float | None, namespace: str, expected: tuple[str, str]
) -> None:
    alert = FilterInput("A", namespace, "firing", {}, severity, confidence)
    decision = decide(DEFAULT_RULES, alert, "slack")
    assert (decision.action, decision.rule) == expected


# --- fail open ------------------------------------------------------------------------------


def test_a_rule_with_an_invalid_regex_is_skipped_and_named() -> None:
    rules = [
        rule({"namespace_pattern": "(unclosed"}, name="broken", priority=1),
        rule({"alert_name_pattern": "x" * 513}, name="too_long", priority=2),
        rule({"namespace": "payments-prod"}, name="good", priority=3),
    ]
    decision = decide(rules, ALERT, None)
    assert (decision.rule, decision.skipped) == ("good", ("broken", "too_long"))


@pytest.mark.parametrize(
    "bad",
    [
        {"no_such_key": 1},
        {"llm_confidence_below": "0.5"},
        {"label_equals": ["team"]},
        {"status": ["firing"]},
        {"label_exists": {"unhashable": True}},
        {"alert_name_pattern": "a{99999999999}"},
    ],
)
def test_unevaluable_conditions_never_raise_and_never_match(bad: dict[str, object]) -> None:
    decision = decide([rule(bad, name="bad")], ALERT, None)
    assert decision == Decision("allow", None, "no rule matched: allowed by default", ("bad",))


def test_a_rule_with_an_unknown_action_is_skipped() -> None:
    bogus = FilterRule("bogus", "block", {})  # type: ignore[arg-type]
    assert decide([bogus], ALERT, None).skipped == ("bogus",)


# --- validation -----------------------------------------------------------------------------


def valid(**changes: object) -> dict[str, object]:
    data: dict[str, object] = {"name": "r", "action": "deny", "conditions": {}}
    data.update(changes)
    return data


def test_parse_rule_fills_the_defaults() -> None:
    assert parse_rule(valid()) == FilterRule("r", "deny", {}, 100, True, None, None)
    assert parse_rule(valid(action="delay")).delay_seconds == 300


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ([], "rule"),
        ({"action": "deny", "conditions": {}}, "name"),
        (valid(name=""), "name"),
        (valid(name="x" * 256), "name"),
        (valid(action="block"), "action"),
        (valid(action=None), "action"),
        ({"name": "r", "action": "deny"}, "conditions"),
        (valid(conditions=[]), "conditions"),
        (valid(priority=0), "priority"),
        (valid(priority=1001), "priority"),
        (valid(priority=True), "priority"),
        (valid(priority="5"), "priority"),
        (valid(enabled="yes"), "enabled"),
        (valid(target_name=""), "target_name"),
        (valid(target_name=3), "target_name"),
        (valid(delay_seconds=30), "delay_seconds"),
        (valid(action="delay", delay_seconds=0), "delay_seconds"),
        (valid(action="delay", delay_seconds=86_401), "delay_seconds"),
        (valid(action="delay", delay_seconds=1.5), "delay_seconds"),
        (valid(id=7), "id"),
        (valid(conditions={"severity": "critical"}), "conditions.severity"),
        (valid(conditions={"llm_severity": ""}), "conditions.llm_severity"),
        (valid(conditions={"llm_confidence_below": 1.5}), "conditions.llm_confidence_below"),
        (valid(conditions={"llm_confidence_above": True}), "conditions.llm_confidence_above"),
        (
            valid(conditions={"llm_confidence_above": float("nan")}),
            "conditions.llm_confidence_above",
        ),
        (valid(conditions={"has_llm_classification": 1}), "conditions.has_llm_classification"),
        (valid(conditions={"namespace": 3}), "conditions.namespace"),
        (valid(conditions={"namespace_pattern": "(a"}), "conditions.namespace_pattern"),
        (valid(conditions={"alert_name_pattern": "a" * 513}), "conditions.alert_name_pattern"),
        (valid(conditions={"alert_name": None}), "conditions.alert_name"),
        (valid(conditions={"label_exists": ""}), "conditions.label_exists"),
        (valid(conditions={"label_equals": "team=x"}), "conditions.label_equals"),
        (valid(conditions={"label_equals": {"team": 1}}), "conditions.label_equals.team"),
        (valid(conditions={"status": "pending"}), "conditions.status"),
    ],
)
def test_parse_errors_name_the_field(data: Any, field: str) -> None:
    with pytest.raises(RuleError) as caught:
        parse_rule(data)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


def test_a_pattern_of_512_characters_is_accepted() -> None:
    assert parse_rule(valid(conditions={"namespace_pattern": "a" * 512}))


def test_parse_rule_copies_the_conditions() -> None:
    labels = {"team": "a"}
    parsed = parse_rule(valid(conditions={"label_equals": labels}))
    labels["team"] = "b"
    assert parsed.conditions == {"label_equals": {"team": "a"}}


# --- properties -----------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)
labels_strategy = st.dictionaries(
    st.sampled_from(["team", "severity", "env"]), st.sampled_from(["", "x"]) | st.text(max_size=3)
)
pattern_strategy = st.sampled_from(["", "a", ".*b", "(a|b)+$", "[ab", "(?P<x>", "\\", "a{2,1}"])
CONFIDENCES = [0.0, 0.3, 0.5, 0.7, 1.0]
confidence_strategy = st.sampled_from(CONFIDENCES) | st.floats(0, 1)
condition_values: dict[str, st.SearchStrategy[Any]] = {
    "llm_severity": st.sampled_from(["critical", "warning", "info", "noise", "Noise"]),
    "llm_confidence_below": confidence_strategy,
    "llm_confidence_above": confidence_strategy | st.integers(0, 1),
    "has_llm_classification": st.booleans(),
    "namespace": st.sampled_from(["a", "b", ""]),
    "namespace_pattern": pattern_strategy.filter(lambda p: _compiles(p)),
    "alert_name": st.sampled_from(["a", "ab"]),
    "alert_name_pattern": pattern_strategy.filter(lambda p: _compiles(p)),
    "label_exists": st.sampled_from(["team", "env"]),
    "label_equals": st.dictionaries(st.sampled_from(["team", "env"]), st.sampled_from(["", "x"])),
    "status": st.sampled_from(["firing", "resolved"]),
}
# Few conditions per rule, so that rules match often enough for the order to matter.
valid_conditions = st.lists(
    st.one_of([st.tuples(st.just(k), v) for k, v in sorted(condition_values.items())]),
    max_size=2,
).map(dict)
junk_conditions = st.dictionaries(
    st.sampled_from(sorted(CONDITION_KEYS)) | st.text(max_size=5),
    json_values | pattern_strategy,
    min_size=1,
    max_size=3,
)
any_conditions = st.one_of(valid_conditions, valid_conditions, valid_conditions, junk_conditions)


def _compiles(pattern: str) -> bool:
    try:
        re.compile(pattern)
    except re.error:
        return False
    return True


def rules_strategy(conditions: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.builds(
        FilterRule,
        name=st.sampled_from(["a", "b", "c", "d"]),
        action=st.sampled_from(["allow", "deny", "delay"]),
        conditions=conditions,
        priority=st.integers(1, 4),
        enabled=st.sampled_from([True, True, True, False]),
        target_name=st.sampled_from([None, "slack", "pagerduty"]),
    )


inputs = st.builds(
    FilterInput,
    alertname=st.sampled_from(["a", "ab", "b"]),
    namespace=st.none() | st.sampled_from(["a", "b", "", "ab"]),
    status=st.sampled_from(["firing", "resolved", "pending"]),
    labels=labels_strategy,
    llm_severity=st.none() | st.sampled_from(["critical", "noise", "NOISE", "info"]),
    llm_confidence=st.none() | st.sampled_from(CONFIDENCES) | st.floats(allow_nan=True),
)


def reference_matches(conditions: Mapping[str, Any], alert: FilterInput) -> bool:
    """The legacy condition loop, written out plainly for rules that are valid."""
    classified = alert.llm_severity is not None or alert.llm_confidence is not None
    namespace = alert.namespace or ""
    checks: dict[str, Callable[[Any], bool]] = {
        "llm_severity": lambda v: (
            alert.llm_severity is not None and alert.llm_severity.lower() == v.lower()
        ),
        "llm_confidence_below": lambda v: (
            alert.llm_confidence is not None and alert.llm_confidence < v
        ),
        "llm_confidence_above": lambda v: (
            alert.llm_confidence is not None and alert.llm_confidence > v
        ),
        "has_llm_classification": lambda v: classified == v,
        "namespace": lambda v: alert.namespace == v,
        "namespace_pattern": lambda v: namespace != "" and bool(re.match(v, namespace)),
        "alert_name": lambda v: alert.alertname == v,
        "alert_name_pattern": lambda v: bool(re.match(v, alert.alertname)),
        "label_exists": lambda v: v in alert.labels,
        "label_equals": lambda v: all(alert.labels.get(k) == x for k, x in v.items()),
        "status": lambda v: alert.status == v,
    }
    return all(checks[key](value) for key, value in conditions.items())


def reference_decide(rules: Sequence[FilterRule], alert: FilterInput, target: str | None) -> Any:
    def first(layer: str | None) -> FilterRule | None:
        for r in sorted(rules, key=lambda r: (r.priority, r.name)):
            usable = r.enabled and r.target_name == layer and is_valid(r)
            if usable and reference_matches(r.conditions, alert):
                return r
        return None

    found = first(None)
    if target is not None and (found is None or found.action != "deny"):
        found = first(target) or found
    return (found.action, found.name) if found else ("allow", None)


def is_valid(r: FilterRule) -> bool:
    try:
        parse_rule({"name": r.name, "action": r.action, "conditions": r.conditions})
    except RuleError:
        return False
    return True


@settings(max_examples=500)
@given(
    rules=st.lists(rules_strategy(any_conditions), min_size=1, max_size=6),
    alert=inputs,
    target=st.sampled_from([None, "slack", "pagerduty", "other"]),
)
def test_decide_never_raises_and_agrees_with_a_reference(
    rules: list[FilterRule], alert: FilterInput, target: str | None
) -> None:
    decision = decide(rules, alert, target)
    assert (decision.action, decision.rule) == reference_decide(rules, alert, target)
    assert set(decision.skipped) <= {r.name for r in rules if not is_valid(r)}


@given(rules=st.lists(rules_strategy(valid_conditions), max_size=6), alert=inputs)
def test_valid_rules_are_never_skipped(rules: list[FilterRule], alert: FilterInput) -> None:
    assert decide(rules, alert, "slack").skipped == ()


@given(
    rule_=rules_strategy(valid_conditions),
    delay=st.integers(1, 86_400),
)
def test_rule_to_dict_round_trips_through_json_and_parse_rule(
    rule_: FilterRule, delay: int
) -> None:
    if rule_.action == "delay":
        rule_ = FilterRule(**{**rule_to_dict(rule_), "delay_seconds": delay})  # type: ignore[arg-type]
    data = rule_to_dict(rule_)
    assert parse_rule(json.loads(json.dumps(data))) == rule_
    assert rule_to_dict(parse_rule(data)) == data


rule_data = st.fixed_dictionaries(
    {},
    optional={
        "name": st.sampled_from(["r", ""]) | json_values,
        "action": st.sampled_from(["allow", "deny", "delay"]) | json_values,
        "conditions": any_conditions | json_values,
        "priority": st.integers(-5, 1005) | json_values,
        "enabled": st.booleans() | json_values,
        "target_name": st.sampled_from([None, "slack"]) | json_values,
        "delay_seconds": st.integers(-5, 100_000) | json_values,
        "extra": json_values,
    },
)


@given(data=rule_data)
def test_parse_rule_raises_only_rule_errors(data: dict[str, object]) -> None:
    try:
        parsed = parse_rule(data)
    except RuleError:
        return
    assert parse_rule(rule_to_dict(parsed)) == parsed
