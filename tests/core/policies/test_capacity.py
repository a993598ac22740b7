"""Per-replica capacity: the configured target, and the slots learned from saturated seconds."""

from __future__ import annotations

import numpy as np
import pytest

from autoscaler.policies import leadtime_rows
from autoscaler.policies.capacity import SATURATION_WINDOW_S
from autoscaler.policies.kpa import KpaConfig
from autoscaler.policies.leadtime import Leadtime, row_inputs
from autoscaler.policies.leadtime_config import LeadtimeConfig
from autoscaler.policy import Observation
from forecasting.forecast import Forecast


def observe(concurrency, queue, ready, arrivals=1.0, now=300.0, forecast=None):
    concurrency = np.asarray(concurrency, dtype=float)
    return Observation(
        now=now,
        concurrency=concurrency,
        arrivals=np.full(concurrency.size, arrivals),
        queue=np.asarray(queue, dtype=float),
        ready=ready,
        pending=0,
        desired=ready,
        forecast=forecast,
    )


def saturation_slots(observation: Observation, previous: float | None) -> float | None:
    """The rule's learned slots for one service (one row), as a number or None."""
    inputs = row_inputs(observation, LeadtimeConfig())
    before = np.array([np.nan if previous is None else previous])
    steady = np.array([True])
    learned, _ = leadtime_rows.learned_slots(inputs, before, np.array([np.nan]), steady)
    return None if np.isnan(learned[0]) else float(learned[0])


def effective_target(configured: int, learned: float | None) -> float:
    """The slots the rule plans with: containerConcurrency, or the learned slots when clearly
    fewer."""
    config = LeadtimeConfig(kpa=KpaConfig(container_concurrency=configured))
    slots = np.array([np.nan if learned is None else learned])
    return float(leadtime_rows.usable_slots(config, slots, np.ones(1))[0])


def test_queued_seconds_reveal_the_slots_of_a_replica():
    # 3 replicas, 24 in service and 10 waiting: every replica is full with 8
    observation = observe([34.0] * 4, [10.0] * 4, ready=3)
    assert saturation_slots(observation, None) == pytest.approx(8.0)
    # a later sample moves a running estimate by a fifth of the difference
    assert saturation_slots(observation, 10.0) == pytest.approx(9.6)


@pytest.mark.parametrize(
    ("concurrency", "queue", "ready"),
    [([5.0] * 4, [0.0] * 4, 3), ([34.0] * 4, [10.0] * 4, 0), ([10.0] * 4, [10.0] * 4, 2)],
    ids=["nothing queued", "nothing ready", "nothing in service"],
)
def test_without_saturation_evidence_the_estimate_is_kept(concurrency, queue, ready):
    assert saturation_slots(observe(concurrency, queue, ready), 6.0) == 6.0
    assert saturation_slots(observe(concurrency, queue, ready), None) is None


def test_only_saturated_seconds_count_and_the_fullest_one_wins():
    # 2 replicas: a quiet second (3 in service), a partly saturated one (12 in service on
    # average), two full ones (16 in service)
    observation = observe([3.0, 13.0, 20.0, 20.0], [0.0, 1.0, 4.0, 4.0], ready=2)
    assert saturation_slots(observation, None) == pytest.approx(8.0)


def test_the_learned_slots_only_ever_lower_the_target_and_only_clearly():
    assert effective_target(70, 8.0) == pytest.approx(8.0)
    assert effective_target(8, 100.0) == pytest.approx(8.0)
    assert effective_target(70, None) == 70.0
    # 7 slots read against a configured 8: within the tolerance, the configuration stands
    assert effective_target(8, 7.0) == pytest.approx(8.0)
    assert effective_target(8, 5.0) == pytest.approx(5.0)


def test_seconds_from_before_replicas_became_ready_are_not_read():
    # 2 replicas were full (16 in service, some queued); 2 more became ready since the last
    # tick: 16 / 4 would read 4 slots where a replica has 8
    policy = Leadtime(LeadtimeConfig(kpa=KpaConfig(container_concurrency=8)))
    state = policy.initial_state(0.0, 2)
    full = [17.0] * 300
    _, state = policy.decide(observe(full, [1.0] * 300, ready=2), state)
    _, state = policy.decide(observe(full, [1.0] * 300, ready=4, now=302.0), state)
    assert np.isnan(state.rows.slots[0])
    # with the four ready for the whole window, the same seconds are read: 4 slots each
    later = 302.0 + SATURATION_WINDOW_S
    _, state = policy.decide(observe(full, [1.0] * 300, ready=4, now=later), state)
    assert state.rows.slots[0] == pytest.approx(4.0)


def flat(rate, steps=18):
    values = np.full(steps, float(rate))
    return Forecast(values, {0.5: values, 0.9: values}, 10.0)


def test_leadtime_plans_with_the_learned_slots_when_containerconcurrency_is_unset():
    # Knative's default: containerConcurrency 0 → a target of 70 in flight per pod
    policy = Leadtime(LeadtimeConfig(kpa=KpaConfig(), service_time_prior_s=2.0))
    state = policy.initial_state(0.0, 3)
    state.rows.joined_at[:] = 0.0  # joined long ago: nothing is held for the join
    # 14/s x 2 s = 28 in service: 1 replica of 100 slots (Knative's default target)...
    quiet = observe([2.0] * 300, [0.0] * 300, ready=3, forecast=flat(14.0))
    decision, state = policy.decide(quiet, state)
    assert decision.desired == 1
    assert "100.0 slots/replica" in decision.detail
    # ...but once queued seconds show 8 slots per replica, 28 in service need more than 28 / 8
    saturated = observe(
        [34.0] * 300, [10.0] * 300, ready=3, arrivals=12.0, now=300.0 + SATURATION_WINDOW_S,
        forecast=flat(14.0),
    )  # fmt: skip
    decision, state = policy.decide(saturated, state)
    assert state.rows.slots[0] == pytest.approx(8.0)
    assert decision.desired >= 4
    assert "8.0 slots/replica" in decision.detail


def test_leadtime_with_the_rps_metric_plans_in_requests_per_second():
    # a target of 10 rps per replica: with 1 s in service, 10 slots
    kpa = KpaConfig(metric="rps", target=10.0, target_utilization=1.0)
    policy = Leadtime(LeadtimeConfig(kpa=kpa, learn_capacity=False))
    state = policy.initial_state(0.0, 1)
    decision, _ = policy.decide(
        observe([1.0] * 300, [0.0] * 300, ready=1, forecast=flat(45)), state
    )
    assert decision.desired >= 5  # more than 45 / 10: queueing headroom on top
    assert "10.0 slots/replica" in decision.detail
