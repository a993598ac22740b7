"""Ray Serve's default autoscaling policy against hand-computed cases from Ray's formulas.

Every expected number is worked out in a comment from ray-project/ray
python/ray/serve/autoscaling_policy.py: error ratio = total / (target x running), raw desired =
running x ratio, `_apply_scaling_factors` (ceil(running + factor x (raw - running)), minus one
when a scale-down is stuck), bounds, then `_apply_delay_logic` (scale once the signed counter
passes int(delay / tick)). Most cases use FAST (no delays) so one decision shows the arithmetic.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.errors import InputError
from autoscaler.policies.ray_serve import (
    RayServe,
    RayServeConfig,
    RayServeState,
    make,
)
from autoscaler.policy import Decision, Observation

FAST = RayServeConfig(upscale_delay_s=0, downscale_delay_s=0, metrics_interval_s=0.5)


def obs(
    conc,
    *,
    now: float = 100.0,
    ready: int,
    desired: int | None = None,
    queue=None,
    poke: bool = False,
) -> Observation:
    series = np.asarray(conc, dtype=float)
    waiting = np.zeros_like(series) if queue is None else np.asarray(queue, dtype=float)
    return Observation(
        now=now,
        concurrency=series,
        arrivals=np.zeros_like(series),
        queue=waiting,
        ready=ready,
        pending=0,
        desired=ready if desired is None else desired,
        poke=poke,
    )


def once(cfg: RayServeConfig, observation: Observation, state: RayServeState | None = None):
    return RayServe(cfg).decide(observation, state or RayServeState())


def run(policy: RayServe, times, series_at, *, ready: int, state: RayServeState | None = None):
    """Drive decide() tick by tick; a new target is ready by the next tick."""
    state = state or policy.initial_state(times[0], ready)
    out: dict[float, tuple[Decision, RayServeState]] = {}
    for t in times:
        decision, state = policy.decide(obs(series_at(t), now=t, ready=ready), state)
        ready = decision.desired
        out[t] = (decision, state)
    return out


def ticks(start: float, count: int, step: float = 0.5) -> list[float]:
    return [start + k * step for k in range(count)]


# --- configuration -------------------------------------------------------------------------


def test_defaults_are_rays() -> None:
    cfg = RayServeConfig()
    assert cfg.target_ongoing_requests == 2.0  # DEFAULT_TARGET_ONGOING_REQUESTS
    assert (cfg.min_replicas, cfg.max_replicas, cfg.initial_replicas) == (1, 100, None)
    assert (cfg.upscale_delay_s, cfg.downscale_delay_s) == (30.0, 600.0)
    assert cfg.downscale_to_zero_delay_s is None
    assert (cfg.metrics_interval_s, cfg.look_back_period_s) == (10.0, 30.0)
    # upscaling/downscaling_factor None -> smoothing_factor 1.0 (get_*_factor).
    assert (cfg.upscale_factor, cfg.downscale_factor) == (1.0, 1.0)
    # 30 s / 0.5 s = 60 periods; 600 / 0.5 = 1200.
    assert (cfg.periods(cfg.upscale_delay_s), cfg.periods(cfg.downscale_delay_s)) == (60, 1200)


def test_policy_shape() -> None:
    policy = RayServe()
    assert (policy.name, policy.tick_s, policy.history_s, policy.pokeable) == (
        "ray-serve",
        0.5,
        30.0,
        True,
    )
    assert policy.initial_replicas() == 1  # initial_replicas None -> min_replicas
    assert RayServe(RayServeConfig(min_replicas=0)).initial_replicas() == 0
    assert RayServe(RayServeConfig(initial_replicas=3)).initial_replicas() == 3
    assert policy.initial_state(0.0, 4) == RayServeState()


def test_factor_fallbacks() -> None:
    cfg = RayServeConfig(smoothing_factor=0.5, upscaling_factor=2.0)
    assert (cfg.upscale_factor, cfg.downscale_factor) == (2.0, 0.5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"target_ongoing_requests": 0}, "ray-serve.target_ongoing_requests: must be a number > 0"),
        ({"target_ongoing_requests": float("nan")}, "ray-serve.target_ongoing_requests"),
        ({"min_replicas": -1}, "ray-serve.min_replicas: must be an integer >= 0, got -1"),
        ({"max_replicas": 0}, "ray-serve.max_replicas: must be an integer >= 1, got 0"),
        ({"min_replicas": 5, "max_replicas": 3}, "max_replicas: must be >= min_replicas=5, got 3"),
        ({"initial_replicas": 0}, "ray-serve.initial_replicas: must be None or an integer in [min"),
        ({"initial_replicas": 101}, "max_replicas=100], got 101"),
        ({"upscale_delay_s": -1}, "ray-serve.upscale_delay_s: must be a number of seconds >= 0"),
        ({"downscale_delay_s": float("inf")}, "ray-serve.downscale_delay_s"),
        ({"downscale_to_zero_delay_s": -5}, "ray-serve.downscale_to_zero_delay_s"),
        ({"smoothing_factor": 0}, "ray-serve.smoothing_factor: must be a number > 0, got 0"),
        ({"upscaling_factor": -1.0}, "ray-serve.upscaling_factor: must be a number > 0"),
        ({"downscaling_factor": 0.0}, "ray-serve.downscaling_factor: must be a number > 0"),
        ({"metrics_interval_s": 0}, "ray-serve.metrics_interval_s: must be a number > 0"),
        ({"look_back_period_s": 0.5}, "ray-serve.look_back_period_s: must be whole seconds >= 1"),
        ({"look_back_period_s": 30.5}, "ray-serve.look_back_period_s: must be whole seconds"),
        ({"control_loop_interval_s": 0.1}, "ray-serve.control_loop_interval_s: must be seconds >="),
        ({"min_replicas": True}, "ray-serve.min_replicas: must be an integer >= 0, got True"),
    ],
)
def test_config_validation_names_field_and_allowed_values(kwargs, message) -> None:
    with pytest.raises(InputError) as error:
        RayServeConfig(**kwargs)
    assert message in str(error.value)


def test_valid_edge_values_are_accepted() -> None:
    RayServeConfig(
        min_replicas=0,
        max_replicas=1,
        initial_replicas=0,
        upscale_delay_s=0,
        downscale_delay_s=0,
        downscale_to_zero_delay_s=0,
        look_back_period_s=1,
        control_loop_interval_s=0.5,
        target_ongoing_requests=0.01,
    )


# --- make ----------------------------------------------------------------------------------


def test_make_derives_the_target_from_the_slots() -> None:
    # 10 slots = max_ongoing_requests 10; target 0.7 x 10 = 7 (the cap is 43 % above it).
    assert make(10).config.target_ongoing_requests == pytest.approx(7.0)
    # Unknown slots: Ray's DEFAULT_TARGET_ONGOING_REQUESTS = 2.
    assert make(0).config.target_ongoing_requests == 2.0
    # Everything else keeps Ray's defaults.
    assert replace(make(10).config, target_ongoing_requests=2.0) == RayServeConfig()


def test_make_overrides() -> None:
    policy = make(8, upscale_delay_s=0, min_replicas=0, target_ongoing_requests=3)
    assert policy.config.target_ongoing_requests == 3
    assert (policy.config.upscale_delay_s, policy.config.min_replicas) == (0, 0)


def test_make_refuses_bad_input() -> None:
    with pytest.raises(InputError, match=r"ray-serve.container_concurrency: must be an integer"):
        make(-1)
    with pytest.raises(InputError, match=r"ray-serve: unknown setting\(s\) bogus"):
        make(4, bogus=1)
    with pytest.raises(InputError, match=r"ray-serve.max_replicas"):
        make(4, max_replicas=0)


# --- the formula ---------------------------------------------------------------------------


def test_error_ratio_times_running_replicas() -> None:
    # 30 s at 12 ongoing, 3 running, target 2: ratio = 12 / (2 x 3) = 2 -> raw 3 x 2 = 6;
    # factor 1: ceil(3 + 1 x (6 - 3)) = 6 > target 3 -> counter 1 > int(0 / 0.5) = 0 -> 6.
    decision, state = once(FAST, obs([12.0] * 30, ready=3))
    assert (decision.desired, decision.reason) == (6, "ray-serve-scale-up")
    assert "12.00 ongoing / 3 ready = 4.00 per replica, target 2 -> 6.00 -> 6" in decision.detail
    assert (state.decision_counter, state.total_num_requests) == (0, 12.0)


def test_fractional_raw_rounds_up() -> None:
    # total 7, target 2, 2 running: ratio 7/4 = 1.75 -> raw 3.5 -> ceil(2 + 1.5) = 4.
    decision, _ = once(FAST, obs([7.0] * 30, ready=2))
    assert decision.desired == 4


def test_at_target_holds_and_resets_the_counter() -> None:
    # total 8, target 2, 4 running: ratio 1 -> raw 4 = target 4 -> "do nothing", counter 0.
    decision, state = once(FAST, obs([8.0] * 30, ready=4), RayServeState(decision_counter=7))
    assert (decision.desired, decision.reason, state.decision_counter) == (4, "ray-serve-hold", 0)


def test_counts_queued_and_running_against_running_replicas_only() -> None:
    # 2 running of a target of 5 (3 still starting), total 10: raw = 10 / 2 = 5 = target -> hold;
    # pending replicas are not in current_num_replicas.
    decision, _ = once(FAST, obs([10.0] * 30, ready=2, desired=5))
    assert (decision.desired, decision.reason) == (5, "ray-serve-hold")


def test_scale_down_with_default_factor() -> None:
    # total 3, target 2, 6 running: raw = 3 / 2 = 1.5 -> ceil(6 + (1.5 - 6)) = 2 -> 2.
    decision, _ = once(FAST, obs([3.0] * 30, ready=6))
    assert (decision.desired, decision.reason) == (2, "ray-serve-scale-down")


def test_look_back_is_the_last_thirty_seconds() -> None:
    # 100 s idle then 30 s at 6: the mean of the last 30 buckets is 6; 1 running, target 2:
    # raw 3 -> 3.
    decision, _ = once(FAST, obs([0.0] * 100 + [6.0] * 30, ready=1))
    assert decision.desired == 3
    # 20 s at 0 then 10 s at 12: mean (0 x 20 + 12 x 10) / 30 = 4 -> raw 2 on 1 running.
    decision, _ = once(FAST, obs([0.0] * 20 + [12.0] * 10, ready=1))
    assert decision.desired == 2


def test_early_window_averages_over_seen_seconds() -> None:
    # Only 5 seconds seen, at 8: mean 8 (not 40 / 30); 2 running, target 2 -> raw 4.
    decision, _ = once(FAST, obs([8.0] * 5, ready=2))
    assert decision.desired == 4


# --- scaling factors -----------------------------------------------------------------------


def test_upscaling_factor_scales_the_distance() -> None:
    cfg = replace(FAST, upscaling_factor=0.5)
    # total 32, target 2, 4 running: raw 16; ceil(4 + 0.5 x 12) = 10.
    decision, _ = once(cfg, obs([32.0] * 30, ready=4))
    assert decision.desired == 10


def test_downscaling_factor_scales_the_distance() -> None:
    cfg = replace(FAST, downscaling_factor=0.5)
    # total 4, target 2, 4 running: raw 2; ceil(4 + 0.5 x (2 - 4)) = 3.
    decision, _ = once(cfg, obs([4.0] * 30, ready=4))
    assert decision.desired == 3


def test_small_downscaling_factor_is_never_stuck() -> None:
    cfg = replace(FAST, downscaling_factor=0.1)
    # total 2, target 2, 3 running: raw 1; ceil(3 + 0.1 x (1 - 3)) = ceil(2.8) = 3 = running,
    # and ceil(raw) = 1 < 3 -> stuck -> 3 - 1 = 2.
    decision, _ = once(cfg, obs([2.0] * 30, ready=3))
    assert (decision.desired, decision.reason) == (2, "ray-serve-scale-down")
    # total 3.6 on 2 running: raw 1.8; ceil(2 + 0.1 x -0.2) = ceil(1.98) = 2, but
    # ceil(raw) = 2 is not < 2 -> no decrement: hold at 2.
    decision, _ = once(cfg, obs([3.6] * 30, ready=2))
    assert (decision.desired, decision.reason) == (2, "ray-serve-hold")


def test_smoothing_factor_applies_to_both_directions() -> None:
    cfg = replace(FAST, smoothing_factor=2.0)
    # total 6, target 2, 2 running: raw 3; ceil(2 + 2 x 1) = 4.
    decision, _ = once(cfg, obs([6.0] * 30, ready=2))
    assert decision.desired == 4
    # total 6, 5 running: raw 3; ceil(5 + 2 x (3 - 5)) = 1.
    decision, _ = once(cfg, obs([6.0] * 30, ready=5))
    assert decision.desired == 1


# --- delays --------------------------------------------------------------------------------


def test_upscale_after_thirty_seconds_of_consecutive_decisions() -> None:
    policy = RayServe()
    # Demand 6 on 3 (as above). int(30 / 0.5) = 60: decisions 1..60 at t = 0 .. 29.5 wait,
    # decision 61 at t = 30.0 (60 periods after the first) scales to 6.
    out = run(policy, ticks(0.0, 62), lambda t: [12.0] * 30, ready=3)
    assert out[0.0][0].reason == "ray-serve-upscale-delay"
    assert "upscale decision 1 of 61" in out[0.0][0].detail
    assert out[29.5][0].desired == 3 and out[29.5][1].decision_counter == 60
    assert (out[30.0][0].desired, out[30.0][0].reason) == (6, "ray-serve-scale-up")
    assert out[30.0][1].decision_counter == 0
    # At 6: 12 / (2 x 6) = 1 -> at target.
    assert (out[30.5][0].desired, out[30.5][0].reason) == (6, "ray-serve-hold")


def test_delay_counts_whole_periods() -> None:
    # upscale_delay_s 3 -> int(3 / 0.5) = 6 -> the 7th consecutive decision scales.
    policy = RayServe(RayServeConfig(upscale_delay_s=3, metrics_interval_s=0.5))
    out = run(policy, ticks(0.0, 8), lambda t: [12.0] * 30, ready=3)
    assert [out[t][0].desired for t in ticks(0.0, 8)] == [3] * 6 + [6, 6]
    # 1.2 s -> int(2.4) = 2 -> the 3rd decision.
    policy = RayServe(RayServeConfig(upscale_delay_s=1.2, metrics_interval_s=0.5))
    out = run(policy, ticks(0.0, 3), lambda t: [12.0] * 30, ready=3)
    assert [out[t][0].desired for t in ticks(0.0, 3)] == [3, 3, 6]


def test_direction_flip_resets_the_counter() -> None:
    policy = RayServe(RayServeConfig(metrics_interval_s=0.5))
    up, down = [12.0] * 30, [2.0] * 30
    state = RayServeState(decision_counter=10, total_num_requests=12.0, reported_at=0.0)
    # Counter +10, now a scale-down (total 2 on 3 running: raw 1): reset to 0, then -1.
    decision, state = policy.decide(obs(down, now=0.5, ready=3), state)
    assert (decision.desired, decision.reason, state.decision_counter) == (
        3,
        "ray-serve-downscale-delay",
        -1,
    )
    # And back up: reset, then +1.
    decision, state = policy.decide(obs(up, now=1.0, ready=3), state)
    assert (decision.reason, state.decision_counter) == ("ray-serve-upscale-delay", 1)


def test_upscale_keeps_counting_while_the_wanted_count_changes() -> None:
    # The counter tracks the direction, not the value: wanting 6 then 9 still counts up, and the
    # decision takes the value wanted when the delay has passed.
    policy = RayServe(RayServeConfig(upscale_delay_s=1.0, metrics_interval_s=0.5))
    loads = {0.0: 12.0, 0.5: 12.0, 1.0: 18.0}  # raw 6, 6, then 18 / 2 = 9
    out = run(policy, [0.0, 0.5, 1.0], lambda t: [loads[t]] * 30, ready=3)
    # int(1 / 0.5) = 2: decisions 1 and 2 wait, the 3rd scales to what it wants then: 9.
    assert [out[t][0].desired for t in (0.0, 0.5, 1.0)] == [3, 3, 9]


def test_downscale_after_downscale_delay_and_never_straight_to_zero() -> None:
    cfg = RayServeConfig(min_replicas=0, downscale_delay_s=5, metrics_interval_s=0.5)
    policy = RayServe(cfg)
    # No load on 3 running: raw 0 -> ceil(3 - 3) = 0; not from 1, so the decision is
    # max(1, 0) = 1. int(5 / 0.5) = 10: the 11th decision (t = 5.0) scales 3 -> 1.
    out = run(policy, ticks(0.0, 12), lambda t: [0.0] * 30, ready=3)
    assert out[4.5][0].desired == 3 and out[4.5][1].decision_counter == -10
    assert (out[5.0][0].desired, out[5.0][0].reason) == (1, "ray-serve-scale-down")
    # Then 1 -> 0 needs its own delay; downscale_to_zero_delay_s None -> downscale_delay_s:
    # decisions 1..10 at t = 5.5 .. 10.0 wait, the 11th at t = 10.5 goes to zero.
    out = run(policy, ticks(5.5, 11), lambda t: [0.0] * 30, ready=1)
    assert out[10.0][0].desired == 1
    assert (out[10.5][0].desired, out[10.5][0].reason) == (0, "ray-serve-scale-to-zero")


def test_downscale_to_zero_delay_applies_only_to_one_to_zero() -> None:
    cfg = RayServeConfig(
        min_replicas=0, downscale_delay_s=5, downscale_to_zero_delay_s=1, metrics_interval_s=0.5
    )
    policy = RayServe(cfg)
    # 1 -> 0: int(1 / 0.5) = 2 -> the 3rd decision.
    out = run(policy, ticks(0.0, 3), lambda t: [0.0] * 30, ready=1)
    assert [out[t][0].desired for t in ticks(0.0, 3)] == [1, 1, 0]
    # 2 -> 1 still waits int(5 / 0.5) = 10 periods: the 11th decision.
    out = run(policy, ticks(0.0, 11), lambda t: [0.0] * 30, ready=2)
    assert [out[t][0].desired for t in ticks(0.0, 11)] == [2] * 10 + [1]


def test_default_downscale_delay_is_ten_minutes() -> None:
    policy = RayServe(RayServeConfig(metrics_interval_s=0.5))
    # 4 running, total 2: raw 1 -> 1 (min_replicas 1). 600 / 0.5 = 1200 periods: the 1201st
    # decision, at t = 600.0, scales.
    out = run(policy, ticks(0.0, 1202), lambda t: [2.0] * 30, ready=4)
    assert out[599.5][0].desired == 4
    assert out[600.0][0].desired == 1


# --- metrics reports -----------------------------------------------------------------------


def test_decides_on_the_last_report_until_the_next_push() -> None:
    policy = RayServe(RayServeConfig(upscale_delay_s=0))
    # t = 0: first report, total 4 on 2 running: raw 2 -> at target.
    decision, state = policy.decide(obs([4.0] * 30, now=0.0, ready=2), RayServeState())
    assert (decision.desired, state.reported_at, state.total_num_requests) == (2, 0.0, 4.0)
    # t = 5: load is now 12, but the next push is due at 10: still 4 -> hold.
    decision, state = policy.decide(obs([12.0] * 30, now=5.0, ready=2), state)
    assert (decision.desired, state.reported_at) == (2, 0.0)
    assert "metrics 5s old" in decision.detail
    # t = 10: new report, 12 / (2 x 2) = 3 -> raw 6 -> 6.
    decision, state = policy.decide(obs([12.0] * 30, now=10.0, ready=2), state)
    assert (decision.desired, state.reported_at, state.total_num_requests) == (6, 10.0, 12.0)


# --- bounds --------------------------------------------------------------------------------


def test_max_replicas_caps_the_scale_up() -> None:
    cfg = replace(FAST, max_replicas=5)
    # total 32, target 2, 2 running: raw 16 -> 16 -> clamped to 5 > 2 -> scale up to 5.
    decision, _ = once(cfg, obs([32.0] * 30, ready=2))
    assert (decision.desired, decision.reason) == (5, "ray-serve-scale-up")
    assert "clamped to [1, 5] -> 5" in decision.detail
    # Already at 5: 16 clamped to 5 = target -> held by the bound.
    decision, state = once(cfg, obs([32.0] * 30, ready=5), RayServeState(decision_counter=3))
    assert (decision.desired, decision.reason, state.decision_counter) == (5, "bounds", 0)


def test_min_replicas_floors_the_scale_down() -> None:
    cfg = replace(FAST, min_replicas=2)
    # No load on 2 running: raw 0 -> ceil(2 - 2) = 0 -> clamped to 2 = target -> bounds.
    decision, _ = once(cfg, obs([0.0] * 30, ready=2))
    assert (decision.desired, decision.reason) == (2, "bounds")


def test_target_outside_the_bounds_is_clamped() -> None:
    cfg = RayServeConfig(max_replicas=5)  # default delays: the delay logic keeps the target
    # total 14 on 7 running (target 7): raw 7 clamped to 5 < 7 -> downscale decision 1 of
    # 1201 -> keeps 7 -> apply_bounds clamps it to 5.
    decision, _ = once(cfg, obs([14.0] * 30, ready=7))
    assert (decision.desired, decision.reason) == (5, "bounds")
    assert "target 7 outside bounds -> 5" in decision.detail


# --- zero ----------------------------------------------------------------------------------


def test_scale_from_zero_on_a_poke_skips_the_delay() -> None:
    cfg = RayServeConfig(min_replicas=0)  # upscale_delay_s 30 does not apply from zero
    state = RayServeState(decision_counter=-5)
    # 0 running, a request queued at the handle: max(ceil(1 x 1.0), 0) = 1, counter untouched.
    decision, after = once(cfg, obs([], now=50.0, ready=0, desired=0, poke=True), state)
    assert (decision.desired, decision.reason) == (1, "ray-serve-scale-from-zero")
    assert after.decision_counter == -5
    assert (after.total_num_requests, after.reported_at) == (1.0, 50.0)


def test_scale_from_zero_on_queued_requests_pushes_at_once() -> None:
    cfg = RayServeConfig(min_replicas=0)
    # The last report (t = 95, nothing waiting) is not 10 s old, but at zero replicas with
    # requests queued the handle pushes at once: mean of [0 x 29, 3] = 0.1 > 0 -> 1.
    state = RayServeState(total_num_requests=0.0, reported_at=95.0)
    series = [0.0] * 29 + [3.0]
    decision, after = once(cfg, obs(series, ready=0, desired=0, queue=series), state)
    assert (decision.desired, decision.reason) == (1, "ray-serve-scale-from-zero")
    assert after.reported_at == 100.0


def test_scale_from_zero_uses_the_upscaling_factor() -> None:
    # ceil(1 x 3.0) = 3; ceil(1 x 0.5) = 1.
    for factor, expected in ((3.0, 3), (0.5, 1), (1.5, 2)):
        cfg = RayServeConfig(min_replicas=0, upscaling_factor=factor)
        decision, _ = once(cfg, obs([], ready=0, desired=0, poke=True))
        assert decision.desired == expected


def test_at_zero_ready_keeps_a_target_that_is_already_starting() -> None:
    cfg = RayServeConfig(min_replicas=0)
    # 0 running, target 2 (cold starting), requests waiting: max(1, 2) = 2 -> hold.
    decision, _ = once(cfg, obs([4.0] * 30, ready=0, desired=2, queue=[4.0] * 30))
    assert (decision.desired, decision.reason) == (2, "ray-serve-hold")
    # No requests: the target is kept as it is (no delay logic at zero running replicas).
    decision, _ = once(cfg, obs([0.0] * 30, ready=0, desired=2))
    assert (decision.desired, decision.reason) == (2, "ray-serve-hold")


def test_at_zero_without_requests_stays_at_zero() -> None:
    decision, _ = once(RayServeConfig(min_replicas=0), obs([0.0] * 30, ready=0, desired=0))
    assert (decision.desired, decision.reason) == (0, "ray-serve-hold")
    # With min_replicas 1, apply_bounds raises the target 0 to 1.
    decision, _ = once(RayServeConfig(), obs([0.0] * 30, ready=0, desired=0))
    assert (decision.desired, decision.reason) == (1, "bounds")


def test_idle_to_zero_and_back() -> None:
    cfg = RayServeConfig(
        min_replicas=0, downscale_delay_s=2, upscale_delay_s=30, metrics_interval_s=0.5
    )
    policy = RayServe(cfg)
    # Idle on 1 running: int(2 / 0.5) = 4 -> the 5th decision (t = 2.0) goes to 0.
    out = run(policy, ticks(0.0, 5), lambda t: [0.0] * 30, ready=1)
    assert out[2.0][0].desired == 0
    # A poke at zero: back to 1 at once although upscale_delay_s is 30.
    poked = obs([0.0] * 30, now=9.0, ready=0, desired=0, poke=True)
    decision, _ = policy.decide(poked, out[2.0][1])
    assert (decision.desired, decision.reason) == (1, "ray-serve-scale-from-zero")


# --- missing data --------------------------------------------------------------------------


def test_empty_series_holds_whatever_the_state() -> None:
    state = RayServeState(decision_counter=-1200, total_num_requests=0.0, reported_at=0.0)
    policy = RayServe(RayServeConfig(min_replicas=0))
    # A counter one step from scaling down and a zero report: still no scale-down without data.
    decision, after = policy.decide(obs([], now=1000.0, ready=3), state)
    assert (decision.desired, decision.reason) == (3, "no-data")
    assert after is state
    # At zero without a poke: nothing to act on either.
    decision, _ = policy.decide(obs([], ready=0, desired=1), RayServeState())
    assert (decision.desired, decision.reason) == (1, "no-data")


def test_non_finite_metrics_hold() -> None:
    decision, state = once(FAST, obs([float("nan")] * 30, ready=4))
    assert (decision.desired, decision.reason) == (4, "no-data")
    assert state == RayServeState()


# --- properties ----------------------------------------------------------------------------

configs = st.builds(
    lambda low, span, up, down, to_zero, factors, interval: RayServeConfig(
        min_replicas=low,
        max_replicas=max(1, low + span),
        upscale_delay_s=up,
        downscale_delay_s=down,
        downscale_to_zero_delay_s=to_zero,
        upscaling_factor=factors[0],
        downscaling_factor=factors[1],
        metrics_interval_s=interval,
    ),
    st.integers(0, 4),
    st.integers(0, 8),
    st.sampled_from([0.0, 0.5, 1.0, 3.0, 30.0]),
    st.sampled_from([0.0, 1.0, 2.5, 600.0]),
    st.sampled_from([None, 0.0, 1.0]),
    st.tuples(
        st.sampled_from([None, 0.1, 0.5, 1.0, 2.0, 3.0]),
        st.sampled_from([None, 0.1, 0.5, 1.0, 2.0, 3.0]),
    ),
    st.sampled_from([0.5, 2.0, 10.0]),
)
steps = st.lists(
    st.tuples(
        st.lists(st.floats(0, 500), max_size=40),  # concurrency (possibly empty: no data)
        st.integers(0, 12),  # ready, capped at the target below
        st.booleans(),  # poke
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(cfg=configs, script=steps, start=st.integers(0, 12))
def test_decisions_stay_in_bounds_and_never_drop_without_data(cfg, script, start) -> None:
    policy = RayServe(cfg)
    desired = min(max(start, cfg.min_replicas), cfg.max_replicas)
    state = policy.initial_state(0.0, desired)
    for index, (series, ready, poke) in enumerate(script):
        ready = min(ready, desired)
        observation = obs(
            series, now=index * policy.tick_s, ready=ready, desired=desired, queue=series, poke=poke
        )
        decision, state = policy.decide(observation, state)
        assert cfg.min_replicas <= decision.desired <= cfg.max_replicas
        if not series:
            assert decision.desired >= desired
            if not (ready == 0 and poke):
                assert (decision.desired, decision.reason) == (desired, "no-data")
        desired = decision.desired


@settings(max_examples=200, deadline=None)
@given(
    cfg=configs,
    total=st.floats(0, 1000),
    ready=st.integers(0, 12),
    target=st.integers(0, 12),
    counter=st.integers(-2000, 2000),
)
def test_out_of_bound_targets_are_brought_back(cfg, total, ready, target, counter) -> None:
    # Any current target, in bounds or not, comes back within [min, max] when there is data.
    state = RayServeState(decision_counter=counter)
    decision, _ = RayServe(cfg).decide(
        obs([total] * 30, ready=min(ready, target), desired=target), state
    )
    assert cfg.min_replicas <= decision.desired <= cfg.max_replicas
