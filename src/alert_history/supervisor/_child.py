"""Per-child bookkeeping of a running supervisor: one record per child, one per incarnation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import trio

from alert_history.supervisor.health import ErrorInfo
from alert_history.supervisor.spec import ChildSpec, ChildState, Restart

if TYPE_CHECKING:
    from alert_history.supervisor.core import Supervisor


class Status(trio.TaskStatus[None]):
    """The `task_status` handed to one incarnation; `started()` reports back to the supervisor."""

    def __init__(self, on_started: Callable[[], None]) -> None:
        self._on_started = on_started
        self._called = False

    def started(self, value: None = None) -> None:
        if self._called:
            raise RuntimeError("called 'started' twice on the same task status")
        self._called = True
        self._on_started()


@dataclass(eq=False)
class Incarnation:
    """One run of a child, from its (optional) backoff sleep until it ends.

    `claimed` means a starter is waiting on `settled` and handles an exit before `started()`
    itself; otherwise every unexpected exit goes to the supervisor's restart logic. `expected`
    means the supervisor ended it on purpose (stop, terminate, or a rest_for_one restart).
    """

    delay: float
    claimed: bool
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    settled: trio.Event = field(default_factory=trio.Event)
    exited: trio.Event = field(default_factory=trio.Event)
    started_at: float | None = None
    error: Exception | None = None
    done: bool = False
    expected: bool = False

    @property
    def started(self) -> bool:
        return self.started_at is not None


@dataclass(eq=False)
class ChildRecord:
    """What a supervisor knows about one child, across its incarnations."""

    spec: ChildSpec | Supervisor
    state: ChildState
    since: datetime
    restarts: int = 0
    last_error: ErrorInfo | None = None
    attempt: int = 0
    inc: Incarnation | None = None
    pending: Incarnation | None = None
    stop_requested: bool = False

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def restart(self) -> Restart:
        # A nested supervisor is permanent, as OTP recommends for supervisor children.
        return self.spec.restart if isinstance(self.spec, ChildSpec) else Restart.PERMANENT

    def reset_for_run(self) -> None:
        """Forget the previous run's incarnations; keep the restart count and last error."""
        self.attempt = 0
        self.inc = None
        self.pending = None
        self.stop_requested = False
