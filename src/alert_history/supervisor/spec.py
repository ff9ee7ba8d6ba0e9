"""What a supervisor is told about its children: restart types, strategies, states, child specs."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import trio


class Restart(enum.Enum):
    """When a child that ended is started again (OTP restart types)."""

    PERMANENT = "permanent"
    """Always restarted, whether it returned or raised, unless the supervisor is stopping."""
    TRANSIENT = "transient"
    """Restarted only when it raised an exception (or failed to start)."""
    TEMPORARY = "temporary"
    """Never restarted."""

    def wants_restart(self, *, failed: bool) -> bool:
        """Return whether a child of this type that ended (`failed` or not) is started again."""
        return self is Restart.PERMANENT or (self is Restart.TRANSIENT and failed)


class Strategy(enum.Enum):
    """Which children a supervisor restarts when one of them crashes."""

    ONE_FOR_ONE = "one_for_one"
    """Only the crashed child."""
    REST_FOR_ONE = "rest_for_one"
    """The crashed child and every child started after it, in start order."""


class ChildState(enum.Enum):
    """Where a child (or a supervisor) is in its lifecycle."""

    STARTING = "starting"
    RUNNING = "running"
    RESTARTING = "restarting"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"
    QUARANTINED = "quarantined"
    """Reserved: a child parked by its owner after repeated failures; never set by `Supervisor`."""


class StartFn(Protocol):
    """Run one incarnation of a child, `nursery.start()`-style.

    Called as `await start(task_status=status)`; the child calls `status.started()` once wired and
    then runs until it returns, raises or is cancelled. `functools.partial(actor.run, inbox, outbox,
    deps=...)` over an actor's `run(inbox, outbox, *, deps, task_status)` fits.
    """

    def __call__(self, *, task_status: trio.TaskStatus[None]) -> Awaitable[None]: ...


class BufferStatistics(Protocol):
    """The part of `trio.MemoryChannelStatistics` that health reports."""

    @property
    def current_buffer_used(self) -> int: ...

    @property
    def max_buffer_size(self) -> int | float: ...


class HasStatistics(Protocol):
    """Anything whose `statistics()` describes a buffer, e.g. a trio memory channel end."""

    def statistics(self) -> BufferStatistics: ...


@dataclass(frozen=True)
class ChildSpec:
    """How to run, restart and stop one child.

    `stop` is a soft stop request (close the actor's upstream channel, set a shutdown event, ...):
    it must not block, and the child should then return by itself. The supervisor waits
    `shutdown_timeout` seconds after calling it (or right away when `stop` is None) and then
    cancels the child. `critical` children must be running for readiness. `inbox`, when given, is
    reported as the child's inbox depth and capacity.
    """

    name: str
    start: StartFn
    restart: Restart = Restart.PERMANENT
    stop: Callable[[], None] | None = None
    shutdown_timeout: float = 5.0
    critical: bool = False
    inbox: HasStatistics | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a child needs a non-empty name")
        if not self.shutdown_timeout >= 0:
            raise ValueError(f"shutdown_timeout must be >= 0, got {self.shutdown_timeout!r}")
