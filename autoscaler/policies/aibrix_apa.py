"""AIBrix's APA (its own pod autoscaler for LLM serving) with AIBrix's defaults, as a pure policy.

A baseline, so it follows AIBrix's code (vllm-project/aibrix, pkg/controller/podautoscaler/),
not its idea. One `decide` call plays one periodic reconcile of a PodAutoscaler with
`scalingStrategy: APA` and one `pod` metric source:

- podautoscaler_controller.go: `Run` enqueues every PodAutoscaler each `DefaultResyncInterval`
  (10 s); `reconcileCustomPA` reads currentReplicas from the scale subresource's
  `spec.replicas`; `computeScaleDecision` holds a target at 0 when minReplicas != 0 ("scaling
  disabled"), clamps to the bounds when the metrics fail, otherwise takes the recommendation
  through `stabilizeRecommendation` (the cooldown windows) and the hard replica bounds.
- autoscaler.go: `executeScalingPipeline` (collect, record, aggregate, recommend) and
  `applyPendingReplicaGuard` (pods not yet ready neither count twice on a scale-up nor as idle
  on a scale-down).
- metrics/collector.go, metrics/client.go and the time window (aggregation): every reconcile
  scrapes each pod, records the *mean over the pods that answered* as one sample of a 1 s
  granularity window of `observeWindowSeconds` (default 180, `DefaultStableWindowDuration`), and
  APA reads the mean of the samples in that window (`GetMetricValue`, the stable value).
- algorithm/apa.go `computeTargetReplicas` (after Huo et al. 2023), then `applyConstraints`
  (algorithm/algorithm.go). With r = per-pod value / targetValue and N = currentReplicas:
  r > 1 + up tolerance: min(ceil(N * r), ceil(maxScaleUpRate * N));
  r < 1 - down tolerance: max(ceil(N * r), floor(N / maxScaleDownRate)); otherwise N.
- context/context.go `NewBaseScalingContext` and types/annotations.go: the defaults and the
  `autoscaling.aibrix.ai/*` annotations, documented in
  docs/source/features/autoscaling/metric-based-autoscaling.rst.

Defaults (code, docs): targetValue — required in the spec, no default (`make` derives one);
`max-scale-up-rate` 2; `max-scale-down-rate` 2; `scale-up-tolerance` 0.1;
`scale-down-tolerance` 0.1; `scale-up-cooldown-window` 0 s; `scale-down-cooldown-window` 300 s;
`observeWindowSeconds` 180; minReplicas 1 when unset; maxReplicas required (here: int32 max,
i.e. unbounded); resync 10 s. Field names below are AIBrix's (`UpFluctuationTolerance`, ...)
in snake case; durations in seconds carry `_s`.

The samples shipped with AIBrix (samples/autoscaling/apa.yaml and others) still carry the legacy
keys `autoscaling.aibrix.ai/up-fluctuation-tolerance: 0.1`, `down-fluctuation-tolerance: 0.2`
and `apa.autoscaling.aibrix.ai/window: 30s`, defaults of the older APA scaler
(scaler/apa.go `NewApaScalingContext`: 0.1, 0.2 and a 60 s window). The current annotation
parser does not know these keys, so the defaults above apply to such a PodAutoscaler. To
reproduce the older behaviour pass `down_fluctuation_tolerance=0.2, observe_window_seconds=60`.

How our observation maps onto the metric: the metric is in-flight requests per pod (vLLM's
running plus waiting requests; Leadtime's `concurrency`, queued + in service). A pod answers the
scrape once it serves, i.e. when ready, so each reconcile records `concurrency[-1] / ready` — the
newest delivered second spread over the ready pods — and the per-pod value is the mean of those
samples over the observe window. currentReplicas is `observation.desired` (the scale target's
spec), ReadyReplicas `observation.ready`, PendingReplicas `observation.pending`.

Upstream quirks kept on purpose: the window averages per-pod values sampled at whatever pod count
there was and APA multiplies that average by today's count, so after a scale-up the old, higher
per-pod samples ask for more again until they leave the window (overshoot under a cold start);
the window drops old samples only when a new one is recorded (a target with no pod answering
keeps its old average); the scale-down cooldown takes the
*lowest* recommendation of the last 300 s (the scale-up one the highest), the reverse of the
Kubernetes HPA's stabilization; APA multiplies the current count, so it scales to zero (with
min_replicas = 0 and an idle window) but never from zero, and nothing pokes it.

Not modelled, and why:
- several metric sources (AIBrix takes the highest recommendation) and sources other than a
  per-pod metric (resource, custom, external): Leadtime observes one signal per service;
- a partial scrape failure (some ready pods not answering): the simulator's pods always answer;
- scheduled replica bounds (`spec.schedules`, with warming from zero inside a window), StormService
  roles, RayClusterFleet and the sleep-mode replica count: features around the algorithm that a
  plain Deployment with fixed bounds does not use;
- reconciles triggered by object changes between two resyncs, the PodAutoscaler status, events
  and scaling history: they do not change the replica count the resync decides;
- the `scale-to-zero` annotation: the APA path never reads it (only minReplicas bounds it); the
  KPA-only panic window the metrics client also fills; int32 overflow (max_replicas caps it).

What the controller keeps in memory per PodAutoscaler — the metric window and the
recommendation history of `stabilizeRecommendation` — lives in the immutable `AibrixApaState`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NoReturn

from autoscaler.errors import InputError
from autoscaler.policy import Decision, Observation

NAME = "aibrix-apa"
MAX_INT32 = 2**31 - 1
"""maxReplicas when none is given: AIBrix requires it (> 0); int32 max leaves it unbounded."""
MAX_METRIC_WINDOW_S = 3600
"""`maxMetricWindowSeconds` in podautoscaler_controller.go `validateMetricWindows`."""
DEFAULT_TARGET_VALUE = 30.0
"""`TargetValue` of AIBrix's base scaling context (common/context.go `NewBaseScalingContext`),
the only default target its code states; `make` uses it when the slots are unknown."""
SLOT_TARGET_FRACTION = 0.5
"""Target half of a pod's capacity, as every AIBrix autoscaling sample does
(`targetValue: "0.5"` of the KV-cache usage fraction in samples/autoscaling/*.yaml)."""


def _fail(field_name: str, allowed: str, value: object) -> NoReturn:
    raise InputError(f"aibrix-apa.{field_name}: must be {allowed}, got {value!r}")


def _finite(value: float) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class AibrixApaConfig:
    """A PodAutoscaler with `scalingStrategy: APA` on one per-pod in-flight-requests metric."""

    target_value: float
    """`metricsSources[].targetValue`: per-pod in-flight requests to hold (the SLO knob)."""
    min_replicas: int = 1
    max_replicas: int = MAX_INT32
    max_scale_up_rate: float = 2.0
    """`autoscaling.aibrix.ai/max-scale-up-rate`: at most ceil(rate * current) per decision."""
    max_scale_down_rate: float = 2.0
    """`autoscaling.aibrix.ai/max-scale-down-rate`: at least floor(current / rate)."""
    up_fluctuation_tolerance: float = 0.1
    """`autoscaling.aibrix.ai/scale-up-tolerance`: scale up only above target * (1 + this)."""
    down_fluctuation_tolerance: float = 0.1
    """`autoscaling.aibrix.ai/scale-down-tolerance`: scale down only below target * (1 - this)."""
    scale_up_cooldown_window_s: float = 0.0
    """`autoscaling.aibrix.ai/scale-up-cooldown-window`."""
    scale_down_cooldown_window_s: float = 300.0
    """`autoscaling.aibrix.ai/scale-down-cooldown-window`."""
    observe_window_seconds: int = 180
    """`spec.observeWindowSeconds`: the metric window APA averages over (1 s buckets)."""
    resync_interval_s: float = 10.0
    """`DefaultResyncInterval`: how often every PodAutoscaler is reconciled."""

    def __post_init__(self) -> None:
        if not (_finite(self.target_value) and self.target_value > 0):
            _fail("target_value", "a number > 0", self.target_value)
        if not (isinstance(self.min_replicas, int) and self.min_replicas >= 0):
            _fail("min_replicas", "an integer >= 0", self.min_replicas)
        if not (
            isinstance(self.max_replicas, int)
            and 1 <= self.max_replicas <= MAX_INT32
            and self.max_replicas >= self.min_replicas
        ):
            _fail(
                "max_replicas",
                f"an integer in [max(1, min_replicas={self.min_replicas}), {MAX_INT32}]",
                self.max_replicas,
            )
        for name in ("max_scale_up_rate", "max_scale_down_rate"):
            rate = getattr(self, name)
            if not (_finite(rate) and rate >= 1.0):
                _fail(name, "a number >= 1.0", rate)
        if not (_finite(self.up_fluctuation_tolerance) and self.up_fluctuation_tolerance >= 0):
            _fail("up_fluctuation_tolerance", "a number >= 0", self.up_fluctuation_tolerance)
        down = self.down_fluctuation_tolerance
        if not (_finite(down) and 0 <= down <= 1):
            _fail("down_fluctuation_tolerance", "a fraction in [0, 1]", down)
        for name in ("scale_up_cooldown_window_s", "scale_down_cooldown_window_s"):
            window = getattr(self, name)
            if not (_finite(window) and window >= 0):
                _fail(name, "seconds >= 0", window)
        seconds = self.observe_window_seconds
        if not (
            isinstance(seconds, int)
            and not isinstance(seconds, bool)
            and 1 <= seconds <= MAX_METRIC_WINDOW_S
        ):
            _fail("observe_window_seconds", f"whole seconds in [1, {MAX_METRIC_WINDOW_S}]", seconds)
        if not (_finite(self.resync_interval_s) and self.resync_interval_s >= 1):
            _fail("resync_interval_s", "at least 1 second", self.resync_interval_s)


Samples = tuple[tuple[int, float], ...]
"""(second, per-pod value) samples of the metric window, oldest first."""
Stamped = tuple[tuple[float, int], ...]
"""(time, recommendation) pairs of the cooldown history, oldest first."""


@dataclass(frozen=True, slots=True)
class AibrixApaState:
    """The controller's per-PodAutoscaler memory."""

    samples: Samples = ()
    """The metrics client's stable window (metrics/client.go `stableWindows`)."""
    recommendations: Stamped = ()
    """`PodAutoscalerReconciler.recommendations`, read by `stabilizeRecommendation`."""


@dataclass(frozen=True, slots=True)
class AibrixApa:
    """AIBrix's APA as a `Policy`: one reconcile per resync interval, never pokeable."""

    config: AibrixApaConfig

    @property
    def name(self) -> str:
        return NAME

    @property
    def tick_s(self) -> float:
        return float(self.config.resync_interval_s)

    @property
    def history_s(self) -> float:
        """A reconcile reads the newest second; the window itself lives in the state."""
        return float(self.config.resync_interval_s)

    @property
    def pokeable(self) -> bool:
        return False

    def initial_replicas(self) -> int:
        """The workload's own replicas: minReplicas, and at least a Deployment's default of 1
        (APA could never leave 0)."""
        return max(1, self.config.min_replicas)

    def initial_state(self, now: float, ready: int) -> AibrixApaState:
        return AibrixApaState()

    def decide(
        self, observation: Observation, state: AibrixApaState
    ) -> tuple[Decision, AibrixApaState]:
        """`computeScaleDecision` for one reconcile, currentReplicas = the scale's spec."""
        cfg = self.config
        current = observation.desired
        if current == 0 and cfg.min_replicas != 0:
            detail = "scaling disabled: the target is at 0 replicas and min_replicas > 0"
            return Decision(0, "aibrix-apa-hold", detail), state
        scraped = _scrape(observation, current)
        if isinstance(scraped, str):
            return _without_metrics(cfg, current, scraped), state
        samples = state.samples
        if scraped is not None:
            samples = _record(cfg, samples, observation.now, scraped)
        if not samples:
            why = "no sample in the metric window yet"
            return _without_metrics(cfg, current, why), state
        stable = sum(value for _, value in samples) / len(samples)
        raw, limited = _compute_target_replicas(cfg, current, stable)
        constrained = _bounded(cfg, raw)
        guarded = _pending_replica_guard(cfg, observation, current, constrained, stable)
        stabilized, recommendations = _stabilize(
            cfg, state.recommendations, observation.now, current, guarded
        )
        final = _bounded(cfg, stabilized)
        detail = (
            f"per-pod {stable:.2f} (mean of {len(samples)} samples over "
            f"{cfg.observe_window_seconds}s) / target {cfg.target_value:g} = "
            f"{stable / cfg.target_value:.2f}, current {current} -> {raw}"
        )
        if limited:
            detail += " (rate-limited)"
        if constrained != raw:
            detail += f"; bounded to {constrained}"
        if guarded != constrained:
            detail += f"; pending-replica guard ({observation.ready} ready) -> {guarded}"
        if stabilized != guarded:
            detail += f"; cooldown -> {stabilized}"
        if final != stabilized:
            detail += f"; bounded to {final}"
        reason = _reason(raw, constrained, guarded, stabilized, final, current, limited)
        return Decision(final, reason, detail), AibrixApaState(samples, recommendations)


def _scrape(obs: Observation, current: int) -> float | str | None:
    """One scrape of the pods (metrics/collector.go `CollectMetrics`), averaged over the pods
    that answered (`UpdateMetrics`). A string says why the collection failed; None means there
    is no pod to scrape (0 replicas), which records nothing but is not a failure."""
    series = obs.concurrency
    if series.size == 0 or not math.isfinite(float(series[-1])):
        return "no metrics this reconcile"
    if obs.ready <= 0:
        if current == 0:
            return None
        return "no ready pod answers the metrics scrape"
    return max(0.0, float(series[-1])) / obs.ready


def _record(cfg: AibrixApaConfig, samples: Samples, now: float, value: float) -> Samples:
    """`TimeWindow.Record` at 1 s granularity: drop samples a window or more older than this
    one, then keep this one while the window has room (one slot per bucket)."""
    index = math.floor(now)
    size = cfg.observe_window_seconds
    kept = tuple(s for s in samples if s[0] > index - size)
    return (*kept, (index, value)) if len(kept) < size else kept


def _compute_target_replicas(
    cfg: AibrixApaConfig, current: int, per_pod: float
) -> tuple[int, bool]:
    """algorithm/apa.go `computeTargetReplicas`; True when a rate limit decided."""
    ratio = per_pod / cfg.target_value
    if ratio > 1 + cfg.up_fluctuation_tolerance:
        most = math.ceil(cfg.max_scale_up_rate * current)
        expected = math.ceil(current * ratio)
        return (most, True) if expected > most else (expected, False)
    if ratio < 1 - cfg.down_fluctuation_tolerance:
        least = math.floor(current / cfg.max_scale_down_rate)
        expected = math.ceil(current * ratio)
        return (least, True) if expected < least else (expected, False)
    return current, False


def _bounded(cfg: AibrixApaConfig, replicas: int) -> int:
    """`applyConstraints` and the controller's hard bounds."""
    return min(max(replicas, cfg.min_replicas), cfg.max_replicas)


def _pending_replica_guard(
    cfg: AibrixApaConfig, obs: Observation, current: int, desired: int, per_pod: float
) -> int:
    """autoscaler.go `applyPendingReplicaGuard` for APA on a pod metric: on a scale-up the
    pending pods count as carrying no load, on a scale-down as carrying the target; the result
    stays between the current count and the unguarded recommendation."""
    if obs.pending <= 0 or desired == current or current <= 0:
        return desired
    ready = min(max(obs.ready, 0), current)
    pending = current - ready
    if pending <= 0:
        return desired
    target = cfg.target_value
    if desired > current:
        adjusted = per_pod * ready / current
        guarded = math.ceil(current * adjusted / target)
        return min(max(guarded, current), desired)
    adjusted = (per_pod * ready + target * pending) / current
    guarded = math.ceil(current * adjusted / target)
    return max(min(guarded, current), desired)


def _stabilize(
    cfg: AibrixApaConfig, history: Stamped, now: float, current: int, recommendation: int
) -> tuple[int, Stamped]:
    """podautoscaler_controller.go `stabilizeRecommendation`: remember the recommendation, drop
    those older than the longer cooldown, then take the highest of the scale-up window on the
    way up and the lowest of the scale-down window on the way down (strictly newer than
    now - window; the recommendation itself when the window holds none)."""
    up, down = cfg.scale_up_cooldown_window_s, cfg.scale_down_cooldown_window_s
    keep_after = now - max(up, down)
    kept = tuple(r for r in (*history, (now, recommendation)) if r[0] > keep_after)
    if recommendation == current:
        return current, kept
    window = up if recommendation > current else down
    inside = [r for t, r in kept if t > now - window]
    if not inside:
        return recommendation, kept
    return (max(inside) if recommendation > current else min(inside)), kept


def _without_metrics(cfg: AibrixApaConfig, current: int, why: str) -> Decision:
    """The metrics failed: only the bounds move the scale (`computeScaleDecision`)."""
    if current > cfg.max_replicas:
        return Decision(cfg.max_replicas, "bounds", f"{why}; {current} above max_replicas")
    if current < cfg.min_replicas:
        return Decision(cfg.min_replicas, "bounds", f"{why}; {current} below min_replicas")
    return Decision(current, "no-data", f"{why}: keeping the current scale")


def _reason(
    raw: int,
    constrained: int,
    guarded: int,
    stabilized: int,
    final: int,
    current: int,
    limited: bool,
) -> str:
    if final != stabilized or (constrained != raw and final == constrained):
        return "bounds"
    if final == current:
        return "aibrix-apa-hold"
    if stabilized != guarded:
        return "aibrix-apa-stabilized"
    if guarded != constrained:
        return "aibrix-apa-pending"
    if limited:
        return "aibrix-apa-rate-limited"
    return "aibrix-apa-scale-up" if final > current else "aibrix-apa-scale-down"


def make(container_concurrency: int, **overrides: object) -> AibrixApa:
    """APA with AIBrix's defaults for a service with `container_concurrency` request slots per
    replica (0: unknown).

    An operator of an LLM server with N slots (vLLM's max_num_seqs) sets the per-pod target of
    in-flight requests to half the slots, the share every AIBrix sample targets
    (SLOT_TARGET_FRACTION), so target_value = 0.5 * N; with the slots unknown, AIBrix's default
    TargetValue of 30. `overrides` are `AibrixApaConfig` fields, `target_value` included.
    """
    if isinstance(container_concurrency, bool) or not isinstance(container_concurrency, int):
        raise InputError(
            f"aibrix-apa container_concurrency: must be an integer >= 0, "
            f"got {container_concurrency!r}"
        )
    if container_concurrency < 0:
        raise InputError(
            f"aibrix-apa container_concurrency: must be an integer >= 0 (0 = unknown), "
            f"got {container_concurrency!r}"
        )
    target = (
        SLOT_TARGET_FRACTION * container_concurrency
        if container_concurrency
        else DEFAULT_TARGET_VALUE
    )
    fields: dict[str, object] = {"target_value": target, **overrides}
    try:
        config = AibrixApaConfig(**fields)  # type: ignore[arg-type]
    except TypeError as error:
        raise InputError(f"aibrix-apa: {error}") from None
    return AibrixApa(config)
