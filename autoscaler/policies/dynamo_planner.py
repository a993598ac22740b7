"""NVIDIA Dynamo's planner, predictive mode for an aggregated deployment, as a pure policy.

A baseline to measure Leadtime against: every adjustment interval Dynamo's planner predicts the
next interval's request count with its load predictor and sets
`replicas = ceil(predicted requests/s / requests/s one engine serves)`, bounded by its endpoint
floor, its per-observation step cap and its GPU budget. This module follows the planner of
`ai-dynamo/dynamo` in its current layout (`components/src/dynamo/planner/`, 2025–2026):

- `core/state_machine.py`: the cadence (the first throughput tick one interval after start,
  each next one `now + interval`; ticks within `_MERGE_TOLERANCE_S` = 0.5 s of due run),
  observe-then-predict (`_observe_traffic` feeds the predictor, then `_advance_throughput`
  predicts), the worker inventory (`_num_d_workers` = ready workers) and the budget helpers;
- `core/throughput_scaling.py` (`_throughput_agg`, `_cap_throughput_replicas`):
  `demand_rps = predicted num_req / interval`,
  `desired = max(ceil(demand_rps / engine_rps), min_endpoint)`, the change capped at
  `max_throughput_scaling_replicas` around the ready count, `min_endpoint` again (endpoint
  recovery may exceed the cap), then the GPU ceiling; a result equal to the ready count is no
  scaling; an engine model that cannot size the tick holds the current count (floored);
- `core/budget.py` (`guard_single_scaling_budget`, `proportional_clamp_single`): the GPU
  ceiling `max_gpu_budget` over `decode_engine_num_gpu` GPUs per replica; it never reverses a
  movement, and a current count above the ceiling is reconciled down to it;
- `core/load/predictors.py` (`BasePredictor`, `ConstantPredictor`, `ARIMAPredictor`):
  non-finite readings count as 0; leading zeros (the idle period after deployment) are skipped
  until the first non-zero reading; with an empty buffer the prediction is 0;
- `core/perf_model/agg.py` (`find_best_engine_agg_rps`): upstream derives `engine_rps` by
  Little's law, `best batch size / (osl × wall time per iteration)`, the batch bounded by the
  engine's `max_num_seqs`;
- `config/defaults.py`, `config/planner_config.py`, `docs/components/planner/
  planner-config-reference.mdx`, `docs/design_docs/planner_design.md`: the defaults and names;
- `environment/metrics_provider/prometheus_traffic_provider.py`, `monitoring/traffic_metrics.py`:
  `num_req` is the frontend's request counter increase over the interval; an idle interval
  counts as 0 requests (`normalize_idle_nans`), missing metrics skip the tick;
- `kubernetes_connector.py` (now `connectors/kubernetes.py`, `set_component_replicas`): while
  the DynamoGraphDeployment is not Ready the planner's scaling is ignored.

and, for the ARIMA predictor, `alkaline-ml/pmdarima` (`pmdarima/arima/auto.py`,
`_auto_solvers.py`, `arima.py`, `stationarity.py`, `utils.py`). Older planners
(`utils/planner_core.py`) skipped idle intervals and applied TTFT/ITL correction factors, and
their aggregated mode (`utils/agg_planner.py`) had only the reactive loop; the current one,
followed here, sizes aggregated engines predictively, counts an idle interval as 0 requests
and has no correction factors.

Names. The brief calls this the planner's load-based mode. Upstream's `PlannerConfig` names the
predictive request-rate loop *throughput-based scaling* (`enable_throughput_scaling`, on by
default, `throughput_adjustment_interval_seconds`), and *load-based scaling*
(`enable_load_scaling`) is a separate reactive loop on forward-pass metrics (queued prefill
tokens, KV-cache utilisation) every 5 s — that loop is not modelled here. This policy is the
throughput-based loop alone, `mode: agg`, Kubernetes environment.

Defaults (upstream's, under upstream's names): `throughput_adjustment_interval_seconds` 180;
`load_predictor` "arima" (pmdarima's `auto_arima` with its defaults; also "constant");
`load_predictor_log1p` False; `min_endpoint` 1 (0 permits scale to zero);
`max_throughput_scaling_replicas` 8; `max_gpu_budget` 8 GPUs (negative: no budget);
`decode_engine_num_gpu` 1. Not pokeable: the planner has no activator.

Our per-second observation against upstream's metrics, at each adjustment over the last
`interval` seconds (fewer early in a run):
- `num_req` = mean of `arrivals` × interval (Prometheus' `increase(...[interval])`, which also
  extrapolates a short window); so with the constant predictor `demand_rps` is the interval's
  mean arrival rate;
- `engine_rps`: upstream's performance model (profiled, then tuned online) answers how many
  requests/s one engine serves within the TTFT/ITL SLA. Set `engine_rps` to give that answer
  directly. Left unset, it is derived as upstream's agg model does, by Little's law:
  `engine_rps = max_num_seqs / service time`, where `max_num_seqs` is the batch an engine keeps
  within the SLA (the main knob: lowering it is what a tighter SLA does upstream) and the
  service time per request is measured from the interval: mean requests in service
  (`concurrency − queue`) / requests leaving the system (`Σ arrivals − Δ concurrency`). It is
  measured from departures, not arrivals, so a saturated service still shows its true service
  time. Requests that time out in the queue would pass for departures, so once an estimate
  exists only intervals with less than one request waiting on average replace it (upstream's
  model, fed by the engines' own forward passes, is blind to the queue too); the first
  estimate is taken from any interval. An interval in which not one whole request left keeps
  the previous estimate; the window's edges make a light interval's estimate noisy.
  Before any estimate the model is "not ready": upstream then holds the current count
  (floored at `min_endpoint`); because upstream's model is always bootstrapped by its
  pre-deployment sweep, a positive demand at zero replicas still gets one replica here, the
  least any sized model would give;
- "Deployment not Ready" is `pending > 0` (replicas requested and not yet ready): the decision
  is computed and the predictor fed, but the count is held;
- `ready` is upstream's worker count (`_num_d_workers`, ready/available replicas);
- an empty or non-finite series is a skipped tick: hold with reason `no-data`; the predictor is
  not fed (upstream: no traffic observation).

The ARIMA predictor (`load_predictor="arima"`, upstream's default) fits nothing but this
policy's own history of interval counts, kept in the state: with fewer than 5 points, or all
equal, it returns the last (first) value; at the first prediction with more it runs
pmdarima's `auto_arima` with pmdarima's defaults — differencing order by its KPSS test
(α 0.05, lags ⌊4 (n/100)^¼⌋, `max_d` 2), the Hyndman–Khandakar stepwise search by AIC
(start (2,d,2), (1,d,1) under 10 points; `max_p = max_q = min(5, ⌊n/3⌋)`; intercept when
d ≤ 1; inverse roots within 0.01 of the unit circle rejected), every candidate a statsmodels
`SARIMAX` fitted by L-BFGS with 50 iterations, exactly the calls pmdarima makes; an order
with p = q = 0 is refitted on log1p(y) (Dynamo's collapse fallback). The order is then frozen;
each later interval appends its point and re-estimates from the previous parameters with
`max(5, new points // 10)` iterations (pmdarima's `update`), then forecasts one step, clipped at
0 (expm1 in log space). Any failure gives the last value, as upstream (here a non-finite
forecast counts as a failure). The history grows by one point per interval (480 a day) and
each interval costs one SARIMAX fit over it (tens of ms; a simulated day about 15 s). Ties
between equal AICs are broken by search order here (pmdarima: by fit time).

Not modelled, and why: the reactive load-based loop (it needs per-engine forward-pass metrics
this observation does not have); ISL/OSL prediction, KV hit rate, speculative decoding and the
regression/AIC performance model (replaced by `engine_rps` or `max_num_seqs` and the measured
service time, since our simulated replica's latency does not depend on its batch); the Kalman
and Prophet predictors (not the default); warm-up traces and advisory mode (operational);
`min_gpu_budget` (default -1, off), power budgets (not supported in agg mode upstream);
disaggregated and prefill/decode-only modes; the virtual and global-planner connectors.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from autoscaler.errors import InputError
from autoscaler.policy import Decision, Observation

NAME = "dynamo-planner"
CONSTANT, ARIMA = "constant", "arima"
"""The load predictors modelled (upstream also has "kalman" and "prophet")."""
VLLM_DEFAULT_MAX_NUM_SEQS = 256
"""vLLM's default `--max-num-seqs` (1024 on ≥70 GiB GPUs other than A100); Dynamo's default
backend is vLLM. Used when the service's slots are unknown."""
TICK_TOLERANCE_S = 0.5
"""`PlannerStateMachine._MERGE_TOLERANCE_S`: a cadence due within this of a tick runs in it."""
CLEAN_QUEUE = 1.0
"""Mean requests waiting below which an interval's service time is trusted over an earlier
one: requests that time out in the queue leave the system unserved and would otherwise pass
for departures, making the engine look faster than it is."""
MAX_RAW_REPLICAS = float(2**31)
"""Bound on `demand_rps / engine_rps` before `ceil`, so an extreme ratio stays an integer."""
ARIMA_MIN_POINTS = 5
"""`ARIMAPredictor`'s `minimum_data_points`."""
KPSS_TABLE = (0.347, 0.463, 0.574, 0.739)
KPSS_P = (0.10, 0.05, 0.025, 0.01)
"""KPSS level-stationarity critical values and p-values (pmdarima `KPSSTest`, from R tseries)."""


def _fail(field_name: str, allowed: str, value: object) -> None:
    raise InputError(f"{NAME}.{field_name}: must be {allowed}, got {value!r}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True, kw_only=True)
class DynamoPlannerConfig:
    """Planner settings under Dynamo's names, with Dynamo's defaults (`PlannerConfig`)."""

    max_num_seqs: int = VLLM_DEFAULT_MAX_NUM_SEQS
    """Concurrent requests one engine serves within the SLA: the per-replica capacity and the
    main knob. Upstream's agg model takes the largest batch ≤ the engine's `max_num_seqs` that
    meets `ttft_ms`/`itl_ms`; `engine_rps = max_num_seqs / service time`."""
    engine_rps: float | None = None
    """Requests/s one engine serves within the SLA, when known (upstream's performance-model
    answer); None derives it from `max_num_seqs` and the measured service time."""
    throughput_adjustment_interval_seconds: int = 180
    load_predictor: str = ARIMA
    load_predictor_log1p: bool = False
    min_endpoint: int = 1
    max_throughput_scaling_replicas: int = 8
    max_gpu_budget: int = 8
    """GPUs all replicas may use; negative: no budget."""
    decode_engine_num_gpu: int = 1

    def __post_init__(self) -> None:
        if not (_is_int(self.max_num_seqs) and self.max_num_seqs >= 1):
            _fail("max_num_seqs", "an integer >= 1", self.max_num_seqs)
        rps = self.engine_rps
        if rps is not None and not (
            isinstance(rps, int | float) and math.isfinite(rps) and rps > 0
        ):
            _fail("engine_rps", "None or a number > 0 (requests/s per replica)", rps)
        interval = self.throughput_adjustment_interval_seconds
        if not (_is_int(interval) and interval >= 1):
            _fail("throughput_adjustment_interval_seconds", "whole seconds >= 1", interval)
        if self.load_predictor not in (CONSTANT, ARIMA):
            _fail("load_predictor", f"{CONSTANT!r} or {ARIMA!r}", self.load_predictor)
        if not isinstance(self.load_predictor_log1p, bool):
            _fail("load_predictor_log1p", "true or false", self.load_predictor_log1p)
        self._check_bounds()

    def _check_bounds(self) -> None:
        if not (_is_int(self.min_endpoint) and self.min_endpoint >= 0):
            _fail("min_endpoint", "an integer >= 0 (0 permits scale to zero)", self.min_endpoint)
        step = self.max_throughput_scaling_replicas
        if not (_is_int(step) and step >= 1):
            _fail("max_throughput_scaling_replicas", "an integer >= 1", step)
        if not (_is_int(self.decode_engine_num_gpu) and self.decode_engine_num_gpu >= 1):
            _fail("decode_engine_num_gpu", "an integer >= 1", self.decode_engine_num_gpu)
        budget = self.max_gpu_budget
        floor = self.min_endpoint * self.decode_engine_num_gpu
        if not (_is_int(budget) and (budget < 0 or budget >= floor)):
            _fail(
                "max_gpu_budget",
                f"a negative integer (no budget) or an integer >= min_endpoint × "
                f"decode_engine_num_gpu = {floor}",
                budget,
            )

    @property
    def min_replicas(self) -> int:
        return self.min_endpoint

    @property
    def max_replicas(self) -> int | None:
        """Replicas the GPU budget allows; None without a budget."""
        if self.max_gpu_budget < 0:
            return None
        return self.max_gpu_budget // self.decode_engine_num_gpu


@dataclass(frozen=True, slots=True)
class ArimaModel:
    """The fitted ARIMA kept between intervals: order, parameters and the data it was fit on."""

    order: tuple[int, int, int]
    intercept: bool
    log1p: bool
    """Fitted on log1p(y) (requested, or the (0,d,0) collapse fallback)."""
    params: tuple[float, ...]
    endog: tuple[float, ...]
    """Model-space values the parameters were estimated on (pmdarima's `arima_res_.data`)."""


@dataclass(frozen=True, slots=True)
class PredictorState:
    """The `num_req` predictor's buffer (`BasePredictor.data_buffer`) and ARIMA model."""

    buffer: tuple[float, ...] = ()
    """Readings kept after the idle skip (the constant predictor keeps only the last)."""
    seen_nonzero: bool = False
    model: ArimaModel | None = None
    pending: tuple[float, ...] = ()
    """Readings not yet in the ARIMA model (`_pending_raw_updates`)."""


@dataclass(frozen=True, slots=True)
class DynamoPlannerState:
    """What the planner process keeps in memory between ticks."""

    next_adjustment_s: float
    """When the next throughput tick is due (`_next_throughput_s`)."""
    predictor: PredictorState = field(default_factory=PredictorState)
    service_time_s: float | None = None
    """Latest measured seconds in service per request (None: the engine model is not ready)."""


@dataclass(frozen=True, slots=True)
class _Traffic:
    num_req: float
    service_time_s: float | None
    clean: bool
    """Little waiting in the interval (mean queue < `CLEAN_QUEUE`): no timed-out request can
    pass for a served one, so its service time may replace an earlier one."""


@dataclass(frozen=True, slots=True)
class DynamoPlanner:
    """Dynamo's throughput-based planner (agg mode) as a `Policy`; one decision per interval."""

    config: DynamoPlannerConfig = field(default_factory=DynamoPlannerConfig)

    @property
    def name(self) -> str:
        return NAME

    @property
    def tick_s(self) -> float:
        return float(self.config.throughput_adjustment_interval_seconds)

    @property
    def history_s(self) -> float:
        # One interval, plus the second before it for the change in concurrency.
        return float(self.config.throughput_adjustment_interval_seconds + 1)

    @property
    def pokeable(self) -> bool:
        return False

    def initial_replicas(self) -> int:
        """The deployment's own replica count (the planner does not set it): 1, or the floor."""
        initial = max(1, self.config.min_endpoint)
        ceiling = self.config.max_replicas
        return initial if ceiling is None else min(initial, ceiling)

    def initial_state(self, now: float, ready: int) -> DynamoPlannerState:
        """`initial_tick`: the first throughput tick is one interval after start."""
        return DynamoPlannerState(
            next_adjustment_s=now + self.config.throughput_adjustment_interval_seconds
        )

    def decide(
        self, observation: Observation, state: DynamoPlannerState
    ) -> tuple[Decision, DynamoPlannerState]:
        cfg = self.config
        obs = observation
        if obs.now + TICK_TOLERANCE_S < state.next_adjustment_s:
            detail = f"next adjustment at {state.next_adjustment_s:g}s"
            return Decision(obs.desired, f"{NAME}-wait", detail), state
        state = replace(
            state, next_adjustment_s=obs.now + cfg.throughput_adjustment_interval_seconds
        )
        traffic = _traffic(cfg, obs)
        if traffic is None:
            detail = "no traffic metrics for the interval: keeping the current scale"
            return Decision(obs.desired, "no-data", detail), state
        predictor = _add_point(cfg, state.predictor, traffic.num_req)
        predicted, predictor = _predict(cfg, predictor)
        service_time = state.service_time_s
        if traffic.service_time_s is not None and (traffic.clean or service_time is None):
            service_time = traffic.service_time_s
        state = replace(state, predictor=predictor, service_time_s=service_time)
        return self._plan(obs, traffic.num_req, predicted, service_time), state

    def _plan(
        self, obs: Observation, observed: float, predicted: float, service_time: float | None
    ) -> Decision:
        """`_throughput_agg`, then the Kubernetes connector's readiness gate."""
        cfg = self.config
        current = obs.ready
        demand_rps = predicted / cfg.throughput_adjustment_interval_seconds
        engine_rps = _engine_rps(cfg, service_time)
        detail = (
            f"observed {observed:g} req/{cfg.throughput_adjustment_interval_seconds}s, "
            f"predicted ({cfg.load_predictor}) {predicted:.4g} -> {demand_rps:.4g} req/s"
        )
        if engine_rps is None:
            raw = 1 if current == 0 and demand_rps > 0 else current
            detail += f"; engine model not ready (no service time yet): {raw}"
        else:
            # A count beyond any cap is the same as a very large one (the step cap follows).
            raw = math.ceil(min(demand_rps / engine_rps, MAX_RAW_REPLICAS))
            detail += f" / engine {engine_rps:.4g} req/s -> ceil = {raw}"
        floored = max(raw, cfg.min_endpoint)
        stepped = _cap_step(cfg, floored, current)
        final, reconciled = _gpu_ceiling(cfg, current, max(stepped, cfg.min_endpoint))
        detail += f"; ready {current}"
        if obs.pending > 0:
            detail += f"; deployment not ready ({obs.pending} pending): ignoring target {final}"
            return Decision(obs.desired, f"{NAME}-not-ready", detail)
        reason = _reason(raw, floored, stepped, final, current, reconciled)
        if final == current:
            return Decision(obs.desired, reason, detail)
        return Decision(final, reason, detail + f" -> {final}")


def _reason(
    raw: int, floored: int, stepped: int, final: int, current: int, reconciled: bool
) -> str:
    """What set the count: the sizing itself, the step cap, or a bound (endpoint floor, GPU
    ceiling, or reconciling a count above the ceiling)."""
    if reconciled:
        return "bounds"
    if final == raw:
        if final > current:
            return f"{NAME}-scale-up"
        if final < current:
            return f"{NAME}-scale-down"
        return f"{NAME}-hold"
    if final == stepped != floored:
        return f"{NAME}-rate-limited"
    return "bounds"


def _cap_step(cfg: DynamoPlannerConfig, desired: int, current: int) -> int:
    """`_cap_throughput_replicas`: at most `max_throughput_scaling_replicas` either way."""
    limit = cfg.max_throughput_scaling_replicas
    return min(max(desired, max(0, current - limit)), current + limit)


def _gpu_ceiling(cfg: DynamoPlannerConfig, current: int, proposed: int) -> tuple[int, bool]:
    """`guard_single_scaling_budget` without a GPU floor; True when the current count was
    above the ceiling and is reconciled down to it."""
    budget, gpu = cfg.max_gpu_budget, cfg.decode_engine_num_gpu
    if budget < 0:
        return proposed, False
    if current * gpu > budget:
        return _clamp_single(cfg, current), True
    if current * gpu >= budget and proposed > current:
        return current, False
    final = _clamp_single(cfg, proposed)
    if not min(current, proposed) <= final <= max(current, proposed):
        return current, False
    return final, False


def _clamp_single(cfg: DynamoPlannerConfig, desired: int) -> int:
    """`proportional_clamp_single` with a ceiling only (the config guarantees it fits the
    `min_endpoint` footprint)."""
    budget, gpu = cfg.max_gpu_budget, cfg.decode_engine_num_gpu
    if desired * gpu <= budget:
        return desired
    return max(cfg.min_endpoint, budget // gpu)


def _engine_rps(cfg: DynamoPlannerConfig, service_time: float | None) -> float | None:
    if cfg.engine_rps is not None:
        return float(cfg.engine_rps)
    if service_time is None:
        return None
    rate = cfg.max_num_seqs / service_time
    return rate if math.isfinite(rate) and rate > 0 else None


# --- the traffic observation ----------------------------------------------------------------------


def _traffic(cfg: DynamoPlannerConfig, obs: Observation) -> _Traffic | None:
    """The interval's request count and, when measurable, the mean service time."""
    interval = cfg.throughput_adjustment_interval_seconds
    n = min(interval, obs.arrivals.size)
    if n == 0:
        return None
    arrivals = obs.arrivals[-n:]
    num_req = float(arrivals.mean()) * interval
    if not math.isfinite(num_req):
        return None
    queued = float(obs.queue[-n:].mean()) if obs.queue.size >= n else math.inf
    clean = queued < CLEAN_QUEUE
    return _Traffic(num_req, _service_time(obs, n, float(arrivals.sum())), clean)


def _service_time(obs: Observation, n: int, arrived: float) -> float | None:
    """Little's law on the requests in service: mean in service / departures per second."""
    conc, queue = obs.concurrency, obs.queue
    if conc.size < n or queue.size < n:
        return None
    window = conc[-n:]
    before = float(conc[-n - 1]) if conc.size > n else float(window[0])
    departed = arrived - (float(window[-1]) - before)
    in_service = float(np.clip(window - queue[-n:], 0.0, None).mean())
    if not (math.isfinite(departed) and math.isfinite(in_service)):
        return None
    if departed < 1 or in_service <= 0:  # not one whole request served: nothing to measure
        return None
    service_time = in_service * n / departed
    return service_time if math.isfinite(service_time) else None


# --- the load predictor (core/load/predictors.py) -------------------------------------------------


def _add_point(cfg: DynamoPlannerConfig, ps: PredictorState, value: float) -> PredictorState:
    """`add_data_point`: non-finite is 0; leading zeros are skipped."""
    if not math.isfinite(value):
        value = 0.0
    if value == 0 and not ps.seen_nonzero:
        return ps
    seen = ps.seen_nonzero or value != 0
    if cfg.load_predictor == CONSTANT:
        return replace(ps, buffer=(value,), seen_nonzero=seen)
    raw = max(0.0, value)
    return replace(ps, buffer=(*ps.buffer, raw), seen_nonzero=seen, pending=(*ps.pending, raw))


def _predict(cfg: DynamoPlannerConfig, ps: PredictorState) -> tuple[float, PredictorState]:
    """`predict_next` of the configured predictor."""
    last = ps.buffer[-1] if ps.buffer else 0.0
    if cfg.load_predictor == CONSTANT:
        return float(last), ps
    if len(ps.buffer) < ARIMA_MIN_POINTS:
        return float(last), ps
    if len(set(ps.buffer)) == 1:
        return float(ps.buffer[0]), ps
    model = ps.model
    try:
        if model is None:
            model, result = _first_fit(cfg, np.asarray(ps.buffer, dtype=float))
        elif ps.pending:
            new = np.asarray(ps.pending, dtype=float)
            model, result = _update(model, np.log1p(new) if model.log1p else new)
        else:
            result = _filter(model)
        forecast = float(result.forecast(1)[0])
        value = max(0.0, math.expm1(forecast)) if model.log1p else max(0.0, forecast)
        if not math.isfinite(value):
            raise ValueError("non-finite forecast")
    except Exception:
        # Upstream logs "ARIMA prediction failed ... using last value"; the pending points are
        # dropped, and a model updated before the failure stays updated.
        return float(last), replace(ps, model=model, pending=())
    return value, replace(ps, model=model, pending=())


def _first_fit(cfg: DynamoPlannerConfig, raw: np.ndarray) -> tuple[ArimaModel, Any]:
    """The first fit: auto-ARIMA in the requested space; an order with p = q = 0 in raw space
    is refitted on log1p(y), keeping the raw model if that fails."""
    y = np.log1p(raw) if cfg.load_predictor_log1p else raw
    order, intercept, result = _auto_arima(y)
    log1p = cfg.load_predictor_log1p
    if order[0] == 0 and order[2] == 0 and not log1p:
        try:
            y_log = np.log1p(raw)
            order_log, intercept_log, result_log = _auto_arima(y_log)
            y, order, intercept, result, log1p = y_log, order_log, intercept_log, result_log, True
        except Exception:
            log1p = False
    return _model(order, intercept, log1p, result, y), result


def _update(model: ArimaModel, new: np.ndarray) -> tuple[ArimaModel, Any]:
    """pmdarima `ARIMA.update`: refit on all data from the previous parameters."""
    endog = np.concatenate([np.asarray(model.endog, dtype=float), new])
    maxiter = max(5, new.size // 10)
    result = _sarimax_fit(
        endog, model.order, model.intercept, np.asarray(model.params), maxiter=maxiter
    )
    return _model(model.order, model.intercept, model.log1p, result, endog), result


def _filter(model: ArimaModel) -> Any:
    """Results for the stored parameters without re-estimating (no new points)."""
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sarimax = SARIMAX(
            np.asarray(model.endog, dtype=float),
            order=model.order,
            trend="c" if model.intercept else None,
        )
        return sarimax.filter(np.asarray(model.params))


def _model(
    order: tuple[int, int, int], intercept: bool, log1p: bool, result: Any, endog: np.ndarray
) -> ArimaModel:
    params = tuple(float(v) for v in np.asarray(result.params, dtype=float))
    return ArimaModel(order, intercept, log1p, params, tuple(float(v) for v in endog))


def _sarimax_fit(
    y: np.ndarray,
    order: tuple[int, int, int],
    intercept: bool,
    start_params: np.ndarray | None = None,
    *,
    maxiter: int = 50,
) -> Any:
    """pmdarima `ARIMA._fit`: SARIMAX with trend 'c' for an intercept, L-BFGS, warnings off."""
    from statsmodels.tsa.statespace.sarimax import SARIMAX
    from threadpoolctl import threadpool_limits

    with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="blas"):
        warnings.simplefilter("ignore")
        model = SARIMAX(y, order=order, trend="c" if intercept else None)
        return model.fit(start_params=start_params, method="lbfgs", maxiter=maxiter, disp=0)


# --- pmdarima's auto_arima with its defaults, non-seasonal (m = 1) --------------------------------


def _is_constant(x: np.ndarray) -> bool:
    return bool(np.all(x == x[0]))


def _kpss_pvalue(x: np.ndarray) -> float:
    """pmdarima `KPSSTest(null='level', lshort=True)`: Newey–West variance with
    ⌊4 (n/100)^¼⌋ lags, p-value interpolated in the KPSS table and clamped to its ends."""
    n = x.size
    e = x - x.mean()
    s = np.cumsum(e)
    eta = float(s @ s) / n**2
    lags = int(np.trunc(4 * (n / 100) ** 0.25))
    variance = float(e @ e) / n
    extra = sum((1 - i / (lags + 1)) * float(e[i:] @ e[:-i]) for i in range(1, lags + 1))
    variance += 2 * extra / n
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = eta / variance
    return float(np.interp(stat, KPSS_TABLE, KPSS_P))


def _ndiffs(x: np.ndarray, alpha: float = 0.05, max_d: int = 2) -> int:
    """pmdarima `ndiffs(test='kpss')`: difference while the KPSS test rejects stationarity."""
    d = 0
    if _is_constant(x):
        return d
    pval = _kpss_pvalue(x)
    if math.isnan(pval):
        return 0
    while pval < alpha and d < max_d:
        d += 1
        x = np.diff(x)
        if _is_constant(x):
            return d
        pval = _kpss_pvalue(x)
        if math.isnan(pval):
            return d - 1
    return d


def _candidate(y: np.ndarray, order: tuple[int, int, int], intercept: bool) -> tuple[Any, float]:
    """`_fit_candidate_model`: fit, AIC, and the inverse-root test (a bad fit scores inf)."""
    from numpy.linalg import LinAlgError

    try:
        result = _sarimax_fit(y, order, intercept)
    except (LinAlgError, ValueError):
        return None, math.inf
    ic = float(result.aic)
    p, _, q = order
    max_invroot = 0.0
    # As pmdarima's `_root_test`: the MA check, when it runs, replaces the AR one.
    if p > 0:
        max_invroot = max(0.0, *np.abs(1 / np.asarray(result.arroots)))
    if q > 0 and math.isfinite(ic):
        max_invroot = max(0.0, *np.abs(1 / np.asarray(result.maroots)))
    if max_invroot > 1 - 1e-2:
        ic = math.inf
    return result, ic


class _Stepwise:
    """pmdarima `_StepwiseFitWrapper.solve` for m = 1 (no seasonal moves)."""

    def __init__(self, y: np.ndarray, d: int, max_p: int, max_q: int, intercept: bool) -> None:
        self.y, self.d, self.max_p, self.max_q = y, d, max_p, max_q
        self.intercept = intercept
        self.fits: dict[tuple[int, int, bool], tuple[Any, float]] = {}
        self.best: tuple[int, int, bool] | None = None
        self.k = 0

    def fit(self, p: int, q: int, constant: bool | None = None) -> bool:
        """`_do_fit`: True when this new model is the first viable one or improves the AIC."""
        key = (p, q, self.intercept if constant is None else constant)
        if key in self.fits:
            return False
        self.k += 1
        result, ic = _candidate(self.y, (p, self.d, q), key[2])
        self.fits[key] = (result, ic)
        if result is None or math.isinf(ic):
            return False
        if self.best is None or ic < self.fits[self.best][1]:
            self.best = key
            return True
        return False

    def solve(self, p: int, q: int, max_k: int = 100) -> None:
        self.fit(p, q)
        if self.fit(0, 0):
            p = q = 0
        if self.max_p > 0 and self.fit(1, 0):
            p, q = 1, 0
        if self.max_q > 0 and self.fit(0, 1):
            p, q = 0, 1
        if self.intercept and self.fit(0, 0, constant=False):
            p = q = 0
        start_k = 0
        while start_k < self.k < max_k:
            start_k = self.k
            for dp, dq in ((-1, 0), (0, -1), (1, 0), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1)):
                np_, nq = p + dp, q + dq
                if 0 <= np_ <= self.max_p and 0 <= nq <= self.max_q and self.k < max_k:
                    if self.fit(np_, nq):
                        p, q = np_, nq
                        break
            else:
                if self.k < max_k and self.fit(p, q, constant=not self.intercept):
                    self.intercept = not self.intercept

    def best_fit(self) -> tuple[tuple[int, int, int], bool, Any]:
        """`_sort_and_filter_fits`: the lowest finite AIC (ties: search order)."""
        viable = [(ic, key, res) for key, (res, ic) in self.fits.items() if math.isfinite(ic)]
        if not viable:
            raise ValueError("could not fit a viable ARIMA model")
        _, (p, q, constant), result = min(viable, key=lambda item: item[0])
        return (p, self.d, q), constant, result


def _auto_arima(y: np.ndarray) -> tuple[tuple[int, int, int], bool, Any]:
    """pmdarima `auto_arima(y)` with its defaults (m = 1, stepwise, AIC, KPSS)."""
    n = y.size
    if _is_constant(y):
        result, ic = _candidate(y, (0, 0, 0), False)
        if result is None or not math.isfinite(ic):
            raise ValueError("could not fit a constant model")
        return (0, 0, 0), False, result
    max_p = max_q = min(5, n // 3)
    start_p, start_q = min(2, max_p), min(2, max_q)
    d = _ndiffs(y)
    dx = np.diff(y, n=d) if d else y
    if _is_constant(dx):
        result, ic = _candidate(y, (0, d, 0), True)
        if result is None or not math.isfinite(ic):
            raise ValueError("could not fit a drift model")
        return (0, d, 0), True, result
    if n < 10:
        start_p, start_q = min(start_p, 1), min(start_q, 1)
    search = _Stepwise(y, d, max_p, max_q, intercept=d in (0, 1))
    search.solve(start_p, start_q)
    return search.best_fit()


# --- construction ---------------------------------------------------------------------------------


def make(container_concurrency: int, **overrides: Any) -> DynamoPlanner:
    """Dynamo's planner with upstream defaults for a service with `container_concurrency` slots.

    An operator serving an LLM with N request slots runs its engine with `--max-num-seqs N`;
    Dynamo reads that as the engine's `max_num_seqs`, and its agg performance model takes the
    largest batch ≤ N that meets the TTFT/ITL SLA as one engine's capacity
    (`engine_rps = batch / service time`). A replica that holds its latency up to all N slots
    therefore has `max_num_seqs = N`. N = 0 (unknown) uses vLLM's default, 256.

    `overrides` are `DynamoPlannerConfig` fields; `min_replicas` and `max_replicas` are also
    accepted, as `min_endpoint` and as a GPU budget of `max_replicas × decode_engine_num_gpu`
    (`max_replicas=None`: no budget). `profiled_service_s`, a request's mean time in service
    measured beforehand, stands for upstream's pre-deployment profiling sweep: it gives
    `engine_rps = max_num_seqs / profiled_service_s` from the start, as the sweep gives
    upstream's performance model (without it, the service time is measured from the traffic).
    """
    profiled = overrides.pop("profiled_service_s", None)
    if not (_is_int(container_concurrency) and container_concurrency >= 0):
        raise InputError(
            f"{NAME}: container_concurrency must be an integer >= 0 (0 = unknown), "
            f"got {container_concurrency!r}"
        )
    known = {f.name for f in fields(DynamoPlannerConfig)}
    unknown = sorted(set(overrides) - known - {"min_replicas", "max_replicas"})
    if unknown:
        raise InputError(f"{NAME}: unknown settings {', '.join(unknown)}")
    settings: dict[str, Any] = {"max_num_seqs": container_concurrency or VLLM_DEFAULT_MAX_NUM_SEQS}
    if "min_replicas" in overrides:
        if "min_endpoint" in overrides:
            raise InputError(f"{NAME}: give min_replicas or min_endpoint, not both")
        settings["min_endpoint"] = overrides.pop("min_replicas")
    if "max_replicas" in overrides:
        if "max_gpu_budget" in overrides:
            raise InputError(f"{NAME}: give max_replicas or max_gpu_budget, not both")
        ceiling = overrides.pop("max_replicas")
        gpu = overrides.get("decode_engine_num_gpu", 1)
        if ceiling is not None and not (_is_int(ceiling) and ceiling >= 0):
            _fail("max_replicas", "None (no budget) or an integer >= 0", ceiling)
        settings["max_gpu_budget"] = -1 if ceiling is None else ceiling * gpu
    settings.update(overrides)
    if profiled is not None and settings.get("engine_rps") is None:
        if not (isinstance(profiled, int | float) and math.isfinite(profiled) and profiled > 0):
            _fail("profiled_service_s", "None or a number of seconds > 0", profiled)
        settings["engine_rps"] = settings["max_num_seqs"] / profiled
    return DynamoPlanner(DynamoPlannerConfig(**settings))
