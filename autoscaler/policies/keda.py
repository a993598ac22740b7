"""KEDA's Prometheus scaler and the HPA it creates, with upstream's defaults, as a pure policy.

A KEDA user scaling an LLM server on Prometheus writes a `ScaledObject` with one `prometheus`
trigger. Two controllers then share the scale of the Deployment, and one `decide` call plays
both for one tick:

- **KEDA's scale loop** (the operator) polls the trigger every `pollingInterval` and only
  moves the scale between zero (or `idleReplicaCount`) and `minReplicaCount`/1: activation when
  the query value exceeds `activationThreshold`, deactivation once no poll was active for
  `cooldownPeriod`;
- **the HPA** KEDA generates reconciles every 15 s on the same query value, served as an
  `External` metric with an `AverageValue` target of `threshold`, and moves the scale between
  1 and N. KEDA sets no `behavior` on it by default, so the controller takes its legacy path
  (`normalizeDesiredReplicas`), not the `behavior` one of `autoscaler/policies/hpa.py`.

Upstream code and documents followed (read for behaviour, defaults and names; no code copied):

- kedacore/keda `pkg/scalers/prometheus_scaler.go`: `threshold` (mandatory) becomes the
  external metric's target, `activationThreshold` (optional, 0) the activity test
  `value > activationThreshold`; `ignoreNullValues` (default true).
- kedacore/keda `pkg/scalers/scaler.go`: `GetMetricTargetType` (AverageValue when none is
  given), `GetMetricTargetMili` / `GenerateMetricInMili` (target and value as milli-quantities,
  the value formatted with three decimals).
- kedacore/keda `pkg/scaling/scale_handler.go`: `startScaleLoop` (a check at once, then one per
  `pollingInterval`), `getScaledObjectState` (active when a trigger is active), and
  `GetScaledObjectMetrics` (the HPA's read queries the scaler afresh unless `useCachedMetrics`).
- kedacore/keda `pkg/scaling/executor/scale_scaledobjects.go`: `RequestScale`,
  `scaleFromZeroOrIdle`, `scaleToZeroOrIdle`, `getIdleOrMinimumReplicaCount`; and
  `pkg/scaling/executor/scale_executor.go`: `defaultCooldownPeriod` = 300 s,
  `defaultInitialCooldownPeriod` = 0 s.
- kedacore/keda `apis/keda/v1alpha1/scaledobject_types.go`: `GetHPAMinReplicas` (the HPA's
  minReplicas is `minReplicaCount` when > 0, else 1), `GetHPAMaxReplicas` (default 100),
  `CheckReplicaCountBoundsAreValid`; `controllers/keda/hpa.go` `newHPAForScaledObject` (the
  HPA's `behavior` is `advanced.horizontalPodAutoscalerConfig.behavior`, nil by default).
- kedacore/keda-docs `content/docs/2.19/reference/scaledobject-spec.md` and
  `content/docs/2.19/concepts/scaling-deployments.md` (defaults; activation vs scaling phase).
- kubernetes/kubernetes `pkg/controller/podautoscaler/horizontal.go`: `reconcileAutoscaler`
  (`recordInitialRecommendation`; scaling disabled at 0 replicas; bounds),
  `normalizeDesiredReplicas`, `stabilizeRecommendation`, `convertDesiredReplicasWithRules`,
  `calculateScaleUpLimit` (`scaleUpLimitFactor` 2, `scaleUpLimitMinimum` 4); and
  `pkg/controller/podautoscaler/replica_calculator.go` `GetExternalPerPodMetricReplicas`
  (the function an `AverageValue` external target goes through; `GetExternalMetricReplicas`
  is the `Value` one).

Defaults (`KedaConfig`, upstream names in snake case): `threshold` has no default upstream (it
is mandatory; `make` derives it, below); `activationThreshold` 0; `pollingInterval` 30 s;
`cooldownPeriod` 300 s; `initialCooldownPeriod` 0 s; `idleReplicaCount` unset;
`minReplicaCount` 0; `maxReplicaCount` 100; HPA `behavior` none; kube-controller-manager
`--horizontal-pod-autoscaler-sync-period` 15 s, `--horizontal-pod-autoscaler-tolerance` 0.1,
`--horizontal-pod-autoscaler-downscale-stabilization` 300 s; Prometheus `scrape_interval` 15 s
(the value of Prometheus' example configuration; its built-in default is 1 m).
`make(container_concurrency)` sets `threshold` to the service's request slots (its docstring
says why), or to 100 when they are unknown.

**The metric.** The user's query is the service's requests in flight,
`sum(vllm:num_requests_running + vllm:num_requests_waiting)`: our `concurrency` (queued + in
service). A Prometheus instant query of a gauge returns its latest scrape, so the value KEDA
and the HPA read at a poll or sync is modelled as the mean of the last `scrape_interval_s`
(15) seconds of `concurrency`, about one scrape interval. Both read the query afresh
(`useCachedMetrics` false). The value and `threshold` cross the external metrics API as
milli-quantities (three decimals), and the HPA computes on those integers:

    ratio    = value_m / (threshold_m * statusReplicas)
    proposal = ceil(value_m / threshold_m)    if |1 - ratio| > tolerance
             = statusReplicas                 otherwise

with `statusReplicas` (the scale's status: pods that exist) = our ready + pending. No
readiness correction applies to External metrics. The proposal is then stabilized: the highest
of it and the recommendations of the last 300 s; then bounded by minReplicas and
`min(maxReplicas, max(2 × current, 4))`, where current is the scale's spec (our `desired`).

**Time.** `tick_s` is the gcd of the polling interval and the HPA sync period (15 s by
default: the HPA every tick, KEDA every other one, both from the first tick, as the scale loop
checks at once when it starts). When both are due in one tick KEDA's poll runs first and the
HPA reads the scale KEDA just wrote: the two loops have unrelated phases upstream, and this is
one of them. `lastActiveTime` and `creationTimestamp` are `metav1.Time`, stored in whole
seconds, so the `Before(now)` test of the cooldown passes at the poll exactly one cooldown
after the last active one: we compare with `<=`. The HPA's sync period is 15 s plus the
reconcile's own run time, so the recommendation one window back is always slightly older than
the window and no longer counts: we keep recommendations strictly younger than it.

**Missing data never scales down.** An empty `concurrency` series (or a non-finite mean) is a
failed query: KEDA's scaler errors (no fallback configured: the Ready condition turns False and
the scale is left alone) and the HPA cannot get its metric (it keeps the scale); the policy
holds with reason `no-data`. (With `ignoreNullValues` true, an *empty Prometheus answer* would
read as 0 upstream; here an empty series means nothing was delivered, which is the error case.)

**Reasons.** KEDA's own moves: `keda-activate`, `keda-deactivate`, `keda-cooldown` (inactive,
waiting out the cooldown), `keda-active` (a poll-only tick that found the trigger active),
`keda-idle` (at zero: nothing to do, the HPA is disabled), `bounds` (back to
`minReplicaCount`). The HPA's: `keda-scale-up`, `keda-scale-down`, `keda-hold`,
`keda-stabilized`, `keda-rate-limited` (the max(2 × current, 4) limit), `bounds`. Plus
`no-data`, and `keda-hold` on a tick where neither loop is due. When KEDA moved the scale and
the HPA left it there, the reason is KEDA's; otherwise it is the HPA's.

**Not modelled**, and why:

- `fallback` (not set by default), `scalingModifiers`, several triggers, `metricType: Value`,
  `useCachedMetrics`, the pause annotations, `restoreToOriginalReplicaCount`: not defaults, or
  not scaling dynamics.
- A custom `advanced.horizontalPodAutoscalerConfig.behavior`: with one the controller runs
  `normalizeDesiredReplicasWithBehaviors`, which is `autoscaler/policies/hpa.py`.
- The scale loop's phase (newest KEDA offsets it by a hash of the object's UID) and the HPA
  worker's: both loops start at the policy's first decision.
- Prometheus' scrape phase, staleness and lookback: one scrape interval's mean stands for them.
- Kubernetes 1.33's per-HPA tolerance (alpha, in `behavior`): without `behavior` it is the
  controller's flag, 0.1.
- At zero replicas a query over the vLLM pods' own gauges has no series at all, so KEDA could
  never activate; our `concurrency` counts requests waiting for a replica, as if the query
  also read the gateway's waiting requests. There is no activator: not pokeable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from autoscaler.errors import InputError
from autoscaler.policies.hpa import Stamped, convert_with_rules, stabilize_recommendation
from autoscaler.policies.kpa import CONTAINER_CONCURRENCY_TARGET_DEFAULT
from autoscaler.policy import Decision, Observation, window_mean

POLLING_INTERVAL_S = 30
"""`pollingInterval` default (keda-docs scaledobject-spec; scale_handler.go)."""
COOLDOWN_PERIOD_S = 300
INITIAL_COOLDOWN_PERIOD_S = 0
"""`defaultCooldownPeriod`, `defaultInitialCooldownPeriod` (executor/scale_executor.go)."""
MIN_REPLICA_COUNT = 0
MAX_REPLICA_COUNT = 100
"""`minReplicaCount` default 0; `defaultHPAMaxReplicas` (scaledobject_types.go)."""
HPA_MIN_REPLICAS_DEFAULT = 1
"""`defaultHPAMinReplicas`: the HPA's minReplicas when `minReplicaCount` is 0 or unset."""
SYNC_PERIOD_S = 15
TOLERANCE = 0.1
DOWNSCALE_STABILIZATION_S = 300
"""kube-controller-manager `--horizontal-pod-autoscaler-{sync-period,tolerance,downscale-
stabilization}` defaults."""
SCRAPE_INTERVAL_S = 15
"""Prometheus `scrape_interval` of its example configuration: the window of the query value."""
THRESHOLD_FALLBACK = CONTAINER_CONCURRENCY_TARGET_DEFAULT
"""`threshold` when the service's request slots are unknown (`make(0)`): KEDA has no default,
so the per-pod in-flight target every baseline here falls back to (Knative's 100)."""
EPS = 1e-9
"""Slack on due times, so that float tick arithmetic never skips a poll or a sync."""

ALIASES = {"min_replicas": "min_replica_count", "max_replicas": "max_replica_count"}
"""Names `make` also accepts for the bounds, as the other policies call them."""


def _fail(field_name: str, allowed: str, value: object) -> None:
    raise InputError(f"keda.{field_name}: must be {allowed}, got {value!r}")


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_whole(value: float) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and float(value).is_integer()


def _milli(value: float) -> int:
    """The quantity KEDA builds from a float (`fmt.Sprintf("%.3f")`), in milli-units."""
    return int(Decimal(f"{value:.3f}").scaleb(3))


@dataclass(frozen=True, slots=True, kw_only=True)
class KedaConfig:
    """A `ScaledObject` with one `prometheus` trigger, and the HPA controller's flags.

    `threshold` (the target value per replica) is the knob an operator turns; it has no
    default upstream. Durations are seconds; `idle_replica_count=None` means unset.
    """

    threshold: float
    activation_threshold: float = 0.0
    polling_interval_s: float = POLLING_INTERVAL_S
    cooldown_period_s: float = COOLDOWN_PERIOD_S
    initial_cooldown_period_s: float = INITIAL_COOLDOWN_PERIOD_S
    idle_replica_count: int | None = None
    min_replica_count: int = MIN_REPLICA_COUNT
    max_replica_count: int = MAX_REPLICA_COUNT
    scrape_interval_s: float = SCRAPE_INTERVAL_S
    horizontal_pod_autoscaler_sync_period_s: float = SYNC_PERIOD_S
    horizontal_pod_autoscaler_tolerance: float = TOLERANCE
    horizontal_pod_autoscaler_downscale_stabilization_s: float = DOWNSCALE_STABILIZATION_S

    def __post_init__(self) -> None:
        self._check_trigger()
        self._check_replica_counts()
        self._check_durations()
        self._check_controller()

    def _check_trigger(self) -> None:
        threshold = self.threshold
        # The HPA refuses an AverageValue target that is not positive (autoscaling validation);
        # KEDA hands it over in milli-units.
        numeric = isinstance(threshold, int | float) and math.isfinite(threshold)
        if not (numeric and _milli(threshold) >= 1):
            _fail(
                "threshold", "a number >= 0.001 (a positive AverageValue in milli-units)", threshold
            )
        activation = self.activation_threshold
        if not (isinstance(activation, int | float) and math.isfinite(activation)):
            _fail("activation_threshold", "a finite number", activation)

    def _check_replica_counts(self) -> None:
        # CheckReplicaCountBoundsAreValid, plus the HPA's own maxReplicas >= 1.
        low, high, idle = self.min_replica_count, self.max_replica_count, self.idle_replica_count
        if not _is_count(low) or low < 0:
            _fail("min_replica_count", "an integer >= 0", low)
        if not _is_count(high) or high < max(1, low):
            _fail("max_replica_count", f"an integer >= 1 and >= min_replica_count={low}", high)
        if idle is not None and (not _is_count(idle) or not 0 <= idle < low):
            _fail(
                "idle_replica_count",
                f"unset or an integer in [0, min_replica_count={low}) (upstream supports only 0)",
                idle,
            )

    def _check_durations(self) -> None:
        for name, low in (("polling_interval_s", 1), ("scrape_interval_s", 1)):
            value = getattr(self, name)
            if not (_is_whole(value) and value >= low):
                _fail(name, f"whole seconds >= {low}", value)
        for name in ("cooldown_period_s", "initial_cooldown_period_s"):
            value = getattr(self, name)
            if not (_is_whole(value) and value >= 0):
                _fail(name, "whole seconds >= 0", value)

    def _check_controller(self) -> None:
        sync = self.horizontal_pod_autoscaler_sync_period_s
        if not (_is_whole(sync) and sync >= 1):
            _fail("horizontal_pod_autoscaler_sync_period_s", "whole seconds >= 1", sync)
        tolerance = self.horizontal_pod_autoscaler_tolerance
        if not (isinstance(tolerance, int | float) and 0 <= tolerance < 1):
            _fail("horizontal_pod_autoscaler_tolerance", "a fraction in [0, 1)", tolerance)
        window = self.horizontal_pod_autoscaler_downscale_stabilization_s
        if not (isinstance(window, int | float) and math.isfinite(window) and window >= 0):
            _fail("horizontal_pod_autoscaler_downscale_stabilization_s", "seconds >= 0", window)

    @property
    def min_replicas(self) -> int:
        """The lowest scale KEDA leaves when idle (`minReplicaCount`)."""
        return self.min_replica_count

    @property
    def max_replicas(self) -> int:
        return self.max_replica_count

    @property
    def hpa_min_replicas(self) -> int:
        """`GetHPAMinReplicas`: `minReplicaCount` when > 0, else 1."""
        return self.min_replica_count if self.min_replica_count > 0 else HPA_MIN_REPLICAS_DEFAULT

    @property
    def tick_s(self) -> int:
        """The gcd of KEDA's polling interval and the HPA's sync period."""
        return math.gcd(
            int(self.polling_interval_s), int(self.horizontal_pod_autoscaler_sync_period_s)
        )


@dataclass(frozen=True, slots=True)
class KedaState:
    """What KEDA keeps in the ScaledObject and the HPA controller in memory."""

    created: float
    """The ScaledObject's `creationTimestamp`: read by `initialCooldownPeriod` until active."""
    next_poll: float
    """When KEDA's scale loop next checks the trigger."""
    next_sync: float
    """When the HPA controller next reconciles the HPA."""
    last_active: float | None = None
    """`status.lastActiveTime`: the last poll that found the trigger active (None: never)."""
    recommendations: Stamped = ()
    """The HPA controller's unstabilized recommendations within the stabilization window."""


@dataclass(frozen=True, slots=True)
class _Step:
    """What one controller did: the scale it leaves, why, and the human detail."""

    replicas: int
    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class Keda:
    """KEDA's Prometheus scaler plus its HPA as a `Policy`: not pokeable (no activator)."""

    config: KedaConfig

    @property
    def name(self) -> str:
        return "keda"

    @property
    def tick_s(self) -> float:
        return float(self.config.tick_s)

    @property
    def history_s(self) -> float:
        return float(self.config.scrape_interval_s)

    @property
    def pokeable(self) -> bool:
        return False

    def initial_replicas(self) -> int:
        """The Deployment as deployed before the ScaledObject: at the HPA's minReplicas."""
        return self.config.hpa_min_replicas

    def initial_state(self, now: float, ready: int) -> KedaState:
        """A ScaledObject created now: never active, both loops due at once."""
        return KedaState(created=now, next_poll=now, next_sync=now)

    def decide(self, observation: Observation, state: KedaState) -> tuple[Decision, KedaState]:
        """KEDA's poll when due, then the HPA's sync when due, on the same query value."""
        cfg = self.config
        now, current = observation.now, observation.desired
        poll = now >= state.next_poll - EPS
        sync = now >= state.next_sync - EPS
        if poll:
            state = replace(state, next_poll=now + cfg.polling_interval_s)
        if sync:
            state = replace(state, next_sync=now + cfg.horizontal_pod_autoscaler_sync_period_s)
        if not (poll or sync):
            return Decision(
                current, "keda-hold", "neither KEDA's poll nor the HPA's sync due"
            ), state
        value = _query(cfg, observation)
        if value is None:
            if sync:  # the HPA reads the scale before it fails to get the metric
                state = _record_initial_recommendation(state, now, current)
            return Decision(
                current, "no-data", "query failed (no samples): keeping the current scale"
            ), state
        keda: _Step | None = None
        scale = current
        if poll:
            keda, state = _request_scale(cfg, state, now, current, value)
            scale = keda.replicas
        if keda is not None and not sync:
            return Decision(keda.replicas, keda.reason, keda.detail), state
        hpa, state = _reconcile_hpa(cfg, state, observation, scale, value)
        if keda is None:
            return Decision(hpa.replicas, hpa.reason, hpa.detail), state
        detail = f"KEDA: {keda.detail}; HPA: {hpa.detail}"
        if keda.replicas != current and hpa.replicas == keda.replicas:
            return Decision(keda.replicas, keda.reason, detail), state
        return Decision(hpa.replicas, hpa.reason, detail), state


def _query(cfg: KedaConfig, obs: Observation) -> float | None:
    """The instant query's answer: the mean of the last scrape interval, None when missing."""
    value = window_mean(obs.concurrency, int(cfg.scrape_interval_s))
    if value is None or not math.isfinite(value):
        return None
    return value


# --- KEDA's scale loop: pkg/scaling/executor/scale_scaledobjects.go `RequestScale` -------------


def _request_scale(
    cfg: KedaConfig, state: KedaState, now: float, current: int, value: float
) -> tuple[_Step, KedaState]:
    """One poll: activity from `activationThreshold`, then KEDA's own moves to and from zero
    (or idle); everything between 1 and N is the HPA's."""
    low, idle = cfg.min_replica_count, cfg.idle_replica_count
    active = value > cfg.activation_threshold
    test = f"{value:.3f} {'>' if active else '<='} activationThreshold {cfg.activation_threshold:g}"
    if active:
        state = replace(state, last_active=now)
        if (idle is not None and current < low) or current == 0:  # `scaleFromZeroOrIdle`
            target = low if low > 0 else 1
            return _Step(target, "keda-activate", f"active ({test}): {current} -> {target}"), state
        return _Step(current, "keda-active", f"active ({test}): scaling left to the HPA"), state
    if (idle is not None and current > idle) or (current > 0 and low == 0):
        return _scale_to_zero_or_idle(cfg, state, now, current, test), state
    if idle is None and current < low:
        return _Step(low, "bounds", f"inactive ({test}): {current} -> minReplicaCount {low}"), state
    reason = "keda-idle" if current == 0 else "keda-hold"
    return _Step(current, reason, f"inactive ({test}): no change at {current}"), state


def _scale_to_zero_or_idle(
    cfg: KedaConfig, state: KedaState, now: float, current: int, test: str
) -> _Step:
    """`scaleToZeroOrIdle`: after `cooldownPeriod` since the last active poll (or, never
    active, `initialCooldownPeriod` since creation), to `idleReplicaCount` or `minReplicaCount`."""
    if state.last_active is None:
        since, wait, what = state.created, cfg.initial_cooldown_period_s, "creation"
    else:
        since, wait, what = state.last_active, cfg.cooldown_period_s, "last active"
    idle = cfg.idle_replica_count
    target = idle if idle is not None else cfg.min_replica_count
    if since + wait <= now:
        return _Step(
            target,
            "keda-deactivate",
            f"inactive ({test}) {now - since:g}s since {what} >= {wait:g}s: {current} -> {target}",
        )
    return _Step(
        current,
        "keda-cooldown",
        f"inactive ({test}) {now - since:g}s since {what} < {wait:g}s: cooling down",
    )


# --- the HPA: kubernetes pkg/controller/podautoscaler/horizontal.go, behavior nil ---------------


def _reconcile_hpa(
    cfg: KedaConfig, state: KedaState, obs: Observation, current: int, value: float
) -> tuple[_Step, KedaState]:
    """`reconcileAutoscaler` with currentReplicas = the scale's spec (after KEDA's write)."""
    state = _record_initial_recommendation(state, obs.now, current)
    low, high = cfg.hpa_min_replicas, cfg.max_replica_count
    if current == 0:
        return _Step(0, "keda-idle", "scaling is disabled since the target is at 0"), state
    if current > high:
        return _Step(high, "bounds", f"{current} above maxReplicas {high}"), state
    if current < low:
        return _Step(low, "bounds", f"{current} below minReplicas {low}"), state
    proposal, detail = _external_per_pod(cfg, value, obs.ready + obs.pending)
    stabilized, recommendations = stabilize_recommendation(
        state.recommendations,
        obs.now,
        cfg.horizontal_pod_autoscaler_downscale_stabilization_s,
        proposal,
    )
    state = replace(state, recommendations=recommendations)
    final, limit = convert_with_rules(
        current, stabilized, min_replicas=cfg.hpa_min_replicas, max_replicas=cfg.max_replica_count
    )
    if stabilized != proposal:
        detail += f"; stabilized {proposal} -> {stabilized}"
    if limit:
        detail += f"; {limit} {stabilized} -> {final}"
    return _Step(final, _reason(current, proposal, stabilized, final, limit), detail), state


def _record_initial_recommendation(state: KedaState, now: float, current: int) -> KedaState:
    """`recordInitialRecommendation`: the scale the HPA first reads counts as a recommendation."""
    if state.recommendations:
        return state
    return replace(state, recommendations=((now, current),))


def _external_per_pod(cfg: KedaConfig, value: float, status: int) -> tuple[int, str]:
    """`GetExternalPerPodMetricReplicas` on milli-units, with Go's float division by zero
    (no pods: +Inf when there is load, NaN, which is within tolerance, when there is none).
    Returns the proposal and the detail."""
    usage, target = _milli(value), _milli(cfg.threshold)
    if status > 0:
        ratio = usage / (target * status)
    else:
        ratio = math.inf if usage > 0 else math.nan
    detail = (
        f"value {usage / 1000:g} / threshold {target / 1000:g} over {status} pods: "
        f"ratio {ratio:.2f}"
    )
    if abs(1.0 - ratio) > cfg.horizontal_pod_autoscaler_tolerance:
        return math.ceil(usage / target), detail
    return status, detail + " within tolerance"


def _reason(current: int, proposal: int, stabilized: int, final: int, limit: str) -> str:
    if limit == "bounds":
        return "bounds"
    if limit:
        return "keda-rate-limited"
    if stabilized != proposal:
        return "keda-stabilized"
    if final == current:
        return "keda-hold"
    return "keda-scale-up" if final > current else "keda-scale-down"


# --- construction -----------------------------------------------------------------------------


def make(container_concurrency: int, **overrides: Any) -> Keda:
    """The `keda` baseline for a service with `container_concurrency` request slots per replica.

    An operator of an LLM server with N slots (vLLM's `--max-num-seqs`) who scales on
    `sum(vllm:num_requests_running + vllm:num_requests_waiting)` sets `threshold: N`: the HPA
    then asks for ceil(in flight / N) replicas, one full batch per replica and nothing waiting.
    With the slots unknown (0) there is no upstream default to fall back on (`threshold` is
    mandatory), so the threshold is `THRESHOLD_FALLBACK` (100 in flight per replica, the per-pod
    target the KPA and HPA baselines start from). Everything else keeps upstream's defaults;
    `overrides` are `KedaConfig` fields, and `min_replicas`/`max_replicas` are accepted for
    `min_replica_count`/`max_replica_count`.
    """
    if not _is_count(container_concurrency) or container_concurrency < 0:
        raise InputError(
            "keda.container_concurrency: must be an integer >= 0 (0 = unknown), "
            f"got {container_concurrency!r}"
        )
    fields: dict[str, Any] = {
        "threshold": float(container_concurrency) if container_concurrency else THRESHOLD_FALLBACK
    }
    known = set(KedaConfig.__dataclass_fields__)
    for key, value in overrides.items():
        name = ALIASES.get(key, key)
        if name not in known:
            names = ", ".join(sorted(known | set(ALIASES)))
            raise InputError(f"keda.{key}: unknown setting; expected one of {names}")
        if name in overrides and name != key:
            raise InputError(f"keda.{key}: given together with {name}; give one of them")
        fields[name] = value
    return Keda(KedaConfig(**fields))
