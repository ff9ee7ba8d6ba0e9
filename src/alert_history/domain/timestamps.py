"""RFC 3339 timestamps with nanosecond precision, as integers of nanoseconds since the epoch.

Alertmanager sends up to 9 fractional digits and any UTC offset; `0001-01-01T00:00:00Z` means
"no time". msgspec and `datetime` keep only microseconds, so timestamps are parsed here.
"""

from __future__ import annotations

import calendar
import functools
import math
import re
from datetime import UTC, datetime, timedelta

#: The stored value for "no time" (Alertmanager's zero time `0001-01-01T00:00:00Z`).
NONE_NS = 0
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TWO = [f"{i:02d}" for i in range(100)]

_ZERO_TIME_YEAR = 1
# int64 nanoseconds cover 1677-09-21 .. 2262-04-11; keep a margin on both sides.
_MIN_YEAR = 1678
_MAX_YEAR = 2261
_MAX_UNIX_SECONDS = 9_000_000_000  # about year 2255

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})\Z"
)


@functools.lru_cache(maxsize=16_384)  # Alertmanager re-sends the same timestamps all the time
def parse_rfc3339_ns(text: str) -> int:
    """Return nanoseconds since the epoch, or `NONE_NS` for Go's zero time.

    Raises ValueError with a message fit for an API error on anything else.
    """
    match = _RFC3339.match(text)
    if match is None:
        raise ValueError(f"not an RFC 3339 timestamp: {text[:64]!r}")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction, offset = match.group(7), match.group(8)
    if year == _ZERO_TIME_YEAR and month == 1 and day == 1 and not (hour or minute or second):
        return NONE_NS
    if not _MIN_YEAR <= year <= _MAX_YEAR:
        raise ValueError(f"year {year} is outside {_MIN_YEAR}..{_MAX_YEAR}")
    try:
        # validates the calendar (month 13, Feb 30, hour 25 ...)
        datetime(year, month, day, hour, minute, min(second, 59))
    except ValueError as exc:
        raise ValueError(f"invalid timestamp {text[:64]!r}: {exc}") from None
    if second > 60:
        raise ValueError(f"invalid timestamp {text[:64]!r}: second out of range")
    seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    if offset not in ("Z", "z"):
        sign = 1 if offset[0] == "+" else -1
        off_h, off_m = int(offset[1:3]), int(offset[4:6])
        if off_h > 23 or off_m > 59:
            raise ValueError(f"invalid UTC offset {offset!r}")
        seconds -= sign * (off_h * 3600 + off_m * 60)
    nanos = int(fraction.ljust(9, "0")) if fraction else 0
    return seconds * 1_000_000_000 + nanos


def format_ns(ns: int) -> str | None:
    """Format as RFC 3339 in UTC like Go's RFC3339Nano (trailing zeros trimmed); None for none."""
    if ns == NONE_NS:
        return None
    # by hand but for the minute: a timeline or a page of history formats hundreds of times
    seconds, nanos = divmod(ns, 1_000_000_000)
    minutes, secs = divmod(seconds, 60)
    if nanos:
        fraction = ("." + str(1_000_000_000 + nanos)[1:]).rstrip("0")
        return _minute_prefix(minutes) + _TWO[secs] + fraction + "Z"
    return _minute_prefix(minutes) + _TWO[secs] + "Z"


@functools.lru_cache(maxsize=4096)
def _minute_prefix(minutes: int) -> str:
    """`YYYY-MM-DDTHH:MM:` of a minute counted from the epoch (as strftime writes it)."""
    return (_EPOCH + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:")


def parse_query_time(text: str) -> int:
    """Parse a query parameter time: RFC 3339, or ISO 8601 without offset (taken as UTC), or a date.

    Legacy clients send `since=2024-06-01T00:00:00` (no offset); Unix seconds are accepted too.
    """
    text = text.strip()
    try:
        return parse_rfc3339_ns(text)
    except ValueError:
        pass
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds) or abs(seconds) > _MAX_UNIX_SECONDS:
            raise ValueError(f"Unix time out of range: {text[:64]!r}")
        return int(seconds * 1_000_000_000)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not an ISO 8601 time: {text[:64]!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    if not _MIN_YEAR <= parsed.year <= _MAX_YEAR:
        raise ValueError(f"year {parsed.year} is outside {_MIN_YEAR}..{_MAX_YEAR}")
    delta = parsed - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000
