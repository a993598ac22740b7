"""`auto`: the selector picks the right family, ensembles, calibrates, and stays safe."""

from __future__ import annotations

import pickle

import numpy as np

from forecasting.selection import AutoForecaster, _same_as_best

STEP_S = 600.0
DAY = 144  # 10-minute steps per day


def daily_series(days: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(days * DAY)
    rate = 20 + 15 * np.sin(2 * np.pi * t / DAY)
    return rng.poisson(rate * STEP_S) / STEP_S


def bursty_series(steps: int, seed: int = 0) -> np.ndarray:
    """Long idle runs, then short bursts: an on/off LLM service at 10 s."""
    rng = np.random.default_rng(seed)
    on = np.zeros(steps, dtype=bool)
    for start in rng.choice(steps - 6, size=steps // 25, replace=False):
        on[start : start + rng.integers(2, 6)] = True
    return np.where(on, rng.poisson(8.0, steps), 0) / 10.0


def test_on_a_daily_series_auto_picks_seasonal_models_over_plain_naive():
    auto = AutoForecaster(candidates=("naive", "seasonal_naive", "ets"), horizon_steps=3)
    auto.fit(daily_series(10), step_s=STEP_S)
    ranked = sorted(auto.scores_, key=auto.scores_.get)
    assert ranked[0] in ("seasonal_naive", "ets")
    assert auto.scores_["naive"] > min(auto.scores_["seasonal_naive"], auto.scores_["ets"])
    assert set(auto.weights_) <= {"naive", "seasonal_naive", "ets"}
    assert abs(sum(auto.weights_.values()) - 1) < 1e-9


def test_on_an_on_off_series_intermittent_models_beat_the_seasonal_ones():
    auto = AutoForecaster(candidates=("seasonal_naive", "tsb", "croston"), horizon_steps=6)
    auto.fit(bursty_series(2000), step_s=10.0)
    assert min(auto.scores_["tsb"], auto.scores_["croston"]) < auto.scores_["seasonal_naive"]


def test_a_clearly_failing_candidate_is_left_out_of_the_ensemble():
    auto = AutoForecaster(candidates=("seasonal_naive", "ets", "phpa_hw"), horizon_steps=3)
    auto.fit(daily_series(10), step_s=STEP_S)
    # PHPA's fixed alpha = beta = gamma = 0.9 diverges on noisy seasonal data
    assert auto.scores_["phpa_hw"] > 1.5 * min(auto.scores_.values())
    assert "phpa_hw" not in auto.weights_
    assert "ets" in auto.weights_


def test_candidates_the_validation_cannot_tell_apart_are_averaged():
    rng = np.random.default_rng(1)
    noise = rng.normal(0, 1, 400)
    assert _same_as_best(noise, block=4)  # mean zero: as good as the best
    assert not _same_as_best(noise + 1.0, block=4)  # a whole unit worse, 400 origins
    assert _same_as_best(np.array([5.0, 6.0, 7.0]), block=2)  # one block: nothing to tell
    # neighbouring origins share their targets, so their differences come in runs: 20 runs
    # of 10 origins, 0.08 worse on average, is clear if every origin counted on its own, and
    # not when blocks of one run are the independent units
    runs = rng.normal(0, 0.5, 20)
    runs = 0.08 + runs - runs.mean()
    difference = np.repeat(runs, 10)
    assert not _same_as_best(difference, block=1)
    assert _same_as_best(difference, block=10)


def test_auto_forecasts_follow_the_season_and_are_calibrated_levels():
    y = daily_series(12, seed=3)
    auto = AutoForecaster(candidates=("seasonal_naive", "ets"), horizon_steps=6)
    auto.fit(y[: 11 * DAY], step_s=STEP_S)
    forecast = auto.predict(DAY // 2, quantiles=(0.05, 0.5, 0.9, 0.95))
    truth = 20 + 15 * np.sin(2 * np.pi * np.arange(11 * DAY + 1, 11 * DAY + 1 + DAY // 2) / DAY)
    assert np.mean(np.abs(forecast.quantile(0.5) - truth)) < 3.0
    factors = auto.calibrator_.factors(DAY // 2)
    assert ((factors >= 0.5) & (factors <= 2.0)).all()
    inside = (y[11 * DAY : 11 * DAY + DAY // 2] >= forecast.quantile(0.05)) & (
        y[11 * DAY : 11 * DAY + DAY // 2] <= forecast.quantile(0.95)
    )
    assert inside.mean() > 0.7


def test_auto_updates_its_members_and_pickles():
    auto = AutoForecaster(candidates=("naive", "ets"), horizon_steps=3)
    auto.fit(daily_series(4), step_s=STEP_S)
    before = auto.predict(3).mean.copy()
    auto.update(np.full(20, 200.0))
    assert auto.predict(3).mean[0] > before[0] + 50
    clone = pickle.loads(pickle.dumps(auto))
    assert np.allclose(clone.predict(3).mean, auto.predict(3).mean)


def test_too_short_for_selection_falls_back_to_naive():
    forecast = AutoForecaster(horizon_steps=5).fit(np.ones(10), step_s=60).predict(5)
    assert forecast.model.startswith("naive (fallback")


def test_online_calibration_widens_a_level_that_is_exceeded_too_often():
    y = daily_series(6, seed=5)
    auto = AutoForecaster(candidates=("seasonal_naive", "ets"), horizon_steps=3)
    auto.fit(y, step_s=STEP_S)
    p95 = list(auto.calibrator_.levels).index(0.95)
    before = auto.calibrator_.factors(1)[0, p95]
    for _ in range(30):  # every new value lands far above the last p95
        upper = auto.predict(1, quantiles=(0.95,)).quantile(0.95)[0]
        auto.update([upper * 3 + 10])
    widened = auto.calibrator_.factors(1)[0, p95]
    assert widened > before
    for _ in range(300):  # then every value sits on the median: the spread narrows again
        median = auto.predict(1, quantiles=(0.5,)).quantile(0.5)[0]
        auto.update([median])
    assert auto.calibrator_.factors(1)[0, p95] < widened


def test_values_no_forecast_predicted_do_not_move_the_calibration():
    auto = AutoForecaster(candidates=("seasonal_naive", "ets"), horizon_steps=3)
    auto.fit(daily_series(6), step_s=STEP_S)
    factors = auto.calibrator_.factors(3)
    auto.update([1e6])  # no forecast was made before it
    assert np.array_equal(auto.calibrator_.factors(3), factors)
