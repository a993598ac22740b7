"""The Leadtime policy as a pure function: the fewest replicas that meet the SLO, one lead ahead."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from autoscaler.errors import InputError
from autoscaler.policies import keepalive
from autoscaler.policies.kpa import KpaConfig
from autoscaler.policies.leadtime import Leadtime
from autoscaler.policies.leadtime_config import LeadtimeConfig
from autoscaler.policy import Observation
from forecasting.forecast import Forecast

# 8 slots per replica, 2 s in service until learned otherwise
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


def test_without_a_forecast_the_safety_net_decides_and_the_reason_says_why():
    policy = Leadtime(CONFIG)
    state = policy.initial_state(0.0, 1)
    decision, _ = decide(policy, state, now=300.0, forecast_note="quality: MASE 1.8 > 1.2")
    assert decision.reason == "fallback:quality: MASE 1.8 > 1.2"
    assert decision.desired == 1  # 1/s x 2 s = 2 requests in service on 8 slots


def test_a_burst_forecast_within_the_lead_time_is_provisioned_now():
    policy = Leadtime(CONFIG)
    state = policy.initial_state(0.0, 1)
    # the forecast rises to ~14/s 50 s from now, inside the lead (62 s) + horizon (60 s):
    # 28 requests in service need at least 4 replicas of 8 slots, with queueing headroom more
    rates = [1.0] * 5 + [14.0] * 3 + [1.0] * 10
    decision, state = decide(policy, state, now=300.0, forecast=forecast(rates))
    assert decision.reason == "predictive"
    assert 4 <= decision.desired <= 8
    assert "lead 62s" in decision.detail


def test_demand_beyond_lead_plus_horizon_is_not_provisioned_yet():
    policy = Leadtime(CONFIG)
    state = policy.initial_state(0.0, 1)
    # lead 62 s + horizon 60 s = 122 s → 13 steps of 10 s; the spike is at step 20
    rates = [1.0] * 19 + [50.0]
    decision, _ = decide(policy, state, now=300.0, forecast=forecast(rates))
    assert decision.desired == 1


def test_a_replica_started_now_is_for_the_load_after_one_lead_time():
    policy = Leadtime(CONFIG)
    state = policy.initial_state(0.0, 1)
    # a spike in the next 40 s only: a replica requested now would be ready after it
    rates = [14.0] * 4 + [1.0] * 16
    decision, _ = decide(policy, state, now=300.0, forecast=forecast(rates))
    assert decision.desired == 1


def test_measured_cold_start_sets_the_lead_time():
    policy = Leadtime(CONFIG)
    state = policy.initial_state(0.0, 1)
    rates = [1.0] * 19 + [50.0]  # the spike at 190–200 s is inside 180 + 2 + 60 s
    decision, _ = decide(policy, state, now=300.0, forecast=forecast(rates), cold_start_s=180.0)
    assert decision.desired >= math.ceil(40.0 * 2.0 / 8)
    assert "lead 182s" in decision.detail


def test_without_gap_history_an_unneeded_replica_is_kept_for_the_break_even():
    policy = Leadtime(CONFIG)
    state = policy.initial_state(0.0, 1)
    first, state = decide(policy, state, now=300.0, forecast=forecast([14.0] * 13))
    peak = first.desired
    held, state = decide(policy, state, now=360.0, forecast=forecast([1.0] * 13), desired=peak)
    assert (held.desired, held.reason) == (peak, "holding")
    # lead 62 s: ski-rental's deterministic rule keeps it 2 x 62 s = 124 s after its last use
    still, state = decide(policy, state, now=422.0, forecast=forecast([1.0] * 13), desired=peak)
    assert (still.desired, still.reason) == (peak, "holding")
    later, _ = decide(policy, state, now=426.0, forecast=forecast([1.0] * 13), desired=peak)
    assert later.desired == 1


def test_slow_cold_starts_keep_longer():
    policy = Leadtime(CONFIG)
    state = policy.initial_state(0.0, 1)
    first, state = decide(
        policy, state, now=300.0, forecast=forecast([14.0] * 40), cold_start_s=180.0
    )
    peak = first.desired
    # lead 182 s: kept 364 s
    held, state = decide(
        policy, state, now=660.0, forecast=forecast([1.0] * 40), desired=peak, cold_start_s=180.0
    )
    assert (held.desired, held.reason) == (peak, "holding")
    later, _ = decide(
        policy, state, now=666.0, forecast=forecast([1.0] * 40), desired=peak, cold_start_s=180.0
    )
    assert later.desired < peak


def test_a_queue_the_starting_replicas_will_drain_is_not_paid_twice():
    policy = Leadtime(CONFIG)
    state = policy.initial_state(0.0, 1)
    # 46 in the system, 38 of them queued after a cold start, arrivals back at 1/s: the KPA
    # would ask for ceil(46 / 5.6) = 9. The one ready replica (8 slots, 2 s each) drains the
    # queue in ~13 s, long before a replica requested now is ready: nothing more is started.
    observation = replace(
        observe(now=300.0, forecast=forecast([1.0] * 13), ready=1, desired=1),
        concurrency=np.r_[np.full(299, 2.0), 46.0],
        queue=np.r_[np.zeros(299), 38.0],
    )
    decision, _ = policy.decide(observation, state)
    assert decision.desired == 1


def test_a_queue_that_outlasts_the_lead_time_gets_replicas_at_once():
    policy = Leadtime(CONFIG)
    state = policy.initial_state(0.0, 1)
    # 20 arrivals/s for the last 10 s against one replica serving 4/s: the queue grows
    arrivals = np.r_[np.full(290, 1.0), np.full(10, 20.0)]
    observation = replace(
        observe(now=300.0, ready=1, desired=1),
        arrivals=arrivals,
        concurrency=np.r_[np.full(290, 2.0), np.full(10, 60.0)],  # 8 in service, 52 queued
        queue=np.r_[np.zeros(290), np.full(10, 52.0)],
    )
    decision, _ = policy.decide(observation, state)
    assert decision.reason.startswith("fallback")  # no forecast: the safety net alone
    assert decision.desired >= math.ceil(20 * 2.0 / 8)


def test_service_time_is_learned_by_littles_law():
    policy = Leadtime(CONFIG)
    state = policy.initial_state(0.0, 1)
    for step in range(40):  # 3 in service at 1 arrival/s: 3 s each
        _, state = decide(policy, state, now=300.0 + 2 * step, concurrency=3.0, arrivals=1.0)
    assert state.rows.service_time[0] == pytest.approx(3.0, abs=0.01)


def test_missing_metrics_hold_the_current_scale():
    policy = Leadtime(CONFIG)
    state = policy.initial_state(0.0, 3)
    decision, _ = decide(policy, state, now=300.0, seconds=0, ready=3, desired=3)
    assert (decision.desired, decision.reason) == (3, "holding")


def idle_for(seconds, rates, state=None, start=300.0, policy=None):
    """Ticks every 2 s with no traffic and the same forecast; the last decision and state."""
    policy = policy or Leadtime(CONFIG)
    state = state or policy.initial_state(0.0, 1)
    decision = None
    for step in range(int(seconds // 2)):
        ready = 1 if decision is None else decision.desired
        decision, state = decide(
            policy,
            state,
            now=start + 2 * step,
            concurrency=0.0,
            arrivals=0.0,
            forecast=forecast(rates),
            ready=ready,
            desired=ready,
        )
    return decision, state


def test_idle_replica_is_kept_through_the_fixed_keepalive_then_released():
    # no idle history yet: Shahrad et al.'s fallback keeps the last replica for 10 minutes
    # (past the first 124 s, where the replica running when the service joined is held anyway)
    held, _ = idle_for(180, [0.0] * 13)
    assert (held.desired, held.reason) == (1, "keepalive")
    released, _ = idle_for(11 * 60, [0.0] * 13)
    assert released.desired == 0


def test_learned_idle_times_release_early_and_prewarm_one_lead_time_before_the_next_request():
    policy = Leadtime(CONFIG)
    state = policy.initial_state(0.0, 1)
    idle = state.idle
    for _ in range(20):  # this service is always idle for 20 minutes
        idle = keepalive.observe_idle(idle, 20 * 60.0)
    state = replace(state, idle=idle)
    # the 20-minute bin gives a warm window from 20 min x 0.9 = 1,080 s to 21 min x 1.1 =
    # 1,386 s after the idle period began (at 300 s): 1,380 s to 1,686 s; with a 62 s lead
    # the replica is requested at 1,318 s
    early, state = idle_for(5 * 60, [0.0] * 13, state=state, policy=policy)
    assert early.desired == 0  # released: nothing is expected for another 10 minutes
    before, state = idle_for(700, [0.0] * 13, state=state, start=600.0, policy=policy)
    assert before.desired == 0  # up to 1,298 s
    due, state = idle_for(60, [0.0] * 13, state=state, start=1320.0, policy=policy)
    assert (due.desired, due.reason) == (1, "prewarm")
    after, _ = idle_for(60, [0.0] * 13, state=state, start=1700.0, policy=policy)
    assert after.desired == 0  # the window closed at 1686 s


def test_a_predicted_arrival_keeps_the_last_replica():
    decision, _ = idle_for(11 * 60, [0.0] * 8 + [0.5] * 5)
    assert decision.desired == 1


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("slo_target", 0.3, "leadtime.slo_target"),
        ("slo_target", 1.0, "leadtime.slo_target"),
        ("slo_ttft_s", 0, "leadtime.slo_ttft_s"),
        ("horizon_s", 0, "leadtime.horizon_s"),
        ("scale_down_delay_s", -1, "leadtime.scale_down_delay_s"),
    ],
)
def test_bad_config_names_the_field(field, value, message):
    with pytest.raises(InputError, match=message):
        LeadtimeConfig(**{field: value})


# ------------------------------------------------------------------ warm headroom and placeholders


def banded(median, upper, steps=18, step_s=10.0) -> Forecast:
    """A flat forecast with the given median and p90 (arrivals/s)."""
    p50, p90 = np.full(steps, float(median)), np.full(steps, float(upper))
    return Forecast(p50, {0.5: p50, 0.9: p90}, step_s)


def test_an_unsure_forecast_keeps_more_than_a_sure_one():
    policy = Leadtime(CONFIG)
    sure, _ = decide(policy, policy.initial_state(0.0, 1), now=300.0, forecast=banded(8.4, 8.4))
    unsure, _ = decide(policy, policy.initial_state(0.0, 1), now=300.0, forecast=banded(8.4, 25.2))
    assert unsure.desired > sure.desired >= math.ceil(8.4 * 2.0 / 8)


def test_the_poisson_noise_of_a_ten_second_count_is_not_paid_for_twice():
    policy = Leadtime(CONFIG)
    # a p90 exactly the Poisson spread of a 10-second count around the median: no extra level
    poisson = banded(8.4, 8.4 + 1.2815515655446004 * math.sqrt(8.4 / 10.0))
    sure, _ = decide(policy, policy.initial_state(0.0, 1), now=300.0, forecast=banded(8.4, 8.4))
    noisy, _ = decide(policy, policy.initial_state(0.0, 1), now=300.0, forecast=poisson)
    assert noisy.desired == sure.desired


def test_a_higher_target_buys_more_replicas():
    loose = Leadtime(replace(CONFIG, slo_target=0.9))
    strict = Leadtime(replace(CONFIG, slo_target=0.999))
    kwargs = {"now": 300.0, "forecast": banded(20.0, 24.0)}
    low, _ = decide(loose, loose.initial_state(0.0, 1), **kwargs)
    high, _ = decide(strict, strict.initial_state(0.0, 1), **kwargs)
    assert high.desired > low.desired


def test_scale_up_need_looks_one_node_provisioning_further():
    policy = Leadtime(CONFIG)
    state = policy.initial_state(0.0, 1)
    # flat 1/s for 3 minutes, then median 8.4/s (3 replicas) and p90 14/s (5)
    p50 = np.array([1.0] * 18 + [8.4] * 30)
    p90 = np.array([1.0] * 18 + [14.0] * 30)
    observation = observe(now=300.0, forecast=Forecast(p50, {0.5: p50, 0.9: p90}, 10.0))
    need = policy.scale_up_need(
        observation, state, current=1, within_s=180.0, gpu_class="a100", gpus_per_replica=2
    )
    assert need is not None
    assert (need.gpu_class, need.gpus_per_replica) == ("a100", 2)
    assert 2 <= need.expected <= need.upper
    # within a short provisioning time the growth is out of reach: nothing to hold
    near = policy.scale_up_need(
        observation, state, current=1, within_s=1.0, gpu_class="a100", gpus_per_replica=2
    )
    assert near is not None and (near.expected, near.upper) == (0, 0)


def test_scale_up_need_is_none_without_a_forecast_or_with_placeholders_off():
    policy = Leadtime(CONFIG)
    state = policy.initial_state(0.0, 1)
    kwargs = {"current": 1, "within_s": 180.0, "gpu_class": "gpu", "gpus_per_replica": 1}
    assert policy.scale_up_need(observe(now=300.0), state, **kwargs) is None
    off = Leadtime(replace(CONFIG, placeholders=False))
    assert off.name == "leadtime:no-placeholders"
    observation = observe(now=300.0, forecast=banded(8.4, 14.0))
    assert off.scale_up_need(observation, state, **kwargs) is None
