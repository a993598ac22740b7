"""Ray Serve's default autoscaling policy (the replica queue-length policy), as a pure policy.

A baseline, so it follows Ray's own code (ray-project/ray), not a description of it:

- python/ray/serve/autoscaling_policy.py: `replica_queue_length_autoscaling_policy` and
  `_core_replica_queue_length_policy` (desired = current replicas x error ratio), the cold-start
  fast path `_get_cold_start_scale_up_replicas`, and what `_apply_autoscaling_config` wraps
  around every policy: `_apply_scaling_factors` (upscaling/downscaling "gain" on the distance to
  the current count, with the decrement-by-one when a small factor leaves a scale-down stuck),
  `_apply_bounds`, and `_apply_delay_logic` (the signed decision counter). In Ray 2.x releases
  the same arithmetic sits in `_calculate_desired_num_replicas` (smoothed error ratio, then
  min/max) followed by `_apply_delay_logic`.
- python/ray/serve/config.py `AutoscalingConfig`: the fields below, their defaults and their
  validation (`get_upscaling_factor` / `get_downscaling_factor` fall back to `smoothing_factor`).
- python/ray/serve/_private/constants.py: `CONTROL_LOOP_INTERVAL_S = 0.1`,
  `DEFAULT_TARGET_ONGOING_REQUESTS = 2`.
- python/ray/serve/_private/autoscaling_state.py: `get_total_num_requests` (ongoing requests
  at replicas plus requests queued at handles, time-averaged over `look_back_period_s`),
  `current_num_replicas = len(running_replicas)`, and `apply_bounds` on the policy's answer.
- python/ray/serve/_private/router.py: handles push their metrics every `metrics_interval_s`,
  and at once when the deployment has no running replica and a request is queued
  (`should_send_scaled_to_zero_optimized_push`).
- doc/source/serve/advanced-guides/advanced-autoscaling.md: the documented behaviour and
  defaults, and the advice to set `max_ongoing_requests` 20-50 % above the target.

One `decide` is one pass of the Serve controller's control loop for one deployment:

1. **Metrics.** The controller decides on the last report the handles pushed. Our report is
   `total_num_requests` = the mean of `concurrency` (requests in the system: queued + in
   service, time-averaged per second) over the last `look_back_period_s` seconds, which is Ray's
   time-weighted mean of running plus handle-queued requests. A new report is taken every
   `metrics_interval_s` (10 s), and at once while no replica is ready and requests are waiting
   (`queue` > 0 in the last second, or a poke, which stands for one queued request not yet in
   the series). Between reports the controller keeps deciding on the old one, as Ray's does.
2. **From zero** (`ready == 0`, Ray's `current_num_replicas == 0`): with requests reported,
   want `max(ceil(1 x upscaling factor), current target)` at once, bypassing the delays; with
   none, keep the current target. The decision counter is left as it was.
3. **Otherwise**, with `ready` running replicas: error ratio = total / (target_ongoing_requests x
   ready), raw desired = ready x ratio; the scaling factor for that direction moves the count
   from `ready` by factor x (raw - ready), rounded up, and one lower if a scale-down would be
   stuck at `ready`; then `[min_replicas, max_replicas]`.
4. **Delays** against the current target (`desired`, Ray's `target_num_replicas`): a counter
   counts consecutive control-loop periods that want more (positive) or fewer (negative); it
   resets when the direction flips or nothing is wanted. The change is made when the counter
   passes `int(upscale_delay_s / tick)` or `int(delay / tick)` for a scale-down, where the delay
   is `downscale_to_zero_delay_s` (if set) for 1 -> 0 and `downscale_delay_s` otherwise; a
   scale-down from more than one replica stops at 1.
5. **Bounds** again on the result (the controller's `apply_bounds`).

Defaults (`AutoscalingConfig`): target_ongoing_requests 2, min_replicas 1, initial_replicas
None (= min_replicas), upscale_delay_s 30, downscale_delay_s 600, downscale_to_zero_delay_s
None, smoothing_factor 1, upscaling_factor and downscaling_factor None (= smoothing_factor),
metrics_interval_s 10, look_back_period_s 30. `max_replicas` is 100, the value of
`num_replicas="auto"` (`AutoscalingConfig.default()`) and of Ray Serve LLM's deployments: the
field's own default, 1, turns autoscaling off.

The tick. Ray's control loop runs every `CONTROL_LOOP_INTERVAL_S` = 0.1 s; our metrics have
one-second resolution, so the policy runs every 0.5 s (`control_loop_interval_s`, the nearest
value >= 0.5 s). Delays are counted in ticks as Ray counts them, `int(delay / tick)` periods, so
a delay that is a multiple of 0.5 s acts after the same time as in Ray (30 s: 60 periods of
0.5 s instead of 300 of 0.1 s). Ray's latest code measures the same delays with wall-clock
timestamps instead of a count, which gives the same result at a regular tick.

Not modelled, and why:

- Missing metrics. Ray counts a deployment without reports as 0 requests and would scale it
  down; Leadtime never scales down on missing data, so an empty series holds (`no-data`).
- `target_capacity` (capacity-adjusted bounds during cluster-wide rollouts, and
  `initial_replicas` as the lower bound while it rises): there is no such thing here.
- Several handles/proxies pushing at different moments: one report stream stands for them all.
- `aggregation_function` max/min of the newest releases (the default, mean, is modelled), the
  instantaneous queued count of older "simple mode" releases, custom and application-level
  policies, the async-inference queue, gang scheduling, and the deprecated aliases
  (`upscale_smoothing_factor`, `downscale_smoothing_factor`,
  `target_num_ongoing_requests_per_replica`).
- `max_ongoing_requests` is the replica's routing cap, part of the data plane (the simulator's
  request slots), not of the autoscaler; `make` uses it to derive the target.
- The Ray cluster autoscaler that adds nodes for new replicas: the simulator's cluster does that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

from autoscaler.errors import InputError
from autoscaler.policies.kpa import TARGET_UTILIZATION_DEFAULT
from autoscaler.policy import Decision, Observation, window_mean

NAME = "ray-serve"
DEFAULT_TARGET_ONGOING_REQUESTS = 2.0
"""`DEFAULT_TARGET_ONGOING_REQUESTS` (serve/_private/constants.py; 1.0 before Ray 2.32)."""
CONTROL_LOOP_INTERVAL_S = 0.1
"""Ray's control loop period (serve/_private/constants.py); see `TICK_S`."""
TICK_S = 0.5
"""Our control loop period: the nearest value >= 0.5 s to Ray's 0.1 s (1 s metrics)."""
AUTO_MAX_REPLICAS = 100
"""`max_replicas` of `num_replicas="auto"` / `AutoscalingConfig.default()`."""
SLOTS_TARGET_SHARE = TARGET_UTILIZATION_DEFAULT
"""`make`: target_ongoing_requests = 70 % of the replica's request slots (see `make`)."""
_EPS = 1e-9


def _fail(field: str, allowed: str, value: object) -> None:
    raise InputError(f"{NAME}.{field}: must be {allowed}, got {value!r}")


def _number(value: object) -> float | None:
    """`value` as a finite float, or None when it is not a finite number (bools are not)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive(field: str, value: object) -> None:
    number = _number(value)
    if number is None or number <= 0:
        _fail(field, "a number > 0", value)


def _non_negative(field: str, value: object) -> None:
    number = _number(value)
    if number is None or number < 0:
        _fail(field, "a number of seconds >= 0", value)


@dataclass(frozen=True, slots=True, kw_only=True)
class RayServeConfig:
    """`AutoscalingConfig` under Ray's names and with its defaults (durations in seconds)."""

    target_ongoing_requests: float = DEFAULT_TARGET_ONGOING_REQUESTS
    """The main knob: requests (running + queued) per replica the autoscaler aims at."""
    min_replicas: int = 1
    max_replicas: int = AUTO_MAX_REPLICAS
    initial_replicas: int | None = None
    """Replicas at deployment; None means min_replicas."""
    upscale_delay_s: float = 30.0
    downscale_delay_s: float = 600.0
    downscale_to_zero_delay_s: float | None = None
    """Delay of the 1 -> 0 step; None means downscale_delay_s."""
    smoothing_factor: float = 1.0
    upscaling_factor: float | None = None
    downscaling_factor: float | None = None
    """Gains on each scale-up / scale-down; None means smoothing_factor."""
    metrics_interval_s: float = 10.0
    """How often handles push their metrics to the controller."""
    look_back_period_s: float = 30.0
    """Window of the time-averaged ongoing requests (whole seconds here)."""
    control_loop_interval_s: float = TICK_S
    """Our tick (Ray's CONTROL_LOOP_INTERVAL_S is 0.1 s; see the module docstring)."""

    def __post_init__(self) -> None:
        self._check_replicas()
        _positive("target_ongoing_requests", self.target_ongoing_requests)
        for name in ("smoothing_factor", "upscaling_factor", "downscaling_factor"):
            value = getattr(self, name)
            if value is not None:
                _positive(name, value)
        for name in ("upscale_delay_s", "downscale_delay_s", "downscale_to_zero_delay_s"):
            value = getattr(self, name)
            if value is not None:
                _non_negative(name, value)
        _positive("metrics_interval_s", self.metrics_interval_s)
        look_back = _number(self.look_back_period_s)
        if look_back is None or look_back < 1 or not look_back.is_integer():
            _fail(
                "look_back_period_s",
                "whole seconds >= 1 (the metrics are per second)",
                self.look_back_period_s,
            )
        tick = _number(self.control_loop_interval_s)
        if tick is None or tick < TICK_S:
            _fail(
                "control_loop_interval_s",
                f"seconds >= {TICK_S} (the metrics have 1 s resolution)",
                self.control_loop_interval_s,
            )

    def _check_replicas(self) -> None:
        if not (_is_int(self.min_replicas) and self.min_replicas >= 0):
            _fail("min_replicas", "an integer >= 0", self.min_replicas)
        if not (_is_int(self.max_replicas) and self.max_replicas >= 1):
            _fail("max_replicas", "an integer >= 1", self.max_replicas)
        if self.max_replicas < self.min_replicas:
            _fail("max_replicas", f">= min_replicas={self.min_replicas}", self.max_replicas)
        initial = self.initial_replicas
        if initial is not None and not (
            _is_int(initial) and self.min_replicas <= initial <= self.max_replicas
        ):
            _fail(
                "initial_replicas",
                f"None or an integer in [min_replicas={self.min_replicas}, "
                f"max_replicas={self.max_replicas}]",
                initial,
            )

    @property
    def upscale_factor(self) -> float:
        """`get_upscaling_factor`: upscaling_factor, else smoothing_factor."""
        return self.upscaling_factor or self.smoothing_factor

    @property
    def downscale_factor(self) -> float:
        """`get_downscaling_factor`: downscaling_factor, else smoothing_factor."""
        return self.downscaling_factor or self.smoothing_factor

    def periods(self, delay_s: float) -> int:
        """Consecutive periods a decision must be made and exceeded: `int(delay / tick)`."""
        return int(delay_s / self.control_loop_interval_s)


@dataclass(frozen=True, slots=True)
class RayServeState:
    """What the Serve controller keeps between control-loop passes for one deployment."""

    decision_counter: int = 0
    """`SERVE_AUTOSCALING_DECISION_COUNTERS_KEY`: > 0 consecutive upscale decisions, < 0
    consecutive downscale decisions."""
    total_num_requests: float | None = None
    """The last pushed metrics report (running + queued, look-back mean); None before one."""
    reported_at: float | None = None
    """When that report was pushed."""


@dataclass(frozen=True, slots=True)
class RayServe:
    """Ray Serve's default autoscaling policy as a `Policy`: 0.5 s ticks, pokeable from zero
    (the handle's immediate metrics push when a request waits at a deployment with no
    replica)."""

    config: RayServeConfig = RayServeConfig()

    @property
    def name(self) -> str:
        return NAME

    @property
    def tick_s(self) -> float:
        return float(self.config.control_loop_interval_s)

    @property
    def history_s(self) -> float:
        return float(self.config.look_back_period_s)

    @property
    def pokeable(self) -> bool:
        return True

    def initial_replicas(self) -> int:
        """`initial_replicas`, which defaults to `min_replicas`."""
        cfg = self.config
        return cfg.min_replicas if cfg.initial_replicas is None else cfg.initial_replicas

    def initial_state(self, now: float, ready: int) -> RayServeState:
        """A freshly registered deployment: `policy_state = {}` and no metrics yet."""
        return RayServeState()

    def decide(
        self, observation: Observation, state: RayServeState
    ) -> tuple[Decision, RayServeState]:
        """One control-loop pass: metrics report, policy, scaling factors, bounds, delays."""
        cfg, obs = self.config, observation
        if obs.concurrency.size == 0 and not (obs.ready == 0 and obs.poke):
            return Decision(obs.desired, "no-data", "no metrics yet: keeping the target"), state
        reported = _report(cfg, obs, state)
        if reported is None:
            return Decision(obs.desired, "no-data", "non-finite metrics: keeping the target"), state
        if obs.ready == 0:
            return _from_zero(cfg, obs, reported)
        return _running(cfg, obs, reported)


def make(container_concurrency: int, **overrides: Any) -> RayServe:
    """Ray Serve's policy with upstream defaults, for a service with `container_concurrency`
    request slots per replica (0: unknown).

    How an operator of an LLM server with N slots (vLLM's `max_num_seqs`) configures it: the
    replica takes at most N requests at once (`max_ongoing_requests = N`), and Ray's guide says
    to set `max_ongoing_requests` 20-50 % above `target_ongoing_requests`. We take
    `target_ongoing_requests = 0.7 x N` (the cap is 43 % above it), which is also the per-replica
    load the KPA and HPA baselines aim at (Knative's 70 % target utilization), so the baselines
    differ in how they scale, not in what they aim at. With N unknown, Ray's default target of
    2 applies. `overrides` set any `RayServeConfig` field (target_ongoing_requests included).
    """
    if not (_is_int(container_concurrency) and container_concurrency >= 0):
        _fail("container_concurrency", "an integer >= 0 (0 = unknown)", container_concurrency)
    known = {f.name for f in fields(RayServeConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise InputError(
            f"{NAME}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    target = (
        container_concurrency * SLOTS_TARGET_SHARE
        if container_concurrency
        else DEFAULT_TARGET_ONGOING_REQUESTS
    )
    settings: dict[str, Any] = {"target_ongoing_requests": target, **overrides}
    return RayServe(RayServeConfig(**settings))


# --- metrics: router.py pushes, autoscaling_state.py `get_total_num_requests` -------------------


def _report(cfg: RayServeConfig, obs: Observation, st: RayServeState) -> RayServeState | None:
    """The state with the report the controller decides on: a new one when a push is due (every
    metrics_interval_s, or at once at zero replicas with requests waiting), else the last one.
    None when the series gives no finite number."""
    waiting = obs.poke or (obs.queue.size > 0 and float(obs.queue[-1]) > 0)
    due = (
        st.reported_at is None
        or obs.now - st.reported_at + _EPS >= cfg.metrics_interval_s
        or (obs.ready == 0 and waiting)
    )
    if not due:
        return st
    total = window_mean(obs.concurrency, int(cfg.look_back_period_s)) or 0.0
    if not math.isfinite(total):
        return None
    if obs.ready == 0 and obs.poke:
        total = max(total, 1.0)  # the poking request, queued at the handle, not yet in the series
    return replace(st, total_num_requests=total, reported_at=obs.now)


def _bounded(cfg: RayServeConfig, replicas: int) -> int:
    """`_apply_bounds` / `apply_bounds`."""
    return max(cfg.min_replicas, min(cfg.max_replicas, replicas))


def _age(obs: Observation, st: RayServeState) -> str:
    age = obs.now - (st.reported_at if st.reported_at is not None else obs.now)
    return f"metrics {age:g}s old"


# --- the policy: autoscaling_policy.py -----------------------------------------------------------


def _from_zero(
    cfg: RayServeConfig, obs: Observation, st: RayServeState
) -> tuple[Decision, RayServeState]:
    """`_get_cold_start_scale_up_replicas`: no delay, the decision counter untouched."""
    total = st.total_num_requests or 0.0
    target = obs.desired
    want = max(math.ceil(1 * cfg.upscale_factor), target) if total > 0 else target
    final = _bounded(cfg, want)
    head = f"0 ready, {total:.2f} requests waiting ({_age(obs, st)})"
    if final != want:
        reason = "bounds"
        detail = f"{head}; {want} clamped to [{cfg.min_replicas}, {cfg.max_replicas}]"
    elif want > target:
        reason, detail = "ray-serve-scale-from-zero", f"{head}: cold start {target} -> {want}"
    else:
        reason, detail = "ray-serve-hold", f"{head}: keeping {target}"
    return Decision(final, reason, detail), st


def _scaling_factors(cfg: RayServeConfig, raw: float, current: int) -> int:
    """`_apply_scaling_factors`: the gain of the direction on the distance from `current`,
    rounded up; one lower when a scale-down would otherwise be stuck at `current`."""
    delta = raw - current
    factor = cfg.upscale_factor if delta > 0 else cfg.downscale_factor
    scaled = math.ceil(current + factor * delta)
    if math.ceil(raw) < current and scaled == current:
        scaled -= 1
    return scaled


def _delay(cfg: RayServeConfig, desired: int, target: int, counter: int) -> tuple[int, int, str]:
    """`_apply_delay_logic`: (decision, next counter, what the counter says)."""
    if desired > target:
        counter = max(counter, 0) + 1
        needed = cfg.periods(cfg.upscale_delay_s)
        if counter > needed:
            return desired, 0, f"upscale after {counter} periods"
        return target, counter, f"upscale decision {counter} of {needed + 1}"
    if desired < target:
        counter = min(counter, 0) - 1
        if target == 1:
            to_zero = cfg.downscale_to_zero_delay_s
            delay = cfg.downscale_delay_s if to_zero is None else to_zero
        else:
            delay = cfg.downscale_delay_s
            desired = max(1, desired)  # only 1 -> 0 reaches zero
        needed = cfg.periods(delay)
        if counter < -needed:
            return desired, 0, f"downscale after {-counter} periods"
        return target, counter, f"downscale decision {-counter} of {needed + 1}"
    return target, 0, "at target"


def _running(
    cfg: RayServeConfig, obs: Observation, st: RayServeState
) -> tuple[Decision, RayServeState]:
    """`_core_replica_queue_length_policy`, then `_apply_default_params` and `apply_bounds`."""
    ready, target = obs.ready, obs.desired
    total = st.total_num_requests or 0.0
    error_ratio = total / (cfg.target_ongoing_requests * ready)
    raw = ready * error_ratio
    scaled = _scaling_factors(cfg, raw, ready)
    bounded = _bounded(cfg, scaled)
    decided, counter, delay_note = _delay(cfg, bounded, target, st.decision_counter)
    final = _bounded(cfg, decided)
    detail = (
        f"{total:.2f} ongoing / {ready} ready = {total / ready:.2f} per replica, target "
        f"{cfg.target_ongoing_requests:g} -> {raw:.2f} -> {scaled}"
    )
    if bounded != scaled:
        detail += f", clamped to [{cfg.min_replicas}, {cfg.max_replicas}] -> {bounded}"
    detail += f"; {delay_note}; {_age(obs, st)}"
    if final != decided:
        reason = "bounds"
        detail += f"; target {decided} outside bounds -> {final}"
    elif final > target:
        reason = "ray-serve-scale-up"
    elif final < target:
        reason = "ray-serve-scale-to-zero" if final == 0 else "ray-serve-scale-down"
    elif bounded > target:
        reason = "ray-serve-upscale-delay"
    elif bounded < target:
        reason = "ray-serve-downscale-delay"
    elif bounded != scaled:
        reason = "bounds"
    else:
        reason = "ray-serve-hold"
    next_state = st if counter == st.decision_counter else replace(st, decision_counter=counter)
    return Decision(final, reason, detail), next_state
