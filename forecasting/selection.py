"""`auto`: pick, per series, the models that forecast it best, and average them.

How: a rolling-origin backtest on the tail of the series' own history (see `backtest`) scores
every candidate by pinball loss at the quantiles the policy provisions at (default p50 and
p90). The combination is the best candidate and every other one the validation cannot tell
from it (see `_choose`), averaged with equal weights quantile by quantile. The candidates are
not fitted twice: each was fitted before the validation window and has been `update`d through
it, exactly as it would have run live, so the chosen ones go on from there. The levels are
then calibrated per step ahead as outcomes arrive (`forecasting.calibration`), from where the
validation's outcomes left them. Re-selection is a new `fit`, which the service runs
periodically in the background.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache, partial

import numpy as np

from forecasting import backtest
from forecasting.base import Forecaster, Quantiles, RawForecast
from forecasting.calibration import QuantileCalibrator
from forecasting.hygiene import CleanSeries
from forecasting.metrics import pinball_losses
from forecasting.models import make_model

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


QUICK_CANDIDATES = ("naive", "seasonal_naive", "phpa_hw", "croston", "tsb")
"""`auto`'s candidates for a warm-started service's first fit (`ForecastShell.seed`), which
the full selection replaces within the hour: the candidates that fit in milliseconds. A fit
on a day of 10 s steps takes 0.034 s of CPU instead of 0.17. Chosen against the target of
10,000 services with a model of their own within 10 minutes of start
(`load_tests/bench_forecasting.py --services 10000`): with `ets` as well, 0.058 s, and 9,129
had theirs after 600 s (all after ~11 min). On the forecasting corpus (`auto` restricted to
these) the mean pinball-0.9 ratio to each case's best single model is 1.076 on the tune half
and 1.157 on the report half; with `ets` 1.047 and 1.099; the full selection's 1.038 and
1.027, the starter's (`naive`) 1.155 and 1.507."""


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
                partial(make_model, name),
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
        self.calibrator_ = self._calibrator(runs, actual, keep)
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

    def _calibrator(
        self, runs: dict[str, backtest.Run], actual: np.ndarray, keep: np.ndarray
    ) -> QuantileCalibrator:
        """Online calibration of the combination, started on its validation forecasts.

        Why started there: the members' validation forecasts were made exactly as they will
        be live, so their average over the chosen members is what the combination would have
        forecast, and its misses say how far off its spread is from the first tick. On the
        corpus's tune half (`leadtime backtest --corpus`; pinball-0.9 relative to each case's
        best single model, and the cases whose 90 % interval covers 85-95 %):

        | calibration | mean | worst | covered |
        |---|---|---|---|
        | one factor for all steps, from 1 | 1.041 | 1.39 | 40 of 50 |
        | one factor, warmed | 1.039 | 1.33 | 40 |
        | per step, from 1 | 1.042 | 1.41 | 39 |
        | per step, warmed | 1.038 | 1.33 | 41 |

        The policy's levels keep the one rate `adapt_rate` (0.02): letting them choose their
        rate too gave a mean of 1.047, with 19 cases within 1.02 of the best (31 here)."""
        levels = sorted({*self.quantiles, *CALIBRATED_TAILS} - {0.5})
        calibrator = QuantileCalibrator(
            levels, self.horizon_steps, fixed=self.quantiles, fixed_rate=self.adapt_rate
        )
        medians = sum(w * runs[name].quantiles[0.5] for name, w in self.weights_.items())
        raw = np.stack(
            [sum(w * runs[name].quantiles[q] for name, w in self.weights_.items()) for q in levels],
            axis=2,
        )
        calibrator.replay(np.asarray(medians), raw, actual, keep)
        return calibrator

    def _update(self, values: np.ndarray) -> None:
        self.calibrator_.observe(self.n_seen_ - values.size, values)
        for _, member in self.members_:
            member.update(values)

    def _forecast(self, horizon: int, quantiles: Quantiles) -> RawForecast:
        calibrator = self.calibrator_
        levels = sorted({0.5, *quantiles, *calibrator.levels.tolist()})
        mean, table = np.zeros(horizon), np.zeros((len(levels), horizon))
        for weight, member in self.members_:
            forecast = member.predict(horizon, levels)
            mean += weight * forecast.mean
            table += weight * np.stack([forecast.quantiles[q] for q in levels])
        median = table[levels.index(0.5)]
        rows = np.searchsorted(levels, calibrator.levels)
        calibrator.record(self.n_seen_, median, table[rows].T)
        columns = np.asarray(_nearest_calibrated(tuple(levels), tuple(calibrator.levels.tolist())))
        spread = np.where(columns[:, None] >= 0, calibrator.factors(horizon).T[columns], 1.0)
        calibrated = median + spread * (table - median)
        return mean, {q: calibrated[levels.index(q)] for q in quantiles}


@lru_cache(maxsize=64)
def _nearest_calibrated(
    levels: tuple[float, ...], calibrated: tuple[float, ...]
) -> tuple[int, ...]:
    """For each level, the index of the nearest calibrated level on the same side of the
    median, or -1 (the median, or no calibrated level on its side: left as it is). Cached: a
    service asks for the same levels every step."""
    wanted, known = np.asarray(levels)[:, None], np.asarray(calibrated)[None, :]
    same_side = ((wanted > 0.5) == (known > 0.5)) & (wanted != 0.5)
    distance = np.where(same_side, np.abs(wanted - known), np.inf)
    nearest = np.where(np.isfinite(distance.min(axis=1)), distance.argmin(axis=1), -1)
    return tuple(int(i) for i in nearest)


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
