"""Online quantile calibration: it converges to the nominal rate, per step ahead, and its replay
of scored forecasts learns what live scoring would have."""

from __future__ import annotations

import numpy as np
import pytest

from forecasting.calibration import FACTOR_LIMITS, QuantileCalibrator

LEVELS = (0.05, 0.9, 0.95)


def live(calibrator: QuantileCalibrator, medians, raw, outcomes) -> None:
    """Forecast at every origin, then let the next value arrive: as the service does."""
    for origin in range(outcomes.size):
        if origin < medians.shape[0]:
            calibrator.record(origin, medians[origin], raw[origin])
        calibrator.observe(origin, outcomes[origin : origin + 1])


def test_a_too_narrow_upper_quantile_widens_until_it_is_crossed_at_its_nominal_rate():
    rng = np.random.default_rng(0)
    calibrator = QuantileCalibrator((0.95,), 1)
    outcomes = rng.normal(0.0, 2.0, 4000)  # the true p95 is 3.29; the forecast says 1
    medians, raw = np.zeros((4000, 1)), np.ones((4000, 1, 1))
    live(calibrator, medians, raw, outcomes)
    factor = calibrator.factors(1)[0, 0]
    assert 2.5 < factor < 4.0
    late = np.random.default_rng(1).normal(0.0, 2.0, 20_000)
    assert 0.02 < np.mean(late > factor) < 0.09


def test_each_step_ahead_learns_its_own_spread():
    rng = np.random.default_rng(2)
    steps = 400
    medians = np.zeros((steps, 2))
    raw = np.tile(np.array([-1.6, 1.3, 1.6]), (steps, 2, 1))
    raw[:, 1] *= 0.25  # the two-step quantiles are four times too narrow
    calibrator = QuantileCalibrator(LEVELS, 2)
    live(calibrator, medians, raw, rng.normal(0.0, 1.0, steps))
    one, two = calibrator.factors(2)
    assert (one < 1.6).all() and (one > 0.6).all()
    assert (two > 2 * one).all()
    assert np.array_equal(calibrator.factors(5)[2:], np.tile(two, (3, 1)))  # beyond: the last


def test_replay_learns_what_live_scoring_would_have():
    rng = np.random.default_rng(3)
    origins, horizon = 300, 4
    medians = rng.normal(5.0, 1.0, (origins, horizon))
    raw = medians[:, :, None] + np.array([-1.0, 0.8, 1.0]) * rng.uniform(0.5, 2, (origins, 1, 1))
    outcomes = rng.normal(5.0, 1.5, origins + horizon)
    online = QuantileCalibrator(LEVELS, horizon)
    live(online, medians, raw, outcomes)
    index = np.arange(origins)[:, None] + np.arange(horizon)[None, :]
    replayed = QuantileCalibrator(LEVELS, horizon)
    replayed.replay(medians, raw, outcomes[index], np.ones((origins, horizon), dtype=bool))
    assert np.allclose(replayed.factors_, online.factors_)
    assert np.allclose(replayed.losses_, online.losses_)


def test_a_fixed_level_keeps_its_rate_and_the_others_choose():
    rng = np.random.default_rng(4)
    calibrator = QuantileCalibrator(LEVELS, 1, fixed=(0.9,), fixed_rate=0.02)
    steps = 600
    outcomes = np.concatenate([rng.normal(0, 1, steps // 2), rng.normal(0, 4, steps // 2)])
    live(calibrator, np.zeros((steps, 1)), np.tile([[-1.6, 1.3, 1.6]], (steps, 1, 1)), outcomes)
    rates = calibrator.rates
    p90 = list(calibrator.levels).index(0.9)
    assert calibrator.factors(1)[0, p90] == calibrator.factors_[0, p90, list(rates).index(0.02)]
    # after the jump to four times the noise, the ends follow the fastest-learning factors
    p95 = list(calibrator.levels).index(0.95)
    assert calibrator.factors(1)[0, p95] > calibrator.factors(1)[0, p90]
    assert calibrator.factors(1)[0, p95] > 2.0


def test_missing_values_and_unrecorded_steps_teach_nothing():
    calibrator = QuantileCalibrator(LEVELS, 3)
    before = calibrator.factors_.copy()
    calibrator.observe(0, np.array([100.0, 100.0]))  # nothing was forecast
    calibrator.record(2, np.zeros(1), np.array([[-1.0, 1.0, 1.2]]))  # one step, not three
    calibrator.observe(2, np.array([np.nan, 100.0, 100.0]))  # its outcome is missing
    assert np.array_equal(calibrator.factors_, before)
    calibrator.observe(5, np.array([100.0]))
    assert np.array_equal(calibrator.factors_, before)


@pytest.mark.parametrize("outcome", [1e9, -1e9])
def test_factors_stay_within_their_limits(outcome):
    calibrator = QuantileCalibrator(LEVELS, 1)
    for origin in range(2000):
        calibrator.record(origin, np.zeros(1), np.array([[-1.0, 1.0, 1.2]]))
        calibrator.observe(origin, np.array([outcome]))
    assert (calibrator.factors_ >= FACTOR_LIMITS[0]).all()
    assert (calibrator.factors_ <= FACTOR_LIMITS[1]).all()
    assert calibrator.factors_.max() == FACTOR_LIMITS[1]
