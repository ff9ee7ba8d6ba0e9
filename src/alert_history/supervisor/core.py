"""The Supervisor: starts children in order, restarts them by policy, stops them in reverse order.

Each incarnation of a child is one task in the supervisor's nursery, inside its own cancel scope.
A task that ends reports to the manager loop in `run()`, which applies the restart policy; that one
loop is the only place that restarts children, so decisions are serial as in OTP, while one_for_one
backoff sleeps run inside the restarted child's own task and never delay its siblings.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import trio

from alert_history.errors import SupervisorGaveUp
from alert_history.supervisor._child import ChildRecord, Incarnation
from alert_history.supervisor.health import ChildHealth, ErrorInfo, SupervisorHealth
from alert_history.supervisor.intensity import Backoff, Intensity, RestartWindow, next_attempt
from alert_history.supervisor.spec import ChildSpec, ChildState, Strategy


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Supervisor:
    """Supervise trio tasks OTP-style: restart policies, restart intensity, ordered shutdown.

    Children are `ChildSpec`s or nested supervisors (whose `run` is their start). `run()` returns
    after `stop()`, or raises `SupervisorGaveUp` once more than `intensity.max_restarts` restarts
    happened within `intensity.period` seconds; a parent supervisor counts that as a crash.
    """

    def __init__(
        self,
        name: str,
        children: Sequence[ChildSpec | Supervisor],
        *,
        strategy: Strategy = Strategy.ONE_FOR_ONE,
        intensity: Intensity = Intensity(),  # noqa: B008 - frozen value object
        backoff: Backoff = Backoff(),  # noqa: B008 - frozen value object
        rng: random.Random | None = None,
        wall_clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        if not name:
            raise ValueError("a supervisor needs a non-empty name")
        names = [child.name for child in children]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"supervisor {name!r}: duplicate child names {duplicates}")
        self._name = name
        self._strategy = strategy
        self._intensity = intensity
        self._backoff = backoff
        self._rng = rng if rng is not None else random.Random()
        self._wall_clock = wall_clock
        self._log = logging.getLogger("alert_history.supervisor")
        now = wall_clock()
        self._static = [ChildRecord(child, wall_clock, self._wake) for child in children]
        self._children = list(self._static)
        self._state = ChildState.STOPPED
        self._since = now
        self._last_error: ErrorInfo | None = None
        self._active = False
        self._stop_pending = False
        self._stopping = False
        self._gave_up: tuple[str, Exception | None] | None = None
        self._window = RestartWindow(intensity)
        self._nursery: trio.Nursery | None = None
        self._wakeup = trio.Event()
        self._finished = trio.Event()
        self._work_scope = trio.CancelScope()
        self._drain_scope = trio.CancelScope()

    @property
    def name(self) -> str:
        return self._name

    @property
    def stopping(self) -> bool:
        """Whether `stop()` was called (or the supervisor is draining after giving up)."""
        return self._stopping or self._stop_pending

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start every child in order, then supervise them until stopped or giving up.

        Each child is started only after the previous one called `task_status.started()`; this
        supervisor's `task_status.started()` follows the last. A child that fails to start is
        restarted by policy before the next one starts. Raises `SupervisorGaveUp` after stopping
        the remaining children when restart intensity is exceeded; returns after `stop()`.
        """
        if self._active:
            raise RuntimeError(f"supervisor {self._name!r} is already running")
        self._begin_run()
        started = False
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                with self._work_scope:
                    if not self._stopping:
                        await self._bring_up(list(self._children), 0.0)
                    if not self._stopping and self._gave_up is None:
                        self._set_state(ChildState.RUNNING)
                        started = True
                        task_status.started()
                        await self._supervise()
                await self._drain()
                nursery.cancel_scope.cancel()
        finally:
            self._end_run()
        if self._gave_up is not None:
            child, cause = self._gave_up
            raise SupervisorGaveUp(self._name, child, cause) from cause
        if not started:
            # Stopped while starting: report started so a `nursery.start(sup.run)` caller resumes.
            task_status.started()

    async def stop(self, deadline: float | None = None) -> None:
        """Stop every child in reverse start order and return once `run()` has returned.

        No child is restarted from now on. Each child gets its `stop()` request and up to its
        `shutdown_timeout` to return before it is cancelled; a nested supervisor is stopped
        through its own `stop()`. After `deadline` seconds, whatever is left is cancelled.
        Safe to call twice; called before `run()`, it makes the next `run()` return at once.
        """
        if not self._active:
            self._stop_pending = True
            return
        finished = self._finished
        self._stopping = True
        if deadline is not None:
            at = trio.current_time() + deadline
            self._drain_scope.deadline = min(self._drain_scope.deadline, at)
        self._work_scope.cancel()
        await finished.wait()

    async def start_child(self, spec: ChildSpec | Supervisor) -> None:
        """Add a child after the others and wait until it has started.

        Raises ValueError if the name is taken, RuntimeError if the supervisor is not running,
        and, like `nursery.start()`, whatever the child raised before calling `started()`
        (the child is then not added).
        """
        if self._nursery is None or self._stopping:
            raise RuntimeError(f"supervisor {self._name!r} is not running")
        if any(child.name == spec.name for child in self._children):
            raise ValueError(f"supervisor {self._name!r} already has a child {spec.name!r}")
        child = ChildRecord(spec, self._wall_clock, self._wake)
        self._children.append(child)
        inc = self._spawn(child, 0.0, claimed=True)
        await inc.settled.wait()
        if inc.started:
            return
        if child in self._children:
            self._children.remove(child)
        if inc.error is not None and not inc.expected:
            raise inc.error
        raise RuntimeError(f"supervisor {self._name!r} stopped before {spec.name!r} started")

    async def terminate_child(self, name: str) -> None:
        """Stop one child (its `stop()`, `shutdown_timeout`, then cancel) and remove it.

        Raises KeyError if there is no such child.
        """
        child = next((c for c in self._children if c.name == name), None)
        if child is None:
            raise KeyError(name)
        await self._stop_child(child)
        if child in self._children:
            self._children.remove(child)

    def health(self) -> SupervisorHealth:
        """Return a snapshot of this supervisor and, recursively, its children."""
        return SupervisorHealth(
            name=self._name,
            strategy=self._strategy.value,
            state=self._state,
            restarts=0,
            children=tuple(self._child_health(child) for child in self._children),
            gave_up=self._gave_up is not None,
            last_error=self._last_error,
            since=self._since,
        )

    # -- the manager loop --------------------------------------------------------------------

    async def _supervise(self) -> None:
        while not self._stopping and self._gave_up is None:
            # A fresh event before the scan: exits reported while handling wake the next round.
            self._wakeup = trio.Event()
            for child in list(self._children):
                inc = child.pending
                if inc is None:
                    continue
                child.pending = None
                await self._handle_exit(child, inc)
                if self._stopping or self._gave_up is not None:
                    return
            await self._wakeup.wait()

    async def _handle_exit(self, child: ChildRecord, inc: Incarnation) -> None:
        delay = self._after_exit(child, inc)
        if delay is None:
            return
        if self._strategy is Strategy.ONE_FOR_ONE:
            self._spawn(child, delay, claimed=False)
            return
        later = self._later_siblings(child)
        for sibling in reversed(later):
            await self._cancel_for_restart(sibling)
        await self._bring_up([child, *later], delay)

    async def _bring_up(self, children: list[ChildRecord], delay: float) -> None:
        """Start `children` in order, the first after `delay`; retry failed starts by policy."""
        for child in children:
            while not (self._stopping or self._gave_up is not None or child.stop_requested):
                inc = self._spawn(child, delay, claimed=True)
                delay = 0.0
                await inc.settled.wait()
                if inc.started or inc.expected:
                    break
                retry = self._after_exit(child, inc)
                if retry is None:
                    break
                delay = retry

    def _after_exit(self, child: ChildRecord, inc: Incarnation) -> float | None:
        """Apply the restart policy to an unexpected exit; return the backoff delay, or None."""
        failure = inc.error
        wanted = child.restart.wants_restart(failed=failure is not None)
        if self._stopping or child.stop_requested or not wanted:
            child.set_state(ChildState.STOPPED if failure is None else ChildState.FAILED)
            if failure is not None:
                self._warn("child failed and is not restarted", child, failure)
            return None
        now = trio.current_time()
        child.restarts += 1
        if not self._window.record(now):
            self._gave_up = (child.name, failure)
            child.set_state(ChildState.FAILED)
            self._warn("restart intensity exceeded; supervisor gives up", child, failure)
            return None
        ran_for = None if inc.started_at is None else now - inc.started_at
        child.attempt = next_attempt(child.attempt, ran_for, self._intensity.period)
        delay = self._backoff.delay(child.attempt, self._rng.random())
        child.set_state(ChildState.RESTARTING)
        self._warn("child ended; restarting", child, failure, attempt=child.attempt, delay=delay)
        return delay

    def _later_siblings(self, child: ChildRecord) -> list[ChildRecord]:
        """Children after `child` that rest_for_one restarts along with it."""
        later: list[ChildRecord] = []
        for sibling in self._children[self._children.index(child) + 1 :]:
            if sibling.stop_requested:
                continue
            if sibling.pending is not None:
                # It crashed too; restarting it here subsumes handling that crash.
                sibling.pending = None
                later.append(sibling)
            elif (
                sibling.inc is not None
                and not sibling.inc.done
                # A claimed incarnation not yet started belongs to a concurrent start_child,
                # which is still waiting for it: leave that one alone.
                and (sibling.inc.started or not sibling.inc.claimed)
            ):
                later.append(sibling)
        return later

    async def _cancel_for_restart(self, child: ChildRecord) -> None:
        inc = child.inc
        if inc is not None and not inc.done:
            inc.expected = True
            inc.scope.cancel()
            await inc.exited.wait()
        child.set_state(ChildState.RESTARTING)

    # -- incarnations and stopping ----------------------------------------------------------

    def _spawn(self, child: ChildRecord, delay: float, *, claimed: bool) -> Incarnation:
        assert self._nursery is not None, "spawn outside run()"
        inc = child.new_incarnation(delay, claimed=claimed)
        self._nursery.start_soon(child.run_incarnation, inc, name=f"{self._name}/{child.name}")
        return inc

    def _wake(self) -> None:
        self._wakeup.set()

    async def _drain(self) -> None:
        self._stopping = True
        self._set_state(ChildState.STOPPING)
        with self._drain_scope:
            for child in reversed(list(self._children)):
                await self._stop_child(child)

    async def _stop_child(self, child: ChildRecord) -> None:
        inc = child.inc
        if child.stop_requested:
            # Someone else is already stopping it: just wait for the end.
            if inc is not None and not inc.done:
                await inc.exited.wait()
            return
        child.stop_requested = True
        if inc is None or inc.done:
            child.settle()
            return
        inc.expected = True
        if inc.started:
            child.set_state(ChildState.STOPPING)
            await self._request_stop(child, inc)
        inc.scope.cancel()
        await inc.exited.wait()

    async def _request_stop(self, child: ChildRecord, inc: Incarnation) -> None:
        spec = child.spec
        if isinstance(spec, Supervisor):
            if not spec._active:
                return
            # Like OTP's `shutdown => infinity` for supervisors: it bounds itself by its children.
            left = self._drain_scope.deadline - trio.current_time()
            await spec.stop(deadline=max(left, 0.0) if math.isfinite(left) else None)
            return
        if spec.stop is None:
            return
        try:
            spec.stop()
        except Exception as exc:
            self._warn("stop request raised; cancelling the child", child, exc)
            return
        with trio.move_on_after(spec.shutdown_timeout):
            await inc.exited.wait()

    # -- state, health, logging --------------------------------------------------------------

    def _begin_run(self) -> None:
        self._active = True
        self._stopping, self._stop_pending = self._stop_pending, False
        self._gave_up = None
        self._window = RestartWindow(self._intensity)
        self._children = list(self._static)
        for child in self._children:
            child.reset_for_run()
        self._wakeup = trio.Event()
        self._finished = trio.Event()
        self._work_scope = trio.CancelScope()
        self._drain_scope = trio.CancelScope()
        self._set_state(ChildState.STARTING)

    def _end_run(self) -> None:
        self._nursery = None
        self._active = False
        for child in self._children:
            child.settle()  # after a cancellation from outside, nothing else did
        if self._gave_up is not None:
            gave_up = SupervisorGaveUp(self._name, *self._gave_up)
            self._last_error = ErrorInfo.from_exception(gave_up, self._wall_clock())
        self._set_state(ChildState.FAILED if self._gave_up is not None else ChildState.STOPPED)
        self._finished.set()

    def _set_state(self, state: ChildState) -> None:
        if state is not self._state:
            self._state = state
            self._since = self._wall_clock()

    def _child_health(self, child: ChildRecord) -> ChildHealth | SupervisorHealth:
        if isinstance(child.spec, ChildSpec):
            return child.leaf_health(child.spec)
        # A nested supervisor reports its subtree; its own row is what this parent sees.
        return dataclasses.replace(
            child.spec.health(),
            state=child.state,
            restarts=child.restarts,
            last_error=child.last_error,
            since=child.since,
        )

    def _warn(
        self, message: str, child: ChildRecord, error: Exception | None, **extra: object
    ) -> None:
        self._log.warning(
            "supervisor %r, child %r: %s (%r)",
            self._name,
            child.name,
            message,
            error,
            extra={
                "supervisor": self._name,
                "child": child.name,
                "restarts": child.restarts,
                "error_type": None if error is None else type(error).__name__,
                "error_message": None if error is None else str(error),
                **extra,
            },
        )
