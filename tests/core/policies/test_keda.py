"""KEDA (Prometheus scaler + the HPA it creates) against hand-computed cases from upstream.

KEDA's `RequestScale` / `scaleToZeroOrIdle` / `scaleFromZeroOrIdle`
(kedacore/keda pkg/scaling/executor/scale_scaledobjects.go) and the HPA controller's legacy
path for an HPA without `behavior` (kubernetes pkg/controller/podautoscaler/horizontal.go
`normalizeDesiredReplicas`, replica_calculator.go `GetExternalPerPodMetricReplicas`); the
arithmetic is in the comments. Unless said otherwise: threshold 10, defaults elsewhere
(polling 30 s, HPA sync 15 s, tolerance 0.1, cooldown 300 s, downscale stabilization 300 s,
minReplicaCount 0, maxReplicaCount 100), and the query value is the mean of the last 15 s.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.errors import InputError
from autoscaler.policies.keda import (
    THRESHOLD_FALLBACK,
    Keda,
    KedaConfig,
    KedaState,
    make,
)
from tests.helpers.observations import steady_observation

KEDA = Keda(KedaConfig(threshold=10))


obs = partial(steady_observation, seconds=15)
"""15 s of a steady load: `obs(total, now=, ready=, pending=, desired=)`."""


def active_state(now: float = 0.0) -> KedaState:
    """A ScaledObject created long ago and active at `now - 30`: the cooldown is not running
    out at `now`, and both loops are due at `now`."""
    return KedaState(created=now - 3600, next_poll=now, next_sync=now, last_active=now - 30)


# --- shape and construction ----------------------------------------------------------------------


def test_policy_shape() -> None:
    assert (KEDA.name, KEDA.tick_s, KEDA.history_s, KEDA.pokeable) == ("keda", 15.0, 15.0, False)
    # The Deployment is deployed at the HPA's minReplicas: max(minReplicaCount, 1).
    assert KEDA.initial_replicas() == 1
    assert Keda(KedaConfig(threshold=10, min_replica_count=3)).initial_replicas() == 3
    assert KEDA.initial_state(7.0, 1) == KedaState(created=7.0, next_poll=7.0, next_sync=7.0)
    # The tick is gcd(pollingInterval, HPA sync period): gcd(10, 15) = 5.
    assert Keda(KedaConfig(threshold=10, polling_interval_s=10)).tick_s == 5.0
    assert KEDA.config.min_replicas == 0 and KEDA.config.max_replicas == 100


def test_make_derives_threshold_from_request_slots() -> None:
    # N slots: threshold N in flight per replica; unknown slots: the common fallback of 100.
    assert make(8).config.threshold == 8.0
    assert make(0).config.threshold == THRESHOLD_FALLBACK == 100.0
    policy = make(4, min_replicas=1, max_replicas=5, cooldown_period_s=60)
    assert (policy.config.min_replica_count, policy.config.max_replica_count) == (1, 5)
    assert policy.config.cooldown_period_s == 60
    assert make(4, threshold=2.5).config.threshold == 2.5
    assert make(4) == Keda(KedaConfig(threshold=4.0))


@pytest.mark.parametrize(
    ("args", "kwargs", "fragments"),
    [
        ((-1,), {}, ["keda.container_concurrency", ">= 0"]),
        ((4,), {"bogus": 1}, ["keda.bogus", "unknown setting", "threshold"]),
        ((4,), {"min_replicas": 1, "min_replica_count": 2}, ["keda.min_replicas", "one of"]),
        ((4,), {"max_replicas": 0}, ["keda.max_replica_count", ">= 1"]),
    ],
)
def test_make_refuses_bad_input(args, kwargs, fragments) -> None:
    with pytest.raises(InputError) as error:
        make(*args, **kwargs)
    for fragment in fragments:
        assert fragment in str(error.value)


# --- the HPA on an AverageValue external metric --------------------------------------------------


def test_scale_up_is_ceil_of_value_over_threshold() -> None:
    # KEDA: 60 > activationThreshold 0 -> active; 4 replicas -> left to the HPA, lastActive = 0.
    # HPA: ratio = 60000 m / (10000 m * 4 pods) = 1.5, |1 - 1.5| > 0.1 -> ceil(60000 / 10000)
    # = 6; stabilized max(6, initial recommendation 4) = 6; limit max(2 * 4, 4) = 8 >= 6.
    decision, state = KEDA.decide(obs(60, now=0, ready=4), active_state())
    assert (decision.desired, decision.reason) == (6, "keda-scale-up")
    assert state.last_active == 0
    assert state.recommendations == ((0, 4), (0, 6))
    assert (state.next_poll, state.next_sync) == (30, 15)
    assert "ratio 1.50" in decision.detail


@pytest.mark.parametrize(
    ("total", "desired", "reason"),
    [
        (43.6, 4, "keda-hold"),  # ratio 43.6 / 40 = 1.09: within 0.1 -> statusReplicas 4
        (36.4, 4, "keda-hold"),  # ratio 0.91: within -> 4
        (44.4, 5, "keda-scale-up"),  # ratio 1.11 -> ceil(4.44) = 5
        # ratio 0.89 is outside the tolerance, but ceil(35.6 / 10) = 4 is the current count.
        (35.6, 4, "keda-hold"),
    ],
)
def test_tolerance_on_the_usage_ratio(total, desired, reason) -> None:
    decision, _ = KEDA.decide(obs(total, now=0, ready=4), active_state())
    assert (decision.desired, decision.reason) == (desired, reason)


def test_tolerance_keeps_status_replicas_not_the_spec() -> None:
    # Spec 5, but only 4 pods exist (status.replicas = ready + pending = 4): 40 in flight ->
    # ratio 40000 / (10000 * 4) = 1.0, within tolerance -> proposal = statusReplicas = 4, which
    # the initial recommendation 5 stabilizes back to max(4, 5) = 5.
    decision, state = KEDA.decide(obs(40, now=0, ready=4, desired=5), active_state())
    assert (decision.desired, decision.reason) == (5, "keda-stabilized")
    assert state.recommendations == ((0, 5), (0, 4))


def test_values_cross_the_metrics_api_in_milli_units() -> None:
    keda = Keda(KedaConfig(threshold=1))
    # "%.3f" of 2.0004 is 2.000 -> 2000 m; ratio 2000 / (1000 * 1) = 2 -> ceil(2000 / 1000) = 2
    # (a float ceil(2.0004) would give 3).
    decision, _ = keda.decide(obs(2.0004, now=0, ready=1), active_state())
    assert (decision.desired, decision.reason) == (2, "keda-scale-up")
    # "%.3f" of 2.0006 is 2.001 -> ceil(2001 / 1000) = 3.
    decision, _ = keda.decide(obs(2.0006, now=0, ready=1), active_state())
    assert decision.desired == 3


def test_scale_up_limited_to_double_or_four() -> None:
    state = active_state()
    # 200 over 2 pods: ratio 10 -> ceil(200 / 10) = 20; limit max(2 * 2, 4) = 4.
    decision, state = KEDA.decide(obs(200, now=0, ready=2), state)
    assert (decision.desired, decision.reason) == (4, "keda-rate-limited")
    # No per-period memory without `behavior`: each sync allows max(2 * current, 4):
    # 15 s: 8; 30 s: 16; 45 s: 20 <= 32.
    for now, ready, want, reason in [
        (15, 4, 8, "keda-rate-limited"),
        (30, 8, 16, "keda-rate-limited"),
        (45, 16, 20, "keda-scale-up"),
    ]:
        decision, state = KEDA.decide(obs(200, now=now, ready=ready), state)
        assert (decision.desired, decision.reason) == (want, reason), now


def test_stabilization_window_also_holds_a_spike() -> None:
    # t=0: 200 over 2 -> proposal 20, limited to 4. t=15: load down to 30 -> proposal
    # ceil(30 / 10) = 3, but the window's highest recommendation is 20 -> stabilized 20,
    # limited to max(2 * 4, 4) = 8: the legacy HPA keeps climbing on the old spike.
    decision, state = KEDA.decide(obs(200, now=0, ready=2), active_state())
    assert decision.desired == 4
    decision, state = KEDA.decide(obs(30, now=15, ready=4), state)
    assert (decision.desired, decision.reason) == (8, "keda-rate-limited")
    assert "stabilized 3 -> 20" in decision.detail


def test_scale_down_held_for_the_stabilization_window() -> None:
    state = active_state()
    # t=0: 80 over 8 = ratio 1.0 -> hold 8 (recommendations 8, 8 at t=0).
    decision, state = KEDA.decide(obs(80, now=0, ready=8), state)
    assert (decision.desired, decision.reason) == (8, "keda-hold")
    # From t=15: 20 over 8 -> ratio 0.25 -> proposal ceil(20 / 10) = 2, but the 8s of t=0 are
    # younger than 300 s until t=300. KEDA's polls see 20 > 0: active, no move of its own.
    for now in range(15, 300, 15):
        decision, state = KEDA.decide(obs(20, now=now, ready=8), state)
        assert (decision.desired, decision.reason) == (8, "keda-stabilized"), now
    # t=300: the t=0 recommendations are one window old and drop out -> 2 >= minReplicas 1.
    decision, state = KEDA.decide(obs(20, now=300, ready=8), state)
    assert (decision.desired, decision.reason) == (2, "keda-scale-down")
    assert state.last_active == 300


def test_hpa_bounds() -> None:
    keda = Keda(KedaConfig(threshold=10, min_replica_count=3, max_replica_count=10))
    # Above maxReplicas: brought to 10 without computing the metric.
    decision, _ = keda.decide(obs(0, now=0, ready=12), active_state())
    assert (decision.desired, decision.reason) == (10, "bounds")
    # Below the HPA's minReplicas (minReplicaCount 3): brought to 3.
    decision, _ = keda.decide(obs(5, now=0, ready=2), active_state())
    assert (decision.desired, decision.reason) == (3, "bounds")
    # From 9: 1000 / 10 = 100 wanted; limit max(18, 4) = 18 > maxReplicas 10 -> 10 (bounds).
    decision, _ = keda.decide(obs(1000, now=0, ready=9), active_state())
    assert (decision.desired, decision.reason) == (10, "bounds")
    # No load at 4 pods over 300 s: ratio 0 -> proposal 0 -> floored at minReplicas 3.
    state = active_state()
    for now in range(0, 301, 15):
        decision, state = keda.decide(obs(0, now=now, ready=4), state)
    assert (decision.desired, decision.reason) == (3, "bounds")


def test_hpa_floor_is_one_when_min_replica_count_is_zero() -> None:
    # minReplicaCount 0 -> the HPA's minReplicas is 1; the trigger stays active (0.5 > 0), so
    # KEDA does not take it to zero: proposal ceil(0.5 / 10) = 1, and after the window, 1.
    state = active_state()
    for now in range(0, 301, 15):
        decision, state = KEDA.decide(obs(0.5, now=now, ready=3), state)
    assert (decision.desired, decision.reason) == (1, "keda-scale-down")


# --- KEDA's activation, cooldown and idle --------------------------------------------------------


def test_activation_from_zero_to_one() -> None:
    state = KEDA.initial_state(0.0, 0)
    # 5 > activationThreshold 0 at 0 replicas -> KEDA scales to 1 (minReplicaCount 0). The HPA,
    # in the same tick, reads 1 (spec) over 0 existing pods: ratio +Inf -> ceil(5 / 10) = 1.
    decision, state = KEDA.decide(obs(5, now=0, ready=0), state)
    assert (decision.desired, decision.reason) == (1, "keda-activate")
    assert state.last_active == 0
    assert state.recommendations == ((0, 1), (0, 1))


def test_activation_then_the_hpa_takes_over_in_the_same_tick() -> None:
    # 50 in flight at zero: KEDA -> 1; the HPA wants ceil(50 / 10) = 5, limited to max(2, 4) = 4.
    decision, _ = KEDA.decide(obs(50, now=0, ready=0), KEDA.initial_state(0.0, 0))
    assert (decision.desired, decision.reason) == (4, "keda-rate-limited")
    assert decision.detail.startswith("KEDA: active")


def test_activation_threshold_is_strict() -> None:
    keda = Keda(KedaConfig(threshold=10, activation_threshold=5))
    # 5 is not > 5: inactive at zero, the HPA is disabled at 0 replicas.
    decision, _ = keda.decide(obs(5, now=0, ready=0), keda.initial_state(0.0, 0))
    assert (decision.desired, decision.reason) == (0, "keda-idle")
    decision, _ = keda.decide(obs(5.5, now=0, ready=0), keda.initial_state(0.0, 0))
    assert (decision.desired, decision.reason) == (1, "keda-activate")


def test_at_zero_only_keda_polls_every_polling_interval() -> None:
    state = KEDA.initial_state(0.0, 0)
    decision, state = KEDA.decide(obs(0, now=0, ready=0), state)
    assert (decision.desired, decision.reason) == (0, "keda-idle")
    # t=15: load arrives, but only the HPA syncs, and it is disabled at 0 replicas.
    decision, state = KEDA.decide(obs(40, now=15, ready=0), state)
    assert (decision.desired, decision.reason) == (0, "keda-idle")
    # t=30: KEDA's next poll activates -> 1; the HPA then wants ceil(40 / 10) = 4 <= max(2, 4).
    decision, state = KEDA.decide(obs(40, now=30, ready=0), state)
    assert (decision.desired, decision.reason) == (4, "keda-scale-up")


def test_scale_to_zero_after_cooldown_since_the_last_active_poll() -> None:
    keda = Keda(KedaConfig(threshold=10, cooldown_period_s=120))
    state = active_state()
    # t=0: 20 over 2 pods, active (lastActive = 0), ratio 1.0 -> hold 2.
    decision, state = keda.decide(obs(20, now=0, ready=2), state)
    assert (decision.desired, decision.reason) == (2, "keda-hold")
    # t=30, 60: still active (lastActive = 60). Then idle: KEDA cools down for 120 s since 60,
    # while the HPA's proposal 0 is held at 2 by the window's recommendations of 2.
    decisions = {}
    for now in range(15, 181, 15):
        load = 20 if now <= 60 else 0
        decision, state = keda.decide(obs(load, now=now, ready=2), state)
        decisions[now] = (decision.desired, decision.reason)
    assert decisions[90] == (2, "keda-stabilized")  # poll at 90: 30 s < 120 s, cooling down
    assert state.last_active == 60
    # Poll at 180: 60 + 120 <= 180 -> KEDA scales to minReplicaCount 0; the HPA is then off.
    assert decisions[180] == (0, "keda-deactivate")
    assert all(d == 2 for now, (d, _) in decisions.items() if now < 180)


def test_poll_only_tick_reports_the_cooldown() -> None:
    # pollingInterval 10, sync 15: t=10 is a poll without a sync.
    keda = Keda(KedaConfig(threshold=10, polling_interval_s=10))
    state = replace(active_state(), next_sync=15, last_active=0)
    decision, state = keda.decide(obs(0, now=0, ready=2), state)  # poll only, inactive
    assert (decision.desired, decision.reason) == (2, "keda-cooldown")
    assert "0s since last active < 300s" in decision.detail
    # t=5: neither due.
    decision, _ = keda.decide(obs(0, now=5, ready=2), state)
    assert (decision.desired, decision.reason) == (2, "keda-hold")


def test_new_scaled_object_scales_to_zero_at_once() -> None:
    # Never active and initialCooldownPeriod 0: creation + 0 <= now -> to minReplicaCount 0
    # at the first poll ("KEDA will immediately scale it to minReplicaCount").
    decision, _ = KEDA.decide(obs(0, now=0, ready=1), KEDA.initial_state(0.0, 1))
    assert (decision.desired, decision.reason) == (0, "keda-deactivate")
    # initialCooldownPeriod 60: cooling down at 0 and 30, to zero at the poll at 60.
    keda = Keda(KedaConfig(threshold=10, initial_cooldown_period_s=60))
    state = keda.initial_state(0.0, 1)
    results = []
    for now in (0, 15, 30, 45, 60):
        decision, state = keda.decide(obs(0, now=now, ready=1), state)
        results.append(decision.desired)
    assert results == [1, 1, 1, 1, 0]
    assert decision.reason == "keda-deactivate"


def test_idle_replica_count() -> None:
    keda = Keda(
        KedaConfig(threshold=10, idle_replica_count=0, min_replica_count=2, max_replica_count=10)
    )
    state = keda.initial_state(0.0, 2)
    # Inactive, 2 > idle 0, never active and no initial cooldown -> to idleReplicaCount 0. The
    # HPA then reads 0 (disabled) and records it as its initial recommendation.
    decision, state = keda.decide(obs(0, now=0, ready=2), state)
    assert (decision.desired, decision.reason) == (0, "keda-deactivate")
    assert state.recommendations == ((0, 0),)
    # t=30: 5 in flight -> active; idle mode and 0 < minReplicaCount 2 -> KEDA scales to 2.
    # The HPA: ratio +Inf (no pods yet) -> ceil(5 / 10) = 1 -> below minReplicas 2 -> 2.
    decision, state = keda.decide(obs(0, now=15, ready=0), state)
    decision, state = keda.decide(obs(5, now=30, ready=0), state)
    assert (decision.desired, decision.reason) == (2, "keda-activate")


def test_min_replica_count_without_idle_is_restored_by_keda() -> None:
    keda = Keda(KedaConfig(threshold=10, min_replica_count=2))
    # Inactive at 0 replicas with no idle mode: 0 < minReplicaCount -> KEDA sets 2. The HPA
    # then reads 2 over 0 pods with no load: NaN ratio, within tolerance -> statusReplicas 0,
    # stabilized by its initial recommendation 2 -> 2.
    decision, _ = keda.decide(obs(0, now=0, ready=0), keda.initial_state(0.0, 0))
    assert (decision.desired, decision.reason) == (2, "bounds")
    # And it never goes below 2 without load.
    state = keda.initial_state(0.0, 2)
    for now in range(0, 601, 15):
        decision, state = keda.decide(obs(0, now=now, ready=2), state)
        assert decision.desired == 2, now


# --- missing data --------------------------------------------------------------------------------


def test_missing_data_holds_the_scale() -> None:
    # Cooldown long over (lastActive -30, now 600) and the HPA would scale down, but the query
    # failed: nothing moves, and lastActive is not refreshed.
    state = replace(active_state(600.0), last_active=0.0)
    decision, after = KEDA.decide(obs(None, now=600, ready=3), state)
    assert (decision.desired, decision.reason) == (3, "no-data")
    assert after.last_active == 0.0
    assert after.recommendations == ((600, 3),)  # the HPA read the scale before failing
    series = np.full(15, np.nan)
    nan_obs = replace(obs(1, now=600, ready=3), concurrency=series)
    decision, _ = KEDA.decide(nan_obs, state)
    assert (decision.desired, decision.reason) == (3, "no-data")


# --- configuration -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "fragments"),
    [
        ({"threshold": 0}, ["keda.threshold", ">= 0.001"]),
        ({"threshold": 0.0004}, ["keda.threshold", "milli-units"]),
        ({"threshold": float("nan")}, ["keda.threshold"]),
        ({"activation_threshold": float("inf")}, ["keda.activation_threshold", "finite"]),
        ({"min_replica_count": -1}, ["keda.min_replica_count", ">= 0"]),
        ({"max_replica_count": 0}, ["keda.max_replica_count", ">= 1"]),
        (
            {"min_replica_count": 5, "max_replica_count": 3},
            ["keda.max_replica_count", "min_replica_count=5"],
        ),
        ({"idle_replica_count": 0}, ["keda.idle_replica_count", "min_replica_count=0"]),
        (
            {"idle_replica_count": 2, "min_replica_count": 2},
            ["keda.idle_replica_count", "[0, min_replica_count=2)"],
        ),
        ({"polling_interval_s": 0}, ["keda.polling_interval_s", "whole seconds >= 1"]),
        ({"polling_interval_s": 1.5}, ["keda.polling_interval_s"]),
        ({"cooldown_period_s": -1}, ["keda.cooldown_period_s", ">= 0"]),
        ({"initial_cooldown_period_s": 0.5}, ["keda.initial_cooldown_period_s"]),
        ({"scrape_interval_s": 0}, ["keda.scrape_interval_s"]),
        ({"horizontal_pod_autoscaler_sync_period_s": 0}, ["sync_period_s", ">= 1"]),
        ({"horizontal_pod_autoscaler_tolerance": 1.0}, ["tolerance", "[0, 1)"]),
        ({"horizontal_pod_autoscaler_downscale_stabilization_s": -1}, ["stabilization_s"]),
    ],
)
def test_config_validation_names_field_and_allowed_values(kwargs, fragments) -> None:
    with pytest.raises(InputError) as error:
        KedaConfig(**{"threshold": 10, **kwargs})
    for fragment in fragments:
        assert fragment in str(error.value)


# --- properties ----------------------------------------------------------------------------------


@st.composite
def configs(draw: st.DrawFn) -> KedaConfig:
    low = draw(st.integers(0, 3))
    idle = draw(st.one_of(st.none(), st.integers(0, low - 1))) if low > 0 else None
    return KedaConfig(
        threshold=draw(st.sampled_from([0.5, 1.0, 4.0, 10.0, 33.3])),
        activation_threshold=draw(st.sampled_from([0.0, 0.5, 5.0])),
        polling_interval_s=draw(st.sampled_from([10, 15, 30, 60])),
        cooldown_period_s=draw(st.sampled_from([0, 30, 300])),
        initial_cooldown_period_s=draw(st.sampled_from([0, 60])),
        idle_replica_count=idle,
        min_replica_count=low,
        max_replica_count=draw(st.integers(max(1, low), 12)),
        horizontal_pod_autoscaler_sync_period_s=draw(st.sampled_from([15, 30])),
    )


@given(
    config=configs(),
    loads=st.lists(
        st.one_of(st.none(), st.floats(0, 400, allow_nan=False)), min_size=1, max_size=60
    ),
    lag=st.integers(0, 3),
)
@settings(max_examples=200, deadline=None)
def test_decisions_stay_in_bounds_and_never_drop_without_data(
    config: KedaConfig, loads: list[float | None], lag: int
) -> None:
    """Over any load history (None: nothing delivered), on a cluster whose replicas come up
    `lag` ticks after they are asked for: every decision lies in [idleReplicaCount (or
    minReplicaCount), maxReplicaCount], and a tick without data never lowers the scale."""
    keda = Keda(config)
    lowest = config.idle_replica_count
    lowest = config.min_replica_count if lowest is None else lowest
    desired = keda.initial_replicas()
    history = [desired] * (lag + 1)
    state: Any = keda.initial_state(0.0, desired)
    for step, load in enumerate(loads):
        ready = min(desired, history[-(lag + 1)])
        observation = obs(load, now=step * keda.tick_s, ready=ready, pending=desired - ready)
        decision, state = keda.decide(observation, state)
        assert isinstance(decision.desired, int)
        assert lowest <= decision.desired <= config.max_replica_count, decision
        if load is None:
            assert decision.desired >= desired
            assert decision.reason in ("no-data", "keda-hold")
        desired = decision.desired
        history.append(desired)
