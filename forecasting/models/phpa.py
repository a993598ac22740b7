"""The Holt-Winters model the Predictive Horizontal Pod Autoscaler ships, as a yardstick.

PHPA (jthomperoo/predictive-horizontal-pod-autoscaler, `algorithms/holt_winters/holt_winters.py`
at v0.13) runs, every sync, on the last `storedSeasons` seasons:

    ExponentialSmoothing(series, trend="add", seasonal="add", seasonal_periods=m,
                         initialization_method="estimated")
        .fit(smoothing_level=α, smoothing_trend=β, smoothing_seasonal=γ, optimized=False)

PHPA has no defaults for α, β, γ (a missing one is an error); its documentation's example
(`docs/user-guide/models.md`, `examples/simple-holt-winters`) uses α = β = γ = 0.9 and
`storedSeasons: 4`, which are the defaults here. With `optimized=False` nothing is estimated:
statsmodels takes its heuristic initial states (Hyndman, Koehler, Ord & Snyder 2008, §2.6.1;
PHPA requires the ≥ 2·m and ≥ 10 + 2·(m // 2) points that method needs) and runs the additive
Holt-Winters recursion. This class does the same — initial states from statsmodels, then the
recursion in its own code, so a season of 1,440 or 8,640 steps costs O(1) per value and the
fitted estimator holds only three states and m seasonal indices. Two differences, on purpose:
PHPA re-initialises at every sync, while `update` here continues the recursion (with stable
constants the initial states are forgotten within a few seasons either way); and from a
season ahead on, statsmodels' `forecast` reuses the previous season's index for the last
phase where this class uses the updated one.

PHPA has no prediction intervals. So that it can be scored by pinball loss and coverage like
the other models, its quantiles are its point forecast plus the empirical quantiles of its own
k-step errors (`naive.HorizonErrors`) — an addition of Leadtime's, not PHPA's.

What the documented constants do to request rates (NASA-HTTP 1995, 1-minute steps, daily
season; fit on 14 days, then every 5 minutes for a day `update` and `predict(5)`, 5 splits):
additive Holt-Winters with α = β = γ = 0.9 is unstable on noisy data — statsmodels' own
one-step errors grow ×1.75 a day (mean absolute 17, 41, 78, 140 … 1,290 requests/minute over
days 1–8, on a level of ~50; 9–15 throughout with α = 0.1, β = 0.01, γ = 0.1) — so the
90 % interval covered 0.55 and pinball loss at 0.9 was 56.6, against 5.74 for seasonal naive.
PHPA bounds the blow-up by refitting on `storedSeasons` every sync; here the background refit
does. With α = 0.1, β = 0.01, γ = 0.1 the same model covered 0.934 with pinball 3.51. Fit:
0.04 s CPU for 7 days of minutes, 0.16 s at 10 s; `predict(60)` 0.2 ms; `update` 0.03 ms a
value.
"""

from __future__ import annotations

import numpy as np
from statsmodels.tsa.holtwinters import ExponentialSmoothing

from forecasting.base import Forecaster, Quantiles, RawForecast
from forecasting.hygiene import CleanSeries
from forecasting.models.naive import MAX_ERROR_STEPS, SEASONS, HorizonErrors, observed
from forecasting.seasonality import period_steps


class PhpaHoltWinters(Forecaster):
    """Additive Holt-Winters with fixed α (level), β (trend), γ (season), as PHPA runs it.

    `period` is "daily", "weekly" or a number of steps (PHPA's `seasonalPeriods`);
    `stored_seasons` is how many recent seasons it fits on (PHPA's `storedSeasons`; None: all).
    """

    name = "phpa_hw"

    def __init__(
        self,
        alpha: float = 0.9,
        beta: float = 0.9,
        gamma: float = 0.9,
        period: str | int = "daily",
        stored_seasons: int | None = 4,
    ) -> None:
        self.alpha = alpha
        self.beta = beta
        self.gamma = gamma
        self.period = period
        self.stored_seasons = stored_seasons

    def _season(self, step_s: float) -> int | None:
        """Steps per season, or None when a day (week) is not a whole number of steps."""
        if isinstance(self.period, (int, np.integer)) and self.period >= 2:
            return int(self.period)
        if self.period not in SEASONS:
            raise ValueError(
                f"period must be 'daily', 'weekly' or a whole number of steps >= 2, "
                f"got {self.period!r}"
            )
        return period_steps(SEASONS[self.period], step_s)

    def _min_observations(self, step_s: float) -> int:
        # parameters are checked here, before the base class turns errors into a fallback
        for name in ("alpha", "beta", "gamma"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)!r}")
        season = self._season(step_s) or 1  # no whole season: `_fit` says why
        return max(2 * season, 10 + 2 * (season // 2))

    def _fit(self, series: CleanSeries) -> None:
        season = self._season(self.step_s_)
        if season is None:
            raise ValueError(f"no {self.period} season of whole {self.step_s_:g} s steps")
        y = series.values
        if self.stored_seasons is not None:
            y = y[-max(2, int(self.stored_seasons)) * season :]
        levels, trends, seasonals = self._run(y, y, season)
        self.level_, self.trend_ = float(levels[-1]), float(trends[-1])
        self.season_ = seasonals[-season:].copy()  # index p: the next value p steps on
        self.phase_ = 0
        self.errors_ = self._measure_errors(y, observed(series)[-y.size :], season)

    def _run(
        self, start: np.ndarray, y: np.ndarray, season: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """PHPA's fit: statsmodels' initial states from `start`, then the recursion over `y`."""
        level, trend, seasonal = ExponentialSmoothing(
            start,
            trend="add",
            seasonal="add",
            seasonal_periods=season,
            initialization_method="estimated",
        ).initial_values()
        return self._smooth(y, level, trend, np.asarray(seasonal))

    def _measure_errors(self, y: np.ndarray, target: np.ndarray, season: int) -> HorizonErrors:
        """k-step errors on values the states had not seen: statsmodels' initial seasonal
        indices average the very seasons they are fitted on, so errors there look too good.
        With three seasons or more, the states start from the first two and errors are
        measured on the rest; with fewer, on all but the first season (slightly narrow).
        `target` is `y` with the values that were filled, not observed, as NaN."""
        first = 2 * season if y.size >= 3 * season else season
        levels, trends, seasonals = self._run(y[:first] if first > season else y, y, season)

        def errors_at(k: int) -> np.ndarray:
            origins = np.arange(first, y.size - k + 1)
            point = levels[origins] + k * trends[origins] + seasonals[origins + k - 1]
            return target[origins + k - 1] - point

        return HorizonErrors.measure(errors_at, min(MAX_ERROR_STEPS, season))

    def _smooth(
        self, y: np.ndarray, level: float, trend: float, seasonal: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """statsmodels' additive recursion (`holtwinters._smoothers.holt_win_add_add_dam`):
        level and trend before each value and after the last; seasonals[i] is the index that
        applies to value i, so seasonals[n : n + m] are the ones for the next season."""
        alpha, beta, gamma = self.alpha, self.beta, self.gamma
        levels, trends = [level], [trend]
        seasonals = seasonal.tolist()
        for i, value in enumerate(y.tolist()):
            expected = level + trend
            new_level = alpha * (value - seasonals[i]) + (1 - alpha) * expected
            trend = beta * (new_level - level) + (1 - beta) * trend
            seasonals.append(gamma * (value - expected) + (1 - gamma) * seasonals[i])
            level = new_level
            levels.append(level)
            trends.append(trend)
        return np.asarray(levels), np.asarray(trends), np.asarray(seasonals)

    def _update(self, values: np.ndarray) -> None:
        alpha, beta, gamma = self.alpha, self.beta, self.gamma
        level, trend, phase = self.level_, self.trend_, self.phase_
        season = self.season_
        for value in values.tolist():
            expected = level + trend
            new_level = alpha * (value - season[phase]) + (1 - alpha) * expected
            trend = beta * (new_level - level) + (1 - beta) * trend
            season[phase] = gamma * (value - expected) + (1 - gamma) * season[phase]
            level = new_level
            phase = (phase + 1) % season.size
        self.level_, self.trend_, self.phase_ = level, trend, phase

    def _forecast(self, horizon: int, quantiles: Quantiles) -> RawForecast:
        k = np.arange(1, horizon + 1)
        point = (
            self.level_ + k * self.trend_ + self.season_[(self.phase_ + k - 1) % self.season_.size]
        )
        offsets = self.errors_.offsets(horizon, quantiles)
        return point, {q: point + offset for q, offset in offsets.items()}
