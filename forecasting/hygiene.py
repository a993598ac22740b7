"""Making real metric series fit to learn from: gaps, NaN, negatives, counter resets, outages.

Every model sees series cleaned the same way, and the rules are explicit:
- NaN (a scrape gap) and values inside a known-outage mask are *missing*;
- a negative rate is impossible (it is what a naive rate over a counter reset gives), so it
  is missing too;
- missing values are filled, for models that need a regular series, from the same time one
  season earlier when that is known, else by carrying the last valid value forward (zero
  before the first valid value), and the `valid` mask records what was observed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class CleanSeries:
    values: np.ndarray
    """The series with every missing value filled: finite and >= 0."""
    valid: np.ndarray
    """True where the value was observed, False where it was filled."""

    @property
    def observed(self) -> int:
        return int(self.valid.sum())


def clean(y: np.ndarray, mask: np.ndarray | None = None, season: int | None = None) -> CleanSeries:
    """Clean `y` as the module docstring says; `mask` marks known outages (True = drop)."""
    values = np.asarray(y, dtype=float).copy()
    valid = np.isfinite(values) & (values >= 0)
    if mask is not None:
        valid &= ~np.asarray(mask, dtype=bool)
    values[~valid] = np.nan
    if season and season > 1:
        values = _fill_from_season(values, season)
    values = _carry_forward(values)
    return CleanSeries(values, valid)


def _fill_from_season(values: np.ndarray, season: int) -> np.ndarray:
    """Fill a missing value with the value one season earlier, where that one is known."""
    out = values.copy()
    for start in range(season, out.size, season):
        block = out[start : start + season]
        earlier = out[start - season : start - season + block.size]
        gaps = np.isnan(block) & np.isfinite(earlier)
        block[gaps] = earlier[gaps]
    return out


def _carry_forward(values: np.ndarray) -> np.ndarray:
    missing = np.isnan(values)
    if not missing.any():
        return values
    index = np.where(missing, 0, np.arange(values.size))
    np.maximum.accumulate(index, out=index)
    filled = values[index]
    filled[np.isnan(filled)] = 0.0  # before the first valid value
    return filled


def rates_from_counter(counter: np.ndarray, step_s: float) -> np.ndarray:
    """Per-second rates from samples of a monotonic counter, as Prometheus' `rate()` does:
    a decrease is a counter reset, after which the new value is the increase since the reset.
    A NaN sample gives NaN for the steps that touch it."""
    counter = np.asarray(counter, dtype=float)
    delta = np.diff(counter)
    reset = delta < 0
    delta[reset] = counter[1:][reset]
    return delta / step_s
