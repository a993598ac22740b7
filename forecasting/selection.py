"""`auto`: pick, per series, the model — or the weighted ensemble — that forecasts it best.

How: a rolling-origin backtest on the tail of the series' own history (see `backtest`) scores
every candidate by pinball loss at the quantiles the policy provisions at (default p50 and
p90). The best three, averaged with equal weights quantile by quantile, make the forecast
(see `_choose` for why equal weights). The candidates are not fitted twice: each was fitted
before the validation window and has been `update`d through it, exactly as it would have run
live, so the winners go on from there. Re-selection is a new `fit`, which the service runs
periodically in the background.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import numpy as np

from forecasting import backtest
from forecasting.base import Forecaster, Quantiles, RawForecast
from forecasting.hygiene import CleanSeries
from forecasting.metrics import pinball_loss

CALIBRATED_TAILS = (0.05, 0.95)
"""Levels calibrated on validation besides the policy's: the 90 % interval's ends."""
SPREAD_GRID = np.round(np.arange(0.5, 2.01, 0.05), 2)
"""Factors tried on the ensemble's distance from its median."""
SPREAD_LIMITS = (0.25, 4.0)
"""How far online calibration may move a level's spread factor."""

DEFAULT_CANDIDATES = (
    "naive",
    "seasonal_naive",
    "ets",
    "phpa_hw",
    "sarimax",
    "croston",
    "tsb",
    "gbm",
    "ridge",
)


class AutoForecaster(Forecaster):
    """Automatic per-series model selection by backtest; see the module docstring."""

    name = "auto"

    def __init__(
        self,
        candidates: Sequence[str] = DEFAULT_CANDIDATES,
        quantiles: Sequence[float] = (0.5, 0.9),
        horizon_steps: int = 5,
        validation_fraction: float = 0.4,
        max_validation_origins: int = 200,
        ensemble_size: int = 3,
        max_loss_ratio: float = 1.5,
        adapt_rate: float = 0.02,
    ) -> None:
        self.candidates = candidates
        self.quantiles = quantiles
        self.horizon_steps = horizon_steps
        self.validation_fraction = validation_fraction
        self.max_validation_origins = max_validation_origins
        self.ensemble_size = ensemble_size
        self.max_loss_ratio = max_loss_ratio
        self.adapt_rate = adapt_rate

    def _min_observations(self, step_s: float) -> int:
        return 4 * self.horizon_steps + 8

    def _fit(self, series: CleanSeries) -> None:
        from forecasting.registry import make_forecaster

        values, missing = series.values, ~series.valid
        n, h = values.size, self.horizon_steps
        plan = backtest.plan_origins(
            n,
            h,
            eval_steps=max(h + 1, int(n * self.validation_fraction)),
            max_origins=self.max_validation_origins,
            min_train=max(2, n // 2),
        )
        actual = backtest.actuals(values, plan)
        keep = backtest.scored_points(plan, missing)
        runs = {}
        for name in self.candidates:
            runs[name] = backtest.run(
                values,
                partial(make_forecaster, name),
                plan,
                step_s=self.step_s_,
                start_s=self.start_s_,
                mask=missing,
                quantiles=sorted({0.5, *self.quantiles, *CALIBRATED_TAILS}),
                name=name,
            )
        self.scores_ = {name: self._loss(actual, run.quantiles, keep) for name, run in runs.items()}
        self.choice_, self.weights_ = self._choose()
        self.spread_ = self._calibrate(runs, actual, keep)
        self.last_step_: tuple[int, dict[float, float]] | None = None
        tail = np.where(missing, np.nan, values)[plan.origins[-1] :]
        self.members_ = []
        for name, weight in self.weights_.items():
            member = runs[name].final
            assert member is not None
            self.members_.append((weight, member.update(tail)))

    def _loss(self, actual: np.ndarray, forecasts: dict, keep: np.ndarray) -> float:
        losses = [pinball_loss(actual[keep], forecasts[q][keep], q) for q in self.quantiles]
        return float(np.mean(losses))

    def _choose(self) -> tuple[str, dict[str, float]]:
        """The best `ensemble_size` candidates by validation loss, weighted equally.

        Equal weights on purpose: weights fitted to a short validation window chase its noise
        (the "forecast combination puzzle", Stock & Watson 2004; Claeskens et al. 2016), and on
        the shared traces the plain average of the top three beat both the single best
        candidate and simplex-optimised weights out of sample. A candidate whose validation loss
        is more than `max_loss_ratio` times the best one's is left out: averaging in a model
        that clearly failed would only dilute the good ones.
        """
        ranked = sorted(self.scores_, key=self.scores_.__getitem__)
        best = self.scores_[ranked[0]]
        members = [
            name
            for name in ranked[: self.ensemble_size]
            if self.scores_[name] <= self.max_loss_ratio * best
        ]
        return "+".join(members), {name: 1.0 / len(members) for name in members}

    def _calibrate(
        self, runs: dict[str, backtest.Run], actual: np.ndarray, keep: np.ndarray
    ) -> dict[float, float]:
        """Per level, the factor on the ensemble's distance from its median that minimises
        that level's validation pinball loss (a proper score, so this calibrates the level).

        Why: averaging members' quantiles keeps their location errors but not their spread
        errors, and members tuned for different series shapes are rarely calibrated for this
        one; a too-wide p95 costs GPUs, a too-narrow one costs cold starts.
        """
        combined = {
            q: sum(w * runs[name].quantiles[q][keep] for name, w in self.weights_.items())
            for q in runs[next(iter(self.weights_))].quantiles
        }
        median, a = combined[0.5], actual[keep]
        spread = {}
        for q, values in combined.items():
            if q == 0.5:
                continue
            losses = [pinball_loss(a, median + c * (values - median), q) for c in SPREAD_GRID]
            spread[q] = float(SPREAD_GRID[int(np.argmin(losses))])
        return spread

    def _spread_for(self, level: float) -> float:
        """The factor of the nearest calibrated level on the same side of the median."""
        side = [q for q in self.spread_ if (q > 0.5) == (level > 0.5)]
        if level == 0.5 or not side:
            return 1.0
        return self.spread_[min(side, key=lambda q: abs(q - level))]

    def _update(self, values: np.ndarray) -> None:
        self._adapt_spread(values)
        for _, member in self.members_:
            member.update(values)

    def _adapt_spread(self, values: np.ndarray) -> None:
        """Adaptive conformal calibration (Gibbs & Candès, NeurIPS 2021), per level: when the
        value that just arrived fell outside the last one-step-ahead quantile, widen that
        level's spread; when inside, narrow it a little. At equilibrium each level is exceeded
        at its nominal rate, even after the series has drifted from the validation window."""
        last = self.last_step_
        self.last_step_ = None
        if last is None or last[0] != self.n_seen_ - values.size:
            return  # no forecast was made right before these values
        outcome = float(values[0])
        for level, predicted in last[1].items():
            missed = outcome > predicted if level > 0.5 else outcome < predicted
            nominal = 1 - level if level > 0.5 else level
            factor = np.exp(self.adapt_rate * (float(missed) - nominal))
            self.spread_[level] = float(np.clip(self.spread_[level] * factor, *SPREAD_LIMITS))

    def _forecast(self, horizon: int, quantiles: Quantiles) -> RawForecast:
        levels = sorted({*quantiles, *self.spread_})
        mean, median = np.zeros(horizon), np.zeros(horizon)
        mixed = {q: np.zeros(horizon) for q in levels}
        for weight, member in self.members_:
            forecast = member.predict(horizon, levels)
            mean += weight * forecast.mean
            median += weight * forecast.quantile(0.5)
            for q in levels:
                mixed[q] += weight * forecast.quantile(q)
        calibrated = {q: median + self._spread_for(q) * (v - median) for q, v in mixed.items()}
        self.last_step_ = (self.n_seen_, {q: float(calibrated[q][0]) for q in self.spread_})
        return mean, {q: calibrated[q] for q in quantiles}
