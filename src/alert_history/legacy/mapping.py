"""Legacy rows to this service's values: pure functions, no I/O.

The readers hand rows as dicts under canonical keys whatever the legacy column names were
(`schemas.py`): for alerts `fingerprint, alertname, status, labels, annotations, starts_at,
ends_at, generator_url, namespace, severity, raw_json` and `seen` (every receive-time column);
for classifications `fingerprint, severity, confidence, reasoning, recommendations,
processing_time, metadata, model, created_at` and `extra` (columns without a field here). A value
is what the driver gave: JSON text from SQLite, decoded JSON from PostgreSQL's jsonb, timestamps
as text. A row that cannot be mapped becomes a `Skip` naming the field, never an exception.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from decimal import Decimal

import msgspec

from alert_history.domain import (
    NONE_NS,
    fingerprint,
    format_ns,
    parse_query_time,
    parse_rfc3339_ns,
)
from alert_history.models import AlertEvent, Classification

Row = Mapping[str, object]

#: The metadata key that keeps legacy classification columns without a field of their own.
LEGACY_METADATA_KEY = "legacy"

_TIMESTAMP = re.compile(
    r"(\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?)\s*([Zz]|[+-]\d{2}(?::?\d{2})?)?\Z"
)


class Skip(msgspec.Struct, frozen=True):
    """Why a legacy row was not imported: `field` counts it, `detail` explains it."""

    field: str
    detail: str


class _Unmappable(Exception):
    def __init__(self, field: str, detail: str) -> None:
        super().__init__(detail)
        self.skip = Skip(field, detail)


def parse_legacy_time(text: str) -> int:
    """Return ns since the epoch for a legacy timestamp; `NONE_NS` for Go's zero time.

    Accepts RFC 3339 (up to 9 fractional digits, any offset), ISO 8601 without an offset (taken
    as UTC: the legacy service wrote `datetime.utcnow().isoformat()` and SQLite's
    CURRENT_TIMESTAMP), PostgreSQL's text form (`2024-06-01 12:00:00.5+00`), then whatever
    `parse_query_time` accepts. Raises ValueError for anything else.
    """
    text = text.strip()
    match = _TIMESTAMP.match(text)
    if match is None:
        try:
            return parse_query_time(text)
        except OverflowError:  # 'infinity' (PostgreSQL's text for an infinite timestamp)
            raise ValueError(f"not a finite time: {text[:64]!r}") from None
    base, offset = match.groups()
    if offset is None:
        offset = "Z"
    elif offset not in ("Z", "z") and ":" not in offset:
        offset = f"{offset[:3]}:{offset[3:] or '00'}"
    return parse_rfc3339_ns(base + offset)


def map_event(row: Row, *, source: str) -> AlertEvent | Skip:
    """Map one legacy alert row; `source` is stored as the event's source."""
    try:
        return _map_event(row, source)
    except _Unmappable as exc:
        return exc.skip


def map_classification(row: Row) -> Classification | Skip:
    """Map one legacy classification row (v2 SQLite or PostgreSQL)."""
    try:
        return _map_classification(row)
    except _Unmappable as exc:
        return exc.skip


def _map_event(row: Row, source: str) -> AlertEvent:
    raw = _json_object(row.get("raw_json"), "raw_json", default={})
    labels = _string_map(_json_value(row.get("labels"), "labels"), "labels")
    if labels is None:
        labels = _string_map(raw.get("labels"), "labels") or {}
    annotations = _string_map(_json_value(row.get("annotations"), "annotations"), "annotations")
    if annotations is None:
        annotations = _string_map(raw.get("annotations"), "annotations") or {}

    status = _text(row.get("status")) or _text(raw.get("status"))
    if status is None or status.lower() not in ("firing", "resolved"):
        raise _Unmappable("status", f"status {status!r} is neither firing nor resolved")
    starts_text = _text(row.get("starts_at")) or _text(raw.get("startsAt"))
    if starts_text is None:
        raise _Unmappable("starts_at", "no startsAt")
    starts_at = _time(starts_text, "starts_at")
    if starts_at == NONE_NS:
        raise _Unmappable("starts_at", "startsAt is the zero time")
    ends_text = _text(row.get("ends_at")) or _text(raw.get("endsAt"))
    ends_at = NONE_NS if ends_text is None else _time(ends_text, "ends_at")
    seen = [_time(text, "received_at") for text in _texts(row.get("seen"))]
    first_seen, last_seen = (min(seen), max(seen)) if seen else (starts_at, starts_at)

    generator_url = _text(row.get("generator_url")) or _text(raw.get("generatorURL")) or ""
    given = _text(row.get("fingerprint"))
    # v1 stored `fingerprint or generatorURL or ""`: a URL standing in for a missing one is no
    # fingerprint, and its raw alert shows it.
    if given and raw and not _text(raw.get("fingerprint")) and given == generator_url:
        given = None
    fp, computed = (given, False) if given else (fingerprint(labels), True)

    return AlertEvent(
        fingerprint=fp,
        status="resolved" if status.lower() == "resolved" else "firing",
        starts_at=starts_at,
        ends_at=ends_at,
        alertname=_text(row.get("alertname")) or labels.get("alertname", ""),
        namespace=labels.get("namespace") or _text(row.get("namespace")),
        severity=labels.get("severity") or _text(row.get("severity")),
        labels=labels,
        annotations=annotations,
        generator_url=generator_url,
        receiver="",
        group_key="",
        source=source,
        received_at=first_seen,
        last_seen=last_seen,
        fingerprint_computed=computed,
    )


def _map_classification(row: Row) -> Classification:
    fp = _text(row.get("fingerprint"))
    if not fp:
        raise _Unmappable("fingerprint", "no fingerprint")
    severity = _text(row.get("severity"))
    if not severity:
        raise _Unmappable("severity", "no severity")
    confidence = _number(row.get("confidence"), "confidence")
    if confidence is None or not 0.0 <= confidence <= 1.0:
        raise _Unmappable("confidence", f"confidence {row.get('confidence')!r} is not in 0..1")
    recommendations = _json_value(row.get("recommendations"), "recommendations")
    if recommendations is None:
        recommendations = []
    if not isinstance(recommendations, list) or not all(
        isinstance(r, str) for r in recommendations
    ):
        raise _Unmappable("recommendations", "recommendations is not a list of strings")
    metadata = dict(_json_object(row.get("metadata"), "metadata", default={}))
    extra = {k: _extra(k, v) for k, v in _mapping(row.get("extra")).items() if v is not None}
    if extra:
        metadata[LEGACY_METADATA_KEY] = extra
    created_text = _text(row.get("created_at"))
    if created_text is None:
        raise _Unmappable("created_at", "no created_at")
    return Classification(
        fingerprint=fp,
        severity=severity,
        confidence=confidence,
        reasoning=_text(row.get("reasoning")) or "",
        recommendations=recommendations,
        processing_time=_number(row.get("processing_time"), "processing_time"),
        metadata=metadata,
        model=_text(row.get("model")),
        source="import",
        created_at=_time(created_text, "created_at"),
    )


# -- field helpers -----------------------------------------------------------------------------


def _text(value: object) -> str | None:
    """A non-empty string, or None for NULL and ''."""
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    return text or None


def _texts(value: object) -> list[str]:
    if isinstance(value, (list, tuple)):
        return [t for t in (_text(v) for v in value) if t is not None]
    text = _text(value)
    return [] if text is None else [text]


def _time(text: str, field: str) -> int:
    try:
        return parse_legacy_time(text)
    except ValueError as exc:
        raise _Unmappable(field, f"{field}: {exc}") from None


def _extra(name: str, value: object) -> object:
    """A legacy column kept in metadata: times as RFC 3339 UTC, the rest as read."""
    if name.endswith("_at") and isinstance(value, str):
        try:
            return format_ns(parse_legacy_time(value)) or value
        except ValueError:
            return value  # 'infinity': kept as it was, it is only metadata
    return value


def _json_value(value: object, field: str) -> object:
    """Decoded JSON: text is parsed (NULL and '' give None), anything else is already decoded."""
    if not isinstance(value, str):
        return value
    if not value.strip():
        return None
    try:
        decoded: object = json.loads(value)
    except ValueError as exc:
        raise _Unmappable(field, f"{field} is not JSON: {exc}") from None
    return decoded


def _json_object(value: object, field: str, *, default: dict[str, object]) -> dict[str, object]:
    decoded = _json_value(value, field)
    if decoded is None:
        return default
    if not isinstance(decoded, dict):
        raise _Unmappable(field, f"{field} is not a JSON object")
    return decoded


def _mapping(value: object) -> Mapping[str, object]:
    return value if isinstance(value, Mapping) else {}


def _string_map(value: object, field: str) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise _Unmappable(field, f"{field} is not an object of strings")
    return value


def _number(value: object, field: str) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal, str)):
        raise _Unmappable(field, f"{field} {value!r} is not a number")
    try:
        number = float(value)
    except ValueError:
        raise _Unmappable(field, f"{field} {value!r} is not a number") from None
    if not math.isfinite(number):
        raise _Unmappable(field, f"{field} {value!r} is not finite")
    return number
