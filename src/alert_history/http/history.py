"""GET /history: legacy v1 and v2 parameters, newest first, keyset cursor."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping

import msgspec
from werkzeug.datastructures import MultiDict

from alert_history.domain import MatcherError, format_ns, parse_matchers, parse_query_time
from alert_history.models import FilterAction, HistoryPage, HistoryQuery, StoredEvent

MAX_LIMIT = 1000
MAX_OFFSET = 100_000
# `total` counts the matches up to a cap (`total_capped` says when there are more). A label
# matcher must decode each candidate row's labels, so its count stops sooner.
COUNT_LIMIT = 10_000
MATCHER_COUNT_LIMIT = 1_000
_ACTIONS: dict[str, FilterAction] = {"allow": "allow", "deny": "deny", "delay": "delay"}


class QueryError(Exception):
    """A query parameter is invalid; `name` is the parameter."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message


def encode_cursor(before_id: int) -> str:
    return base64.urlsafe_b64encode(f"v1:{before_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        version, _, ident = raw.partition(":")
        if version != "v1":
            raise ValueError(version)
        return int(ident)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise QueryError("cursor", "not a cursor returned by this API") from None


def int_param(args: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter within [low, high]; QueryError naming it otherwise."""
    raw = args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise QueryError(name, f"expected an integer, got {raw[:32]!r}") from None
    if not low <= value <= high:
        raise QueryError(name, f"must be between {low} and {high}")
    return value


def time_param(args: Mapping[str, str], name: str) -> int | None:
    """A time query parameter (see `parse_query_time`) in ns, or None when absent."""
    raw = args.get(name)
    if raw is None or raw == "":
        return None
    try:
        return parse_query_time(raw)
    except ValueError as exc:
        raise QueryError(name, str(exc)) from None


def _matchers(filters: list[str]) -> tuple[tuple[str, str, str], ...]:
    parsed: list[tuple[str, str, str]] = []
    for text in filters:
        try:
            parsed.extend((m.name, m.op, m.value) for m in parse_matchers(text))
        except MatcherError as exc:
            raise QueryError("filter", str(exc)) from None
    return tuple(parsed)


def parse_history_query(args: MultiDict[str, str]) -> HistoryQuery:
    """Build the query from v1 (`since`, `until`, `offset`) and v2 (`start_time`, `end_time`)."""
    status = args.get("status") or None
    if status not in (None, "firing", "resolved"):
        raise QueryError("status", "must be 'firing' or 'resolved'")
    action = args.get("filter_action") or None
    if action is not None and action not in _ACTIONS:
        raise QueryError("filter_action", "must be 'allow', 'deny' or 'delay'")
    cursor = args.get("cursor")
    matchers = _matchers(args.getlist("filter"))
    return HistoryQuery(
        alertname=args.get("alertname") or None,
        status="resolved" if status == "resolved" else ("firing" if status else None),
        fingerprint=args.get("fingerprint") or None,
        namespace=args.get("namespace") or None,
        severity=args.get("severity") or None,
        received_since=time_param(args, "since"),
        received_until=time_param(args, "until"),
        starts_from=time_param(args, "start_time"),
        starts_to=time_param(args, "end_time"),
        label_matchers=matchers,
        filter_action=None if action is None else _ACTIONS[action],
        before_id=decode_cursor(cursor) if cursor else None,
        offset=int_param(args, "offset", 0, 0, MAX_OFFSET),
        limit=int_param(args, "limit", 100, 1, MAX_LIMIT),
        count_limit=MATCHER_COUNT_LIMIT if matchers else COUNT_LIMIT,
    )


def render_event(event: StoredEvent) -> dict[str, object]:
    """The union of the v1 and v2 fields, plus what the new service knows."""
    last_seen = format_ns(event.last_seen)
    decision = event.filter_decision
    return {
        "id": event.id,
        "alertname": event.alertname,
        "fingerprint": event.fingerprint,
        "status": event.status,
        "labels": event.labels,
        "annotations": event.annotations,
        "startsAt": format_ns(event.starts_at),
        "endsAt": format_ns(event.ends_at),
        "generatorURL": event.generator_url,
        "updatedAt": last_seen,
        "namespace": event.namespace,
        "severity": event.severity,
        "receiver": event.receiver,
        "source": event.source,
        "firstSeen": format_ns(event.first_seen),
        "lastSeen": last_seen,
        "notifyCount": event.notify_count,
        # what the global filter rules decided when the event was stored; null: not decided
        "filter": None if decision is None else msgspec.structs.asdict(decision),
        # fields the sender's format adds (Grafana: orgId, title, panelURL, values, ...)
        "extra": event.extra,
    }


def render_page(page: HistoryPage, query: HistoryQuery) -> dict[str, object]:
    return {
        "alerts": [render_event(event) for event in page.events],
        "total": page.total,
        # past 10,000 matches the count stops: `total` is then a lower bound
        "total_capped": page.total_capped,
        "limit": query.limit,
        "offset": query.offset,
        "next_cursor": None if page.next_before_id is None else encode_cursor(page.next_before_id),
    }
