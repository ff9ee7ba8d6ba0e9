"""Pure domain logic: timestamps, fingerprints, payload decoding. No I/O, no trio."""

from alert_history.domain.fingerprint import FingerprintVerifier, fingerprint
from alert_history.domain.matchers import (
    Dialect,
    Matcher,
    MatcherError,
    parse_matchers,
    sql_condition,
    sqlite_regexp,
)
from alert_history.domain.payload import (
    InvalidPayload,
    decode_alertmanager_webhook,
    decode_postable_alerts,
    decode_webhook,
)
from alert_history.domain.timestamps import NONE_NS, format_ns, parse_query_time, parse_rfc3339_ns

__all__ = [
    "NONE_NS",
    "Dialect",
    "FingerprintVerifier",
    "InvalidPayload",
    "Matcher",
    "MatcherError",
    "decode_alertmanager_webhook",
    "decode_postable_alerts",
    "decode_webhook",
    "fingerprint",
    "format_ns",
    "parse_matchers",
    "parse_query_time",
    "parse_rfc3339_ns",
    "sql_condition",
    "sqlite_regexp",
]
