"""Pure domain logic: fingerprints, timestamps, payload validation."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alert_history.domain import (
    NONE_NS,
    FingerprintVerifier,
    InvalidPayload,
    decode_alertmanager_webhook,
    fingerprint,
    format_ns,
    parse_query_time,
    parse_rfc3339_ns,
)
from tests.support import fixture_body


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({"severity": "warning", "job": "foo"}, "9266ef3da838ad95"),
        ({"severity": "critical", "job": "foo"}, "3b15fd163d36582e"),
        ({"severity": "critical", "job": "bar"}, "c7e68cb08e3e67f9"),
        ({}, "cbf29ce484222325"),
    ],
)
def test_fingerprint_matches_alertmanager_test_vectors(
    labels: dict[str, str], expected: str
) -> None:
    assert fingerprint(labels) == expected


@pytest.mark.parametrize("scenario", ["single", "group5", "resolved", "unicode", "amtool"])
def test_fingerprint_matches_every_captured_alertmanager_alert(scenario: str) -> None:
    body = json.loads(fixture_body(scenario))
    for alert in body["alerts"]:
        assert fingerprint(alert["labels"]) == alert["fingerprint"]


def test_verifier_keeps_the_senders_fingerprint_and_counts_mismatches() -> None:
    verifier = FingerprintVerifier(capacity=2)
    labels = {"alertname": "X"}
    assert verifier.resolve("not-the-hash", labels) == ("not-the-hash", False)
    assert verifier.mismatches == 1
    assert verifier.resolve(fingerprint(labels), labels) == (fingerprint(labels), False)
    assert verifier.mismatches == 1
    assert verifier.resolve(None, labels) == (fingerprint(labels), True)


def test_nanoseconds_and_offsets_are_kept_exactly() -> None:
    ns = parse_rfc3339_ns("2024-06-01T12:00:00.123456789+02:00")
    assert format_ns(ns) == "2024-06-01T10:00:00.123456789Z"
    assert parse_rfc3339_ns("2024-06-01T10:00:00.123456789Z") == ns
    assert format_ns(parse_rfc3339_ns("2024-06-01T10:00:00.5-05:30")) == "2024-06-01T15:30:00.5Z"


def test_go_zero_time_means_none() -> None:
    assert parse_rfc3339_ns("0001-01-01T00:00:00Z") == NONE_NS
    assert format_ns(NONE_NS) is None


@pytest.mark.parametrize(
    "text",
    ["", "yesterday", "2024-01-01", "2024-13-01T00:00:00Z", "2024-02-30T00:00:00Z",
     "2024-01-01T25:00:00Z", "2024-01-01T00:00:00.1234567891Z", "9999-01-01T00:00:00Z",
     "2024-01-01T00:00:00+25:00", "2024-01-01T00:00:00"],
)  # fmt: skip
def test_invalid_timestamps_are_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rfc3339_ns(text)


@given(st.integers(min_value=-(2**62), max_value=2**62))
def test_format_then_parse_round_trips(ns: int) -> None:
    if ns == NONE_NS:
        return
    text = format_ns(ns)
    assert text is not None
    assert parse_rfc3339_ns(text) == ns


@given(st.integers(min_value=-(2**62), max_value=2**62))
def test_format_ns_writes_what_strftime_writes(ns: int) -> None:
    if ns == NONE_NS:
        return
    seconds, nanos = divmod(ns, 1_000_000_000)
    base = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    expected = f"{base}.{nanos:09d}".rstrip("0") + "Z" if nanos else base + "Z"
    assert format_ns(ns) == expected


def test_captured_unicode_payload_decodes_with_every_label_intact() -> None:
    raw = fixture_body("unicode")
    batch = decode_alertmanager_webhook(raw)
    parsed = json.loads(raw)
    assert [a.labels for a in batch.alerts] == [a["labels"] for a in parsed["alerts"]]
    assert max(len(v) for a in batch.alerts for v in a.labels.values()) >= 65536


def test_missing_field_is_named_by_its_path() -> None:
    with pytest.raises(InvalidPayload) as info:
        decode_alertmanager_webhook(b'{"alerts": [{"labels": {}}]}')
    assert (info.value.status, info.value.path) == (422, "$.alerts[0].startsAt")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
alert_like = st.fixed_dictionaries(
    {},
    optional={
        "labels": json_values | st.dictionaries(st.text(), st.text(), max_size=3),
        "annotations": json_values,
        "startsAt": json_values | st.just("2026-11-27T10:00:00.123456789Z"),
        "endsAt": json_values | st.just("0001-01-01T00:00:00Z"),
        "status": json_values | st.sampled_from(["firing", "resolved"]),
        "fingerprint": json_values,
    },
)


@given(
    st.fixed_dictionaries({}, optional={"alerts": st.lists(alert_like, max_size=3) | json_values})
    | json_values
)
def test_any_json_is_either_accepted_or_rejected_with_a_named_field(value: object) -> None:
    body = json.dumps(value).encode()
    try:
        batch = decode_alertmanager_webhook(body)
    except InvalidPayload as exc:
        assert exc.status in (400, 422)
        assert exc.path.startswith("$")
        assert exc.message
    else:
        assert all(a.starts_at != NONE_NS for a in batch.alerts)


@given(st.binary(max_size=200))
def test_any_bytes_are_either_accepted_or_rejected_with_a_4xx(body: bytes) -> None:
    try:
        decode_alertmanager_webhook(body)
    except InvalidPayload as exc:
        assert exc.status in (400, 422)


@pytest.mark.parametrize("text", ["infinity", "-inf", "1e400", "nan", "99999999999"])
def test_query_times_out_of_range_are_value_errors(text: str) -> None:
    with pytest.raises(ValueError):
        parse_query_time(text)
