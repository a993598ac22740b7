"""The estimator contract every Leadtime forecaster follows, and the guard rails around it.

scikit-learn conventions: parameters are set in `__init__` and never changed by `fit`; fitted
state lives in attributes with a trailing underscore; `fit` returns `self`. Time-series
specifics: `fit(y, *, step_s)` on a rate series at a fixed resolution, `update(y_new)` for the
values observed since (cheap, online, called every tick), `predict(horizon_steps, quantiles)`.

Why a base class: the hot path of the autoscaler calls `update` and `predict` for thousands of
services every tick and must never fail there. The base class cleans input (see `hygiene`),
keeps the recent history, and turns any failure of a model — too little history to fit, a
numerical error, an exception on update or predict — into a naive forecast that says why.
Models only implement `_fit`, `_update` and `_forecast` on clean data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from sklearn.base import BaseEstimator

from forecasting.forecast import DEFAULT_QUANTILES, Forecast, tidy
from forecasting.hygiene import CleanSeries, clean
from forecasting.seasonality import main_period

Quantiles = Sequence[float]
RawForecast = tuple[np.ndarray, dict[float, np.ndarray]]

HISTORY_FLOOR = 256
"""Every forecaster keeps at least this many recent values, for fallbacks and features."""


class Forecaster(BaseEstimator):
    """Base class; subclasses implement `_fit`, `_forecast` and, when state moves, `_update`."""

    name = "base"

    # ------------------------------------------------------------------ to implement
    def _min_observations(self, step_s: float) -> int:
        """Valid observations `_fit` needs; below it the forecaster falls back to naive."""
        return 2

    def _history_needed(self, step_s: float, n_obs: int) -> int:
        """How many recent values `_update`/`_forecast` read from `history_`."""
        return HISTORY_FLOOR

    def _fit(self, series: CleanSeries) -> None:
        raise NotImplementedError

    def _update(self, values: np.ndarray) -> None:
        """Advance the model's state over newly observed `values` (already appended to
        `history_`). The default suits models that forecast from `history_` alone."""

    def _forecast(self, horizon: int, quantiles: Quantiles) -> RawForecast:
        raise NotImplementedError

    # --------------------------------------------------------------------- public
    def fit(
        self,
        y: np.ndarray,
        *,
        step_s: float,
        mask: np.ndarray | None = None,
        start_s: float = 0.0,
    ) -> Forecaster:
        """Fit on `y` (a rate per step), `step_s` seconds apart, the first at `start_s`
        (seconds since an epoch; calendar features read it). `mask` marks known outages."""
        if not (isinstance(step_s, (int, float)) and math.isfinite(step_s) and step_s > 0):
            raise ValueError(f"step_s must be a positive number of seconds, got {step_s!r}")
        y = np.asarray(y, dtype=float).ravel()
        series = clean(y, mask, main_period(step_s, y.size))
        self.step_s_ = float(step_s)
        self.start_s_ = float(start_s)
        self.n_seen_ = int(y.size)
        self.history_cap_ = max(self._history_needed(step_s, y.size), HISTORY_FLOOR)
        self.history_ = series.values[-self.history_cap_ :].copy()
        self.residual_scale_ = _naive_residual_quantiles(series.values)
        self.fallback_ = ""
        if series.observed < self._min_observations(step_s):
            self.fallback_ = f"{series.observed} valid points, {self.name} needs more"
            return self
        try:
            self._fit(series)
        except Exception as error:  # a model that cannot fit must not take the service down
            self.fallback_ = f"{self.name} fit failed: {type(error).__name__}: {error}"
        return self

    def update(self, y_new: np.ndarray | float) -> Forecaster:
        """Append newly observed values; never raises (a failure switches to the fallback)."""
        try:
            values = np.array(y_new, dtype=float, ndmin=1).ravel()
            if not (np.isfinite(values).all() and (values >= 0).all()):  # else clean as is
                last = self.history_[-1] if self.history_.size else 0.0
                values = clean(np.concatenate([[last], values])).values[1:]
            self.history_ = np.concatenate([self.history_, values])[-self.history_cap_ :]
            self.n_seen_ += values.size
            if not self.fallback_:
                self._update(values)
        except Exception as error:
            self.fallback_ = f"{self.name} update failed: {type(error).__name__}: {error}"
        return self

    def predict(self, horizon_steps: int, quantiles: Quantiles = DEFAULT_QUANTILES) -> Forecast:
        """Forecast the next `horizon_steps` steps; never raises on a fitted forecaster."""
        horizon = max(1, int(horizon_steps))
        levels = tuple(float(q) for q in quantiles)
        if not self.fallback_:
            try:
                mean, raw = self._forecast(horizon, levels)
                return tidy(mean, raw, self.step_s_, self.name)
            except Exception as error:
                self.fallback_ = f"{self.name} predict failed: {type(error).__name__}: {error}"
        mean, raw = naive_forecast(self.history_, self.residual_scale_, horizon, levels)
        return tidy(mean, raw, self.step_s_, f"naive (fallback: {self.fallback_})")

    @property
    def next_time_s(self) -> float:
        """Time (same epoch as `start_s`) of the step after the last observed one."""
        return self.start_s_ + self.n_seen_ * self.step_s_


# ------------------------------------------------------------------------ shared helpers
RESIDUAL_LEVELS = np.linspace(0.0, 1.0, 201)


def _naive_residual_quantiles(values: np.ndarray) -> np.ndarray:
    """Quantiles (at RESIDUAL_LEVELS) of one-step changes, for the naive fallback's spread."""
    if values.size < 3:
        return np.zeros(RESIDUAL_LEVELS.size)
    return np.quantile(np.diff(values), RESIDUAL_LEVELS)


def residual_quantile(table: np.ndarray, level: float) -> float:
    """Look a level up in a table computed at RESIDUAL_LEVELS."""
    return float(np.interp(level, RESIDUAL_LEVELS, table))


def naive_forecast(
    history: np.ndarray, residuals: np.ndarray, horizon: int, quantiles: Quantiles
) -> RawForecast:
    """Last value, with quantiles of one-step changes widened by √k for step k (random walk)."""
    last = float(history[-1]) if history.size else 0.0
    mean = np.full(horizon, last)
    widen = np.sqrt(np.arange(1, horizon + 1))
    return mean, {q: last + residual_quantile(residuals, q) * widen for q in quantiles}
