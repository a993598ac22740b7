"""Steer each service's miss budget by its own measured attainment: below target buy more, above
target release.

The queueing model (`queueing.py`) is a model: service times are not exponential, the forecast is
biased on some services, a burst nobody forecast costs misses the model never planned for. So the
budget it plans with is the objective's (1 − target) times a per-service factor, and the factor
follows the service's attainment over a sliding window (`Observation.attainment`): an integral
controller on its logarithm,

    d log(factor) / dt = clip(log(budget / observed miss share), ±MAX_STEP) / response,

so a service missing twice its budget tightens the planning budget by a factor e in
TIGHTEN_S / log 2 seconds; one meeting it with room loosens it LOOSEN_S / TIGHTEN_S times more
slowly (a miss is the objective's, a spare GPU-second only its cost). The factor stays
within [FACTOR_MIN, FACTOR_MAX]: the model is never trusted less than that, and an idle service's
perfect record never licenses it to plan for a quarter of its requests to miss. A window with
fewer than MIN_JUDGED requests says nothing and leaves the factor where it is.

All on arrays, one service per row; pure.
"""

from __future__ import annotations

import math

import numpy as np

TIGHTEN_S = 300.0
LOOSEN_S = 1200.0
"""Time scales of the controller, around the attainment window itself."""
MAX_STEP = 2.0
"""Largest log-error acted on at once (a window at 0 % or 100 % is not infinitely informative)."""
FACTOR_MIN, FACTOR_MAX = 1 / 20, 2.0
MIN_JUDGED = 50.0


def steer(
    log_factor: np.ndarray,
    met: np.ndarray,
    judged: np.ndarray,
    budget: float,
    dt: np.ndarray,
) -> np.ndarray:
    """The next log budget factor per row from the window's met/judged counts (NaN: unknown)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        usable = np.isfinite(judged) & (judged >= MIN_JUDGED) & np.isfinite(met)
        missed = np.where(usable, 1.0 - met / np.where(usable, judged, 1.0), budget)
        error = np.log(budget / np.maximum(missed, budget * math.exp(-MAX_STEP)))
    error = np.where(usable, np.clip(error, -MAX_STEP, MAX_STEP), 0.0)
    response = np.where(error < 0, TIGHTEN_S, LOOSEN_S)
    moved = log_factor + error * np.maximum(dt, 0.0) / response
    clipped: np.ndarray = np.clip(moved, math.log(FACTOR_MIN), math.log(FACTOR_MAX))
    return clipped
