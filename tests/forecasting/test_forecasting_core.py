"""The forecasting core: hygiene, metrics, the base class's guard rails, live quality."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forecasting.base import Forecaster
from forecasting.forecast import Forecast, tidy
from forecasting.hygiene import clean, rates_from_counter
from forecasting.metrics import coverage, mase, pinball_loss, smape
from forecasting.quality import LiveQuality
from forecasting.seasonality import main_period, period_steps, usable_periods


def test_clean_treats_nan_negative_and_masked_as_missing_and_fills_them():
    y = np.array([1.0, np.nan, -3.0, 4.0, 5.0])
    mask = np.array([False, False, False, False, True])
    series = clean(y, mask)
    assert series.valid.tolist() == [True, False, False, True, False]
    assert series.values.tolist() == [1.0, 1.0, 1.0, 4.0, 4.0]


def test_clean_fills_from_one_season_earlier_when_it_is_known():
    y = np.array([1.0, 2.0, 3.0, 1.0, np.nan, 3.0])
    assert clean(y, season=3).values.tolist() == [1.0, 2.0, 3.0, 1.0, 2.0, 3.0]


def test_leading_gap_is_zero():
    assert clean(np.array([np.nan, np.nan, 2.0])).values.tolist() == [0.0, 0.0, 2.0]


def test_counter_reset_is_an_increase_from_zero():
    # 10 → 30 (+20), reset to 5 (+5 since the reset), → 15 (+10); 10 s apart
    rates = rates_from_counter(np.array([10.0, 30.0, 5.0, 15.0]), step_s=10)
    assert rates.tolist() == [2.0, 0.5, 1.0]


def test_metrics_by_hand():
    actual = np.array([10.0, 0.0])
    assert pinball_loss(actual, np.array([8.0, 2.0]), 0.9) == pytest.approx((0.9 * 2 + 0.1 * 2) / 2)
    assert mase(actual, np.array([9.0, 1.0]), np.array([5.0, 5.0])) == pytest.approx(1 / 5)
    assert smape(np.array([0.0, 10.0]), np.array([0.0, 30.0])) == pytest.approx(50.0)
    assert coverage(actual, np.array([9.0, 1.0]), np.array([11.0, 2.0])) == 0.5
    assert math.isnan(mase(actual, actual, actual))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=50))
def test_pinball_is_minimised_by_the_empirical_quantile(values):
    actual = np.asarray(values)
    best = pinball_loss(
        actual, np.full(actual.size, np.quantile(actual, 0.9, method="inverted_cdf")), 0.9
    )
    for other in (actual.min() - 1, actual.mean(), actual.max() + 1):
        assert best <= pinball_loss(actual, np.full(actual.size, other), 0.9) + 1e-6


def test_seasonal_periods_follow_the_resolution():
    assert period_steps(86_400, 60) == 1440
    assert period_steps(86_400, 7) is None  # not a whole number of steps
    assert usable_periods(600, 144 * 14) == [144, 1008]
    assert usable_periods(600, 144 * 3) == [144]
    assert main_period(10, 344) is None


def test_tidy_makes_forecasts_non_negative_finite_and_monotone():
    forecast = tidy(
        np.array([-1.0, np.nan]),
        {0.9: np.array([1.0, 5.0]), 0.5: np.array([2.0, -4.0])},
        60.0,
        "m",
    )
    assert forecast.mean.tolist() == [0.0, 0.0]
    assert forecast.quantiles[0.5].tolist() == [1.0, 0.0]
    assert forecast.quantiles[0.9].tolist() == [2.0, 5.0]


def test_forecast_interpolates_levels_it_was_not_asked_for():
    forecast = Forecast(np.zeros(1), {0.5: np.array([10.0]), 0.9: np.array([20.0])}, 60.0)
    assert forecast.quantile(0.7)[0] == pytest.approx(15.0)
    assert forecast.quantile(0.99)[0] == 20.0


class Broken(Forecaster):
    """Fits when told to, then fails where told to: the base class must absorb it."""

    name = "broken"

    def __init__(self, fail_in: str = "fit") -> None:
        self.fail_in = fail_in

    def _fit(self, series) -> None:
        if self.fail_in == "fit":
            raise FloatingPointError("singular matrix")
        self.level_ = float(series.values.mean())

    def _update(self, values) -> None:
        if self.fail_in == "update":
            raise RuntimeError("diverged")

    def _forecast(self, horizon, quantiles):
        if self.fail_in == "predict":
            raise ValueError("nan")
        return np.full(horizon, self.level_), {q: np.full(horizon, self.level_) for q in quantiles}


@pytest.mark.parametrize("fail_in", ["fit", "update", "predict"])
def test_failures_fall_back_to_naive_and_say_why(fail_in):
    model = Broken(fail_in).fit(np.arange(50.0), step_s=60)
    model.update([50.0, 51.0])
    forecast = model.predict(3)
    assert forecast.model.startswith("naive (fallback: broken")
    assert forecast.mean.tolist() == [51.0, 51.0, 51.0]
    table = np.array([forecast.quantiles[q] for q in sorted(forecast.quantiles)])
    assert np.all(np.diff(table, axis=0) >= 0)


def test_too_short_history_falls_back():
    model = Broken("never").fit(np.array([np.nan, 3.0]), step_s=60)
    model._min_observations = lambda step_s: 10
    model.fit(np.array([np.nan, 3.0]), step_s=60)
    assert "1 valid points" in model.predict(2).model


def test_update_cleans_values_and_advances_time():
    model = Broken("never").fit(np.ones(10), step_s=30, start_s=1000)
    model.update([np.nan, -5.0, 7.0])
    assert model.history_[-3:].tolist() == [1.0, 1.0, 7.0]
    assert model.next_time_s == 1000 + 13 * 30


def test_fit_refuses_a_bad_step():
    with pytest.raises(ValueError, match="step_s"):
        Broken("never").fit(np.ones(3), step_s=0)


def test_fitted_forecasters_pickle():
    model = Broken("never").fit(np.arange(20.0), step_s=60)
    clone = pickle.loads(pickle.dumps(model))
    assert clone.predict(2).mean.tolist() == model.predict(2).mean.tolist()


def test_live_quality_flags_a_bad_forecast_and_a_narrow_interval():
    good, biased, narrow = LiveQuality(window=100), LiveQuality(window=100), LiveQuality(window=100)
    rng = np.random.default_rng(0)
    for _ in range(200):
        actual = 100 + rng.normal(0, 10)
        good.record(actual, 100, 80, 120, reference=actual + rng.normal(0, 15))
        biased.record(actual, 150, 130, 170, reference=actual + rng.normal(0, 15))
        narrow.record(actual, 100, 99, 101, reference=actual + rng.normal(0, 15))
    assert good.verdict()[0] and good.coverage > 0.9 and good.mase < 1
    ok, why = biased.verdict()
    assert not ok and "MASE" in why
    ok, why = narrow.verdict()
    assert not ok and "coverage" in why
    assert good.outcomes == 100


def test_live_quality_gives_the_benefit_of_the_doubt_until_it_has_outcomes():
    quality = LiveQuality()
    quality.record(1.0, 100.0, 90.0, 110.0, 1.0)
    quality.record(float("nan"), 1.0, 0.0, 2.0, 1.0)  # ignored
    assert quality.outcomes == 1
    assert quality.verdict() == (True, "only 1 outcomes scored")


def test_history_grows_up_to_its_cap_after_a_short_fit():
    model = Broken("never").fit(np.ones(10), step_s=60)
    model.update(np.arange(1000.0))
    assert model.history_.size == model.history_cap_ == 256
    assert model.history_[-1] == 999.0
