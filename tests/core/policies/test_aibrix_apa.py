"""AIBrix's APA against hand-computed cases from AIBrix's formulas.

`computeTargetReplicas` (algorithm/apa.go), `applyPendingReplicaGuard` (autoscaler.go),
`stabilizeRecommendation` and the bounds (podautoscaler_controller.go), and the metric window
(metrics/client.go), with AIBrix's defaults; the arithmetic is in the comments. Unless a case
says otherwise the target is 30 in-flight requests per pod, the rates 2 and the tolerances 0.1.
"""

from __future__ import annotations

import math
import re
from dataclasses import replace
from functools import partial

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.errors import InputError
from autoscaler.policies.aibrix_apa import (
    DEFAULT_TARGET_VALUE,
    MAX_INT32,
    AibrixApa,
    AibrixApaConfig,
    AibrixApaState,
    make,
)
from autoscaler.policy import Observation
from tests.helpers.observations import steady_observation

APA = AibrixApa(AibrixApaConfig(target_value=30))
ONE_SAMPLE = AibrixApaConfig(target_value=30, observe_window_seconds=1)
"""A 1 s window: each reconcile (10 s apart) sees only its own sample."""


obs = partial(steady_observation, seconds=10)
"""10 s of a steady load: `obs(total, now=, ready=, pending=, desired=)`."""


def test_policy_shape() -> None:
    assert (APA.name, APA.tick_s, APA.history_s, APA.pokeable) == ("aibrix-apa", 10.0, 10.0, False)
    assert APA.initial_replicas() == 1
    assert APA.initial_state(0.0, 3) == AibrixApaState()
    three = AibrixApa(AibrixApaConfig(target_value=30, min_replicas=3, max_replicas=9))
    assert three.initial_replicas() == 3
    # minReplicas 0: the workload still starts with a Deployment's default of 1 replica.
    assert AibrixApa(AibrixApaConfig(target_value=30, min_replicas=0)).initial_replicas() == 1


def test_defaults_are_aibrix_code_defaults() -> None:
    cfg = AibrixApaConfig(target_value=1)
    assert (cfg.max_scale_up_rate, cfg.max_scale_down_rate) == (2.0, 2.0)
    assert (cfg.up_fluctuation_tolerance, cfg.down_fluctuation_tolerance) == (0.1, 0.1)
    assert (cfg.scale_up_cooldown_window_s, cfg.scale_down_cooldown_window_s) == (0.0, 300.0)
    assert (cfg.observe_window_seconds, cfg.resync_interval_s) == (180, 10.0)
    assert (cfg.min_replicas, cfg.max_replicas) == (1, MAX_INT32)


# --- computeTargetReplicas ----------------------------------------------------------------------


def test_scale_up_is_ceil_of_current_times_ratio() -> None:
    # 90 in flight over 2 ready pods = 45 per pod; r = 45/30 = 1.5 > 1 + 0.1.
    # ceil(2 * 1.5) = 3 <= maxScaleUp ceil(2 * 2) = 4 -> 3.
    decision, state = APA.decide(obs(90, now=100, ready=2), APA.initial_state(100, 2))
    assert (decision.desired, decision.reason) == (3, "aibrix-apa-scale-up")
    assert state.samples == ((100, 45.0),)
    assert state.recommendations == ((100, 3),)
    assert "per-pod 45.00" in decision.detail and "target 30" in decision.detail


@pytest.mark.parametrize(
    ("per_pod", "desired", "reason"),
    [
        (32.7, 4, "aibrix-apa-hold"),  # r = 1.09, not > 1.1
        (33.0, 4, "aibrix-apa-hold"),  # r = 1.1 exactly: the test is strict
        (33.3, 5, "aibrix-apa-scale-up"),  # r = 1.11 > 1.1; ceil(4 * 1.11) = ceil(4.44) = 5
        (27.3, 4, "aibrix-apa-hold"),  # r = 0.91, not < 0.9
        (26.7, 4, "aibrix-apa-hold"),  # r = 0.89 < 0.9 but ceil(4 * 0.89) = ceil(3.56) = 4
        (21.0, 3, "aibrix-apa-scale-down"),  # r = 0.7: ceil(2.8) = 3 >= floor(4 / 2) = 2
    ],
)
def test_fluctuation_tolerances(per_pod, desired, reason) -> None:
    decision, _ = APA.decide(obs(per_pod * 4, now=100, ready=4), APA.initial_state(100, 4))
    assert (decision.desired, decision.reason) == (desired, reason)


def test_scale_up_capped_by_max_scale_up_rate() -> None:
    # 180 over 2 = 90 per pod; r = 3; ceil(2 * 3) = 6 > ceil(2.0 * 2) = 4 -> 4.
    decision, _ = APA.decide(obs(180, now=100, ready=2), APA.initial_state(100, 2))
    assert (decision.desired, decision.reason) == (4, "aibrix-apa-rate-limited")
    # With max-scale-up-rate 5: cap ceil(5 * 2) = 10 >= 6 -> 6.
    fast = AibrixApa(AibrixApaConfig(target_value=30, max_scale_up_rate=5))
    decision, _ = fast.decide(obs(180, now=100, ready=2), fast.initial_state(100, 2))
    assert (decision.desired, decision.reason) == (6, "aibrix-apa-scale-up")


def test_scale_down_floored_by_max_scale_down_rate() -> None:
    # 36 over 6 = 6 per pod; r = 0.2; ceil(6 * 0.2) = 2 < floor(6 / 2.0) = 3 -> 3.
    decision, _ = APA.decide(obs(36, now=100, ready=6), APA.initial_state(100, 6))
    assert (decision.desired, decision.reason) == (3, "aibrix-apa-rate-limited")
    # max-scale-down-rate 1 forbids any scale-down: floor(6 / 1) = 6.
    stiff = AibrixApa(AibrixApaConfig(target_value=30, max_scale_down_rate=1))
    decision, _ = stiff.decide(obs(36, now=100, ready=6), stiff.initial_state(100, 6))
    assert (decision.desired, decision.reason) == (6, "aibrix-apa-hold")


# --- the metric window --------------------------------------------------------------------------


def test_each_reconcile_samples_the_newest_second_per_ready_pod() -> None:
    # Only the newest second is scraped: [100, ..., 100, 0] over 2 pods -> sample 0 / 2 = 0.
    series = np.array([100.0] * 9 + [0.0])
    observation = Observation(
        now=50,
        concurrency=series,
        arrivals=np.zeros(10),
        queue=np.zeros(10),
        ready=2,
        pending=0,
        desired=2,
    )
    _, state = APA.decide(observation, APA.initial_state(50, 2))
    assert state.samples == ((50, 0.0),)


def test_window_averages_samples_and_keeps_pre_scale_per_pod_values() -> None:
    state = APA.initial_state(0, 2)
    # t=0: 60 over 2 = 30 per pod; r = 1 -> hold 2.
    decision, state = APA.decide(obs(60, now=0, ready=2), state)
    assert (decision.desired, decision.reason) == (2, "aibrix-apa-hold")
    # t=10: 120 over 2 = 60; window mean (30 + 60) / 2 = 45; r = 1.5 -> ceil(2 * 1.5) = 3
    # (the newest sample alone would give ceil(2 * 2) = 4).
    decision, state = APA.decide(obs(120, now=10, ready=2), state)
    assert (decision.desired, decision.reason) == (3, "aibrix-apa-scale-up")
    # t=185: 90 over 3 = 30. Samples with second > 185 - 180 = 5 stay: t=0 leaves, t=10 stays.
    # Mean (60 + 30) / 2 = 45 -> r = 1.5 -> ceil(3 * 1.5) = ceil(4.5) = 5 <= ceil(2 * 3) = 6:
    # the per-pod value sampled before the scale-up is multiplied by today's 3 pods.
    decision, state = APA.decide(obs(90, now=185, ready=3), state)
    assert (decision.desired, decision.reason) == (5, "aibrix-apa-scale-up")
    assert state.samples == ((10, 60.0), (185, 30.0))


def test_window_boundary_is_one_window_of_seconds() -> None:
    state = AibrixApaState(samples=((0, 60.0),))
    # Recording at second 179: 0 > 179 - 180 -> kept; mean (60 + 30) / 2 = 45 -> 3.
    decision, _ = APA.decide(obs(60, now=179, ready=2), state)
    assert decision.desired == 3
    # At second 180: 0 > 0 is false -> dropped; mean 30 -> r = 1 -> hold 2.
    decision, after = APA.decide(obs(60, now=180, ready=2), state)
    assert (decision.desired, after.samples) == (2, ((180, 30.0),))


# --- pending replicas (applyPendingReplicaGuard) ------------------------------------------------


def test_pending_guard_on_scale_up_counts_pending_pods_as_idle() -> None:
    # spec 4, 2 ready, 2 pending; 90 over the 2 ready pods = 45 per pod; r = 1.5.
    # APA: ceil(4 * 1.5) = 6 <= ceil(2 * 4) = 8 -> 6.
    # Guard: adjusted = 45 * 2 / 4 = 22.5; ceil(4 * 22.5 / 30) = ceil(3.0) = 3;
    # kept within [current 4, 6] -> 4: the pending pods already cover the load.
    decision, _ = APA.decide(obs(90, now=100, ready=2, pending=2), APA.initial_state(100, 2))
    assert (decision.desired, decision.reason) == (4, "aibrix-apa-hold")
    # 180 over 2 = 90 per pod; r = 3; ceil(4 * 3) = 12 > 8 -> 8. Guard: adjusted = 90 * 2 / 4
    # = 45; ceil(4 * 45 / 30) = 6, within [4, 8] -> 6.
    decision, _ = APA.decide(obs(180, now=100, ready=2, pending=2), APA.initial_state(100, 2))
    assert (decision.desired, decision.reason) == (6, "aibrix-apa-pending")
    assert "pending-replica guard (2 ready) -> 6" in decision.detail


def test_pending_guard_on_scale_down_counts_pending_pods_at_target() -> None:
    # spec 4, 2 ready, 2 pending; 20 over 2 = 10 per pod; r = 1/3.
    # APA: ceil(4 / 3) = 2 >= floor(4 / 2) = 2 -> 2.
    # Guard: adjusted = (10 * 2 + 30 * 2) / 4 = 20; ceil(4 * 20 / 30) = ceil(2.67) = 3,
    # within [2, current 4] -> 3.
    decision, _ = APA.decide(obs(20, now=100, ready=2, pending=2), APA.initial_state(100, 2))
    assert (decision.desired, decision.reason) == (3, "aibrix-apa-pending")


# --- cooldown windows (stabilizeRecommendation) -------------------------------------------------


def test_scale_down_cooldown_takes_the_lowest_recommendation_of_300s() -> None:
    apa = AibrixApa(ONE_SAMPLE)
    state = apa.initial_state(0, 4)
    # t=0: 40 over 4 = 10; r = 1/3; ceil(4 / 3) = 2 >= floor(4 / 2) = 2 -> 2.
    decision, state = apa.decide(obs(40, now=0, ready=4), state)
    assert decision.desired == 2
    # t=10: 120 over 2 = 60; r = 2; ceil(2 * 2) = 4 <= 4 -> 4 (scale-up cooldown 0 s).
    decision, state = apa.decide(obs(120, now=10, ready=2), state)
    assert (decision.desired, decision.reason) == (4, "aibrix-apa-scale-up")
    # t=20: 80 over 4 = 20; r = 2/3; ceil(4 * 2/3) = ceil(2.67) = 3 >= 2 -> recommendation 3.
    # Scale-down window: min of {2 (t=0), 4 (t=10), 3 (t=20)} = 2. (Kubernetes' HPA would keep
    # the highest, 4.)
    decision, state = apa.decide(obs(80, now=20, ready=4), state)
    assert (decision.desired, decision.reason) == (2, "aibrix-apa-stabilized")
    assert state.recommendations == ((0, 2), (10, 4), (20, 3))
    # t=301: t=0 is no longer newer than 301 - 300 = 1; min {4, 3, 3} = 3.
    decision, state = apa.decide(obs(80, now=301, ready=4), state)
    assert (decision.desired, decision.reason) == (3, "aibrix-apa-scale-down")
    assert state.recommendations == ((10, 4), (20, 3), (301, 3))


def test_scale_up_cooldown_takes_the_highest_recommendation_of_its_window() -> None:
    apa = AibrixApa(replace(ONE_SAMPLE, scale_up_cooldown_window_s=60))
    state = apa.initial_state(0, 2)
    # t=0: 120 over 2 = 60; r = 2 -> ceil(4) = 4.
    decision, state = apa.decide(obs(120, now=0, ready=2), state)
    assert decision.desired == 4
    # t=10, still at 2 (not applied): 90 over 2 = 45; r = 1.5 -> 3; max {4, 3} = 4.
    decision, state = apa.decide(obs(90, now=10, ready=2), state)
    assert (decision.desired, decision.reason) == (4, "aibrix-apa-stabilized")
    # t=70: only recommendations newer than 70 - 60 = 10 count: {3} -> 3.
    decision, state = apa.decide(obs(90, now=70, ready=2), state)
    assert (decision.desired, decision.reason) == (3, "aibrix-apa-scale-up")


def test_hold_returns_current_whatever_the_history() -> None:
    # A recommendation equal to the current count is returned as is (and remembered).
    state = AibrixApaState(recommendations=((95, 1),))
    decision, state = APA.decide(obs(60, now=100, ready=2), state)
    assert (decision.desired, decision.reason) == (2, "aibrix-apa-hold")
    assert state.recommendations == ((95, 1), (100, 2))


# --- bounds ---------------------------------------------------------------------------------------


def test_max_replicas_bounds_a_scale_up() -> None:
    apa = AibrixApa(AibrixApaConfig(target_value=30, max_replicas=3))
    # 120 over 2 = 60; r = 2 -> ceil(2 * 2) = 4 -> applyConstraints -> 3.
    decision, _ = apa.decide(obs(120, now=100, ready=2), apa.initial_state(100, 2))
    assert (decision.desired, decision.reason) == (3, "bounds")


def test_min_replicas_bounds_a_scale_down() -> None:
    apa = AibrixApa(AibrixApaConfig(target_value=30, min_replicas=2))
    # 9 over 3 = 3; r = 0.1; ceil(0.3) = 1 >= floor(3 / 2) = 1 -> 1 -> applyConstraints -> 2.
    decision, _ = apa.decide(obs(9, now=100, ready=3), apa.initial_state(100, 3))
    assert (decision.desired, decision.reason) == (2, "bounds")


def test_above_max_replicas_comes_down_to_it() -> None:
    apa = AibrixApa(AibrixApaConfig(target_value=30, max_replicas=3))
    # 150 over 5 = 30; r = 1 -> 5 -> bounded to 3.
    decision, _ = apa.decide(obs(150, now=100, ready=5), apa.initial_state(100, 5))
    assert (decision.desired, decision.reason) == (3, "bounds")


# --- missing data -------------------------------------------------------------------------------


def test_no_metrics_holds_and_keeps_the_state() -> None:
    state = AibrixApaState(samples=((90, 5.0),), recommendations=((90, 4),))
    decision, after = APA.decide(obs(None, now=100, ready=4), state)
    assert (decision.desired, decision.reason) == (4, "no-data")
    assert after is state


def test_no_ready_pod_answers_holds() -> None:
    # spec 2, nothing ready: every pod's scrape fails -> no sample, keep 2.
    state = AibrixApaState(samples=((90, 0.0),))
    decision, after = APA.decide(obs(500, now=100, ready=0, pending=2), state)
    assert (decision.desired, decision.reason) == (2, "no-data")
    assert after is state


def test_no_metrics_still_enforces_the_bounds() -> None:
    apa = AibrixApa(AibrixApaConfig(target_value=30, min_replicas=2, max_replicas=3))
    decision, _ = apa.decide(obs(None, now=100, ready=5), apa.initial_state(100, 5))
    assert (decision.desired, decision.reason) == (3, "bounds")
    decision, _ = apa.decide(obs(None, now=100, ready=1), apa.initial_state(100, 1))
    assert (decision.desired, decision.reason) == (2, "bounds")


# --- zero -----------------------------------------------------------------------------------------


def test_scales_to_zero_with_min_replicas_zero_and_an_idle_window() -> None:
    apa = AibrixApa(AibrixApaConfig(target_value=30, min_replicas=0))
    # 0 over 1 pod = 0; r = 0 < 0.9; ceil(1 * 0) = 0 >= floor(1 / 2) = 0 -> 0.
    decision, _ = apa.decide(obs(0, now=100, ready=1), apa.initial_state(100, 1))
    assert (decision.desired, decision.reason) == (0, "aibrix-apa-scale-down")
    # Two pods idle: ceil(0) = 0 < floor(2 / 2) = 1 -> 1 first.
    decision, _ = apa.decide(obs(0, now=100, ready=2), apa.initial_state(100, 2))
    assert (decision.desired, decision.reason) == (1, "aibrix-apa-rate-limited")


def test_never_scales_from_zero() -> None:
    apa = AibrixApa(AibrixApaConfig(target_value=30, min_replicas=0))
    # At 0 no pod answers: nothing is recorded and the old window (90 per pod, r = 3) is used:
    # ceil(0 * 3) = 0 and ceil(2 * 0) = 0 -> 0, whatever is waiting.
    state = AibrixApaState(samples=((0, 90.0),))
    decision, after = apa.decide(obs(500, now=100, ready=0), state)
    assert (decision.desired, decision.reason) == (0, "aibrix-apa-hold")
    assert after.samples == state.samples
    # With no sample at all it is the metrics failure: hold at 0.
    decision, _ = apa.decide(obs(500, now=100, ready=0), apa.initial_state(100, 0))
    assert (decision.desired, decision.reason) == (0, "no-data")


def test_target_at_zero_with_min_replicas_is_not_scaled() -> None:
    # computeScaleDecision: currentReplicas 0 and minReplicas != 0 -> scaling disabled.
    decision, _ = APA.decide(obs(500, now=100, ready=0), APA.initial_state(100, 0))
    assert (decision.desired, decision.reason) == (0, "aibrix-apa-hold")
    assert "scaling disabled" in decision.detail


# --- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"target_value": 0}, "aibrix-apa.target_value: must be a number > 0, got 0"),
        ({"target_value": math.nan}, "aibrix-apa.target_value: must be a number > 0, got nan"),
        ({"min_replicas": -1}, "aibrix-apa.min_replicas: must be an integer >= 0, got -1"),
        (
            {"max_replicas": 0},
            "aibrix-apa.max_replicas: must be an integer in [max(1, min_replicas=1), "
            "2147483647], got 0",
        ),
        (
            {"min_replicas": 3, "max_replicas": 2},
            "aibrix-apa.max_replicas: must be an integer in [max(1, min_replicas=3), "
            "2147483647], got 2",
        ),
        (
            {"max_scale_up_rate": 0.5},
            "aibrix-apa.max_scale_up_rate: must be a number >= 1.0, got 0.5",
        ),
        (
            {"max_scale_down_rate": math.inf},
            "aibrix-apa.max_scale_down_rate: must be a number >= 1.0, got inf",
        ),
        (
            {"up_fluctuation_tolerance": -0.1},
            "aibrix-apa.up_fluctuation_tolerance: must be a number >= 0, got -0.1",
        ),
        (
            {"down_fluctuation_tolerance": 1.5},
            "aibrix-apa.down_fluctuation_tolerance: must be a fraction in [0, 1], got 1.5",
        ),
        (
            {"scale_up_cooldown_window_s": -1},
            "aibrix-apa.scale_up_cooldown_window_s: must be seconds >= 0, got -1",
        ),
        (
            {"scale_down_cooldown_window_s": math.nan},
            "aibrix-apa.scale_down_cooldown_window_s: must be seconds >= 0, got nan",
        ),
        (
            {"observe_window_seconds": 0},
            "aibrix-apa.observe_window_seconds: must be whole seconds in [1, 3600], got 0",
        ),
        (
            {"observe_window_seconds": 3601},
            "aibrix-apa.observe_window_seconds: must be whole seconds in [1, 3600], got 3601",
        ),
        (
            {"observe_window_seconds": 1.5},
            "aibrix-apa.observe_window_seconds: must be whole seconds in [1, 3600], got 1.5",
        ),
        (
            {"resync_interval_s": 0.5},
            "aibrix-apa.resync_interval_s: must be at least 1 second, got 0.5",
        ),
    ],
)
def test_config_validation(changes, message) -> None:
    fields = {"target_value": 30.0, **changes}
    with pytest.raises(InputError, match=f"^{re.escape(message)}$"):
        AibrixApaConfig(**fields)


def test_make_derives_the_target_from_the_slots() -> None:
    # 8 slots -> target half of them, 4 in flight per pod; the rest are AIBrix's defaults.
    assert make(8).config == AibrixApaConfig(target_value=4.0)
    # Slots unknown -> AIBrix's default TargetValue, 30.
    assert make(0).config.target_value == DEFAULT_TARGET_VALUE == 30.0
    tuned = make(8, target_value=6, max_replicas=5, down_fluctuation_tolerance=0.2)
    assert (tuned.config.target_value, tuned.config.max_replicas) == (6, 5)
    assert tuned.config.down_fluctuation_tolerance == 0.2
    assert make(8).name == "aibrix-apa"


def test_make_refuses_bad_input() -> None:
    with pytest.raises(InputError, match="container_concurrency: must be an integer >= 0"):
        make(-1)
    with pytest.raises(InputError, match="bogus"):
        make(4, bogus=1)
    with pytest.raises(InputError, match=r"^aibrix-apa\.up_fluctuation_tolerance: "):
        make(4, up_fluctuation_tolerance=-1)


# --- properties ---------------------------------------------------------------------------------


@st.composite
def configs(draw: st.DrawFn) -> AibrixApaConfig:
    low = draw(st.integers(0, 4))
    return AibrixApaConfig(
        target_value=draw(st.floats(0.5, 100)),
        min_replicas=low,
        max_replicas=draw(st.integers(max(1, low), 30)),
        max_scale_up_rate=draw(st.floats(1, 5)),
        max_scale_down_rate=draw(st.floats(1, 5)),
        up_fluctuation_tolerance=draw(st.floats(0, 1)),
        down_fluctuation_tolerance=draw(st.floats(0, 1)),
        scale_up_cooldown_window_s=0.0,
        scale_down_cooldown_window_s=draw(st.sampled_from([0.0, 30.0, 300.0])),
        observe_window_seconds=draw(st.sampled_from([1, 30, 180])),
    )


ticks = st.lists(
    st.tuples(
        st.one_of(st.none(), st.floats(0, 1000)),  # total in flight, None: no metrics
        st.floats(0, 1),  # share of the spec that is ready
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(config=configs(), load=ticks, start=st.integers(0, 35))
def test_decisions_stay_within_bounds_and_never_drop_without_data(config, load, start) -> None:
    apa = AibrixApa(config)
    desired = start
    state = apa.initial_state(0.0, desired)
    for step, (total, share) in enumerate(load):
        ready = math.floor(desired * share)
        observation = obs(
            total, now=10.0 * step, ready=ready, pending=desired - ready, desired=desired
        )
        decision, state = apa.decide(observation, state)
        if desired == 0 and config.min_replicas > 0:
            assert decision.desired == 0  # scaling disabled at 0, as AIBrix does
        else:
            assert config.min_replicas <= decision.desired <= config.max_replicas, decision
        if total is None:
            # Missing metrics never scale down, except to come down to max_replicas.
            assert decision.desired >= min(desired, config.max_replicas), decision
            if config.min_replicas <= desired <= config.max_replicas:
                assert decision.desired == desired
        if decision.desired > desired >= config.min_replicas:
            # maxScaleUpRate over the current count (no scale-up cooldown here).
            assert decision.desired <= math.ceil(config.max_scale_up_rate * desired), decision
        desired = decision.desired
