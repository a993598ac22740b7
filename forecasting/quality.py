"""Live forecast quality per series: is the forecast good enough to act on right now?

The policy lets the predictive part step aside when the forecast goes bad (docs/architecture.md §4),
so the service scores every forecast against what then happened, over a sliding window: - MASE: mean
absolute error of the median relative to that of a reference forecast (the seasonal-naive, or naive,
value for the same target) — above 1, the model is worse than repeating the past; - coverage: the
share of outcomes inside the central interval [q_lo, q_hi] — far below its nominal level, the
interval (and so the warm headroom sized from it) is too narrow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass
class LiveQuality:
    """Sliding-window MASE and interval coverage of one series' forecasts."""

    window: int = 720
    """Outcomes remembered (720 one-minute outcomes: the last 12 hours)."""
    nominal_coverage: float = 0.9
    max_mase: float = 1.2
    """Above this, the forecast is worse than the reference by more than noise."""
    min_coverage_ratio: float = 0.75
    """Coverage below this fraction of nominal means the interval is badly too narrow."""
    min_outcomes: int = 30

    def __post_init__(self) -> None:
        self._errors = np.zeros((self.window, 3))  # |median error|, |reference error|, inside
        self._count = 0
        self._means: tuple[float, float, float] | None = None
        """Column means of the window, kept until the next outcome: a shell asks for the
        verdict at every policy tick but records an outcome once per step."""

    def record(
        self, actual: float, median: float, lower: float, upper: float, reference: float
    ) -> None:
        """One outcome: what happened, what the forecast said, what the reference said."""
        if not all(math.isfinite(v) for v in (actual, median, lower, upper, reference)):
            return
        row = self._count % self.window
        self._errors[row] = (
            abs(actual - median),
            abs(actual - reference),
            lower <= actual <= upper,
        )
        self._count += 1
        self._means = None

    @property
    def outcomes(self) -> int:
        return min(self._count, self.window)

    def _column_means(self) -> tuple[float, float, float]:
        if self._means is None:
            rows = self._errors[: self.outcomes]
            if rows.size:
                error, scale, inside = (float(rows[:, column].mean()) for column in range(3))
                self._means = (error, scale, inside)
            else:
                self._means = (math.nan, 0.0, math.nan)
        return self._means

    @property
    def mase(self) -> float:
        error, scale, _ = self._column_means()
        return error / scale if scale > 0 else math.nan

    @property
    def coverage(self) -> float:
        return self._column_means()[2]

    def verdict(self) -> tuple[bool, str]:
        """(usable, why). Too few outcomes yet counts as usable: there is nothing against it."""
        if self.outcomes < self.min_outcomes:
            return True, f"only {self.outcomes} outcomes scored"
        if self.mase > self.max_mase:
            return False, f"MASE {self.mase:.2f} > {self.max_mase:g}"
        floor = self.min_coverage_ratio * self.nominal_coverage
        if self.coverage < floor:
            return False, f"coverage {self.coverage:.0%} < {floor:.0%}"
        return True, f"MASE {self.mase:.2f}, coverage {self.coverage:.0%}"
