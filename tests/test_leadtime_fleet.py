"""The fleet Leadtime takes the scalar Leadtime's decisions, and reaches its states."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.policies import keepalive, leadtime_fleet
from autoscaler.policies.capacity import SATURATION_WINDOW_S
from autoscaler.policies.leadtime import Leadtime, LeadtimeConfig, LeadtimeState
from autoscaler.policy import Observation, window_mean
from forecasting.forecast import Forecast
from tests.test_kpa_fleet import NOW
from tests.test_kpa_fleet import scenarios as kpa_scenarios

HOLD_SLOTS = 256


@st.composite
def scenarios(draw):
    kpa_cfg, kpa_state, ready, concurrency = draw(kpa_scenarios())
    config = LeadtimeConfig(
        kpa=kpa_cfg,
        quantile=draw(st.sampled_from([0.8, 0.9])),
        learn_capacity=draw(st.booleans()),
    )
    n = concurrency.size
    queue = np.minimum(
        concurrency, np.array(draw(st.lists(st.integers(0, 40), min_size=n, max_size=n))) / 4
    )
    arrivals = np.array(draw(st.lists(st.integers(0, 80), min_size=n, max_size=n))) / 4
    if draw(st.booleans()):  # a quiet newest second opens an idle period, or extends one
        arrivals[-1] = 0.0
        concurrency = concurrency.copy()
        concurrency[-1] = 0.0
        queue[-1] = 0.0
    times = sorted(draw(st.lists(st.floats(NOW - 400, NOW - 2), max_size=6, unique=True)))
    counts = sorted(
        draw(st.lists(st.integers(0, 30), min_size=len(times), max_size=len(times), unique=True)),
        reverse=True,
    )
    slots = draw(st.one_of(st.none(), st.floats(1.0, 16.0)))
    state = LeadtimeState(
        kpa=kpa_state,
        service_time_s=draw(st.floats(0.1, 5.0)),
        held=tuple(zip(times, counts, strict=True)),
        idle=keepalive.initial_state(config.idle),
        slots=slots,
        idle_since=draw(st.one_of(st.none(), st.floats(NOW - 600, NOW - 2))),
    )
    forecast = None
    if draw(st.integers(0, 3)):
        scale = draw(st.sampled_from([8, 40, 200]))  # from below the held counts to above
        p50 = np.array(draw(st.lists(st.integers(0, scale), min_size=30, max_size=30))) / 4
        extra = np.array(draw(st.lists(st.integers(0, 40), min_size=30, max_size=30))) / 4
        forecast = Forecast(p50, {0.5: p50, config.quantile: p50 + extra}, 10.0)
    cold = draw(st.one_of(st.none(), st.floats(20.0, 200.0)))
    observation = Observation(
        now=NOW,
        concurrency=concurrency,
        arrivals=arrivals,
        queue=queue,
        ready=ready,
        pending=0,
        desired=ready,
        forecast=forecast,
        forecast_note="" if forecast else "no forecast yet",
        cold_start_s=cold,
    )
    return Leadtime(config), state, observation


def same_histogram(a, b) -> bool:
    return (
        np.array_equal(a.counts, b.counts)
        and a.out_of_range == b.out_of_range
        and a.recent_out_of_range == b.recent_out_of_range
    )


def fleet_inputs(policy, observations):
    cfg = policy.config
    metric = "arrivals" if cfg.kpa.metric == "rps" else "concurrency"
    window = int(cfg.service_time_window_s)

    def column(fn):
        return np.array([fn(o) for o in observations], dtype=float)

    steps = 30
    return leadtime_fleet.FleetInputs(
        now=NOW,
        ready=np.array([o.ready for o in observations]),
        stable=column(lambda o: window_mean(getattr(o, metric), cfg.kpa.stable_window)),
        panic=column(lambda o: window_mean(getattr(o, metric), cfg.kpa.panic_window)),
        arrivals_sum=column(lambda o: o.arrivals[-window:].sum()),
        concurrency_sum=column(lambda o: o.concurrency[-window:].sum()),
        queue_sum=column(lambda o: o.queue[-window:].sum()),
        concurrency_tail=np.array([_tail(o.concurrency) for o in observations]),
        queue_tail=np.array([_tail(o.queue) for o in observations]),
        arrivals_last=column(lambda o: o.arrivals[-1]),
        cold_start=column(lambda o: math.nan if o.cold_start_s is None else o.cold_start_s),
        p50=np.array([_row(o, 0.5, steps) for o in observations]),
        upper=np.array([_row(o, cfg.quantile, steps) for o in observations]),
        has_forecast=np.array([o.forecast is not None for o in observations]),
        step_s=10.0,
    )


def _tail(series):
    """The newest seconds, padded at the front with zeros (never saturated) to a full window."""
    tail = series[-SATURATION_WINDOW_S:]
    return np.concatenate([np.zeros(SATURATION_WINDOW_S - tail.size), tail])


def _row(observation, quantile, steps):
    if observation.forecast is None:
        return np.zeros(steps)
    return np.asarray(observation.forecast.quantile(quantile))[:steps]


@settings(max_examples=400, deadline=None)
@given(scenarios())
def test_the_fleet_path_decides_and_remembers_as_the_scalar_policy(scenario):
    policy, state, observation = scenario
    decision, after = policy.decide(observation, state)
    result = leadtime_fleet.decide(
        policy, fleet_inputs(policy, [observation]), leadtime_fleet.pack([state], HOLD_SLOTS)
    )
    if result.leaves_regime[0]:
        return
    if result.closed_idle[0]:  # the caller's part: the closed period goes into the histogram
        idle = keepalive.observe_idle(state.idle, float(result.idle_length[0]))
        assert same_histogram(idle, after.idle)
    else:
        assert same_histogram(state.idle, after.idle)
    idle_since = result.state.idle_since[0]
    assert (math.isnan(idle_since) and after.idle_since is None) or idle_since == after.idle_since
    assert int(result.desired[0]) == decision.desired
    assert leadtime_fleet.REASONS[int(result.reason[0])] == decision.reason.partition(":")[0]
    new = result.state
    assert new.service_time[0] == after.service_time_s
    assert (math.isnan(new.slots[0]) and after.slots is None) or new.slots[0] == after.slots
    cfg = policy.config
    lead = (observation.cold_start_s or cfg.cold_start_prior_s) + cfg.actuation_delay_s
    cutoff = NOW - max(cfg.scale_down_delay_s, cfg.hold_leads * lead)
    if observation.forecast is not None:
        assert leadtime_fleet.held(new, 0, cutoff) == after.held
    assert leadtime_fleet.kpa_fleet.unpack(new.kpa, 0) == after.kpa
