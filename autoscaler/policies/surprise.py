"""How far a service's load outruns the forecast made one lead time before it: the tail the
sizing must cover that the forecast's own interval does not show.

A replica started now serves from one lead time L on, so what matters is the error of the forecast
*L ahead*. The forecast's p90 is one number built from its own residuals and taken as a normal
spread (`queueing.rate_levels`); bursts that no history announces (a batch job, a retry storm, a
campaign email) are a heavy right tail that a normal spread calls impossible. A service whose load
jumps ×3–×6 a tenth of the time misses its objective whatever the steering does with the budget,
because the model plans for a rate it never sees.

So each service keeps its own record of surprises:
- every tick, the forecast's median for one lead time ahead is written into a ring indexed by
  forecast step (the newest prediction for a step wins: the one made closest to L before it);
- when that step comes, the load over the stable window (`leadtime_rows.STABLE_S`, arrivals per
  second) is divided by what was predicted for it: one *surprise ratio* sample, kept in a
  histogram of log-spaced bins (with each bin's sum of ratios, so a bin reads as the mean of its
  samples, not as its middle) that forgets with a half-life of `HALF_LIFE_S`;
- `band_ratios` reads the mean ratio within the top bands of the record
  (`queueing.SURPRISE_BANDS`: the top 2 % and the 15 % below it), and the queueing model's two
  upper rate levels, of the same weights, are raised to the forecast's median times those, where
  they are higher. Means of bands, not quantiles, so that a level keeps its band's mass.

A ratio is taken only where the prediction expects at least `MIN_COUNT` independent lumps of
requests over the window: requests over the peakedness z the service had when the prediction was
made (the queueing model carries the noise of peaked arrivals already, `queueing.py`; an LLM
service whose requests come in bursts of seconds is not surprised by them). The z of that moment,
not of now: a burst raises the z of its own window. Until `MIN_WEIGHT` samples and
`MIN_EPISODES` separate episodes of surprise are in, the ratios are 1: nothing is added. A level
shift (a new tenant) is one episode: the forecast catches up, and sizing for it as if it would
recur would keep replicas for the old surprise for hours.

All on arrays, one service per row; pure.
"""

from __future__ import annotations

import math

import numpy as np

from autoscaler.policies import queueing

RING = 48
"""Forecast steps remembered per service: at a 10 s step, lead times up to 8 minutes."""
RATIO_EDGES = 2.0 ** np.arange(-3.0, 4.01, 0.25)
"""Bin edges of the surprise ratio (1/8 to 16, four bins per doubling); one bin below and one
above catch the rest."""
BINS = RATIO_EDGES.size + 1
WINDOW_STEPS = 6
"""Forecast steps averaged for the prediction a sample is compared with (the stable window's
60 s at a 10 s step)."""
MIN_COUNT = 30.0
"""Lumps of requests the prediction must expect over the window for a sample: at 30 the ratio's
noise is 18 %, at 100 it is 10 %."""
MIN_WEIGHT = 30.0
"""(Decayed) samples before the tail counts: a few minutes of ticks."""
EPISODE_RATIO = 1 + 3 / math.sqrt(MIN_COUNT)
SURPRISE_SPREADS = 1.0
"""A load is a surprise when it is beyond both the noise (three standard deviations of it at
`MIN_COUNT` above the median) and what the forecast itself admitted: its p90 (this many times
the p90's distance above the median). A young forecast that knows it is unsure opens no episode
(on the tune half, 1 kept NASA's gain from the record, which 2 lost; on the report half it kept
a young forecast's misses from a shared pool's flash crowd, which without it bought 1.7x).
Surprises less than a lead time apart are one episode (a forecast swinging while it catches up
with a flash crowd makes one, not five)."""
MIN_EPISODES = 3.0
"""(Decayed) episodes before the record counts: a level shift is one surprise, and once the
forecast has caught up its ratios are 1 again, but its minutes of high ratios would fill the top
of the record for hours; bursts come back."""
HALF_LIFE_S = 3 * 3600.0
"""The record follows a service whose burstiness changes within hours; bursts ten minutes apart
stay in it."""


def empty(rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(predictions (rows, 3, RING): the median, the p90 and the peakedness when made; the step
    each was made for (rows, RING), -1: none; histogram (rows, 2, BINS): each bin's weight and
    its weighted sum of ratios; episodes (rows, 2): their decayed count, and when the last
    surprise was, NaN: never)."""
    return (
        np.full((rows, 3, RING), np.nan),
        np.full((rows, RING), -1, np.int64),
        np.zeros((rows, 2, BINS)),
        np.column_stack([np.zeros(rows), np.full(rows, np.nan)]),
    )


def remember(
    predicted: np.ndarray,
    steps: np.ndarray,
    now: float,
    step_s: float,
    lead: np.ndarray,
    p50: np.ndarray,
    p90: np.ndarray,
    peakedness: np.ndarray,
    rows: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Write each forecast row's median and p90 one lead time ahead (and the row's peakedness
    now) into its ring; `p50` and `p90` (len(rows), steps) start at `now`. Rows whose lead
    reaches past the ring or the forecast write nothing."""
    predicted, steps = predicted.copy(), steps.copy()
    if rows.size == 0:
        return predicted, steps
    ahead = np.floor(lead[rows] / step_s).astype(np.int64)
    fits = (ahead >= 0) & (ahead < RING - WINDOW_STEPS) & (ahead < p50.shape[1])
    written = np.flatnonzero(fits)  # positions in `p50` and `p90`
    rows, ahead = rows[fits], ahead[fits]
    step = math.floor(now / step_s) + ahead
    slot = step % RING
    predicted[rows, 0, slot] = p50[written, ahead]
    predicted[rows, 1, slot] = p90[written, ahead]
    predicted[rows, 2, slot] = peakedness[rows]
    steps[rows, slot] = step
    return predicted, steps


def record(
    histogram: np.ndarray,
    episodes: np.ndarray,
    predicted: np.ndarray,
    steps: np.ndarray,
    now: float,
    step_s: float,
    observed_rate: np.ndarray,
    window_s: np.ndarray,
    dt: np.ndarray,
    lead: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The histogram and episodes after this tick: decayed by `dt`, plus one sample per row
    whose ring holds predictions for the window's steps and expects at least `MIN_COUNT` lumps
    of requests in it; a surprise (`SURPRISE_SPREADS`) more than a lead time (`lead`, per row)
    after the last opens an episode."""
    last = math.floor(now / step_s)
    window = last - np.arange(WINDOW_STEPS + 1)
    slots = window % RING
    # each step's share of the observed window (now - window_s, now]
    starts = window[None, :] * step_s
    overlap = np.minimum(now, starts + step_s) - np.maximum(now - window_s[:, None], starts)
    share = np.clip(overlap, 0.0, step_s) / np.maximum(window_s, 1.0)[:, None]
    held = (steps[:, slots] == window[None, :]) | (share == 0)
    complete = held.all(axis=1)
    median, upper, z = np.nansum(
        share[:, None, :] * np.where(held[:, None, :], predicted[:, :, slots], 0.0), axis=2
    ).T
    expected = np.where(complete, median, 0.0)
    usable = complete & (expected * window_s >= MIN_COUNT * np.maximum(z, 1.0))
    kept = np.exp2(-np.maximum(dt, 0.0) / HALF_LIFE_S)
    decayed = histogram * kept[:, None, None]
    episodes = np.column_stack([episodes[:, 0] * kept, episodes[:, 1]])
    rows = np.flatnonzero(usable)
    if rows.size:
        ratio = observed_rate[rows] / expected[rows]
        bins = np.searchsorted(RATIO_EDGES, ratio)
        decayed[rows, 0, bins] += 1.0
        decayed[rows, 1, bins] += ratio
        last = episodes[rows, 1]
        beyond = observed_rate[rows] > median[rows] + SURPRISE_SPREADS * (upper - median)[rows]
        surprised = beyond & (ratio > EPISODE_RATIO)
        episodes[rows, 0] += surprised & (np.isnan(last) | (now - last > lead[rows]))
        episodes[rows, 1] = np.where(surprised, now, last)
    return decayed, episodes


def band_ratios(
    histogram: np.ndarray,
    episodes: np.ndarray,
    bands: tuple[tuple[float, float], ...] = queueing.SURPRISE_BANDS,
) -> np.ndarray:
    """(rows, len(bands)): the mean surprise ratio of each row within each band of shares (from
    the lowest ratio: (0.8, 1.0) is the top fifth); 1 with too few samples or episodes."""
    total = histogram[:, 0].sum(axis=1)
    enough = (total >= MIN_WEIGHT) & (episodes[:, 0] >= MIN_EPISODES)
    out = np.ones((len(total), len(bands)))
    if not enough.any():
        return out
    weight, ratios = histogram[enough, 0, ::-1], histogram[enough, 1, ::-1]  # highest bin first
    share = weight / total[enough, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(weight > 0, ratios / weight, 0.0)
    below = np.cumsum(share, axis=1) - share  # the share above each bin

    def top(part: float) -> np.ndarray:
        """The sum of ratio × share over the top `part` of the ratios."""
        total: np.ndarray = (np.clip(part - below, 0.0, share) * means).sum(axis=1)
        return total

    out[enough] = np.stack(
        [(top(1 - low) - top(1 - high)) / (high - low) for low, high in bands], 1
    )
    return out
