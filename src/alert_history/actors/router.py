"""Router: record what the global filter rules decide about every event before it is stored.

Inbox: `EventBatch` from the deduplicator. Outbox: `EventBatch` to the storage writer, the same
events with `filter_decision` set, so the decision commits in the same transaction as the event.
Rules come from a `RuleBook` (stored rules, cached). No classification exists yet, so the LLM
fields are None and the target is None (global rules only). When the rules were never readable
the events pass undecided (None): the database is down and their commit fails anyway.
A failure while handling a batch answers that batch's request with it, then raises so the
supervisor restarts the actor; buffered batches wait in the channel.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import msgspec
import trio

from alert_history.domain.filter_rules import Decision, FilterInput, FilterRule, decide
from alert_history.messages import EventBatch
from alert_history.models import AlertEvent, FilterDecision
from alert_history.storage.rules import RuleBook

# Conditions no unclassified event meets (`decide` also says so; dropping such rules up front
# makes the legacy defaults, which all need a classification, cost nothing per event).
_NEEDS_LLM = frozenset({"llm_severity", "llm_confidence_below", "llm_confidence_above"})


def for_unclassified(rules: Iterable[FilterRule]) -> list[FilterRule]:
    """The enabled global rules that an event without an LLM classification can match."""
    return [
        rule
        for rule in rules
        if rule.enabled is True
        and rule.target_name is None
        and not _NEEDS_LLM.intersection(rule.conditions)
        and rule.conditions.get("has_llm_classification") is not True
    ]


def route(events: Sequence[AlertEvent], rules: Sequence[FilterRule]) -> list[AlertEvent]:
    """Return `events` with the global rules' decision set; `rules` from `for_unclassified`."""
    if not rules:
        return [msgspec.structs.replace(event, filter_decision=_ALLOWED) for event in events]
    return [
        msgspec.structs.replace(event, filter_decision=_record(decide(rules, _input(event), None)))
        for event in events
    ]


def _input(event: AlertEvent) -> FilterInput:
    return FilterInput(
        alertname=event.alertname,
        namespace=event.namespace,
        status=event.status,
        labels=event.labels,
    )


def _record(decision: Decision) -> FilterDecision:
    return FilterDecision(action=decision.action, rule=decision.rule, reason=decision.reason)


_ALLOWED = _record(decide((), FilterInput(alertname="", namespace=None, status="firing"), None))


async def run(
    inbox: trio.MemoryReceiveChannel[EventBatch],
    outbox: trio.MemorySendChannel[EventBatch],
    *,
    rules: RuleBook,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    async with inbox, outbox:
        task_status.started()
        applicable: list[FilterRule] = []
        seen: tuple[FilterRule, ...] | None = None
        async for batch in inbox:
            try:
                current = await rules.current()
                if current is None:
                    events = batch.events
                else:
                    if current is not seen:
                        seen, applicable = current, for_unclassified(current)
                    events = route(batch.events, applicable)
            except Exception as exc:
                batch.reply.fail(exc)
                raise
            await outbox.send(EventBatch(events, batch.reply))
