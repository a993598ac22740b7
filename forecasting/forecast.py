"""What a forecaster returns: a mean and quantiles per future step.

Why quantiles and not a point: Leadtime provisions at a quantile of demand (default p90) and
sizes warm pools from the spread between quantiles, so the uncertainty is the product.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

DEFAULT_QUANTILES = (0.5, 0.9, 0.99)


@dataclass(frozen=True, eq=False)
class Forecast:
    """Forecast of a non-negative rate for steps 1..h after the last observation."""

    mean: np.ndarray
    """Expected value per step, shape (h,)."""
    quantiles: Mapping[float, np.ndarray]
    """Quantile level → values per step, each shape (h,), non-decreasing in the level."""
    step_s: float
    """Seconds per step (the series' resolution)."""
    model: str = ""
    """Which model produced it (for a fallback, the fallback's name and why)."""

    @property
    def horizon_steps(self) -> int:
        return int(self.mean.shape[0])

    @property
    def levels(self) -> tuple[float, ...]:
        return tuple(sorted(self.quantiles))

    def quantile(self, level: float) -> np.ndarray:
        """Values at `level`: exact when forecast, else interpolated linearly between the
        nearest forecast levels (0.5 is the median; beyond the range, the nearest level)."""
        if level in self.quantiles:
            return self.quantiles[level]
        levels = np.asarray(self.levels)
        table = np.stack([self.quantiles[q] for q in self.levels])
        if level <= levels[0]:
            return table[0]
        if level >= levels[-1]:
            return table[-1]
        upper = int(np.searchsorted(levels, level))
        lo, hi = levels[upper - 1], levels[upper]
        weight = (level - lo) / (hi - lo)
        return table[upper - 1] * (1 - weight) + table[upper] * weight


def tidy(
    mean: np.ndarray, quantiles: Mapping[float, np.ndarray], step_s: float, model: str
) -> Forecast:
    """Make any model's raw output safe to act on: finite, non-negative, quantiles monotone.

    Load is a non-negative rate, so a Gaussian interval's negative lower tail is cut at 0, and
    quantiles computed separately (as gradient boosting does) can cross; sorting across levels
    fixes that without changing the set of values.
    """
    levels = sorted(quantiles)
    mean = np.asarray(mean, dtype=float)
    finite = np.isfinite(mean)
    mean = np.maximum(mean if finite.all() else np.where(finite, mean, 0.0), 0.0)
    if not levels:
        return Forecast(mean, {}, step_s, model)
    table = np.stack([np.asarray(quantiles[q], dtype=float) for q in levels])
    finite = np.isfinite(table)
    if not finite.all():
        table = np.where(finite, table, mean[None, :])
    np.maximum(table, 0.0, out=table)
    table.sort(axis=0)
    return Forecast(mean, {q: table[i] for i, q in enumerate(levels)}, step_s, model)
