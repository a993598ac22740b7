"""Rolling-origin evaluation: how a forecaster would have done, forecast after forecast.

The evaluation plays production: the model is fitted once on everything before the first
origin (and refitted every `refit_every` steps, as the background fitter would), and between
origins it only sees `update` with the values that arrived — exactly the cheap online path
the autoscaler uses every tick. At each origin it forecasts the next `horizon` steps.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from forecasting.base import Forecaster
from forecasting.metrics import coverage, mase, pinball_loss, smape

EVAL_QUANTILES = (0.05, 0.5, 0.9, 0.95)
"""Levels every backtest asks for: the median, the policy's p90, and the 90 % interval."""


@dataclass(frozen=True)
class Plan:
    """Where the forecasts are made: y[:o] is known at origin o, y[o:o+horizon] is scored."""

    origins: np.ndarray
    horizon: int
    refit_every: int | None

    @property
    def first(self) -> int:
        return int(self.origins[0])


def plan_origins(
    n: int,
    horizon: int,
    *,
    eval_steps: int,
    max_origins: int = 1000,
    refit_every: int | None = None,
    min_train: int = 2,
) -> Plan:
    """Spread at most `max_origins` origins evenly over the last `eval_steps` steps.

    Raises ValueError when the series is too short to keep `min_train` steps for fitting.
    """
    last = n - horizon
    first = max(last - eval_steps + 1, min_train)
    if horizon < 1 or last < first:
        raise ValueError(
            f"series of {n} steps is too short for a {horizon}-step horizon after "
            f"{min_train} training steps"
        )
    count = min(max_origins, last - first + 1)
    origins = np.unique(np.linspace(first, last, count).round().astype(np.int64))
    return Plan(origins, horizon, refit_every)


@dataclass
class Run:
    """Forecasts of one model at every origin of a plan, and what they cost."""

    model: str
    mean: np.ndarray
    """(origins, horizon)"""
    quantiles: dict[float, np.ndarray]
    """level → (origins, horizon)"""
    fit_seconds: list[float] = field(default_factory=list)
    predict_seconds: list[float] = field(default_factory=list)
    produced_by: set[str] = field(default_factory=set)
    """`Forecast.model` values seen: shows fallbacks."""
    final: Forecaster | None = None
    """The model after the last origin (fitted, updated through it)."""


def run(
    y: np.ndarray,
    factory: Callable[[], Forecaster],
    plan: Plan,
    *,
    step_s: float,
    name: str,
    start_s: float = 0.0,
    mask: np.ndarray | None = None,
    quantiles: Sequence[float] = EVAL_QUANTILES,
    progress: Callable[[int], None] | None = None,
) -> Run:
    """Fit at the first origin (and every `refit_every`), `update` in between, forecast at each."""
    y = np.asarray(y, dtype=float)
    seen = y.copy()
    if mask is not None:
        seen[mask] = np.nan  # outage values reach `update` as missing, as they would live
    h, count = plan.horizon, plan.origins.size
    result = Run(name, np.zeros((count, h)), {q: np.zeros((count, h)) for q in quantiles})
    model: Forecaster | None = None
    fitted_at = last = 0
    for index, origin in enumerate(plan.origins.tolist()):
        if model is None or (plan.refit_every and origin - fitted_at >= plan.refit_every):
            started = time.perf_counter()
            model = factory().fit(
                y[:origin],
                step_s=step_s,
                start_s=start_s,
                mask=None if mask is None else mask[:origin],
            )
            result.fit_seconds.append(time.perf_counter() - started)
            fitted_at = origin
        elif origin > last:
            model.update(seen[last:origin])
        last = origin
        started = time.perf_counter()
        forecast = model.predict(h, quantiles)
        result.predict_seconds.append(time.perf_counter() - started)
        result.mean[index] = forecast.mean
        for q in quantiles:
            result.quantiles[q][index] = forecast.quantile(q)
        result.produced_by.add(forecast.model)
        if progress is not None:
            progress(1)
    result.final = model
    return result


def actuals(y: np.ndarray, plan: Plan) -> np.ndarray:
    """y[o : o + horizon] for every origin o, shape (origins, horizon)."""
    index = plan.origins[:, None] + np.arange(plan.horizon)[None, :]
    return np.asarray(y, dtype=float)[index]


def scored_points(plan: Plan, mask: np.ndarray | None) -> np.ndarray:
    """Which (origin, step) targets count: not inside a known outage."""
    if mask is None:
        return np.ones((plan.origins.size, plan.horizon), dtype=bool)
    index = plan.origins[:, None] + np.arange(plan.horizon)[None, :]
    return ~np.asarray(mask, dtype=bool)[index]


def score(actual: np.ndarray, forecast: Run, baseline: Run, keep: np.ndarray) -> dict[str, float]:
    """The figures of `leadtime backtest` for one model (see `forecasting.metrics`)."""
    a = actual[keep]
    median = forecast.quantiles[0.5][keep]
    return {
        "mase": mase(a, median, baseline.quantiles[0.5][keep]),
        "smape": smape(a, median),
        "pinball_50": pinball_loss(a, median, 0.5),
        "pinball_90": pinball_loss(a, forecast.quantiles[0.9][keep], 0.9),
        "coverage_90": coverage(a, forecast.quantiles[0.05][keep], forecast.quantiles[0.95][keep]),
        "fit_s": float(np.mean(forecast.fit_seconds)) if forecast.fit_seconds else math.nan,
        "predict_ms": 1000 * float(np.mean(forecast.predict_seconds)),
    }
