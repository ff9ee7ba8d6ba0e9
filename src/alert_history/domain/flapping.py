"""Detect flapping alerts: state changes counted in a sliding window, with hysteresis.

`FlapDetector` is the live rule for one fingerprint; by default it is Alerta's
`is_flapping(window=1800, count=2)`: flapping once more than 2 changes fall in the last 1,800 s.
`count_flaps_v1`, `top_alerts_v1` and `report_v1` are the legacy v1 `/report` arithmetic, kept
exact because users' dashboards read it.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypedDict

_HOUR = 3600.0


@dataclass(frozen=True, slots=True)
class FlappingPolicy:
    """When an alert starts and stops flapping.

    It starts when more than `start` state changes are younger than `window` seconds, and stops
    only once at most `stop` remain (`stop == start` is Alerta's rule without hysteresis).
    `max_changes` bounds one detector's memory: the count saturates there.
    """

    window: float = 1800.0
    start: int = 2
    stop: int = 1
    max_changes: int = 256

    def __post_init__(self) -> None:
        if not (math.isfinite(self.window) and self.window > 0):
            raise ValueError(f"window must be a positive number of seconds, not {self.window!r}")
        if not 0 <= self.stop <= self.start:
            raise ValueError(f"need 0 <= stop <= start, got stop={self.stop} start={self.start}")
        if self.max_changes <= self.start:
            raise ValueError(f"max_changes ({self.max_changes}) must exceed start ({self.start})")


#: Alerta's default (`count=2` in 1,800 s), with one change of hysteresis before it stops.
DEFAULT_FLAPPING_POLICY = FlappingPolicy()


@dataclass(frozen=True, slots=True)
class FlapState:
    """Where one alert stands.

    `score` is the rate of state changes in changes per hour: `changes_in_window * 3600 / window`
    (not normalised; compare it across alerts of one policy). `since` is the time the current
    flapping episode started, None while not flapping.
    """

    flapping: bool
    changes_in_window: int
    score: float
    since: float | None


class FlapDetector:
    """Track one fingerprint's firing/resolved changes; feed it every notification in order.

    Times are seconds on any clock that the caller keeps monotonic (`trio.current_time()` or
    epoch seconds). The detector's clock is the latest time it was given, by `observe` or
    `state`: an observation older than that is late and ignored (neither counted nor taken as the
    current status), because the changes it would split are already counted. Equal times are
    taken in call order.
    """

    __slots__ = ("_changes", "_clock", "_flapping", "_policy", "_since", "_status")

    def __init__(self, policy: FlappingPolicy = DEFAULT_FLAPPING_POLICY) -> None:
        self._policy = policy
        self._changes: deque[float] = deque(maxlen=policy.max_changes)
        self._status: str | None = None
        self._clock: float | None = None
        self._flapping = False
        self._since: float | None = None

    @property
    def policy(self) -> FlappingPolicy:
        return self._policy

    @property
    def status(self) -> str | None:
        """The last status observed, None before the first observation."""
        return self._status

    def observe(self, status: str, at: float) -> FlapState:
        """Record a notification; a status different from the previous one is a change.

        The first notification is not a change, nor is a repeat of the same status.
        """
        self.record(status, at)
        return self._snapshot()

    def record(self, status: str, at: float) -> None:
        """`observe` without building the state (a replay asks for it once, at the end)."""
        if not self._advance(at):
            return
        if self._status is not None and status != self._status:
            self._changes.append(at)
            if not self._flapping and len(self._changes) > self._policy.start:
                self._flapping = True
                self._since = at
        self._status = status

    def state(self, at: float) -> FlapState:
        """Return the state at `at` (or at the detector's clock, if that is later)."""
        self._advance(at)
        return self._snapshot()

    def _advance(self, at: float) -> bool:
        """Move the clock to `at`, expire old changes; False if `at` is in the past."""
        if not math.isfinite(at):
            raise ValueError(f"time must be finite, not {at!r}")
        if self._clock is not None and at < self._clock:
            return False
        self._clock = at
        # A change exactly `window` seconds old has left the window (Alerta: update_time > now-w).
        while self._changes and at - self._changes[0] >= self._policy.window:
            self._changes.popleft()
        if self._flapping and len(self._changes) <= self._policy.stop:
            self._flapping = False
            self._since = None
        return True

    def _snapshot(self) -> FlapState:
        count = len(self._changes)
        return FlapState(
            flapping=self._flapping,
            changes_in_window=count,
            score=count * _HOUR / self._policy.window,
            since=self._since,
        )


# --- the legacy v1 /report ----------------------------------------------------------------------

#: One stored event as v1 /report reads it: (alertname, namespace, status, updatedAt).
V1Row = tuple[str, str | None, str, object]


class FlapRow(TypedDict):
    alertname: str
    namespace: str | None
    flaps: int


class TopRow(TypedDict):
    alertname: str
    namespace: str | None
    events: int


class ReportV1(TypedDict):
    total_events: int
    unique_alerts: int
    top_alerts: list[TopRow]
    flapping_alerts: list[FlapRow]


def count_flaps_v1(rows: Iterable[V1Row], *, min_flap: int = 2, top: int = 10) -> list[FlapRow]:
    """Return v1's `flapping_alerts`: status changes per (alertname, namespace), most first.

    `rows` must come as v1 selected them, ordered by alertname, then updatedAt (and id for equal
    times); updatedAt itself is not read. A change is a row whose status differs from the
    previous row of the same key. Keys with at least `min_flap` changes are kept, sorted by
    changes descending; ties keep the order in which each key first changed status (v1 sorted a
    Counter stably, and a key enters a Counter at its first change). At most `top` are returned.
    """
    _check_positive(min_flap=min_flap, top=top)
    last_status: dict[tuple[str, str | None], str] = {}
    flaps: Counter[tuple[str, str | None]] = Counter()
    for alertname, namespace, status, _updated_at in rows:
        key = (alertname, namespace)
        if key in last_status and last_status[key] != status:
            flaps[key] += 1
        last_status[key] = status
    kept = [(key, n) for key, n in flaps.items() if n >= min_flap]
    kept.sort(key=lambda item: item[1], reverse=True)  # stable: ties stay in first-change order
    return [FlapRow(alertname=k[0], namespace=k[1], flaps=n) for k, n in kept[:top]]


def top_alerts_v1(rows: Iterable[V1Row], top: int = 10) -> list[TopRow]:
    """Return v1's `top_alerts`: events per (alertname, namespace), `Counter.most_common(top)`.

    Ties keep the order in which each key first appears in `rows`.
    """
    _check_positive(top=top)
    events = Counter((alertname, namespace) for alertname, namespace, _s, _u in rows)
    return [TopRow(alertname=k[0], namespace=k[1], events=n) for k, n in events.most_common(top)]


def report_v1(rows: Sequence[V1Row], *, min_flap: int = 2, top: int = 10) -> ReportV1:
    """Return the whole v1 `/report` body for rows selected and ordered as v1 did."""
    return ReportV1(
        total_events=len(rows),
        unique_alerts=len({(row[0], row[1]) for row in rows}),
        top_alerts=top_alerts_v1(rows, top),
        flapping_alerts=count_flaps_v1(rows, min_flap=min_flap, top=top),
    )


def _check_positive(**values: int) -> None:
    # v1's API allowed 1..100; below 1 its slicing and Counter arithmetic would mean nothing.
    for name, value in values.items():
        if value < 1:
            raise ValueError(f"{name} must be at least 1, not {value}")
