"""The Knative Pod Autoscaler (KPA) with Knative's defaults, as a pure Leadtime policy.

Leadtime's reactive safety net and the yardstick baseline must be *Knative's* KPA, not an
approximation of it, so that claims like "predictive beats KPA" hold against the real thing.
One `decide` call plays, for one 2-second tick, what three Knative parts do together
(knative/serving):

- the decider's `Scale(now)` (pkg/autoscaler/scaling/autoscaler.go): stable and panic windows,
  scale-up and scale-down rates, activation scale, panic mode, scale-down delay and the
  excess burst capacity (EBC);
- the KPA reconciler's scaler (pkg/reconciler/autoscaling/kpa/scaler.go, `scale` and
  `handleScaleToZero`): min/max/initial scale and the scale-to-zero timing;
- the rest of the reconcile (pkg/reconciler/autoscaling/kpa/kpa.go): the ServerlessService
  (SKS) mode from the EBC, and `computeActiveCondition`.

What Knative keeps in the decider's memory and in PodAutoscaler / SKS status lives in the
immutable `KpaState`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from autoscaler.errors import SettingError
from autoscaler.policy import Decision, Observation, window_mean

CONTAINER_CONCURRENCY_TARGET_DEFAULT = 100.0
"""`container-concurrency-target-default` (pkg/autoscaler/config/config.go)."""
RPS_TARGET_DEFAULT = 200.0
"""`requests-per-second-target-default` (pkg/autoscaler/config/config.go)."""
TARGET_UTILIZATION_DEFAULT = 0.7
"""`container-concurrency-target-percentage` 70 (pkg/autoscaler/config/config.go): the share of
a pod's target a service aims at, and the share every baseline here aims at by default."""
CONCURRENCY, RPS = "concurrency", "rps"
"""The KPA's two metrics (the `autoscaling.knative.dev/metric` annotation)."""
TARGET_MIN = 0.01
"""`autoscaling.TargetMin`: no per-pod target below this (pkg/apis/autoscaling/register.go)."""
WINDOW_MIN_S = 6
WINDOW_MAX_S = 3600
"""`autoscaling.WindowMin` / `WindowMax`: allowed stable windows, delays and retentions."""
ACTIVATION_TIMEOUT_BUFFER_S = 30.0
"""`activationTimeoutBuffer` in kpa/scaler.go, added to the progress deadline."""

ACTIVE = "active"
ACTIVATING = "activating"
INACTIVE = "inactive"
"""The PA `Active` condition: True, Unknown, False (apis/autoscaling/v1alpha1/pa_lifecycle.go)."""
SERVE = "Serve"
PROXY = "Proxy"
"""SKS modes: pods receive traffic directly, or through the activator."""


def _fail(field: str, allowed: str, value: object) -> None:
    raise SettingError("kpa", (field,), f"must be {allowed}, got {value!r}")


def _is_whole(value: float) -> bool:
    return math.isfinite(value) and float(value).is_integer()


@dataclass(frozen=True, slots=True)
class KpaConfig:
    """KPA settings under Knative's names, with Knative's defaults (`config-autoscaler`).

    Durations are seconds. `target=None` means "from container_concurrency, else 100" for the
    concurrency metric and "200" for rps; `max_scale=0` means unbounded;
    `container_concurrency=0` means unlimited.
    """

    metric: str = CONCURRENCY
    """What the windows average: requests in the system (`concurrency`) or arrivals/s (`rps`)."""
    container_concurrency: int = 0
    target: float | None = None
    target_utilization: float = TARGET_UTILIZATION_DEFAULT
    stable_window_s: int = 60
    panic_window_percentage: float = 10.0
    panic_threshold_percentage: float = 200.0
    max_scale_up_rate: float = 1000.0
    max_scale_down_rate: float = 2.0
    target_burst_capacity: float = 211.0
    activation_scale: int = 1
    scale_down_delay_s: float = 0.0
    enable_scale_to_zero: bool = True
    scale_to_zero_grace_period_s: float = 30.0
    scale_to_zero_pod_retention_period_s: float = 0.0
    min_scale: int = 0
    max_scale: int = 0
    initial_scale: int = 1
    allow_zero_initial_scale: bool = False
    progress_deadline_s: float = 600.0
    tick_s: float = 2.0

    def __post_init__(self) -> None:
        self._check_target()
        self._check_windows()
        self._check_rates()
        self._check_scales()
        self._check_durations()

    def _check_target(self) -> None:
        # Ranges from pkg/apis/autoscaling/annotation_validation.go and config.go `validate`.
        if self.metric not in (CONCURRENCY, RPS):
            _fail("metric", f"{CONCURRENCY!r} or {RPS!r}", self.metric)
        if self.container_concurrency < 0:
            _fail(
                "container_concurrency",
                "an integer >= 0 (0 = unlimited)",
                self.container_concurrency,
            )
        if self.target is not None and not (
            math.isfinite(self.target) and self.target >= TARGET_MIN
        ):
            _fail("target", f"a number >= {TARGET_MIN}", self.target)
        if not (0.01 <= self.target_utilization <= 1.0):
            _fail(
                "target_utilization", "a fraction in [0.01, 1] (1%-100%)", self.target_utilization
            )

    def _check_windows(self) -> None:
        if not (
            _is_whole(self.stable_window_s) and WINDOW_MIN_S <= self.stable_window_s <= WINDOW_MAX_S
        ):
            _fail(
                "stable_window_s",
                f"whole seconds in [{WINDOW_MIN_S}, {WINDOW_MAX_S}]",
                self.stable_window_s,
            )
        if not (1 <= self.panic_window_percentage <= 100):
            _fail("panic_window_percentage", "in [1, 100]", self.panic_window_percentage)
        if not (110 <= self.panic_threshold_percentage <= 1000):
            _fail("panic_threshold_percentage", "in [110, 1000]", self.panic_threshold_percentage)

    def _check_rates(self) -> None:
        for field in ("max_scale_up_rate", "max_scale_down_rate"):
            value = getattr(self, field)
            if not (math.isfinite(value) and value > 1.0):
                _fail(field, "a number greater than 1.0", value)
        tbc = self.target_burst_capacity
        if not (math.isfinite(tbc) and (tbc >= 0 or tbc == -1)):
            _fail("target_burst_capacity", "-1 (activator always in path), 0, or > 0", tbc)

    def _check_scales(self) -> None:
        if self.min_scale < 0:
            _fail("min_scale", "an integer >= 0", self.min_scale)
        if self.max_scale < 0:
            _fail("max_scale", "an integer >= 0 (0 = unbounded)", self.max_scale)
        if self.max_scale != 0 and self.max_scale < self.min_scale:
            _fail("max_scale", f">= min_scale={self.min_scale} (or 0 = unbounded)", self.max_scale)
        lowest_initial = 0 if self.allow_zero_initial_scale else 1
        if self.initial_scale < lowest_initial:
            _fail(
                "initial_scale",
                f"an integer >= {lowest_initial} (0 only with allow_zero_initial_scale)",
                self.initial_scale,
            )
        self._check_activation_scale()

    def _check_activation_scale(self) -> None:
        scale = self.activation_scale
        if scale == 1:
            return  # Knative's default: activation scale off.
        upper = self.max_scale if self.max_scale else "unbounded"
        if scale < 2 or scale < self.min_scale or (self.max_scale and scale > self.max_scale):
            _fail(
                "activation_scale",
                f"1 (off) or an integer >= 2 within [min_scale={self.min_scale}, "
                f"max_scale={upper}]",
                scale,
            )

    def _check_durations(self) -> None:
        delay = self.scale_down_delay_s
        if not (_is_whole(delay) and 0 <= delay <= WINDOW_MAX_S):
            _fail("scale_down_delay_s", f"whole seconds in [0, {WINDOW_MAX_S}]", delay)
        retention = self.scale_to_zero_pod_retention_period_s
        if not (math.isfinite(retention) and 0 <= retention <= WINDOW_MAX_S):
            _fail(
                "scale_to_zero_pod_retention_period_s", f"seconds in [0, {WINDOW_MAX_S}]", retention
            )
        grace = self.scale_to_zero_grace_period_s
        if not (math.isfinite(grace) and grace >= WINDOW_MIN_S):
            _fail("scale_to_zero_grace_period_s", f"at least {WINDOW_MIN_S} seconds", grace)
        if not (math.isfinite(self.progress_deadline_s) and self.progress_deadline_s > 0):
            _fail("progress_deadline_s", "a positive number of seconds", self.progress_deadline_s)
        if not (_is_whole(self.tick_s) and self.tick_s >= 1):
            _fail("tick_s", "whole seconds >= 1 (Knative's tick is 2)", self.tick_s)

    @property
    def total_value(self) -> float:
        """Per-pod capacity `TotalValue` (`ResolveMetricTarget`, resources/target.go)."""
        if self.metric == RPS:
            return RPS_TARGET_DEFAULT if self.target is None else self.target
        total = float(self.container_concurrency) or CONTAINER_CONCURRENCY_TARGET_DEFAULT
        if self.target is not None:
            total = (
                min(self.target, self.container_concurrency)
                if self.container_concurrency
                else self.target
            )
        return total

    @property
    def target_value(self) -> float:
        """Per-pod target `TargetValue = max(0.01, total * utilization)` (target.go)."""
        return max(TARGET_MIN, self.total_value * self.target_utilization)

    @property
    def stable_window(self) -> int:
        return int(self.stable_window_s)

    @property
    def panic_window(self) -> int:
        """Whole seconds, rounded half away from zero like Go's Duration.Round, at least 1
        (autoscaling/resources/metric.go)."""
        return max(1, math.floor(self.stable_window * self.panic_window_percentage / 100 + 0.5))

    @property
    def panic_threshold(self) -> float:
        return self.panic_threshold_percentage / 100


@dataclass(frozen=True, slots=True)
class KpaState:
    """The decider's memory plus the PodAutoscaler and SKS status that drive scale to zero."""

    active: str
    """PA condition `Active`: 'active' (True), 'activating' (Unknown) or 'inactive' (False)."""
    active_since: float
    """`lastTransitionTime` of `Active`, read by `ActiveFor`, `InactiveFor`, `CanFailActivation`."""
    scale_target_initialized: bool
    """PA condition `ScaleTargetInitialized`: the initial scale has been reached once."""
    sks_mode: str
    """'Serve' (pods in the path) or 'Proxy' (the activator in the path)."""
    proxy_since: float | None
    """Since when the activator is in the path (`ActivatorEndpointsPopulated`); None in Serve."""
    panic_time: float | None = None
    """When the decider last saw the panic threshold crossed; None when not panicking."""
    max_panic_pods: int = 0
    """The highest desired scale during this panic: panic mode never scales down."""
    delay_window: tuple[tuple[int, int], ...] = ()
    """Scale-down-delay max window as (tick bucket index, desired), descending in desired."""


@dataclass(frozen=True, slots=True)
class _Scaled:
    """A valid `ScaleResult` of the decider."""

    desired: int
    ebc: float
    panicking: bool
    detail: str


@dataclass(frozen=True, slots=True)
class _Step:
    """What one reconcile pass does: the scale it reports (`want`, -1 = unknown) and whether it
    patches the scale target with it."""

    want: int
    apply: bool
    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class Kpa:
    """Knative's KPA as a `Policy`: 2 s ticks, pokeable from zero like Knative's activator."""

    config: KpaConfig = KpaConfig()

    @property
    def name(self) -> str:
        return "kpa"

    @property
    def tick_s(self) -> float:
        return float(self.config.tick_s)

    @property
    def history_s(self) -> float:
        return float(self.config.stable_window)

    @property
    def pokeable(self) -> bool:
        return True

    def initial_replicas(self) -> int:
        """The Revision reconciler creates the Deployment with `initial-scale` replicas."""
        return self.config.initial_scale

    def initial_state(self, now: float, ready: int) -> KpaState:
        """A new PA and Decider: conditions start Unknown and the first reconcile (want = -1)
        settles them; a Decider created over more than one ready pod starts in panic mode so
        that a restart never scales down (autoscaler.go `newAutoscaler`, PR #4795)."""
        cfg = self.config
        fresh = KpaState(
            active=ACTIVATING,
            active_since=now,
            scale_target_initialized=False,
            sks_mode=SERVE,
            proxy_since=None,
            panic_time=now if ready > 1 else None,
            max_panic_pods=ready,
        )
        state = _compute_active_condition(cfg, fresh, -1, ready, now)
        return _with_sks_mode(state, _sks_mode(state, -1, _initial_ebc(cfg), ready), now)

    def decide(self, observation: Observation, state: KpaState) -> tuple[Decision, KpaState]:
        """One decider tick, then the reconcile; reconcile again at once when the first pass
        changed the PA status or SKS mode, as the PA/SKS informers re-enqueue the PA then."""
        scaled, state = _decider_scale(self.config, observation, state)
        step, after = _reconcile(self.config, observation, state, scaled)
        steps = [step]
        if _status(after) != _status(state):
            step, after = _reconcile(self.config, observation, after, scaled)
            steps.append(step)
        applied = [s for s in steps if s.apply]
        final = applied[-1] if applied else steps[-1]
        desired = final.want if final.apply else observation.desired
        return Decision(desired, final.reason, final.detail), after


# --- the decider: pkg/autoscaler/scaling/autoscaler.go `Scale` ---------------------------------


def _decider_scale(
    cfg: KpaConfig, obs: Observation, st: KpaState
) -> tuple[_Scaled | None, KpaState]:
    """`Scale(now)`. Returns None (an invalid ScaleResult) while there is no data yet.

    A poke stands for the activator's immediate stat (concurrency 1, one request) for a request
    that reached a revision at zero (concurrency_reporter.go); it lands in the newest bucket.
    """
    observed = obs.arrivals if cfg.metric == RPS else obs.concurrency
    series = np.append(observed, 1.0) if obs.poke else observed
    stable = window_mean(series, cfg.stable_window)
    panic = window_mean(series, cfg.panic_window)
    if stable is None or panic is None:
        return None, st
    ready_f = float(max(1, obs.ready))
    max_up = math.ceil(cfg.max_scale_up_rate * ready_f)
    max_down = math.floor(ready_f / cfg.max_scale_down_rate)  # always Reachable here
    dspc = math.ceil(stable / cfg.target_value)
    dppc = math.ceil(panic / cfg.target_value)
    want_stable = _activation(cfg, dspc, min(max(dspc, max_down), max_up))
    want_panic = _activation(cfg, dppc, min(max(dppc, max_down), max_up))
    panic_time, max_panic = _panic_memory(cfg, st, obs.now, dppc / ready_f >= cfg.panic_threshold)
    if panic_time is not None:
        max_panic = max(max_panic, want_stable, want_panic)  # never scale down in panic
        desired = max_panic
    else:
        desired = want_stable
    delay_window, desired = _delay(cfg, st.delay_window, obs.now, desired)
    detail = (
        f"stable {stable:.2f} / target {cfg.target_value:g} -> {dspc}, "
        f"panic {panic:.2f} -> {dppc}, ready {obs.ready}"
    )
    if panic_time is not None:
        detail += f", panicking since {panic_time:g}"
    new_state = _updated(
        st, panic_time=panic_time, max_panic_pods=max_panic, delay_window=delay_window
    )
    ebc = _excess_burst_capacity(cfg, obs.ready, panic)
    return _Scaled(desired, ebc, panic_time is not None, detail), new_state


def _activation(cfg: KpaConfig, wanted: int, clamped: int) -> int:
    """`activation-scale`: once any pod is wanted, want at least this many."""
    if cfg.activation_scale > 1 and wanted > 0:
        return max(clamped, cfg.activation_scale)
    return clamped


def _panic_memory(cfg: KpaConfig, st: KpaState, now: float, over: bool) -> tuple[float | None, int]:
    """Enter or extend panic when over the threshold; leave it one stable window after the last
    over-threshold tick (`panicTime + StableWindow < now`), forgetting maxPanicPods."""
    if over:
        return now, st.max_panic_pods
    if st.panic_time is not None and st.panic_time + cfg.stable_window < now:
        return None, 0
    return st.panic_time, st.max_panic_pods


def _delay(
    cfg: KpaConfig, window: tuple[tuple[int, int], ...], now: float, desired: int
) -> tuple[tuple[tuple[int, int], ...], int]:
    """`scale-down-delay`: the max of desired over the last delay, in tick-sized buckets
    (aggregation/max/timewindow.go, a descending-maxima window)."""
    if cfg.scale_down_delay_s <= 0:
        return window, desired
    size = math.ceil(cfg.scale_down_delay_s / cfg.tick_s)
    index = int(now) // int(cfg.tick_s)
    value = max([desired] + [v for i, v in window if i == index])
    kept = tuple((i, v) for i, v in window if i != index and index - i < size and v > value)
    merged = kept + ((index, value),)
    return merged, merged[0][1]


def _excess_burst_capacity(cfg: KpaConfig, ready: int, panic: float) -> float:
    """EBC = floor(ready * TotalValue - TBC - panic); TBC 0 gives 0, TBC -1 gives -1."""
    tbc = cfg.target_burst_capacity
    if tbc == 0:
        return 0.0
    if tbc < 0:
        return -1.0
    return float(math.floor(ready * cfg.total_value - tbc - panic))


def _initial_ebc(cfg: KpaConfig) -> float:
    """The Decider's EBC at creation, before any valid tick (kpa/resources/decider.go)."""
    tbc = cfg.target_burst_capacity
    if tbc in (0, -1):
        return tbc
    return cfg.initial_scale * cfg.total_value - tbc


# --- the reconciler: pkg/reconciler/autoscaling/kpa/{scaler,kpa}.go ---------------------------


def _status(st: KpaState) -> tuple[object, ...]:
    return st.active, st.active_since, st.scale_target_initialized, st.sks_mode


def _reconcile(
    cfg: KpaConfig, obs: Observation, st: KpaState, scaled: _Scaled | None
) -> tuple[_Step, KpaState]:
    """`ReconcileKind`: scale, pick the SKS mode, then update the Active condition."""
    step = _scale(cfg, obs, st, scaled)
    ebc = scaled.ebc if scaled is not None else _initial_ebc(cfg)
    after = _with_sks_mode(st, _sks_mode(st, step.want, ebc, obs.ready), obs.now)
    return step, _compute_active_condition(cfg, after, step.want, obs.ready, obs.now)


def _scale(cfg: KpaConfig, obs: Observation, st: KpaState, scaled: _Scaled | None) -> _Step:
    """scaler.go `scale`: nothing to do without metrics unless activating; bounds (with the
    initial scale as a floor until ScaleTargetInitialized); then `handleScaleToZero`."""
    decided = scaled.desired if scaled is not None else -1
    if decided < 0 and st.active != ACTIVATING:
        return _Step(-1, False, "no-data", "no metrics yet: keeping the current scale")
    low, high = cfg.min_scale, cfg.max_scale
    if cfg.initial_scale > 1 and not st.scale_target_initialized:
        low = max(low, cfg.initial_scale)
    bounded = _apply_bounds(low, high, decided)
    if bounded == 0:
        return _handle_scale_to_zero(cfg, obs, st)
    if bounded != decided or scaled is None:
        return _Step(
            bounded,
            True,
            "bounds",
            f"{decided} clamped to [{low}, {high or 'unbounded'}] -> {bounded}",
        )
    return _Step(bounded, True, "panic" if scaled.panicking else "stable", scaled.detail)


def _apply_bounds(low: int, high: int, x: int) -> int:
    if x < low:
        return low
    if high != 0 and x > high:
        return high
    return x


def _handle_scale_to_zero(cfg: KpaConfig, obs: Observation, st: KpaState) -> _Step:
    """scaler.go `handleScaleToZero` for a desired scale of 0.

    The activator probe of the Inactive branch always succeeds here: a PA only turns Inactive
    with want = 0, which puts the SKS in Proxy mode in the same reconcile.
    """
    if not cfg.enable_scale_to_zero:
        return _Step(1, True, "bounds", "scale to zero disabled: keeping 1")
    now = obs.now
    if st.active == ACTIVATING:
        timeout = cfg.progress_deadline_s + ACTIVATION_TIMEOUT_BUFFER_S
        if now - st.active_since > timeout:
            return _Step(0, True, "scale-to-zero", f"activation timed out after {timeout:g}s")
        return _Step(
            -1, False, "activating", f"activating for {now - st.active_since:g}s; no scale to zero"
        )
    if st.active == ACTIVE:
        return _idle_while_active(cfg, now - st.active_since)
    return _idle_while_inactive(cfg, st, now)


def _idle_while_active(cfg: KpaConfig, active_for: float) -> _Step:
    """Active for a stable window: report 0 without applying it, so the PA turns Inactive and
    the activator comes into the path. Otherwise hold 1 for the rest of the window."""
    window = cfg.stable_window
    if active_for >= window:
        return _Step(
            0, False, "keepalive", f"idle; active {active_for:g}s >= {window}s: marking inactive"
        )
    return _Step(1, True, "keepalive", f"idle; active only {active_for:g}s of {window}s")


def _idle_while_inactive(cfg: KpaConfig, st: KpaState, now: float) -> _Step:
    """Inactive: zero after max(grace, retention); wait out the retention; otherwise zero as
    soon as the activator has been in the path for the grace period (the fast path)."""
    inactive_for = now - st.active_since
    grace = cfg.scale_to_zero_grace_period_s
    retention = cfg.scale_to_zero_pod_retention_period_s
    if inactive_for >= max(grace, retention):
        return _Step(
            0, True, "scale-to-zero", f"inactive {inactive_for:g}s >= {max(grace, retention):g}s"
        )
    if retention > 0 and inactive_for < retention:
        return _Step(
            0, False, "keepalive", f"inactive {inactive_for:g}s < retention {retention:g}s"
        )
    proxy_for = now - st.proxy_since if st.proxy_since is not None else 0.0
    if grace - proxy_for <= 0:
        return _Step(0, True, "scale-to-zero", f"fast path: activator in path for {proxy_for:g}s")
    return _Step(0, False, "keepalive", f"activator in path for {proxy_for:g}s < grace {grace:g}s")


def _sks_mode(st: KpaState, want: int, ebc: float, ready: int) -> str:
    """kpa.go: Proxy at zero, on negative EBC, or when unknown and inactive; the SKS
    reconciler forces Proxy when no pod is ready (serverlessservice.go)."""
    if want == 0 or ebc < 0 or (want == -1 and st.active == INACTIVE) or ready == 0:
        return PROXY
    return SERVE


def _with_sks_mode(st: KpaState, mode: str, now: float) -> KpaState:
    """Record the mode, and since when the activator is in the path (`ProxyFor`)."""
    if mode == SERVE:
        return _updated(st, sks_mode=SERVE, proxy_since=None)
    since = st.proxy_since if st.proxy_since is not None else now
    return _updated(st, sks_mode=PROXY, proxy_since=since)


def _active_threshold(cfg: KpaConfig, initialized: bool) -> int:
    """kpa.go `activeThreshold`: ready pods needed to be Active."""
    if not initialized:
        return max(cfg.min_scale, cfg.initial_scale)
    return max(cfg.min_scale, 1)


def _compute_active_condition(
    cfg: KpaConfig, st: KpaState, want: int, ready: int, now: float
) -> KpaState:
    """kpa.go `computeActiveCondition`; the transition time moves only when the status flips."""
    min_ready = _active_threshold(cfg, st.scale_target_initialized)
    initialized = st.scale_target_initialized or ready >= min_ready
    can_wake = want > 0 or st.active != INACTIVE
    if want == 0 or min_ready == 0:
        status = INACTIVE
    elif ready < min_ready:
        status = ACTIVATING if can_wake else INACTIVE
    else:
        status = ACTIVE if can_wake else st.active
    since = st.active_since if status == st.active else now
    return _updated(st, active=status, active_since=since, scale_target_initialized=initialized)


def _updated(st: KpaState, **changes: Any) -> KpaState:
    """`replace`, skipped when nothing changes: the state is immutable, so the same object
    serves, and the 2 s tick of a day-long simulation stays cheap."""
    if all(getattr(st, name) == value for name, value in changes.items()):
        return st
    return replace(st, **changes)
