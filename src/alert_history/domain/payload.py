"""Decode and validate an Alertmanager v4 webhook body into a `WebhookBatch`.

Errors are values for the HTTP edge: `InvalidPayload` carries the HTTP status (400 unreadable
JSON, 422 schema) and the JSON path of the offending field.
"""

from __future__ import annotations

import re
from typing import Literal

import msgspec

from alert_history.domain.timestamps import NONE_NS, parse_rfc3339_ns
from alert_history.models import ParsedAlert, WebhookBatch

_MAX_ALERTS = 10_000
_MISSING = re.compile(r"Object missing required field `([^`]+)`")


class InvalidPayload(Exception):
    """The body is not an acceptable payload; `path` names the field (`$` for the whole body)."""

    def __init__(self, status: int, path: str, message: str, kind: str) -> None:
        super().__init__(f"{message} at {path}")
        self.status = status
        self.path = path
        self.message = message
        self.kind = kind


class _Alert(msgspec.Struct, kw_only=True):
    labels: dict[str, str]
    startsAt: str
    status: Literal["firing", "resolved"] | None = None
    annotations: dict[str, str] = {}
    endsAt: str | None = None
    generatorURL: str = ""
    fingerprint: str | None = None


class _Webhook(msgspec.Struct, kw_only=True):
    alerts: list[_Alert]
    version: str = "4"
    status: Literal["firing", "resolved"] = "firing"
    receiver: str = ""
    groupKey: str = ""
    truncatedAlerts: int = 0
    groupLabels: dict[str, str] = {}
    commonLabels: dict[str, str] = {}
    commonAnnotations: dict[str, str] = {}
    externalURL: str = ""


_decoder = msgspec.json.Decoder(_Webhook)


def decode_alertmanager_webhook(body: bytes) -> WebhookBatch:
    """Return the validated batch or raise InvalidPayload naming the field."""
    if not body.strip():
        raise InvalidPayload(400, "$", "request body is empty", "empty_body")
    try:
        hook = _decoder.decode(body)
    except msgspec.ValidationError as exc:
        message, _, path = str(exc).rpartition(" - at `")
        if not message:
            message, path = str(exc), "$`"
        path = path.rstrip("`")
        missing = _MISSING.match(message)
        if missing:
            path = f"{path}.{missing.group(1)}"
        raise InvalidPayload(422, path, message, "schema_error") from None
    except msgspec.DecodeError as exc:
        raise InvalidPayload(400, "$", f"unreadable JSON: {exc}", "invalid_json") from None
    except UnicodeDecodeError as exc:
        raise InvalidPayload(
            400, "$", f"body is not valid UTF-8: {exc.reason}", "invalid_json"
        ) from None
    except RecursionError:
        raise InvalidPayload(400, "$", "JSON is nested too deeply", "invalid_json") from None
    if len(hook.alerts) > _MAX_ALERTS:
        raise InvalidPayload(422, "$.alerts", f"more than {_MAX_ALERTS} alerts", "too_many")
    alerts = [_parse_alert(i, alert, hook.status) for i, alert in enumerate(hook.alerts)]
    return WebhookBatch(
        source="alertmanager",
        receiver=hook.receiver,
        group_key=hook.groupKey,
        status=hook.status,
        truncated_alerts=hook.truncatedAlerts,
        alerts=alerts,
    )


def _parse_alert(index: int, alert: _Alert, default_status: str) -> ParsedAlert:
    where = f"$.alerts[{index}]"
    starts_at = _time(alert.startsAt, f"{where}.startsAt")
    if starts_at == NONE_NS:
        raise InvalidPayload(422, f"{where}.startsAt", "startsAt must be set", "value_error")
    ends_at = _time(alert.endsAt, f"{where}.endsAt") if alert.endsAt else NONE_NS
    if ends_at != NONE_NS and ends_at < starts_at:
        raise InvalidPayload(422, f"{where}.endsAt", "endsAt is before startsAt", "value_error")
    status = alert.status or default_status
    fingerprint = alert.fingerprint or None
    if fingerprint is not None and len(fingerprint) > 128:
        raise InvalidPayload(422, f"{where}.fingerprint", "longer than 128", "value_error")
    return ParsedAlert(
        status="resolved" if status == "resolved" else "firing",
        labels=alert.labels,
        annotations=alert.annotations,
        starts_at=starts_at,
        ends_at=ends_at,
        generator_url=alert.generatorURL,
        fingerprint=fingerprint,
    )


def _time(text: str, path: str) -> int:
    try:
        return parse_rfc3339_ns(text)
    except ValueError as exc:
        raise InvalidPayload(422, path, str(exc), "value_error") from None
