"""The Leadtime policy as a pure function: forecast one lead time ahead, never below the KPA."""

from __future__ import annotations

import math

import numpy as np
import pytest

from autoscaler.errors import InputError
from autoscaler.policies.kpa import KpaConfig
from autoscaler.policies.leadtime import Leadtime, LeadtimeConfig
from autoscaler.policy import Observation
from forecasting.forecast import Forecast

# 8 slots x 70 % = a target of 5.6 requests in service per replica
CONFIG = LeadtimeConfig(kpa=KpaConfig(container_concurrency=8), service_time_prior_s=2.0)


def forecast(rates, step_s: float = 10.0) -> Forecast:
    rates = np.asarray(rates, dtype=float)
    return Forecast(rates, {0.5: rates * 0.8, 0.9: rates, 0.99: rates * 1.2}, step_s)


def observe(now, concurrency=2.0, arrivals=1.0, ready=1, desired=1, seconds=300, **extra):
    return Observation(
        now=now,
        concurrency=np.full(seconds, concurrency),
        arrivals=np.full(seconds, arrivals),
        queue=np.zeros(seconds),
        ready=ready,
        pending=0,
        desired=desired,
        **extra,
    )


def decide(policy, state, **kwargs):
    return policy.decide(observe(**kwargs), state)


def test_without_a_forecast_the_kpa_decides_and_the_reason_says_why():
    policy = Leadtime(CONFIG)
    state = policy.initial_state(0.0, 1)
    decision, _ = decide(policy, state, now=300.0, forecast_note="quality: MASE 1.8 > 1.2")
    assert decision.reason == "fallback:quality: MASE 1.8 > 1.2"
    assert decision.desired == 1  # KPA: ceil(2.0 / 5.6)


def test_a_burst_forecast_within_the_lead_time_is_provisioned_now():
    policy = Leadtime(CONFIG)
    state = policy.initial_state(0.0, 1)
    # 1/s in service for 2 s → concurrency 2 (the service time estimate stays at 2 s);
    # the forecast's p90 rises to 14/s 50 s from now: 14 x 2 / 5.6 = 5 replicas
    rates = [1.0] * 5 + [14.0] * 3 + [1.0] * 10
    decision, state = decide(policy, state, now=300.0, forecast=forecast(rates))
    assert decision.reason == "predictive"
    assert decision.desired == 5
    assert "lead 62s" in decision.detail


def test_demand_beyond_lead_plus_horizon_is_not_provisioned_yet():
    policy = Leadtime(CONFIG)
    state = policy.initial_state(0.0, 1)
    # lead 62 s + horizon 60 s = 122 s → 13 steps of 10 s; the spike is at step 20
    rates = [1.0] * 19 + [50.0]
    decision, _ = decide(policy, state, now=300.0, forecast=forecast(rates))
    assert decision.desired == 1
    assert decision.reason != "predictive"


def test_measured_cold_start_sets_the_lead_time():
    policy = Leadtime(CONFIG)
    state = policy.initial_state(0.0, 1)
    rates = [1.0] * 19 + [50.0]  # the spike at 190–200 s is inside 180 + 2 + 60 s
    decision, _ = decide(policy, state, now=300.0, forecast=forecast(rates), cold_start_s=180.0)
    assert decision.desired == math.ceil(50.0 * 2.0 / 5.6)


def test_forecast_capacity_is_held_through_the_scale_down_delay():
    policy = Leadtime(CONFIG)
    state = policy.initial_state(0.0, 1)
    _, state = decide(policy, state, now=300.0, forecast=forecast([14.0] * 13))
    held, state = decide(policy, state, now=360.0, forecast=forecast([1.0] * 13), desired=5)
    assert (held.desired, held.reason) == (5, "holding")
    later, _ = decide(policy, state, now=422.0, forecast=forecast([1.0] * 13), desired=5)
    assert later.desired < 5


def test_never_below_the_reactive_kpa():
    policy = Leadtime(CONFIG)
    state = policy.initial_state(0.0, 1)
    # observed concurrency 40 → the KPA wants ceil(40 / 5.6) = 8 (panic), forecast says little
    decision, _ = decide(
        policy, state, now=300.0, concurrency=40.0, arrivals=20.0, forecast=forecast([0.1] * 13)
    )
    assert decision.desired >= 8


def test_service_time_is_learned_by_littles_law():
    policy = Leadtime(CONFIG)
    state = policy.initial_state(0.0, 1)
    for step in range(40):  # 3 in service at 1 arrival/s: 3 s each
        _, state = decide(policy, state, now=300.0 + 2 * step, concurrency=3.0, arrivals=1.0)
    assert state.service_time_s == pytest.approx(3.0, abs=0.01)


def idle_for_two_minutes(rates):
    """Two minutes of ticks with no traffic and the same forecast; the last decision."""
    policy = Leadtime(CONFIG)
    state = policy.initial_state(0.0, 1)
    for step in range(60):
        decision, state = decide(
            policy,
            state,
            now=300.0 + 2 * step,
            concurrency=0.0,
            arrivals=0.0,
            forecast=forecast(rates),
        )
    return decision


def test_a_forecast_of_no_traffic_lets_the_kpa_scale_to_zero():
    assert idle_for_two_minutes([0.0] * 13).desired == 0


def test_a_predicted_arrival_keeps_the_last_replica():
    decision = idle_for_two_minutes([0.0] * 8 + [0.5] * 5)
    assert decision.desired == 1


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("quantile", 0.3, "leadtime.quantile"),
        ("horizon_s", 0, "leadtime.horizon_s"),
        ("scale_down_delay_s", -1, "leadtime.scale_down_delay_s"),
    ],
)
def test_bad_config_names_the_field(field, value, message):
    with pytest.raises(InputError, match=message):
        LeadtimeConfig(**{field: value})
