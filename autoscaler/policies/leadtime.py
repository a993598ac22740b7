"""The Leadtime policy: the fewest GPU-seconds that meet each service's SLO, one cold start ahead.

The input is the service's objective: time to first token within `slo_ttft_s` for a share
`slo_target` of its requests (2 s for 99 % by default). Each tick the rule of
`leadtime_rows.py` (one row here, every steady service at once in the loop's fleet path) sizes
the replicas with a queueing model over the forecast one lead time ahead, steers its miss budget
by the service's measured attainment, keeps a safety net on the observed queue and arrivals
against ready *and starting* capacity, and releases replicas by ski-rental on the service's own
gaps. The KPA is a baseline, not a floor: Leadtime may hold fewer replicas than it.

Around that rule, this class keeps what concerns one service alone:
- no metrics yet: hold the current scale (never down on missing data);
- scale to zero with foresight: while the service is idle, the hybrid-histogram policy of its
  past idle times (`keepalive.py`, Shahrad et al., ATC 2020) decides whether the last replica
  is kept warm (`keepalive`), released, or requested again one lead time before the next
  arrival is expected (`prewarm`);
- GPU placeholder pool: `scale_up_need` tells the cluster how many replicas the forecast adds
  within one node provisioning, from which `placeholders.py` sizes the pool of spare GPUs.

Pure: the forecast arrives in the Observation, computed by the shell.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from autoscaler.policies import keepalive, leadtime_rows, queueing, surprise
from autoscaler.policies.capacity import SATURATION_WINDOW_S
from autoscaler.policies.leadtime_config import LeadtimeConfig, lead_times
from autoscaler.policies.placeholders import ScaleUpNeed
from autoscaler.policy import Decision, Observation


@dataclass(frozen=True, slots=True)
class LeadtimeState:
    rows: leadtime_rows.RowState
    """The rule's memory, as one row."""
    idle: keepalive.HistogramState | None = None
    """Histogram of this service's past idle times."""

    @property
    def idle_since(self) -> float | None:
        """When the current idle period began; None while requests are flowing."""
        value = float(self.rows.idle_since[0])
        return None if math.isnan(value) else value


@dataclass(frozen=True, slots=True)
class Leadtime:
    """The Leadtime policy as a `Policy` (see the module docstring)."""

    config: LeadtimeConfig = field(default_factory=LeadtimeConfig)

    @property
    def name(self) -> str:
        return "leadtime" if self.config.placeholders else "leadtime:no-placeholders"

    @property
    def tick_s(self) -> float:
        return self.config.kpa.tick_s

    @property
    def history_s(self) -> float:
        return max(self.config.service_time_window_s, leadtime_rows.REACT_S)

    @property
    def pokeable(self) -> bool:
        return True

    @property
    def forecast_reach_s(self) -> float:
        """How far past `now` this policy reads the forecast, beyond the cold start itself."""
        return self.config.horizon_s + self.config.actuation_delay_s

    def initial_replicas(self) -> int:
        """As Knative's Revision reconciler: the Deployment starts at `initial-scale`."""
        return self.config.kpa.initial_scale

    def initial_state(self, now: float, ready: int) -> LeadtimeState:
        return LeadtimeState(self.empty_rows(1), idle=keepalive.initial_state(self.config.idle))

    def decide(
        self, observation: Observation, state: LeadtimeState
    ) -> tuple[Decision, LeadtimeState]:
        if observation.arrivals.size == 0:
            current = observation.desired
            return Decision(current, "holding", "no metrics yet: holding the current scale"), state
        inputs = row_inputs(observation, self.config)
        result = self.decide_rows(inputs, state.rows)
        idle = state.idle
        if result.closed_idle[0] and idle is not None:
            idle = keepalive.observe_idle(idle, float(result.idle_length[0]))
        state = LeadtimeState(result.state, idle)
        code = int(result.reason[0])
        reason = leadtime_rows.REASONS[code]
        if code == leadtime_rows.FALLBACK:
            reason = f"fallback:{observation.forecast_note or 'no forecast'}"
        decision = Decision(int(result.desired[0]), reason, detail(result, 0))
        return self._foresee_idle(observation, state, decision), state

    # ---------------------------------------------------------- many services at once
    @property
    def reasons(self) -> tuple[str, ...]:
        """The rule's reasons, by the codes `decide_rows` gives."""
        return leadtime_rows.REASONS

    @property
    def service_time_window_s(self) -> float:
        """The window of the rows' time-in-service estimate (Little's law)."""
        return self.config.service_time_window_s

    def rows_reach_s(self, cold_start: np.ndarray) -> float:
        """How far ahead the rule reads the forecast for these rows: the longest lead time (their
        measured cold starts, NaN: the prior) plus the horizon."""
        longest = lead_times(self.config, cold_start).max(initial=0.0)
        return float(longest + self.config.horizon_s)

    def empty_rows(self, capacity: int) -> leadtime_rows.RowState:
        return leadtime_rows.RowState.empty(capacity, self.config.service_time_prior_s)

    def decide_rows(
        self, inputs: leadtime_rows.RowInputs, rows: leadtime_rows.RowState
    ) -> leadtime_rows.RowDecision:
        """The rule `decide` applies to one service, for many (one per row)."""
        return leadtime_rows.decide(self.config, inputs, rows)

    def rows_of(self, state: LeadtimeState) -> leadtime_rows.RowState:
        """A service's state as the one row it takes on the fleet path."""
        return state.rows

    def state_of(
        self, rows: leadtime_rows.RowState, idle: keepalive.HistogramState | None
    ) -> LeadtimeState:
        """The row back as this policy's state, with the service's idle-time history."""
        return LeadtimeState(rows, idle)

    def _foresee_idle(
        self, observation: Observation, state: LeadtimeState, decision: Decision
    ) -> Decision:
        """While idle, keep or bring back one replica when the idle-time history says the next
        request is due within the keep-alive window (or one lead time from now)."""
        idle_since = state.idle_since
        if idle_since is None or state.idle is None or decision.desired > 0:
            return decision
        lead = self.config.lead_time_s(observation.cold_start_s)
        plan = keepalive.idle_plan(state.idle, idle_since, observation.now, lead)
        if plan.action != keepalive.HOLD:
            return decision
        reason = "prewarm" if observation.now < plan.warm_from else "keepalive"
        return Decision(1, reason, f"{plan.reason}: {plan.detail}")

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
        provisioning time): for its median, and with its uncertainty (the queueing model's
        levels). What the placeholder pool should cover; None without a usable forecast."""
        forecast = observation.forecast
        if not self.config.placeholders or forecast is None:
            return None
        cfg = self.config
        window = cfg.lead_time_s(observation.cold_start_s) + within_s + cfg.horizon_s
        steps = max(1, math.ceil(window / forecast.step_s))
        median = np.asarray(forecast.quantile(0.5), dtype=float)[None, :steps]
        upper = np.asarray(forecast.quantile(0.9), dtype=float)[None, :steps]
        rows = state.rows
        z = leadtime_rows.peakedness(row_inputs(observation, cfg))
        args = leadtime_rows.sizing_model(cfg, rows.slots, rows.service_time, rows.log_factor, z)
        expected = queueing.fewest_replicas(median[:, :, None], np.ones(1), *args)[0]
        tail = surprise.band_ratios(rows.surprises, rows.surprise_episodes)
        levels, weights = queueing.rate_levels(median, upper, forecast.step_s, z, tail)
        covered = queueing.fewest_replicas(levels, weights, *args)[0]
        grow = max(0, int(expected) - current)
        return ScaleUpNeed(gpu_class, gpus_per_replica, grow, max(grow, int(covered) - current))


def row_inputs(observation: Observation, cfg: LeadtimeConfig) -> leadtime_rows.RowInputs:
    """One service's observation as the rule's one-row inputs."""
    window = int(cfg.service_time_window_s)
    forecast = observation.forecast
    if forecast is not None:
        p50 = np.asarray(forecast.quantile(0.5), dtype=float)[None, :]
        p90 = np.asarray(forecast.quantile(0.9), dtype=float)[None, :]
        step = forecast.step_s
    else:
        p50 = p90 = np.zeros((1, 1))
        step = 10.0
    recent = observation.arrivals[-leadtime_rows.REACT_S :]
    stable = observation.arrivals[-leadtime_rows.STABLE_S :]
    arrivals = observation.arrivals[-window:].astype(float)
    attainment = observation.attainment
    met, judged = (math.nan, math.nan) if attainment is None else (attainment.met, attainment.total)

    def one(value: float) -> np.ndarray:
        return np.array([value], dtype=float)

    return leadtime_rows.RowInputs(
        now=observation.now,
        ready=np.array([observation.ready]),
        current=np.array([observation.desired]),
        arrivals_sum=one(arrivals.sum()),
        arrivals_squares=one(float(arrivals @ arrivals)),
        window_seconds=one(arrivals.size),
        concurrency_sum=one(observation.concurrency[-window:].sum()),
        queue_sum=one(observation.queue[-window:].sum()),
        recent_arrivals=one(recent.sum()),
        recent_seconds=one(recent.size),
        stable_arrivals=one(stable.sum()),
        stable_seconds=one(stable.size),
        stable_in_service=one(
            float(
                np.maximum(
                    observation.concurrency[-leadtime_rows.STABLE_S :]
                    - observation.queue[-leadtime_rows.STABLE_S :],
                    0.0,
                ).sum()
            )
        ),
        concurrency_tail=observation.concurrency[-SATURATION_WINDOW_S:][None, :].astype(float),
        queue_tail=observation.queue[-SATURATION_WINDOW_S:][None, :].astype(float),
        arrivals_last=one(observation.arrivals[-1]),
        poke=np.array([observation.poke]),
        cold_start=one(math.nan if observation.cold_start_s is None else observation.cold_start_s),
        p50=p50,
        p90=p90,
        has_forecast=np.array([forecast is not None]),
        step_s=step,
        met=one(met),
        judged=one(judged),
    )


def detail(result: leadtime_rows.RowDecision, row: int) -> str:
    """What went into one row's decision, in one line."""
    return (
        f"start {int(result.start[row])}, keep {int(result.keep[row])} "
        f"(reactive {int(result.reactive[row])} at {result.rate[row]:.2f}/s), "
        f"held {int(result.held[row])} for {result.keep_s[row]:.0f}s; "
        f"{result.slots[row]:.1f} slots/replica, lead {result.lead[row]:.0f}s, "
        f"miss budget {result.budget[row]:.2%}"
    )
