"""Ridge regression on the shared lag, seasonal and calendar features.

Why a linear model beside gradient boosting: it fits in milliseconds, extrapolates a trend
(trees cannot leave the range they saw), and is a strong, stable reference for the trees.

A linear model cannot learn from k alone how the weight of recent lags fades with the
horizon, so it fits one model per horizon bucket (k = 1, 2–3, 4–7, …, doubling), each on the
standardised features of the rows in its bucket. Its normalised forecast is clipped to the
range of normalised targets seen in training: a linear model extrapolates without bound, and
a burst far outside anything seen (ten times the usual load) must not forecast zero.

Quantiles come from the empirical distribution of each bucket's in-sample residuals, scaled by
√(forecast): request counts vary like a Poisson count, more at the daily peak than at night,
and a constant spread covers the night too widely and the peak too narrowly.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import Ridge
from sklearn.preprocessing import StandardScaler

from forecasting.base import RESIDUAL_LEVELS, Quantiles, RawForecast
from forecasting.features import forecast_design
from forecasting.hygiene import CleanSeries
from forecasting.models.gbm import FeatureForecaster, interpolate_levels
from forecasting.threads import one_thread

SPREAD_FLOOR = 0.1
"""Spread is never taken from a forecast below this share of the series' scale, so a
forecast near zero keeps an interval."""


class RidgeForecaster(FeatureForecaster):
    """One Ridge per horizon bucket; quantiles from residuals scaled by √(forecast)."""

    name = "ridge"

    def __init__(
        self,
        alpha: float = 1.0,
        max_horizon: int = 60,
        max_rows: int = 30_000,
        random_state: int = 0,
    ) -> None:
        self.alpha = alpha
        self.max_horizon = max_horizon
        self.max_rows = max_rows
        self.random_state = random_state

    def _fit(self, series: CleanSeries) -> None:
        with one_thread():
            self._fit_buckets(series)

    def _fit_buckets(self, series: CleanSeries) -> None:
        features, target, horizons = self._training_rows(series)
        buckets = _bucket(horizons, self.max_horizon)
        n_buckets = int(self.max_horizon).bit_length()  # floor(log2(max_horizon)) + 1
        self.coef_ = np.zeros((n_buckets, features.shape[1]))
        self.intercept_ = np.zeros(n_buckets)
        self.residuals_ = np.zeros((n_buckets, RESIDUAL_LEVELS.size))
        anchor = features[:, 0]
        self.bounds_ = (float(target.min()), float(target.max()))
        for b in range(n_buckets):
            rows = buckets == b
            self.coef_[b], self.intercept_[b] = _fit_standardised(
                features[rows], target[rows], self.alpha
            )
            fitted = features[rows] @ self.coef_[b] + self.intercept_[b]
            width = _width(anchor[rows] + fitted)
            self.residuals_[b] = np.quantile((target[rows] - fitted) / width, RESIDUAL_LEVELS)

    def _forecast(self, horizon: int, quantiles: Quantiles) -> RawForecast:
        history = self.history_
        features, anchor = forecast_design(
            history,
            horizon,
            spec=self.spec_,
            scale=self.scale_,
            start_s=self.start_s_,
            first_index=self.n_seen_ - history.size,
            max_horizon=self.max_horizon,
        )
        bucket = _bucket(np.arange(1, horizon + 1), self.max_horizon)
        fitted = np.einsum("ij,ij->i", features, self.coef_[bucket]) + self.intercept_[bucket]
        fitted = np.clip(fitted, *self.bounds_)
        width = self.scale_ * _width(features[:, 0] + fitted)
        table = self.residuals_[bucket].T
        mean = anchor + self.scale_ * fitted
        return mean, {
            q: mean + width * interpolate_levels(RESIDUAL_LEVELS, table, q) for q in quantiles
        }


def _width(forecast: np.ndarray) -> np.ndarray:
    """Residual spread, in units of the scale, at a normalised forecast level."""
    return np.sqrt(np.maximum(forecast, SPREAD_FLOOR))


def _bucket(horizons: np.ndarray, max_horizon: int) -> np.ndarray:
    """Horizon bucket: floor(log2 k), k capped at `max_horizon`."""
    return np.floor(np.log2(np.minimum(horizons, max_horizon))).astype(np.intp)


def _fit_standardised(
    features: np.ndarray, target: np.ndarray, alpha: float
) -> tuple[np.ndarray, float]:
    """Ridge on standardised features, folded back into weights on the raw features so a
    forecast is one dot product."""
    scaler = StandardScaler().fit(features)
    model = Ridge(alpha=alpha).fit(scaler.transform(features), target)
    coef = model.coef_ / scaler.scale_
    return coef, float(model.intercept_ - coef @ scaler.mean_)
