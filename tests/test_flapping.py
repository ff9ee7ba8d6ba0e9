"""Flapping: the live detector (Alerta's rule with hysteresis) and the legacy v1 /report counts."""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alert_history.domain.flapping import (
    DEFAULT_FLAPPING_POLICY,
    FlapDetector,
    FlappingPolicy,
    FlapState,
    V1Row,
    count_flaps_v1,
    report_v1,
    top_alerts_v1,
)


def feed(detector: FlapDetector, *events: tuple[str, float]) -> list[FlapState]:
    return [detector.observe(status, at) for status, at in events]


def alternating(*times: float) -> list[tuple[str, float]]:
    return [("firing" if i % 2 == 0 else "resolved", t) for i, t in enumerate(times)]


# --- policy ---------------------------------------------------------------------------------


def test_the_default_policy_is_alertas_rule_with_one_change_of_hysteresis() -> None:
    assert FlappingPolicy(window=1800.0, start=2, stop=1) == DEFAULT_FLAPPING_POLICY


@pytest.mark.parametrize(
    "kwargs",
    [
        {"stop": 3, "start": 2},
        {"stop": -1},
        {"window": 0.0},
        {"window": -5.0},
        {"window": math.inf},
        {"window": math.nan},
        {"start": 5, "max_changes": 5},
    ],
)
def test_an_inconsistent_policy_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        FlappingPolicy(**kwargs)  # type: ignore[arg-type]


# --- detector -------------------------------------------------------------------------------


def test_a_new_detector_is_not_flapping() -> None:
    assert FlapDetector().state(0.0) == FlapState(False, 0, 0.0, None)


def test_the_first_notification_is_not_a_change() -> None:
    detector = FlapDetector()
    assert detector.observe("firing", 10.0).changes_in_window == 0
    assert detector.status == "firing"


def test_a_repeated_notification_with_the_same_status_is_not_a_change() -> None:
    detector = FlapDetector()
    states = feed(detector, ("firing", 0), ("firing", 60), ("resolved", 120), ("resolved", 180))
    assert [s.changes_in_window for s in states] == [0, 0, 1, 1]


def test_more_than_two_changes_in_the_window_start_flapping() -> None:
    detector = FlapDetector()
    states = feed(detector, *alternating(0, 100, 200, 300))
    assert [s.flapping for s in states] == [False, False, False, True]
    assert states[-1] == FlapState(True, 3, 3 * 3600 / 1800, 300.0)


def test_exactly_two_changes_are_not_flapping() -> None:
    # Alerta: count > 2, not >= 2.
    detector = FlapDetector()
    assert not feed(detector, *alternating(0, 1, 2))[-1].flapping


def test_score_is_changes_per_hour() -> None:
    detector = FlapDetector(FlappingPolicy(window=600, start=10, stop=0))
    state = feed(detector, *alternating(0, 1, 2, 3))[-1]
    assert state.changes_in_window == 3
    assert state.score == pytest.approx(18.0)  # 3 changes in 10 minutes


def test_a_change_leaves_the_window_exactly_window_seconds_later() -> None:
    detector = FlapDetector()
    feed(detector, ("firing", 0), ("resolved", 100))
    assert detector.state(1899.0).changes_in_window == 1
    assert detector.state(1899.999).changes_in_window == 1
    assert detector.state(1900.0).changes_in_window == 0


def test_hysteresis_keeps_flapping_above_stop_and_stops_at_stop() -> None:
    detector = FlapDetector()  # start: > 2 changes, stop: <= 1 change, window 1800 s
    feed(detector, *alternating(0, 100, 200, 300))  # changes at 100, 200, 300
    assert detector.state(300).flapping
    # At 1900 the change at 100 expires: 2 changes, no longer enough to start, but above stop.
    assert detector.state(1900) == FlapState(True, 2, 4.0, 300.0)
    # At 2000 the change at 200 expires: 1 change, at the stop threshold.
    assert detector.state(2000) == FlapState(False, 1, 2.0, None)
    assert detector.state(2099).changes_in_window == 1
    assert detector.state(2100) == FlapState(False, 0, 0.0, None)


def test_flapping_restarts_only_above_start_and_since_is_the_new_start() -> None:
    detector = FlapDetector()
    feed(detector, *alternating(0, 100, 200, 300))
    detector.state(2000)  # stopped: 1 change (at 300) left
    again = detector.observe("resolved", 2050)  # status was "resolved" at 300: no change
    assert again == FlapState(False, 1, 2.0, None)
    assert not detector.observe("firing", 2060).flapping  # 2 changes
    assert detector.observe("resolved", 2070) == FlapState(True, 3, 6.0, 2070.0)


def test_stopping_does_not_need_an_intermediate_state_call() -> None:
    # The count fell to 1 at 2000 unobserved; a change at 2050 makes 2, which does not restart.
    detector = FlapDetector()
    feed(detector, *alternating(0, 100, 200, 300))
    state = detector.observe("firing", 2050)
    assert state == FlapState(False, 2, 4.0, None)


def test_without_hysteresis_it_stops_as_soon_as_the_count_is_back_to_start() -> None:
    detector = FlapDetector(FlappingPolicy(window=1800, start=2, stop=2))
    feed(detector, *alternating(0, 100, 200, 300))
    assert not detector.state(1900).flapping


def test_a_late_observation_is_ignored() -> None:
    detector = FlapDetector()
    feed(detector, ("firing", 100), ("resolved", 200))
    late = detector.observe("firing", 150)
    assert late == FlapState(False, 1, 2.0, None)
    assert detector.status == "resolved"
    assert detector.observe("resolved", 250).changes_in_window == 1  # still no new change


def test_an_observation_older_than_a_state_query_is_late() -> None:
    detector = FlapDetector()
    detector.observe("firing", 0)
    detector.state(500)
    detector.observe("resolved", 400)
    assert detector.status == "firing"


def test_observations_at_the_same_time_are_taken_in_call_order() -> None:
    detector = FlapDetector()
    states = feed(detector, *alternating(5, 5, 5, 5))
    assert states[-1] == FlapState(True, 3, 6.0, 5.0)


def test_a_state_query_in_the_past_answers_for_the_detector_clock() -> None:
    detector = FlapDetector()
    feed(detector, ("firing", 0), ("resolved", 100))
    detector.state(5000)
    assert detector.state(10).changes_in_window == 0


def test_memory_is_bounded_and_the_count_saturates() -> None:
    detector = FlapDetector(FlappingPolicy(window=1e9, start=2, stop=1, max_changes=8))
    state = feed(detector, *alternating(*range(1000)))[-1]
    assert state.changes_in_window == 8
    assert state.flapping


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_times_are_refused(bad: float) -> None:
    detector = FlapDetector()
    with pytest.raises(ValueError):
        detector.observe("firing", bad)
    with pytest.raises(ValueError):
        detector.state(bad)


def reference_states(
    policy: FlappingPolicy, events: Sequence[tuple[str, int]]
) -> list[tuple[bool, int, float | None]]:
    """Replay each prefix in continuous time: +1 per change, -1 once the change is `window` old.

    `events` are in time order. At equal times expiries come before additions.
    """
    results: list[tuple[bool, int, float | None]] = []
    for i, (_, now) in enumerate(events):
        seen = events[: i + 1]
        changes = [at for (before, _), (status, at) in pairwise(seen) if status != before]
        expiries = [(c + policy.window, 0) for c in changes if c + policy.window <= now]
        timeline = sorted(expiries + [(c, 1) for c in changes])
        count, flapping, since = 0, False, None
        for when, kind in timeline:
            count += 1 if kind else -1
            if flapping and count <= policy.stop:
                flapping, since = False, None
            elif not flapping and count > policy.start:
                flapping, since = True, float(when)
        results.append((flapping, count, since))
    return results


events_strategy = st.lists(
    st.tuples(st.sampled_from(["firing", "resolved"]), st.integers(0, 400)), max_size=40
).map(lambda evs: sorted(evs, key=lambda e: e[1]))


@given(
    events=events_strategy,
    window=st.integers(1, 200),
    start=st.integers(0, 5),
    gap=st.integers(0, 5),
)
def test_the_detector_agrees_with_a_continuous_time_replay(
    events: list[tuple[str, int]], window: int, start: int, gap: int
) -> None:
    policy = FlappingPolicy(window=window, start=start, stop=max(0, start - gap), max_changes=999)
    detector = FlapDetector(policy)
    got = [(s.flapping, s.changes_in_window, s.since) for s in feed(detector, *events)]
    assert got == reference_states(policy, events)
    if events:
        later = events[-1][1] + window // 2
        final = detector.state(later)
        assert (final.flapping, final.changes_in_window, final.since) == reference_states(
            policy, [*events, (events[-1][0], later)]
        )[-1]


@given(
    events=st.lists(
        st.tuples(st.sampled_from(["firing", "resolved"]), st.integers(0, 400)), max_size=40
    )
)
def test_late_observations_change_nothing(events: list[tuple[str, int]]) -> None:
    in_order: list[tuple[str, int]] = []
    for status, at in events:
        if not in_order or at >= in_order[-1][1]:
            in_order.append((status, at))
    shuffled, clean = FlapDetector(), FlapDetector()
    feed(shuffled, *events)
    feed(clean, *in_order)
    assert shuffled.state(1000) == clean.state(1000)
    assert shuffled.status == clean.status


@given(
    events=st.lists(
        st.tuples(st.sampled_from(["firing", "resolved"]), st.integers(0, 400)), max_size=40
    ),
    window=st.integers(1, 200),
)
def test_record_is_observe_without_the_state(events: list[tuple[str, int]], window: int) -> None:
    """A replay (the timeline) records every notification and asks for the state once."""
    policy = FlappingPolicy(window=window, start=2, stop=1)
    observed, recorded = FlapDetector(policy), FlapDetector(policy)
    feed(observed, *events)
    for status, at in events:
        assert recorded.record(status, at) is None
    assert recorded.status == observed.status
    for at in (0, 200, 400, 1000):
        assert recorded.state(at) == observed.state(at)


# --- legacy v1 /report ----------------------------------------------------------------------


ROWS: list[V1Row] = [
    ("A", "prod", "firing", "t1"),
    ("A", "prod", "resolved", "t2"),
    ("A", "dev", "firing", "t3"),
    ("A", "prod", "firing", "t4"),
    ("A", "dev", "firing", "t5"),
    ("B", None, "firing", "t1"),
    ("B", None, "resolved", "t2"),
    ("B", None, "firing", "t3"),
    ("C", "prod", "resolved", "t1"),
]


def test_v1_counts_status_changes_per_alertname_and_namespace() -> None:
    assert count_flaps_v1(ROWS, min_flap=1) == [
        {"alertname": "A", "namespace": "prod", "flaps": 2},
        {"alertname": "B", "namespace": None, "flaps": 2},
    ]
    assert count_flaps_v1(ROWS, min_flap=3) == []


def test_v1_top_alerts_is_most_common_with_first_seen_ties() -> None:
    assert top_alerts_v1(ROWS, 3) == [
        {"alertname": "A", "namespace": "prod", "events": 3},
        {"alertname": "B", "namespace": None, "events": 3},
        {"alertname": "A", "namespace": "dev", "events": 2},
    ]


def test_v1_report_has_the_v1_keys() -> None:
    report = report_v1(ROWS, min_flap=2, top=1)
    assert report == {
        "total_events": 9,
        "unique_alerts": 4,
        "top_alerts": [{"alertname": "A", "namespace": "prod", "events": 3}],
        "flapping_alerts": [{"alertname": "A", "namespace": "prod", "flaps": 2}],
    }


def test_v1_ties_follow_the_first_change_not_the_first_row() -> None:
    rows: list[V1Row] = [
        ("A", "x", "firing", 1),
        ("B", "x", "firing", 1),
        ("B", "x", "resolved", 2),
        ("A", "x", "resolved", 3),
    ]
    assert [r["alertname"] for r in count_flaps_v1(rows, min_flap=1)] == ["B", "A"]


@pytest.mark.parametrize(("min_flap", "top"), [(0, 10), (2, 0), (-1, 5)])
def test_v1_refuses_parameters_below_one(min_flap: int, top: int) -> None:
    with pytest.raises(ValueError):
        count_flaps_v1(ROWS, min_flap=min_flap, top=top)


def reference_v1(rows: Sequence[V1Row], min_flap: int, top: int) -> tuple[list[V1Row], ...]:
    """Group each key's statuses, count adjacent differences, and rank by explicit indices."""
    statuses: dict[tuple[str, str | None], list[tuple[int, str]]] = {}
    for index, (alertname, namespace, status, _) in enumerate(rows):
        statuses.setdefault((alertname, namespace), []).append((index, status))
    flapping, events = [], []
    for key, seen in statuses.items():
        change_rows = [i for (_, a), (i, b) in pairwise(seen) if a != b]
        if change_rows and len(change_rows) >= min_flap:
            flapping.append((len(change_rows), change_rows[0], key))
        events.append((len(seen), seen[0][0], key))
    flapping.sort(key=lambda f: (-f[0], f[1]))
    events.sort(key=lambda e: (-e[0], e[1]))
    return (
        [(k[0], k[1], "flaps", n) for n, _, k in flapping[:top]],
        [(k[0], k[1], "events", n) for n, _, k in events[:top]],
    )


@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from(["A", "B", "C", "D"]),
            st.sampled_from([None, "", "prod", "dev"]),
            st.sampled_from(["firing", "resolved", "unknown"]),
            st.text(max_size=3),
        ),
        max_size=60,
    ),
    min_flap=st.integers(1, 6),
    top=st.integers(1, 8),
)
def test_v1_agrees_with_a_straightforward_reference(
    rows: list[V1Row], min_flap: int, top: int
) -> None:
    rows = sorted(rows, key=lambda r: (r[0], str(r[3])))  # as v1 selected them
    flaps, tops = reference_v1(rows, min_flap, top)
    got_flaps = count_flaps_v1(rows, min_flap=min_flap, top=top)
    got_tops = top_alerts_v1(rows, top)
    assert [(f["alertname"], f["namespace"], "flaps", f["flaps"]) for f in got_flaps] == flaps
    assert [(t["alertname"], t["namespace"], "events", t["events"]) for t in got_tops] == tops
    report = report_v1(rows, min_flap=min_flap, top=top)
    assert report["total_events"] == len(rows)
    assert report["unique_alerts"] == len({(r[0], r[1]) for r in rows})
