"""Redaction: the settings as plain data with every secret replaced by `***`.

Secrets are recognised by rule rather than listed one by one, so a field added later is
covered: fields named like a credential (`api_key`, `*_password`, `*_token`, `*_secret`),
and the password and credential-like query parameters of any URL-shaped string.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from alert_history.config.settings import Settings

MASK = "***"

_SECRET_FIELD = re.compile(r"(?:^|_)(?:api_key|key|password|passwd|token|secret)$", re.IGNORECASE)
# libpq and redis-py both accept credentials as query parameters (`?password=...`).
_SECRET_PARAM = re.compile(r"pass|pwd|secret|token|key|auth|credential", re.IGNORECASE)
_QUERY_PARAM = re.compile(r"(?P<lead>[?&;])(?P<name>[^=&;#]*)=(?P<value>[^&;#]*)")


def redacted(settings: Settings) -> dict[str, object]:
    """Return `settings` as a nested plain dict that is safe to print and log."""
    data: dict[str, object] = _redact_tree("", msgspec.to_builtins(settings))
    return data


def redact_url(url: str) -> str:
    """Mask the userinfo password and credential query parameters of `url`.

    Everything up to the last `@` counts as userinfo, so a password containing a raw
    `@` or `/` is still masked whole; an odd URL is over-redacted rather than leaked.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    userinfo, at, hostpart = rest.rpartition("@")
    if at:
        user, colon, _password = userinfo.partition(":")
        rest = f"{user}:{MASK}@{hostpart}" if colon else rest
    return f"{scheme}://{_QUERY_PARAM.sub(_mask_param, rest)}"


def redact_value(name: str, value: object) -> object:
    """Return `value` of the field `name` with any secret in it masked."""
    if value is None:
        return None
    if isinstance(value, str):
        if _SECRET_FIELD.search(name):
            return MASK
        if "://" in value:
            return redact_url(value)
    return value


def _redact_tree(name: str, data: Any) -> Any:
    if isinstance(data, dict):
        return {key: _redact_tree(str(key), value) for key, value in data.items()}
    if isinstance(data, list):
        return [_redact_tree(name, item) for item in data]
    return redact_value(name, data)


def _mask_param(match: re.Match[str]) -> str:
    if _SECRET_PARAM.search(match["name"]) and match["value"]:
        return f"{match['lead']}{match['name']}={MASK}"
    return match.group(0)
