"""Forecast accuracy measures, vectorised over arrays of any matching shape.

Pinball loss is the one that matters for provisioning at a quantile: it is minimised by the
true quantile, so comparing models by pinball loss at 0.9 compares how well they would size a
p90 fleet. MASE here is relative to the seasonal-naive forecast evaluated on the same origins
and horizons (< 1: better than repeating the last season).
"""

from __future__ import annotations

import numpy as np


def pinball_losses(actual: np.ndarray, predicted: np.ndarray, level: float) -> np.ndarray:
    """Quantile (pinball) loss of `predicted` as the `level` quantile of `actual`, per point."""
    diff = np.asarray(actual, dtype=float) - np.asarray(predicted, dtype=float)
    return np.maximum(level * diff, (level - 1) * diff)


def pinball_loss(actual: np.ndarray, predicted: np.ndarray, level: float) -> float:
    """Mean quantile (pinball) loss of `predicted` as the `level` quantile of `actual`."""
    return float(np.mean(pinball_losses(actual, predicted, level)))


def mean_absolute_error(actual: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.mean(np.abs(np.asarray(actual, dtype=float) - predicted)))


def mase(actual: np.ndarray, predicted: np.ndarray, baseline: np.ndarray) -> float:
    """MAE of `predicted` divided by the MAE of `baseline` (the seasonal-naive forecast) on
    the same points; NaN when the baseline is perfect (nothing to scale by)."""
    scale = mean_absolute_error(actual, baseline)
    return mean_absolute_error(actual, predicted) / scale if scale > 0 else float("nan")


def smape(actual: np.ndarray, predicted: np.ndarray) -> float:
    """Symmetric MAPE in percent (0–200); points where both are 0 count as perfect."""
    actual = np.asarray(actual, dtype=float)
    predicted = np.asarray(predicted, dtype=float)
    denominator = np.abs(actual) + np.abs(predicted)
    ratio = np.divide(
        2 * np.abs(actual - predicted),
        denominator,
        out=np.zeros_like(denominator),
        where=denominator > 0,
    )
    return float(100 * np.mean(ratio))


def coverage(actual: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    """Share of `actual` inside [lower, upper]."""
    actual = np.asarray(actual, dtype=float)
    return float(np.mean((actual >= lower) & (actual <= upper)))
