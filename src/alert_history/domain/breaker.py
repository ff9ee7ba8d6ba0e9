"""A circuit breaker core: closed, open, half-open, driven by the times and outcomes given.

No clock of its own and no I/O: `allow(now)` asks whether a call may go out, `record(now, ...)`
reports how it went. Slow calls count as failures. The defaults are the Go port's (TN-039):
5 consecutive failures, or a failure rate of 50 % over 60 s with at least 10 calls, open the
breaker for 30 s; then one trial call decides between closing and opening again.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from dataclasses import dataclass


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    failure_threshold: int = 5  # consecutive failures that open the breaker
    failure_rate: float = 0.5  # ...or this share of failures within `window`
    window: float = 60.0
    min_calls: int = 10  # calls within `window` before the rate counts
    slow_call: float = 3.0  # seconds; a slower call is a failure
    reset_timeout: float = 30.0  # open -> half-open after this long
    half_open_calls: int = 1  # trial calls let through while half-open

    def __post_init__(self) -> None:
        if self.failure_threshold < 1 or self.min_calls < 1 or self.half_open_calls < 1:
            raise ValueError("failure_threshold, min_calls and half_open_calls must be >= 1")
        if not 0 < self.failure_rate <= 1:
            raise ValueError("failure_rate must be in (0, 1]")
        for name in ("window", "slow_call", "reset_timeout"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number of seconds")


@dataclass(frozen=True, slots=True)
class BreakerSnapshot:
    state: BreakerState
    consecutive_failures: int
    calls_in_window: int
    failures_in_window: int
    opened_at: float | None
    retry_at: float | None  # when an open breaker lets the next trial call through
    opened_count: int


class CircuitBreaker:
    """One dependency's breaker. Not thread-safe: call it from one task or event loop."""

    def __init__(self, policy: BreakerPolicy = BreakerPolicy()) -> None:
        self.policy = policy
        self._state = BreakerState.CLOSED
        self._consecutive = 0
        self._outcomes: deque[tuple[float, bool]] = deque()  # (time, failed) within the window
        self._opened_at: float | None = None
        self._trials = 0  # trial calls in flight while half-open
        self._opened_count = 0

    def allow(self, now: float) -> bool:
        """Whether a call may go out now; a half-open breaker admits a few trial calls."""
        self._advance(now)
        if self._state is BreakerState.CLOSED:
            return True
        if self._state is BreakerState.HALF_OPEN and self._trials < self.policy.half_open_calls:
            self._trials += 1
            return True
        return False

    def record(self, now: float, *, ok: bool, duration: float = 0.0) -> None:
        """Report a call that `allow` let through: its success and how long it took."""
        failed = not ok or duration > self.policy.slow_call
        self._advance(now)
        if self._state is BreakerState.HALF_OPEN:
            self._trials = max(0, self._trials - 1)
            if failed:
                self._open(now)
            else:
                self._close()
            return
        if self._state is BreakerState.OPEN:
            return  # a late answer from before the breaker opened
        self._outcomes.append((now, failed))
        self._prune(now)
        self._consecutive = self._consecutive + 1 if failed else 0
        if self._consecutive >= self.policy.failure_threshold or self._rate_exceeded():
            self._open(now)

    def snapshot(self, now: float) -> BreakerSnapshot:
        self._advance(now)
        self._prune(now)
        failures = sum(1 for _, failed in self._outcomes if failed)
        retry_at = None
        if self._state is BreakerState.OPEN and self._opened_at is not None:
            retry_at = self._opened_at + self.policy.reset_timeout
        return BreakerSnapshot(
            state=self._state,
            consecutive_failures=self._consecutive,
            calls_in_window=len(self._outcomes),
            failures_in_window=failures,
            opened_at=self._opened_at,
            retry_at=retry_at,
            opened_count=self._opened_count,
        )

    def state(self, now: float) -> BreakerState:
        self._advance(now)
        return self._state

    def _advance(self, now: float) -> None:
        if (
            self._state is BreakerState.OPEN
            and self._opened_at is not None
            and now >= self._opened_at + self.policy.reset_timeout
        ):
            self._state = BreakerState.HALF_OPEN
            self._trials = 0

    def _rate_exceeded(self) -> bool:
        calls = len(self._outcomes)
        if calls < self.policy.min_calls:
            return False
        failures = sum(1 for _, failed in self._outcomes if failed)
        return failures / calls >= self.policy.failure_rate

    def _prune(self, now: float) -> None:
        horizon = now - self.policy.window
        while self._outcomes and self._outcomes[0][0] <= horizon:
            self._outcomes.popleft()

    def _open(self, now: float) -> None:
        self._state = BreakerState.OPEN
        self._opened_at = now
        self._opened_count += 1
        self._trials = 0

    def _close(self) -> None:
        self._state = BreakerState.CLOSED
        self._opened_at = None
        self._consecutive = 0
        self._outcomes.clear()
