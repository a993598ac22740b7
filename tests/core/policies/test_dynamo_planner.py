"""Dynamo's planner (throughput-based, agg mode) against hand-computed cases of its formulas.

`_throughput_agg` (components/src/dynamo/planner/core/throughput_scaling.py):
`demand_rps = predicted num_req / 180`, `desired = max(ceil(demand_rps / engine_rps),
min_endpoint)`, the change capped at 8 around the ready count, the endpoint floor again, then the
GPU ceiling (core/budget.py). Unless a case says otherwise the predictor is the constant one
(`ConstantPredictor`: next = last) and one engine serves 2 requests/s, so the replica count is
`ceil(mean arrival rate / 2)`. The arithmetic is in the comments.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.errors import InputError
from autoscaler.policies import dynamo_planner as dp
from autoscaler.policies.dynamo_planner import (
    DynamoPlanner,
    DynamoPlannerConfig,
    DynamoPlannerState,
    PredictorState,
    make,
)
from autoscaler.policy import Observation

INTERVAL = 180
CONSTANT = DynamoPlanner(DynamoPlannerConfig(load_predictor="constant", engine_rps=2.0))
DUE = DynamoPlannerState(next_adjustment_s=180.0)


def obs(
    rate: float | None,
    *,
    now: float = 180.0,
    ready: int = 1,
    pending: int = 0,
    desired: int | None = None,
    seconds: int = INTERVAL,
) -> Observation:
    """`seconds` of `rate` requests/s (None: no samples); nobody in the system."""
    arrivals = np.zeros(0) if rate is None else np.full(seconds, float(rate))
    return Observation(
        now=now,
        concurrency=np.zeros_like(arrivals),
        arrivals=arrivals,
        queue=np.zeros_like(arrivals),
        ready=ready,
        pending=pending,
        desired=ready + pending if desired is None else desired,
    )


def planner(**settings: object) -> DynamoPlanner:
    base: dict[str, object] = {"load_predictor": "constant", "engine_rps": 2.0}
    base.update(settings)
    return DynamoPlanner(DynamoPlannerConfig(**base))  # type: ignore[arg-type]


# --- shape, defaults, construction ----------------------------------------------------------------


def test_policy_shape() -> None:
    policy = make(8)
    assert (policy.name, policy.tick_s, policy.history_s, policy.pokeable) == (
        "dynamo-planner",
        180.0,
        181.0,  # one interval plus the second before it (the change in concurrency)
        False,
    )
    assert policy.initial_replicas() == 1
    # `initial_tick`: the first throughput tick is one interval after start.
    assert policy.initial_state(20.0, 1) == DynamoPlannerState(next_adjustment_s=200.0)


def test_upstream_defaults() -> None:
    # config/defaults.py (BasePlannerDefaults, SLAPlannerDefaults) and planner_config.py.
    cfg = DynamoPlannerConfig()
    assert cfg.throughput_adjustment_interval_seconds == 180
    assert (cfg.load_predictor, cfg.load_predictor_log1p) == ("arima", False)
    assert (cfg.min_endpoint, cfg.max_throughput_scaling_replicas) == (1, 8)
    assert (cfg.max_gpu_budget, cfg.decode_engine_num_gpu) == (8, 1)
    assert (cfg.min_replicas, cfg.max_replicas) == (1, 8)  # 8 GPUs / 1 GPU per replica
    assert (cfg.max_num_seqs, cfg.engine_rps) == (256, None)  # vLLM's default --max-num-seqs


def test_make_derives_capacity_from_slots() -> None:
    assert make(8).config == DynamoPlannerConfig(max_num_seqs=8)
    assert make(0).config.max_num_seqs == 256  # slots unknown: vLLM's default
    cfg = make(8, min_replicas=0, max_replicas=20, load_predictor="constant").config
    assert (cfg.min_endpoint, cfg.max_gpu_budget, cfg.load_predictor) == (0, 20, "constant")
    # max_replicas is a GPU budget: 20 replicas × 2 GPUs = 40 GPUs.
    cfg = make(8, max_replicas=20, decode_engine_num_gpu=2).config
    assert (cfg.max_gpu_budget, cfg.max_replicas) == (40, 20)
    assert make(8, max_replicas=None).config.max_replicas is None
    assert make(4, engine_rps=3.5).config.engine_rps == 3.5


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: make(-1), "dynamo-planner: container_concurrency must be an integer >= 0"),
        (lambda: make(8, target=3), "dynamo-planner: unknown settings target"),
        (lambda: make(8, min_replicas=1, min_endpoint=1), "min_replicas or min_endpoint"),
        (lambda: make(8, max_replicas=3, max_gpu_budget=3), "max_replicas or max_gpu_budget"),
        (lambda: make(8, max_replicas=-2), "dynamo-planner.max_replicas: must be None"),
    ],
)
def test_make_refuses_bad_settings(call, message) -> None:
    with pytest.raises(InputError, match=message):
        call()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"max_num_seqs": 0}, "dynamo-planner.max_num_seqs: must be an integer >= 1, got 0"),
        ({"engine_rps": 0.0}, "dynamo-planner.engine_rps: must be None or a number > 0"),
        ({"engine_rps": math.inf}, "dynamo-planner.engine_rps: must be None or a number > 0"),
        (
            {"throughput_adjustment_interval_seconds": 0},
            "dynamo-planner.throughput_adjustment_interval_seconds: must be whole seconds >= 1",
        ),
        (
            {"throughput_adjustment_interval_seconds": 2.5},
            "dynamo-planner.throughput_adjustment_interval_seconds: must be whole seconds",
        ),
        (
            {"load_predictor": "kalman"},
            "dynamo-planner.load_predictor: must be 'constant' or 'arima', got 'kalman'",
        ),
        ({"load_predictor_log1p": 1}, "dynamo-planner.load_predictor_log1p: must be true or"),
        ({"min_endpoint": -1}, "dynamo-planner.min_endpoint: must be an integer >= 0"),
        (
            {"max_throughput_scaling_replicas": 0},
            "dynamo-planner.max_throughput_scaling_replicas: must be an integer >= 1, got 0",
        ),
        ({"decode_engine_num_gpu": 0}, "dynamo-planner.decode_engine_num_gpu: must be an int"),
        # 3 endpoints × 2 GPUs = 6 GPUs do not fit a budget of 5 (upstream refuses to start).
        (
            {"min_endpoint": 3, "decode_engine_num_gpu": 2, "max_gpu_budget": 5},
            "dynamo-planner.max_gpu_budget: must be a negative integer \\(no budget\\) or an "
            "integer >= min_endpoint × decode_engine_num_gpu = 6, got 5",
        ),
    ],
)
def test_config_validation(settings, message) -> None:
    with pytest.raises(InputError, match=message):
        DynamoPlannerConfig(**settings)


# --- the formula ----------------------------------------------------------------------------------


def test_scale_up_to_ceil_of_predicted_rate_over_engine_rate() -> None:
    # 5 req/s for 180 s: num_req = 900. Constant predictor: next = 900 -> 900/180 = 5 req/s.
    # ceil(5 / 2) = ceil(2.5) = 3 >= min_endpoint 1; +2 is within the cap of 8; 3 GPUs <= 8.
    decision, state = CONSTANT.decide(obs(5, ready=1), DUE)
    assert (decision.desired, decision.reason) == (3, "dynamo-planner-scale-up")
    assert "observed 900 req/180s" in decision.detail
    assert state.predictor.buffer == (900.0,)
    assert state.next_adjustment_s == 360.0  # now + interval


def test_scale_down_and_hold() -> None:
    # 3 req/s: ceil(3 / 2) = 2 < 4 ready.
    decision, _ = CONSTANT.decide(obs(3, ready=4), DUE)
    assert (decision.desired, decision.reason) == (2, "dynamo-planner-scale-down")
    # 4 req/s: ceil(4 / 2) = 2 = ready: upstream issues no scaling.
    decision, _ = CONSTANT.decide(obs(4, ready=2), DUE)
    assert (decision.desired, decision.reason) == (2, "dynamo-planner-hold")


def test_ceil_rounds_any_fraction_up() -> None:
    # 4.5 req/s: ceil(4.5 / 2) = ceil(2.25) = 3.
    decision, _ = CONSTANT.decide(obs(4.5, ready=3), DUE)
    assert (decision.desired, decision.reason) == (3, "dynamo-planner-hold")


def test_short_window_is_extrapolated_to_the_interval() -> None:
    # Only 60 s visible at 6 req/s: increase(...[180s]) extrapolates, num_req = 6 × 180 = 1080.
    # 1080 / 180 = 6 req/s; ceil(6 / 2) = 3.
    decision, state = CONSTANT.decide(obs(6, ready=1, seconds=60), DUE)
    assert decision.desired == 3
    assert state.predictor.buffer == (1080.0,)


def test_one_adjustment_per_interval() -> None:
    state = CONSTANT.initial_state(0.0, 1)  # due at 180
    decision, after = CONSTANT.decide(obs(5, now=0.0, ready=1), state)
    assert (decision.desired, decision.reason) == (1, "dynamo-planner-wait")
    assert after is state  # nothing observed, nothing predicted
    # 179.4 + 0.5 < 180: still waiting. 179.5 + 0.5 >= 180: due (upstream's 0.5 s tolerance).
    decision, _ = CONSTANT.decide(obs(5, now=179.4, ready=1), state)
    assert decision.reason == "dynamo-planner-wait"
    decision, after = CONSTANT.decide(obs(5, now=179.5, ready=1), state)
    assert (decision.desired, decision.reason) == (3, "dynamo-planner-scale-up")
    assert after.next_adjustment_s == 359.5  # `_next_throughput_s = now + interval`


def test_custom_interval() -> None:
    policy = planner(throughput_adjustment_interval_seconds=60)
    assert (policy.tick_s, policy.history_s) == (60.0, 61.0)
    # 60 s at 5 req/s: num_req = 300; 300 / 60 = 5 req/s; ceil(5 / 2) = 3.
    decision, state = policy.decide(obs(5, now=60.0, seconds=60), policy.initial_state(0.0, 1))
    assert (decision.desired, state.predictor.buffer) == (3, (300.0,))


# --- missing data ---------------------------------------------------------------------------------


@pytest.mark.parametrize("series", [np.zeros(0), np.full(180, np.nan)])
def test_missing_data_holds_and_does_not_feed_the_predictor(series) -> None:
    observation = Observation(
        now=180.0,
        concurrency=np.zeros_like(series),
        arrivals=series,
        queue=np.zeros_like(series),
        ready=5,
        pending=0,
        desired=5,
    )
    fed = DynamoPlannerState(next_adjustment_s=180.0, predictor=PredictorState((900.0,), True))
    decision, state = CONSTANT.decide(observation, fed)
    assert (decision.desired, decision.reason) == (5, "no-data")
    assert state.predictor == fed.predictor
    assert state.next_adjustment_s == 360.0  # the next tick is scheduled all the same


# --- the predictor's idle skip --------------------------------------------------------------------


@pytest.mark.parametrize("predictor", ["constant", "arima"])
def test_leading_zeros_are_skipped_later_zeros_are_kept(predictor) -> None:
    policy = planner(load_predictor=predictor)
    # The idle period after deployment is skipped: the buffer stays empty and predicts 0.
    # An idle interval is 0 requests upstream: ceil(0 / 2) = 0 -> min_endpoint 1.
    decision, state = policy.decide(obs(0, ready=3), DUE)
    assert (decision.desired, decision.reason) == (1, "bounds")
    assert state.predictor.buffer == ()
    # 900 requests, then an idle interval: the 0 is kept; the constant predictor says 0.
    _, state = policy.decide(obs(5, now=360.0, ready=1), state)
    decision, state = policy.decide(obs(0, now=540.0, ready=3), state)
    assert decision.desired == 1
    expected = (0.0,) if predictor == "constant" else (900.0, 0.0)
    assert state.predictor.buffer == expected


# --- scale to and from zero -----------------------------------------------------------------------


def test_scale_to_zero_and_back_with_min_endpoint_zero() -> None:
    policy = planner(min_endpoint=0)
    assert policy.initial_replicas() == 1
    fed = DynamoPlannerState(next_adjustment_s=180.0, predictor=PredictorState((900.0,), True))
    # An idle interval: num_req 0 -> 0 req/s -> ceil(0 / 2) = 0 = max(0, min_endpoint 0).
    decision, state = policy.decide(obs(0, ready=2), fed)
    assert (decision.desired, decision.reason) == (0, "dynamo-planner-scale-down")
    # At zero, 1 req/s arrives (queued): 180 requests -> 1 req/s; ceil(1 / 2) = 1.
    decision, _ = policy.decide(obs(1, now=360.0, ready=0), state)
    assert (decision.desired, decision.reason) == (1, "dynamo-planner-scale-up")


# --- step cap, endpoint floor, GPU budget ---------------------------------------------------------


def test_change_is_capped_at_max_throughput_scaling_replicas() -> None:
    policy = planner(max_gpu_budget=-1)
    # 40 req/s: ceil(40 / 2) = 20; from 2 ready at most 2 + 8 = 10.
    decision, _ = policy.decide(obs(40, ready=2), DUE)
    assert (decision.desired, decision.reason) == (10, "dynamo-planner-rate-limited")
    # 2 req/s: ceil(2 / 2) = 1; from 20 ready at least max(0, 20 - 8) = 12.
    decision, _ = policy.decide(obs(2, ready=20), DUE)
    assert (decision.desired, decision.reason) == (12, "dynamo-planner-rate-limited")


def test_endpoint_recovery_exceeds_the_cap() -> None:
    policy = planner(min_endpoint=12, max_gpu_budget=-1)
    # 2 req/s: ceil(1) = 1 -> max(1, 12) = 12 -> cap min(12, 2 + 8) = 10 -> floor again 12.
    decision, _ = policy.decide(obs(2, ready=2), DUE)
    assert (decision.desired, decision.reason) == (12, "bounds")


def test_gpu_budget_caps_replicas() -> None:
    # 8 GPUs, 2 per replica: at most 4 replicas.
    policy = planner(max_gpu_budget=8, decode_engine_num_gpu=2)
    assert policy.config.max_replicas == 4
    # 20 req/s: ceil(10) = 10 (cap 2 + 8 = 10) -> 20 GPUs > 8 -> floor(8 / 2) = 4.
    decision, _ = policy.decide(obs(20, ready=2), DUE)
    assert (decision.desired, decision.reason) == (4, "bounds")
    # At the ceiling (4 × 2 = 8 GPUs) a scale-up is held.
    decision, _ = policy.decide(obs(20, ready=4), DUE)
    assert (decision.desired, decision.reason) == (4, "bounds")
    # Above it (6 × 2 = 12 > 8) the current count is reconciled down, whatever the demand:
    # 12 req/s would want ceil(6) = 6.
    decision, _ = policy.decide(obs(12, ready=6), DUE)
    assert (decision.desired, decision.reason) == (4, "bounds")


def test_gpu_budget_not_a_multiple_of_the_replica_size() -> None:
    # 7 GPUs, 2 per replica: floor(7 / 2) = 3. From 3 (6 GPUs), 10 req/s wants ceil(5) = 5:
    # 10 GPUs > 7 -> max(min_endpoint, 3) = 3 = ready: no scaling, limited by the budget.
    policy = planner(max_gpu_budget=7, decode_engine_num_gpu=2)
    decision, _ = policy.decide(obs(10, ready=3), DUE)
    assert (decision.desired, decision.reason) == (3, "bounds")


def test_default_budget_is_eight_replicas() -> None:
    # 40 req/s: ceil(20) = 20 -> cap min(20, 2 + 8) = 10 -> 10 GPUs > 8 -> floor(8 / 1) = 8.
    decision, _ = CONSTANT.decide(obs(40, ready=2), DUE)
    assert (decision.desired, decision.reason) == (8, "bounds")
    # At 8 (8 GPUs, the whole budget) the scale-up is held.
    decision, _ = CONSTANT.decide(obs(40, ready=8), DUE)
    assert (decision.desired, decision.reason) == (8, "bounds")


# --- the deployment readiness gate ----------------------------------------------------------------


def test_scaling_is_ignored_while_replicas_are_pending() -> None:
    # 5 req/s wants 3, but 1 of 2 replicas is still starting: the DGD is not Ready and the
    # Kubernetes connector ignores the scaling. The interval still feeds the predictor.
    decision, state = CONSTANT.decide(obs(5, ready=1, pending=1), DUE)
    assert (decision.desired, decision.reason) == (2, "dynamo-planner-not-ready")
    assert "ignoring target 3" in decision.detail
    assert state.predictor.buffer == (900.0,)


# --- engine capacity from slots: Little's law -----------------------------------------------------


def little(rate: float, in_service: float, queue: np.ndarray, *, ready: int) -> Observation:
    """181 s (the interval and the second before it) with `in_service` requests in service."""
    arrivals = np.full(181, float(rate))
    return Observation(
        now=180.0,
        concurrency=in_service + queue,
        arrivals=arrivals,
        queue=queue,
        ready=ready,
        pending=0,
        desired=ready,
    )


SLOTS = DynamoPlanner(
    DynamoPlannerConfig(load_predictor="constant", max_num_seqs=8, max_gpu_budget=-1)
)


def test_engine_rate_is_slots_over_service_time() -> None:
    # 3 req/s, 12 in service, nothing queued: 540 arrive and, the system level unchanged,
    # 540 leave -> 3 req/s; service time = 12 / 3 = 4 s; engine_rps = 8 / 4 = 2 req/s.
    # ceil(3 / 2) = 2.
    decision, state = SLOTS.decide(little(3, 12, np.zeros(181), ready=1), DUE)
    assert (decision.desired, decision.reason) == (2, "dynamo-planner-scale-up")
    assert state.service_time_s == pytest.approx(4.0)
    assert "engine 2 req/s" in decision.detail
    # A fixed engine_rps (upstream's performance-model answer) replaces the measurement:
    # ceil(3 / 1) = 3.
    fixed = DynamoPlanner(replace_config(SLOTS.config, engine_rps=1.0))
    decision, _ = fixed.decide(little(3, 12, np.zeros(181), ready=1), DUE)
    assert decision.desired == 3


def replace_config(cfg: DynamoPlannerConfig, **changes: object) -> DynamoPlannerConfig:
    return replace(cfg, **changes)  # type: ignore[arg-type]


def test_saturated_service_shows_its_true_service_time() -> None:
    # 2 replicas × 8 slots all busy (16 in service) and 6 req/s arriving; the queue grows by
    # 2 a second (q = 2j over the 181 s). Arrived 6 × 180 = 1080; the system grew by
    # 376 - 16 = 360; so 720 left: 4 req/s. Service time = 16 / 4 = 4 s; engine 8 / 4 = 2.
    # ceil(6 / 2) = 3. (Arrivals alone would say 16 / 6 s and keep 2 replicas forever.)
    # With no earlier estimate this busy interval is taken (no request has timed out yet).
    queue = 2.0 * np.arange(181)
    decision, state = SLOTS.decide(little(6, 16, queue, ready=2), DUE)
    assert (decision.desired, decision.reason) == (3, "dynamo-planner-scale-up")
    assert state.service_time_s == pytest.approx(4.0)


def test_busy_interval_does_not_replace_a_service_time() -> None:
    # 1 replica, 8 in service, 100 waiting all along (mean queue 100 >= 1), 3 req/s arriving:
    # the system level is unchanged, so 540 "left" — some of them timed out unserved. That
    # interval alone would say 8 × 180 / 540 = 2.67 s; with 4 s already known it is not
    # trusted: engine 8 / 4 = 2 req/s, ceil(3 / 2) = 2.
    learnt = DynamoPlannerState(next_adjustment_s=180.0, service_time_s=4.0)
    decision, state = SLOTS.decide(little(3, 8, np.full(181, 100.0), ready=1), learnt)
    assert (decision.desired, decision.reason) == (2, "dynamo-planner-scale-up")
    assert state.service_time_s == 4.0
    # A quiet interval does replace it: 12 in service at 3 req/s -> 4 s, whatever was known.
    stale = DynamoPlannerState(next_adjustment_s=180.0, service_time_s=10.0)
    _, state = SLOTS.decide(little(3, 12, np.zeros(181), ready=1), stale)
    assert state.service_time_s == pytest.approx(4.0)


def test_interval_without_departures_keeps_the_last_service_time() -> None:
    # At zero replicas every request waits: nothing in service, nothing leaves. The 4 s
    # learnt earlier gives engine 8 / 4 = 2 req/s; 1 req/s -> ceil(1 / 2) = 1.
    policy = DynamoPlanner(replace_config(SLOTS.config, min_endpoint=0))
    queued = np.arange(181, dtype=float)
    learnt = DynamoPlannerState(next_adjustment_s=180.0, service_time_s=4.0)
    decision, state = policy.decide(little(1, 0, queued, ready=0), learnt)
    assert (decision.desired, decision.reason) == (1, "dynamo-planner-scale-up")
    assert state.service_time_s == 4.0


def test_engine_model_not_ready_holds_but_wakes_a_service_at_zero() -> None:
    policy = DynamoPlanner(replace_config(SLOTS.config, min_endpoint=0))
    queued = np.arange(181, dtype=float)
    # No service time ever measured: upstream holds the current count (floored) ...
    decision, _ = policy.decide(little(1, 0, queued, ready=3), DUE)
    assert (decision.desired, decision.reason) == (3, "dynamo-planner-hold")
    assert "engine model not ready" in decision.detail
    # ... and a positive demand at zero gets one replica, as any sized model would give.
    decision, _ = policy.decide(little(1, 0, queued, ready=0), DUE)
    assert (decision.desired, decision.reason) == (1, "dynamo-planner-scale-up")


# --- the ARIMA predictor (upstream's default) -----------------------------------------------------


ARIMA_CONFIG = DynamoPlannerConfig(load_predictor="arima", engine_rps=2.0, max_gpu_budget=-1)


def feed(counts: list[float]) -> tuple[list[float], PredictorState]:
    """One interval per count through the predictor (`add_data_point`, then `predict_next`)."""
    predictor = PredictorState()
    predicted = []
    for count in counts:
        predictor = dp._add_point(ARIMA_CONFIG, predictor, count)
        value, predictor = dp._predict(ARIMA_CONFIG, predictor)
        predicted.append(value)
    return predicted, predictor


def test_arima_returns_the_last_value_under_five_points() -> None:
    # `minimum_data_points` = 5: before that, the last value.
    predicted, predictor = feed([180, 360, 540, 720])
    assert predicted == [180, 360, 540, 720]
    assert predictor.model is None


def test_arima_constant_history_returns_the_value() -> None:
    # All readings equal: pmdarima would predict 0, so Dynamo returns the value itself.
    predicted, predictor = feed([900] * 6)
    assert predicted == [900] * 6
    assert predictor.model is None


COUNTS = [900.0, 1080.0, 900.0, 1260.0, 1080.0]


def test_arima_collapse_falls_back_to_log1p() -> None:
    # Counts 900, 1080, 900, 1260, 1080. auto_arima: KPSS keeps d = 0 and the stepwise search
    # picks (0,0,0) with an intercept, whose forecast is the mean (1044). p = q = 0 in raw
    # space: Dynamo refits on log1p(y), again (0,0,0) + intercept, so the forecast is
    # expm1(mean(log1p(y))) = (geometric mean of 1 + y) - 1 = 1035.49.
    predicted, predictor = feed(COUNTS)
    expected = math.expm1(float(np.log1p(COUNTS).mean()))
    assert predicted[-1] == pytest.approx(expected, rel=1e-6)
    model = predictor.model
    assert model is not None
    assert (model.order, model.intercept, model.log1p) == ((0, 0, 0), True, True)
    # Fit on nothing but this policy's own history.
    assert model.endog == pytest.approx(tuple(np.log1p(COUNTS)))
    assert predictor.pending == ()
    # Asked again with no new point, the stored parameters forecast the same value.
    again, _ = dp._predict(ARIMA_CONFIG, predictor)
    assert again == pytest.approx(predicted[-1], rel=1e-9)


def test_arima_decision_through_the_policy() -> None:
    # The same five intervals through `decide`: 1035.49 / 180 = 5.753 req/s; ceil(5.753 / 2) = 3.
    policy = DynamoPlanner(ARIMA_CONFIG)
    state = DynamoPlannerState(next_adjustment_s=180.0)
    for k, count in enumerate(COUNTS, start=1):
        decision, state = policy.decide(obs(count / 180, now=180.0 * k, ready=1), state)
    assert (decision.desired, decision.reason) == (3, "dynamo-planner-scale-up")
    assert "predicted (arima) 1035" in decision.detail


def test_arima_order_is_frozen_and_parameters_updated() -> None:
    # After the first fit each interval appends its point and re-estimates from the previous
    # parameters with max(5, 1 // 10) = 5 iterations (pmdarima's `update`). The order chosen
    # on the first five points stays (0,0,0) although auto_arima on all ten would pick
    # (3,0,0); the (0,0,0) log model forecasts the geometric mean of 1 + y of all ten.
    counts = [*COUNTS, 1440.0, 1800.0, 2160.0, 2520.0, 2880.0]
    predicted, predictor = feed(counts)
    model = predictor.model
    assert model is not None
    assert model.order == (0, 0, 0)
    assert dp._auto_arima(np.log1p(counts))[0] == (3, 0, 0)
    assert len(model.endog) == 10
    assert model.params[0] == pytest.approx(float(np.log1p(counts).mean()), rel=1e-4)
    expected = math.expm1(float(np.log1p(counts).mean()))
    assert predicted[-1] == pytest.approx(expected, rel=1e-3)


def test_arima_failure_returns_the_last_value(monkeypatch) -> None:
    def broken(y: np.ndarray) -> object:
        raise ValueError("could not fit a viable ARIMA model")

    monkeypatch.setattr(dp, "_auto_arima", broken)
    predicted, predictor = feed(COUNTS)
    assert predicted[-1] == 1080.0  # the last count
    assert predictor.model is None
    assert predictor.pending == ()


def test_kpss_pvalue_by_hand() -> None:
    # x = 0..4: e = -2..2, cumsum s = -2,-3,-3,-2,0, eta = 26 / 25 = 1.04. Lags
    # trunc(4 (5/100)^0.25) = 1; variance = 10/5 + 2 × (1 - 1/2) × (2 + 0 + 0 + 2) / 5 = 2.8.
    # stat = 1.04 / 2.8 = 0.37143, between 0.347 (p 0.10) and 0.463 (p 0.05):
    # p = 0.10 - (0.37143 - 0.347) / 0.116 × 0.05 = 0.089470 >= 0.05: no differencing.
    assert dp._kpss_pvalue(np.arange(5.0)) == pytest.approx(0.089470, abs=1e-6)
    assert dp._ndiffs(np.arange(5.0)) == 0


def test_kpss_matches_statsmodels() -> None:
    from statsmodels.tsa.stattools import kpss

    rng = np.random.default_rng(3)
    for n in (12, 50, 300):
        for x in (rng.normal(size=n), rng.normal(size=n).cumsum()):
            lags = int(np.trunc(4 * (n / 100) ** 0.25))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # p-values at the table's ends are clamped
                _, pvalue, _, _ = kpss(x, regression="c", nlags=lags)
            assert dp._kpss_pvalue(x) == pytest.approx(pvalue)


def test_ndiffs_orders() -> None:
    # t²: the first difference 2t + 1 is still a trend (KPSS rejects), the second is the
    # constant 2: d = 2. A random walk: d = 1.
    assert dp._ndiffs(np.arange(50.0) ** 2) == 2
    assert dp._ndiffs(np.random.default_rng(0).normal(size=300).cumsum()) == 1


def test_auto_arima_on_a_drift() -> None:
    # 10, 13, ..., 157: d = 1 leaves the constant 3, so auto_arima returns (0,1,0) with an
    # intercept (a drift): the forecast is 157 + 3 = 160.
    order, intercept, result = dp._auto_arima(np.arange(50.0) * 3 + 10)
    assert (order, intercept) == ((0, 1, 0), True)
    assert float(result.forecast(1)[0]) == pytest.approx(160.0, abs=1e-3)


# --- properties -----------------------------------------------------------------------------------


@st.composite
def configs(draw: st.DrawFn, predictor: str = "constant") -> DynamoPlannerConfig:
    min_endpoint = draw(st.integers(0, 4))
    gpu = draw(st.integers(1, 3))
    budget = draw(st.one_of(st.just(-1), st.integers(min_endpoint * gpu, 40)))
    return DynamoPlannerConfig(
        load_predictor=predictor,
        engine_rps=draw(st.one_of(st.none(), st.floats(0.1, 50))),
        max_num_seqs=draw(st.integers(1, 16)),
        min_endpoint=min_endpoint,
        max_gpu_budget=budget,
        decode_engine_num_gpu=gpu,
        max_throughput_scaling_replicas=draw(st.integers(1, 10)),
    )


ticks = st.lists(
    st.tuples(
        st.one_of(st.none(), st.floats(0, 200)),  # arrival rate, None: no samples
        st.floats(0, 100),  # requests in service
        st.floats(0, 50),  # queued
        st.integers(0, 3),  # pending replicas
    ),
    min_size=1,
    max_size=8,
)


def check_bounds_and_holds(cfg: DynamoPlannerConfig, sequence: list, start: int) -> None:
    policy = DynamoPlanner(cfg)
    lower, upper = cfg.min_endpoint, cfg.max_replicas
    desired = min(max(start, lower), upper) if upper is not None else max(start, lower)
    state = policy.initial_state(0.0, desired)
    for k, (rate, in_service, queued, pending) in enumerate(sequence, start=1):
        pending = min(pending, desired)
        if rate is None:
            series = np.zeros(0)
        else:
            series = np.full(181, rate)
        observation = Observation(
            now=180.0 * k,
            concurrency=np.full_like(series, in_service + queued),
            arrivals=series,
            queue=np.full_like(series, queued),
            ready=desired - pending,
            pending=pending,
            desired=desired,
        )
        decision, state = policy.decide(observation, state)
        assert decision.desired >= lower
        if upper is not None:
            assert decision.desired <= upper
        if rate is None:  # an empty series never scales (down or at all)
            assert (decision.desired, decision.reason) == (desired, "no-data")
        desired = decision.desired


@settings(max_examples=200, deadline=None)
@given(cfg=configs(), sequence=ticks, start=st.integers(0, 30))
def test_decisions_stay_within_bounds_and_hold_without_data(cfg, sequence, start) -> None:
    check_bounds_and_holds(cfg, sequence, start)


@settings(max_examples=20, deadline=None)
@given(cfg=configs(predictor="arima"), sequence=ticks, start=st.integers(0, 30))
def test_arima_decisions_stay_within_bounds_and_hold_without_data(cfg, sequence, start) -> None:
    check_bounds_and_holds(cfg, sequence, start)


def test_a_profiled_service_time_sizes_the_engine_from_the_start() -> None:
    """Upstream's pre-deployment sweep gives its performance model a capacity before any
    traffic: 8 slots at 0.5 s per request -> 8 / 0.5 = 16 requests/s per replica."""
    planner = dp.make(8, profiled_service_s=0.5)
    assert planner.config.engine_rps == 16.0
    given = dp.make(8, profiled_service_s=0.5, engine_rps=3.0)
    assert given.config.engine_rps == 3.0  # a capacity given outright wins
    with pytest.raises(InputError, match="profiled_service_s"):
        dp.make(8, profiled_service_s=0.0)
