"""The benchmarks every other model must beat: the last value, and the value one season ago.

Both are honest about their uncertainty in the simplest way that is calibrated: the spread of
a forecast k steps ahead is the empirical distribution of what the same rule got wrong k steps
ahead in the history (Hyndman & Athanasopoulos, *Forecasting: Principles and Practice*, 3rd ed.,
§5.5 "Distributional forecasts and prediction intervals", which also gives the benchmark rules).
`HorizonErrors` tabulates such errors; the smoothing models reuse it for their own k-step errors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from forecasting.base import (
    RESIDUAL_LEVELS,
    Forecaster,
    Quantiles,
    RawForecast,
    residual_quantile,
)
from forecasting.hygiene import CleanSeries
from forecasting.seasonality import DAY_S, WEEK_S, period_steps

MAX_ERROR_STEPS = 512
"""Longest horizon (in steps) whose errors are measured; beyond it spreads grow like √k."""
SEASONS = {"daily": DAY_S, "weekly": WEEK_S}
"""Named seasons, in seconds."""
ERROR_ORIGINS = 20_000
"""Most recent forecast origins whose errors are used: enough for stable 0.5 %–99.5 %
quantiles, few enough that a fit on a month of 1-second data stays fast."""


def horizon_grid(max_step: int) -> np.ndarray:
    """Horizons at which errors are measured: every step up to 4, then geometrically spaced
    (errors change slowly with k, so a dozen horizons describe up to hundreds of steps)."""
    max_step = max(1, int(max_step))
    grid = np.unique(np.round(np.geomspace(1, max_step, 16)).astype(np.int64))
    return np.union1d(np.arange(1, min(4, max_step) + 1), grid)


@dataclass(frozen=True, eq=False)
class HorizonErrors:
    """Empirical quantiles (at `RESIDUAL_LEVELS`) of k-step-ahead errors at a few horizons k.

    Why empirical: load errors are skewed and heavy-tailed (bursts), so a Gaussian interval
    under-covers the top — the side that drops requests. Between measured horizons the quantiles
    are interpolated linearly; beyond the last one they grow like √k, the random-walk rate,
    which is the conservative choice where nothing was measured.
    """

    steps: np.ndarray
    """Measured horizons, increasing, shape (K,)."""
    table: np.ndarray
    """Error quantiles, shape (K, len(RESIDUAL_LEVELS))."""
    _rows: dict[int, np.ndarray] = field(default_factory=dict, init=False, repr=False)
    _offsets: dict[tuple[int, tuple[float, ...]], dict[float, np.ndarray]] = field(
        default_factory=dict, init=False, repr=False
    )
    """`rows` and `offsets` as computed, by horizon (and levels): a model asks for the same
    ones at every step, and they depend on nothing else (read-only arrays, shared)."""

    @classmethod
    def measure(cls, errors_at: Callable[[int], np.ndarray], max_step: int) -> HorizonErrors:
        """Tabulate `errors_at(k)` (the k-step errors at every usable origin) on the grid."""
        steps, rows = [], []
        for k in horizon_grid(max_step):
            errors = errors_at(int(k))[-ERROR_ORIGINS:]
            errors = errors[np.isfinite(errors)]
            if errors.size:
                steps.append(k)
                rows.append(np.quantile(errors, RESIDUAL_LEVELS))
        if not steps:
            raise ValueError("too little history to measure forecast errors")
        return cls(np.asarray(steps, dtype=float), np.stack(rows))

    def rows(self, horizon: int) -> np.ndarray:
        """Error quantiles for steps 1..horizon, shape (horizon, len(RESIDUAL_LEVELS))."""
        rows = self._rows.get(horizon)
        if rows is None:
            rows = self._rows[horizon] = _read_only(self._interpolate(horizon))
        return rows

    def _interpolate(self, horizon: int) -> np.ndarray:
        k = np.arange(1, horizon + 1, dtype=float)
        last = self.steps[-1]
        position = np.interp(np.minimum(k, last), self.steps, np.arange(self.steps.size))
        low = np.floor(position).astype(np.int64)
        high = np.minimum(low + 1, self.steps.size - 1)
        weight = (position - low)[:, None]
        rows = self.table[low] * (1 - weight) + self.table[high] * weight
        return rows * np.sqrt(np.maximum(k / last, 1.0))[:, None]

    def offsets(self, horizon: int, quantiles: Quantiles) -> dict[float, np.ndarray]:
        """Error quantile per requested level for steps 1..horizon."""
        key = (horizon, tuple(quantiles))
        offsets = self._offsets.get(key)
        if offsets is None:
            columns = level_columns(self.rows(horizon), quantiles)
            offsets = self._offsets[key] = {q: _read_only(v) for q, v in columns.items()}
        return dict(offsets)


def _read_only(values: np.ndarray) -> np.ndarray:
    values.flags.writeable = False
    return values


def level_columns(rows: np.ndarray, quantiles: Quantiles) -> dict[float, np.ndarray]:
    """Interpolate columns of a (h, len(RESIDUAL_LEVELS)) table at the requested levels."""
    last = RESIDUAL_LEVELS.size - 1
    out = {}
    for q in quantiles:
        position = min(max(q, 0.0), 1.0) * last
        low = min(int(position), last - 1)
        weight = position - low
        out[q] = rows[:, low] * (1 - weight) + rows[:, low + 1] * weight
    return out


def observed(series: CleanSeries) -> np.ndarray:
    """The series with filled values as NaN: errors are measured only where both ends were
    observed (a carried-forward outage would otherwise pass for a perfectly flat stretch)."""
    return np.where(series.valid, series.values, np.nan)


def k_step_changes(values: np.ndarray) -> Callable[[int], np.ndarray]:
    """k-step errors of the naive forecast: y[t+k] - y[t]."""
    return lambda k: values[k:] - values[:-k]


class Naive(Forecaster):
    """The last observed value, for every future step.

    Quantiles are the last value plus the empirical quantiles of k-step changes in the history:
    for noisy, mean-reverting load these grow much more slowly than the √k of a random walk,
    so the interval is not needlessly wide at long horizons.
    """

    name = "naive"

    def _fit(self, series: CleanSeries) -> None:
        values = observed(series)
        self.errors_ = HorizonErrors.measure(
            k_step_changes(values), min(MAX_ERROR_STEPS, max(1, values.size // 4))
        )

    def _forecast(self, horizon: int, quantiles: Quantiles) -> RawForecast:
        last = float(self.history_[-1])
        offsets = self.errors_.offsets(horizon, quantiles)
        return np.full(horizon, last), {q: last + offset for q, offset in offsets.items()}


class SeasonalNaive(Forecaster):
    """The value one season earlier: yesterday at the same time (or last week, `period`).

    The season is the daily period (as `seasonality.main_period` picks it), or the weekly one
    with `period="weekly"`; with less than two seasons of history it falls back to naive. Quantiles
    come from the empirical distribution of seasonal differences y[t] - y[t-m] — exactly the
    error of this rule within one season — widened by √(seasons ahead) beyond it (FPP3 §5.5).
    """

    name = "seasonal_naive"

    def __init__(self, period: str = "daily") -> None:
        self.period = period

    def _season(self, step_s: float) -> int | None:
        """Steps per season, or None when the season is not a whole number of steps."""
        if self.period not in SEASONS:
            raise ValueError(f"period must be 'daily' or 'weekly', got {self.period!r}")
        return period_steps(SEASONS[self.period], step_s)

    def _min_observations(self, step_s: float) -> int:
        return 2 * (self._season(step_s) or 1)  # no whole season: `_fit` says why

    def _history_needed(self, step_s: float, n_obs: int) -> int:
        return self._season(step_s) or 1

    def _fit(self, series: CleanSeries) -> None:
        season = self._season(self.step_s_)
        if season is None:
            raise ValueError(f"no {self.period} season of whole {self.step_s_:g} s steps")
        self.season_ = season
        values = observed(series)
        differences = (values[season:] - values[:-season])[-ERROR_ORIGINS:]
        self.errors_ = np.quantile(differences[np.isfinite(differences)], RESIDUAL_LEVELS)

    def _forecast(self, horizon: int, quantiles: Quantiles) -> RawForecast:
        steps = np.arange(horizon)
        mean = self.history_[-self.season_ + steps % self.season_]
        widen = np.sqrt(steps // self.season_ + 1)
        return mean, {q: mean + residual_quantile(self.errors_, q) * widen for q in quantiles}
