"""The statistical models: naive, seasonal naive, fitted ETS and PHPA's Holt-Winters.

Each recovers structure it should know (a level, a trend, a daily cycle), is calibrated on
noise of known law, keeps its state small and online, and never raises on dirty input.
"""

from __future__ import annotations

import pickle
import time

import numpy as np
import pytest
from statsmodels.tsa.holtwinters import ExponentialSmoothing

from forecasting.base import Forecaster
from forecasting.metrics import coverage
from forecasting.models.ets import HoltWinters, centred_mean, seasonal_profile
from forecasting.models.naive import HorizonErrors, Naive, SeasonalNaive
from forecasting.models.phpa import PhpaHoltWinters

MINUTE, TEN_MINUTES = 60.0, 600.0
DAY_MIN = 1440
LEVELS = (0.05, 0.5, 0.9, 0.95)


def all_models() -> list[Forecaster]:
    return [Naive(), SeasonalNaive(), HoltWinters(), PhpaHoltWinters()]


def daily_sine(steps: int, step_s: float) -> np.ndarray:
    t = np.arange(steps) * step_s
    return 100 + 50 * np.sin(2 * np.pi * t / 86_400)


def poisson(steps: int, rate: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).poisson(rate, steps).astype(float)


# --- structure ---------------------------------------------------------------------------


@pytest.mark.parametrize("model", all_models(), ids=lambda m: m.name)
def test_a_constant_level_is_forecast_as_itself(model: Forecaster) -> None:
    forecast = model.fit(np.full(3 * 144, 7.0), step_s=TEN_MINUTES).predict(24, LEVELS)
    assert forecast.model == model.name
    for level in LEVELS:
        np.testing.assert_allclose(forecast.quantile(level), 7.0, atol=1e-6)
    np.testing.assert_allclose(forecast.mean, 7.0, atol=1e-6)


@pytest.mark.parametrize(
    "model", [HoltWinters(), PhpaHoltWinters(0.5, 0.3, 0.1)], ids=["ets", "phpa"]
)
def test_a_linear_trend_is_extrapolated(model: Forecaster) -> None:
    """ETS damps its trend (φ ≤ 0.98), so it may fall a little short 30 steps out. PHPA's
    documented α = β = γ = 0.9 amplify the error of statsmodels' heuristic start (its level is
    the trend's value half a season in, not at the start) instead of forgetting it."""
    y = 10 + 0.05 * np.arange(3 * 144 + 30)
    forecast = model.fit(y[:-30], step_s=TEN_MINUTES).predict(30)
    np.testing.assert_allclose(forecast.quantile(0.5), y[-30:], rtol=0.02)


@pytest.mark.parametrize("step_s", [MINUTE, TEN_MINUTES])
@pytest.mark.parametrize(
    "model", [SeasonalNaive(), HoltWinters(), PhpaHoltWinters()], ids=lambda m: m.name
)
def test_a_daily_cycle_is_tracked_over_the_next_hours(model: Forecaster, step_s: float) -> None:
    per_day, hours = int(86_400 / step_s), int(6 * 3600 / step_s)
    y = daily_sine(3 * per_day + hours, step_s)
    forecast = model.fit(y[:-hours], step_s=step_s).predict(hours)
    assert forecast.model == model.name
    np.testing.assert_allclose(forecast.quantile(0.5), y[-hours:], atol=0.5)
    np.testing.assert_allclose(forecast.mean, y[-hours:], atol=0.5)


def test_seasonal_naive_repeats_yesterday_and_last_week_exactly() -> None:
    week = np.random.default_rng(3).uniform(0, 100, 1008)
    y = np.tile(week, 3)  # noise-free: each day (and week) as it was
    daily = SeasonalNaive().fit(y[:-200], step_s=TEN_MINUTES).predict(200, LEVELS)
    yesterday = np.tile(y[-344:-200], 2)[:200]
    np.testing.assert_array_equal(daily.mean, yesterday)
    weekly = SeasonalNaive(period="weekly").fit(y[:-200], step_s=TEN_MINUTES).predict(200, LEVELS)
    for level in LEVELS:
        np.testing.assert_array_equal(weekly.quantile(level), y[-200:])


def test_the_seasonal_profile_separates_trend_from_season() -> None:
    t = np.arange(3 * 144)
    season = 5 * np.sin(2 * np.pi * t / 144)
    y = 2 + 0.1 * t + season
    np.testing.assert_allclose(centred_mean(y - season, 145), y - season, atol=1e-9)
    profile = seasonal_profile(y, np.ones(y.size, dtype=bool), 144)
    np.testing.assert_allclose(profile, season[:144], atol=0.2)


def test_phpa_is_statsmodels_holt_winters_with_fixed_parameters() -> None:
    """Same numbers as PHPA's own call, after fit and after update (statsmodels reuses a
    season-old index at step m, so the comparison stops before it)."""
    rng = np.random.default_rng(1)
    m, n = 12, 80
    y = 10 + 3 * np.sin(2 * np.pi * np.arange(n + 7) / m) + rng.normal(0, 0.5, n + 7)
    smoothing = {"smoothing_level": 0.3, "smoothing_trend": 0.1, "smoothing_seasonal": 0.2}
    shape = {"trend": "add", "seasonal": "add", "seasonal_periods": m}
    first = ExponentialSmoothing(y[:n], **shape, initialization_method="estimated")
    first = first.fit(**smoothing, optimized=False)
    continued = ExponentialSmoothing(
        y,
        **shape,
        initialization_method="known",
        initial_level=first.params["initial_level"],
        initial_trend=first.params["initial_trend"],
        initial_seasonal=first.params["initial_seasons"],
    ).fit(**smoothing, optimized=False)

    ours = PhpaHoltWinters(0.3, 0.1, 0.2, period=m, stored_seasons=None).fit(y[:n], step_s=MINUTE)
    np.testing.assert_allclose(ours.predict(m - 1).mean, first.forecast(m - 1), rtol=1e-10)
    ours.update(y[n:])
    np.testing.assert_allclose(ours.predict(m - 1).mean, continued.forecast(m - 1), rtol=1e-10)


# --- intervals ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model",
    [Naive(), SeasonalNaive(), HoltWinters(), PhpaHoltWinters(0.1, 0.01, 0.1)],
    ids=lambda m: m.name,
)
def test_the_90_percent_interval_covers_poisson_noise(model: Forecaster) -> None:
    """PHPA's documented α = β = γ = 0.9 make additive Holt-Winters unstable on noise (its
    errors grow each season), so its calibration is checked with stable constants."""
    y = poisson(3 * DAY_MIN + 1500, rate=20.0, seed=7)
    model.fit(y[: 3 * DAY_MIN], step_s=MINUTE)
    actual, lower, upper = [], [], []
    for origin in range(3 * DAY_MIN, y.size - 5, 5):
        forecast = model.predict(5, LEVELS)
        actual.append(y[origin : origin + 5])
        lower.append(forecast.quantile(0.05))
        upper.append(forecast.quantile(0.95))
        model.update(y[origin : origin + 5])
    covered = coverage(np.concatenate(actual), np.concatenate(lower), np.concatenate(upper))
    assert 0.80 <= covered <= 0.98


@pytest.mark.parametrize("model", all_models(), ids=lambda m: m.name)
def test_quantiles_are_monotone_and_non_negative(model: Forecaster) -> None:
    y = np.maximum(daily_sine(3 * 144, TEN_MINUTES) - 90, 0) + poisson(3 * 144, 2.0, seed=1)
    forecast = model.fit(y, step_s=TEN_MINUTES).predict(150, (0.01, 0.1, 0.5, 0.9, 0.99))
    table = np.stack([forecast.quantile(q) for q in forecast.levels])
    assert np.all(table >= 0) and np.all(np.diff(table, axis=0) >= 0)
    assert np.all(forecast.mean >= 0)


def test_horizon_errors_interpolate_and_grow_like_a_random_walk_beyond_the_measured() -> None:
    errors = HorizonErrors.measure(lambda k: np.array([-k, 0.0, k]), max_step=16)
    upper = errors.offsets(64, (1.0,))[1.0]
    np.testing.assert_allclose(upper[:16], np.arange(1, 17))
    np.testing.assert_allclose(upper[63], 16 * np.sqrt(64 / 16))


# --- state -------------------------------------------------------------------------------


@pytest.mark.parametrize("model", all_models(), ids=lambda m: m.name)
def test_pickling_round_trips_and_stays_small(model: Forecaster) -> None:
    y = daily_sine(7 * DAY_MIN, MINUTE) + poisson(7 * DAY_MIN, 5.0, seed=2)
    model.fit(y, step_s=MINUTE).update(y[:17])
    blob = pickle.dumps(model)
    assert len(blob) < 150_000  # no training data kept: 7 days are 80 kB alone
    a, b = model.predict(60, LEVELS), pickle.loads(blob).predict(60, LEVELS)
    assert a.model == b.model == model.name
    np.testing.assert_array_equal(a.mean, b.mean)
    for level in LEVELS:
        np.testing.assert_array_equal(a.quantile(level), b.quantile(level))


@pytest.mark.parametrize(
    "model", [Naive(), HoltWinters(), PhpaHoltWinters(0.5, 0.1, 0.1)], ids=lambda m: m.name
)
def test_update_moves_the_forecast_toward_a_level_shift(model: Forecaster) -> None:
    y = 10 + poisson(3 * 144, 3.0, seed=4)
    before = model.fit(y, step_s=TEN_MINUTES).predict(3).quantile(0.5)[0]
    after = model.update(np.full(20, 60.0)).predict(3).quantile(0.5)[0]
    assert before < 20 and after > 45


def test_seasonal_naive_update_shifts_the_season_it_repeats() -> None:
    y = np.arange(2 * 144, dtype=float)
    model = SeasonalNaive().fit(y, step_s=TEN_MINUTES).update(np.array([1000.0, 1001.0]))
    np.testing.assert_array_equal(model.predict(3).mean, y[146:149])


@pytest.mark.parametrize(
    ("model", "steps"),
    [(Naive(), 1), (SeasonalNaive(), 200), (HoltWinters(), 6), (PhpaHoltWinters(), 200)],
    ids=["naive", "seasonal_naive", "ets", "phpa_hw"],
)
def test_too_short_history_falls_back_to_naive_and_says_why(model: Forecaster, steps: int) -> None:
    forecast = model.fit(np.full(steps, 4.0), step_s=TEN_MINUTES).predict(3)
    assert forecast.model == f"naive (fallback: {steps} valid points, {model.name} needs more)"
    np.testing.assert_allclose(forecast.mean, 4.0)


def test_a_season_that_is_no_whole_number_of_steps_falls_back_and_says_why() -> None:
    forecast = SeasonalNaive().fit(np.ones(50_000), step_s=7.0).predict(2)
    assert forecast.model.startswith("naive (fallback: seasonal_naive fit failed")
    assert "no daily season of whole 7 s steps" in forecast.model


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (SeasonalNaive(period="monthly"), "period must be 'daily' or 'weekly'"),
        (HoltWinters(transform="log"), "transform must be one of"),
        (HoltWinters(trend="linear"), "trend one of"),
        (PhpaHoltWinters(alpha=1.5), r"alpha must lie in \[0, 1\]"),
        (PhpaHoltWinters(period=1), "period must be 'daily', 'weekly' or a whole number"),
    ],
    ids=["period", "transform", "trend", "alpha", "phpa-period"],
)
def test_a_misconfigured_model_fails_loudly_instead_of_falling_back(
    model: Forecaster, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        model.fit(np.ones(500), step_s=TEN_MINUTES)


@pytest.mark.parametrize("model", all_models(), ids=lambda m: m.name)
def test_nan_negative_and_infinite_input_never_raises(model: Forecaster) -> None:
    y = daily_sine(3 * 144, TEN_MINUTES)
    y[::7], y[3::11], y[5::13] = np.nan, -5.0, np.inf
    model.fit(y, step_s=TEN_MINUTES)
    model.update(np.array([np.nan, -1.0, np.inf, 80.0]))
    forecast = model.predict(12, LEVELS)
    assert forecast.model == model.name
    assert np.all(np.isfinite(forecast.mean))
    assert all(np.all(np.isfinite(forecast.quantile(q))) for q in LEVELS)


def test_ets_without_a_season_is_smoothing_with_a_damped_trend() -> None:
    """An hour at 10 s holds no day: level and damped trend only, the interval around them."""
    y = 50 + poisson(360, 30.0, seed=5)
    model = HoltWinters().fit(y, step_s=10.0)
    assert model.profile_.size == 1 and 0.8 <= model.phi_ <= 0.98
    forecast = model.predict(30, LEVELS)
    assert forecast.model == "ets"
    assert np.all(forecast.quantile(0.05) < 80) and np.all(forecast.quantile(0.95) > 80)


def test_ets_fits_a_week_of_minutes_and_predicts_within_production_budgets() -> None:
    """Generous bounds against a regression to statsmodels' own seasonal optimiser, which
    takes tens of seconds with a 1,440-step season (measured: ~0.1 s and ~0.3 ms)."""
    y = daily_sine(7 * DAY_MIN, MINUTE) + poisson(7 * DAY_MIN, 10.0, seed=6)
    started = time.perf_counter()
    model = HoltWinters().fit(y, step_s=MINUTE)
    assert time.perf_counter() - started < 3.0
    timings = []
    for _ in range(50):
        started = time.perf_counter()
        model.predict(60)
        timings.append(time.perf_counter() - started)
    assert np.median(timings) < 0.005
