"""The Kubernetes HorizontalPodAutoscaler on a per-pod concurrency metric, both of its paths.

This is the second baseline Leadtime is measured against, so it follows the controller's own
code (kubernetes/kubernetes `pkg/controller/podautoscaler`). A `Pods` metric with an
`AverageValue` target goes through `ReplicaCalculator.calcPlainMetricReplicas`
(replica_calculator.go); `reconcileAutoscaler` (horizontal.go) then normalises the proposal
with one of two functions, chosen by one test:

    if hpa.Spec.Behavior == nil { normalizeDesiredReplicas }
    else { normalizeDesiredReplicasWithBehaviors }

Both names share the replica calculation (`plain_metric_replicas`); only normalisation differs.

**`hpa`: no `behavior`** (`HpaConfig` without `scale_up`/`scale_down`), `normalizeDesiredReplicas`:
`stabilizeRecommendation` takes the highest of the proposal and every recommendation of the
last `--horizontal-pod-autoscaler-downscale-stabilization` (300 s), which therefore also holds
scale-ups; then `convertDesiredReplicasWithRules` bounds it by minReplicas and by
min(maxReplicas, max(`scaleUpLimitFactor` 2 × current, `scaleUpLimitMinimum` 4)). No scale
events are kept (`storeScaleEvent` returns at once without `behavior`). This is the HPA most
users run, and the one the baseline stands for:

- Defaulting does not fill `behavior`. `pkg/apis/autoscaling/v2/defaults.go`
  `SetDefaults_HorizontalPodAutoscalerBehavior` completes it only `if obj.Spec.Behavior != nil`
  (the missing direction gets `GenerateHPAScaleUpRules`/`GenerateHPAScaleDownRules`);
  horizontal_test.go applies that same defaulting to its HPAs and still reaches this path
  whenever a case sets no rules. `v2beta2/defaults.go` and `v1/defaults.go` only set
  minReplicas and the default CPU metric. So an HPA created without
  `behavior` through any API version (`kubectl autoscale`, autoscaling/v1 objects, whose
  behavior can only come from the `autoscaling.alpha.kubernetes.io/behavior` annotation, and
  converted v2beta objects) keeps it nil in storage and takes this path.
- Knative's HPA class (knative/serving `pkg/reconciler/autoscaling/hpa/resources/hpa.go`
  `MakeHPA`) creates an autoscaling/v2 HPA with a `Pods` metric and an `AverageValue` target
  for concurrency and rps, and sets `behavior` only when the revision carries the
  `autoscaling.knative.dev/window` annotation (then both directions' stabilization = the
  window). KEDA's generated HPA has none unless the user sets one (`autoscaler/policies/keda.py`).
- The upstream unit tests run this path with `scaleUpLimitFactor = 8` (horizontal_test.go
  `init`); `scale_up_limit_factor` exists so that those cases can be replayed.

**`hpa-behavior`: `behavior` set** (`make_policy` passes the autoscaling/v2 defaults, as
`GenerateHPAScale{Up,Down}Rules` fill an empty `behavior: {}`),
`normalizeDesiredReplicasWithBehaviors`: `stabilizeRecommendationWithBehaviors` (no higher than
the lowest recommendation of the scale-up window, 0 s; no lower than the highest of the
scale-down window, 300 s), then `convertDesiredReplicasWithBehaviorRate` with the scale events
of each policy's period: scale-up at most max(+4 pods, +100 %) per 15 s, scale-down at most
-100 % per 15 s.

**Unready pods** (replica_calculator.go `groupPods`, `calcPlainMetricReplicas`; the metric is
requests in flight, not CPU). Deleted and Failed pods are dropped. A pod in phase Pending is
"unready": left out, and counted at 0 only when the others ask for a scale-up (the proposal
then may not flip direction). A Running pod without a sample is "missing": counted at the
target on a scale-down, at 0 on a scale-up. A Running pod that reports the metric counts in the
average with what it reports, Ready or not: readiness is consulted for CPU only (within
`--horizontal-pod-autoscaler-cpu-initialization-period`). `PodGroups` holds those counts.

Our `Observation` has `ready` and `pending` (requested, not yet Ready). The faithful reading of
`pending` here is a Running pod in its cold start that reports 0: a concurrency metric is
scraped per pod (for Knative's HPA class, from the queue-proxy, which serves its metrics from
the start), and a pod that is not Ready is not an endpoint, so no request reaches it. Those
pods therefore count in the average at 0 in both directions, as upstream counts them: while
replicas start, the average per pod drops and the proposal may go down (the stabilization
window holds it). The requests in flight and waiting are attributed to the ready pods (with
none ready, no pod reports them). Not separable from `Observation`: a replica still waiting
for a GPU (bounded `--gpu-pool`) is phase Pending upstream, "unready" rather than counted;
here it is counted like a starting one. The metric and target are milli-quantities, and the
average is the integer division `GetMetricUsageRatio` does.

Defaults: controller flags `--horizontal-pod-autoscaler-sync-period` 15 s, `-tolerance` 0.1,
`-downscale-stabilization` 300 s; minReplicas 1; no maxReplicas (see `MAX_INT32`).

**Time.** The controller stamps a recommendation at each reconcile, which comes every sync
period plus its own run time, so the recommendation one window back is always slightly older
than the window. `stabilizeRecommendation` drops only those `Before(cutoff)`, which on our
exact 15 s ticks would keep one recommendation exactly a window old; the no-behavior path
therefore keeps recommendations strictly younger than the window (as
`autoscaler/policies/keda.py` does), which is what the behavior path's `After(cutoff)` does.

The controller's in-memory `recommendations`, `scaleUpEvents` and `scaleDownEvents` live in
the immutable `HpaState`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from autoscaler.errors import InputError
from autoscaler.policy import Decision, Observation, window_mean

PODS = "Pods"
PERCENT = "Percent"
SELECT_MAX = "Max"
SELECT_MIN = "Min"
SELECT_DISABLED = "Disabled"
MAX_PERIOD_S = 1800
MAX_STABILIZATION_S = 3600
"""Validation limits of HPAScalingPolicy / HPAScalingRules (pkg/apis/autoscaling/validation)."""
MAX_INT32 = 2**31 - 1
"""`maxReplicas` when none is given: Knative's HPA class maps an unbounded max-scale to it
(pkg/reconciler/autoscaling/hpa/resources/hpa.go), as Kubernetes itself has no default."""
DOWNSCALE_STABILIZATION_S = 300.0
"""`--horizontal-pod-autoscaler-downscale-stabilization` default."""
SCALE_UP_LIMIT_FACTOR = 2.0
SCALE_UP_LIMIT_MINIMUM = 4.0
"""`scaleUpLimitFactor`, `scaleUpLimitMinimum` (horizontal.go): the no-behavior scale-up cap."""


def _fail(field_name: str, allowed: str, value: object) -> None:
    raise InputError(f"hpa.{field_name}: must be {allowed}, got {value!r}")


def _milli(value: float) -> int:
    """A quantity's `MilliValue()`: the controller computes on integer milli-units."""
    return round(value * 1000)


@dataclass(frozen=True, slots=True)
class HpaPolicy:
    """One `HPAScalingPolicy`: change by `value` pods or percent within `period_s`."""

    type: str
    value: int
    period_s: int


@dataclass(frozen=True, slots=True)
class HpaRules:
    """`HPAScalingRules` for one direction."""

    policies: tuple[HpaPolicy, ...]
    select_policy: str = SELECT_MAX
    stabilization_s: int = 0

    def validate(self, where: str) -> None:
        if not self.policies:
            _fail(f"{where}.policies", "at least one policy", self.policies)
        for policy in self.policies:
            if policy.type not in (PODS, PERCENT):
                _fail(f"{where}.policies.type", f"{PODS!r} or {PERCENT!r}", policy.type)
            if policy.value <= 0:
                _fail(f"{where}.policies.value", "an integer > 0", policy.value)
            if not (0 < policy.period_s <= MAX_PERIOD_S):
                _fail(
                    f"{where}.policies.period_s", f"in (0, {MAX_PERIOD_S}] seconds", policy.period_s
                )
        if self.select_policy not in (SELECT_MAX, SELECT_MIN, SELECT_DISABLED):
            _fail(f"{where}.select_policy", "'Max', 'Min' or 'Disabled'", self.select_policy)
        if not (0 <= self.stabilization_s <= MAX_STABILIZATION_S):
            _fail(
                f"{where}.stabilization_s",
                f"in [0, {MAX_STABILIZATION_S}] seconds",
                self.stabilization_s,
            )


def default_scale_up() -> HpaRules:
    """autoscaling/v2 defaults: +100 % or +4 pods per 15 s, whichever is more; no stabilization."""
    return HpaRules((HpaPolicy(PODS, 4, 15), HpaPolicy(PERCENT, 100, 15)), SELECT_MAX, 0)


def default_scale_down() -> HpaRules:
    """autoscaling/v2 defaults: -100 % per 15 s after a 300 s stabilization window."""
    return HpaRules((HpaPolicy(PERCENT, 100, 15),), SELECT_MAX, 300)


@dataclass(frozen=True, slots=True, kw_only=True)
class HpaConfig:
    """An HPA on a `Pods` metric (per-pod concurrency) with an `AverageValue` target.

    `behavior` is set when `scale_up` or `scale_down` is given (a direction left out gets the
    autoscaling/v2 default, as `GenerateHPAScale{Up,Down}Rules` fill it); without either the
    controller takes its no-behavior path. `downscale_stabilization_s` and the scale-up limit
    are that path's (controller flag, package variables).
    """

    target_per_pod: float
    min_replicas: int = 1
    max_replicas: int = MAX_INT32
    sync_period_s: float = 15.0
    tolerance: float = 0.1
    downscale_stabilization_s: float = DOWNSCALE_STABILIZATION_S
    scale_up_limit_factor: float = SCALE_UP_LIMIT_FACTOR
    scale_up_limit_minimum: float = SCALE_UP_LIMIT_MINIMUM
    scale_up: HpaRules | None = None
    scale_down: HpaRules | None = None

    def __post_init__(self) -> None:
        # An AverageValue target is a positive quantity, which has no unit below 1m.
        if not (math.isfinite(self.target_per_pod) and _milli(self.target_per_pod) >= 1):
            _fail("target_per_pod", "a number >= 0.001 (> 0 in milli-units)", self.target_per_pod)
        if self.min_replicas < 1:
            _fail("min_replicas", "an integer >= 1", self.min_replicas)
        if self.max_replicas < self.min_replicas:
            _fail(
                "max_replicas", f"an integer >= min_replicas={self.min_replicas}", self.max_replicas
            )
        if not (math.isfinite(self.sync_period_s) and self.sync_period_s >= 1):
            _fail("sync_period_s", "at least 1 second", self.sync_period_s)
        if not (math.isfinite(self.tolerance) and 0 <= self.tolerance < 1):
            _fail("tolerance", "a fraction in [0, 1)", self.tolerance)
        window = self.downscale_stabilization_s
        if not (math.isfinite(window) and window >= 0):
            _fail("downscale_stabilization_s", "seconds >= 0", window)
        if not (self.scale_up_limit_factor >= 1 and self.scale_up_limit_minimum >= 1):
            _fail("scale_up_limit_factor/minimum", "at least 1", self.scale_up_limit_factor)
        if self.scale_up is not None:
            self.scale_up.validate("scale_up")
        if self.scale_down is not None:
            self.scale_down.validate("scale_down")

    @property
    def behavior(self) -> bool:
        """Whether `spec.behavior` is set: which normalisation the controller runs."""
        return self.scale_up is not None or self.scale_down is not None

    @property
    def up_rules(self) -> HpaRules:
        return self.scale_up if self.scale_up is not None else default_scale_up()

    @property
    def down_rules(self) -> HpaRules:
        return self.scale_down if self.scale_down is not None else default_scale_down()


Stamped = tuple[tuple[float, int], ...]
"""(time, value) pairs: recommendations, or replicas added/removed by a scale event."""


@dataclass(frozen=True, slots=True)
class HpaState:
    """The controller's per-HPA memory (horizontal.go)."""

    recommendations: Stamped = ()
    """Unstabilized recommendations within the (longer) stabilization window."""
    scale_up_events: Stamped = ()
    scale_down_events: Stamped = ()
    """Replicas added / removed by rescales within the longest policy period (behavior only)."""


@dataclass(frozen=True, slots=True)
class PodGroups:
    """What `groupPods` makes of the target's pods for a non-CPU metric.

    `usage_m` is the sum, in milli-units, of what the `counted` pods report (Running, with a
    sample, Ready or not). `unready` pods are in phase Pending; `missing` ones are Running
    without a sample. Deleted and Failed pods are not in any group.
    """

    usage_m: int
    counted: int
    unready: int = 0
    missing: int = 0


@dataclass(frozen=True, slots=True)
class Proposal:
    """`calcPlainMetricReplicas`'s answer, with why it held (tolerance or direction flip)."""

    replicas: int
    held: bool
    detail: str


def plain_metric_replicas(
    pods: PodGroups, current: int, target_m: int, tolerance: float
) -> Proposal | str:
    """`calcPlainMetricReplicas`: the replicas that bring the average to the target. Returns
    why there is no proposal as a string (no pod reports the metric): the controller then
    keeps the scale."""
    if pods.counted == 0:
        return "no pod reports the metric: keeping the current scale"
    ratio = (pods.usage_m // pods.counted) / target_m
    detail = f"per-pod {pods.usage_m / pods.counted / 1000:.2f} / target {target_m / 1000:g}"
    detail += f" = {ratio:.2f} over {pods.counted} pods"
    rebalance = pods.unready > 0 and ratio > 1.0
    if not rebalance and pods.missing == 0:
        if abs(1.0 - ratio) <= tolerance:
            return Proposal(current, True, detail + " within tolerance")
        return Proposal(math.ceil(ratio * pods.counted), False, detail)
    usage_m, counted = _fill_in(pods, ratio, target_m)
    new_ratio = (usage_m // counted) / target_m
    detail += f"; with {counted - pods.counted} unready/missing pods filled in: {new_ratio:.2f}"
    flipped = (ratio < 1.0 < new_ratio) or (ratio > 1.0 > new_ratio)
    if abs(1.0 - new_ratio) <= tolerance or flipped:
        return Proposal(current, True, detail + " holds")
    replicas = math.ceil(new_ratio * counted)
    if (new_ratio < 1.0 and replicas > current) or (new_ratio > 1.0 and replicas < current):
        return Proposal(current, True, detail + f" holds ({replicas} would reverse)")
    return Proposal(replicas, False, detail)


def _fill_in(pods: PodGroups, ratio: float, target_m: int) -> tuple[int, int]:
    """Missing pods at the target on a scale-down and at 0 on a scale-up (none at exactly 1);
    unready pods at 0 on a scale-up. Returns the new (usage, pods counted)."""
    usage_m, counted = pods.usage_m, pods.counted
    if ratio < 1.0:
        usage_m, counted = usage_m + pods.missing * target_m, counted + pods.missing
    elif ratio > 1.0:
        counted += pods.missing
    if pods.unready > 0 and ratio > 1.0:
        counted += pods.unready
    return usage_m, counted


def observed_pods(obs: Observation, window_s: int) -> PodGroups | str:
    """The pods' metric as the controller would read it: the mean requests in flight of the
    last sync period, reported by the ready pods, and 0 by each pending (starting) pod, which
    is Running, not Ready, and so receives no request (see the module docstring)."""
    mean = window_mean(obs.concurrency, window_s)
    if mean is None or not math.isfinite(mean):
        return "no metrics yet: keeping the current scale"
    in_flight = _milli(mean) if obs.ready > 0 else 0
    return PodGroups(usage_m=in_flight, counted=obs.ready + obs.pending)


def stabilize_recommendation(
    recommendations: Stamped, now: float, window_s: float, proposal: int
) -> tuple[int, Stamped]:
    """`stabilizeRecommendation`: the highest of the proposal and the recommendations younger
    than the window (older ones are dropped); the proposal is recorded."""
    cutoff = now - window_s
    kept = tuple((t, r) for t, r in recommendations if t > cutoff)
    return max([proposal] + [r for _, r in kept]), kept + ((now, proposal),)


def convert_with_rules(
    current: int,
    desired: int,
    *,
    min_replicas: int,
    max_replicas: int,
    factor: float = SCALE_UP_LIMIT_FACTOR,
    minimum: float = SCALE_UP_LIMIT_MINIMUM,
) -> tuple[int, str]:
    """`convertDesiredReplicasWithRules`: at least minReplicas, at most min(maxReplicas,
    max(factor × current, minimum)). Returns the count and what limited it ('bounds',
    'rate-limited' or ''). KEDA's HPA takes this path too."""
    scale_up_limit = int(max(factor * current, minimum))
    if desired < min_replicas:
        return min_replicas, "bounds"
    if desired > min(max_replicas, scale_up_limit):
        if max_replicas > scale_up_limit:
            return scale_up_limit, "rate-limited"
        return max_replicas, "bounds"
    return desired, ""


@dataclass(frozen=True, slots=True)
class Hpa:
    """The Kubernetes HPA as a `Policy`: one reconcile per sync period, never pokeable."""

    config: HpaConfig

    @property
    def name(self) -> str:
        return "hpa-behavior" if self.config.behavior else "hpa"

    @property
    def tick_s(self) -> float:
        return float(self.config.sync_period_s)

    @property
    def history_s(self) -> float:
        return float(self.config.sync_period_s)

    @property
    def pokeable(self) -> bool:
        return False

    def initial_replicas(self) -> int:
        return self.config.min_replicas

    def initial_state(self, now: float, ready: int) -> HpaState:
        return HpaState()

    def decide(self, observation: Observation, state: HpaState) -> tuple[Decision, HpaState]:
        """One reconcile on what the pods report over the last sync period."""
        pods = observed_pods(observation, max(1, round(self.config.sync_period_s)))
        return reconcile(self.config, state, observation.now, observation.desired, pods)


def reconcile(
    cfg: HpaConfig, state: HpaState, now: float, current: int, pods: PodGroups | str
) -> tuple[Decision, HpaState]:
    """horizontal.go `reconcileAutoscaler` for one metric, with currentReplicas = the scale
    target's spec; `pods` is why the metric is unavailable when it is a string."""
    if not state.recommendations:  # `recordInitialRecommendation`
        state = replace(state, recommendations=((now, current),))
    if current == 0:
        return Decision(0, "hpa-hold", "scaling disabled: the target is at 0 replicas"), state
    if current > cfg.max_replicas or current < cfg.min_replicas:
        bounded = min(max(current, cfg.min_replicas), cfg.max_replicas)
        decision = Decision(
            bounded, "bounds", f"{current} outside [{cfg.min_replicas}, {cfg.max_replicas}]"
        )
        return decision, _store_scale_event(cfg, state, now, current, bounded)
    if isinstance(pods, str):
        return Decision(current, "no-data", pods), state
    proposal = plain_metric_replicas(pods, current, _milli(cfg.target_per_pod), cfg.tolerance)
    if isinstance(proposal, str):
        return Decision(current, "no-data", proposal), state
    if cfg.behavior:
        return _normalize_with_behaviors(cfg, state, now, current, proposal)
    return _normalize(cfg, state, now, current, proposal)


def _normalize(
    cfg: HpaConfig, state: HpaState, now: float, current: int, proposal: Proposal
) -> tuple[Decision, HpaState]:
    """`normalizeDesiredReplicas`: stabilize over the downscale window, then the rules."""
    stabilized, recommendations = stabilize_recommendation(
        state.recommendations, now, cfg.downscale_stabilization_s, proposal.replicas
    )
    final, limit = convert_with_rules(
        current,
        stabilized,
        min_replicas=cfg.min_replicas,
        max_replicas=cfg.max_replicas,
        factor=cfg.scale_up_limit_factor,
        minimum=cfg.scale_up_limit_minimum,
    )
    state = replace(state, recommendations=recommendations)
    return _decision(proposal, stabilized, final, current, limit), state


def _normalize_with_behaviors(
    cfg: HpaConfig, state: HpaState, now: float, current: int, proposal: Proposal
) -> tuple[Decision, HpaState]:
    """`normalizeDesiredReplicasWithBehaviors`: stabilize, then apply the rate limits."""
    stabilized, recommendations = _stabilize_with_behaviors(
        cfg, state.recommendations, now, current, proposal.replicas
    )
    state = replace(state, recommendations=recommendations)
    final, limit = _rate_limit(cfg, state, now, current, stabilized)
    if final != current:
        state = _store_scale_event(cfg, state, now, current, final)
    return _decision(proposal, stabilized, final, current, limit), state


def _decision(
    proposal: Proposal, stabilized: int, final: int, current: int, limit: str
) -> Decision:
    detail = proposal.detail
    if stabilized != proposal.replicas:
        detail += f"; stabilized {proposal.replicas} -> {stabilized}"
    if limit:
        detail += f"; {limit} {stabilized} -> {final}"
    return Decision(final, _reason(proposal, stabilized, final, current, limit), detail)


def _stabilize_with_behaviors(
    cfg: HpaConfig, recommendations: Stamped, now: float, current: int, desired: int
) -> tuple[int, Stamped]:
    """`stabilizeRecommendationWithBehaviors`: no higher than the lowest recommendation of the
    scale-up window, no lower than the highest of the scale-down window; then record the
    unstabilized recommendation, dropping ones older than both windows."""
    up_cutoff = now - cfg.up_rules.stabilization_s
    down_cutoff = now - cfg.down_rules.stabilization_s
    up = min([desired] + [r for t, r in recommendations if t > up_cutoff])
    down = max([desired] + [r for t, r in recommendations if t > down_cutoff])
    stabilized = min(max(current, up), down)
    kept = tuple((t, r) for t, r in recommendations if t >= up_cutoff or t >= down_cutoff)
    return stabilized, kept + ((now, desired),)


def _rate_limit(
    cfg: HpaConfig, state: HpaState, now: float, current: int, desired: int
) -> tuple[int, str]:
    """`convertDesiredReplicasWithBehaviorRate`: returns the allowed count and what limited it
    ('rate-limited', 'bounds', or '' when nothing did)."""
    if desired > current:
        limit = max(_scale_up_limit(cfg.up_rules, state, now, current), current)
        allowed, why = (
            (limit, "rate-limited") if cfg.max_replicas > limit else (cfg.max_replicas, "bounds")
        )
        return (allowed, why) if desired > allowed else (desired, "")
    if desired < current:
        limit = min(_scale_down_limit(cfg.down_rules, state, now, current), current)
        allowed, why = (
            (limit, "rate-limited") if cfg.min_replicas < limit else (cfg.min_replicas, "bounds")
        )
        return (allowed, why) if desired < allowed else (desired, "")
    return desired, ""


def _period_start(policy: HpaPolicy, state: HpaState, now: float, current: int) -> int:
    """Replicas at the start of the policy's period (`getReplicasChangePerPeriod`)."""
    cutoff = now - policy.period_s
    added = sum(n for t, n in state.scale_up_events if t > cutoff)
    removed = sum(n for t, n in state.scale_down_events if t > cutoff)
    return current - added + removed


def _scale_up_limit(rules: HpaRules, state: HpaState, now: float, current: int) -> int:
    """`calculateScaleUpLimitWithScalingRules`: Max picks the largest proposal, Min the smallest."""
    if rules.select_policy == SELECT_DISABLED:
        return current
    proposals = []
    for policy in rules.policies:
        start = _period_start(policy, state, now, current)
        if policy.type == PODS:
            proposals.append(start + policy.value)
        else:
            proposals.append(math.ceil(start * (1 + policy.value / 100)))
    return max(proposals) if rules.select_policy == SELECT_MAX else min(proposals)


def _scale_down_limit(rules: HpaRules, state: HpaState, now: float, current: int) -> int:
    """`calculateScaleDownLimitWithBehaviors`: Max allows the biggest drop (lowest count)."""
    if rules.select_policy == SELECT_DISABLED:
        return current
    proposals = []
    for policy in rules.policies:
        start = _period_start(policy, state, now, current)
        if policy.type == PODS:
            proposals.append(start - policy.value)
        else:
            proposals.append(int(start * (1 - policy.value / 100)))
    return min(proposals) if rules.select_policy == SELECT_MAX else max(proposals)


def _store_scale_event(
    cfg: HpaConfig, state: HpaState, now: float, before: int, after: int
) -> HpaState:
    """`storeScaleEvent`: remember the change (only with `behavior`, the one reader); events
    older than the longest policy period of their direction are never read again and are
    dropped."""
    if not cfg.behavior:
        return state
    if after > before:
        cutoff = now - max(p.period_s for p in cfg.up_rules.policies)
        ups = tuple(e for e in state.scale_up_events if e[0] >= cutoff) + ((now, after - before),)
        return replace(state, scale_up_events=ups)
    cutoff = now - max(p.period_s for p in cfg.down_rules.policies)
    downs = tuple(e for e in state.scale_down_events if e[0] >= cutoff) + ((now, before - after),)
    return replace(state, scale_down_events=downs)


def _reason(proposal: Proposal, stabilized: int, final: int, current: int, limit: str) -> str:
    if limit == "bounds":
        return "bounds"
    if limit:
        return "hpa-rate-limited"
    if proposal.held and final == current:
        return "hpa-hold"
    if stabilized != proposal.replicas:
        return "hpa-stabilized"
    if final > current:
        return "hpa-scale-up"
    if final < current:
        return "hpa-scale-down"
    return "hpa-hold"
