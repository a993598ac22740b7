"""Lag, rolling, seasonal and calendar features for direct multi-horizon forecasting.

Strategy: *direct, with the horizon step k as an input*. One row describes a forecast origin t
(the values `y[:t]` are known) and a step k >= 1 ahead; its target is `y[t + k - 1]`. One model
then serves every horizon. We chose this over one model per horizon bucket because the trees
learn where k matters (the recent lags fade with k, the seasonal terms do not) and share all
other structure, the fit cost stays that of one model whatever the horizon, and training rows
are sampled over (origin, k) pairs so the row budget bounds the fit time. Linear models cannot
learn that interaction from k alone; `RidgeForecaster` therefore fits one model per bucket of
k on these same rows.

Normalisation: every value feature and the target are expressed relative to the *level*
(the mean of the last few values before the origin) and divided by a per-series *scale*
(the mean of the series). So a model learns "how far from where we are now, in units of this
service's typical load": it extrapolates trends a tree could not reach in absolute terms, and
one model can serve series of any size (the global model).

Leakage: features of row (t, k) read only `y[:t]`. Seasonal terms read the same time one day
(week) earlier — `m` whole periods back, m the smallest such that the neighbourhood around
that point lies before t — and the calendar reads the target's time, which is known.

Calendar: the time of a value is `start_s + index × step_s`, seconds since the Unix epoch
(1970-01-01 00:00 UTC, a Thursday). Traces count from their own t = 0, so the caller passes
`start_s` (plus the UTC offset if the local day matters) for true time-of-day and weekday
alignment; with `start_s = 0` the calendar still has the right period, only its phase is off.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from forecasting.hygiene import CleanSeries
from forecasting.seasonality import DAY_S, usable_periods

LAGS = (1, 2, 3, 4, 6, 8, 12)
"""Recent values, in steps before the origin."""
WINDOWS = (5, 15, 60)
"""Rolling windows, in steps, for the mean, maximum and standard deviation."""
LEVEL_WINDOW = 5
"""Values averaged into the level that features and targets are measured from."""
RADIUS = 3
"""Half-width, in steps, of the neighbourhood averaged around a seasonal lag."""
RECENT = max(*LAGS, *WINDOWS, LEVEL_WINDOW)
"""Values before an origin that the lag and rolling features read."""
MONDAY_OFFSET = 3
"""Day 0 of the Unix epoch was a Thursday: weekday = (day + 3) mod 7 with Monday = 0."""


@dataclass(frozen=True)
class FeatureSpec:
    """Which features a model uses; fixed at fit time and stored with the model."""

    step_s: float
    periods: tuple[int, ...] = ()
    """Seasonal periods in steps (daily, weekly) whose lags are features."""

    @classmethod
    def for_history(cls, step_s: float, n_obs: int) -> FeatureSpec:
        """Use a seasonal lag only when the history has two periods of it: one to look back
        over and at least one more of training origins."""
        return cls(float(step_s), tuple(usable_periods(step_s, n_obs, min_seasons=2)))

    @property
    def history(self) -> int:
        """Values before an origin that its features read."""
        seasonal = max((p + max(2 * RADIUS, LEVEL_WINDOW) for p in self.periods), default=0)
        return max(RECENT, seasonal)

    @property
    def names(self) -> tuple[str, ...]:
        names = ["level", *(f"lag_{lag}" for lag in LAGS)]
        for w in WINDOWS:
            names += [f"mean_{w}", f"max_{w}", f"std_{w}"]
        names += ["k", "tod_sin", "tod_cos", "weekday", "weekend"]
        for p in self.periods:
            names += [f"season_{p}", f"season_{p}_near", f"season_{p}_change"]
        return tuple(names)


def series_scale(series: CleanSeries) -> float:
    """Typical load of a series (mean of its observed values); 1 when it has none, so that an
    idle service's features stay in rate units instead of dividing by zero."""
    observed = series.values[series.valid]
    scale = float(observed.mean()) if observed.size else 0.0
    return scale if np.isfinite(scale) and scale > 0 else 1.0


def design(
    values: np.ndarray,
    origins: np.ndarray,
    horizons: np.ndarray,
    *,
    spec: FeatureSpec,
    scale: float,
    start_s: float,
    first_index: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Feature matrix, one row per (origin, horizon) pair with columns as `spec.names`, and
    each row's level (in rate units) that its value terms are relative to.

    `values[0]` is the series' value number `first_index` (a history may be the tail of a
    longer series); `start_s` is the time of value number 0, for the calendar.
    """
    origins = np.asarray(origins, dtype=np.intp)
    horizons = np.asarray(horizons, dtype=np.intp)
    # training samples several steps ahead from each origin: its block is computed once
    unique, row = np.unique(origins, return_inverse=True)
    recent, anchor = _origin_block(values, unique, scale)
    recent, anchor = recent[row], anchor[row]
    target = _target_block(values, origins, horizons, anchor, spec, scale, start_s, first_index)
    return np.hstack([recent, target]), anchor


def forecast_design(
    history: np.ndarray,
    horizon: int,
    *,
    spec: FeatureSpec,
    scale: float,
    start_s: float,
    first_index: int,
    max_horizon: int,
) -> tuple[np.ndarray, float]:
    """Rows for steps 1..horizon after the end of `history`, and the level they are relative
    to. The recent block is computed once for the single origin. k is capped at `max_horizon`
    (what the model was trained on); the seasonal and calendar terms still describe the true
    target time."""
    recent, anchor = _origin_block(history, np.array([history.size]), scale)
    steps = np.arange(1, horizon + 1)
    origins = np.full(horizon, history.size)
    target = _target_block(history, origins, steps, anchor, spec, scale, start_s, first_index)
    target[:, 0] = np.minimum(steps, max_horizon)
    rows = np.hstack([np.broadcast_to(recent, (horizon, recent.shape[1])), target])
    return rows, float(anchor[0])


def training_set(
    series: CleanSeries,
    *,
    spec: FeatureSpec,
    scale: float,
    max_horizon: int,
    max_rows: int,
    rng: np.random.Generator,
    start_s: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sample up to `max_rows` (origin, k) pairs, k in 1..max_horizon, whose target was
    observed (filled gaps are never targets); return features, normalised targets
    `(y[t+k-1] - level) / scale` and the k of each row."""
    values = series.values
    first = spec.history
    span = (values.size - first) * max_horizon
    if span <= 0:
        raise ValueError(f"{values.size} values leave no training rows after {first}")
    pairs = rng.choice(span, size=min(max_rows, span), replace=False)
    origins = first + pairs // max_horizon
    horizons = 1 + pairs % max_horizon
    target = origins + horizons - 1
    keep = target < values.size
    keep[keep] = series.valid[target[keep]]
    origins, horizons, target = origins[keep], horizons[keep], target[keep]
    if origins.size == 0:
        raise ValueError("no observed values to learn from")
    features, anchor = design(values, origins, horizons, spec=spec, scale=scale, start_s=start_s)
    return features, (values[target] - anchor) / scale, horizons


# ------------------------------------------------------------------------------- blocks


def _windows(values: np.ndarray, ends: np.ndarray, width: int) -> np.ndarray:
    """The `width` values before each end (exclusive), shape (len(ends), width)."""
    return values[ends[:, None] + np.arange(-width, 0)]


def _origin_block(
    values: np.ndarray, origins: np.ndarray, scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """Level, lags and rolling statistics at each origin (from one gather of the last RECENT
    values and running sums backwards from the origin), and the level in rate units."""
    window = _windows(values, origins, RECENT)
    backwards = window[:, ::-1]
    sums = np.cumsum(backwards, axis=1)
    squares = np.cumsum(backwards * backwards, axis=1)
    anchor = sums[:, LEVEL_WINDOW - 1] / LEVEL_WINDOW
    columns = [anchor, *(window[:, -lag] - anchor for lag in LAGS)]
    for width in WINDOWS:
        mean = sums[:, width - 1] / width
        std = np.sqrt(np.maximum(squares[:, width - 1] / width - mean * mean, 0.0))
        columns += [mean - anchor, window[:, -width:].max(axis=1) - anchor, std]
    return np.column_stack(columns) / scale, anchor


def _target_block(
    values: np.ndarray,
    origins: np.ndarray,
    horizons: np.ndarray,
    anchor: np.ndarray,
    spec: FeatureSpec,
    scale: float,
    start_s: float,
    first_index: int,
) -> np.ndarray:
    """k, the target's calendar, and its seasonal lags."""
    target = origins + horizons - 1
    columns = [horizons.astype(float), *_calendar(start_s + (first_index + target) * spec.step_s)]
    for period in spec.periods:
        columns += _seasonal(values, origins, horizons, anchor, period, scale)
    return np.column_stack(columns)


def _calendar(times_s: np.ndarray) -> list[np.ndarray]:
    """Time of day as a point on the circle, weekday (Monday = 0) and a weekend flag."""
    phase = 2 * np.pi * np.mod(times_s, DAY_S) / DAY_S
    weekday = np.mod(np.floor(times_s / DAY_S) + MONDAY_OFFSET, 7)
    return [np.sin(phase), np.cos(phase), weekday, (weekday >= 5).astype(float)]


def _seasonal(
    values: np.ndarray,
    origins: np.ndarray,
    horizons: np.ndarray,
    anchor: np.ndarray,
    period: int,
    scale: float,
) -> list[np.ndarray]:
    """The value m periods before the target, the mean of its neighbourhood, and how that
    neighbourhood differs from the level one period before the origin (the change the last
    season saw between the origin's time of day and the target's). Whatever k, these read
    only the last `period + max(2 × RADIUS, LEVEL_WINDOW)` values."""
    back = period * -(-(horizons + RADIUS) // period)
    point = origins + horizons - 1 - back
    near = _windows(values, point + RADIUS + 1, 2 * RADIUS + 1).sum(axis=1) / (2 * RADIUS + 1)
    then = _windows(values, origins - period, LEVEL_WINDOW).sum(axis=1) / LEVEL_WINDOW
    return [(values[point] - anchor) / scale, (near - anchor) / scale, (near - then) / scale]
