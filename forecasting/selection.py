"""`auto`: pick, per series, the models that forecast it best, and average them.

How: a rolling-origin backtest on the tail of the series' own history (see `backtest`) scores
every candidate by pinball loss at the quantiles the policy provisions at (default p50 and
p90). The combination is the best candidate and every other one the validation cannot tell
from it (see `_choose`), averaged with equal weights quantile by quantile. The candidates are
not fitted twice: each was fitted before the validation window and has been `update`d through
it, exactly as it would have run live, so the chosen ones go on from there. The levels are
then calibrated online, as outcomes arrive (`_adapt_spread`). Re-selection is a new `fit`,
which the service runs periodically in the background.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial

import numpy as np

from forecasting import backtest
from forecasting.base import Forecaster, Quantiles, RawForecast
from forecasting.hygiene import CleanSeries
from forecasting.metrics import pinball_losses

CALIBRATED_TAILS = (0.05, 0.95)
"""Levels calibrated online besides the policy's: the 90 % interval's ends."""
SAME_AS_BEST_Z = 2.0
"""A candidate joins the combination unless its validation loss exceeds the best one's by more
than this many standard errors (of the per-origin loss difference, in blocks of one horizon).
Chosen on the forecasting corpus's tune half (`leadtime backtest --corpus`): mean pinball-0.9
ratio to each case's best single model 1.040 at 2, 1.049 at 1.5, 1.042 at 1."""
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
    "ridge",
)
"""Every per-series model but `gbm`. Why not the gradient boosting: it was two thirds of a
fit's CPU (0.65-0.75 of ~1.0 s on a day of 10 s steps: six boosted models, fitted again for
the validation), and the combination did not need it. On the forecasting corpus's tune half
the mean pinball-0.9 ratio to each case's best single model (`gbm` still among the singles)
was 1.040 with it and 1.041 without, 29 of 50 cases within 1.02 either way; on the report
half 1.040 with and 1.031 without. Where the boosting's lags and calendar terms win, `ridge`
(the same features, one linear fit) and `sarimax` are in the combination. `gbm` stays a model
of its own (`forecasting.model: gbm`, `leadtime backtest --models gbm`)."""


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
        ensemble_size: int = 5,
        adapt_rate: float = 0.02,
    ) -> None:
        self.candidates = candidates
        self.quantiles = quantiles
        self.horizon_steps = horizon_steps
        self.validation_fraction = validation_fraction
        self.max_validation_origins = max_validation_origins
        self.ensemble_size = ensemble_size
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
        losses = {name: self._origin_losses(actual, r.quantiles, keep) for name, r in runs.items()}
        self.scores_ = {name: _mean(loss) for name, loss in losses.items()}
        block = -(-h // int(np.median(np.diff(plan.origins)))) if plan.origins.size > 1 else 1
        self.choice_, self.weights_ = self._choose(losses, block)
        self.spread_ = dict.fromkeys(sorted({*self.quantiles, *CALIBRATED_TAILS} - {0.5}), 1.0)
        self.last_step_: tuple[int, dict[float, float]] | None = None
        tail = np.where(missing, np.nan, values)[plan.origins[-1] :]
        self.members_ = []
        for name, weight in self.weights_.items():
            member = runs[name].final
            assert member is not None
            self.members_.append((weight, member.update(tail)))

    def _origin_losses(self, actual: np.ndarray, forecasts: dict, keep: np.ndarray) -> np.ndarray:
        """Mean pinball loss at the policy's quantiles per origin (NaN where nothing scored)."""
        total = np.zeros(actual.shape[0])
        for q in self.quantiles:
            total += np.where(keep, pinball_losses(actual, forecasts[q], q), 0.0).sum(axis=1)
        scored = keep.sum(axis=1) * len(self.quantiles)
        return np.where(scored > 0, total / np.maximum(scored, 1), np.nan)

    def _choose(self, losses: dict[str, np.ndarray], block: int) -> tuple[str, dict[str, float]]:
        """The best candidate and those the validation cannot tell from it, up to
        `ensemble_size`, weighted equally.

        Why not the best alone: on a short validation window the ranking is mostly noise (a
        day at 10 minutes scores ~40 origins), and the average of the models that are as good
        as far as the data can say forecasts better out of sample than any one of them (the
        "forecast combination puzzle", Stock & Watson 2004; Claeskens et al. 2016). Why not a
        fixed top three: where the validation is long, a model that is clearly worse only
        dilutes the good ones. The test is a one-sided comparison of each candidate's
        per-origin loss with the best one's (Diebold & Mariano 1995; a one-step model
        confidence set, Hansen, Lunde & Nason 2011), on means of blocks of one horizon,
        because forecasts from neighbouring origins share their targets. Equal weights: weights
        fitted to the validation chase its noise.
        """
        ranked = sorted(self.scores_, key=self.scores_.__getitem__)
        best = losses[ranked[0]]
        members = [ranked[0]]
        for name in ranked[1:]:
            if len(members) < self.ensemble_size and _same_as_best(losses[name] - best, block):
                members.append(name)
        return "+".join(members), {name: 1.0 / len(members) for name in members}

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


def _mean(losses: np.ndarray) -> float:
    """Mean of the scored origins' losses; infinite when none was scored (ranked last)."""
    scored = losses[np.isfinite(losses)]
    return float(scored.mean()) if scored.size else math.inf


def _same_as_best(difference: np.ndarray, block: int) -> bool:
    """Whether a candidate's per-origin loss minus the best one's is within `SAME_AS_BEST_Z`
    standard errors of zero, on means of `block` consecutive origins (fewer than two blocks:
    nothing can be told apart, so it is)."""
    difference = difference[np.isfinite(difference)]
    blocks = difference.size // block
    if blocks < 2:
        return True
    means = difference[: blocks * block].reshape(blocks, block).mean(axis=1)
    return bool(means.mean() <= SAME_AS_BEST_Z * means.std(ddof=1) / np.sqrt(blocks))
