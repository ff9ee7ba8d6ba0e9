"""Decode and validate alert payloads into a `WebhookBatch`, detecting the format.

Formats: Alertmanager's v4 webhook, Grafana unified alerting's webhook (the same envelope plus
its own fields), a generic alert (`{"labels": ..., "startsAt": ..., "status": ...}` or a list
of them) and Alertmanager's postable alerts (`POST /api/v2/alerts`, what Prometheus sends).
Errors are values for the HTTP edge: `InvalidPayload` carries the HTTP status (400 unreadable
JSON, 422 schema) and the JSON path of the offending field.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import msgspec

from alert_history.domain.timestamps import NONE_NS, parse_rfc3339_ns
from alert_history.models import ParsedAlert, Status, WebhookBatch

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


class _GrafanaAlert(_Alert, kw_only=True):
    silenceURL: str | None = None
    dashboardURL: str | None = None
    panelURL: str | None = None
    values: dict[str, float | int | None] | None = None
    valueString: str | None = None
    imageURL: str | None = None


class _Webhook(msgspec.Struct, kw_only=True):
    alerts: list[_GrafanaAlert]
    version: str = "4"
    status: Literal["firing", "resolved"] = "firing"
    receiver: str = ""
    groupKey: str = ""
    truncatedAlerts: int = 0
    groupLabels: dict[str, str] = {}
    commonLabels: dict[str, str] = {}
    commonAnnotations: dict[str, str] = {}
    externalURL: str = ""
    # Grafana unified alerting adds these
    orgId: int | None = None
    title: str | None = None
    state: str | None = None
    message: str | None = None


class _GenericAlert(msgspec.Struct, kw_only=True):
    """One alert of a generic payload or of Alertmanager's postable alerts."""

    labels: dict[str, str]
    annotations: dict[str, str] = {}
    startsAt: str | None = None
    endsAt: str | None = None
    status: Literal["firing", "resolved"] | None = None
    generatorURL: str = ""
    fingerprint: str | None = None


_decoder = msgspec.json.Decoder(_Webhook)
_generic_one = msgspec.json.Decoder(_GenericAlert)
_generic_list = msgspec.json.Decoder(list[_GenericAlert])
_any = msgspec.json.Decoder()


def decode_alertmanager_webhook(body: bytes) -> WebhookBatch:
    """Return the validated Alertmanager (or Grafana) batch or raise InvalidPayload."""
    _require_body(body)
    try:
        hook = _decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise _schema_error(exc) from None
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
    envelope = _present(orgId=hook.orgId, title=hook.title, state=hook.state, message=hook.message)
    grafana = envelope is not None
    return WebhookBatch(
        source="grafana" if grafana else "alertmanager",
        receiver=hook.receiver,
        group_key=hook.groupKey,
        status=hook.status,
        truncated_alerts=hook.truncatedAlerts,
        alerts=alerts,
        extra=envelope,
    )


def decode_webhook(body: bytes, now: int) -> WebhookBatch:
    """Detect the format of a `POST /webhook` body and decode it; `now` (ns) for derived times.

    An object with `alerts` is an Alertmanager or Grafana webhook; an object with `labels` a
    generic alert; a list, generic alerts. Anything else is a 422 that says what was tried.
    """
    _require_body(body)
    try:
        return decode_alertmanager_webhook(body)
    except InvalidPayload as webhook_error:
        if webhook_error.status != 422:
            raise
        shape = _any.decode(body)  # valid JSON: decode_alertmanager_webhook read it
        if isinstance(shape, dict) and "alerts" not in shape and "labels" in shape:
            return _generic(body, now, many=False)
        if isinstance(shape, list):
            return _generic(body, now, many=True)
        if isinstance(shape, dict) and "alerts" in shape:
            raise
        raise InvalidPayload(
            422,
            webhook_error.path,
            "body matches none of the supported formats: Alertmanager/Grafana webhook "
            f"({webhook_error.message} at {webhook_error.path}); generic alert (an object "
            "with `labels`, or a list of them: no `labels` found)",
            "unknown_format",
        ) from None


def decode_postable_alerts(body: bytes, now: int) -> WebhookBatch:
    """Decode Alertmanager's `POST /api/v2/alerts` body (a list of alerts, as Prometheus sends)."""
    _require_body(body)
    return _generic(body, now, many=True, source="prometheus")


def _generic(body: bytes, now: int, *, many: bool, source: str = "generic") -> WebhookBatch:
    try:
        items = _generic_list.decode(body) if many else [_generic_one.decode(body)]
    except msgspec.ValidationError as exc:
        raise _schema_error(exc) from None
    except msgspec.DecodeError as exc:
        raise InvalidPayload(400, "$", f"unreadable JSON: {exc}", "invalid_json") from None
    if not items:
        raise InvalidPayload(422, "$", "the list holds no alerts", "value_error")
    if len(items) > _MAX_ALERTS:
        raise InvalidPayload(422, "$", f"more than {_MAX_ALERTS} alerts", "too_many")
    alerts = [_parse_generic(f"$[{i}]" if many else "$", a, now) for i, a in enumerate(items)]
    status: Status = "firing" if any(a.status == "firing" for a in alerts) else "resolved"
    return WebhookBatch(
        source=source, receiver="", group_key="", status=status, truncated_alerts=0, alerts=alerts
    )


def _parse_generic(where: str, alert: _GenericAlert, now: int) -> ParsedAlert:
    starts_at = _time(alert.startsAt, f"{where}.startsAt") if alert.startsAt else NONE_NS
    ends_at = _time(alert.endsAt, f"{where}.endsAt") if alert.endsAt else NONE_NS
    if starts_at == NONE_NS:
        starts_at = now  # Alertmanager's rule for postable alerts without startsAt
    if ends_at != NONE_NS and ends_at < starts_at:
        raise InvalidPayload(422, f"{where}.endsAt", "endsAt is before startsAt", "value_error")
    status = alert.status or ("resolved" if NONE_NS != ends_at <= now else "firing")
    if status == "firing":
        # Prometheus sets endsAt a few resend intervals ahead on every resend of a firing
        # alert; that moving time is not part of the alert's state.
        ends_at = NONE_NS
    return ParsedAlert(
        status="resolved" if status == "resolved" else "firing",
        labels=alert.labels,
        annotations=alert.annotations,
        starts_at=starts_at,
        ends_at=ends_at,
        generator_url=alert.generatorURL,
        fingerprint=alert.fingerprint or None,
    )


def _require_body(body: bytes) -> None:
    if not body.strip():
        raise InvalidPayload(400, "$", "request body is empty", "empty_body")


def _schema_error(exc: msgspec.ValidationError) -> InvalidPayload:
    message, _, path = str(exc).rpartition(" - at `")
    if not message:
        message, path = str(exc), "$`"
    path = path.rstrip("`")
    missing = _MISSING.match(message)
    if missing:
        path = f"{path}.{missing.group(1)}"
    return InvalidPayload(422, path, message, "schema_error")


def _present(**fields: Any) -> dict[str, Any] | None:
    """The fields that were sent (not None), or None when there are none."""
    sent = {name: value for name, value in fields.items() if value is not None}
    return sent or None


def _grafana_extra(alert: _GrafanaAlert) -> dict[str, Any] | None:
    return _present(
        silenceURL=alert.silenceURL, dashboardURL=alert.dashboardURL, panelURL=alert.panelURL,
        values=alert.values, valueString=alert.valueString, imageURL=alert.imageURL,
    )  # fmt: skip


def _parse_alert(index: int, alert: _GrafanaAlert, default_status: str) -> ParsedAlert:
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
        extra=_grafana_extra(alert),
    )


def _time(text: str, path: str) -> int:
    try:
        return parse_rfc3339_ns(text)
    except ValueError as exc:
        raise InvalidPayload(422, path, str(exc), "value_error") from None
