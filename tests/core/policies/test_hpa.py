"""The HPA against hand-computed cases from the Kubernetes controller's formulas.

`calcPlainMetricReplicas` (replica_calculator.go), then `normalizeDesiredReplicas` (`hpa`, no
`behavior`) or `normalizeDesiredReplicasWithBehaviors` (`hpa-behavior`, the autoscaling/v2
default rules), both in horizontal.go; the arithmetic is in the comments. All cases use a
per-pod target of 10 concurrent requests. Upstream's own test cases are replayed in
test_hpa_upstream.py.
"""

from __future__ import annotations

from functools import partial

import pytest

from autoscaler.errors import InputError
from autoscaler.policies.catalog import POLICY_NAMES, PolicyContext, make_policy
from autoscaler.policies.hpa import (
    Hpa,
    HpaConfig,
    HpaPolicy,
    HpaRules,
    HpaState,
    default_scale_down,
    default_scale_up,
)
from tests.helpers.observations import steady_observation

HPA = Hpa(HpaConfig(target_per_pod=10))
HPA_BEHAVIOR = Hpa(
    HpaConfig(target_per_pod=10, scale_up=default_scale_up(), scale_down=default_scale_down())
)
BOTH = pytest.mark.parametrize("hpa", [HPA, HPA_BEHAVIOR], ids=["hpa", "hpa-behavior"])
STALE = HpaState(recommendations=((-3600.0, 1),))
"""A log whose only recommendation is older than every window: nothing stabilizes."""


obs = partial(steady_observation, seconds=15)
"""15 s of a steady load: `obs(total, now=, ready=, pending=, desired=)`."""


def test_policy_shape() -> None:
    hpa = Hpa(HpaConfig(target_per_pod=10, min_replicas=2, max_replicas=9))
    assert (hpa.name, hpa.tick_s, hpa.history_s, hpa.pokeable) == ("hpa", 15.0, 15.0, False)
    assert hpa.initial_replicas() == 2
    assert hpa.initial_state(0.0, 2) == HpaState()
    assert HPA_BEHAVIOR.name == "hpa-behavior"


@BOTH
def test_scale_up_is_ceil_of_current_times_metric_over_target(hpa) -> None:
    # 60 in flight over 4 ready pods = 15 per pod; ratio 15/10 = 1.5; ceil(1.5 * 4) = 6.
    # Limit: max(2 * 4, 4) = 8 without behavior; max(4 + 4 pods, 4 * 2) = 8 with it.
    decision, state = hpa.decide(obs(60, now=100, ready=4), hpa.initial_state(100, 4))
    assert (decision.desired, decision.reason) == (6, "hpa-scale-up")
    assert "per-pod 15.00 / target 10" in decision.detail
    # Only the behavior path remembers scale events (storeScaleEvent returns without it).
    assert state.scale_up_events == (((100, 2),) if hpa is HPA_BEHAVIOR else ())


@BOTH
@pytest.mark.parametrize(
    ("total", "desired", "reason"),
    [
        (43.6, 4, "hpa-hold"),  # 10.9 per pod: |1 - 1.09| = 0.09 <= 0.1
        (36.4, 4, "hpa-hold"),  # 9.1 per pod: |1 - 0.91| = 0.09 <= 0.1
        (44.4, 5, "hpa-scale-up"),  # 11.1 per pod: ratio 1.11; ceil(1.11 * 4) = ceil(4.44) = 5
    ],
)
def test_tolerance_band(hpa, total, desired, reason) -> None:
    decision, _ = hpa.decide(obs(total, now=100, ready=4), hpa.initial_state(100, 4))
    assert (decision.desired, decision.reason) == (desired, reason)


@BOTH
def test_scale_down_below_tolerance_is_held_by_stabilization(hpa) -> None:
    # 20 over 4 = 5 per pod: ratio 0.5 -> ceil(0.5 * 4) = 2, but the initial recommendation
    # 4 (t=100) is within the 300 s window -> stabilized at max(2, 4) = 4.
    decision, _ = hpa.decide(obs(20, now=100, ready=4), hpa.initial_state(100, 4))
    assert (decision.desired, decision.reason) == (4, "hpa-stabilized")


def test_behavior_caps_scale_up_per_period() -> None:
    hpa, state = HPA_BEHAVIOR, HPA_BEHAVIOR.initial_state(0, 2)
    # 200 over 2 pods = 100 per pod: ratio 10 -> ceil(10 * 2) = 20.
    # Limit: max(2 + 4, ceil(2 * (1 + 100/100))) = max(6, 4) = 6.
    decision, state = hpa.decide(obs(200, now=0, ready=2), state)
    assert (decision.desired, decision.reason) == (6, "hpa-rate-limited")
    # 5 s later (same 15 s period): period start = 6 - 4 added = 2 -> limit 6 again -> hold 6.
    decision, _ = hpa.decide(obs(200, now=5, ready=6), state)
    assert (decision.desired, decision.reason) == (6, "hpa-rate-limited")
    # One period later the event at t=0 is not after 15 - 15 = 0: period start 6 ->
    # max(6 + 4, 6 * 2) = 12; wanted ceil(200/6/10 * 6) = 20 -> 12.
    decision, state = hpa.decide(obs(200, now=15, ready=6), state)
    assert (decision.desired, decision.reason) == (12, "hpa-rate-limited")
    # From 12: max(16, 24) = 24 >= 20 -> 20.
    decision, _ = hpa.decide(obs(200, now=30, ready=12), state)
    assert (decision.desired, decision.reason) == (20, "hpa-scale-up")


def test_no_behavior_caps_scale_up_at_double_or_four_from_the_current_spec() -> None:
    state = HPA.initial_state(0, 2)
    # 200 over 2 pods -> 20 wanted; limit max(2 * 2, 4) = 4.
    decision, state = HPA.decide(obs(200, now=0, ready=2), state)
    assert (decision.desired, decision.reason) == (4, "hpa-rate-limited")
    # 5 s later, from 4: no memory of the last period (unlike behavior), limit max(8, 4) = 8.
    decision, state = HPA.decide(obs(200, now=5, ready=2, pending=2), state)
    assert (decision.desired, decision.reason) == (8, "hpa-rate-limited")
    # From 8 ready: 200/8 = 25 per pod -> 20 wanted, limit 16; from 16: 20 <= 32.
    decision, state = HPA.decide(obs(200, now=20, ready=8), state)
    assert (decision.desired, decision.reason) == (16, "hpa-rate-limited")
    decision, _ = HPA.decide(obs(200, now=35, ready=16), state)
    assert (decision.desired, decision.reason) == (20, "hpa-scale-up")


@BOTH
def test_scale_down_held_for_five_minutes_then_applied(hpa) -> None:
    state = hpa.initial_state(0, 8)
    # t=0: 80 over 8 = 10 per pod, ratio 1.0 -> hold 8 (recommendations: 8 at t=0).
    decision, state = hpa.decide(obs(80, now=0, ready=8), state)
    assert (decision.desired, decision.reason) == (8, "hpa-hold")
    # From t=15: 20 over 8 = 2.5 per pod, ratio 0.25 -> ceil(0.25 * 8) = 2 each tick, but the
    # highest recommendation younger than 300 s is the 8 of t=0 until t=300.
    for t in range(15, 300, 15):
        decision, state = hpa.decide(obs(20, now=t, ready=8), state)
        assert (decision.desired, decision.reason) == (8, "hpa-stabilized"), t
    # t=300: t=0 is not younger than 300 s -> only 2s remain -> 2. With behavior the scale-down
    # policy allows int(8 * (1 - 100/100)) = 0, floored by minReplicas 1 -> 2 is allowed.
    decision, state = hpa.decide(obs(20, now=300, ready=8), state)
    assert (decision.desired, decision.reason) == (2, "hpa-scale-down")
    assert state.scale_down_events == (((300, 6),) if hpa is HPA_BEHAVIOR else ())


@BOTH
def test_no_behavior_stabilization_also_holds_scale_ups(hpa) -> None:
    # A recommendation of 9 at t=0, then 60 over 4 ready -> 6 at t=100: without behavior the
    # highest of the last 300 s wins (9); with it, the scale-up window (0 s) keeps nothing
    # and the proposal stands.
    state = HpaState(recommendations=((0.0, 9),))
    decision, _ = hpa.decide(obs(60, now=100, ready=4), state)
    expected = (6, "hpa-scale-up") if hpa is HPA_BEHAVIOR else (8, "hpa-rate-limited")
    # Without behavior: stabilized 9, then capped at max(2 * 4, 4) = 8.
    assert (decision.desired, decision.reason) == expected


@BOTH
def test_starting_pods_count_in_the_average_at_zero(hpa) -> None:
    # Pending pods are Running, not Ready: they report the metric (0, no request reaches them),
    # and a non-CPU metric counts them in both directions (groupPods checks readiness for CPU
    # only). 4 ready + 2 pending, 60 in flight: 60/6 = 10 per pod -> ratio 1.0 -> keep 6.
    decision, _ = hpa.decide(obs(60, now=0, ready=4, pending=2), STALE)
    assert (decision.desired, decision.reason) == (6, "hpa-hold")
    # 2 ready + 4 pending, 30 in flight: 30/6 = 5 per pod -> ratio 0.5 -> ceil(0.5 * 6) = 3:
    # a scale-down while replicas start, which only the stabilization window prevents.
    decision, _ = hpa.decide(obs(30, now=0, ready=2, pending=4), STALE)
    assert (decision.desired, decision.reason) == (3, "hpa-scale-down")
    decision, _ = hpa.decide(obs(30, now=0, ready=2, pending=4), hpa.initial_state(0, 2))
    assert (decision.desired, decision.reason) == (6, "hpa-stabilized")
    # 2 ready + 2 pending, 80 in flight: 80/4 = 20 per pod -> ratio 2.0 -> ceil(2.0 * 4) = 8;
    # limit max(2 * 4, 4) = 8, with behavior max(4 + 4, 4 * 2) = 8.
    decision, _ = hpa.decide(obs(80, now=0, ready=2, pending=2), STALE)
    assert (decision.desired, decision.reason) == (8, "hpa-scale-up")


@BOTH
def test_never_below_one(hpa) -> None:
    state = hpa.initial_state(0, 1)
    for t in range(0, 601, 15):
        # No load: ratio 0 -> ceil(0 * 1) = 0; stabilization keeps 1 for 300 s, then
        # minReplicas 1 floors it.
        decision, state = hpa.decide(obs(0, now=t, ready=1), state)
        assert decision.desired == 1, t
    assert decision.reason == "bounds"


@BOTH
def test_no_samples_or_no_pods_hold_the_scale(hpa) -> None:
    decision, _ = hpa.decide(obs(None, now=0, ready=3), hpa.initial_state(0, 3))
    assert (decision.desired, decision.reason) == (3, "no-data")
    # The spec says 3 but no pod exists to report ("did not receive metrics").
    decision, _ = hpa.decide(obs(50, now=0, ready=0, desired=3), hpa.initial_state(0, 0))
    assert (decision.desired, decision.reason) == (3, "no-data")
    # Only starting pods: they report 0 (the waiting requests are in front of the service,
    # in no pod) -> the proposal is 0, held by the initial recommendation of 2.
    decision, _ = hpa.decide(obs(50, now=0, ready=0, pending=2), hpa.initial_state(0, 0))
    assert (decision.desired, decision.reason) == (2, "hpa-stabilized")


@pytest.mark.parametrize("behavior", [False, True], ids=["hpa", "hpa-behavior"])
def test_replicas_outside_bounds_are_brought_back(behavior) -> None:
    scale_up = default_scale_up() if behavior else None
    hpa = Hpa(HpaConfig(target_per_pod=10, min_replicas=2, max_replicas=10, scale_up=scale_up))
    assert hpa.config.behavior == behavior
    decision, _ = hpa.decide(obs(0, now=0, ready=12), hpa.initial_state(0, 12))
    assert (decision.desired, decision.reason) == (10, "bounds")
    decision, _ = hpa.decide(obs(0, now=0, ready=1), hpa.initial_state(0, 1))
    assert (decision.desired, decision.reason) == (2, "bounds")
    # A target at 0 replicas means scaling is disabled: the HPA leaves it alone.
    decision, _ = hpa.decide(obs(50, now=0, ready=0, desired=0), hpa.initial_state(0, 0))
    assert decision.desired == 0
    # maxReplicas caps a scale-up: 1000 over 9 -> ceil(11.1 * 9) = 100; the rate limit (18
    # either way) is above max 10 -> 10 (bounds).
    decision, _ = hpa.decide(obs(1000, now=0, ready=9), hpa.initial_state(0, 9))
    assert (decision.desired, decision.reason) == (10, "bounds")


def test_make_policy_names_both_paths_with_the_same_target() -> None:
    context = PolicyContext(container_concurrency=10)
    plain, behavior = make_policy("hpa", context), make_policy("hpa-behavior", context)
    assert isinstance(plain, Hpa) and isinstance(behavior, Hpa)
    assert (plain.name, behavior.name) == ("hpa", "hpa-behavior")
    assert plain.config.target_per_pod == behavior.config.target_per_pod == pytest.approx(7.0)
    assert not plain.config.behavior and behavior.config.behavior
    assert behavior.config.up_rules == default_scale_up()
    assert behavior.config.down_rules == default_scale_down()
    assert "hpa-behavior" in POLICY_NAMES
    with pytest.raises(InputError):
        make_policy("hpa-behavior:3", context)


@pytest.mark.parametrize(
    ("kwargs", "fragments"),
    [
        ({"target_per_pod": 0}, ["hpa.target_per_pod", ">= 0.001"]),
        ({"target_per_pod": 0.0001}, ["hpa.target_per_pod", ">= 0.001"]),
        (
            {"target_per_pod": 10, "downscale_stabilization_s": -1},
            ["hpa.downscale_stabilization_s", ">= 0"],
        ),
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


def test_defaults_are_the_controllers() -> None:
    cfg = HpaConfig(target_per_pod=10)
    assert (cfg.min_replicas, cfg.sync_period_s, cfg.tolerance) == (1, 15.0, 0.1)
    assert (cfg.scale_up, cfg.scale_down, cfg.behavior) == (None, None, False)
    assert (cfg.downscale_stabilization_s, cfg.scale_up_limit_factor) == (300.0, 2.0)
    assert cfg.scale_up_limit_minimum == 4.0
    # `behavior` with one direction given: the other gets the autoscaling/v2 default.
    half = HpaConfig(target_per_pod=10, scale_down=HpaRules((HpaPolicy("Pods", 1, 60),)))
    assert half.behavior
    assert half.up_rules == HpaRules(
        (HpaPolicy("Pods", 4, 15), HpaPolicy("Percent", 100, 15)), "Max", 0
    )
    assert default_scale_down() == HpaRules((HpaPolicy("Percent", 100, 15),), "Max", 300)
