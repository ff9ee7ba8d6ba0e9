"""Episodes and the timeline of one fingerprint, assembled from its stored state changes.

An episode is one firing period, keyed by (fingerprint, startsAt): the firing state and, once it
ends, the resolved state. Pure: every function takes `now` (ns) and returns values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from alert_history.domain.flapping import DEFAULT_FLAPPING_POLICY, FlapDetector, FlappingPolicy
from alert_history.domain.flapping import FlapState as FlapState
from alert_history.domain.timestamps import NONE_NS

NS = 1_000_000_000


class StateChange(NamedTuple):
    """One stored state, in the order it was first received.

    A named tuple, not a frozen dataclass: a busy alert's timeline makes hundreds per request,
    straight from the database's rows (`StateChange._make(row)`), at a quarter of the cost.
    """

    status: str
    starts_at: int
    ends_at: int
    first_seen: int
    last_seen: int
    notify_count: int


class Episode(NamedTuple):  # a named tuple for the same reason as StateChange
    starts_at: int
    ends_at: int  # NONE_NS while firing
    resolved: bool
    duration: int  # ns; up to `now` while still firing
    notifications: int
    first_seen: int
    last_seen: int
    stale: bool  # firing, and no notification for longer than the stale window


@dataclass(frozen=True, slots=True)
class Timeline:
    changes: tuple[StateChange, ...]
    episodes: tuple[Episode, ...]  # oldest first
    flapping: FlapState


def build_timeline(
    changes: Sequence[StateChange],
    now: int,
    *,
    stale_after: int,
    policy: FlappingPolicy = DEFAULT_FLAPPING_POLICY,
) -> Timeline:
    """Group `changes` (in first-received order) into episodes and replay the flap detector."""
    by_start: dict[int, list[StateChange]] = {}
    detector = FlapDetector(policy)
    record = detector.record
    for change in changes:
        states = by_start.get(change.starts_at)
        if states is None:
            by_start[change.starts_at] = [change]
        else:
            states.append(change)
        record(change.status, change.first_seen / NS)
    episodes = tuple(_episode(states, now, stale_after) for _, states in sorted(by_start.items()))
    return Timeline(tuple(changes), episodes, detector.state(now / NS))


def _episode(states: list[StateChange], now: int, stale_after: int) -> Episode:
    # one pass: a busy alert's timeline builds hundreds of these per request
    first = states[0]
    resolved = False
    ends_at = NONE_NS
    last_seen, first_seen = first.last_seen, first.first_seen
    firing_last_seen = 0
    notifications = 0
    for s in states:
        notifications += s.notify_count
        if s.last_seen > last_seen:
            last_seen = s.last_seen
        if s.first_seen < first_seen:
            first_seen = s.first_seen
        if s.status == "resolved":
            if not resolved or s.ends_at > ends_at:
                ends_at = s.ends_at
            resolved = True
        elif s.last_seen > firing_last_seen:
            firing_last_seen = s.last_seen
    starts_at = first.starts_at
    return Episode(
        starts_at=starts_at,
        ends_at=ends_at,
        resolved=resolved,
        duration=max(0, (ends_at if resolved else now) - starts_at),
        notifications=notifications,
        first_seen=first_seen,
        last_seen=last_seen,
        stale=not resolved and now - firing_last_seen > stale_after,
    )
