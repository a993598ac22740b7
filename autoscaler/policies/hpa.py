"""The Kubernetes HorizontalPodAutoscaler (autoscaling/v2 defaults) on a per-pod concurrency metric.

This is the second baseline Leadtime is measured against, so it follows the controller's own
code (kubernetes/kubernetes pkg/controller/podautoscaler): a `Pods` metric with an
`AverageValue` target goes through `ReplicaCalculator.calcPlainMetricReplicas`
(replica_calculator.go), then `normalizeDesiredReplicasWithBehaviors` (horizontal.go):
stabilization over recent recommendations, then rate limits from recent scale events.
The defaults are those of pkg/apis/autoscaling/v2/defaults.go and the controller flags
(15 s sync period, 0.1 tolerance, 300 s downscale stabilization).

The controller's in-memory `recommendations`, `scaleUpEvents` and `scaleDownEvents` live in
the immutable `HpaState`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

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


def _fail(field_name: str, allowed: str, value: object) -> None:
    raise InputError(f"hpa.{field_name}: must be {allowed}, got {value!r}")


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
    """An HPA on a `Pods` metric (per-pod concurrency) with an `AverageValue` target."""

    target_per_pod: float
    min_replicas: int = 1
    max_replicas: int = MAX_INT32
    sync_period_s: float = 15.0
    tolerance: float = 0.1
    scale_up: HpaRules = field(default_factory=default_scale_up)
    scale_down: HpaRules = field(default_factory=default_scale_down)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.target_per_pod) and self.target_per_pod > 0):
            _fail("target_per_pod", "a number > 0", self.target_per_pod)
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
        self.scale_up.validate("scale_up")
        self.scale_down.validate("scale_down")


Stamped = tuple[tuple[float, int], ...]
"""(time, value) pairs: recommendations, or replicas added/removed by a scale event."""


@dataclass(frozen=True, slots=True)
class HpaState:
    """The controller's per-HPA memory (horizontal.go)."""

    recommendations: Stamped = ()
    """Unstabilized recommendations within the longer stabilization window."""
    scale_up_events: Stamped = ()
    scale_down_events: Stamped = ()
    """Replicas added / removed by rescales within the longest policy period."""


@dataclass(frozen=True, slots=True)
class _Proposal:
    """`calcPlainMetricReplicas`'s answer, with why it held (tolerance or direction flip)."""

    replicas: int
    held: bool
    detail: str


@dataclass(frozen=True, slots=True)
class Hpa:
    """The Kubernetes HPA as a `Policy`: one reconcile per sync period, never pokeable."""

    config: HpaConfig

    @property
    def name(self) -> str:
        return "hpa"

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
        """horizontal.go `reconcileAutoscaler`, with currentReplicas = the scale target's spec."""
        cfg = self.config
        current = observation.desired
        now = observation.now
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
        proposal = _metric_replicas(cfg, observation)
        if isinstance(proposal, str):
            return Decision(current, "no-data", proposal), state
        return self._normalize(observation, state, proposal)

    def _normalize(
        self, obs: Observation, state: HpaState, proposal: _Proposal
    ) -> tuple[Decision, HpaState]:
        """`normalizeDesiredReplicasWithBehaviors`: stabilize, then apply the rate limits."""
        cfg = self.config
        current, now = obs.desired, obs.now
        stabilized, recommendations = _stabilize(
            cfg, state.recommendations, now, current, proposal.replicas
        )
        state = replace(state, recommendations=recommendations)
        final, limit = _rate_limit(cfg, state, now, current, stabilized)
        detail = proposal.detail
        if stabilized != proposal.replicas:
            detail += f"; stabilized {proposal.replicas} -> {stabilized}"
        if limit:
            detail += f"; {limit} {stabilized} -> {final}"
        if final != current:
            state = _store_scale_event(cfg, state, now, current, final)
        return Decision(final, _reason(proposal, stabilized, final, current, limit), detail), state


def _metric_replicas(cfg: HpaConfig, obs: Observation) -> _Proposal | str:
    """`calcPlainMetricReplicas` (replica_calculator.go) for the per-pod mean concurrency of
    the last sync period. Pending pods are the unready ones: ignored, and on a scale-up
    counted as 0 so that cold-starting capacity is not requested twice. Returns why there is
    no proposal as a string (no metric yet, no ready pod) — the controller keeps the scale."""
    mean = window_mean(obs.concurrency, max(1, round(cfg.sync_period_s)))
    if mean is None:
        return "no metrics yet: keeping the current scale"
    if obs.ready == 0:
        return "no ready pods report the metric: keeping the current scale"
    current, ready, unready = obs.desired, obs.ready, obs.pending
    ratio = (mean / ready) / cfg.target_per_pod
    detail = f"per-pod {mean / ready:.2f} / target {cfg.target_per_pod:g} = {ratio:.2f}"
    if not (unready > 0 and ratio > 1.0):
        if abs(1.0 - ratio) <= cfg.tolerance:
            return _Proposal(current, True, detail + " within tolerance")
        return _Proposal(math.ceil(ratio * ready), False, detail)
    counted = ready + unready
    new_ratio = (mean / counted) / cfg.target_per_pod
    detail += f"; with {unready} unready pods at 0: {new_ratio:.2f}"
    if abs(1.0 - new_ratio) <= cfg.tolerance or new_ratio < 1.0:
        return _Proposal(current, True, detail + " holds")
    return _Proposal(math.ceil(new_ratio * counted), False, detail)


def _stabilize(
    cfg: HpaConfig, recommendations: Stamped, now: float, current: int, desired: int
) -> tuple[int, Stamped]:
    """`stabilizeRecommendationWithBehaviors`: no higher than the lowest recommendation of the
    scale-up window, no lower than the highest of the scale-down window; then record the
    unstabilized recommendation, dropping ones older than both windows."""
    up_cutoff = now - cfg.scale_up.stabilization_s
    down_cutoff = now - cfg.scale_down.stabilization_s
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
        limit = max(_scale_up_limit(cfg.scale_up, state, now, current), current)
        allowed, why = (
            (limit, "rate-limited") if cfg.max_replicas > limit else (cfg.max_replicas, "bounds")
        )
        return (allowed, why) if desired > allowed else (desired, "")
    if desired < current:
        limit = min(_scale_down_limit(cfg.scale_down, state, now, current), current)
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
    """`storeScaleEvent`: remember the change; events older than the longest policy period of
    their direction are never read again and are dropped."""
    if after > before:
        cutoff = now - max(p.period_s for p in cfg.scale_up.policies)
        ups = tuple(e for e in state.scale_up_events if e[0] >= cutoff) + ((now, after - before),)
        return replace(state, scale_up_events=ups)
    cutoff = now - max(p.period_s for p in cfg.scale_down.policies)
    downs = tuple(e for e in state.scale_down_events if e[0] >= cutoff) + ((now, before - after),)
    return replace(state, scale_down_events=downs)


def _reason(proposal: _Proposal, stabilized: int, final: int, current: int, limit: str) -> str:
    if limit == "bounds":
        return "bounds"
    if limit:
        return "hpa-rate-limited"
    if proposal.held:
        return "hpa-hold"
    if stabilized != proposal.replicas:
        return "hpa-stabilized"
    if final > current:
        return "hpa-scale-up"
    if final < current:
        return "hpa-scale-down"
    return "hpa-hold"
