"""SQL shared by the backends: columns, row mapping, history filters, group folding.

Placeholders differ (`?` for sqlite3, `%s` for psycopg); everything else here is the same on
both, which is what lets one contract test suite hold them to one behaviour.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from alert_history.domain import Dialect, Matcher, sql_condition
from alert_history.domain.matchers import sqlite_glob_condition
from alert_history.models import (
    AlertEvent,
    Classification,
    FilterDecision,
    HistoryQuery,
    StoredEvent,
)

encode_map = msgspec.json.Encoder(order="sorted").encode
_decode_extra = msgspec.json.Decoder(dict[str, Any]).decode
decode_map = msgspec.json.Decoder(dict[str, str]).decode
_decode_strings = msgspec.json.Decoder(list[str]).decode
_decode_object = msgspec.json.Decoder(dict[str, object]).decode
_decode_any = msgspec.json.Decoder().decode
_decode_decision = msgspec.json.Decoder(FilterDecision).decode

EVENT_FIELDS = (
    "fingerprint, status, starts_at, ends_at, alertname, namespace, severity, labels, "
    "annotations, generator_url, receiver, group_key, source, fingerprint_computed, "
    "first_seen, last_seen, notify_count"
)
# What the service writes: EVENT_FIELDS and the router's decision, `event_params` in this order.
# Bulk loaders (bench/) insert EVENT_FIELDS alone; their events read back undecided.
EVENT_WRITE_FIELDS = f"{EVENT_FIELDS}, filter_decision, extra"
EVENT_WRITE_PARAMS = 19  # per row; PostgreSQL adds labels_exact, annotations_exact
CURRENT_FIELDS = (
    "fingerprint, status, starts_at, ends_at, alertname, namespace, severity, updated_at"
)
# Read back with labels, annotations and the filter decision as JSON text, decoded by msgspec
# on both backends.
EVENT_COLUMNS = (
    "id, fingerprint, status, starts_at, ends_at, alertname, namespace, severity, "
    "{labels} AS labels, {annotations} AS annotations, generator_url, receiver, source, "
    "first_seen, last_seen, notify_count, CAST(filter_decision AS text) AS filter_decision, "
    "CAST(extra AS text) AS extra"
)

StateKey = tuple[str, int, str, int]


def state_key(event: AlertEvent) -> StateKey:
    return (event.fingerprint, event.starts_at, event.status, event.ends_at)


def fold_group(events: Sequence[AlertEvent]) -> list[AlertEvent]:
    """Merge repeats of one state across a group commit, keeping first-seen order.

    One statement may not touch a row twice (PostgreSQL refuses it).
    """
    merged: dict[StateKey, AlertEvent] = {}
    for event in events:
        key = state_key(event)
        seen = merged.get(key)
        if seen is None:
            merged[key] = event
        else:
            merged[key] = msgspec.structs.replace(
                event,
                notify_count=seen.notify_count + event.notify_count,
                received_at=max(seen.received_at, event.received_at),
            )
    return list(merged.values())


def current_winners(events: Sequence[AlertEvent]) -> list[AlertEvent]:
    """The one state per fingerprint that the current-state row should move to, by key order."""
    best: dict[str, AlertEvent] = {}
    for event in events:
        seen = best.get(event.fingerprint)
        if seen is None or _rank(event) >= _rank(seen):
            best[event.fingerprint] = event
    return [best[fp] for fp in sorted(best)]


def _rank(event: AlertEvent) -> tuple[int, int]:
    return (event.starts_at, 1 if event.status == "resolved" else 0)


def event_params(events: Sequence[AlertEvent], *, exact_columns: bool = False) -> list[object]:
    """Parameters for EVENT_WRITE_FIELDS, plus `labels_exact, annotations_exact` when asked.

    PostgreSQL's jsonb cannot hold U+0000, which Alertmanager allows in label values: there the
    jsonb columns get U+FFFD instead (still queryable) and the exact JSON goes to the `_exact`
    columns, which stay NULL for every other row.
    """
    params: list[object] = []
    for ev in events:
        labels, annotations = encode_map(ev.labels), encode_map(ev.annotations)
        if exact_columns:
            labels, labels_exact = _nul_safe(labels, ev.labels)
            annotations, annotations_exact = _nul_safe(annotations, ev.annotations)
        params += (
            ev.fingerprint, ev.status, ev.starts_at, ev.ends_at, ev.alertname, ev.namespace,
            ev.severity, labels.decode(), annotations.decode(), ev.generator_url, ev.receiver,
            ev.group_key, ev.source, ev.fingerprint_computed, ev.received_at, _last_seen(ev),
            ev.notify_count, _decision_param(ev.filter_decision, jsonb=exact_columns),
            _extra_param(ev.extra, jsonb=exact_columns),
        )  # fmt: skip
        if exact_columns:
            params += (labels_exact, annotations_exact)
    return params


def _decision_param(decision: FilterDecision | None, *, jsonb: bool) -> str | None:
    """The decision as JSON text; for jsonb, U+0000 (a rule name may hold it) as U+FFFD."""
    if decision is None:
        return None
    encoded = encode_map(decision)
    return (_jsonb_safe(encoded) if jsonb else encoded).decode()


def _extra_param(extra: dict[str, Any] | None, *, jsonb: bool) -> str | None:
    if extra is None:
        return None
    encoded = encode_map(extra)
    return (_jsonb_safe(encoded) if jsonb else encoded).decode()


def _last_seen(event: AlertEvent) -> int:
    return event.received_at if event.last_seen is None else event.last_seen


def _nul_safe(encoded: bytes, mapping: dict[str, str]) -> tuple[bytes, str | None]:
    if b"\\u0000" not in encoded:
        return encoded, None
    cleaned = {k.replace("\0", "\ufffd"): v.replace("\0", "\ufffd") for k, v in mapping.items()}
    return encode_map(cleaned), encoded.decode()


def current_params(events: Sequence[AlertEvent]) -> list[object]:
    params: list[object] = []
    for ev in events:
        params += (
            ev.fingerprint, ev.status, ev.starts_at, ev.ends_at, ev.alertname, ev.namespace,
            ev.severity, _last_seen(ev),
        )  # fmt: skip
    return params


def inserted_events(
    events: Sequence[AlertEvent], keys: Sequence[tuple[Any, ...]]
) -> list[AlertEvent]:
    """The events whose state keys an insert-if-absent statement returned as inserted.

    Within one statement the first row of a key is the one inserted; later ones hit it.
    """
    by_key: dict[StateKey, AlertEvent] = {}
    for event in events:
        by_key.setdefault(state_key(event), event)
    return [by_key[(fp, int(starts), status, int(ends))] for fp, starts, status, ends in keys]


CLASSIFICATION_FIELDS = (
    "fingerprint, severity, confidence, reasoning, recommendations, processing_time, metadata, "
    "model, source, created_at"
)


def newest_classifications(items: Sequence[Classification]) -> list[Classification]:
    """One classification per fingerprint, the newest (the later one on a tie), sorted.

    One statement may not update a row twice (PostgreSQL refuses it); the sort keeps concurrent
    writers locking rows in one order.
    """
    best: dict[str, Classification] = {}
    for item in items:
        seen = best.get(item.fingerprint)
        if seen is None or item.created_at >= seen.created_at:
            best[item.fingerprint] = item
    return [best[fp] for fp in sorted(best)]


def classification_params(items: Sequence[Classification], *, jsonb: bool = False) -> list[object]:
    """Parameters for CLASSIFICATION_FIELDS; with `jsonb`, U+0000 becomes U+FFFD in the JSON."""
    params: list[object] = []
    for c in items:
        recommendations, metadata = encode_map(c.recommendations), encode_map(c.metadata)
        if jsonb:
            recommendations, metadata = _jsonb_safe(recommendations), _jsonb_safe(metadata)
        params += (
            c.fingerprint, c.severity, c.confidence, c.reasoning, recommendations.decode(),
            c.processing_time, metadata.decode(), c.model, c.source, c.created_at,
        )  # fmt: skip
    return params


def _jsonb_safe(encoded: bytes) -> bytes:
    if b"\\u0000" not in encoded:
        return encoded
    return encode_map(_without_nul(_decode_any(encoded)))


def _without_nul(value: object) -> object:
    if isinstance(value, str):
        return value.replace("\0", "\ufffd")
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    if isinstance(value, dict):
        return {str(_without_nul(k)): _without_nul(v) for k, v in value.items()}
    return value


def row_to_classification(row: tuple[Any, ...]) -> Classification:
    (fp, severity, confidence, reasoning, recommendations, processing_time, metadata, model,
     source, created_at) = row  # fmt: skip
    return Classification(
        fingerprint=fp,
        severity=severity,
        confidence=float(confidence),
        reasoning=reasoning,
        recommendations=_decode_strings(recommendations),
        processing_time=None if processing_time is None else float(processing_time),
        metadata=_decode_object(metadata),
        model=model,
        source=source,
        created_at=int(created_at),
    )


def values(rows: int, columns: int, placeholder: str) -> str:
    row = "(" + ", ".join([placeholder] * columns) + ")"
    return ", ".join([row] * rows)


def history_filters(
    q: HistoryQuery, placeholder: str, dialect: Dialect
) -> tuple[str, list[object]]:
    """The WHERE condition of a history query, without its cursor."""
    where: list[str] = []
    args: list[object] = []
    for column, value in (
        ("alertname", q.alertname),
        ("status", q.status),
        ("fingerprint", q.fingerprint),
        ("namespace", q.namespace),
        ("severity", q.severity),
    ):
        if value is not None:
            where.append(f"{column} = {placeholder}")
            args.append(value)
    bounds: tuple[tuple[str, int | None], ...] = (
        ("first_seen >=", q.received_since),
        ("first_seen <=", q.received_until),
        ("starts_at >=", q.starts_from),
        ("starts_at <=", q.starts_to),
    )
    for clause, bound in bounds:
        if bound is not None:
            where.append(f"{clause} {placeholder}")
            args.append(bound)
    if q.filter_action is not None:
        action = (
            "filter_decision ->> 'action'"
            if dialect == "postgres"
            else "json_extract(filter_decision, '$.action')"
        )
        where.append(f"{action} = {placeholder}")
        args.append(q.filter_action)
    if q.label_matchers:
        matchers = [Matcher(name, op, value) for name, op, value in q.label_matchers]  # type: ignore[arg-type]
        if dialect == "sqlite":
            # SQLite's GLOB where it can stand for the regex: no Python call per row
            for m in list(matchers):
                globbed = sqlite_glob_condition(m)
                if globbed is not None:
                    matchers.remove(m)
                    where.append(globbed[0])
                    args.extend(globbed[1])
        if matchers:
            condition, params = sql_condition(matchers, dialect)
            where.append(condition)
            args.extend(params)
    return " AND ".join(where) or "TRUE", args


# Candidates come from the first_seen index; an event is only old once its last notification is.
PURGE_EVENTS = """
DELETE FROM alert_events WHERE id IN (
    SELECT id FROM alert_events WHERE first_seen < {p} AND last_seen < {p}
    ORDER BY first_seen LIMIT {p})
"""
PURGE_CURRENT = "DELETE FROM alert_current WHERE status = 'resolved' AND updated_at < {p}"


def count_matching(filters: str, placeholder: str) -> str:
    """Count the rows matching `filters`, stopping at a limit passed as the last parameter."""
    return (
        "SELECT count(*) FROM (SELECT 1 FROM alert_events "
        f"WHERE {filters} LIMIT {placeholder}) AS matching"
    )


def one_row(select: str, columns: str) -> str:
    """SQLite: the rows of `select` (its result columns named in `columns`) as one row, a JSON
    array of arrays, to decode with msgspec and sort again (an aggregate's order is not the
    query's).

    Python's sqlite3 lets go of the GIL around every row's step, so a reader thread returning
    many rows takes it back once per row, each time from the event loop's thread when that is
    busy: a busy alert's 136 states took 81 ms that way, as one row 12 ms (docs/architecture.md).
    """
    return f"SELECT json_group_array(json_array({columns})) FROM ({select})"


def page_matching(columns: str, filters: str, q: HistoryQuery, placeholder: str) -> str:
    """The page statement of a history query; LIMIT and OFFSET are its last two parameters.

    A startsAt range is selective, but starts_at grows with id: walking the id index back, a
    planner would pass every newer row first. With a range the ids come from the starts_at
    index alone (`id + 0` keeps the planner off the id order), sorted, then the page by id.
    """
    if q.starts_from is None and q.starts_to is None:
        return (
            f"SELECT {columns} FROM alert_events WHERE {filters} "
            f"ORDER BY id DESC LIMIT {placeholder} OFFSET {placeholder}"
        )
    return (
        f"SELECT {columns} FROM alert_events WHERE id IN (SELECT id FROM alert_events "
        f"WHERE {filters} ORDER BY id + 0 DESC LIMIT {placeholder} OFFSET {placeholder}) "
        "ORDER BY id DESC"
    )


def row_to_event(row: tuple[Any, ...]) -> StoredEvent:
    (ident, fp, status, starts, ends, name, ns, sev, labels, annotations, url, receiver,
     source, first, last, count, decision, extra) = row  # fmt: skip
    return StoredEvent(
        id=ident,
        fingerprint=fp,
        status=status,
        starts_at=starts,
        ends_at=ends,
        alertname=name,
        namespace=ns,
        severity=sev,
        labels=decode_map(labels),
        annotations=decode_map(annotations),
        generator_url=url,
        receiver=receiver,
        source=source,
        first_seen=first,
        last_seen=last,
        notify_count=count,
        filter_decision=_read_decision(decision),
        extra=None if extra is None else _decode_extra(extra),
    )


def _read_decision(text: str | None) -> FilterDecision | None:
    """The stored decision; one edited into something else reads as none, not as an error."""
    if text is None:
        return None
    try:
        return _decode_decision(text)
    except msgspec.DecodeError:  # ValidationError is one
        return None
