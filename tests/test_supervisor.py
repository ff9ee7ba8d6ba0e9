"""Supervisor behaviour under a virtual clock: restarts, strategies, intensity, shutdown, health."""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from alert_history.errors import SupervisorGaveUp
from alert_history.supervisor import (
    Backoff,
    ChildHealth,
    ChildSpec,
    ChildState,
    ErrorInfo,
    Intensity,
    Restart,
    RestartWindow,
    Strategy,
    Supervisor,
    SupervisorHealth,
    next_attempt,
)

WALL = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
LIMIT = 120.0  # virtual seconds; a deadlock makes the autojump clock reach it at once


class Actor:
    """A scripted child that records each incarnation and obeys crash(), finish() and stop()."""

    def __init__(
        self,
        name: str,
        journal: list[str] | None = None,
        *,
        crash_on_start: int = 0,
        fail_before_started: int = 0,
        stall_before_started: bool = False,
        ignore_stop: bool = False,
    ) -> None:
        self.name = name
        self.journal = journal if journal is not None else []
        self.started_at: list[float] = []
        self.ended_at: list[float] = []
        self.outcomes: list[str] = []
        self.stop_calls = 0
        self._crash_on_start = crash_on_start
        self._fail_before_started = fail_before_started
        self._stall_before_started = stall_before_started
        self._ignore_stop = ignore_stop
        self._command: str | None = None
        self._wake = trio.Event()
        self._changed = trio.Event()

    def spec(
        self,
        *,
        restart: Restart = Restart.PERMANENT,
        shutdown_timeout: float = 5.0,
        critical: bool = False,
        soft_stop: bool = True,
        inbox: trio.MemoryReceiveChannel[int] | None = None,
    ) -> ChildSpec:
        return ChildSpec(
            name=self.name,
            start=self.run,
            restart=restart,
            stop=self.stop if soft_stop else None,
            shutdown_timeout=shutdown_timeout,
            critical=critical,
            inbox=inbox,
        )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        if self._fail_before_started > 0:
            self._fail_before_started -= 1
            self.journal.append(f"failed start {self.name}")
            self._signal()
            raise OSError(f"{self.name} cannot reach its database")
        if self._stall_before_started:
            self.journal.append(f"stalling {self.name}")
            self._signal()
            await trio.sleep_forever()
        self._command = None
        self._wake = trio.Event()
        self.started_at.append(trio.current_time())
        self.journal.append(f"start {self.name}")
        task_status.started()
        self._signal()
        outcome = "cancelled"
        try:
            if self._crash_on_start > 0:
                self._crash_on_start -= 1
                outcome = "crashed"
                raise ValueError(f"{self.name} crashed")
            while True:
                await self._wake.wait()
                self._wake = trio.Event()
                if self._command == "crash":
                    outcome = "crashed"
                    raise ValueError(f"{self.name} crashed")
                if self._command == "finish" or not self._ignore_stop:
                    outcome = "returned"
                    return
        finally:
            self.outcomes.append(outcome)
            self.ended_at.append(trio.current_time())
            self.journal.append(f"end {self.name}")
            self._signal()

    def stop(self) -> None:
        self.stop_calls += 1
        self.journal.append(f"stop {self.name}")
        self._send("stop")

    def crash(self) -> None:
        self._send("crash")

    def finish(self) -> None:
        self._send("finish")

    async def until(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            await self._changed.wait()

    async def started(self, times: int) -> None:
        await self.until(lambda: len(self.started_at) >= times)

    async def ended(self, times: int) -> None:
        await self.until(lambda: len(self.ended_at) >= times)

    @property
    def up(self) -> bool:
        return len(self.started_at) > len(self.ended_at)

    def _send(self, command: str) -> None:
        self._command = command
        self._wake.set()

    def _signal(self) -> None:
        self._changed.set()
        self._changed = trio.Event()


def supervisor(
    name: str,
    children: Sequence[ChildSpec | Supervisor],
    *,
    strategy: Strategy = Strategy.ONE_FOR_ONE,
    intensity: Intensity | None = None,
    backoff: Backoff | None = None,
) -> Supervisor:
    return Supervisor(
        name,
        children,
        strategy=strategy,
        intensity=intensity or Intensity(),
        backoff=backoff or Backoff(jitter=0.0),
        rng=random.Random(7),
        wall_clock=lambda: WALL,
    )


def child_health(health: SupervisorHealth, name: str) -> ChildHealth | SupervisorHealth:
    return next(child for child in health.children if child.name == name)


# -- pure cores -------------------------------------------------------------------------------


def test_backoff_doubles_from_initial_and_caps_at_maximum_without_jitter() -> None:
    backoff = Backoff(initial=0.1, maximum=1.0, multiplier=2.0, jitter=0.0)

    delays = [backoff.delay(attempt, 0.5) for attempt in range(1, 7)]

    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


def test_backoff_jitter_spreads_the_delay_by_plus_or_minus_jitter() -> None:
    backoff = Backoff(initial=1.0, jitter=0.2)

    assert backoff.delay(1, 0.0) == pytest.approx(0.8)
    assert backoff.delay(1, 0.5) == pytest.approx(1.0)
    assert backoff.delay(1, 0.999999) == pytest.approx(1.2, abs=1e-5)


@given(
    initial=st.floats(0.0, 10.0),
    spread=st.floats(0.0, 100.0),
    multiplier=st.floats(1.0, 10.0),
    jitter=st.floats(0.0, 1.0),
    attempt=st.integers(1, 200),
    rand=st.floats(0.0, 1.0, exclude_max=True),
)
def test_backoff_delay_stays_within_jittered_bounds(
    initial: float, spread: float, multiplier: float, jitter: float, attempt: int, rand: float
) -> None:
    backoff = Backoff(
        initial=initial, maximum=initial + spread, multiplier=multiplier, jitter=jitter
    )

    delay = backoff.delay(attempt, rand)

    base = min(backoff.maximum, initial * multiplier ** (attempt - 1))
    assert base * (1 - jitter) - 1e-9 <= delay <= base * (1 + jitter) + 1e-9
    assert 0.0 <= delay <= backoff.maximum * (1 + jitter) + 1e-9


def test_backoff_of_a_huge_attempt_is_the_maximum_not_an_overflow() -> None:
    assert Backoff(jitter=0.0).delay(10**6, 0.5) == 5.0


def test_backoff_rejects_attempts_below_one_and_nonsense_settings() -> None:
    with pytest.raises(ValueError, match="attempt"):
        Backoff().delay(0, 0.5)
    with pytest.raises(ValueError, match="rand"):
        Backoff().delay(1, 1.0)
    with pytest.raises(ValueError, match="maximum"):
        Backoff(initial=2.0, maximum=1.0)
    with pytest.raises(ValueError, match="jitter"):
        Backoff(jitter=1.5)
    with pytest.raises(ValueError, match="period"):
        Intensity(period=0.0)


def test_restart_window_allows_max_restarts_within_period_and_refuses_one_more() -> None:
    window = RestartWindow(Intensity(max_restarts=3, period=10.0))

    assert [window.record(now) for now in (0.0, 1.0, 2.0)] == [True, True, True]
    assert window.record(9.9) is False


def test_restart_window_forgets_restarts_a_full_period_old() -> None:
    window = RestartWindow(Intensity(max_restarts=2, period=10.0))

    assert window.record(0.0)
    assert window.record(5.0)
    assert window.record(10.0)  # the restart at 0.0 has left the window
    assert window.count(10.0) == 2
    assert window.record(14.0) is False


def test_restart_window_with_zero_max_restarts_refuses_the_first_restart() -> None:
    assert RestartWindow(Intensity(max_restarts=0)).record(0.0) is False


@given(
    max_restarts=st.integers(0, 6),
    period=st.floats(0.5, 20.0),
    gaps=st.lists(st.floats(0.0, 10.0), min_size=1, max_size=30),
)
def test_restart_window_matches_counting_restarts_in_the_last_period(
    max_restarts: int, period: float, gaps: list[float]
) -> None:
    window = RestartWindow(Intensity(max_restarts=max_restarts, period=period))
    times: list[float] = []
    now = 0.0
    for gap in gaps:
        now += gap
        times.append(now)
        recent = [t for t in times if now - t < period]
        assert window.record(now) is (len(recent) <= max_restarts)


def test_next_attempt_grows_until_the_child_stays_up_a_full_period() -> None:
    assert next_attempt(0, None, 10.0) == 1
    assert next_attempt(1, 0.5, 10.0) == 2
    assert next_attempt(4, 9.99, 10.0) == 5
    assert next_attempt(4, 10.0, 10.0) == 1


def test_error_info_looks_through_single_exception_groups() -> None:
    group = ExceptionGroup("wrapped", [KeyError("fingerprint")])

    info = ErrorInfo.from_exception(group, WALL)

    assert (info.type, info.message) == ("KeyError", "'fingerprint'")


# -- restarts ---------------------------------------------------------------------------------


async def test_crashing_child_restarts_after_exponential_backoff_delays(
    autojump_clock: trio.testing.MockClock,
) -> None:
    crasher = Actor("crasher", crash_on_start=3)
    sup = supervisor("sup", [crasher.spec()])

    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)
            await crasher.started(4)
            await sup.stop()

    assert crasher.started_at == pytest.approx([0.0, 0.1, 0.3, 0.7])
    assert crasher.outcomes == ["crashed", "crashed", "crashed", "returned"]


async def test_backoff_starts_over_after_the_child_stayed_up_a_full_period(
    autojump_clock: trio.testing.MockClock,
) -> None:
    crasher = Actor("crasher", crash_on_start=2)
    sup = supervisor("sup", [crasher.spec()], intensity=Intensity(max_restarts=5, period=10.0))

    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)
            await crasher.started(3)  # at 0.3, after delays 0.1 and 0.2
            await trio.sleep_until(10.5)  # up for 10.2 s, longer than the 10 s period
            crasher.crash()
            await crasher.started(4)
            await sup.stop()

    assert crasher.started_at == pytest.approx([0.0, 0.1, 0.3, 10.6])


async def test_one_for_one_leaves_the_other_children_running(
    autojump_clock: trio.testing.MockClock,
) -> None:
    first, middle, last = Actor("first"), Actor("middle"), Actor("last")
    sup = supervisor("sup", [first.spec(), middle.spec(), last.spec()])

    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)
            middle.crash()
            await middle.started(2)

            assert (first.started_at, last.started_at) == ([0.0], [0.0])
            assert first.up and last.up
            health = sup.health()
            assert [c.restarts for c in health.children] == [0, 1, 0]
            await sup.stop()


async def test_rest_for_one_restarts_the_crashed_child_and_later_siblings_in_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    journal: list[str] = []
    first, middle, last = (Actor(name, journal) for name in ("first", "middle", "last"))
    sup = supervisor(
        "sup", [first.spec(), middle.spec(), last.spec()], strategy=Strategy.REST_FOR_ONE
    )

    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)
            journal.clear()
            middle.crash()
            await last.started(2)

            assert journal == ["end middle", "end last", "start middle", "start last"]
            assert last.outcomes == ["cancelled"]
            assert middle.started_at == pytest.approx([0.0, 0.1])
            assert last.started_at == pytest.approx([0.0, 0.1])
            assert first.started_at == [0.0] and first.up
            assert [c.restarts for c in sup.health().children] == [0, 1, 0]
            await sup.stop()


async def test_permanent_child_that_returns_is_restarted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    worker = Actor("worker")
    sup = supervisor("sup", [worker.spec(restart=Restart.PERMANENT)])

    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)
            worker.finish()
            await worker.started(2)
            await sup.stop()

    assert worker.started_at == pytest.approx([0.0, 0.1])
    assert worker.outcomes[0] == "returned"


async def test_transient_child_that_returns_normally_is_not_restarted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    job, keeper = Actor("job"), Actor("keeper")
    sup = supervisor("sup", [job.spec(restart=Restart.TRANSIENT), keeper.spec()])

    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)
            job.finish()
            await trio.sleep(30)

            assert len(job.started_at) == 1
            job_health = child_health(sup.health(), "job")
            assert (job_health.state, job_health.restarts) == (ChildState.STOPPED, 0)
            await sup.stop()


async def test_transient_child_that_raises_is_restarted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    job = Actor("job", crash_on_start=1)
    sup = supervisor("sup", [job.spec(restart=Restart.TRANSIENT)])

    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)
            await job.started(2)
            await sup.stop()

    assert job.started_at == pytest.approx([0.0, 0.1])


async def test_temporary_child_is_never_restarted_even_after_a_crash(
    autojump_clock: trio.testing.MockClock,
) -> None:
    once, keeper = Actor("once", crash_on_start=1), Actor("keeper")
    sup = supervisor("sup", [once.spec(restart=Restart.TEMPORARY), keeper.spec()])

    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)
            await trio.sleep(30)

            assert len(once.started_at) == 1
            once_health = child_health(sup.health(), "once")
            assert once_health.state is ChildState.FAILED
            assert once_health.last_error is not None
            assert once_health.last_error.type == "ValueError"
            await sup.stop()


async def test_child_failing_before_started_is_retried_before_the_next_child_starts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    journal: list[str] = []
    storage = Actor("storage", journal, fail_before_started=2)
    ingest = Actor("ingest", journal)
    sup = supervisor("sup", [storage.spec(), ingest.spec()])

    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)
            started_at = trio.current_time()
            health = sup.health()
            await sup.stop()

    assert started_at == pytest.approx(0.3)
    assert journal[:4] == [
        "failed start storage",
        "failed start storage",
        "start storage",
        "start ingest",
    ]
    assert ingest.started_at == pytest.approx([0.3])
    storage_health = child_health(health, "storage")
    assert storage_health.restarts == 2
    assert storage_health.last_error is not None
    assert storage_health.last_error.type == "OSError"


async def test_crashes_are_logged_as_warnings_with_structured_extras(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    crasher = Actor("crasher", crash_on_start=1)
    sup = supervisor("sup", [crasher.spec()])

    with (
        caplog.at_level(logging.WARNING, logger="alert_history.supervisor"),
        trio.fail_after(LIMIT),
    ):
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)
            await crasher.started(2)
            await sup.stop()

    [record] = [r for r in caplog.records if r.name == "alert_history.supervisor"]
    assert record.levelno == logging.WARNING
    assert (record.__dict__["supervisor"], record.__dict__["child"]) == ("sup", "crasher")
    assert record.__dict__["error_type"] == "ValueError"
    assert record.__dict__["delay"] == pytest.approx(0.1)


# -- giving up --------------------------------------------------------------------------------


async def test_exceeding_restart_intensity_gives_up_naming_the_child_after_stopping_the_rest(
    autojump_clock: trio.testing.MockClock,
) -> None:
    bystander = Actor("bystander")
    crasher = Actor("crasher", crash_on_start=1_000)
    sup = supervisor(
        "pipeline",
        [bystander.spec(), crasher.spec()],
        intensity=Intensity(max_restarts=3, period=10.0),
    )

    with trio.fail_after(LIMIT), pytest.raises(SupervisorGaveUp) as raised:
        await sup.run()

    assert (raised.value.supervisor, raised.value.child) == ("pipeline", "crasher")
    assert isinstance(raised.value.cause, ValueError)
    assert trio.current_time() == pytest.approx(0.7)  # crashes at 0, 0.1, 0.3, 0.7
    assert crasher.started_at == pytest.approx([0.0, 0.1, 0.3, 0.7])
    assert bystander.stop_calls == 1 and bystander.outcomes == ["returned"]
    health = sup.health()
    assert health.gave_up and health.state is ChildState.FAILED
    assert child_health(health, "crasher").state is ChildState.FAILED


async def test_nested_supervisor_giving_up_counts_as_a_crash_in_its_parent(
    autojump_clock: trio.testing.MockClock,
) -> None:
    flaky = Actor("flaky", crash_on_start=2)
    sibling = Actor("sibling")
    inner = supervisor("inner", [flaky.spec()], intensity=Intensity(max_restarts=1, period=10.0))
    outer = supervisor("outer", [inner, sibling.spec()])

    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            await nursery.start(outer.run)
            await flaky.started(3)
            await trio.testing.wait_all_tasks_blocked()  # let inner report started to outer

            # inner: crash at 0, restart at 0.1, crash again -> gives up; outer restarts it at 0.2
            assert flaky.started_at == pytest.approx([0.0, 0.1, 0.2])
            assert sibling.started_at == [0.0] and sibling.up
            inner_health = child_health(outer.health(), "inner")
            assert isinstance(inner_health, SupervisorHealth)
            assert inner_health.restarts == 1
            assert inner_health.state is ChildState.RUNNING
            assert inner_health.last_error is not None
            assert inner_health.last_error.type == "SupervisorGaveUp"
            assert child_health(inner_health, "flaky").restarts == 2
            await outer.stop()


async def test_giving_up_while_starting_propagates_out_of_nursery_start_unwrapped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    broken = Actor("broken", fail_before_started=1_000)
    never = Actor("never")
    sup = supervisor("sup", [broken.spec(), never.spec()], intensity=Intensity(max_restarts=2))

    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            with pytest.raises(SupervisorGaveUp) as raised:
                await nursery.start(sup.run)

    assert raised.value.child == "broken"
    assert isinstance(raised.value.cause, OSError)
    assert trio.current_time() == pytest.approx(0.3)
    assert never.started_at == []


async def test_child_returning_before_started_counts_as_a_failed_start(
    autojump_clock: trio.testing.MockClock,
) -> None:
    attempts: list[float] = []

    async def quitter(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        attempts.append(trio.current_time())
        if len(attempts) > 1:
            task_status.started()
            await trio.sleep_forever()

    sup = supervisor("sup", [ChildSpec("quitter", quitter, restart=Restart.TRANSIENT)])

    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)
            health = child_health(sup.health(), "quitter")
            await sup.stop()

    assert attempts == pytest.approx([0.0, 0.1])
    assert health.restarts == 1 and health.state is ChildState.RUNNING
    assert health.last_error is not None and health.last_error.type == "RuntimeError"
    assert "started()" in health.last_error.message


async def test_cancelling_run_cancels_every_child(
    autojump_clock: trio.testing.MockClock,
) -> None:
    first, second = Actor("first"), Actor("second")
    sup = supervisor("sup", [first.spec(), second.spec()])

    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)
            nursery.cancel_scope.cancel()

    assert first.outcomes == ["cancelled"] and second.outcomes == ["cancelled"]
    assert first.stop_calls == second.stop_calls == 0
    health = sup.health()
    assert health.state is ChildState.STOPPED
    assert {c.state for c in health.children} == {ChildState.STOPPED}


# -- dynamic children -------------------------------------------------------------------------


async def test_dynamic_child_can_be_added_and_terminated(
    autojump_clock: trio.testing.MockClock,
) -> None:
    discovery, publisher = Actor("discovery"), Actor("publisher[ops]")
    sup = supervisor("publishing", [discovery.spec()])

    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)
            await sup.start_child(publisher.spec())

            assert publisher.up
            assert [c.name for c in sup.health().children] == ["discovery", "publisher[ops]"]

            await sup.terminate_child("publisher[ops]")

            assert publisher.stop_calls == 1 and publisher.outcomes == ["returned"]
            assert [c.name for c in sup.health().children] == ["discovery"]
            assert discovery.up
            await sup.stop()


async def test_start_child_rejects_a_taken_name_and_terminate_child_an_unknown_one(
    autojump_clock: trio.testing.MockClock,
) -> None:
    worker = Actor("worker")
    sup = supervisor("sup", [worker.spec()])

    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)
            with pytest.raises(ValueError, match="worker"):
                await sup.start_child(Actor("worker").spec())
            with pytest.raises(KeyError):
                await sup.terminate_child("nobody")
            await sup.stop()


async def test_start_child_raises_what_the_child_raised_before_started(
    autojump_clock: trio.testing.MockClock,
) -> None:
    broken = Actor("broken", fail_before_started=1)
    sup = supervisor("sup", [Actor("worker").spec()])

    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)
            with pytest.raises(OSError, match="database"):
                await sup.start_child(broken.spec())

            assert [c.name for c in sup.health().children] == ["worker"]
            await sup.stop()


async def test_start_child_needs_a_running_supervisor() -> None:
    sup = supervisor("sup", [])

    with pytest.raises(RuntimeError, match="not running"):
        await sup.start_child(Actor("late").spec())


def test_duplicate_child_names_are_rejected() -> None:
    with pytest.raises(ValueError, match="twin"):
        supervisor("sup", [Actor("twin").spec(), Actor("twin").spec()])


# -- stopping ---------------------------------------------------------------------------------


async def test_stop_drains_children_one_at_a_time_in_reverse_start_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    journal: list[str] = []
    actors = [Actor(name, journal) for name in ("storage", "pipeline", "http")]
    sup = supervisor("root", [actor.spec() for actor in actors])

    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)
            journal.clear()
            await sup.stop()

            assert journal == [
                "stop http",
                "end http",
                "stop pipeline",
                "end pipeline",
                "stop storage",
                "end storage",
            ]
            assert all(actor.outcomes == ["returned"] for actor in actors)
            assert sup.stopping
            assert {c.state for c in sup.health().children} == {ChildState.STOPPED}
            assert sup.health().state is ChildState.STOPPED


async def test_child_ignoring_stop_is_cancelled_after_its_shutdown_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    journal: list[str] = []
    polite = Actor("polite", journal)
    stubborn = Actor("stubborn", journal, ignore_stop=True)
    sup = supervisor("sup", [polite.spec(), stubborn.spec(shutdown_timeout=2.5)])

    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)
            await trio.sleep(1.0)
            await sup.stop()

            assert trio.current_time() == pytest.approx(3.5)

    assert stubborn.stop_calls == 1
    assert stubborn.outcomes == ["cancelled"] and stubborn.ended_at == pytest.approx([3.5])
    assert polite.ended_at == pytest.approx([3.5])
    assert journal[-4:] == ["stop stubborn", "end stubborn", "stop polite", "end polite"]


async def test_child_without_a_stop_request_is_cancelled_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    plain = Actor("plain")
    sup = supervisor("sup", [plain.spec(soft_stop=False)])

    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)
            await sup.stop()

    assert plain.outcomes == ["cancelled"] and plain.ended_at == [0.0]


async def test_stop_deadline_cancels_whatever_is_left(
    autojump_clock: trio.testing.MockClock,
) -> None:
    first = Actor("first", ignore_stop=True)
    second = Actor("second", ignore_stop=True)
    sup = supervisor("sup", [first.spec(), second.spec()])

    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)
            await sup.stop(deadline=3.0)

            assert trio.current_time() == pytest.approx(3.0)

    assert second.stop_calls == 1 and second.outcomes == ["cancelled"]
    assert first.outcomes == ["cancelled"]


async def test_nested_supervisor_is_stopped_through_its_own_stop_in_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    journal: list[str] = []
    a, b, c = (Actor(name, journal) for name in ("a", "b", "c"))
    inner = supervisor("inner", [a.spec(), b.spec()])
    outer = supervisor("outer", [inner, c.spec()])

    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            await nursery.start(outer.run)
            assert journal == ["start a", "start b", "start c"]
            journal.clear()
            await outer.stop()

    assert journal == ["stop c", "end c", "stop b", "end b", "stop a", "end a"]
    assert inner.health().state is ChildState.STOPPED


async def test_stop_can_be_called_twice_concurrently(
    autojump_clock: trio.testing.MockClock,
) -> None:
    worker = Actor("worker")
    sup = supervisor("sup", [worker.spec()])

    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)
            async with trio.open_nursery() as stoppers:
                stoppers.start_soon(sup.stop)
                stoppers.start_soon(sup.stop)

    assert worker.stop_calls == 1


async def test_stop_before_run_makes_run_return_without_starting_anything(
    autojump_clock: trio.testing.MockClock,
) -> None:
    worker = Actor("worker")
    sup = supervisor("sup", [worker.spec()])

    await sup.stop()
    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)

    assert worker.started_at == []


async def test_stop_while_a_child_is_still_starting_cancels_it_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    slow = Actor("slow", stall_before_started=True)
    sup = supervisor("sup", [slow.spec()])

    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sup.run)
            await slow.until(lambda: slow.journal == ["stalling slow"])
            await sup.stop()

            assert trio.current_time() == 0.0

    assert slow.started_at == [] and slow.stop_calls == 0
    assert sup.health().children[0].state is ChildState.STOPPED


# -- health -----------------------------------------------------------------------------------


async def test_health_reports_states_restarts_last_error_and_inbox_depth(
    autojump_clock: trio.testing.MockClock,
) -> None:
    send, receive = trio.open_memory_channel[int](8)
    consumer = Actor("consumer")
    store = Actor("store")
    sup = supervisor("pipeline", [store.spec(critical=True), consumer.spec(inbox=receive)])

    before = sup.health()
    assert before.state is ChildState.STOPPED
    assert not before.critical_children_running()

    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery, send, receive:
            await nursery.start(sup.run)
            for item in range(3):
                send.send_nowait(item)
            consumer.crash()
            await consumer.started(2)

            health = sup.health()
            await sup.stop()

    assert health.state is ChildState.RUNNING
    assert health.critical_children_running()
    store_health, consumer_health = health.children
    assert isinstance(consumer_health, ChildHealth) and isinstance(store_health, ChildHealth)
    assert consumer_health.state is ChildState.RUNNING
    assert consumer_health.restarts == 1
    assert consumer_health.last_error == ErrorInfo("ValueError", "consumer crashed", WALL)
    assert (consumer_health.inbox_depth, consumer_health.inbox_capacity) == (3, 8)
    assert (store_health.inbox_depth, store_health.inbox_capacity) == (None, None)
    assert store_health.critical and store_health.restart_type == "permanent"


async def test_health_to_dict_is_a_nested_json_ready_tree(
    autojump_clock: trio.testing.MockClock,
) -> None:
    leaf = Actor("leaf", crash_on_start=1)
    inner = supervisor("inner", [leaf.spec(critical=True)])
    root = supervisor("root", [inner], strategy=Strategy.REST_FOR_ONE)

    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            await nursery.start(root.run)
            await leaf.started(2)
            tree = root.health().to_dict()
            await root.stop()

    assert json.loads(json.dumps(tree)) == tree
    assert tree == {
        "kind": "supervisor",
        "name": "root",
        "strategy": "rest_for_one",
        "state": "running",
        "restarts": 0,
        "gave_up": False,
        "last_error": None,
        "since": "2025-01-02T03:04:05Z",
        "children": [
            {
                "kind": "supervisor",
                "name": "inner",
                "strategy": "one_for_one",
                "state": "running",
                "restarts": 0,
                "gave_up": False,
                "last_error": None,
                "since": "2025-01-02T03:04:05Z",
                "children": [
                    {
                        "kind": "child",
                        "name": "leaf",
                        "state": "running",
                        "restarts": 1,
                        "last_error": {
                            "type": "ValueError",
                            "message": "leaf crashed",
                            "at": "2025-01-02T03:04:05Z",
                        },
                        "since": "2025-01-02T03:04:05Z",
                        "restart_type": "permanent",
                        "critical": True,
                        "inbox_depth": None,
                        "inbox_capacity": None,
                    }
                ],
            }
        ],
    }


def test_critical_children_running_looks_at_every_critical_leaf_at_any_depth() -> None:
    def leaf(name: str, state: ChildState, *, critical: bool) -> ChildHealth:
        return ChildHealth(name, state, 0, None, WALL, "permanent", critical, None, None)

    def tree(deep_state: ChildState) -> SupervisorHealth:
        inner = SupervisorHealth(
            "inner",
            "one_for_one",
            ChildState.RUNNING,
            0,
            (leaf("db", deep_state, critical=True),),
            False,
        )
        return SupervisorHealth(
            "root",
            "one_for_one",
            ChildState.RUNNING,
            0,
            (leaf("cache", ChildState.RESTARTING, critical=False), inner),
            False,
        )

    assert tree(ChildState.RUNNING).critical_children_running()
    assert not tree(ChildState.RESTARTING).critical_children_running()
    assert [c.name for c in tree(ChildState.RUNNING).walk()] == ["cache", "db"]
