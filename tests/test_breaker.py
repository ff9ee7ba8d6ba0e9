"""The circuit breaker core, driven by explicit times (a virtual clock by construction)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alert_history.domain.breaker import BreakerPolicy, BreakerState, CircuitBreaker

POLICY = BreakerPolicy(failure_threshold=3, failure_rate=0.5, window=60, min_calls=10,
                       slow_call=2.0, reset_timeout=30, half_open_calls=1)  # fmt: skip


def fail(breaker: CircuitBreaker, at: float, times: int = 1) -> None:
    for _ in range(times):
        assert breaker.allow(at)
        breaker.record(at, ok=False)


def test_consecutive_failures_open_the_breaker_and_calls_are_refused_at_once() -> None:
    breaker = CircuitBreaker(POLICY)
    fail(breaker, 1.0, 2)
    assert breaker.state(1.0) is BreakerState.CLOSED
    fail(breaker, 2.0)
    assert breaker.state(2.0) is BreakerState.OPEN
    assert not breaker.allow(2.1)
    assert not breaker.allow(31.9)
    assert breaker.snapshot(10.0).retry_at == 32.0


def test_a_success_resets_the_consecutive_count() -> None:
    breaker = CircuitBreaker(POLICY)
    fail(breaker, 1.0, 2)
    assert breaker.allow(1.5)
    breaker.record(1.5, ok=True)
    fail(breaker, 2.0, 2)
    assert breaker.state(2.0) is BreakerState.CLOSED


def test_slow_calls_count_as_failures() -> None:
    breaker = CircuitBreaker(POLICY)
    for t in (1.0, 2.0, 3.0):
        assert breaker.allow(t)
        breaker.record(t, ok=True, duration=2.5)
    assert breaker.state(3.0) is BreakerState.OPEN


def test_failure_rate_over_the_window_opens_without_a_streak() -> None:
    breaker = CircuitBreaker(POLICY)
    for i in range(10):  # fail, ok, fail, ok ... : never 3 in a row, but 50 %
        assert breaker.allow(float(i))
        breaker.record(float(i), ok=i % 2 == 1)
    assert breaker.state(9.0) is BreakerState.OPEN


def test_old_outcomes_leave_the_window() -> None:
    breaker = CircuitBreaker(POLICY)
    for i in range(9):
        assert breaker.allow(float(i))
        breaker.record(float(i), ok=i % 2 == 1)
    # 60 s later the first nine have left the window (exactly 60 s old counts as gone)
    assert breaker.allow(68.0)
    breaker.record(68.0, ok=False)
    assert breaker.state(68.0) is BreakerState.CLOSED
    assert breaker.snapshot(68.0).calls_in_window == 1


def test_half_open_after_the_reset_time_then_a_trial_success_closes() -> None:
    breaker = CircuitBreaker(POLICY)
    fail(breaker, 0.0, 3)
    assert breaker.state(29.999) is BreakerState.OPEN
    assert breaker.state(30.0) is BreakerState.HALF_OPEN
    assert breaker.allow(30.0)  # the one trial call
    assert not breaker.allow(30.0)  # no second one while it is out
    breaker.record(30.5, ok=True)
    assert breaker.state(30.5) is BreakerState.CLOSED
    assert breaker.allow(30.6)


def test_a_failed_trial_opens_the_breaker_for_another_reset_period() -> None:
    breaker = CircuitBreaker(POLICY)
    fail(breaker, 0.0, 3)
    assert breaker.allow(30.0)
    breaker.record(31.0, ok=False)
    snap = breaker.snapshot(31.0)
    assert (snap.state, snap.retry_at, snap.opened_count) == (BreakerState.OPEN, 61.0, 2)


def test_invalid_policies_are_refused() -> None:
    with pytest.raises(ValueError):
        BreakerPolicy(failure_threshold=0)
    with pytest.raises(ValueError):
        BreakerPolicy(failure_rate=0)
    with pytest.raises(ValueError):
        BreakerPolicy(reset_timeout=float("inf"))


@given(st.lists(st.tuples(st.floats(0, 5), st.booleans(), st.floats(0, 5)), max_size=200))
def test_an_open_breaker_never_lets_a_call_through_before_its_reset_time(
    calls: list[tuple[float, bool, float]],
) -> None:
    breaker = CircuitBreaker(POLICY)
    now = 0.0
    for gap, ok, duration in calls:
        now += gap
        snap = breaker.snapshot(now)
        allowed = breaker.allow(now)
        if snap.state is BreakerState.OPEN:
            assert not allowed
            assert snap.retry_at is not None and now < snap.retry_at
        if allowed:
            breaker.record(now, ok=ok, duration=duration)
        assert breaker.snapshot(now).consecutive_failures <= POLICY.failure_threshold
