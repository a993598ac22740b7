"""Steering of the miss budget by measured attainment (`autoscaler/policies/steering.py`): the
direction and size of one step, the windows that say nothing, the clamps, and a closed loop on a
synthetic plant whose queue is worse than the model the rule plans with."""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from autoscaler.policies import queueing, steering

BUDGET = 0.01  # a 99 % target
LOG_MIN, LOG_MAX = math.log(steering.FACTOR_MIN), math.log(steering.FACTOR_MAX)


def steer_one(log_factor: float, met: float, judged: float, dt: float, budget: float = BUDGET):
    return float(
        steering.steer(
            np.array([log_factor]), np.array([met]), np.array([judged]), budget, np.array([dt])
        )[0]
    )


def test_misses_above_the_budget_shrink_the_factor_at_the_tightening_rate():
    # 3 % missed against 1 %: log error log(1/3), acted on over TIGHTEN_S
    got = steer_one(0.0, met=970, judged=1000, dt=30.0)
    assert got < 0.0
    assert got == pytest.approx(math.log(1 / 3) * 30.0 / steering.TIGHTEN_S)


def test_misses_below_the_budget_grow_the_factor_more_slowly():
    # 0.5 % missed against 1 %: log error log 2, acted on over LOOSEN_S
    got = steer_one(0.0, met=995, judged=1000, dt=30.0)
    assert got > 0.0
    assert got == pytest.approx(math.log(2) * 30.0 / steering.LOOSEN_S)
    assert steering.LOOSEN_S > steering.TIGHTEN_S


def test_a_window_on_budget_leaves_the_factor():
    assert steer_one(-0.7, met=990, judged=1000, dt=30.0) == pytest.approx(-0.7)


def test_a_window_with_too_few_requests_says_nothing():
    judged = steering.MIN_JUDGED - 1
    assert steer_one(0.3, met=0, judged=judged, dt=600.0) == 0.3
    assert steer_one(0.3, met=judged, judged=judged, dt=600.0) == 0.3
    # just enough requests, all missed: now it acts
    enough = steering.MIN_JUDGED
    assert steer_one(0.3, met=0, judged=enough, dt=60.0) < 0.3


def test_an_unmeasured_window_says_nothing():
    nan = math.nan
    assert steer_one(0.3, met=nan, judged=nan, dt=600.0) == 0.3
    assert steer_one(0.3, met=nan, judged=1000, dt=600.0) == 0.3


def test_an_extreme_window_is_acted_on_only_up_to_the_largest_step():
    # every request missed (100 × the budget) moves no faster than MAX_STEP allows
    got = steer_one(0.0, met=0, judged=1000, dt=30.0)
    assert got == pytest.approx(-steering.MAX_STEP * 30.0 / steering.TIGHTEN_S)
    # a perfect window (no miss at all) likewise
    got = steer_one(0.0, met=1000, judged=1000, dt=30.0)
    assert got == pytest.approx(steering.MAX_STEP * 30.0 / steering.LOOSEN_S)


def test_the_factor_stays_within_its_clamps():
    assert steer_one(0.0, met=0, judged=1000, dt=1e6) == pytest.approx(LOG_MIN)
    assert steer_one(0.0, met=1000, judged=1000, dt=1e6) == pytest.approx(LOG_MAX)
    # already at a clamp, pushed further: stays
    assert steer_one(LOG_MIN, met=0, judged=1000, dt=30.0) == pytest.approx(LOG_MIN)
    assert steer_one(LOG_MAX, met=1000, judged=1000, dt=30.0) == pytest.approx(LOG_MAX)


def test_no_time_passed_moves_nothing():
    assert steer_one(0.2, met=0, judged=1000, dt=0.0) == 0.2
    assert steer_one(0.2, met=0, judged=1000, dt=-5.0) == 0.2


@given(
    log_factor=st.floats(LOG_MIN, LOG_MAX),
    judged=st.floats(0.0, 1e6),
    met_share=st.floats(0.0, 1.0),
    dt=st.floats(0.0, 1e5),
    budget=st.floats(0.001, 0.5),
)
def test_the_factor_moves_towards_the_budget_and_within_the_clamps(
    log_factor, judged, met_share, dt, budget
):
    met = judged * met_share
    got = steer_one(log_factor, met, judged, dt, budget)
    assert LOG_MIN - 1e-12 <= got <= LOG_MAX + 1e-12
    missed = 1 - met_share
    if judged < steering.MIN_JUDGED:
        assert got == log_factor
    elif missed > budget:
        assert got <= log_factor
    elif missed < budget:
        assert got >= log_factor


def test_rows_are_steered_independently():
    got = steering.steer(
        np.zeros(3),
        np.array([970.0, 995.0, 10.0]),
        np.array([1000.0, 1000.0, 10.0]),
        BUDGET,
        np.full(3, 30.0),
    )
    assert got[0] < 0 < got[1]
    assert got[2] == 0


# --- closed loop ---------------------------------------------------------------------------

RATE = 4.0
"""Requests per second, constant and Poisson as the rule sees it."""
SERVICE_S = 10.0
SLOTS = 2.0
WAIT_S = 1.0
PLANT_PEAKEDNESS = 1.5
"""The plant's arrivals are 1.5 times as bursty as Poisson; the rule plans as if Poisson."""
TICK_S = 10.0
WINDOW_TICKS = 60
"""The attainment window: 10 minutes of ticks, as the live estimate's."""


def plant_miss(replicas: np.ndarray) -> np.ndarray:
    """The share of requests the plant really delays past the wait budget with these replicas."""
    servers = replicas * SLOTS
    like = np.ones(servers.shape)
    return queueing.wait_exceeds(
        servers, RATE * SERVICE_S * like, SERVICE_S * like, WAIT_S * like, PLANT_PEAKEDNESS
    )


def planned_replicas(log_factor: np.ndarray) -> np.ndarray:
    """What the rule asks for at this factor: the fewest replicas its model (Poisson, the
    right service time) says keep the budget × factor."""
    rows = len(log_factor)
    return queueing.fewest_replicas(
        np.full((rows, 1, 1), RATE),
        np.ones(1),
        np.full(rows, SLOTS),
        np.full(rows, SERVICE_S),
        np.full(rows, WAIT_S),
        BUDGET * np.exp(log_factor),
    )


def run_loop(start: np.ndarray, hours: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each tick: steer on the window, plan, serve a tick's requests with the plant, slide the
    window. Returns the replicas, the window's attainment and the factor per tick (ticks, rows)."""
    rows = len(start)
    log_factor = start.copy()
    met_window: deque[np.ndarray] = deque(maxlen=WINDOW_TICKS)
    judged_window: deque[np.ndarray] = deque(maxlen=WINDOW_TICKS)
    replicas_seen, attainment_seen, factor_seen = [], [], []
    for _ in range(int(hours * 3600 / TICK_S)):
        met = np.sum(met_window, axis=0) if met_window else np.full(rows, math.nan)
        judged = np.sum(judged_window, axis=0) if judged_window else np.full(rows, math.nan)
        log_factor = steering.steer(log_factor, met, judged, BUDGET, np.full(rows, TICK_S))
        replicas = planned_replicas(log_factor)
        arrived = np.full(rows, RATE * TICK_S)
        met_window.append(arrived * (1 - plant_miss(replicas)))
        judged_window.append(arrived)
        replicas_seen.append(replicas)
        attainment_seen.append(np.sum(met_window, axis=0) / np.sum(judged_window, axis=0))
        factor_seen.append(np.exp(log_factor))
    return np.array(replicas_seen), np.array(attainment_seen), np.array(factor_seen)


def test_the_plant_makes_half_a_point_reachable_and_both_starts_miss_it():
    """The premise of the closed-loop test, checked: with 2-slot replicas one replica moves the
    plant's miss share by less than the tolerance around 1 % (at 8 slots it would jump from
    1.3 % to 0.08 %, and no count would sit within half a point of 99 %); the rule's model is
    wrong enough that neither clamp of the factor meets the target."""
    replicas = np.arange(1, 100)
    misses = plant_miss(replicas)
    enough = int(replicas[np.argmax(misses <= BUDGET)])
    assert 0.005 <= misses[enough - 1] <= BUDGET < misses[enough - 2] <= 0.015
    loose, tight = planned_replicas(np.array([LOG_MAX, LOG_MIN]))
    assert 1 - plant_miss(np.array(loose)) < 0.99 - 0.005
    assert 1 - plant_miss(np.array(tight)) > 0.99 + 0.005
    # the model alone, at factor 1, plans too few for this plant
    assert planned_replicas(np.zeros(1))[0] < enough


def test_steering_converges_to_within_half_a_point_of_the_target_from_both_sides():
    """SLO steering converges on a stationary synthetic load to within 0.5 points of its
    target, and moves both ways.

    The plant: 4 req/s, 10 s in service, 2 slots per replica, a 1 s wait budget, and arrivals
    1.5 times as peaked as Poisson, which the rule does not know (it plans for Poisson). Its
    attainment reaches the rule as met/judged over a sliding 10-minute window. Started with the
    factor at its loose clamp (2: the plant then attains about 97 %) the factor must fall;
    started at its tight clamp (1/20: about 99.86 %) it must rise. After two simulated hours
    every window of the last half hour is within half a point of 99 %.

    The replica count is discrete, so the loop settles into alternating between the two counts
    around the target; the plant is chosen (2 slots per replica, see the premise test above) so
    that both counts are within half a point of it. With 8-slot replicas the two neighbouring
    counts miss 1.3 % and 0.08 %, and only their mix over the window could come near 99 %."""
    start = np.array([LOG_MAX, LOG_MIN])
    replicas, attainment, factor = run_loop(start, hours=2.0)
    last_half_hour = slice(-int(1800 / TICK_S), None)

    settled = attainment[last_half_hour]
    assert np.abs(settled - 0.99).max() <= 0.005, (settled.min(axis=0), settled.max(axis=0))
    assert np.abs(attainment[-1] - 0.99).max() <= 0.005

    # moved both ways: the loose start tightened, the tight start loosened
    first_window = WINDOW_TICKS - 1
    assert attainment[first_window, 0] < 0.985
    assert attainment[first_window, 1] > 0.995
    assert factor[-1, 0] < steering.FACTOR_MAX / 2
    assert factor[-1, 1] > steering.FACTOR_MIN * 2
    assert replicas[-1, 0] > replicas[0, 0]
    assert replicas[-1, 1] < replicas[0, 1]
    # and neither is stuck at a clamp
    assert steering.FACTOR_MIN < factor[-1].min() and factor[-1].max() < steering.FACTOR_MAX
