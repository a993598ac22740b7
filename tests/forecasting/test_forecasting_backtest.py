"""Rolling-origin backtests: where the origins fall, what each forecast may see, the scores."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest

from forecasting import backtest
from forecasting.base import Forecaster


class LastValueSpy(Forecaster):
    """Forecasts the last value it has seen, and records what it was shown."""

    name = "spy"
    fits: ClassVar[list[int]] = []

    def _fit(self, series) -> None:
        LastValueSpy.fits.append(series.values.size)

    def _forecast(self, horizon, quantiles):
        last = self.history_[-1]
        return np.full(horizon, last), {q: np.full(horizon, last + (q - 0.5)) for q in quantiles}


def test_origins_spread_evenly_over_the_evaluation_window():
    plan = backtest.plan_origins(100, 5, eval_steps=20, max_origins=4)
    # the last origin's targets end at y[99]; the window starts 20 steps before y[95]
    assert plan.origins.tolist() == [76, 82, 89, 95]
    with pytest.raises(ValueError, match="too short"):
        backtest.plan_origins(10, 5, eval_steps=20, min_train=8)


def test_a_forecast_sees_only_values_before_its_origin_and_refits_on_schedule():
    y = np.arange(100.0)
    LastValueSpy.fits = []
    plan = backtest.plan_origins(100, 3, eval_steps=30, max_origins=30, refit_every=10)
    run = backtest.run(y, LastValueSpy, plan, step_s=60, name="spy")
    # at origin o the last value seen is y[o - 1] = o - 1
    assert run.mean[:, 0].tolist() == (plan.origins - 1).tolist()
    assert LastValueSpy.fits == [68, 78, 88]  # fitted at the first origin, then every 10 steps
    assert len(run.fit_seconds) == 3 and len(run.predict_seconds) == plan.origins.size


def test_masked_values_reach_update_as_missing_and_are_not_scored():
    y = np.arange(50.0)
    mask = np.zeros(50, dtype=bool)
    mask[40:45] = True
    plan = backtest.plan_origins(50, 2, eval_steps=15, max_origins=15)
    run = backtest.run(y, LastValueSpy, plan, step_s=60, name="spy", mask=mask)
    after_outage = plan.origins.tolist().index(46)
    assert run.mean[after_outage, 0] == 45.0  # 40..44 were missing: 45 is the last seen
    keep = backtest.scored_points(plan, mask)
    assert not keep[plan.origins.tolist().index(40)].any()


def test_scores_compare_with_the_baseline_on_the_same_points():
    y = np.arange(40.0)
    plan = backtest.plan_origins(40, 1, eval_steps=10, max_origins=10)
    spy = backtest.run(y, LastValueSpy, plan, step_s=60, name="spy")
    actual = backtest.actuals(y, plan)
    scores = backtest.score(actual, spy, spy, backtest.scored_points(plan, None))
    assert scores["mase"] == pytest.approx(1.0)
    assert scores["pinball_50"] == pytest.approx(0.5)  # always 1 below the truth
    assert scores["coverage_90"] == 0.0  # the band [last-0.45, last+0.45] never reaches it
    assert set(scores) == {
        "mase",
        "smape",
        "pinball_50",
        "pinball_90",
        "coverage_90",
        "fit_s",
        "predict_ms",
    }
