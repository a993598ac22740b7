"""The Leadtime policy: provision for the forecast one cold start ahead, never below the KPA.

Each tick:
1. the reactive safety net is Knative's KPA, unchanged (`kpa.py`), on the observed signal;
2. the lead time L is the service's measured cold start (a prior until one is measured) plus
   the actuation delay: replicas requested now serve from now + L on;
3. the predictive demand is the forecast's median arrival rate at its peak over
   [now, now + L + horizon], times the service's mean time in service (learned by Little's law
   from the same metrics) — as concurrency, against the KPA's per-replica target (or, with the
   KPA's `rps` metric, as arrivals/s against its rps target), lowered to the replica's real
   capacity when saturation shows it is smaller (`capacity.py`) — plus warm
   headroom: the replicas between that median and the forecast's quantile q (default p90), so
   the spare ready capacity grows with the forecast's uncertainty and shrinks when it is sure;
4. the decision is the larger of the two; what the forecast asks for is held for a scale-down
   delay, so a dip in the forecast does not shed capacity a cold start will be needed to rebuild;
5. without a usable forecast (too little history, live quality bad) the KPA decides alone,
   and the reason says `fallback:<why>`;
6. scale to zero with foresight: while the service is idle, the hybrid-histogram policy of its
   past idle times (`keepalive.py`, Shahrad et al., ATC 2020) decides whether the last replica
   is kept warm (`keepalive`), released, or requested again one lead time before the next
   arrival is expected (`prewarm`) — it is never released right before a predicted arrival;
7. GPU placeholder pool: `scale_up_need` tells the cluster how many replicas the forecast adds
   within one node provisioning (median and quantile q), from which `placeholders.py` sizes
   the pool of spare GPUs across every service of a GPU class.

Holding the peak from now (not only after L) is deliberate: a replica removed now takes L to
come back, so capacity stays while the forecast says it will be needed within L + horizon.
This file is pure: the forecast arrives in the Observation, computed by the shell.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from autoscaler.errors import InputError
from autoscaler.policies import keepalive
from autoscaler.policies.capacity import effective_target, saturation_slots
from autoscaler.policies.kpa import RPS, Kpa, KpaConfig, KpaState
from autoscaler.policies.placeholders import ScaleUpNeed
from autoscaler.policy import Decision, Observation
from forecasting.forecast import Forecast


@dataclass(frozen=True, slots=True)
class LeadtimeConfig:
    """Knobs with defaults a user should not need to touch (one set for every trace)."""

    kpa: KpaConfig = field(default_factory=KpaConfig)
    """The reactive floor, with Knative's names and defaults."""
    idle: keepalive.HistogramConfig = field(default_factory=keepalive.HistogramConfig)
    """The idle-time histogram behind keep-alive and pre-warm (Shahrad et al. defaults)."""
    quantile: float = 0.9
    """Forecast quantile provisioned for: the median plus warm headroom up to this quantile."""
    horizon_s: float = 60.0
    """How far past the lead time capacity is planned."""
    cold_start_prior_s: float = 60.0
    """Lead time before a cold start has been measured (an LLM replica's order of magnitude)."""
    actuation_delay_s: float = 2.0
    """From a decision to the replica being requested (one tick)."""
    scale_down_delay_s: float = 120.0
    """How long a forecast-driven count is held at least before it may go down."""
    hold_leads: float = 2.0
    """...and at least this many lead times: a replica released now takes a lead time (and a
    cold start's GPU-seconds) to come back, so releasing it only pays when it stays released
    longer than that (the ski-rental argument); with slow cold starts the hold grows."""
    service_time_window_s: float = 300.0
    """Window of the Little's-law estimate of time in service."""
    service_time_prior_s: float = 1.0
    learn_capacity: bool = True
    """Learn each replica's real slots from saturated seconds and never plan above them."""
    placeholders: bool = True
    """Whether this service's forecast growth sizes the cluster's GPU placeholder pool."""

    def lead_time_s(self, cold_start_s: float | None) -> float:
        """From asking for a replica to its serving: the measured cold start (the prior until
        one is measured) plus the actuation delay."""
        return (cold_start_s or self.cold_start_prior_s) + self.actuation_delay_s

    def hold_s(self, lead_s: float) -> float:
        """How long a forecast-driven count is held: `hold_leads` lead times, at least the
        scale-down delay."""
        return max(self.scale_down_delay_s, self.hold_leads * lead_s)

    def __post_init__(self) -> None:
        if not 0.5 <= self.quantile < 1:
            raise InputError(f"leadtime.quantile: must be in [0.5, 1), got {self.quantile!r}")
        for name in (
            "horizon_s",
            "cold_start_prior_s",
            "service_time_window_s",
            "service_time_prior_s",
        ):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise InputError(f"leadtime.{name}: must be a positive duration, got {value!r}")
        for name in ("actuation_delay_s", "scale_down_delay_s", "hold_leads"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise InputError(f"leadtime.{name}: must be a duration >= 0, got {value!r}")


@dataclass(frozen=True, slots=True)
class LeadtimeState:
    kpa: KpaState
    service_time_s: float
    """Current estimate of the mean time a request spends in service."""
    held: tuple[tuple[float, int], ...] = ()
    """(time, predictive count) within the hold, oldest first, counts strictly decreasing:
    the running maximum of a sliding window (a later count at least as high supersedes the
    earlier ones, so the tuple stays a handful of entries long)."""
    idle: keepalive.HistogramState | None = None
    """Histogram of this service's past idle times."""
    idle_since: float | None = None
    """When the current idle period began; None while requests are flowing."""
    slots: float | None = None
    """Requests one replica was seen serving at once while requests queued (learned capacity)."""


@dataclass(frozen=True, slots=True)
class Leadtime:
    """The Leadtime policy as a `Policy` (see the module docstring)."""

    config: LeadtimeConfig = field(default_factory=LeadtimeConfig)

    @property
    def name(self) -> str:
        return "leadtime" if self.config.placeholders else "leadtime:no-placeholders"

    @property
    def tick_s(self) -> float:
        return self._kpa.tick_s

    @property
    def history_s(self) -> float:
        return max(self._kpa.history_s, self.config.service_time_window_s)

    @property
    def pokeable(self) -> bool:
        return True

    @property
    def _kpa(self) -> Kpa:
        return Kpa(self.config.kpa)

    @property
    def forecast_reach_s(self) -> float:
        """How far past `now` this policy reads the forecast, beyond the cold start itself."""
        return self.config.horizon_s + self.config.actuation_delay_s

    def initial_replicas(self) -> int:
        return self._kpa.initial_replicas()

    def initial_state(self, now: float, ready: int) -> LeadtimeState:
        kpa_state = self._kpa.initial_state(now, ready)
        idle = keepalive.initial_state(self.config.idle)
        return LeadtimeState(kpa_state, self.config.service_time_prior_s, idle=idle)

    def decide(
        self, observation: Observation, state: LeadtimeState
    ) -> tuple[Decision, LeadtimeState]:
        reactive, kpa_state = self._kpa.decide(observation, state.kpa)
        service = self._service_time(observation, state.service_time_s)
        slots = saturation_slots(observation, state.slots) if self.config.learn_capacity else None
        state = replace(state, kpa=kpa_state, service_time_s=service, slots=slots)
        state = self._track_idle(observation, state)
        decision, state = self._combine(observation, state, reactive)
        return self._foresee_idle(observation, state, decision), state

    def _combine(
        self, observation: Observation, state: LeadtimeState, reactive: Decision
    ) -> tuple[Decision, LeadtimeState]:
        """The larger of the KPA's decision and the held forecast demand."""
        if observation.forecast is None:
            # what an earlier forecast asked for stays held for its window: a forecaster that
            # fails (or goes stale) must not shed the capacity it had planned
            why = observation.forecast_note or "no forecast"
            cutoff = observation.now - self.config.hold_s(self._lead_time(observation))
            planned = max((n for at, n in state.held if at > cutoff), default=0)
            maximum = self.config.kpa.max_scale or math.inf
            desired = int(min(max(reactive.desired, planned), maximum))
            return replace(reactive, desired=desired, reason=f"fallback:{why}"), state
        predictive, base, detail = self._predictive(observation, state)
        now = observation.now
        hold = self.config.hold_s(self._lead_time(observation))
        held = _hold(state.held, now, predictive, now - hold)
        planned = held[0][1]
        state = replace(state, held=held)
        maximum = self.config.kpa.max_scale or math.inf
        desired = int(min(max(reactive.desired, planned), maximum))
        if planned > reactive.desired:
            reason = "holding"
            if planned == predictive:
                reason = "predictive" if base > reactive.desired else "headroom"
            return Decision(desired, reason, f"{detail}; reactive {reactive.desired}"), state
        return Decision(desired, reactive.reason, f"{reactive.detail}; {detail}"), state

    def _track_idle(self, observation: Observation, state: LeadtimeState) -> LeadtimeState:
        """Open an idle period when the newest second saw no request, close it (recording its
        length in the histogram) when requests come back. Not at zero without a request in
        the window (a new service deployed at zero, one found at zero by a restart): there is
        no replica to keep warm and no busy period to time, so keep-alive must not start one."""
        quiet = (
            not observation.poke
            and observation.arrivals.size > 0
            and observation.arrivals[-1] == 0
            and observation.concurrency[-1] == 0
        )
        if quiet and state.idle_since is None:
            window = int(self.config.service_time_window_s)
            seen = observation.arrivals[-window:].sum() + observation.concurrency[-window:].sum()
            if observation.desired > 0 or seen > 0:
                return replace(state, idle_since=observation.now)
            return state
        if not quiet and state.idle_since is not None and state.idle is not None:
            idle = keepalive.observe_idle(state.idle, observation.now - state.idle_since)
            return replace(state, idle=idle, idle_since=None)
        return state

    def _foresee_idle(
        self, observation: Observation, state: LeadtimeState, decision: Decision
    ) -> Decision:
        """While idle, keep or bring back one replica when the idle-time history says the next
        request is due within the keep-alive window (or one lead time from now)."""
        if state.idle_since is None or state.idle is None or decision.desired > 0:
            return decision
        lead = self._lead_time(observation)
        plan = keepalive.idle_plan(state.idle, state.idle_since, observation.now, lead)
        if plan.action != keepalive.HOLD:
            return decision
        reason = "prewarm" if observation.now < plan.warm_from else "keepalive"
        return Decision(1, reason, f"{plan.reason}: {plan.detail}")

    def _lead_time(self, observation: Observation) -> float:
        return self.config.lead_time_s(observation.cold_start_s)

    def _predictive(self, observation: Observation, state: LeadtimeState) -> tuple[int, int, str]:
        """Replicas for the forecast over [now, now + lead + horizon]: the median's peak, plus
        warm headroom up to the q-quantile's peak. Returns (total, median part, detail)."""
        forecast = observation.forecast
        assert forecast is not None
        cfg = self.config
        lead = self._lead_time(observation)
        window = lead + cfg.horizon_s
        base, median = self._replicas_for(forecast, 0.5, window, state)
        total, upper = self._replicas_for(forecast, cfg.quantile, window, state)
        total = max(total, base)
        per_request, target = self._load_unit(state)
        unit = "rps" if cfg.kpa.metric == RPS else f"in service, x {per_request:.2f}s"
        detail = (
            f"p50 {median:.2f}/s -> {base} + headroom {total - base} to "
            f"p{round(cfg.quantile * 100)} {upper:.2f}/s; target {target:g} {unit}; "
            f"over lead {lead:.0f}s + {cfg.horizon_s:.0f}s"
        )
        return total, base, detail

    def _load_unit(self, state: LeadtimeState) -> tuple[float, float]:
        """(load per request/s, per-replica target) in the KPA metric's unit: requests in
        service (rate x time in service) for `concurrency`, the rate itself for `rps`; the
        target lowered to the learned slots when they are fewer."""
        kpa = self.config.kpa
        if kpa.metric == RPS:
            per_replica_rps = None if state.slots is None else state.slots / state.service_time_s
            return 1.0, effective_target(kpa.target_value, per_replica_rps, kpa.target_utilization)
        target = effective_target(kpa.target_value, state.slots, kpa.target_utilization)
        return state.service_time_s, target

    def _replicas_for(
        self, forecast: Forecast, quantile: float, window_s: float, state: LeadtimeState
    ) -> tuple[int, float]:
        """Replicas for the peak of one forecast quantile over the next `window_s`, and that
        peak rate."""
        steps = max(1, math.ceil(window_s / forecast.step_s))
        rate = forecast.quantile(quantile)[:steps]
        peak = float(rate.max()) if rate.size else 0.0
        per_request, target = self._load_unit(state)
        return math.ceil(peak * per_request / target - 1e-9), peak

    def scale_up_need(
        self,
        observation: Observation,
        state: LeadtimeState,
        *,
        current: int,
        within_s: float,
        gpu_class: str,
        gpus_per_replica: int,
    ) -> ScaleUpNeed | None:
        """Replicas beyond `current` that the forecast asks for within `within_s` (the node
        provisioning time), median and quantile q: what the placeholder pool should cover.
        None without a usable forecast (the pool then keeps only what others ask for)."""
        forecast = observation.forecast
        if not self.config.placeholders or forecast is None:
            return None
        window = self._lead_time(observation) + within_s + self.config.horizon_s
        median, _ = self._replicas_for(forecast, 0.5, window, state)
        upper, _ = self._replicas_for(forecast, self.config.quantile, window, state)
        expected = max(0, median - current)
        return ScaleUpNeed(gpu_class, gpus_per_replica, expected, max(expected, upper - current))

    def _service_time(self, observation: Observation, previous: float) -> float:
        """Little's law on the window: time in service = requests in service / arrival rate.

        Smoothed, and kept when the window saw no arrivals (nothing to learn from)."""
        window = int(self.config.service_time_window_s)
        arrivals = float(observation.arrivals[-window:].sum())
        if arrivals <= 0:
            return previous
        # concurrency counts the queue too, so in service = the difference (never below 0)
        in_service = float(observation.concurrency[-window:].sum())
        in_service -= float(observation.queue[-window:].sum())
        estimate = max(0.0, in_service) / arrivals
        return min(3600.0, max(0.01, 0.8 * previous + 0.2 * estimate))


def _hold(
    held: tuple[tuple[float, int], ...], now: float, count: int, cutoff: float
) -> tuple[tuple[float, int], ...]:
    """Add `count` at `now` to a running-maximum window and drop what is older than `cutoff`."""
    kept = [item for item in held if item[0] > cutoff and item[1] > count]
    kept.append((now, count))
    return tuple(kept)
