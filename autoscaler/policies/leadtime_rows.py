"""The Leadtime rule on arrays, one service per row: the only implementation of its decision.

`Leadtime.decide` (one service) calls `decide` with one row; the loop's fleet path calls it with
every service in the steady regime at once. Each tick, per row:

1. **Capacity**: slots per replica (the configured containerConcurrency, lowered to what
   saturation shows, `capacity.py`) and time in service (Little's law on the window), learned.
2. **Lead time** L: the measured cold start (a prior until measured) plus the actuation delay.
3. **Budget**: the objective allows (1 − target) of requests to miss; the planning budget is that
   times the factor steered by the service's measured attainment (`steering.py`).
4. **Forecast need** (`queueing.py`): the fewest replicas whose expected misses stay within the
   budget, over [L, L + horizon] for replicas to *start* (one requested now serves only from L
   on) and over [now, L + horizon] for replicas to *keep*. The rate levels are the forecast's,
   their top raised to the service's own record of how far its load outran the forecast made
   one lead time before (`surprise.py`): bursts no forecast shows, once they recur.
5. **Reactive safety net**: the fewest replicas for the arrival rate of the last seconds, and,
   when the queue now would not drain before a replica started now is ready (with the ready
   *and starting* replicas), replicas to drain it within one lead time. A queue that starting
   replicas will drain is not paid for again.
6. **Release** (`release.py`): the count to keep is held per replica by ski-rental on the
   service's own gaps; a replica above it goes. A service missing its objective keeps its last
   replica (the next request would otherwise wait a whole cold start). For one break-even
   after a row's first tick nothing running is released: its time in service and slots are
   still priors.

desired = max(to start, min(current, held)), within [min, max]. The reason is `predictive` when
the forecast set the count, `reactive` when the safety net did, `holding` when ski-rental keeps
replicas the need no longer asks for, `fallback` without a usable forecast.

Services at zero, idle or poked are decided by `Leadtime` around this (keep-alive, pre-warm, the
activator's poke): `leaves_regime` marks rows the fleet path hands back to it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from autoscaler.policies import queueing, release, steering, surprise
from autoscaler.policies.capacity import (
    SATURATION_QUEUE,
    SATURATION_WINDOW_S,
    SMOOTHING,
    TOLERANCE,
)
from autoscaler.policies.kpa import RPS
from autoscaler.policies.leadtime_config import LeadtimeConfig, lead_times
from autoscaler.slo import MIN_WAIT_SHARE

PREDICTIVE, REACTIVE, HOLDING, FALLBACK = 0, 1, 2, 3
REASONS = ("predictive", "reactive", "holding", "fallback")
"""Reason codes (`fallback` carries the forecast's note, which the caller knows)."""
REACT_S = 10
"""Seconds of arrivals the safety net starts replicas on: long enough that a rate of one request
a second is not read as zero or three, short enough to see a burst within a tick or two."""
STABLE_S = 60
"""Seconds of arrivals the safety net keeps replicas for (Knative's stable window): a lull of a
few seconds inside a burst does not count as a gap."""
PEAKEDNESS_MAX = 30.0
BURST_SIGMAS = 2.0
"""How far above its noise the count of the last `REACT_S` seconds must be to start replicas."""
DRAIN_S = 30.0
"""How soon after new replicas are ready a queue left by a burst should be gone."""
MERGED_WEIGHTS = np.append(queueing.LEVEL_WEIGHTS[:-2], queueing.LEVEL_WEIGHTS[-2:].sum())
"""The level weights with the two upper levels as one (where they are equal)."""
SIZINGS = ("keep", "start", "burst", "stable")
"""The four sizings of a tick, the columns of `RowState.sized`."""


@dataclass
class RowInputs:
    """What the rule reads for n services this tick (one row each)."""

    now: float
    ready: np.ndarray
    current: np.ndarray
    """Replicas asked for now (ready + starting): the scale target's spec."""
    arrivals_sum: np.ndarray
    concurrency_sum: np.ndarray
    queue_sum: np.ndarray
    """Sums over the service-time window (Little's law); arrivals + concurrency > 0 means the
    service was seen busy within it."""
    arrivals_squares: np.ndarray
    window_seconds: np.ndarray
    """Sum of squared per-second arrivals over the same window, and how many seconds it has:
    the arrivals' peakedness."""
    recent_arrivals: np.ndarray
    """Arrivals over the newest `REACT_S` seconds (fewer early in a run: `recent_seconds`)."""
    recent_seconds: np.ndarray
    stable_arrivals: np.ndarray
    stable_seconds: np.ndarray
    """The same over the newest `STABLE_S` seconds."""
    stable_in_service: np.ndarray
    """Requests in service (in the system minus waiting), summed over the same seconds."""
    concurrency_tail: np.ndarray
    queue_tail: np.ndarray
    """The newest seconds (n, k), k <= the saturation window, for the learned capacity; the last
    column is the newest second."""
    arrivals_last: np.ndarray
    poke: np.ndarray
    cold_start: np.ndarray
    """Measured cold start per row, NaN when none was measured yet."""
    p50: np.ndarray
    p90: np.ndarray
    """Forecast rows (n, steps) starting at `now`; rows without a forecast are ignored."""
    has_forecast: np.ndarray
    step_s: float
    met: np.ndarray
    judged: np.ndarray
    """Requests within the SLO, and judged, over the attainment window (NaN: not measured)."""


@dataclass
class RowState:
    """The rule's memory per row (see the module docstring)."""

    service_time: np.ndarray
    slots: np.ndarray
    """NaN: not learned yet."""
    slots_ready: np.ndarray
    """Ready replicas when `slots` was last lowered (NaN: never)."""
    log_factor: np.ndarray
    steered_at: np.ndarray
    last_needed: np.ndarray
    gaps: np.ndarray
    idle_since: np.ndarray
    """When the current idle period began; NaN while requests flow."""
    sized: np.ndarray
    """(n, 4) the last sizings: forecast to keep, forecast to start, burst, stable load. Where
    the next tick's search starts (`queueing.fewest_replicas`' hint): work, not the answer."""
    predicted: np.ndarray
    predicted_step: np.ndarray
    surprises: np.ndarray
    surprise_episodes: np.ndarray
    """The forecast's past predictions one lead time ahead and the record of how far the load
    outran them (`surprise.py`)."""
    joined_at: np.ndarray
    """When the row was first decided (NaN: not yet). For one break-even after it, nothing
    running is released: time in service and slots are still priors, and a prior is no reason
    to shed what serves. Not a need: it leaves no gap in the release histogram."""
    ready_last: np.ndarray
    ready_since: np.ndarray
    """The ready count at the last tick, and since when it has been that (NaN: never seen)."""

    @classmethod
    def empty(cls, rows: int, service_time_s: float) -> RowState:
        last_needed, gaps = release.empty(rows)
        nan = np.full(rows, np.nan)
        return cls(
            np.full(rows, service_time_s), nan.copy(), nan.copy(), np.zeros(rows), nan.copy(),
            last_needed, gaps, nan.copy(), np.zeros((rows, len(SIZINGS)), np.int64),
            *surprise.empty(rows), nan.copy(), nan.copy(), nan.copy(),
        )  # fmt: skip

    def take(self, rows: np.ndarray | slice) -> RowState:
        return RowState(**{f.name: getattr(self, f.name)[rows].copy() for f in fields(self)})

    def head(self, rows: int) -> RowState:
        """The first `rows` rows as views, not copies: for a pure reader (`decide`), which
        returns its new state in new arrays."""
        return RowState(**{f.name: getattr(self, f.name)[:rows] for f in fields(self)})

    def put(
        self, rows: np.ndarray | slice, other: RowState, source: np.ndarray | None = None
    ) -> None:
        """Write `other`'s rows (as many as `rows` selects, or its rows `source`) into these
        rows."""
        for f in fields(self):
            values = getattr(other, f.name)
            getattr(self, f.name)[rows] = values if source is None else values[source]

    def followed_by(self, extra: RowState) -> RowState:
        """These rows, then `extra`'s (a fleet grown by empty rows)."""
        return RowState(
            **{
                f.name: np.concatenate([getattr(self, f.name), getattr(extra, f.name)])
                for f in fields(self)
            }
        )


@dataclass
class RowDecision:
    desired: np.ndarray
    reason: np.ndarray
    leaves_regime: np.ndarray
    """Rows the caller decides itself (going to zero: keep-alive and pre-warm are its)."""
    closed_idle: np.ndarray
    idle_length: np.ndarray
    """Rows whose idle period ended this tick, and how long it lasted: for the caller's idle-time
    histogram."""
    state: RowState
    start: np.ndarray
    keep: np.ndarray
    reactive: np.ndarray
    held: np.ndarray
    keep_s: np.ndarray
    lead: np.ndarray
    slots: np.ndarray
    budget: np.ndarray
    rate: np.ndarray
    """What went into the decision, for its detail line."""


def decide(cfg: LeadtimeConfig, inputs: RowInputs, state: RowState) -> RowDecision:
    """One tick of the rule for every row (see the module docstring). Pure: `state` is not
    changed, the next state is returned."""
    now = inputs.now
    service = _service_time(cfg.service_time_window_s, inputs, state.service_time)
    ready_since = _ready_since(inputs, state.ready_last, state.ready_since)
    steady = now - ready_since >= SATURATION_WINDOW_S
    learned, slots_ready = (
        learned_slots(inputs, state.slots, state.slots_ready, steady)
        if cfg.learn_capacity
        else (state.slots, state.slots_ready)
    )
    lead = lead_times(cfg, inputs.cold_start)
    dt = np.where(np.isnan(state.steered_at), 0.0, now - state.steered_at)
    allowed = 1.0 - cfg.slo_target
    log_factor = steering.steer(state.log_factor, inputs.met, inputs.judged, allowed, dt)
    z = peakedness(inputs)
    model = sizing_model(cfg, learned, service, log_factor, z)
    slots, _, _, budget, _ = model
    rate, burst_rate, stable_rate = _observed_rates(inputs, service, z)
    surprises, episodes = surprise.record(
        state.surprises, state.surprise_episodes, state.predicted, state.predicted_step, now,
        inputs.step_s, inputs.stable_arrivals / np.maximum(inputs.stable_seconds, 1),
        inputs.stable_seconds, dt, lead,
    )  # fmt: skip
    tail = surprise.band_ratios(surprises, episodes)
    rows, whole, later = _forecast_windows(cfg, inputs, lead, z, tail)
    predicted, predicted_step = surprise.remember(
        state.predicted, state.predicted_step, now, inputs.step_s, lead, inputs.p50[rows],
        inputs.p90[rows], z, rows,
    )  # fmt: skip
    # every sizing of the tick: the forecast's two windows for the rows that have one, and the
    # observed rates (one step each, the same rate at every level) for every row
    n = len(lead)
    everyone = np.arange(n)
    observed = np.repeat(
        np.stack([burst_rate, stable_rate], axis=1)[:, :, None, None],
        len(queueing.LEVEL_WEIGHTS),
        axis=3,
    )
    sized = state.sized.copy()
    windows = [(rows, whole), (rows, later), (everyone, observed[:, 0]), (everyone, observed[:, 1])]
    for column, size in enumerate(_fewest_replicas(windows, model, sized)):
        sized[windows[column][0], column] = size
    keep_f, start_f = np.zeros(n, np.int64), np.zeros(n, np.int64)
    keep_f[rows], start_f[rows] = sized[rows, 0], sized[rows, 1]
    burst, need = sized[:, 2], sized[:, 3]
    reactive, react_start = _reactive(inputs, lead, slots, service, rate, burst, need)
    start = np.maximum(start_f, react_start)
    keep = np.maximum(keep_f, reactive)

    last_needed, gaps = release.observe(
        state.last_needed, state.gaps, keep, now, dip_s=1.5 * cfg.kpa.tick_s
    )
    breakeven = cfg.hold_leads * lead
    keep_s = np.maximum(release.keep_for(gaps, breakeven), cfg.scale_down_delay_s)
    # a forecaster that fails (or goes stale) sheds nothing at once: what it had asked for is
    # kept for the break-even, whatever the gaps would allow
    keep_s = np.where(inputs.has_forecast, keep_s, np.maximum(keep_s, breakeven))
    held = np.maximum(release.held(last_needed, now, keep_s), keep)
    held = np.maximum(held, _last_replica(log_factor, last_needed, now))
    joined_at = np.where(np.isnan(state.joined_at), now, state.joined_at)
    held = np.maximum(held, np.where(now - joined_at < breakeven, inputs.current, 0))
    desired = np.maximum(start, np.minimum(inputs.current, held))
    desired = np.maximum(desired, cfg.kpa.min_scale)
    if cfg.kpa.max_scale:
        desired = np.minimum(desired, cfg.kpa.max_scale)

    forecast = inputs.has_forecast
    own = np.where(
        desired > inputs.current,
        np.where(start_f >= react_start, PREDICTIVE, REACTIVE),
        np.where(desired > keep, HOLDING, np.where(keep_f >= reactive, PREDICTIVE, REACTIVE)),
    )
    reason = np.where(forecast, own, FALLBACK)
    closed, idle_since = _idle(inputs, state.idle_since)
    new_state = RowState(
        service,
        learned,
        slots_ready,
        log_factor,
        np.full(len(lead), now),
        last_needed,
        gaps,
        idle_since,
        sized,
        predicted,
        predicted_step,
        surprises,
        episodes,
        joined_at,
        inputs.ready.astype(float),
        ready_since,
    )
    return RowDecision(
        desired=desired.astype(np.int64),
        reason=reason,
        leaves_regime=(desired == 0) | (inputs.ready == 0) | inputs.poke,
        closed_idle=closed,
        idle_length=np.where(closed, now - state.idle_since, 0.0),
        state=new_state,
        start=start,
        keep=keep,
        reactive=reactive,
        held=held,
        keep_s=keep_s,
        lead=lead,
        slots=slots,
        budget=budget,
        rate=rate,
    )


def _last_replica(log_factor: np.ndarray, last_needed: np.ndarray, now: float) -> np.ndarray:
    """1 where the last replica stays whatever ski-rental says: the service misses its objective
    (its steered budget is below the objective's) and was busy within the gap horizon. Going to
    zero would make the next request wait a whole cold start, the costliest miss there is, and
    the steering has found the service short already; a service meeting its objective may go to
    zero, and one idle past the horizon does."""
    with np.errstate(invalid="ignore"):
        recent = (now - last_needed[:, 0]) < release.GAP_HORIZON_S
    return ((log_factor < 0) & recent).astype(np.int64)


def _fewest_replicas(
    windows: list[tuple[np.ndarray, np.ndarray]], model: SizingModel, sized: np.ndarray
) -> list[np.ndarray]:
    """`queueing.fewest_replicas` for each (rows, rate levels) window, from the rows' last sizes
    (`sized`, one column per window). Few rows (one service): one call for all, the windows
    padded with zero rates to the longest (a call's overhead is most of its cost); many: a call
    per window (padding would add points), and rows whose top level is the one below it (no
    record of surprises, or an observed rate) sized on one level fewer, their weights merged:
    the same share on a quarter fewer points."""
    slots, service, wait, budget, z = model

    def size(
        rows: np.ndarray, levels: np.ndarray, hint: np.ndarray, weights: np.ndarray
    ) -> np.ndarray:
        return queueing.fewest_replicas(
            levels, weights, slots[rows], service[rows], wait[rows], budget[rows], z[rows], hint
        )

    def size_merged(rows: np.ndarray, levels: np.ndarray, hint: np.ndarray) -> np.ndarray:
        same = (levels[..., -1] == levels[..., -2]).all(axis=1)
        out = np.empty(len(rows), np.int64)
        for part, view, weights in (
            (same, levels[..., :-1], MERGED_WEIGHTS),
            (~same, levels, queueing.LEVEL_WEIGHTS),
        ):
            if part.any():
                out[part] = size(rows[part], view[part], hint[part], weights)
        return out

    steps = max(levels.shape[1] for _, levels in windows)
    points = sum(len(rows) for rows, _ in windows) * steps * len(queueing.LEVEL_WEIGHTS)
    if points * queueing.NEAR > queueing.CHUNK_POINTS:
        return [size_merged(rows, lv, sized[rows, i]) for i, (rows, lv) in enumerate(windows)]
    counts = [len(rows) for rows, _ in windows]
    padded = np.zeros((sum(counts), steps, len(queueing.LEVEL_WEIGHTS)))
    for (_, levels), start in zip(windows, np.cumsum([0, *counts]), strict=False):
        padded[start : start + len(levels), : levels.shape[1]] = levels
    sizes = size(
        np.concatenate([rows for rows, _ in windows]),
        padded,
        np.concatenate([sized[rows, i] for i, (rows, _) in enumerate(windows)]),
        queueing.LEVEL_WEIGHTS,
    )
    return np.split(sizes, np.cumsum(counts)[:-1])


SizingModel = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]
"""Per row, what `queueing.fewest_replicas` sizes with besides the rates: slots per replica,
time in service, the wait a request may spend queued, the miss budget, the peakedness."""


def sizing_model(
    cfg: LeadtimeConfig,
    learned: np.ndarray,
    service: np.ndarray,
    log_factor: np.ndarray,
    peakedness: np.ndarray,
) -> SizingModel:
    """The sizing inputs from the rule's learned capacity (`learned_slots`, NaN: not learned)
    and time in service and its steered budget factor: one place for `decide` and for the
    placeholder pool's growth (`Leadtime.scale_up_need`)."""
    slots = usable_slots(cfg, learned, service)
    wait = np.full(len(service), cfg.slo_ttft_s * MIN_WAIT_SHARE)
    budget = (1.0 - cfg.slo_target) * np.exp(log_factor)
    return slots, service, wait, budget, peakedness


def peakedness(inputs: RowInputs) -> np.ndarray:
    """Variance over mean of the per-second arrivals in the window (1: Poisson), within
    [1, PEAKEDNESS_MAX]; 1 without arrivals."""
    seconds = np.maximum(inputs.window_seconds, 1)
    mean = inputs.arrivals_sum / seconds
    variance = np.maximum(inputs.arrivals_squares / seconds - mean**2, 0.0)
    ratio = variance / np.where(mean > 0, mean, 1.0)
    return np.where(mean > 0, np.clip(ratio, 1.0, PEAKEDNESS_MAX), 1.0)


def _forecast_windows(
    cfg: LeadtimeConfig, inputs: RowInputs, lead: np.ndarray, z: np.ndarray, tail: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rows with a forecast, and their rate levels over [now, L + horizon] (rows, steps,
    levels: replicas to keep) and over [L, L + horizon] (rows, horizon steps, levels: replicas to
    start), zero outside; the upper levels cover each row's record of surprises (`tail`, rows ×
    2)."""
    rows = np.flatnonzero(inputs.has_forecast)
    levels_n = len(queueing.LEVEL_WEIGHTS)
    if rows.size == 0:
        return rows, np.zeros((0, 1, levels_n)), np.zeros((0, 1, levels_n))
    step = inputs.step_s
    end = np.ceil((lead[rows] + cfg.horizon_s) / step).astype(np.int64)
    first = np.minimum(np.floor(lead[rows] / step).astype(np.int64), end - 1)
    width = int(min(inputs.p50.shape[1], end.max()))
    end = np.minimum(end, width)  # a forecast shorter than the window: what it covers
    levels, _ = queueing.rate_levels(
        inputs.p50[rows, :width], inputs.p90[rows, :width], step, z[rows], tail[rows]
    )
    whole = levels * (np.arange(width)[None, :] < end[:, None])[:, :, None]
    span = int(max((end - first).max(), 1))
    columns = first[:, None] + np.arange(span)[None, :]
    later = np.take_along_axis(whole, np.minimum(columns, width - 1)[:, :, None], axis=1)
    return rows, whole, later * (columns < end[:, None])[:, :, None]


def _observed_rates(
    inputs: RowInputs, service: np.ndarray, z: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(the arrival rate of the last `REACT_S` seconds; the same, as a burst: its count's lower
    bound, `BURST_SIGMAS` standard deviations of a count of that peakedness below it, so noise
    starts nothing; the load over the stable window as a rate: arrivals, or the requests in
    service over the time in service when larger, so a rate still filling its window or a time
    in service not yet learned cannot hide the requests being served)."""
    count = inputs.recent_arrivals
    lower = np.maximum(count - BURST_SIGMAS * np.sqrt(z * np.maximum(count, 0.0)), 0.0)
    recent_s = np.maximum(inputs.recent_seconds, 1)
    seconds = np.maximum(inputs.stable_seconds, 1)
    stable = np.maximum(inputs.stable_arrivals, inputs.stable_in_service / service) / seconds
    return count / recent_s, lower / recent_s, stable


def _reactive(
    inputs: RowInputs,
    lead: np.ndarray,
    slots: np.ndarray,
    service: np.ndarray,
    rate: np.ndarray,
    burst: np.ndarray,
    need: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(replicas to keep: what the load over the stable window needs (`need`) and what drains
    the queue; replicas to start: for a burst (`burst`) and for the queue).

    The queue counts only when the replicas asked for already (ready and starting) would leave
    some of it when a replica started now is ready: then enough are started to drain what is
    left within `DRAIN_S` of that moment (every request arriving behind a queue waits); else a
    replica started now would be ready after the queue it is meant for is gone. The replicas
    that drain it within one lead time are kept until it drains."""
    need = np.where(inputs.poke, np.maximum(need, 1), need)
    queue = inputs.queue_tail[:, -1] if inputs.queue_tail.shape[1] else np.zeros(len(rate))
    # the queue when a replica asked for now is ready, if the replicas asked for already (ready
    # and starting, counted as serving from now: the kind assumption) keep serving the rate
    left = queue + (rate - inputs.current * slots / service) * lead
    backlog = np.ceil((rate + np.maximum(left, 0) / DRAIN_S) * service / slots - 1e-9)
    backlog = backlog.astype(np.int64)
    start = np.maximum(need, burst)
    start = np.where(left > 0, np.maximum(start, backlog), start)
    drains = np.ceil((rate + queue / lead) * service / slots - 1e-9).astype(np.int64)
    keep = np.maximum(
        need, np.minimum(np.maximum(drains, backlog), np.maximum(inputs.current, start))
    )
    # requests in service now hold their slots whatever the arrivals say
    newest = inputs.concurrency_tail[:, -1] if inputs.concurrency_tail.shape[1] else 0.0
    busy = np.ceil(np.maximum(newest - queue, 0.0) / slots - 1e-9).astype(np.int64)
    return np.maximum(keep, busy), np.maximum(start, busy)


def usable_slots(cfg: LeadtimeConfig, learned: np.ndarray, service: np.ndarray) -> np.ndarray:
    """Slots per replica to plan with: containerConcurrency (or, unset, what the KPA's target
    stands for at its utilisation), lowered to the learned slots when clearly fewer."""
    kpa = cfg.kpa
    if kpa.container_concurrency:
        configured = np.full(len(service), float(kpa.container_concurrency))
    elif kpa.metric == RPS:
        configured = kpa.total_value * service
    else:
        configured = np.full(len(service), kpa.total_value)
    with np.errstate(invalid="ignore"):
        lower = ~np.isnan(learned) & (learned < TOLERANCE * configured)
    return np.where(lower, np.maximum(learned, 0.01), configured)


def _service_time(window_s: float, inputs: RowInputs, previous: np.ndarray) -> np.ndarray:
    """Little's law on the window, smoothed; unchanged where the window saw no arrival.
    Concurrency counts the queue too, so in service is the difference (never below 0)."""
    seen = inputs.arrivals_sum > 0
    in_service = np.maximum(0.0, inputs.concurrency_sum - inputs.queue_sum)
    estimate = in_service / np.where(seen, inputs.arrivals_sum, 1.0)
    smoothed = np.clip(0.8 * previous + 0.2 * estimate, 0.01, 3600.0)
    return np.where(seen, smoothed, previous)


def _ready_since(inputs: RowInputs, last: np.ndarray, since: np.ndarray) -> np.ndarray:
    """Since when each row's ready count has been what it is now (now if it changed)."""
    return np.where(inputs.ready == last, since, inputs.now)


def learned_slots(
    inputs: RowInputs, previous: np.ndarray, lowered_at: np.ndarray, steady: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Requests one ready replica serves at once while requests queue: the fullest saturated
    second per ready replica, smoothed (partly saturated seconds only ever read low).

    Only rows whose ready count held over the seconds read (`steady`) take a sample: a second
    from before replicas became ready, divided by today's count, reads a fraction of the real
    slots (on `step-change` seed 2, 2 → 4 ready between ticks read 3.9 slots of 8 and doubled
    the replicas planned for the rest of the run).

    A sample may lower the estimate only with no more ready replicas than when it was last
    lowered: if requests stay queued while replicas are added and those serve nothing more, the
    bottleneck is not the replicas, and reading fewer slots per replica would add replicas
    without end. Returns the estimate and the ready count it was last lowered at."""
    saturated = inputs.queue_tail > SATURATION_QUEUE
    in_service = np.where(saturated, inputs.concurrency_tail - inputs.queue_tail, -np.inf)
    fullest = in_service.max(axis=1, initial=-np.inf)
    ready = inputs.ready.astype(float)
    usable = steady & (ready > 0) & saturated.any(axis=1)
    sample = np.where(usable, fullest / np.where(ready > 0, ready, 1.0), np.nan)
    usable &= np.isfinite(sample) & (sample > 0)
    first = np.isnan(previous)
    with np.errstate(invalid="ignore"):
        lowers = ~first & (sample < previous)
        usable &= ~lowers | np.isnan(lowered_at) | (ready <= lowered_at)
    blended = np.where(first, sample, (1 - SMOOTHING) * previous + SMOOTHING * sample)
    lowered = usable & (first | lowers)
    return np.where(usable, blended, previous), np.where(lowered, ready, lowered_at)


def _idle(inputs: RowInputs, idle_since: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Open an idle period when the newest second saw no request (not for a service never seen
    busy: there is no busy period to time), close it when requests come back."""
    newest = inputs.concurrency_tail[:, -1] if inputs.concurrency_tail.shape[1] else 0.0
    quiet = ~inputs.poke & (newest == 0) & (inputs.arrivals_last == 0)
    seen = (inputs.current > 0) | (inputs.arrivals_sum + inputs.concurrency_sum > 0)
    open_before = ~np.isnan(idle_since)
    closed = ~quiet & open_before
    opened = quiet & ~open_before & seen
    since = np.where(opened, inputs.now, np.where(closed, np.nan, idle_since))
    return closed, since
