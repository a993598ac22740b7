"""The KPA against hand-computed cases from Knative's formulas.

Every expected number is worked out in a comment from `Scale(now)`, `scale` /
`handleScaleToZero` and `computeActiveCondition`. Most cases use CLEAN (target 10, utilization
1.0), so that TargetValue = TotalValue = 10 and the arithmetic stays readable.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.errors import InputError
from autoscaler.policies.kpa import Kpa, KpaConfig, KpaState
from autoscaler.policy import Decision, Observation

CLEAN = KpaConfig(target=10, target_utilization=1.0)


def obs(
    conc,
    *,
    now: float,
    ready: int,
    pending: int = 0,
    desired: int | None = None,
    poke: bool = False,
) -> Observation:
    """An observation whose last per-second bucket is second now-1."""
    series = np.asarray(conc, dtype=float)
    zeros = np.zeros_like(series)
    spec = ready + pending if desired is None else desired
    return Observation(
        now=now,
        concurrency=series,
        arrivals=zeros,
        queue=zeros,
        ready=ready,
        pending=pending,
        desired=spec,
        poke=poke,
    )


def settled(kpa: Kpa, ready: int) -> KpaState:
    """A revision that has been up long ago: Active since t=-1000, activator (if in the path)
    since then too, and out of the start-up panic."""
    return replace(kpa.initial_state(-1000.0, ready), panic_time=None, max_panic_pods=0)


def zero_state(since: float) -> KpaState:
    """A revision scaled to zero: Inactive and proxied through the activator since `since`."""
    return KpaState(
        active="inactive",
        active_since=since,
        scale_target_initialized=True,
        sks_mode="Proxy",
        proxy_since=since,
    )


def run(
    kpa: Kpa, state: KpaState, ticks, series_at, ready: int
) -> dict[int, tuple[Decision, KpaState]]:
    """Drive decide() tick by tick; new replicas are ready by the next tick."""
    out = {}
    for t in ticks:
        decision, state = kpa.decide(obs(series_at(t), now=t, ready=ready), state)
        ready = decision.desired
        out[t] = (decision, state)
    return out


# --- configuration -------------------------------------------------------------------------


def test_defaults_resolve_like_resolve_metric_target() -> None:
    cfg = KpaConfig()
    # cc 0 -> total = container-concurrency-target-default 100; TargetValue = 100 * 0.7 = 70.
    assert (cfg.total_value, cfg.target_value) == (100.0, 70.0)
    # panic window = round(60 * 10 / 100) = 6 s; threshold 200 % = 2.0.
    assert (cfg.stable_window, cfg.panic_window, cfg.panic_threshold) == (60, 6, 2.0)


@pytest.mark.parametrize(
    ("kwargs", "total", "target"),
    [
        ({"container_concurrency": 10}, 10.0, 7.0),  # total = cc = 10; 10 * 0.7 = 7
        ({"container_concurrency": 10, "target": 50}, 10.0, 7.0),  # min(target 50, cc 10) = 10
        ({"container_concurrency": 10, "target": 4}, 4.0, 2.8),  # min(4, 10) = 4; 4 * 0.7 = 2.8
        ({"target": 5}, 5.0, 3.5),  # cc 0: the annotation overrides 100; 5 * 0.7 = 3.5
        ({"target": 0.01, "target_utilization": 0.01}, 0.01, 0.01),  # max(0.01, 0.0001) = 0.01
        ({"metric": "rps"}, 200.0, 140.0),  # requests-per-second-target-default 200 x 0.7
        ({"metric": "rps", "container_concurrency": 8, "target": 30}, 30.0, 21.0),  # no min(cc)
    ],
)
def test_target_resolution(kwargs, total, target) -> None:
    cfg = KpaConfig(**kwargs)
    assert cfg.total_value == pytest.approx(total)
    assert cfg.target_value == pytest.approx(target)


@pytest.mark.parametrize(
    ("stable", "percentage", "panic"),
    [(60, 10, 6), (15, 10, 2), (6, 1, 1), (3600, 100, 3600)],  # 1.5 -> 2 (half away); 0.06 -> min 1
)
def test_panic_window_rounds_to_whole_seconds(stable, percentage, panic) -> None:
    assert (
        KpaConfig(stable_window_s=stable, panic_window_percentage=percentage).panic_window == panic
    )


@pytest.mark.parametrize(
    ("kwargs", "fragments"),
    [
        ({"stable_window_s": 5}, ["kpa.stable_window_s", "[6, 3600]"]),
        ({"stable_window_s": 60.5}, ["kpa.stable_window_s", "whole seconds"]),
        ({"panic_window_percentage": 0.5}, ["kpa.panic_window_percentage", "[1, 100]"]),
        ({"panic_threshold_percentage": 100}, ["kpa.panic_threshold_percentage", "[110, 1000]"]),
        ({"max_scale_up_rate": 1.0}, ["kpa.max_scale_up_rate", "greater than 1.0"]),
        ({"max_scale_down_rate": 0.5}, ["kpa.max_scale_down_rate", "greater than 1.0"]),
        ({"target_burst_capacity": -2}, ["kpa.target_burst_capacity", "-1"]),
        ({"target": 0.001}, ["kpa.target", ">= 0.01"]),
        ({"target_utilization": 0.0}, ["kpa.target_utilization", "[0.01, 1]"]),
        ({"target_utilization": 70}, ["kpa.target_utilization", "[0.01, 1]"]),
        ({"container_concurrency": -1}, ["kpa.container_concurrency", ">= 0"]),
        ({"min_scale": 5, "max_scale": 3}, ["kpa.max_scale", "min_scale=5"]),
        ({"min_scale": -1}, ["kpa.min_scale", ">= 0"]),
        ({"initial_scale": 0}, ["kpa.initial_scale", "allow_zero_initial_scale"]),
        ({"activation_scale": 0}, ["kpa.activation_scale", ">= 2"]),
        ({"activation_scale": 5, "max_scale": 3}, ["kpa.activation_scale", "max_scale=3"]),
        ({"scale_down_delay_s": 3601}, ["kpa.scale_down_delay_s", "[0, 3600]"]),
        ({"scale_down_delay_s": 1.5}, ["kpa.scale_down_delay_s", "whole seconds"]),
        (
            {"scale_to_zero_pod_retention_period_s": -1},
            ["kpa.scale_to_zero_pod_retention_period_s"],
        ),
        ({"scale_to_zero_grace_period_s": 5}, ["kpa.scale_to_zero_grace_period_s", "at least 6"]),
        ({"progress_deadline_s": 0}, ["kpa.progress_deadline_s", "positive"]),
        ({"tick_s": 0.5}, ["kpa.tick_s", "whole seconds"]),
    ],
)
def test_config_validation_names_field_and_allowed_values(kwargs, fragments) -> None:
    with pytest.raises(InputError) as error:
        KpaConfig(**kwargs)
    for fragment in fragments:
        assert fragment in str(error.value)


def test_valid_edge_values_are_accepted() -> None:
    KpaConfig(
        target_burst_capacity=-1,
        initial_scale=0,
        allow_zero_initial_scale=True,
        activation_scale=3,
        min_scale=2,
        max_scale=3,
        stable_window_s=6,
        panic_threshold_percentage=110,
        scale_to_zero_grace_period_s=6,
    )


def test_policy_shape() -> None:
    kpa = Kpa(KpaConfig(initial_scale=2, stable_window_s=90))
    assert (kpa.name, kpa.tick_s, kpa.history_s, kpa.pokeable) == ("kpa", 2.0, 90.0, True)
    assert kpa.initial_replicas() == 2


# --- the decider ---------------------------------------------------------------------------


def test_steady_load_is_ceil_of_average_over_target() -> None:
    kpa = Kpa(CLEAN)
    # 60 s at 35: stable = panic = 35; dspc = dppc = ceil(35 / 10) = 4.
    # ready 4: maxDown = floor(4/2) = 2, maxUp = 4000; dppc/ready = 1.0 < 2 -> no panic -> 4.
    decision, state = kpa.decide(obs([35.0] * 60, now=100, ready=4), settled(kpa, 4))
    assert (decision.desired, decision.reason) == (4, "stable")
    assert state.panic_time is None
    assert "stable 35.00 / target 10" in decision.detail
    # ready 3: ceil(35 / 10) = 4 again; 4/3 = 1.33 < 2 -> scale up to 4 without panic.
    decision, _ = kpa.decide(obs([35.0] * 60, now=100, ready=3), settled(kpa, 3))
    assert (decision.desired, decision.reason) == (4, "stable")


def test_default_target_is_seventy_per_pod() -> None:
    kpa = Kpa()
    # stable 150 -> ceil(150 / 70) = 3; panic 150 -> 3; ready 2: 3/2 = 1.5 < 2 -> 3.
    decision, _ = kpa.decide(obs([150.0] * 60, now=100, ready=2), settled(kpa, 2))
    assert (decision.desired, decision.reason) == (3, "stable")


def test_rps_metric_averages_arrivals_not_concurrency() -> None:
    kpa = Kpa(KpaConfig(metric="rps", target=10, target_utilization=1.0))
    # 60 s of 35 requests/s while only 2 are in the system: ceil(35 / 10) = 4.
    observation = replace(obs([2.0] * 60, now=100, ready=4), arrivals=np.full(60, 35.0))
    decision, _ = kpa.decide(observation, settled(kpa, 4))
    assert decision.desired == 4
    assert "stable 35.00 / target 10" in decision.detail


def test_unknown_metric_is_refused_with_the_allowed_ones() -> None:
    with pytest.raises(InputError, match=r"kpa.metric: must be 'concurrency' or 'rps', got 'cpu'"):
        KpaConfig(metric="cpu")


def test_early_window_averages_over_seen_buckets_only() -> None:
    kpa = Kpa(CLEAN)
    # Only 10 buckets seen: stable = 200/10 = 20, not 200/60 -> dspc = 2; panic = 20 -> 2.
    decision, _ = kpa.decide(obs([20.0] * 10, now=10, ready=2), settled(kpa, 2))
    assert decision.desired == 2


def test_panic_entry_at_exactly_twice_the_ready_pods() -> None:
    kpa = Kpa(CLEAN)
    # 54 s at 0 then 6 s at 40: stable = 240/60 = 4 -> dspc 1; panic = 40 -> dppc 4.
    # ready 2: dppc / ready = 4/2 = 2.0 >= 2.0 -> panic. desiredStable = max(1, maxDown 1) = 1,
    # desiredPanic = 4 -> desired = maxPanicPods = max(1, 4) = 4.
    decision, state = kpa.decide(obs([0.0] * 54 + [40.0] * 6, now=100, ready=2), settled(kpa, 2))
    assert (decision.desired, decision.reason) == (4, "panic")
    assert (state.panic_time, state.max_panic_pods) == (100, 4)


def test_no_panic_just_below_twice_the_ready_pods() -> None:
    kpa = Kpa(CLEAN)
    # panic = 30 -> dppc 3; 3/2 = 1.5 < 2 -> stable: 180/60 = 3 -> dspc 1 -> max(1, maxDown 1) = 1.
    decision, state = kpa.decide(obs([0.0] * 54 + [30.0] * 6, now=100, ready=2), settled(kpa, 2))
    assert (decision.desired, decision.reason, state.panic_time) == (1, "stable", None)
    # dppc is a whole pod count: panic 30.01 -> ceil(3.001) = 4 = 200 % of 2 -> panic.
    decision, _ = kpa.decide(obs([0.0] * 54 + [30.01] * 6, now=100, ready=2), settled(kpa, 2))
    assert (decision.desired, decision.reason) == (4, "panic")


def test_panic_never_scales_down() -> None:
    kpa = Kpa(CLEAN)
    state = replace(settled(kpa, 8), panic_time=90.0, max_panic_pods=8)
    # No load: dspc = dppc = 0, not over threshold; 90 + 60 < 100 is false -> still panicking.
    # desiredStable = max(0, maxDown floor(8/2) = 4) = 4 < maxPanicPods 8 -> stays 8.
    decision, state = kpa.decide(obs([0.0] * 60, now=100, ready=8), state)
    assert (decision.desired, decision.reason) == (8, "panic")
    assert state.max_panic_pods == 8


def test_panic_exit_one_stable_window_after_then_halving() -> None:
    kpa = Kpa(CLEAN)
    burst = [0.0] * 54 + [40.0] * 6

    def series(t: int) -> list[float]:
        return burst if t == 100 else [0.0] * 60

    history = run(kpa, settled(kpa, 2), range(100, 172, 2), series, ready=2)
    # t=100: panic entered (see above), desired 4.
    # t=102..160: no load, but panicTime 100 + 60 < t is false up to t=160 -> hold maxPanicPods 4.
    assert all(
        history[t][0].desired == 4 and history[t][0].reason == "panic" for t in range(100, 162, 2)
    )
    # t=162: 160 < 162 -> exit; desiredStable = max(0, maxDown floor(4/2) = 2) = 2.
    assert (history[162][0].desired, history[162][0].reason) == (2, "stable")
    assert history[162][1].panic_time is None and history[162][1].max_panic_pods == 0
    # t=164: ready 2 -> maxDown floor(2/2) = 1; t=166: ready 1 -> maxDown 0 -> the zero rules:
    # Active since -1000, activator in the path since -1000 -> zero at once.
    assert [history[t][0].desired for t in (164, 166)] == [1, 0]


def test_panic_is_extended_by_each_over_threshold_tick() -> None:
    kpa = Kpa(CLEAN)
    burst = [0.0] * 54 + [40.0] * 6
    # Panicking since t=100; at t=130 the burst (dppc 4 / ready 2 = 2.0) is over the threshold
    # again, which moves panicTime to 130.
    state = replace(settled(kpa, 2), panic_time=100.0, max_panic_pods=4)
    _, state = kpa.decide(obs(burst, now=130, ready=2), state)
    assert state.panic_time == 130
    # So panic lasts until 130 + 60 < now: still at t=190, over at t=192.
    decision, _ = kpa.decide(obs([0.0] * 60, now=190, ready=4), state)
    assert (decision.desired, decision.reason) == (4, "panic")
    decision, _ = kpa.decide(obs([0.0] * 60, now=192, ready=4), state)
    assert (decision.desired, decision.reason) == (2, "stable")  # max(0, floor(4/2) = 2)


def test_max_scale_up_rate_limits_growth() -> None:
    kpa = Kpa(replace(CLEAN, max_scale_up_rate=2.0))
    # stable = panic = 100 -> dspc = dppc = 10; ready 3: maxUp = ceil(2 * 3) = 6.
    # 10/3 >= 2 -> panic; desired = max(min(10, 6), min(10, 6)) = 6.
    decision, _ = kpa.decide(obs([100.0] * 60, now=100, ready=3), settled(kpa, 3))
    assert (decision.desired, decision.reason) == (6, "panic")
    # From zero ready pods readyF = 1: maxUp = ceil(2 * 1) = 2.
    decision, _ = kpa.decide(obs([100.0] * 60, now=100, ready=0, desired=0), zero_state(0.0))
    assert decision.desired == 2


def test_activation_scale_applies_once_any_pod_is_wanted() -> None:
    kpa = Kpa(replace(CLEAN, activation_scale=3))
    # Poke at zero: stable = 1/60 -> dspc = ceil(0.0017) = 1 > 0 -> max(1, activation 3) = 3.
    decision, _ = kpa.decide(
        obs([0.0] * 60, now=300, ready=0, desired=0, poke=True), zero_state(200.0)
    )
    assert decision.desired == 3
    # No load: dspc = 0 -> activation scale does not apply; inactive for 100 s -> stays 0.
    decision, _ = kpa.decide(obs([0.0] * 60, now=300, ready=0, desired=0), zero_state(200.0))
    assert (decision.desired, decision.reason) == (0, "scale-to-zero")


def test_scale_down_delay_holds_the_max_over_the_delay() -> None:
    kpa = Kpa(replace(CLEAN, scale_down_delay_s=10))
    # Delay 10 s at a 2 s granularity -> 5 buckets; bucket index = int(now) // 2.
    # t=100 (bucket 50): 40 per second -> ceil(40/10) = 4 recorded.
    decision, state = kpa.decide(obs([40.0] * 60, now=100, ready=4), settled(kpa, 4))
    assert decision.desired == 4
    held = {}
    for t in range(102, 112, 2):
        # No load: desiredStable = max(0, maxDown floor(4/2) = 2) = 2, recorded in bucket t//2,
        # but bucket 50 still counts while (t//2) - 50 < 5, i.e. up to t=108.
        decision, state = kpa.decide(obs([0.0] * 60, now=t, ready=4), state)
        held[t] = decision.desired
    assert held == {102: 4, 104: 4, 106: 4, 108: 4, 110: 2}


def test_no_data_keeps_the_current_scale() -> None:
    kpa = Kpa(CLEAN)
    decision, _ = kpa.decide(obs([], now=0, ready=3), kpa.initial_state(0.0, 3))
    assert (decision.desired, decision.reason) == (3, "no-data")


def test_new_decider_over_several_pods_starts_in_panic() -> None:
    kpa = Kpa(CLEAN)
    state = kpa.initial_state(0.0, 3)
    assert (state.panic_time, state.max_panic_pods) == (0.0, 3)
    # No load at t=2: desiredStable = max(0, floor(3/2) = 1) = 1, but panicking -> keep 3.
    decision, _ = kpa.decide(obs([0.0, 0.0], now=2, ready=3), state)
    assert (decision.desired, decision.reason) == (3, "panic")
    assert kpa.initial_state(0.0, 1).panic_time is None


# --- the scaler: bounds, initial scale, scale to zero ----------------------------------------


def test_min_and_max_scale_bound_the_decision() -> None:
    kpa = Kpa(replace(CLEAN, min_scale=2))
    # No load, ready 2: desiredStable = max(0, floor(2/2) = 1) = 1 -> raised to min 2.
    decision, _ = kpa.decide(obs([0.0] * 60, now=100, ready=2), settled(kpa, 2))
    assert (decision.desired, decision.reason) == (2, "bounds")
    kpa = Kpa(replace(CLEAN, max_scale=3))
    # 100 per second -> 10 wanted (panic, 10/3 >= 2) -> capped at max 3.
    decision, _ = kpa.decide(obs([100.0] * 60, now=100, ready=3), settled(kpa, 3))
    assert (decision.desired, decision.reason) == (3, "bounds")


def test_initial_scale_is_a_floor_until_reached_once() -> None:
    kpa = Kpa(replace(CLEAN, initial_scale=3))
    assert kpa.initial_replicas() == 3
    state = kpa.initial_state(0.0, 0)
    # minReady = max(min 0, initial 3) = 3 > ready 0 -> Activating, not initialized.
    assert (state.active, state.scale_target_initialized) == ("activating", False)
    # t=2, no load: desired 0 -> min raised to initial scale 3 before ScaleTargetInitialized.
    decision, state = kpa.decide(obs([0.0, 0.0], now=2, ready=0, pending=3), state)
    assert (decision.desired, decision.reason) == (3, "bounds")
    # t=40, the 3 pods are ready: the first pass marks ScaleTargetInitialized and Active, and the
    # reconcile that follows drops the floor: desiredStable = max(0, floor(3/2) = 1) = 1.
    decision, state = kpa.decide(obs([0.0] * 40, now=40, ready=3), state)
    assert (state.scale_target_initialized, state.active) == (True, "active")
    assert (decision.desired, decision.reason) == (1, "stable")


def test_scale_to_zero_disabled_keeps_one() -> None:
    kpa = Kpa(replace(CLEAN, enable_scale_to_zero=False))
    decision, _ = kpa.decide(obs([0.0] * 60, now=100, ready=1), settled(kpa, 1))
    assert (decision.desired, decision.reason) == (1, "bounds")


def idle_after_load(kpa: Kpa, until: int) -> dict[int, tuple[Decision, KpaState]]:
    """1 pod from t=0, one request in flight during seconds 0..99, then nothing."""
    load = np.zeros(until)
    load[:100] = 1.0
    return run(
        kpa,
        kpa.initial_state(0.0, 1),
        range(2, until + 1, 2),
        lambda t: load[max(0, t - 60) : t],
        ready=1,
    )


def first_zero(history: dict[int, tuple[Decision, KpaState]]) -> int:
    return min(t for t, (decision, _) in history.items() if decision.desired == 0)


def test_zero_one_stable_window_after_the_last_request_with_default_tbc() -> None:
    history = idle_after_load(Kpa(), until=200)
    # 1 pod: EBC = floor(1 * 100 - 211 - panic) < 0 -> the activator is in the path from t=0.
    assert history[2][1].sks_mode == "Proxy"
    # The last busy second is 99; the 60 s window at tick t covers seconds t-60..t-1, so it
    # holds 1/60 up to t=158 (dspc = 1) and is empty at t=160 (dspc = 0).
    assert (history[158][0].desired, history[158][0].reason) == (1, "stable")
    # t=160: Active for 160 s >= 60 -> (0, don't apply) -> Inactive; the re-reconcile finds the
    # activator in the path for 160 s >= grace 30 -> fast path to zero.
    assert first_zero(history) == 160
    assert history[160][0].reason == "scale-to-zero"
    assert history[160][1].active == "inactive"
    assert all(history[t][0].desired == 0 for t in range(160, 202, 2))


def test_zero_after_window_plus_grace_when_pods_serve_directly() -> None:
    history = idle_after_load(Kpa(KpaConfig(target_burst_capacity=0)), until=220)
    # TBC 0 -> EBC 0 -> Serve while pods are wanted.
    assert (history[158][1].sks_mode, history[158][1].proxy_since) == ("Serve", None)
    # t=160: window empty -> Inactive and Proxy since 160; the re-reconcile: inactive 0 s < 30,
    # activator in the path 0 s < grace 30 -> wait, keeping the pod.
    assert (history[160][0].desired, history[160][0].reason) == (1, "keepalive")
    assert (history[160][1].active, history[160][1].proxy_since) == ("inactive", 160)
    assert all(history[t][0].desired == 1 for t in range(160, 190, 2))
    # t=190: InactiveFor 30 >= max(grace 30, retention 0) -> zero: 60 s + 30 s after second 99.
    assert first_zero(history) == 190


def test_pod_retention_period_keeps_the_last_pod() -> None:
    history = idle_after_load(Kpa(KpaConfig(scale_to_zero_pod_retention_period_s=90)), until=300)
    # Inactive at t=160; retention 90 > 0 and InactiveFor < 90 -> wait (even though the fast
    # path would allow it); t=250: InactiveFor 90 >= max(30, 90) -> zero.
    assert history[248][0].reason == "keepalive"
    assert first_zero(history) == 250


def test_keepalive_while_active_for_less_than_a_stable_window() -> None:
    kpa = Kpa(CLEAN)
    state = replace(settled(kpa, 1), active_since=110.0)
    # Active for 20 s < 60 -> hold 1 for the rest of the window.
    decision, state = kpa.decide(obs([0.0] * 60, now=130, ready=1), state)
    assert (decision.desired, decision.reason, state.active) == (1, "keepalive", "active")
    # Active for 60 s -> Inactive, then the fast path (activator in the path since -1000).
    decision, state = kpa.decide(obs([0.0] * 60, now=170, ready=1), state)
    assert (decision.desired, decision.reason, state.active) == (0, "scale-to-zero", "inactive")


def test_poke_from_zero_gives_one() -> None:
    kpa = Kpa()
    # The activator's stat (concurrency 1) lands in a new bucket: stable = 1/60, panic = 1/6;
    # dspc = ceil(0.0167 / 70) = 1; ready 0 -> readyF 1, dppc 1 / 1 < 2 -> no panic -> 1.
    decision, state = kpa.decide(
        obs([0.0] * 60, now=300, ready=0, desired=0, poke=True), zero_state(200.0)
    )
    assert (decision.desired, decision.reason) == (1, "stable")
    # want 1 with ready 0 < minReady 1 -> Activating since the poke.
    assert (state.active, state.active_since, state.sks_mode) == ("activating", 300, "Proxy")
    # Even with no history at all.
    decision, _ = kpa.decide(obs([], now=5, ready=0, desired=0, poke=True), zero_state(0.0))
    assert decision.desired == 1
    # Without the poke the same idle revision stays at zero (inactive 100 s >= grace 30).
    decision, _ = kpa.decide(obs([0.0] * 60, now=300, ready=0, desired=0), zero_state(200.0))
    assert (decision.desired, decision.reason) == (0, "scale-to-zero")


@settings(max_examples=200, deadline=None)
@given(
    history=st.lists(st.floats(0, 500), max_size=60),
    target=st.floats(0.01, 1000),
    tbc=st.sampled_from([-1.0, 0.0, 211.0]),
    max_scale=st.integers(0, 5),
    since=st.floats(-1000, 299),
)
def test_a_poke_at_zero_always_asks_for_at_least_one(
    history, target, tbc, max_scale, since
) -> None:
    kpa = Kpa(KpaConfig(target=target, target_burst_capacity=tbc, max_scale=max_scale))
    observation = obs(history, now=300, ready=0, desired=0, poke=True)
    decision, _ = kpa.decide(observation, zero_state(since))
    assert decision.desired >= 1
    assert max_scale == 0 or decision.desired <= max_scale


def test_activation_gives_up_after_progress_deadline_plus_buffer() -> None:
    kpa = Kpa()
    state = KpaState(
        active="activating",
        active_since=1000.0,
        scale_target_initialized=True,
        sks_mode="Proxy",
        proxy_since=0.0,
    )
    # No load any more, pod never ready: activating 630 s, not > 600 + 30 -> unknown, keep 1.
    decision, state = kpa.decide(obs([0.0] * 60, now=1630, ready=0, pending=1), state)
    assert (decision.desired, decision.reason) == (1, "activating")
    # 632 s > 630 -> scale to 0; the PA turns Inactive (TimedOut).
    decision, state = kpa.decide(obs([0.0] * 60, now=1632, ready=0, pending=1), state)
    assert (decision.desired, decision.reason, state.active) == (0, "scale-to-zero", "inactive")


# --- SKS mode from the excess burst capacity -----------------------------------------------


@pytest.mark.parametrize(
    ("tbc", "ready", "load", "mode"),
    [
        (211, 3, 50.0, "Serve"),  # floor(3 * 100 - 211 - 50) = 39 >= 0
        (211, 3, 90.0, "Proxy"),  # floor(300 - 211 - 90) = -1 < 0
        (211, 2, 10.0, "Proxy"),  # floor(200 - 211 - 10) = -21 < 0: fewer than 3 pods
        (0, 1, 50.0, "Serve"),  # TBC 0 -> EBC 0
        (-1, 5, 0.0, "Proxy"),  # TBC -1 -> EBC -1: activator always in the path
    ],
)
def test_sks_mode_follows_excess_burst_capacity(tbc, ready, load, mode) -> None:
    kpa = Kpa(KpaConfig(target_burst_capacity=tbc))
    decision, state = kpa.decide(obs([load] * 60, now=100, ready=ready), settled(kpa, ready))
    assert decision.desired >= 1
    assert state.sks_mode == mode
    assert (state.proxy_since is None) == (mode == "Serve")
