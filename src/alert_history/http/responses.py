"""JSON responses and errors in the legacy shape: `{"detail": ...}`."""

from __future__ import annotations

from typing import Any

import msgspec
from quart import Response

_encode = msgspec.json.Encoder().encode


def json_response(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        _encode(payload), status=status, headers=headers, content_type="application/json"
    )


def error(status: int, detail: Any, headers: dict[str, str] | None = None) -> Response:
    return json_response({"detail": detail}, status, headers)


def field_error(status: int, path: str, message: str, kind: str) -> Response:
    """A 4xx naming the offending field, shaped like FastAPI's validation errors."""
    loc: list[str | int] = ["body"] if path.startswith("$") else ["query"]
    loc.extend(_path_parts(path))
    return json_response(
        {"detail": [{"loc": loc, "msg": message, "type": kind, "field": path}]}, status
    )


def _path_parts(path: str) -> list[str | int]:
    """`$.alerts[3].startsAt` -> ["alerts", 3, "startsAt"]; a query name stays as it is."""
    if not path.startswith("$"):
        return [path]
    parts: list[str | int] = []
    for chunk in path[1:].replace("[", ".[").split("."):
        if not chunk:
            continue
        if chunk.startswith("[") and chunk.endswith("]"):
            inner = chunk[1:-1]
            parts.append(int(inner) if inner.isdigit() else inner)
        else:
            parts.append(chunk)
    return parts
