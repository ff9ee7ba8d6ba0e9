"""Pure restart arithmetic: jittered exponential backoff and OTP's restart-intensity window.

Nothing here reads a clock or touches trio; callers pass `now` (trio time) and random draws.
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Backoff:
    """Jittered exponential delay before a restart.

    Attempt n (1-based, consecutive restarts) waits `min(maximum, initial * multiplier**(n-1))`,
    scaled by a factor drawn uniformly from `[1 - jitter, 1 + jitter)`.
    """

    initial: float = 0.1
    maximum: float = 5.0
    multiplier: float = 2.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if not (math.isfinite(self.initial) and self.initial >= 0):
            raise ValueError(f"backoff initial must be finite and >= 0, got {self.initial!r}")
        if not (math.isfinite(self.maximum) and self.maximum >= self.initial):
            raise ValueError(f"backoff maximum must be finite and >= initial, got {self.maximum!r}")
        if not (math.isfinite(self.multiplier) and self.multiplier >= 1):
            raise ValueError(f"backoff multiplier must be finite and >= 1, got {self.multiplier!r}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"backoff jitter must be within [0, 1], got {self.jitter!r}")

    def delay(self, attempt: int, rand: float) -> float:
        """Return the delay in seconds before restart `attempt` (>= 1), given `rand` in [0, 1)."""
        if attempt < 1:
            raise ValueError(f"attempt must be >= 1, got {attempt!r}")
        if not 0 <= rand < 1:
            raise ValueError(f"rand must be within [0, 1), got {rand!r}")
        try:
            base = min(self.maximum, self.initial * self.multiplier ** (attempt - 1))
        except OverflowError:
            base = self.maximum
        return base * (1 + self.jitter * (2 * rand - 1))


@dataclass(frozen=True)
class Intensity:
    """OTP restart intensity: at most `max_restarts` restarts within `period` seconds."""

    max_restarts: int = 5
    period: float = 10.0

    def __post_init__(self) -> None:
        if self.max_restarts < 0:
            raise ValueError(f"max_restarts must be >= 0, got {self.max_restarts!r}")
        if not (math.isfinite(self.period) and self.period > 0):
            raise ValueError(f"period must be finite and > 0, got {self.period!r}")


@dataclass
class RestartWindow:
    """Sliding window of recent restart times, checked against an `Intensity`.

    A restart at time `t` still counts at `now` while `now - t < period`. The window keeps at most
    `max_restarts + 1` entries, which is all the check ever needs.
    """

    intensity: Intensity
    _times: collections.deque[float] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._times = collections.deque(maxlen=self.intensity.max_restarts + 1)

    def record(self, now: float) -> bool:
        """Record a restart at `now`; return False when that exceeds the intensity (give up)."""
        self._times.append(now)
        while self._times and now - self._times[0] >= self.intensity.period:
            self._times.popleft()
        return len(self._times) <= self.intensity.max_restarts

    def count(self, now: float) -> int:
        """Return how many recorded restarts still fall inside the window at `now`."""
        return sum(1 for t in self._times if now - t < self.intensity.period)


def next_attempt(previous: int, ran_for: float | None, period: float) -> int:
    """Return the backoff attempt for the next restart of a child.

    `previous` is the attempt used for its last restart (0 if never restarted) and `ran_for` how
    long the crashed incarnation was running (None if it never started). A child that stayed up for
    at least `period` seconds starts over at attempt 1.
    """
    if ran_for is not None and ran_for >= period:
        return 1
    return previous + 1
