"""One child's lifecycle inside a supervisor: its record, its incarnations, its health row.

The record runs incarnations and keeps their bookkeeping (state, timestamps, last error); what to
do when one ends is the supervisor's decision, so an unexpected end is only reported through
`pending` and the `wake` callback.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import trio

from alert_history.supervisor.health import ChildHealth, ErrorInfo
from alert_history.supervisor.spec import ChildSpec, ChildState, Restart

if TYPE_CHECKING:
    from alert_history.supervisor.core import Supervisor


class Status(trio.TaskStatus[None]):
    """The `task_status` handed to one incarnation; `started()` reports back to the record."""

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

    `claimed` means a starter waits on `settled` and itself handles an end before `started()`;
    any other unexpected end goes to the supervisor as `pending`. `expected` means the supervisor
    ended it on purpose (stop, terminate, or a rest_for_one restart).
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
    wall_clock: Callable[[], datetime]
    wake: Callable[[], None]
    state: ChildState = ChildState.STOPPED
    since: datetime = field(init=False)
    restarts: int = 0
    last_error: ErrorInfo | None = None
    attempt: int = 0
    inc: Incarnation | None = None
    pending: Incarnation | None = None
    stop_requested: bool = False

    def __post_init__(self) -> None:
        self.since = self.wall_clock()

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def restart(self) -> Restart:
        # A nested supervisor is permanent, as OTP recommends for supervisor children.
        return self.spec.restart if isinstance(self.spec, ChildSpec) else Restart.PERMANENT

    def set_state(self, state: ChildState) -> None:
        if state is not self.state:
            self.state = state
            self.since = self.wall_clock()

    def reset_for_run(self) -> None:
        """Forget the previous run's incarnations; keep the restart count and last error."""
        self.attempt = 0
        self.inc = None
        self.pending = None
        self.stop_requested = False

    def settle(self) -> None:
        """Give a child whose last incarnation is over its final state: failed or stopped."""
        if self.state not in (ChildState.STOPPED, ChildState.FAILED):
            failed = self.inc is not None and self.inc.error is not None
            self.set_state(ChildState.FAILED if failed else ChildState.STOPPED)
        self.pending = None

    def new_incarnation(self, delay: float, *, claimed: bool) -> Incarnation:
        self.inc = Incarnation(delay=delay, claimed=claimed)
        self.pending = None
        self.set_state(ChildState.RESTARTING if delay > 0 else ChildState.STARTING)
        return self.inc

    async def run_incarnation(self, inc: Incarnation) -> None:
        """Sleep `inc.delay`, run the child until it ends, record how; never raise its errors."""
        ended = False
        try:
            with inc.scope:
                try:
                    if inc.delay > 0:
                        await trio.sleep(inc.delay)
                        self.set_state(ChildState.STARTING)
                    status = Status(functools.partial(self._on_started, inc))
                    if isinstance(self.spec, ChildSpec):
                        await self.spec.start(task_status=status)
                    else:
                        await self.spec.run(task_status=status)
                except Exception as exc:
                    inc.error = exc
            ended = True
        except Exception as exc:  # what a cancel scope leaves of a group once its Cancelled is out
            inc.error = exc
            ended = True
        finally:
            self._on_exited(inc, cancelled_from_outside=not ended)

    def _on_started(self, inc: Incarnation) -> None:
        inc.started_at = trio.current_time()
        if not (inc.expected or self.stop_requested):
            self.set_state(ChildState.RUNNING)
        inc.settled.set()

    def _on_exited(self, inc: Incarnation, *, cancelled_from_outside: bool) -> None:
        inc.done = True
        expected = inc.expected or self.stop_requested or inc.scope.cancelled_caught
        if not (inc.started or inc.error is not None or expected or cancelled_from_outside):
            inc.error = RuntimeError(f"{self.name!r} exited without calling started()")
        if inc.error is not None:
            self.last_error = ErrorInfo.from_exception(inc.error, self.wall_clock())
        inc.settled.set()
        inc.exited.set()
        if self.inc is not inc:
            return
        if expected or cancelled_from_outside:
            self.set_state(ChildState.STOPPED)
        elif not (inc.claimed and not inc.started):
            self.pending = inc
            self.wake()

    def leaf_health(self, spec: ChildSpec) -> ChildHealth:
        """Snapshot this child, whose spec is `spec`, with its inbox depth and capacity."""
        depth: int | None = None
        capacity: int | None = None
        if spec.inbox is not None:
            stats = spec.inbox.statistics()
            depth = stats.current_buffer_used
            capacity = int(stats.max_buffer_size) if math.isfinite(stats.max_buffer_size) else None
        return ChildHealth(
            name=self.name,
            state=self.state,
            restarts=self.restarts,
            last_error=self.last_error,
            since=self.since,
            restart_type=self.restart.value,
            critical=spec.critical,
            inbox_depth=depth,
            inbox_capacity=capacity,
        )
