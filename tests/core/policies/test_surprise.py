"""The record of how far the load outruns the forecast made one lead time before
(`autoscaler/policies/surprise.py`), on synthetic loads: a forecast right to within Poisson noise
adds almost nothing; bursts the forecast never shows raise the tail to about their size, and with
it the replicas the queueing model sizes, once they recur; a level shift the forecast catches up
with does not; a prediction is compared with the load of the step it was made for, not the step it
was made at."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from autoscaler.policies import queueing, surprise

TICK_S = 2.0
STEP_S = 10.0
LEAD_S = 62.0
WINDOW_S = 60.0
STEPS = 20


def run(
    load: Callable[[float], float],
    forecast: Callable[[float], float],
    seconds: float,
    seed: int = 0,
    peakedness: float = 1.0,
    upper: Callable[[float], float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Tick every 2 s for `seconds`: the forecast made at `now` says `forecast(t)` for every
    future t; the load arrives as Poisson counts per second (in lumps of `peakedness` requests),
    read over the last 60 s; its p90 is `upper(t)` (the median: a forecast sure of itself).
    Returns the histogram and the episodes."""
    rng = np.random.default_rng(seed)
    # arrivals per second, in lumps of `peakedness`: each tick reads the newest 60 s of them
    second = np.arange(int(seconds) + 1)
    counts = peakedness * rng.poisson(np.array([load(float(t)) for t in second]) / peakedness)
    predicted, steps, histogram, episodes = surprise.empty(1)
    rows = np.array([0])
    now = 0.0
    while now <= seconds:
        newest = int(now)
        rate = counts[max(newest - int(WINDOW_S) + 1, 0) : newest + 1].sum() / WINDOW_S
        histogram, episodes = surprise.record(
            histogram, episodes, predicted, steps, now, STEP_S, np.array([rate]),
            np.array([WINDOW_S]), np.array([TICK_S]), np.array([LEAD_S]),
        )  # fmt: skip
        start = np.floor(now / STEP_S) * STEP_S
        times = start + STEP_S * np.arange(STEPS)
        p50 = np.array([[forecast(t) for t in times]])
        p90 = np.array([[(upper or forecast)(t) for t in times]])
        lead, z = np.array([LEAD_S]), np.array([peakedness])
        predicted, steps = surprise.remember(predicted, steps, now, STEP_S, lead, p50, p90, z, rows)
        now += TICK_S
    return histogram, episodes


def steady(rate: float) -> Callable[[float], float]:
    return lambda t: rate


def bursty(base: float, factor: float, every_s: float, length_s: float) -> Callable[[float], float]:
    """`base`, times `factor` for `length_s` of every `every_s`."""
    return lambda t: base * factor if t % every_s < length_s else base


def lagging(load: Callable[[float], float], lag_s: float) -> Callable[[float], float]:
    """A forecast that learns what the load does `lag_s` late."""
    return lambda t: load(t - lag_s)


def ratios(load, forecast, seconds: float, peakedness: float = 1.0) -> np.ndarray:
    histogram, episodes = run(load, forecast, seconds, peakedness=peakedness)
    return surprise.band_ratios(histogram, episodes)[0]


def test_a_forecast_right_within_poisson_noise_adds_almost_nothing():
    histogram, _ = run(steady(5.0), steady(5.0), seconds=3600)
    assert histogram[:, 0].sum() >= surprise.MIN_WEIGHT
    # noise alone opens no episode, so nothing is added at all
    assert (ratios(steady(5.0), steady(5.0), 3600) == 1.0).all()
    # and its ratios, read anyway, stay within the noise
    third, top = surprise.band_ratios(histogram, np.array([[surprise.MIN_EPISODES, np.nan]]))[0]
    assert 1.0 <= third <= top < 1.3


def test_peaked_arrivals_are_no_surprise_the_queueing_model_has_them():
    """Requests in lumps of 10 (z = 10): 300 requests in the window are 30 lumps, noise of 18 %;
    fewer lumps are not read at all."""
    lumpy, episodes = run(steady(5.0), steady(5.0), seconds=3600, peakedness=10.0)
    assert lumpy[:, 0].sum() >= surprise.MIN_WEIGHT
    assert episodes[0, 0] < surprise.MIN_EPISODES
    few, _ = run(steady(4.0), steady(4.0), seconds=3600, peakedness=10.0)
    assert few[:, 0].sum() == 0.0


def test_bursts_the_forecast_never_shows_raise_the_tail_to_about_their_size():
    base = 5.0
    third, top = ratios(bursty(base, 4.5, every_s=600, length_s=75), steady(base), 4 * 3600)
    # the 60 s window is wholly in a burst for 15 s of each 600 and partly for 120 s more: the
    # top 2 % of the ratios is the whole burst, the 15 % below it part of one
    assert 4.0 < top <= 4.6
    assert 1.5 < third < top
    # and the queueing model sizes for it: enough replicas for the burst's rate, where the
    # median and its noise need a third of that
    median = np.full((1, 6), base)
    args = (np.array([8.0]), np.array([2.0]), np.array([1.0]), np.array([0.01]), np.array([1.0]))
    plain = queueing.fewest_replicas(*queueing.rate_levels(median, median, STEP_S), *args)
    covered = queueing.fewest_replicas(
        *queueing.rate_levels(median, median, STEP_S, surprises=np.array([[third, top]])), *args
    )
    assert covered[0] >= np.ceil(base * top * 2.0 / 8.0) > plain[0]


def test_a_forecast_that_admits_it_is_unsure_is_not_surprised_within_its_interval():
    """Bursts to ×1.8 (9 requests/s) of a median of 5 whose p90 is 11: within the forecast's own
    interval, so no episode opens; the same forecast sure of itself is surprised."""
    load = bursty(5.0, 1.8, every_s=600, length_s=120)
    _, unsure = run(load, steady(5.0), 4 * 3600, upper=steady(11.0))
    assert unsure[0, 0] == 0.0
    _, sure = run(load, steady(5.0), 4 * 3600)
    assert sure[0, 0] >= surprise.MIN_EPISODES


def test_a_level_shift_the_forecast_catches_up_with_is_one_surprise_not_a_tail():
    def shift(t: float) -> float:
        return 15.0 if t >= 1800.0 else 5.0

    histogram, episodes = run(shift, lagging(shift, 180.0), seconds=3600)
    assert 0.5 < episodes[0, 0] <= 1.0  # one, decayed since
    assert (surprise.band_ratios(histogram, episodes) == 1.0).all()

    # the same surprise three times is a pattern
    def shifts(t: float) -> float:
        return 15.0 if (t % 1200.0) >= 600.0 else 5.0

    assert ratios(shifts, lagging(shifts, 180.0), 4800)[1] > 2.0


def test_the_prediction_is_compared_with_the_step_it_was_made_for():
    """A forecast that sees bursts coming exactly when they come is never surprised; the same
    forecast read for the step it was made at (a lead time too early) would be."""
    load = bursty(5.0, 4.0, every_s=600, length_s=120)
    histogram, episodes = run(load, load, seconds=3600)
    assert episodes[0, 0] == 0.0
    assert surprise.band_ratios(histogram, episodes)[0, 1] == 1.0


def test_too_few_samples_or_too_few_requests_add_nothing():
    early, _ = run(bursty(5.0, 6.0, every_s=120, length_s=60), steady(5.0), seconds=120)
    assert early[:, 0].sum() < surprise.MIN_WEIGHT
    assert (ratios(bursty(5.0, 6.0, every_s=120, length_s=60), steady(5.0), 120) == 1.0).all()
    # a prediction of 0.2 requests/s expects 12 requests in the window: noise, not surprise
    sparse, _ = run(bursty(0.2, 6.0, every_s=120, length_s=60), steady(0.2), seconds=3600)
    assert sparse[:, 0].sum() == 0.0


@pytest.mark.parametrize("lead_s", [surprise.RING * STEP_S, 30 * STEP_S])
def test_a_lead_past_the_ring_or_the_forecast_writes_nothing(lead_s):
    predicted, steps, _, _ = surprise.empty(1)
    p50 = np.full((1, 20), 5.0)
    lead, z = np.array([lead_s]), np.array([1.0])
    after = surprise.remember(predicted, steps, 100.0, STEP_S, lead, p50, p50, z, np.array([0]))
    assert (after[1] == -1).all()
