"""Scale to zero with foresight: the per-service "hybrid histogram" keep-alive policy.

When a service's load goes idle, should its last replica stay warm, go now, or go now and come
back just before the next request? Azure Functions answers this per application with the hybrid
histogram policy of Shahrad et al., "Serverless in the Wild" (USENIX ATC 2020, §4.2), and
Leadtime does the same per service:

- An *idle time* is the time from the end of one busy period (the last request done) to the next
  arrival. Each service keeps a range-limited histogram of its idle times: 1-minute bins over
  4 hours by default, both configurable. Idle times at or beyond the range are counted as
  *out of range* (OOB) and not binned. Nothing decays: bin counts plus the OOB count always equal
  the number of idle times observed.
- **Histogram** (the histogram is representative): the *pre-warm window* is the head of the
  distribution, the 5th percentile, rounded down to its bin's lower edge and shortened by a 10 %
  margin; the *keep-alive window* ends at the tail, the 99th percentile, rounded up to its bin's
  upper edge and lengthened by a 10 % margin. Both are measured from the start of the idle
  period: the replica may go at once and must be warm again from `prewarm_s` until
  `keepalive_s` (the paper's keep-alive duration after pre-warming is their difference). A head
  in the first bin gives `prewarm_s = 0`: keep the replica from the start.
- **Fixed fallback** (not representative): too few idle times (`min_samples`; the paper names no
  number, 10 here), or a flat histogram, whose coefficient of variation of bin counts (population
  standard deviation over mean, over all bins, empty ones included) is below `cv_threshold` (2,
  the paper's value): keep the replica for a fixed `fixed_keepalive_s`, no pre-warming. Default
  10 minutes, AWS Lambda's fixed keep-alive and the paper's baseline. (The paper's own hybrid
  policy keeps the replica for the whole histogram range, 4 h, in this case; set
  `fixed_keepalive_s=14400` to reproduce it. An idle GPU for 4 h is rarely worth it.)
- **Time-series fallback** (out of range): when the share of idle times beyond the range is
  above `oob_threshold` (0.5: "most idle times"), the histogram cannot see the pattern. The
  paper fits ARIMA to the idle times; Leadtime predicts the next idle time as the *median of the
  last `timeseries_history` (8) out-of-range idle times*. It is O(history), needs no fit (a tick
  must never wait for one), cannot diverge, is deterministic, and a median is robust
  to a single odd gap (a weekend, an outage) where exponential smoothing would drift. The
  pre-warm window opens 15 % before the prediction and the keep-alive window ends 15 % after it
  (the paper's ARIMA margins).

Lead time (Leadtime's addition): a GPU replica takes `L` seconds from request to ready, so the
replica that must be warm at `idle_since + prewarm_s` is requested at that time minus `L`. When
that moment is not after the start of the idle period, releasing would not save anything, and
the replica is held from the start. `idle_plan` never releases a replica when a predicted
arrival falls within the next `L` seconds.

Everything here is a pure function of plain data: `observe_idle` returns a new state, the state
is a frozen dataclass holding a small numpy array of bin counts and a few scalars (picklable),
and no function reads a clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from autoscaler.errors import InputError

HOLD = "hold"
"""Keep (at least) one replica warm now, until `IdlePlan.hold_until`. At zero: request one now."""
RELEASE = "release"
"""Scaling to zero now is safe: no arrival is predicted any more in this idle period."""
PREWARM = "prewarm_at"
"""Scale to zero now, and request a replica at `IdlePlan.prewarm_at` so that it is ready when
the pre-warm window opens."""
ACTIONS = (HOLD, RELEASE, PREWARM)

HISTOGRAM = "histogram"
FIXED = "fixed"
TIMESERIES = "timeseries"
"""Modes: which tier of the hybrid policy set the windows."""

REASON_HISTOGRAM = "histogram"
REASON_FEW_SAMPLES = "fallback:few-samples"
REASON_FLAT = "fallback:flat-histogram"
REASON_OUT_OF_RANGE = "fallback:out-of-range"
"""Machine-readable reasons (`fallback:<why>` and the others, docs/architecture.md §4)."""

MAX_BINS = 100_000
"""Keeps the state compact (800 kB at most); the default has 240 bins."""
MAX_TIMESERIES_HISTORY = 1_000


def _fail(field: str, allowed: str, value: object) -> None:
    raise InputError(f"keepalive.{field}: must be {allowed}, got {value!r}")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class HistogramConfig:
    """Settings of the hybrid histogram policy, with the paper's defaults. Durations in seconds;
    percentiles in [0, 100]; margins and thresholds as fractions."""

    range_s: float = 4 * 3600.0
    """Idle times at or beyond this are out of range (the paper: 4 h)."""
    bin_s: float = 60.0
    """Bin width (the paper: 1 minute); `range_s` must be a whole number of bins."""
    head_percentile: float = 5.0
    """The percentile that opens the pre-warm window."""
    tail_percentile: float = 99.0
    """The percentile that closes the keep-alive window."""
    histogram_margin: float = 0.10
    """Pre-warm window shortened and keep-alive window lengthened by this fraction."""
    min_samples: int = 10
    """Fewer idle times than this: fixed keep-alive (the paper gives no number)."""
    cv_threshold: float = 2.0
    """Bin-count coefficient of variation below this: the histogram is flat, fixed keep-alive."""
    oob_threshold: float = 0.5
    """Share of out-of-range idle times above this: time-series fallback (1.0 turns it off)."""
    fixed_keepalive_s: float = 600.0
    """Keep-alive of the fixed fallback, without pre-warming (AWS Lambda's 10 minutes)."""
    timeseries_margin: float = 0.15
    """Time-series fallback: warm from (1 - margin) to (1 + margin) times the prediction."""
    timeseries_history: int = 8
    """How many recent out-of-range idle times the time-series prediction uses."""

    def __post_init__(self) -> None:
        self._check_bins()
        self._check_percentiles()
        for field in ("histogram_margin", "timeseries_margin"):
            value = getattr(self, field)
            if not (_is_number(value) and 0 <= value < 1):
                _fail(field, "a fraction in [0, 1)", value)
        if not (_is_count(self.min_samples) and self.min_samples >= 1):
            _fail("min_samples", "a whole number >= 1", self.min_samples)
        cv = self.cv_threshold
        if not (_is_number(cv) and math.isfinite(cv) and cv >= 0):
            _fail("cv_threshold", "a finite number >= 0", cv)
        if not (_is_number(self.oob_threshold) and 0 <= self.oob_threshold <= 1):
            _fail("oob_threshold", "a fraction in [0, 1] (1 = never)", self.oob_threshold)
        keep = self.fixed_keepalive_s
        if not (_is_number(keep) and math.isfinite(keep) and keep >= 0):
            _fail("fixed_keepalive_s", "a finite number of seconds >= 0", keep)
        history = self.timeseries_history
        if not (_is_count(history) and 1 <= history <= MAX_TIMESERIES_HISTORY):
            _fail("timeseries_history", f"a whole number in [1, {MAX_TIMESERIES_HISTORY}]", history)

    def _check_bins(self) -> None:
        if not (_is_number(self.range_s) and math.isfinite(self.range_s) and self.range_s > 0):
            _fail("range_s", "a finite number of seconds > 0", self.range_s)
        if not (_is_number(self.bin_s) and math.isfinite(self.bin_s) and self.bin_s > 0):
            _fail("bin_s", "a finite number of seconds > 0", self.bin_s)
        ratio = self.range_s / self.bin_s
        bins = round(ratio)
        if bins < 1 or abs(ratio - bins) > 1e-9 * max(1.0, ratio):
            _fail("range_s", f"a whole multiple of bin_s={self.bin_s:g}", self.range_s)
        if bins > MAX_BINS:
            _fail("bin_s", f"at least range_s / {MAX_BINS} (at most {MAX_BINS} bins)", self.bin_s)

    def _check_percentiles(self) -> None:
        head, tail = self.head_percentile, self.tail_percentile
        if not (_is_number(head) and 0 <= head < 100):
            _fail("head_percentile", "a percentile in [0, 100)", head)
        if not (_is_number(tail) and 0 < tail <= 100):
            _fail("tail_percentile", "a percentile in (0, 100]", tail)
        if head >= tail:
            _fail("tail_percentile", f"greater than head_percentile={head:g}", tail)

    @property
    def n_bins(self) -> int:
        return round(self.range_s / self.bin_s)


@dataclass(frozen=True, slots=True, eq=False)
class HistogramState:
    """One service's idle-time memory. Treat as immutable: `observe_idle` returns a new one."""

    config: HistogramConfig
    counts: np.ndarray
    """Idle times per bin (int64, `config.n_bins` long); bin i holds [i, i + 1) * bin_s."""
    out_of_range: int = 0
    """Idle times at or beyond `config.range_s`."""
    recent_out_of_range: tuple[float, ...] = ()
    """The last `config.timeseries_history` out-of-range idle times, oldest first."""

    @property
    def in_range(self) -> int:
        return int(self.counts.sum())

    @property
    def samples(self) -> int:
        """All idle times observed: in range plus out of range."""
        return self.in_range + self.out_of_range


@dataclass(frozen=True, slots=True)
class IdleWindows:
    """When, counted from the start of an idle period, a replica should be warm."""

    mode: str
    """`histogram`, `fixed` or `timeseries`."""
    reason: str
    prewarm_s: float
    """From this offset on a replica must be ready (0: keep the replica from the start)."""
    keepalive_s: float
    """At this offset the replica may go: no arrival predicted after it. >= `prewarm_s`."""
    samples: int
    out_of_range_share: float
    cv: float
    """Coefficient of variation of the in-range bin counts (0 for an empty histogram)."""
    predicted_idle_s: float | None = None
    """The time-series fallback's prediction of the next idle time."""
    detail: str = ""


@dataclass(frozen=True, slots=True)
class IdlePlan:
    """What to do now with a service idle since `idle_since`. Times are absolute, like `now`."""

    action: str
    """`hold`, `release` or `prewarm_at`."""
    reason: str
    """Machine-readable: `histogram`, `fallback:few-samples`, `fallback:flat-histogram`,
    `fallback:out-of-range`."""
    mode: str
    warm_from: float
    """A replica should be ready from here ..."""
    warm_until: float
    """... until here (the end of the keep-alive window)."""
    hold_until: float | None = None
    """`hold`: keep the replica warm until this time."""
    prewarm_at: float | None = None
    """`prewarm_at`: request a replica at this time (`warm_from` minus the lead time)."""
    detail: str = ""

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"action must be one of {', '.join(ACTIONS)}, got {self.action!r}")
        if (self.action == HOLD) != (self.hold_until is not None):
            raise ValueError("hold_until is set exactly when the action is hold")
        if (self.action == PREWARM) != (self.prewarm_at is not None):
            raise ValueError("prewarm_at is set exactly when the action is prewarm_at")


def initial_state(config: HistogramConfig | None = None) -> HistogramState:
    """An empty histogram: until `min_samples` idle times are seen, the fixed keep-alive rules."""
    config = HistogramConfig() if config is None else config
    return HistogramState(config=config, counts=_frozen(np.zeros(config.n_bins, dtype=np.int64)))


def observe_idle(state: HistogramState, idle_seconds: float) -> HistogramState:
    """Return `state` with one more idle time (end of a busy period to the next arrival).

    Idle times at or beyond the range go to the out-of-range count (and the time-series
    history), never into the last bin. Pure: `state` is left as it was.
    """
    idle = float(idle_seconds)
    if not (math.isfinite(idle) and idle >= 0):
        raise ValueError(f"idle_seconds must be a finite number >= 0, got {idle_seconds!r}")
    config = state.config
    if idle >= config.range_s:
        history = (*state.recent_out_of_range, idle)[-config.timeseries_history :]
        return HistogramState(config, state.counts, state.out_of_range + 1, history)
    index = min(int(idle // config.bin_s), config.n_bins - 1)  # float rounding at the edge
    counts = state.counts.copy()
    counts[index] += 1
    return HistogramState(config, _frozen(counts), state.out_of_range, state.recent_out_of_range)


def idle_windows(state: HistogramState) -> IdleWindows:
    """The pre-warm and keep-alive windows the hybrid policy picks from `state`."""
    config = state.config
    counts = state.counts
    samples = state.samples
    share = state.out_of_range / samples if samples else 0.0
    mean = float(counts.mean())
    cv = float(counts.std()) / mean if mean > 0 else 0.0
    common: dict[str, Any] = {"samples": samples, "out_of_range_share": share, "cv": cv}
    fixed = config.fixed_keepalive_s
    if samples < config.min_samples:
        detail = (
            f"{samples} idle times, fewer than min_samples={config.min_samples}: "
            f"fixed keep-alive {_span(fixed)}, no pre-warming"
        )
        return IdleWindows(FIXED, REASON_FEW_SAMPLES, 0.0, fixed, detail=detail, **common)
    if share > config.oob_threshold and state.recent_out_of_range:
        return _timeseries_windows(state, common)
    if mean == 0 or cv < config.cv_threshold:
        detail = (
            f"bin-count CV {cv:.2f} < {config.cv_threshold:g}: idle times too spread for the "
            f"histogram; fixed keep-alive {_span(fixed)}, no pre-warming"
        )
        return IdleWindows(FIXED, REASON_FLAT, 0.0, fixed, detail=detail, **common)
    return _histogram_windows(state, common)


def idle_plan(state: HistogramState, idle_since: float, now: float, lead_time_s: float) -> IdlePlan:
    """What to do at `now` with a service whose load has been idle since `idle_since`.

    The replica must be ready at `warm_from = idle_since + prewarm_s`, so it is requested
    `lead_time_s` earlier. Before that request time: `prewarm_at` (zero replicas until then).
    From it until `warm_until = idle_since + keepalive_s`: `hold`. From `warm_until` on:
    `release`. When the request time is not after `idle_since` the plan holds from the start.
    """
    for name, value in (("idle_since", idle_since), ("now", now)):
        if not math.isfinite(value):
            raise ValueError(f"{name} must be a finite time, got {value!r}")
    if now < idle_since:
        raise ValueError(f"now={now!r} is before idle_since={idle_since!r}")
    if not (math.isfinite(lead_time_s) and lead_time_s >= 0):
        raise ValueError(f"lead_time_s must be a finite number >= 0, got {lead_time_s!r}")
    windows = idle_windows(state)
    warm_from = idle_since + windows.prewarm_s
    warm_until = idle_since + windows.keepalive_s
    request_at = warm_from - lead_time_s
    plan: dict[str, Any] = {
        "reason": windows.reason,
        "mode": windows.mode,
        "warm_from": warm_from,
        "warm_until": warm_until,
    }
    if now >= warm_until:
        what = f"keep-alive ended {_span(now - warm_until)} ago at +{_span(windows.keepalive_s)}"
        return IdlePlan(RELEASE, detail=f"{what}; {windows.detail}", **plan)
    if now < request_at:
        what = (
            f"scale to zero; request a replica in {_span(request_at - now)} "
            f"(lead {_span(lead_time_s)}) to be warm from +{_span(windows.prewarm_s)} "
            f"to +{_span(windows.keepalive_s)}"
        )
        return IdlePlan(PREWARM, prewarm_at=request_at, detail=f"{what}; {windows.detail}", **plan)
    what = f"keep warm until +{_span(windows.keepalive_s)} ({_span(warm_until - now)} more)"
    if request_at <= idle_since and windows.prewarm_s > 0:
        what += (
            f"; the window opens at +{_span(windows.prewarm_s)}, within the "
            f"{_span(lead_time_s)} lead time, so releasing would save nothing"
        )
    return IdlePlan(HOLD, hold_until=warm_until, detail=f"{what}; {windows.detail}", **plan)


def _histogram_windows(state: HistogramState, common: dict[str, Any]) -> IdleWindows:
    config = state.config
    counts = state.counts
    cumulative = np.cumsum(counts)
    total = int(cumulative[-1])
    head_bin = _percentile_bin(cumulative, total, config.head_percentile)
    tail_bin = _percentile_bin(cumulative, total, config.tail_percentile)
    head_s = head_bin * config.bin_s  # rounded down to the bin's lower edge
    tail_s = (tail_bin + 1) * config.bin_s  # rounded up to the bin's upper edge
    margin = config.histogram_margin
    prewarm_s = head_s * (1 - margin)
    keepalive_s = tail_s * (1 + margin)
    detail = (
        f"{config.head_percentile:g}th percentile of {total} idle times in range at "
        f"{_span(head_s)}, {config.tail_percentile:g}th at {_span(tail_s)} (CV {common['cv']:.2f})"
        f": pre-warm +{_span(prewarm_s)}, keep-alive +{_span(keepalive_s)} "
        f"({margin:.0%} margins)"
    )
    return IdleWindows(HISTOGRAM, REASON_HISTOGRAM, prewarm_s, keepalive_s, detail=detail, **common)


def _timeseries_windows(state: HistogramState, common: dict[str, Any]) -> IdleWindows:
    config = state.config
    recent = state.recent_out_of_range
    predicted = float(np.median(recent))
    margin = config.timeseries_margin
    prewarm_s = predicted * (1 - margin)
    keepalive_s = predicted * (1 + margin)
    detail = (
        f"{common['out_of_range_share']:.0%} of {common['samples']} idle times beyond the "
        f"{_span(config.range_s)} range (> {config.oob_threshold:.0%}): next idle time "
        f"~ median of the last {len(recent)} beyond it = {_span(predicted)}; pre-warm "
        f"+{_span(prewarm_s)}, keep-alive +{_span(keepalive_s)} ({margin:.0%} margins)"
    )
    return IdleWindows(
        TIMESERIES,
        REASON_OUT_OF_RANGE,
        prewarm_s,
        keepalive_s,
        predicted_idle_s=predicted,
        detail=detail,
        **common,
    )


def _percentile_bin(cumulative: np.ndarray, total: int, percentile: float) -> int:
    """The bin holding the `percentile`-th idle time: the first bin whose cumulative count
    reaches `percentile`% of `total` (at least one idle time, so p = 0 means the first
    non-empty bin)."""
    target = max(percentile * total / 100.0, 1.0)
    return min(int(np.searchsorted(cumulative, target, side="left")), cumulative.size - 1)


def _frozen(counts: np.ndarray) -> np.ndarray:
    counts.flags.writeable = False
    return counts


def _span(seconds: float) -> str:
    """Short human form: `45s`, `16.2m`, `6.1h`."""
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.2f}h"
