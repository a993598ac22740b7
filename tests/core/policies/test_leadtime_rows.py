"""The Leadtime rule on rows (`autoscaler/policies/leadtime_rows.py`, through `Leadtime.decide` and
`row_inputs`): the reactive safety net counts starting replicas against the queue, an unforecast
burst gets replicas at once, decisions stay within the scale bounds and never go down on missing
data, and a service decided alone or inside a fleet of 1,000 gets the same decision and state."""

from __future__ import annotations

import math
from dataclasses import fields

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.policies import leadtime_rows
from autoscaler.policies.kpa import KpaConfig
from autoscaler.policies.leadtime import Leadtime, LeadtimeState, row_inputs
from autoscaler.policies.leadtime_config import LeadtimeConfig
from autoscaler.policy import Observation
from autoscaler.slo import Attainment
from forecasting.forecast import Forecast

SLOTS = 8
SERVICE_S = 2.0
CONFIG = LeadtimeConfig(kpa=KpaConfig(container_concurrency=SLOTS), service_time_prior_s=SERVICE_S)
LEAD_S = CONFIG.cold_start_prior_s + CONFIG.actuation_delay_s  # 62 s: no cold start measured


def queued(now, *, ready, pending, queue, rate=1.0, seconds=300, **extra) -> Observation:
    """`rate` req/s for `seconds`, each 2 s in service, and in the newest second `queue` requests
    waiting behind `ready` replicas with every slot busy (as a saturated service looks)."""
    concurrency = np.full(seconds, rate * SERVICE_S)
    backlog = np.zeros(seconds)
    backlog[-1] = queue
    concurrency[-1] = SLOTS * ready + queue
    return Observation(
        now=now,
        concurrency=concurrency,
        arrivals=np.full(seconds, rate),
        queue=backlog,
        ready=ready,
        pending=pending,
        desired=ready + pending,
        **extra,
    )


def drains_within_lead(replicas: int, queue: float, rate: float = 1.0) -> bool:
    """The rule's own criterion: `replicas` serve the rate and the queue within one lead time."""
    spare = replicas * SLOTS / SERVICE_S - rate
    return spare > 0 and queue / spare <= LEAD_S


def decide_rows(observation: Observation, config: LeadtimeConfig = CONFIG):
    state = leadtime_rows.RowState.empty(1, config.service_time_prior_s)
    return leadtime_rows.decide(config, row_inputs(observation, config), state)


# --- the reactive safety net and starting replicas ------------------------------------------


def test_the_premise_one_ready_replica_would_not_drain_the_queue_but_three_would():
    assert not drains_within_lead(1, queue=300)  # 3 req/s spare: 100 s
    assert drains_within_lead(3, queue=300)  # 11 req/s spare: 27 s


def test_no_replica_is_started_for_a_queue_that_starting_replicas_drain():
    # 1 ready + 2 starting: 300 queued drain in 27 s, within the 62 s lead time
    result = decide_rows(queued(300.0, ready=1, pending=2, queue=300))
    assert int(result.desired[0]) <= 3
    # what the rule starts is only what the arrival rate itself needs (1 req/s: one replica)
    assert int(result.start[0]) == 1


def test_starting_replicas_that_drain_the_queue_are_kept_as_far_as_the_queue_needs_them():
    # 1 ready + 2 starting, 300 queued: two replicas drain it within the lead time (43 s), so
    # two are kept: ceil((1 + 300 / 62) x 2 / 8); the third goes
    assert drains_within_lead(2, queue=300)
    policy = Leadtime(CONFIG)
    state = policy.initial_state(0.0, 1)
    state.rows.joined_at[:] = 0.0  # joined long ago
    decision, _ = policy.decide(queued(300.0, ready=1, pending=2, queue=300), state)
    assert decision.desired == 2


def test_a_replica_started_for_a_queue_is_not_cancelled_while_it_starts():
    policy = Leadtime(CONFIG)
    state = policy.initial_state(0.0, 1)
    first, state = policy.decide(queued(300.0, ready=1, pending=0, queue=300), state)
    assert first.desired == 2  # ceil((1 + 300 / 62) × 2 / 8)
    # the same queue two seconds later, the replica asked for still starting
    second, state = policy.decide(queued(302.0, ready=1, pending=1, queue=300), state)
    assert second.desired == 2


@pytest.mark.parametrize(
    ("ready", "pending", "queue"),
    [(1, 0, 300), (1, 2, 1000), (2, 1, 2000), (4, 0, 1500)],
)
def test_a_queue_left_when_new_replicas_would_be_ready_gets_them(ready, pending, queue):
    current = ready + pending
    assert not drains_within_lead(current, queue)
    policy = Leadtime(CONFIG)
    decision, _ = policy.decide(
        queued(300.0, ready=ready, pending=pending, queue=queue), policy.initial_state(0.0, 1)
    )
    # what is left when a replica asked for now is ready drains within DRAIN_S of that moment
    left = queue + (1.0 - current * SLOTS / SERVICE_S) * LEAD_S
    assert left > 0
    drain = leadtime_rows.DRAIN_S
    expected = max(current, math.ceil((1.0 + left / drain) * SERVICE_S / SLOTS))
    # Little's law reads the saturated newest second too: time in service a little over 2 s
    assert expected <= decision.desired <= expected + 1


# --- an unforecast burst --------------------------------------------------------------------


def burst(now: float, **extra) -> Observation:
    """1 req/s for 290 s, then 20 req/s for the last 10 s; 2 s in service; one replica."""
    arrivals = np.full(300, 1.0)
    arrivals[-10:] = 20.0
    return Observation(
        now=now,
        concurrency=arrivals * SERVICE_S,
        arrivals=arrivals,
        queue=np.zeros(300),
        ready=1,
        pending=0,
        desired=1,
        **extra,
    )


def flat_forecast(rate: float, steps: int = 20) -> Forecast:
    values = np.full(steps, rate)
    return Forecast(values, {0.5: values, 0.9: values * 1.2, 0.99: values * 1.5}, 10.0)


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ({}, "fallback:no forecast"),
        ({"forecast_note": "quality: MASE 1.8 > 1.2"}, "fallback:quality: MASE 1.8 > 1.2"),
        ({"forecast": flat_forecast(1.0)}, "reactive"),
    ],
)
def test_an_unforecast_burst_gets_replicas_at_once(extra, reason):
    # 20 req/s × 2 s = 40 requests in service: 5 replicas of 8 slots would have no room to
    # spare (every request late), so at least 6, asked for on the first tick that sees it
    policy = Leadtime(CONFIG)
    decision, _ = policy.decide(burst(300.0, **extra), policy.initial_state(0.0, 1))
    assert decision.desired >= 6
    assert decision.reason == reason


def light(now: float, ready: int) -> Observation:
    """1 req/s for 300 s, each 2 s in service, nothing queued, behind `ready` replicas."""
    return Observation(
        now=now,
        concurrency=np.full(300, 2.0),
        arrivals=np.full(300, 1.0),
        queue=np.zeros(300),
        ready=ready,
        pending=0,
        desired=ready,
    )


def test_the_same_load_without_the_burst_needs_one_replica():
    policy = Leadtime(CONFIG)
    decision, _ = policy.decide(light(300.0, ready=1), policy.initial_state(0.0, 1))
    assert decision.desired == 1


# --- the last replica ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("factor", "busy_ago_s", "kept"),
    [
        (0.5, 900.0, 1),  # missing its objective, busy 15 min ago: the next request would wait
        (1.0, 900.0, 0),  # meeting it: ski-rental's break-even (124 s) is long past
        (0.5, 3700.0, 0),  # missing it, but idle past the gap horizon (1 h)
    ],
)
def test_a_service_missing_its_objective_keeps_its_last_replica(factor, busy_ago_s, kept):
    now = 5000.0
    idle = Observation(
        now=now,
        concurrency=np.zeros(300),
        arrivals=np.zeros(300),
        queue=np.zeros(300),
        ready=1,
        pending=0,
        desired=1,
    )
    state = leadtime_rows.RowState.empty(1, CONFIG.service_time_prior_s)
    state.log_factor[:] = math.log(factor)
    state.joined_at[:] = 0.0  # joined long ago
    state.last_needed[0, 0] = now - busy_ago_s
    result = leadtime_rows.decide(CONFIG, row_inputs(idle, CONFIG), state)
    assert int(result.desired[0]) == kept
    if kept:
        assert leadtime_rows.REASONS[int(result.reason[0])] in ("holding", "fallback")


# --- joining -------------------------------------------------------------------------------


def test_the_replicas_running_when_a_service_joins_are_held_for_the_hold_then_released():
    first = decide_rows(light(300.0, ready=5))
    assert int(first.desired[0]) == 5  # the time in service and the slots are still priors
    assert leadtime_rows.REASONS[int(first.reason[0])] in ("holding", "fallback")
    after = 300.0 + float(first.keep_s[0]) + CONFIG.kpa.tick_s
    later = leadtime_rows.decide(CONFIG, row_inputs(light(after, ready=5), CONFIG), first.state)
    assert int(later.desired[0]) < 5


# --- bounds and missing data ----------------------------------------------------------------


def random_observation(
    rng: np.random.Generator,
    now: float,
    *,
    seconds: int | None = None,
    steps: int | None = None,
    forecast: bool | None = None,
    busy: bool = False,
) -> Observation:
    """Any plausible observation: bursty or idle arrivals, queues, replicas starting, a forecast
    (of `steps` steps when given; always or never when `forecast` says) or none, an attainment or
    none, a measured cold start or none."""
    seconds = int(rng.integers(1, 400)) if seconds is None else seconds
    scale = float(rng.choice([0.0, 0.3, 3.0, 40.0]))
    arrivals = rng.poisson(scale * rng.gamma(0.5, 2.0, seconds)).astype(float)
    if busy:
        arrivals[-1] = max(arrivals[-1], 1.0)
    service = float(rng.uniform(0.2, 20.0))
    queue = np.where(rng.random(seconds) < 0.2, rng.uniform(0, 200, seconds), 0.0)
    concurrency = arrivals * service + queue
    ready, pending = int(rng.integers(0, 12)), int(rng.integers(0, 4))
    predicted = None
    if rng.random() < 0.6 if forecast is None else forecast:
        horizon = int(rng.integers(1, 30)) if steps is None else steps
        p50 = rng.uniform(0, 1.2 * scale + 1, horizon)
        p90 = p50 * rng.uniform(1.0, 2.0, horizon)
        predicted = Forecast(p50, {0.5: p50, 0.9: p90, 0.99: p90 * 1.3}, 10.0)
    attainment = None
    if rng.random() < 0.6:
        total = float(rng.integers(0, 5000))
        attainment = Attainment(total * float(rng.uniform(0.8, 1.0)), total)
    return Observation(
        now=now,
        concurrency=concurrency,
        arrivals=arrivals,
        queue=queue,
        ready=ready,
        pending=pending,
        desired=ready + pending,
        poke=bool(rng.random() < 0.05),
        forecast=predicted,
        forecast_note="" if predicted is not None else "too little history",
        cold_start_s=None if rng.random() < 0.5 else float(rng.uniform(5, 600)),
        attainment=attainment,
    )


SCALES = st.integers(0, 6).flatmap(
    lambda low: st.tuples(st.just(low), st.sampled_from([0, max(low, 1), low + 1, low + 9]))
)


@settings(max_examples=120, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), scales=SCALES, slots=st.sampled_from([0, 1, 8]))
def test_decisions_stay_within_the_scale_bounds(seed, scales, slots):
    low, high = scales
    config = LeadtimeConfig(
        kpa=KpaConfig(container_concurrency=slots, min_scale=low, max_scale=high)
    )
    policy = Leadtime(config)
    rng = np.random.default_rng(seed)
    state = policy.initial_state(0.0, 1)
    for tick in range(3):  # a fresh state and a state with history
        decision, state = policy.decide(random_observation(rng, 300.0 + 2 * tick), state)
        assert decision.desired >= low
        if high:
            assert decision.desired <= high


@given(ready=st.integers(0, 50), pending=st.integers(0, 10), seed=st.integers(0, 1000))
def test_no_metrics_hold_the_current_scale(ready, pending, seed):
    policy = Leadtime(CONFIG)
    rng = np.random.default_rng(seed)
    state = policy.initial_state(0.0, 1)
    state = policy.decide(random_observation(rng, 300.0), state)[1]  # some history first
    empty = Observation(
        now=302.0,
        concurrency=np.zeros(0),
        arrivals=np.zeros(0),
        queue=np.zeros(0),
        ready=ready,
        pending=pending,
        desired=ready + pending,
        forecast=flat_forecast(0.0),
    )
    decision, after = policy.decide(empty, state)
    assert decision.desired == ready + pending
    assert decision.reason == "holding"
    assert after is state


@settings(max_examples=120, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_without_forecast_or_attainment_the_observed_load_keeps_its_capacity(seed):
    """Missing forecast and attainment never lower the count below the bare capacity the
    last minute's arrivals occupy (rate × time in service, per replica's slots)."""
    rng = np.random.default_rng(seed)
    observation = random_observation(rng, 300.0)
    observation = Observation(
        now=observation.now,
        concurrency=observation.concurrency,
        arrivals=observation.arrivals,
        queue=observation.queue,
        ready=observation.ready,
        pending=observation.pending,
        desired=observation.desired,
    )
    result = decide_rows(observation)
    stable = observation.arrivals[-leadtime_rows.STABLE_S :]
    load = stable.sum() / max(stable.size, 1) * float(result.state.service_time[0])
    desired = int(result.desired[0])
    if load > 0:
        assert desired * float(result.slots[0]) > load
    assert leadtime_rows.REASONS[int(result.reason[0])] in ("fallback", "holding")


# --- one service alone or in a fleet of 1,000 -----------------------------------------------

FLEET = 1000
STEPS = 24


def stack(rows: list[leadtime_rows.RowInputs]) -> leadtime_rows.RowInputs:
    """One RowInputs of many one-row inputs (forecast rows padded to one width; a row without a
    forecast is ignored past `has_forecast`)."""
    width = max(r.p50.shape[1] for r in rows)

    def pad(a: np.ndarray) -> np.ndarray:
        out = np.zeros((a.shape[0], width))
        out[:, : a.shape[1]] = a
        return out

    values = {}
    for f in fields(leadtime_rows.RowInputs):
        parts = [getattr(r, f.name) for r in rows]
        if f.name in ("now", "step_s"):
            assert len(set(parts)) == 1
            values[f.name] = parts[0]
        elif f.name in ("p50", "p90"):
            values[f.name] = np.concatenate([pad(p) for p in parts])
        else:
            values[f.name] = np.concatenate(parts)
    return leadtime_rows.RowInputs(**values)


def assert_same_state(alone: leadtime_rows.RowState, fleet: leadtime_rows.RowState, row: int):
    for f in fields(leadtime_rows.RowState):
        np.testing.assert_array_equal(
            getattr(alone, f.name)[0], getattr(fleet, f.name)[row], err_msg=f.name
        )


@pytest.mark.parametrize(("seed", "row"), [(1, 0), (2, 517), (3, FLEET - 1)])
def test_a_service_decided_alone_or_in_a_fleet_of_a_thousand_gets_the_same(seed, row):
    rng = np.random.default_rng(seed)
    policy = Leadtime(CONFIG)
    alone = policy.initial_state(0.0, 1)
    fleet = leadtime_rows.RowState.empty(FLEET, CONFIG.service_time_prior_s)
    checked = rng.choice(FLEET, 8, replace=False)
    for tick in range(3):  # the state carries history after the first tick
        now = 300.0 + 2 * tick
        # every row has a forecast of the same length or none (padded); this service has one
        observations = [
            random_observation(
                rng,
                now,
                seconds=300,
                steps=STEPS,
                forecast=True if k == row else None,
                busy=k == row,
            )
            for k in range(FLEET)
        ]
        own = observations[row]

        decision, alone_next = policy.decide(own, alone)
        result = leadtime_rows.decide(
            CONFIG, stack([row_inputs(o, CONFIG) for o in observations]), fleet
        )
        assert decision.desired == int(result.desired[row])
        assert decision.reason == leadtime_rows.REASONS[int(result.reason[row])]
        assert_same_state(alone_next.rows, result.state, row)

        # other rows too: each decided on its own is what the fleet decided for it
        for k in checked:
            single = leadtime_rows.decide(
                CONFIG, row_inputs(observations[k], CONFIG), fleet.take(np.array([k]))
            )
            assert int(single.desired[0]) == int(result.desired[k])
            assert int(single.reason[0]) == int(result.reason[k])
            assert_same_state(single.state, result.state, int(k))

        alone = LeadtimeState(alone_next.rows, alone_next.idle)
        fleet = result.state
