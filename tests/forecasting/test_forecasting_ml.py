"""Tests of the ML forecasters: shared features, gradient boosting, ridge and the global model.

Models are fitted with small row and tree budgets so the file stays fast; the defaults are
measured on real traces separately (see the models' docstrings).
"""

from __future__ import annotations

import pickle
import time
from pathlib import Path

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

from adapters.simulator.traces import load_trace
from forecasting.base import Forecaster
from forecasting.features import (
    FeatureSpec,
    design,
    forecast_design,
    series_scale,
    training_set,
)
from forecasting.hygiene import clean
from forecasting.metrics import coverage, pinball_loss
from forecasting.models.gbm import FlatForest, GradientBoostingQuantile
from forecasting.models.global_gbm import GlobalGradientBoosting, GlobalSeriesForecaster
from forecasting.models.linear import RidgeForecaster

STEP_S = 600.0
DAY = 144
"""Steps per day at 10-minute resolution."""
MONDAY_S = 4 * 86_400.0
"""1970-01-05 00:00 UTC, a Monday."""
NASA_START_S = 804_556_800.0
"""1995-07-01 00:00, the NASA trace's first (local) midnight, written as UTC."""
FAST_ROWS, FAST_TREES = 3000, 25
"""Budgets that keep each fit well under a second."""


def daily(days: int, *, scale: float = 100.0, trend: float = 0.0, seed: int = 0) -> np.ndarray:
    """Poisson counts around a daily cycle (peak at noon) times a linear trend per day."""
    t = np.arange(days * DAY)
    shape = 1 + 0.6 * np.sin(2 * np.pi * (t / DAY - 0.25))
    rate = scale * shape * (1 + trend * t / DAY)
    return np.random.default_rng(seed).poisson(rate).astype(float)


def persistent(days: int, *, scale: float = 100.0, seed: int = 0) -> np.ndarray:
    """`daily` with a slow multiplicative AR(1) swing, so recent values carry information."""
    rng = np.random.default_rng(seed)
    swing = np.zeros(days * DAY)
    shocks = rng.normal(0, 0.05, swing.size)
    for i in range(1, swing.size):
        swing[i] = 0.97 * swing[i - 1] + shocks[i]
    t = np.arange(days * DAY)
    rate = scale * (1 + 0.6 * np.sin(2 * np.pi * (t / DAY - 0.25))) * np.exp(swing)
    return rng.poisson(rate).astype(float)


def truth(days: int, horizon: int, *, scale: float = 100.0, trend: float = 0.0) -> np.ndarray:
    """The noise-free rate of `daily` for the `horizon` steps after `days` days."""
    t = np.arange(days * DAY, days * DAY + horizon)
    return scale * (1 + 0.6 * np.sin(2 * np.pi * (t / DAY - 0.25))) * (1 + trend * t / DAY)


def models() -> list[Forecaster]:
    return [GradientBoostingQuantile(max_rows=FAST_ROWS, max_iter=FAST_TREES), RidgeForecaster()]


@pytest.fixture(scope="module")
def global_model() -> GlobalGradientBoosting:
    """Trained on copies of one pattern at scales 5 to 500 (different noise each), and one
    young series too short for the seasonal lags."""
    copies = [daily(14, scale=s, seed=i) for i, s in enumerate((5, 20, 50, 150, 500))]
    copies.append(daily(3, seed=7))
    return GlobalGradientBoosting(max_rows=6000, max_iter=FAST_TREES).fit_many(
        copies, step_s=STEP_S, start_s=MONDAY_S
    )


# ------------------------------------------------------------------------------ features
def test_feature_spec_uses_the_seasons_the_history_supports() -> None:
    assert FeatureSpec.for_history(60, 1440).periods == ()
    assert FeatureSpec.for_history(60, 3 * 1440).periods == (1440,)
    assert FeatureSpec.for_history(60, 15 * 1440).periods == (1440, 10080)
    spec = FeatureSpec.for_history(60, 15 * 1440)
    assert spec.history >= 10080 and len(set(spec.names)) == len(spec.names)


def test_feature_shapes_and_targets() -> None:
    y = daily(14)
    series = clean(y)
    spec = FeatureSpec.for_history(STEP_S, y.size)
    rng = np.random.default_rng(0)
    features, target, horizons = training_set(
        series, spec=spec, scale=100.0, max_horizon=12, max_rows=500, rng=rng, start_s=0.0
    )
    assert 480 <= features.shape[0] <= 500  # pairs whose target lies past the end are dropped
    assert features.shape[1] == len(spec.names)
    assert target.shape == horizons.shape == (features.shape[0],)
    assert np.isfinite(features).all() and horizons.min() >= 1 and horizons.max() <= 12
    rows, anchor = forecast_design(
        y, 7, spec=spec, scale=100.0, start_s=0.0, first_index=0, max_horizon=12
    )
    assert rows.shape == (7, len(spec.names)) and np.isfinite(anchor)


def test_features_read_only_values_before_the_origin() -> None:
    y = daily(14)
    spec = FeatureSpec.for_history(STEP_S, y.size)
    rng = np.random.default_rng(1)
    origins = rng.integers(spec.history, y.size - 60, 200)
    horizons = rng.integers(1, 60, 200)
    for origin, k in zip(origins, horizons, strict=True):
        future = y.copy()
        future[origin:] = rng.uniform(0, 1e6, y.size - origin)
        pair = (np.array([origin]), np.array([k]))
        clean_row, clean_level = design(y, *pair, spec=spec, scale=100.0, start_s=0.0)
        changed_row, changed_level = design(future, *pair, spec=spec, scale=100.0, start_s=0.0)
        np.testing.assert_array_equal(clean_row, changed_row)
        np.testing.assert_array_equal(clean_level, changed_level)


def test_forecast_rows_equal_training_rows_at_the_same_origin() -> None:
    """What the model sees when serving is exactly what it was trained on."""
    y = daily(14)
    spec = FeatureSpec.for_history(STEP_S, y.size)
    history = y[-spec.history :]
    first = y.size - history.size
    served, level = forecast_design(
        history, 24, spec=spec, scale=80.0, start_s=MONDAY_S, first_index=first, max_horizon=24
    )
    origins = np.full(24, y.size)
    trained, anchor = design(
        np.concatenate([y, np.zeros(24)]),
        origins,
        np.arange(1, 25),
        spec=spec,
        scale=80.0,
        start_s=MONDAY_S,
    )
    np.testing.assert_allclose(served, trained, rtol=1e-12, atol=1e-12)
    assert level == pytest.approx(anchor[0])


def test_calendar_follows_the_epoch() -> None:
    y = daily(3)
    spec = FeatureSpec(STEP_S)
    names = spec.names
    rows, _ = design(y, np.array([DAY, DAY]), np.array([1, 1]), spec=spec, scale=1.0, start_s=0.0)
    weekday = rows[0, names.index("weekday")]
    assert weekday == 4  # value DAY is on 1970-01-02, a Friday (Monday = 0)
    assert rows[0, names.index("tod_cos")] == pytest.approx(1.0)  # midnight
    saturday, _ = design(
        y, np.array([DAY]), np.array([1]), spec=spec, scale=1.0, start_s=MONDAY_S + 4 * 86_400
    )
    assert saturday[0, names.index("weekend")] == 1.0


def test_features_are_fast() -> None:
    y = daily(70)[:10_080]
    spec = FeatureSpec.for_history(STEP_S, y.size)
    origins = np.arange(spec.history, y.size)
    start = time.perf_counter()
    design(y, origins, np.ones_like(origins), spec=spec, scale=1.0, start_s=0.0)
    assert time.perf_counter() - start < 0.1
    history = y[-spec.history :]
    runs = []
    for _ in range(30):
        start = time.perf_counter()
        forecast_design(
            history, 60, spec=spec, scale=1.0, start_s=0.0, first_index=0, max_horizon=60
        )
        runs.append(time.perf_counter() - start)
    assert np.median(runs) < 0.002  # ~0.2 ms on an idle core; slack for busy CI machines


def test_series_scale_is_the_mean_of_observed_values() -> None:
    assert series_scale(clean(np.array([2.0, np.nan, 4.0]))) == pytest.approx(3.0)
    assert series_scale(clean(np.zeros(10))) == 1.0


# ------------------------------------------------------------------------- gbm internals
def test_flat_forest_predicts_as_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(2000, 6))
    target = features[:, 0] * 3 + np.sin(features[:, 1]) + rng.normal(size=2000)
    probe = rng.normal(scale=3, size=(300, 6))
    with threadpool_limits(1):
        fitted = [
            HistGradientBoostingRegressor(max_iter=20, max_depth=5, random_state=0, **loss).fit(
                features, target
            )
            for loss in ({"loss": "squared_error"}, {"loss": "quantile", "quantile": 0.9})
        ]
        expected = np.stack([model.predict(probe) for model in fitted])
    np.testing.assert_allclose(FlatForest.compile(fitted).predict(probe), expected, rtol=1e-10)


# -------------------------------------------------------------------------------- models
@pytest.mark.parametrize("model", models(), ids=lambda m: m.name)
def test_recovers_a_daily_cycle_with_trend(model: Forecaster) -> None:
    y = daily(14, trend=0.03)
    forecast = model.fit(y, step_s=STEP_S, start_s=MONDAY_S).predict(36, (0.05, 0.5, 0.95))
    assert forecast.model == model.name
    expected = truth(14, 36, trend=0.03)
    error = np.abs(forecast.quantile(0.5) - expected).mean() / expected.mean()
    assert error < 0.1
    assert coverage(expected, forecast.quantile(0.05), forecast.quantile(0.95)) > 0.9


@pytest.mark.parametrize("model", models(), ids=lambda m: m.name)
def test_quantiles_are_monotone_and_non_negative(model: Forecaster) -> None:
    y = daily(14, scale=2.0)  # many zeros: the lower quantiles must not go negative
    levels = (0.01, 0.05, 0.3, 0.5, 0.7, 0.9, 0.95, 0.99)
    forecast = model.fit(y, step_s=STEP_S).predict(60, levels)
    table = np.stack([forecast.quantile(q) for q in levels])
    assert (table >= 0).all() and (np.diff(table, axis=0) >= 0).all()
    assert (forecast.mean >= 0).all()


def test_unfitted_levels_are_interpolated() -> None:
    model = GradientBoostingQuantile(
        quantiles=(0.1, 0.5, 0.9), max_rows=FAST_ROWS, max_iter=FAST_TREES
    )
    forecast = model.fit(daily(14), step_s=STEP_S).predict(12, (0.1, 0.5, 0.7, 0.9))
    assert (forecast.quantile(0.5) <= forecast.quantile(0.7)).all()
    assert (forecast.quantile(0.7) <= forecast.quantile(0.9)).all()
    assert not np.array_equal(forecast.quantile(0.7), forecast.quantile(0.9))


def rolling_coverage(model: Forecaster, y: np.ndarray, train: int, horizon: int) -> float:
    """Coverage of [q0.05, q0.95] over rolling origins after `train` steps."""
    model.fit(y[:train], step_s=STEP_S, start_s=MONDAY_S)
    inside = []
    for origin in range(train, y.size - horizon):
        if origin > train:
            model.update(y[origin - 1])
        forecast = model.predict(horizon, (0.05, 0.95))
        actual = y[origin : origin + horizon]
        inside.append((actual >= forecast.quantile(0.05)) & (actual <= forecast.quantile(0.95)))
    return float(np.mean(inside))


@pytest.mark.parametrize("model", models(), ids=lambda m: m.name)
def test_interval_calibration_on_poisson_counts(model: Forecaster) -> None:
    y = daily(12, scale=60.0, seed=3)
    assert 0.82 <= rolling_coverage(model, y, 10 * DAY, 3) <= 0.97


@pytest.mark.parametrize("model", models(), ids=lambda m: m.name)
def test_pickle_round_trip_predicts_the_same(model: Forecaster) -> None:
    model.fit(daily(14), step_s=STEP_S, start_s=MONDAY_S)
    copy = pickle.loads(pickle.dumps(model))
    before, after = model.predict(12, (0.5, 0.9)), copy.predict(12, (0.5, 0.9))
    np.testing.assert_array_equal(before.mean, after.mean)
    np.testing.assert_array_equal(before.quantile(0.9), after.quantile(0.9))


@pytest.mark.parametrize("model", models(), ids=lambda m: m.name)
def test_update_moves_the_forecast(model: Forecaster) -> None:
    y = persistent(14)
    model.fit(y, step_s=STEP_S)
    before = model.predict(6).quantile(0.5)
    model.update(np.full(6, 2 * y[-6:].mean()))
    assert (model.predict(6).quantile(0.5) > 1.3 * before).all()
    model.update(np.full(6, 20 * y[-6:].mean()))  # far outside anything seen
    assert (model.predict(6).quantile(0.5) > 2 * before).all()


@pytest.mark.parametrize("model", models(), ids=lambda m: m.name)
def test_too_short_history_falls_back_to_naive(model: Forecaster) -> None:
    forecast = model.fit(daily(1)[:100], step_s=STEP_S).predict(5)
    assert forecast.model.startswith("naive (fallback:")
    assert model.name in forecast.model


@pytest.mark.parametrize("model", models(), ids=lambda m: m.name)
def test_horizons_beyond_a_day_and_refits_are_deterministic(model: Forecaster) -> None:
    y = daily(14)
    forecast = model.fit(y, step_s=STEP_S).predict(3 * DAY)
    assert forecast.model == model.name and forecast.horizon_steps == 3 * DAY
    expected = truth(14, 3 * DAY)
    assert np.abs(forecast.quantile(0.5) - expected).mean() / expected.mean() < 0.1
    again = pickle.loads(pickle.dumps(model)).fit(y, step_s=STEP_S).predict(3 * DAY)
    np.testing.assert_array_equal(forecast.quantile(0.9), again.quantile(0.9))


@pytest.mark.parametrize("model", models(), ids=lambda m: m.name)
def test_nan_inputs_do_not_raise(model: Forecaster) -> None:
    y = daily(14)
    y[::17] = np.nan
    y[500:540] = np.nan
    model.fit(y, step_s=STEP_S).update(np.array([np.nan, 90.0, np.inf, -3.0]))
    forecast = model.predict(12)
    assert forecast.model == model.name
    assert np.isfinite(forecast.mean).all() and np.isfinite(forecast.quantile(0.9)).all()


@pytest.fixture(scope="module")
def nasa_10min(shared_traces: Path) -> np.ndarray:
    """NASA-HTTP July 1995 requests per 10 minutes, the 27 clean days before the splice."""
    trace = load_trace(shared_traces / "nasa_http_1995_per_second_workload.tbz2")
    counts = np.bincount((trace.times // STEP_S).astype(np.int64)).astype(float)
    return counts[: 27 * DAY]


@pytest.mark.parametrize("model", models(), ids=lambda m: m.name)
def test_calibrated_and_better_than_seasonal_naive_on_nasa(
    model: Forecaster, nasa_10min: np.ndarray
) -> None:
    """Two weeks of fit, then a day of hourly forecasts every 10 minutes, as in production."""
    y, train, horizon = nasa_10min, 14 * DAY, 6
    model.fit(y[:train], step_s=STEP_S, start_s=NASA_START_S)
    actual, low, high, p90 = [], [], [], []
    for origin in range(train, train + DAY):
        if origin > train:
            model.update(y[origin - 1])
        forecast = model.predict(horizon, (0.05, 0.9, 0.95))
        actual.append(y[origin : origin + horizon])
        low.append(forecast.quantile(0.05))
        high.append(forecast.quantile(0.95))
        p90.append(forecast.quantile(0.9))
    assert 0.8 <= coverage(np.ravel(actual), np.ravel(low), np.ravel(high)) <= 0.97
    yesterday = np.ravel([y[o - DAY : o - DAY + horizon] for o in range(train, train + DAY)])
    loss = pinball_loss(np.ravel(actual), np.ravel(p90), 0.9)
    assert loss < 0.8 * pinball_loss(np.ravel(actual), yesterday, 0.9)


# --------------------------------------------------------------------------- global model
def test_global_model_forecasts_a_series_of_another_scale(
    global_model: GlobalGradientBoosting,
) -> None:
    for scale in (10.0, 1500.0):
        y = daily(14, scale=scale, seed=99)
        forecast = global_model.for_series(y, start_s=MONDAY_S).predict(36, (0.05, 0.5, 0.95))
        assert forecast.model == "global_gbm"
        expected = truth(14, 36, scale=scale)
        error = np.abs(forecast.quantile(0.5) - expected).mean() / expected.mean()
        assert error < (0.15 if scale < 100 else 0.05)
        inside = coverage(expected, forecast.quantile(0.05), forecast.quantile(0.95))
        assert inside > 0.9


def test_global_model_keeps_the_seasons_most_series_support(
    global_model: GlobalGradientBoosting,
) -> None:
    assert global_model.spec_.periods == (DAY, 7 * DAY)
    assert global_model.n_series_ == 5  # the young series is left out


def test_global_forecasters_share_one_model_when_pickled(
    global_model: GlobalGradientBoosting,
) -> None:
    one = global_model.for_series(daily(14, seed=5))
    many = [global_model.for_series(daily(14, seed=s)) for s in range(6, 16)]
    single, batch = len(pickle.dumps(one)), len(pickle.dumps(many))
    assert batch < single + 10 * 40_000  # the model once, then each series' history
    copies = pickle.loads(pickle.dumps(many))
    assert copies[0].model is copies[1].model
    np.testing.assert_array_equal(copies[3].predict(6).mean, many[3].predict(6).mean)


def test_global_series_update_and_fallbacks(global_model: GlobalGradientBoosting) -> None:
    served = global_model.for_series(daily(14))
    before = served.predict(6).quantile(0.5)
    served.update(np.full(6, 400.0))
    assert (served.predict(6).quantile(0.5) > 1.3 * before).all()
    short = global_model.for_series(daily(3))
    assert short.predict(5).model.startswith("naive (fallback:")
    wrong_step = GlobalSeriesForecaster(global_model).fit(daily(14), step_s=60.0)
    assert "differs from the model's" in wrong_step.predict(5).model


def test_global_model_needs_usable_series() -> None:
    with pytest.raises(ValueError, match="valid values"):
        GlobalGradientBoosting().fit_many([np.ones(50)], step_s=STEP_S)
    with pytest.raises(Exception, match="fit_many"):
        GlobalGradientBoosting().for_series(daily(14))
