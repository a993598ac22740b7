"""Leadtime for a whole fleet at once: the policy's steady regime on numpy arrays.

The companion of `kpa_fleet.py` (read its docstring first). In the steady regime — the KPA
floor in its own steady regime (at least one replica wanted), the service's learned capacity,
time in service and idle periods being tracked — `Leadtime.decide` is arithmetic on a few
window sums and on the forecast's quantile rows, which this module does for every service in
vector operations. The running maximum that
holds forecast capacity for two lead times becomes a small per-row ring of (time, count). An
idle period opens and closes here too; the caller records each closed one in the service's
keep-alive histogram (a rare event, per service). Everything else (services going to or at
zero, pokes, no data) stays on the scalar `Leadtime`; the property tests check both paths agree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from autoscaler.policies import kpa_fleet
from autoscaler.policies.capacity import SATURATION_QUEUE, SMOOTHING, TOLERANCE
from autoscaler.policies.kpa import RPS
from autoscaler.policies.leadtime import Leadtime, LeadtimeConfig, LeadtimeState

PREDICTIVE, HEADROOM, HOLDING, FALLBACK = 3, 4, 5, 6
REASONS = (*kpa_fleet.REASONS, "predictive", "headroom", "holding", "fallback")
"""Reason codes: the KPA's first, then Leadtime's (`fallback` carries the forecast's note)."""


@dataclass
class FleetInputs:
    """What the fleet path reads for n services this tick (one row each)."""

    now: float
    ready: np.ndarray
    stable: np.ndarray
    """Stable-window mean of the KPA's metric (NaN: no data)."""
    panic: np.ndarray
    arrivals_sum: np.ndarray
    concurrency_sum: np.ndarray
    queue_sum: np.ndarray
    """Sums over the service-time window (Little's law)."""
    concurrency_tail: np.ndarray
    queue_tail: np.ndarray
    """The newest seconds (n, k), k <= the saturation window, for the learned capacity."""
    arrivals_last: np.ndarray
    """Arrivals in the newest second: a quiet second opens an idle period (scalar rules)."""
    cold_start: np.ndarray
    """Measured cold start per service, NaN when none was measured yet."""
    p50: np.ndarray
    upper: np.ndarray
    """Forecast rows (n, steps) starting at `now`, at the policy's median and quantile q;
    rows of a service without a forecast are ignored (see `has_forecast`)."""
    has_forecast: np.ndarray
    step_s: float


@dataclass
class FleetLeadtimeState:
    kpa: kpa_fleet.FleetKpaState
    service_time: np.ndarray
    slots: np.ndarray
    """NaN: not learned yet."""
    hold_time: np.ndarray
    hold_count: np.ndarray
    """(n, H) rings of recent predictive counts; NaN times are empty slots."""
    hold_next: np.ndarray
    """Per row, the ring slot written next."""
    idle_since: np.ndarray
    """When each service's current idle period began; NaN while requests flow."""


def pack(states: Sequence[LeadtimeState], hold_slots: int) -> FleetLeadtimeState:
    """Steady-regime scalar states → arrays (their `held` tuples into the hold rings)."""
    n = len(states)
    hold_time = np.full((n, hold_slots), math.nan)
    hold_count = np.zeros((n, hold_slots), dtype=np.int64)
    for row, state in enumerate(states):
        for slot, (time, count) in enumerate(state.held[-hold_slots:]):
            hold_time[row, slot], hold_count[row, slot] = time, count
    return FleetLeadtimeState(
        kpa_fleet.pack([s.kpa for s in states]),
        np.array([s.service_time_s for s in states], dtype=float),
        np.array([math.nan if s.slots is None else s.slots for s in states], dtype=float),
        hold_time,
        hold_count,
        np.array([min(len(s.held), hold_slots) % hold_slots for s in states], dtype=np.int64),
        np.array([math.nan if s.idle_since is None else s.idle_since for s in states]),
    )


def held(state: FleetLeadtimeState, row: int, cutoff: float) -> tuple[tuple[float, int], ...]:
    """A row's hold ring as the scalar policy keeps it: entries after `cutoff`, oldest first,
    with every entry that a later one at least as high supersedes dropped."""
    times, counts = state.hold_time[row], state.hold_count[row]
    entries = sorted((float(t), int(c)) for t, c in zip(times, counts, strict=True) if t > cutoff)
    kept: list[tuple[float, int]] = []
    for entry in entries:
        while kept and kept[-1][1] <= entry[1]:
            kept.pop()
        kept.append(entry)
    return tuple(kept)


@dataclass
class FleetLeadtimeDecision:
    desired: np.ndarray
    reason: np.ndarray
    leaves_regime: np.ndarray
    closed_idle: np.ndarray
    """Rows whose idle period ended this tick, and how long it lasted (`idle_length`): the
    caller records them in each service's keep-alive histogram."""
    idle_length: np.ndarray
    state: FleetLeadtimeState
    kpa: kpa_fleet.FleetDecision
    base: np.ndarray
    predictive: np.ndarray


def decide(
    policy: Leadtime,
    inputs: FleetInputs,
    state: FleetLeadtimeState,
    *,
    in_place: np.ndarray | None = None,
) -> FleetLeadtimeDecision:
    """`Leadtime.decide` for n services in the steady regime (see the module docstring).

    `in_place`, a row mask, writes this tick's predictive counts straight into `state`'s hold
    rings for those rows (when they stay in the regime) and leaves the other rows' rings
    untouched, instead of copying the rings: they are most of the state's bytes, and copying
    them every tick cost more than the decision itself."""
    cfg = policy.config
    reactive = kpa_fleet.decide(
        cfg.kpa, inputs.stable, inputs.panic, inputs.ready, inputs.now, state.kpa
    )
    service = _service_time(cfg.service_time_window_s, inputs, state.service_time)
    slots = _slots(inputs, state.slots) if cfg.learn_capacity else np.full(len(service), np.nan)
    lead, hold = lead_and_hold(cfg, inputs.cold_start)
    per_request, target = _load_unit(policy, service, slots)
    window = lead + cfg.horizon_s
    base = _replicas(inputs.p50, window, inputs.step_s, per_request, target)
    total = np.maximum(_replicas(inputs.upper, window, inputs.step_s, per_request, target), base)
    forecast = inputs.has_forecast
    if in_place is None:
        hold_time, hold_count, hold_next = _hold(state, inputs.now, total, forecast, False)
    else:
        writes = in_place & forecast & ~reactive.leaves_regime
        hold_time, hold_count, hold_next = _hold(state, inputs.now, total, writes, True)
    valid = hold_time > (inputs.now - hold)[:, None]
    planned = np.where(valid, hold_count, np.iinfo(np.int64).min).max(axis=1)
    planned = np.maximum(planned, 0)  # held without a forecast too, as the scalar policy does
    desired = np.maximum(reactive.desired, planned)
    if cfg.kpa.max_scale:
        desired = np.minimum(desired, cfg.kpa.max_scale)
    above = forecast & (planned > reactive.desired)
    own = np.where(
        planned == total, np.where(base > reactive.desired, PREDICTIVE, HEADROOM), HOLDING
    )
    reason = np.where(above, own, np.where(forecast, reactive.reason, FALLBACK))
    quiet = (inputs.concurrency_tail[:, -1] == 0) & (inputs.arrivals_last == 0)
    open_before = ~np.isnan(state.idle_since)
    closed = ~quiet & open_before
    idle_since = np.where(
        quiet & ~open_before, inputs.now, np.where(closed, np.nan, state.idle_since)
    )
    new_state = FleetLeadtimeState(
        reactive.state, service, slots, hold_time, hold_count, hold_next, idle_since
    )
    return FleetLeadtimeDecision(
        desired.astype(np.int64),
        reason,
        reactive.leaves_regime,
        closed,
        np.where(closed, inputs.now - state.idle_since, 0.0),
        new_state,
        reactive,
        base,
        total,
    )


def lead_and_hold(cfg: LeadtimeConfig, cold_start: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`LeadtimeConfig.lead_time_s` and `hold_s` per row (NaN cold start: not measured)."""
    lead = np.where(np.isnan(cold_start), cfg.cold_start_prior_s, cold_start)
    lead = lead + cfg.actuation_delay_s
    return lead, np.maximum(cfg.scale_down_delay_s, cfg.hold_leads * lead)


def _service_time(window_s: float, inputs: FleetInputs, previous: np.ndarray) -> np.ndarray:
    """Little's law on the window, smoothed; unchanged where the window saw no arrival."""
    seen = inputs.arrivals_sum > 0
    in_service = np.maximum(0.0, inputs.concurrency_sum - inputs.queue_sum)
    estimate = in_service / np.where(seen, inputs.arrivals_sum, 1.0)
    smoothed = np.clip(0.8 * previous + 0.2 * estimate, 0.01, 3600.0)
    return np.where(seen, smoothed, previous)


def _slots(inputs: FleetInputs, previous: np.ndarray) -> np.ndarray:
    """`capacity.saturation_slots` per row: the fullest saturated second per ready replica."""
    saturated = inputs.queue_tail > SATURATION_QUEUE
    in_service = np.where(saturated, inputs.concurrency_tail - inputs.queue_tail, -np.inf)
    fullest = in_service.max(axis=1)
    ready = inputs.ready.astype(float)
    usable = (ready > 0) & saturated.any(axis=1)
    sample = np.where(usable, fullest / np.where(ready > 0, ready, 1.0), np.nan)
    usable &= np.isfinite(sample) & (sample > 0)
    blended = np.where(np.isnan(previous), sample, (1 - SMOOTHING) * previous + SMOOTHING * sample)
    return np.where(usable, blended, previous)


def _load_unit(
    policy: Leadtime, service: np.ndarray, slots: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    kpa = policy.config.kpa
    configured = kpa.target_value
    if kpa.metric == RPS:
        learned = slots / service
        per_request = np.ones_like(service)
    else:
        learned = slots
        per_request = service
    lowered = learned * kpa.target_utilization
    use = ~np.isnan(lowered) & (lowered < TOLERANCE * configured)
    return per_request, np.where(use, np.maximum(0.01, lowered), configured)


def _replicas(
    rates: np.ndarray,
    window: np.ndarray,
    step_s: float,
    per_request: np.ndarray,
    target: np.ndarray,
) -> np.ndarray:
    steps = np.maximum(1, np.ceil(window / step_s)).astype(np.int64)
    columns = np.arange(rates.shape[1])
    inside = columns[None, :] < steps[:, None]
    peak = np.where(inside, rates, -np.inf).max(axis=1) if rates.shape[1] else np.zeros(len(steps))
    peak = np.where(np.isfinite(peak), peak, 0.0)
    return np.ceil(peak * per_request / target - 1e-9).astype(np.int64)


def _hold(
    state: FleetLeadtimeState, now: float, count: np.ndarray, rows_mask: np.ndarray, in_place: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Write this tick's predictive count into the rings of the rows in `rows_mask`."""
    if in_place:
        hold_time, hold_count, hold_next = state.hold_time, state.hold_count, state.hold_next
    else:
        hold_time, hold_count = state.hold_time.copy(), state.hold_count.copy()
        hold_next = state.hold_next.copy()
    rows = np.flatnonzero(rows_mask)
    slots = hold_next[rows]
    hold_time[rows, slots] = now
    hold_count[rows, slots] = count[rows]
    hold_next[rows] = (slots + 1) % hold_time.shape[1]
    return hold_time, hold_count, hold_next
