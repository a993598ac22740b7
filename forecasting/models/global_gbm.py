"""The global model: one set of boosted quantile trees shared by many series.

Why: 10,000 services do not need 10,000 fits. Features and targets are relative to each
series' level and divided by its scale (see `features`), so series of any size look alike to
the trees and one model, fitted on rows sampled across a bounded number of series, forecasts
all of them. A series joins in about a millisecond (`for_series` cleans it and records its
scale and history); no trees are fitted for it.

Shipping it to a process pool: a `GlobalSeriesForecaster` holds a reference to the shared
model, so pickling one forecaster pickles the whole model (a few hundred kB). Either send the
`GlobalGradientBoosting` once per task and call `for_series` inside the worker, or pickle the
task's forecasters together in one `pickle.dumps` (or one task argument): pickle writes an
object referenced many times only once, so the model travels once per task, not per series.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError

from forecasting.base import Forecaster, Quantiles, RawForecast
from forecasting.features import FeatureSpec, series_scale, training_set
from forecasting.hygiene import CleanSeries, clean
from forecasting.models.gbm import (
    DEFAULT_LEVELS,
    Boosters,
    BoostingParams,
    boosted_forecast,
    min_training_values,
)
from forecasting.seasonality import main_period


class GlobalGradientBoosting(BaseEstimator):
    """Boosted quantile trees fitted once across many series; `for_series` serves each one.

    A series served later needs the look-back of the model's features (a day or a week of
    values when it uses those seasonal lags), else it falls back to naive and says why."""

    def __init__(
        self,
        quantiles: Sequence[float] = DEFAULT_LEVELS,
        max_horizon: int = 60,
        max_rows: int = 40_000,
        max_series: int = 200,
        max_iter: int = 60,
        learning_rate: float = 0.13,
        max_leaf_nodes: int = 15,
        max_depth: int = 6,
        min_samples_leaf: int = 40,
        max_bins: int = 63,
        random_state: int = 0,
    ) -> None:
        self.quantiles = quantiles
        self.max_horizon = max_horizon
        self.max_rows = max_rows
        self.max_series = max_series
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.max_bins = max_bins
        self.random_state = random_state

    def fit_many(
        self,
        series: Sequence[np.ndarray],
        *,
        step_s: float,
        start_s: float | Sequence[float] = 0.0,
    ) -> GlobalGradientBoosting:
        """Fit on up to `max_series` of `series` (a random choice when there are more), all at
        resolution `step_s`, drawing `max_rows / series used` rows from each. `start_s` is the
        time of each series' first value (one for all, or one per series).

        The seasonal lags are those the median series' length supports, so a few young
        services do not strip the daily and weekly terms from everyone; series too short for
        them are left out of training (and later served by the naive fallback)."""
        if not (isinstance(step_s, (int, float)) and math.isfinite(step_s) and step_s > 0):
            raise ValueError(f"step_s must be a positive number of seconds, got {step_s!r}")
        starts = np.broadcast_to(np.asarray(start_s, dtype=float), (len(series),))
        chosen = self._candidates(series, float(step_s))
        lengths = [cleaned.values.size for _, cleaned in chosen]
        self.spec_ = FeatureSpec.for_history(step_s, int(np.median(lengths)) if lengths else 0)
        need = min_training_values(self.spec_, self.max_horizon)
        chosen = [(i, cleaned) for i, cleaned in chosen if cleaned.observed >= need]
        if not chosen:
            raise ValueError(f"no series has the {need} valid values a fit needs")
        self.step_s_ = float(step_s)
        rng = np.random.default_rng(self.random_state)
        per_series = max(self.max_rows // len(chosen), 1)
        blocks = [
            training_set(
                cleaned,
                spec=self.spec_,
                scale=series_scale(cleaned),
                max_horizon=self.max_horizon,
                max_rows=per_series,
                rng=rng,
                start_s=float(starts[i]),
            )
            for i, cleaned in chosen
        ]
        features = np.concatenate([block[0] for block in blocks])
        target = np.concatenate([block[1] for block in blocks])
        self.boosters_ = Boosters.fit(features, target, self.quantiles, BoostingParams.of(self))
        self.n_series_ = len(chosen)
        return self

    def for_series(
        self, y: np.ndarray, *, mask: np.ndarray | None = None, start_s: float = 0.0
    ) -> GlobalSeriesForecaster:
        """A forecaster for one series that shares this model (cheap: no trees are fitted)."""
        _check_fitted(self)
        return GlobalSeriesForecaster(self).fit(y, step_s=self.step_s_, mask=mask, start_s=start_s)

    def _candidates(
        self, series: Sequence[np.ndarray], step_s: float
    ) -> list[tuple[int, CleanSeries]]:
        """(index, cleaned series) of at most `max_series` series, in random order, with the
        values a fit without seasonal lags needs."""
        need = min_training_values(FeatureSpec(step_s), self.max_horizon)
        order = np.random.default_rng(self.random_state).permutation(len(series))
        chosen = []
        for i in order:
            y = np.asarray(series[i], dtype=float).ravel()
            cleaned = clean(y, None, main_period(step_s, y.size))
            if cleaned.observed >= need:
                chosen.append((int(i), cleaned))
            if len(chosen) == self.max_series:
                break
        return chosen


class GlobalSeriesForecaster(Forecaster):
    """One series served by a shared `GlobalGradientBoosting`: fitting records the series'
    scale and history; forecasting evaluates the shared trees on its features."""

    name = "global_gbm"

    def __init__(self, model: GlobalGradientBoosting) -> None:
        self.model = model

    def _min_observations(self, step_s: float) -> int:
        return self._history_needed(step_s, 0)

    def _history_needed(self, step_s: float, n_obs: int) -> int:
        _check_fitted(self.model)
        return self.model.spec_.history

    def _fit(self, series: CleanSeries) -> None:
        if self.step_s_ != self.model.step_s_:
            raise ValueError(
                f"series step {self.step_s_:g} s differs from the model's {self.model.step_s_:g} s"
            )
        self.scale_ = series_scale(series)

    def _forecast(self, horizon: int, quantiles: Quantiles) -> RawForecast:
        model = self.model
        return boosted_forecast(
            model.boosters_, self, model.spec_, self.scale_, model.max_horizon, horizon, quantiles
        )


def _check_fitted(model: GlobalGradientBoosting) -> None:
    if not hasattr(model, "boosters_"):
        raise NotFittedError("this GlobalGradientBoosting is not fitted yet: call fit_many first")
