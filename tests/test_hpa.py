"""The HPA against hand-computed cases from the Kubernetes controller's formulas.

`calcPlainMetricReplicas` (replica_calculator.go) and `normalizeDesiredReplicasWithBehaviors`
(horizontal.go) with the autoscaling/v2 defaults; the arithmetic is in the comments.
All cases use a per-pod target of 10 concurrent requests.
"""

from __future__ import annotations

import numpy as np
import pytest

from autoscaler.errors import InputError
from autoscaler.policies.hpa import Hpa, HpaConfig, HpaPolicy, HpaRules, HpaState
from autoscaler.policy import Observation

HPA = Hpa(HpaConfig(target_per_pod=10))


def obs(
    total: float | None, *, now: float, ready: int, pending: int = 0, desired: int | None = None
) -> Observation:
    """15 s of `total` concurrency across the service (None: no samples yet)."""
    series = np.zeros(0) if total is None else np.full(15, float(total))
    spec = ready + pending if desired is None else desired
    return Observation(
        now=now,
        concurrency=series,
        arrivals=np.zeros_like(series),
        queue=np.zeros_like(series),
        ready=ready,
        pending=pending,
        desired=spec,
    )


def test_policy_shape() -> None:
    hpa = Hpa(HpaConfig(target_per_pod=10, min_replicas=2, max_replicas=9))
    assert (hpa.name, hpa.tick_s, hpa.history_s, hpa.pokeable) == ("hpa", 15.0, 15.0, False)
    assert hpa.initial_replicas() == 2
    assert hpa.initial_state(0.0, 2) == HpaState()


def test_scale_up_is_ceil_of_current_times_metric_over_target() -> None:
    # 60 in flight over 4 ready pods = 15 per pod; ratio 15/10 = 1.5; ceil(1.5 * 4) = 6.
    # Limit: max(4 + 4 pods, ceil(4 * 2)) = 8 >= 6.
    decision, state = HPA.decide(obs(60, now=100, ready=4), HPA.initial_state(100, 4))
    assert (decision.desired, decision.reason) == (6, "hpa-scale-up")
    assert state.scale_up_events == ((100, 2),)
    assert "per-pod 15.00 / target 10" in decision.detail


@pytest.mark.parametrize(
    ("total", "desired", "reason"),
    [
        (43.6, 4, "hpa-hold"),  # 10.9 per pod: |1 - 1.09| = 0.09 <= 0.1
        (36.4, 4, "hpa-hold"),  # 9.1 per pod: |1 - 0.91| = 0.09 <= 0.1
        (44.4, 5, "hpa-scale-up"),  # 11.1 per pod: ratio 1.11; ceil(1.11 * 4) = ceil(4.44) = 5
    ],
)
def test_tolerance_band(total, desired, reason) -> None:
    decision, _ = HPA.decide(obs(total, now=100, ready=4), HPA.initial_state(100, 4))
    assert (decision.desired, decision.reason) == (desired, reason)


def test_scale_down_below_tolerance_is_held_by_stabilization() -> None:
    # 20 over 4 = 5 per pod: ratio 0.5 -> ceil(0.5 * 4) = 2, but the initial recommendation
    # 4 (t=100) is within the 300 s window -> stabilized at max(2, 4) = 4.
    decision, _ = HPA.decide(obs(20, now=100, ready=4), HPA.initial_state(100, 4))
    assert (decision.desired, decision.reason) == (4, "hpa-stabilized")


def test_scale_up_capped_at_double_or_plus_four_per_period() -> None:
    state = HPA.initial_state(0, 2)
    # 200 over 2 pods = 100 per pod: ratio 10 -> ceil(10 * 2) = 20.
    # Limit: max(2 + 4, ceil(2 * (1 + 100/100))) = max(6, 4) = 6.
    decision, state = HPA.decide(obs(200, now=0, ready=2), state)
    assert (decision.desired, decision.reason) == (6, "hpa-rate-limited")
    # 5 s later (same 15 s period): period start = 6 - 4 added = 2 -> limit 6 again -> hold 6.
    decision, _ = HPA.decide(obs(200, now=5, ready=6), state)
    assert (decision.desired, decision.reason) == (6, "hpa-rate-limited")
    # One period later the event at t=0 is not after 15 - 15 = 0: period start 6 ->
    # max(6 + 4, 6 * 2) = 12; wanted ceil(200/6/10 * 6) = 20 -> 12.
    decision, state = HPA.decide(obs(200, now=15, ready=6), state)
    assert (decision.desired, decision.reason) == (12, "hpa-rate-limited")
    # From 12: max(16, 24) = 24 >= 20 -> 20.
    decision, _ = HPA.decide(obs(200, now=30, ready=12), state)
    assert (decision.desired, decision.reason) == (20, "hpa-scale-up")


def test_scale_down_held_for_five_minutes_then_applied() -> None:
    state = HPA.initial_state(0, 8)
    # t=0: 80 over 8 = 10 per pod, ratio 1.0 -> hold 8 (recommendations: 8 at t=0).
    decision, state = HPA.decide(obs(80, now=0, ready=8), state)
    assert (decision.desired, decision.reason) == (8, "hpa-hold")
    # From t=15: 20 over 8 = 2.5 per pod, ratio 0.25 -> ceil(0.25 * 8) = 2 each tick, but the
    # highest recommendation after now - 300 is the 8 of t=0 until t=300.
    for t in range(15, 300, 15):
        decision, state = HPA.decide(obs(20, now=t, ready=8), state)
        assert (decision.desired, decision.reason) == (8, "hpa-stabilized"), t
    # t=300: t=0 is not after 300 - 300 -> only 2s remain -> stabilized 2; the scale-down
    # policy allows int(8 * (1 - 100/100)) = 0, floored by minReplicas 1 -> 2 is allowed.
    decision, state = HPA.decide(obs(20, now=300, ready=8), state)
    assert (decision.desired, decision.reason) == (2, "hpa-scale-down")
    assert state.scale_down_events == ((300, 6),)


def test_unready_pods_count_as_zero_on_scale_up() -> None:
    # 4 ready + 2 pending, 60 in flight: ratio 60/4/10 = 1.5 > 1 with unready pods ->
    # recompute over 6 pods: 60/6/10 = 1.0 -> within tolerance -> keep 6.
    decision, _ = HPA.decide(obs(60, now=0, ready=4, pending=2), HPA.initial_state(0, 4))
    assert (decision.desired, decision.reason) == (6, "hpa-hold")
    # 2 ready + 4 pending, 30 in flight: ratio 1.5, but 30/6/10 = 0.5 < 1 flips the direction
    # -> keep 6 (the plain formula would have said ceil(1.5 * 2) = 3).
    decision, _ = HPA.decide(obs(30, now=0, ready=2, pending=4), HPA.initial_state(0, 2))
    assert (decision.desired, decision.reason) == (6, "hpa-hold")
    # 2 ready + 2 pending, 80 in flight: ratio 4; 80/4/10 = 2.0 -> ceil(2.0 * 4) = 8;
    # limit max(4 + 4, 4 * 2) = 8.
    decision, _ = HPA.decide(obs(80, now=0, ready=2, pending=2), HPA.initial_state(0, 2))
    assert (decision.desired, decision.reason) == (8, "hpa-scale-up")


def test_never_below_one() -> None:
    state = HPA.initial_state(0, 1)
    for t in range(0, 601, 15):
        # No load: ratio 0 -> ceil(0 * 1) = 0; stabilization keeps 1 for 300 s, then the
        # rate step floors the scale-down at minReplicas 1.
        decision, state = HPA.decide(obs(0, now=t, ready=1), state)
        assert decision.desired == 1, t
    assert decision.reason == "bounds"


def test_no_ready_pods_or_no_samples_hold_the_scale() -> None:
    decision, _ = HPA.decide(obs(50, now=0, ready=0, pending=2), HPA.initial_state(0, 0))
    assert (decision.desired, decision.reason) == (2, "no-data")
    decision, _ = HPA.decide(obs(None, now=0, ready=3), HPA.initial_state(0, 3))
    assert (decision.desired, decision.reason) == (3, "no-data")


def test_replicas_outside_bounds_are_brought_back() -> None:
    hpa = Hpa(HpaConfig(target_per_pod=10, min_replicas=2, max_replicas=10))
    decision, _ = hpa.decide(obs(0, now=0, ready=12), hpa.initial_state(0, 12))
    assert (decision.desired, decision.reason) == (10, "bounds")
    decision, _ = hpa.decide(obs(0, now=0, ready=1), hpa.initial_state(0, 1))
    assert (decision.desired, decision.reason) == (2, "bounds")
    # A target at 0 replicas means scaling is disabled: the HPA leaves it alone.
    decision, _ = hpa.decide(obs(50, now=0, ready=0, desired=0), hpa.initial_state(0, 0))
    assert decision.desired == 0
    # maxReplicas caps a scale-up: 1000 over 2 -> ceil(50 * 2) = 100; rate limit 6 < 10 ->
    # 6 (rate); from 9 with limit max(13, 18) = 18 > max 10 -> 10 (bounds).
    decision, _ = hpa.decide(obs(1000, now=0, ready=9), hpa.initial_state(0, 9))
    assert (decision.desired, decision.reason) == (10, "bounds")


@pytest.mark.parametrize(
    ("kwargs", "fragments"),
    [
        ({"target_per_pod": 0}, ["hpa.target_per_pod", "> 0"]),
        ({"target_per_pod": 10, "min_replicas": 0}, ["hpa.min_replicas", ">= 1"]),
        (
            {"target_per_pod": 10, "min_replicas": 5, "max_replicas": 3},
            ["hpa.max_replicas", "min_replicas=5"],
        ),
        ({"target_per_pod": 10, "tolerance": -0.1}, ["hpa.tolerance", "[0, 1)"]),
        ({"target_per_pod": 10, "sync_period_s": 0}, ["hpa.sync_period_s"]),
        (
            {"target_per_pod": 10, "scale_up": HpaRules((HpaPolicy("Pods", 0, 15),))},
            ["hpa.scale_up.policies.value", "> 0"],
        ),
        (
            {
                "target_per_pod": 10,
                "scale_down": HpaRules((HpaPolicy("Pods", 1, 15),), "Sideways", 300),
            },
            ["hpa.scale_down.select_policy", "'Max'"],
        ),
        (
            {"target_per_pod": 10, "scale_down": HpaRules((HpaPolicy("Ratio", 1, 15),))},
            ["hpa.scale_down.policies.type", "'Pods'"],
        ),
        (
            {
                "target_per_pod": 10,
                "scale_down": HpaRules((HpaPolicy("Pods", 1, 15),), "Max", 4000),
            },
            ["hpa.scale_down.stabilization_s", "[0, 3600]"],
        ),
        (
            {"target_per_pod": 10, "scale_up": HpaRules(())},
            ["hpa.scale_up.policies", "at least one"],
        ),
    ],
)
def test_config_validation_names_field_and_allowed_values(kwargs, fragments) -> None:
    with pytest.raises(InputError) as error:
        HpaConfig(**kwargs)
    for fragment in fragments:
        assert fragment in str(error.value)


def test_defaults_are_autoscaling_v2() -> None:
    cfg = HpaConfig(target_per_pod=10)
    assert (cfg.min_replicas, cfg.sync_period_s, cfg.tolerance) == (1, 15.0, 0.1)
    assert cfg.scale_up == HpaRules(
        (HpaPolicy("Pods", 4, 15), HpaPolicy("Percent", 100, 15)), "Max", 0
    )
    assert cfg.scale_down == HpaRules((HpaPolicy("Percent", 100, 15),), "Max", 300)
