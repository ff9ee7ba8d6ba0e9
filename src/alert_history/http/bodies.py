"""Decode a JSON request body into a typed Struct; errors name the field (400 or 422)."""

from __future__ import annotations

import re
from typing import TypeVar

import msgspec

T = TypeVar("T")
_AT = re.compile(r"^(?P<message>.*?)(?: - at `(?P<path>\$[^`]*)`)?$", re.DOTALL)


class BodyError(Exception):
    def __init__(self, status: int, path: str, message: str, kind: str) -> None:
        super().__init__(message)
        self.status = status
        self.path = path
        self.message = message
        self.kind = kind


def decode_body(body: bytes | str, decoder: msgspec.json.Decoder[T]) -> T:
    """Return the decoded body; raise BodyError: 400 unreadable JSON, 422 naming the field."""
    if not body.strip():
        raise BodyError(422, "$", "a JSON body is required", "missing")
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        match = _AT.match(str(exc))
        assert match is not None
        path = match["path"] or "$"
        message = match["message"]
        kind = "missing" if message.startswith("Object missing required field") else "value_error"
        if kind == "missing":
            field = message.rsplit("`", 2)[-2] if message.count("`") >= 2 else ""
            path = f"{path}.{field}" if field else path
            message = "field required"
        raise BodyError(422, path, message, kind) from None
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise BodyError(400, "$", f"unreadable JSON: {exc}", "invalid_json") from None
