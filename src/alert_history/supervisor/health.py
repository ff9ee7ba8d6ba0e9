"""Frozen health snapshots of a supervision tree, JSON-friendly through `to_dict()`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from alert_history.supervisor.spec import ChildState


def _rfc3339(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def _innermost(exc: BaseException) -> BaseException:
    # A child's nursery wraps even a single error in an ExceptionGroup; report the error itself.
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


@dataclass(frozen=True)
class ErrorInfo:
    """The last error a child ended with."""

    type: str
    message: str
    at: datetime

    @classmethod
    def from_exception(cls, exc: BaseException, at: datetime) -> ErrorInfo:
        """Describe `exc`, looking through single-member exception groups."""
        inner = _innermost(exc)
        return cls(type=type(inner).__name__, message=str(inner), at=at)

    def to_dict(self) -> dict[str, object]:
        """Return a plain dict with `at` as an RFC 3339 string."""
        return {"type": self.type, "message": self.message, "at": _rfc3339(self.at)}


@dataclass(frozen=True)
class ChildHealth:
    """One leaf child as its supervisor sees it."""

    name: str
    state: ChildState
    restarts: int
    last_error: ErrorInfo | None
    since: datetime
    restart_type: str
    critical: bool
    inbox_depth: int | None
    inbox_capacity: int | None

    def to_dict(self) -> dict[str, object]:
        """Return a plain dict (`kind` is "child")."""
        return {
            "kind": "child",
            "name": self.name,
            "state": self.state.value,
            "restarts": self.restarts,
            "last_error": None if self.last_error is None else self.last_error.to_dict(),
            "since": _rfc3339(self.since),
            "restart_type": self.restart_type,
            "critical": self.critical,
            "inbox_depth": self.inbox_depth,
            "inbox_capacity": self.inbox_capacity,
        }


@dataclass(frozen=True)
class SupervisorHealth:
    """A supervisor and, recursively, its children.

    For a nested supervisor, `state`, `restarts`, `last_error` and `since` are as its parent sees
    it (so a supervisor waiting out its backoff reads "restarting"); for the root they describe its
    own run. `gave_up` tells whether its latest run ended by exceeding its restart intensity.
    """

    name: str
    strategy: str
    state: ChildState
    restarts: int
    children: tuple[ChildHealth | SupervisorHealth, ...]
    gave_up: bool
    last_error: ErrorInfo | None = None
    since: datetime | None = None

    def to_dict(self) -> dict[str, object]:
        """Return a nested plain dict (`kind` is "supervisor"), as served by /health/supervisor."""
        return {
            "kind": "supervisor",
            "name": self.name,
            "strategy": self.strategy,
            "state": self.state.value,
            "restarts": self.restarts,
            "gave_up": self.gave_up,
            "last_error": None if self.last_error is None else self.last_error.to_dict(),
            "since": None if self.since is None else _rfc3339(self.since),
            "children": [child.to_dict() for child in self.children],
        }

    def walk(self) -> Iterator[ChildHealth]:
        """Yield every leaf child, depth first in start order."""
        for child in self.children:
            if isinstance(child, SupervisorHealth):
                yield from child.walk()
            else:
                yield child

    def critical_children_running(self) -> bool:
        """Return whether every critical leaf child, at any depth, is running."""
        return all(child.state is ChildState.RUNNING for child in self.walk() if child.critical)
