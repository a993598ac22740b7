"""SARIMAX (dynamic harmonic regression) and the intermittent-demand models Croston and TSB:
they recover what synthetic data was built from, their intervals cover what they claim, their
state is small and online, and bad input or too little history degrades to naive, never raises."""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.simulator.traces import load_trace
from forecasting.base import Forecaster, RawForecast, naive_forecast
from forecasting.hygiene import CleanSeries
from forecasting.metrics import coverage, pinball_loss
from forecasting.models.intermittent import TSB, Croston
from forecasting.models.sarimax import Sarimax
from forecasting.seasonality import DAY_S

LEVELS = (0.05, 0.5, 0.9, 0.95)
MINUTE = 60.0


def ar1(n: int, phi: float, sd: float, rng: np.random.Generator) -> np.ndarray:
    noise = rng.normal(0, sd, n)
    out = np.empty(n)
    out[0] = noise[0]
    for i in range(1, n):
        out[i] = phi * out[i - 1] + noise[i]
    return out


def daily_counts(
    days: float, rng: np.random.Generator, persistence: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Poisson counts per minute around a daily sinusoid 100 ± 60 (and that sinusoid), its
    rate optionally scaled by a persistent AR(1) factor, as real traffic has."""
    t = np.arange(int(days * 1440)) * MINUTE
    truth = 100 + 60 * np.sin(2 * np.pi * t / DAY_S)
    factor = np.exp(ar1(t.size, persistence, 0.05, rng)) if persistence else 1.0
    return rng.poisson(truth * factor).astype(float), truth


def intermittent(n: int, chance: float, size: float, rng: np.random.Generator) -> np.ndarray:
    """Demand with probability `chance` per step, then a Poisson size of mean `size` (≥ 1)."""
    return (rng.random(n) < chance) * (1 + rng.poisson(size - 1, n)).astype(float)


class LastValue(Forecaster):
    """The reference: the base class's naive forecast, as a model of its own."""

    name = "last_value"

    def _fit(self, series: CleanSeries) -> None:
        """Nothing to learn: the base class keeps the history and the residual spread."""

    def _forecast(self, horizon: int, quantiles: Sequence[float]) -> RawForecast:
        return naive_forecast(self.history_, self.residual_scale_, horizon, quantiles)


def rolling(model: Forecaster, y: np.ndarray, n_fit: int, horizon: int, step_s: float) -> dict:
    """Fit on the first `n_fit` values, then at each origin update by one value and forecast."""
    model.fit(y[:n_fit], step_s=step_s)
    rows: dict[str, list] = {"actual": [], "mean": [], **{str(q): [] for q in LEVELS}}
    for origin in range(n_fit, y.size - horizon + 1):
        if origin > n_fit:
            model.update(y[origin - 1])
        forecast = model.predict(horizon, LEVELS)
        rows["actual"].append(y[origin : origin + horizon])
        rows["mean"].append(forecast.mean)
        for q in LEVELS:
            rows[str(q)].append(forecast.quantiles[q])
    return {key: np.array(value) for key, value in rows.items()}


# ---------------------------------------------------------------------------- SARIMAX
def test_sarimax_recovers_an_ar1_coefficient() -> None:
    rng = np.random.default_rng(1)
    y = 50 + ar1(4000, 0.7, 2.0, rng)
    model = Sarimax(order=(1, 0, 0), transform="none").fit(y, step_s=10.0)
    assert model.fallback_ == ""
    assert model.omega_.size == 0  # 11 hours: no season to fit
    assert -model.ar_poly_[1] == pytest.approx(0.7, abs=0.04)
    assert model.sigma_ == pytest.approx(2.0, rel=0.05)
    assert model.coef_[0] == pytest.approx(50, abs=1)


def test_sarimax_tracks_a_daily_sinusoid_hours_ahead() -> None:
    y, truth = daily_counts(3.5, np.random.default_rng(2))
    n_fit = 3 * 1440
    forecast = Sarimax().fit(y[:n_fit], step_s=MINUTE).predict(6 * 60, LEVELS)
    assert forecast.model == "sarimax"
    ahead = truth[n_fit : n_fit + 360]
    assert np.max(np.abs(forecast.quantiles[0.5] - ahead)) < 6  # amplitude 60, noise sd ≈ 10
    assert np.max(np.abs(forecast.mean - ahead)) < 6
    assert np.all(forecast.quantiles[0.05] < ahead) and np.all(ahead < forecast.quantiles[0.95])


@pytest.mark.parametrize(
    ("days", "step_s", "harmonics"),
    [(1.5, 3600.0, 0), (3, 3600.0, 8), (15, 3600.0, 8 + 3), (10, 4 * 3600.0, 2)],
)
def test_sarimax_uses_the_seasons_the_history_covers_twice(
    days: float, step_s: float, harmonics: int
) -> None:
    """Daily terms from two days on, weekly from two weeks, none above the Nyquist frequency
    (with 6 steps a day only 2 daily harmonics are distinguishable)."""
    y = np.random.default_rng(11).poisson(50, int(days * DAY_S / step_s)).astype(float)
    model = Sarimax().fit(y, step_s=step_s)
    assert model.fallback_ == ""
    assert model.omega_.size == harmonics


def test_sarimax_interval_covers_about_ninety_percent() -> None:
    y, _ = daily_counts(3.2, np.random.default_rng(3))
    rows = rolling(Sarimax(), y, 3 * 1440, 5, MINUTE)
    share = coverage(rows["actual"], rows["0.05"], rows["0.95"])
    assert 0.85 <= share <= 0.95
    assert abs(np.mean(rows["mean"] - rows["actual"])) < 2  # the √ bias is corrected


def test_sarimax_keeps_a_small_state_and_updates_online() -> None:
    y, _ = daily_counts(2.5, np.random.default_rng(4), persistence=0.98)
    model = Sarimax().fit(y, step_s=MINUTE)
    assert len(pickle.dumps(model)) < 20_000  # no training data, no statsmodels results
    before = model.predict(5, LEVELS)
    copy = pickle.loads(pickle.dumps(model))
    np.testing.assert_allclose(copy.predict(5, LEVELS).quantiles[0.9], before.quantiles[0.9])
    model.update(np.full(3, 400.0))
    after = model.predict(5, LEVELS)
    assert np.all(after.quantiles[0.5] > before.quantiles[0.5] + 50)
    copy.update(np.full(3, 400.0))
    np.testing.assert_allclose(copy.predict(5, LEVELS).mean, after.mean)


def test_sarimax_update_in_pieces_equals_update_at_once() -> None:
    y, _ = daily_counts(2.2, np.random.default_rng(5))
    whole, pieces = (Sarimax().fit(y[:-30], step_s=MINUTE) for _ in range(2))
    whole.update(y[-30:])
    for value in y[-30:]:
        pieces.update(value)
    np.testing.assert_allclose(whole.predict(10).mean, pieces.predict(10).mean)


# ----------------------------------------------------------------- Croston and TSB
@pytest.mark.parametrize("make", [TSB, Croston])
def test_intermittent_models_recover_the_mean_rate(make: type[Forecaster]) -> None:
    y = intermittent(4000, 0.2, 15.0, np.random.default_rng(6))
    rows = rolling(make(), y, 1000, 1, 10.0)
    assert np.mean(rows["mean"]) == pytest.approx(0.2 * 15.0, rel=0.1)
    share = coverage(rows["actual"], rows["0.05"], rows["0.95"])
    assert 0.88 <= share <= 0.97


def test_croston_bias_correction_lowers_the_forecast() -> None:
    y = intermittent(2000, 0.2, 15.0, np.random.default_rng(7))
    plain = Croston(bias_correction=False).fit(y, step_s=10.0).predict(1).mean[0]
    corrected = Croston().fit(y, step_s=10.0).predict(1).mean[0]
    assert corrected == pytest.approx(plain * (1 - 0.1 / 2))


def test_tsb_decays_over_an_idle_run_and_croston_does_not() -> None:
    y = intermittent(600, 0.4, 10.0, np.random.default_rng(8))
    tsb, croston = (make().fit(y, step_s=10.0) for make in (TSB, Croston))
    tsb_before, croston_before = tsb.predict(6).mean[0], croston.predict(6).mean[0]
    for model in (tsb, croston):
        model.update(np.zeros(90))  # 15 minutes without a request
    assert tsb.predict(6).mean[0] < 0.01 * tsb_before
    assert tsb.predict(6, LEVELS).quantiles[0.95][0] == 0.0
    assert croston.predict(6).mean[0] == pytest.approx(croston_before)
    tsb.update(20.0)
    assert tsb.predict(6).mean[0] > 0.05


def test_intermittent_state_pickles_and_moves_with_demand() -> None:
    y = intermittent(500, 0.3, 8.0, np.random.default_rng(9))
    for model in (TSB().fit(y, step_s=10.0), Croston().fit(y, step_s=10.0)):
        copy = pickle.loads(pickle.dumps(model))
        np.testing.assert_array_equal(
            copy.predict(6, LEVELS).quantiles[0.9], model.predict(6, LEVELS).quantiles[0.9]
        )
        before = model.predict(1).mean[0]
        model.update(np.array([0.0, 0.0, 200.0]))
        assert model.predict(1).mean[0] > before


@pytest.mark.parametrize("make", [TSB, Croston])
def test_intermittent_calibration_on_the_azure_code_trace(
    make: type[Forecaster], shared_traces: Path
) -> None:
    """10-s counts of the Azure LLM code trace, forecast one minute ahead at every origin."""
    trace = load_trace(shared_traces / "AzureLLMInferenceTrace_code.csv")
    times = trace.times - trace.times.min()
    y = np.bincount((times // 10).astype(np.int64)).astype(float)
    rows = rolling(make(), y, 120, 6, 10.0)
    share = coverage(rows["actual"], rows["0.05"], rows["0.95"])
    assert 0.85 <= share <= 0.96
    naive = rolling(LastValue(), y, 120, 6, 10.0)
    loss, naive_loss = (pinball_loss(r["actual"], r["0.9"], 0.9) for r in (rows, naive))
    assert loss < 0.9 * naive_loss


# ---------------------------------------------------------------------- all models
MODELS = [Sarimax, TSB, Croston]
BAD = st.one_of(st.sampled_from([np.nan, np.inf, -np.inf]), st.floats(-1e6, 0, exclude_max=True))


@pytest.mark.parametrize("make", MODELS)
def test_too_short_a_history_falls_back_to_naive_and_says_why(make: type[Forecaster]) -> None:
    forecast = make().fit(np.array([0.0, 3.0, 0.0, 5.0]), step_s=10.0).predict(3, LEVELS)
    assert forecast.model.startswith("naive (fallback: ")
    assert make.name in forecast.model


@pytest.mark.parametrize("make", [TSB, Croston])
def test_intermittent_needs_some_demand(make: type[Forecaster]) -> None:
    forecast = make().fit(np.r_[np.zeros(50), 4.0], step_s=10.0).predict(3)
    assert "nonzero" in forecast.model and forecast.model.startswith("naive")


@pytest.mark.parametrize("make", MODELS)
@settings(max_examples=15, deadline=None)
@given(
    values=st.lists(st.one_of(BAD, st.floats(0, 1e4), st.just(0.0)), min_size=40, max_size=120),
    new=st.lists(st.one_of(BAD, st.floats(0, 1e4)), max_size=5),
)
def test_any_input_gives_sorted_non_negative_quantiles(
    make: type[Forecaster], values: list[float], new: list[float]
) -> None:
    model = make().fit(np.array(values), step_s=10.0)
    model.update(np.array(new))
    forecast = model.predict(6, LEVELS)
    table = np.stack([forecast.quantiles[q] for q in LEVELS])
    assert np.all(np.isfinite(table)) and np.all(table >= 0)
    assert np.all(np.diff(table, axis=0) >= 0)
    assert np.all(np.isfinite(forecast.mean)) and np.all(forecast.mean >= 0)


@pytest.mark.parametrize("make", MODELS)
def test_nan_and_negative_values_are_treated_as_missing(make: type[Forecaster]) -> None:
    y = intermittent(400, 0.5, 20.0, np.random.default_rng(10)) + 1.0
    y[::7] = np.nan
    y[3::11] = -5.0
    model = make().fit(y, step_s=10.0)
    assert model.fallback_ == ""
    model.update(np.array([np.nan, -1.0, 4.0]))
    forecast = model.predict(6, LEVELS)
    assert forecast.model == make.name
    assert np.all(np.isfinite(forecast.quantiles[0.95]))
