"""Filter rules: stored on both backends, served under /proxy/filters/rules, decided per event.

Every condition key is covered by the pure module's tests (test_filter_rules.py); here: the
database, the API's contract and errors, restarts, and the decision recorded with each event.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

import httpx
import msgspec
import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from alert_history.actors import router
from alert_history.domain.filter_rules import (
    DEFAULT_RULES,
    FilterInput,
    FilterRule,
    decide,
    parse_rule,
    rule_to_dict,
)
from alert_history.errors import StorageUnavailable
from alert_history.messages import EventBatch, Reply
from alert_history.models import AlertEvent, FilterDecision, HistoryQuery, WriteOutcome
from alert_history.storage import Db, Storage
from alert_history.storage.rules import RuleBook, delete_rule, list_rules, upsert_rule
from tests.conftest import SettingsFactory, running
from tests.support import alert, encode, webhook
from tests.test_filter_rules import any_conditions, inputs, rules_strategy

T = TypeVar("T")
T0 = 1_700_000_000_000_000_000
RULES = "/proxy/filters/rules"
DENY_STAGING = {
    "name": "deny_staging",
    "action": "deny",
    "conditions": {"namespace": "staging"},
    "priority": 50,
}


def by_name(rules: Sequence[FilterRule]) -> dict[tuple[str, str | None], FilterRule]:
    return {(rule.name, rule.target_name): rule for rule in rules}


async def names(client: httpx.AsyncClient, **params: str) -> list[str]:
    response = await client.get(RULES, params=params)
    assert response.status_code == 200
    return [rule["name"] for rule in response.json()["rules"]]


# --- the API ------------------------------------------------------------------------------------


async def test_the_legacy_default_rules_are_seeded(client: httpx.AsyncClient) -> None:
    response = await client.get(RULES)
    assert response.status_code == 200
    body = response.json()
    expected = sorted(DEFAULT_RULES, key=lambda rule: (rule.priority, rule.name))
    assert body == {"rules": [rule_to_dict(rule) for rule in expected], "total": len(expected)}


async def test_post_creates_a_rule_then_replaces_it(client: httpx.AsyncClient) -> None:
    created = await client.post(RULES, json=DENY_STAGING)
    assert created.status_code == 200
    assert created.json() == {
        "status": "success",
        "message": "Filter rule 'deny_staging' added",
        "rule": {
            "name": "deny_staging",
            "action": "deny",
            "priority": 50,
            "target": None,
            "conditions": {"namespace": "staging"},
            "enabled": True,
            "target_name": None,
            "delay_seconds": None,
        },
    }

    replaced = await client.post(
        RULES, json={**DENY_STAGING, "action": "delay", "delay_seconds": 60, "enabled": False}
    )
    assert replaced.status_code == 200
    assert replaced.json()["message"] == "Filter rule 'deny_staging' updated"

    listed = (await client.get(RULES)).json()
    assert listed["total"] == len(DEFAULT_RULES) + 1
    [stored] = [rule for rule in listed["rules"] if rule["name"] == "deny_staging"]
    assert parse_rule(stored) == FilterRule(
        "deny_staging", "delay", {"namespace": "staging"}, 50, enabled=False, delay_seconds=60
    )


async def test_a_target_rule_is_apart_from_the_global_rule_of_the_same_name(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(RULES, json={**DENY_STAGING, "target_name": "slack"})
    assert response.status_code == 200
    body = response.json()
    assert body["message"] == "Filter rule 'deny_staging' added for target 'slack'"
    assert (body["rule"]["target"], body["rule"]["target_name"]) == ("slack", "slack")
    assert (await client.post(RULES, json=DENY_STAGING)).json()["message"].endswith("added")

    assert await names(client, target_name="slack") == ["deny_staging"]
    assert "deny_staging" in await names(client, target_name="")  # the global rules
    assert (await client.get(RULES)).json()["total"] == len(DEFAULT_RULES) + 2


@pytest.mark.parametrize(
    ("body", "field", "kind"),
    [
        ({"action": "deny", "conditions": {}}, "$.name", "missing"),
        ({"name": "", "action": "deny", "conditions": {}}, "$.name", "value_error"),
        ({"name": "r", "action": "block", "conditions": {}}, "$.action", "value_error"),
        ({"name": "r", "action": "deny"}, "$.conditions", "missing"),
        ({"name": "r", "action": "deny", "conditions": []}, "$.conditions", "value_error"),
        (
            {"name": "r", "action": "deny", "conditions": {"severity": "critical"}},
            "$.conditions.severity",
            "value_error",
        ),
        (
            {"name": "r", "action": "deny", "conditions": {"namespace_pattern": "(unclosed"}},
            "$.conditions.namespace_pattern",
            "value_error",
        ),
        (
            {"name": "r", "action": "deny", "conditions": {"llm_confidence_below": 2}},
            "$.conditions.llm_confidence_below",
            "value_error",
        ),
        (
            {"name": "r", "action": "deny", "conditions": {"label_equals": {"team": 1}}},
            "$.conditions.label_equals.team",
            "value_error",
        ),
        (
            {"name": "r", "action": "deny", "conditions": {}, "priority": 0},
            "$.priority",
            "value_error",
        ),
        (
            {"name": "r", "action": "deny", "conditions": {}, "enabled": "yes"},
            "$.enabled",
            "value_error",
        ),
        (
            {"name": "r", "action": "allow", "conditions": {}, "delay_seconds": 5},
            "$.delay_seconds",
            "value_error",
        ),
        (
            {"name": "r", "action": "deny", "conditions": {}, "colour": "red"},
            "$.colour",
            "extra_forbidden",
        ),
        (
            {"name": "r", "action": "deny", "conditions": {"namespace": "a\0b"}},
            "$.conditions.namespace",
            "value_error",
        ),
        (["not", "an", "object"], "$", "type_error"),
    ],
)
async def test_an_invalid_rule_is_a_422_naming_the_field_and_nothing_is_stored(
    client: httpx.AsyncClient, body: Any, field: str, kind: str
) -> None:
    response = await client.post(RULES, json=body)
    assert response.status_code == 422
    [detail] = response.json()["detail"]
    assert (detail["field"], detail["type"]) == (field, kind)
    assert detail["loc"] == ["body", *[part for part in field[1:].split(".") if part]]
    assert detail["msg"]
    assert (await client.get(RULES)).json()["total"] == len(DEFAULT_RULES)


@pytest.mark.parametrize("body", [b"", b"{", b"nope", b"\xff\xfe"])
async def test_an_unreadable_body_is_a_400(client: httpx.AsyncClient, body: bytes) -> None:
    response = await client.post(RULES, content=body)
    assert response.status_code == 400
    [detail] = response.json()["detail"]
    assert (detail["field"], detail["type"]) == ("$", "invalid_json")


async def test_delete_removes_a_rule_and_a_missing_one_is_a_404(client: httpx.AsyncClient) -> None:
    await client.post(RULES, json={**DENY_STAGING, "target_name": "slack"})

    deleted = await client.delete(f"{RULES}/block_noise_alerts")
    assert deleted.status_code == 200
    assert deleted.json() == {
        "status": "success",
        "message": "Filter rule 'block_noise_alerts' deleted",
    }
    again = await client.delete(f"{RULES}/block_noise_alerts")
    assert again.status_code == 404
    assert again.json() == {"detail": "Filter rule 'block_noise_alerts' not found"}

    # a target's rule is named with its target; the global namespace does not hold it
    assert (await client.delete(f"{RULES}/deny_staging")).status_code == 404
    targeted = await client.delete(f"{RULES}/deny_staging", params={"target_name": "slack"})
    assert targeted.status_code == 200
    assert targeted.json()["message"] == "Filter rule 'deny_staging' deleted for target 'slack'"
    assert "block_noise_alerts" not in await names(client)
    assert (await client.get(RULES)).json()["total"] == len(DEFAULT_RULES) - 1


async def test_a_rule_name_with_a_slash_can_be_deleted(client: httpx.AsyncClient) -> None:
    await client.post(RULES, json={**DENY_STAGING, "name": "team/a"})
    assert (await client.delete(f"{RULES}/team%2Fa")).status_code == 200
    assert "team/a" not in await names(client)
    assert (await client.delete(f"{RULES}/a%00b")).status_code == 404


async def restart_round_trip(make: Callable[[], Any]) -> None:
    """Change rules in one run of the service; the next run on the same database sees them."""
    async with (
        running(make()) as service,
        httpx.AsyncClient(base_url=service.url, timeout=30) as client,
    ):
        assert (await client.post(RULES, json=DENY_STAGING)).status_code == 200
        assert (await client.delete(f"{RULES}/allow_critical_alerts")).status_code == 200
    async with (
        running(make()) as service,
        httpx.AsyncClient(base_url=service.url, timeout=30) as client,
    ):
        listed = await names(client)
        assert "deny_staging" in listed
        assert "allow_critical_alerts" not in listed  # a deleted default is not seeded again
        assert len(listed) == len(DEFAULT_RULES)


async def test_rules_survive_a_restart_on_sqlite(make_settings: SettingsFactory) -> None:
    await restart_round_trip(make_settings)


@pytest.mark.slow
async def test_rules_survive_a_restart_on_postgres(
    make_settings: SettingsFactory, pg_url: str
) -> None:
    await restart_round_trip(lambda: make_settings(DATABASE_URL=pg_url))


async def test_every_stored_event_records_the_global_rules_decision(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.post(RULES, json=DENY_STAGING)).status_code == 200
    payload = webhook(
        alert("DiskFull", namespace="staging"),
        alert("DiskFull", namespace="prod"),
    )
    assert (await client.post("/webhook", content=encode(payload))).status_code == 200

    alerts = (await client.get("/history")).json()["alerts"]
    decisions = {a["namespace"]: a["filter"] for a in alerts}
    assert decisions == {
        "staging": {
            "action": "deny",
            "rule": "deny_staging",
            "reason": "deny by global rule 'deny_staging' (priority 50)",
        },
        # the defaults need an LLM classification, which no event has yet
        "prod": {"action": "allow", "rule": None, "reason": "no rule matched: allowed by default"},
    }


# --- storage, on both backends ------------------------------------------------------------------


async def test_the_migration_seeds_exactly_the_default_rules(storage: Storage) -> None:
    assert by_name(await storage.read(list_rules)) == by_name(DEFAULT_RULES)


async def test_upsert_inserts_then_replaces_by_name_and_target(storage: Storage) -> None:
    rule = parse_rule({**DENY_STAGING, "conditions": {"label_equals": {"team": "db"}}})
    targeted = parse_rule({**DENY_STAGING, "target_name": "pagerduty", "action": "delay"})
    assert await storage.write(lambda db: upsert_rule(db, rule, T0)) is True
    assert await storage.write(lambda db: upsert_rule(db, targeted, T0)) is True
    disabled = parse_rule({**DENY_STAGING, "enabled": False, "priority": 7})
    assert await storage.write(lambda db: upsert_rule(db, disabled, T0 + 5)) is False

    rules = by_name(await storage.read(list_rules))
    assert rules[("deny_staging", None)] == disabled
    assert rules[("deny_staging", "pagerduty")] == targeted
    assert rules[("deny_staging", "pagerduty")].delay_seconds == 300

    def times(db: Db) -> list[tuple[Any, ...]]:
        return db.fetchall(
            "SELECT target_name, created_at, updated_at FROM alert_filter_rules "
            "WHERE name = ? ORDER BY target_name",
            ["deny_staging"],
        )

    assert await storage.read(times) == [("", T0, T0 + 5), ("pagerduty", T0, T0)]


async def test_rules_are_listed_global_first_by_priority(storage: Storage) -> None:
    late = parse_rule({**DENY_STAGING, "name": "a_target_rule", "target_name": "t", "priority": 1})
    await storage.write(lambda db: upsert_rule(db, late, T0))
    rules = await storage.read(list_rules)
    assert rules[-1] == late
    globals_ = [(rule.priority, rule.name) for rule in rules[:-1]]
    assert globals_ == sorted(globals_)


async def test_delete_says_whether_a_rule_was_there(storage: Storage) -> None:
    targeted = parse_rule({**DENY_STAGING, "target_name": "slack"})
    await storage.write(lambda db: upsert_rule(db, targeted, T0))
    assert await storage.write(lambda db: delete_rule(db, "deny_staging", None)) is False
    assert await storage.write(lambda db: delete_rule(db, "deny_staging", "slack")) is True
    assert await storage.write(lambda db: delete_rule(db, "deny_staging", "slack")) is False
    assert await storage.write(lambda db: delete_rule(db, "block_noise_alerts", None)) is True
    remaining = by_name(await storage.read(list_rules))
    assert set(remaining) == set(by_name(DEFAULT_RULES)) - {("block_noise_alerts", None)}


async def test_a_row_that_no_longer_parses_is_skipped_and_logged(
    storage: Storage, caplog: pytest.LogCaptureFixture
) -> None:
    def corrupt(db: Db) -> None:
        db.execute(
            "UPDATE alert_filter_rules SET conditions = ? WHERE name = ?",
            ['{"no_such_condition": 1}', "block_noise_alerts"],
        )
        db.execute(
            "UPDATE alert_filter_rules SET priority = ? WHERE name = ?",
            [5000, "allow_critical_alerts"],
        )

    await storage.write(corrupt)
    with caplog.at_level(logging.WARNING, logger="alert_history.rules"):
        rules = by_name(await storage.read(list_rules))
    assert set(rules) == set(by_name(DEFAULT_RULES)) - {
        ("block_noise_alerts", None),
        ("allow_critical_alerts", None),
    }
    skipped = sorted(r.__dict__["rule"] for r in caplog.records if r.name == "alert_history.rules")
    assert skipped == ["allow_critical_alerts", "block_noise_alerts"]


# --- the rule cache -----------------------------------------------------------------------------


class CountingStorage:
    """Enough of a Storage for RuleBook: `read` returns the given rules or raises."""

    def __init__(self, rules: list[FilterRule]) -> None:
        self.rules = rules
        self.reads = 0
        self.down = False

    async def read(self, fn: Callable[[Db], T]) -> T:
        self.reads += 1
        await trio.lowlevel.checkpoint()
        if self.down:
            raise StorageUnavailable("down")
        return cast(T, list(self.rules))


async def test_the_rule_cache_reloads_when_invalidated_or_old(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = CountingStorage(list(DEFAULT_RULES))
    book = RuleBook(cast(Storage, fake), max_age=5.0)
    assert await book.current() == DEFAULT_RULES
    assert await book.current() == DEFAULT_RULES
    assert fake.reads == 1

    fake.rules = [DEFAULT_RULES[0]]
    book.invalidate()  # a change through this replica's API
    assert await book.current() == (DEFAULT_RULES[0],)
    assert fake.reads == 2

    fake.rules = []  # a change through another replica
    await trio.sleep(4.0)
    assert await book.current() == (DEFAULT_RULES[0],)
    await trio.sleep(1.5)
    assert await book.current() == ()
    assert fake.reads == 3


async def test_the_rule_cache_keeps_the_last_rules_while_storage_is_down(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = CountingStorage([])
    book = RuleBook(cast(Storage, fake), max_age=5.0, retry_delay=1.0)
    fake.down = True
    assert await book.current() is None  # never read: no rules known
    assert await book.current() is None
    assert fake.reads == 1  # the next attempt waits retry_delay

    fake.down = False
    fake.rules = list(DEFAULT_RULES)
    await trio.sleep(1.5)
    assert await book.current() == DEFAULT_RULES

    fake.down = True
    await trio.sleep(6.0)
    assert await book.current() == DEFAULT_RULES  # stale beats none
    book.invalidate()  # a local change retries at once
    assert await book.current() == DEFAULT_RULES
    assert fake.reads == 4


# --- decisions recorded with events --------------------------------------------------------------

ALLOWED = FilterDecision(action="allow", rule=None, reason="no rule matched: allowed by default")
DENIED = FilterDecision(action="deny", rule="deny_staging", reason="deny by global rule ...")


def event(fp: str = "f1", decision: FilterDecision | None = None, **extra: Any) -> AlertEvent:
    return AlertEvent(
        fingerprint=fp, status="firing", starts_at=T0, ends_at=0, alertname="A",
        namespace="staging", severity=None, labels={"alertname": "A"}, annotations={},
        generator_url="", receiver="r", group_key="g", source="alertmanager", received_at=T0,
        filter_decision=decision, **extra,
    )  # fmt: skip


async def test_history_can_be_filtered_by_the_recorded_action(client: httpx.AsyncClient) -> None:
    await client.post(RULES, json=DENY_STAGING)
    payload = webhook(alert("A", namespace="staging"), alert("B", namespace="prod"))
    assert (await client.post("/webhook", content=encode(payload))).status_code == 200
    denied = (await client.get("/history", params={"filter_action": "deny"})).json()
    assert [a["alertname"] for a in denied["alerts"]] == ["A"]
    allowed = (await client.get("/history", params={"filter_action": "allow"})).json()
    assert [a["alertname"] for a in allowed["alerts"]] == ["B"]
    wrong = await client.get("/history", params={"filter_action": "block"})
    assert wrong.status_code == 422
    assert wrong.json()["detail"][0]["field"] == "filter_action"


async def test_a_deleted_rule_stops_deciding_at_once(client: httpx.AsyncClient) -> None:
    await client.post(RULES, json=DENY_STAGING)
    first = webhook(alert("A", namespace="staging"))
    assert (await client.post("/webhook", content=encode(first))).status_code == 200
    await client.delete(f"{RULES}/deny_staging")
    second = webhook(alert("B", namespace="staging"))
    assert (await client.post("/webhook", content=encode(second))).status_code == 200
    alerts = (await client.get("/history")).json()["alerts"]
    assert {a["alertname"]: a["filter"]["action"] for a in alerts} == {"A": "deny", "B": "allow"}


async def test_the_decision_is_stored_and_a_repeat_keeps_the_latest_known(
    storage: Storage,
) -> None:
    await storage.write_events([event("f1", ALLOWED), event("f2")])
    page = await storage.history(HistoryQuery())
    assert {e.fingerprint: e.filter_decision for e in page.events} == {"f1": ALLOWED, "f2": None}

    await storage.write_events([event("f1", DENIED), event("f2", ALLOWED)])
    await storage.write_events([event("f1")])  # undecided: the rules could not be read
    page = await storage.history(HistoryQuery())
    assert {e.fingerprint: e.filter_decision for e in page.events} == {"f1": DENIED, "f2": ALLOWED}
    assert [e.notify_count for e in page.events] == [2, 3]
    only = await storage.history(HistoryQuery(filter_action="deny"))
    assert [e.fingerprint for e in only.events] == ["f1"]


async def test_a_decision_naming_a_rule_with_nul_is_stored_on_every_backend(
    storage: Storage,
) -> None:
    odd = FilterDecision(action="deny", rule="a\0b", reason="deny by global rule 'a\0b'")
    await storage.write_events([event("f1", odd)])
    [stored] = (await storage.history(HistoryQuery())).events
    assert stored.filter_decision is not None
    assert stored.filter_decision.action == "deny"


unclassified = inputs.map(lambda i: dataclasses.replace(i, llm_severity=None, llm_confidence=None))


@given(st.lists(rules_strategy(any_conditions), max_size=6), unclassified)
def test_dropping_rules_that_need_a_classification_never_changes_a_decision(
    rules: list[FilterRule], alert_input: FilterInput
) -> None:
    full = decide(rules, alert_input, None)
    pruned = decide(router.for_unclassified(rules), alert_input, None)
    assert (pruned.action, pruned.rule, pruned.reason) == (full.action, full.rule, full.reason)


def test_route_sets_every_events_decision() -> None:
    rules = router.for_unclassified([*DEFAULT_RULES, parse_rule(DENY_STAGING)])
    assert [rule.name for rule in rules] == ["deny_staging"]
    prod = msgspec.structs.replace(event("f2"), namespace="prod")
    routed = router.route([event("f1"), prod], rules)
    assert [e.filter_decision for e in routed] == [
        FilterDecision(
            action="deny",
            rule="deny_staging",
            reason="deny by global rule 'deny_staging' (priority 50)",
        ),
        ALLOWED,
    ]
    assert router.route([event("f1")], router.for_unclassified(DEFAULT_RULES)) == [
        event("f1", ALLOWED)
    ]


async def test_the_router_passes_events_undecided_while_no_rules_are_known(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = CountingStorage([])
    fake.down = True
    book = RuleBook(cast(Storage, fake))
    into_send, into_recv = trio.open_memory_channel[EventBatch](4)
    out_send, out_recv = trio.open_memory_channel[EventBatch](4)
    async with trio.open_nursery() as nursery:
        await nursery.start(
            lambda task_status: router.run(into_recv, out_send, rules=book, task_status=task_status)
        )
        reply: Reply[WriteOutcome] = Reply()
        await into_send.send(EventBatch([event("f1")], reply))
        assert (await out_recv.receive()).events == [event("f1")]
        fake.down = False
        fake.rules = [parse_rule(DENY_STAGING)]
        await trio.sleep(2)
        await into_send.send(EventBatch([event("f1")], reply))
        [routed] = (await out_recv.receive()).events
        assert routed.filter_decision is not None
        assert routed.filter_decision.rule == "deny_staging"
        await into_send.aclose()
