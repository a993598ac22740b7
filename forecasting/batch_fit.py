"""Fitting many series off the event loop: a process pool, in chunks.

Why processes: statsmodels and scikit-learn fits are CPU-bound Python and numpy; threads would
hold the GIL against the control loop. Why chunks: one task per series would spend more time
pickling than fitting the cheap models.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from forecasting.base import Forecaster


def ignore_sigint() -> None:
    """A worker process's initializer: Ctrl-C in a terminal reaches the whole foreground process
    group, workers included, but stopping is the parent's decision (it shuts its pool down);
    a worker that took the KeyboardInterrupt itself would print a traceback over the results."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def fit_one(name: str, y: np.ndarray, step_s: float, horizon_steps: int | None) -> Forecaster:
    from forecasting.registry import make_forecaster

    return make_forecaster(name, horizon_steps=horizon_steps).fit(y, step_s=step_s)


def _fit_chunk(
    name: str, chunk: list[np.ndarray], step_s: float, horizon_steps: int | None
) -> list[Forecaster]:
    return [fit_one(name, y, step_s, horizon_steps) for y in chunk]


def fit_many(
    name: str,
    series: Sequence[np.ndarray],
    *,
    step_s: float,
    workers: int = 2,
    chunk_size: int = 10,
    horizon_steps: int | None = None,
) -> list[Forecaster]:
    """Fit model `name` on every series, in `workers` processes; results in input order."""
    chunks = [list(series[i : i + chunk_size]) for i in range(0, len(series), chunk_size)]
    with ProcessPoolExecutor(max_workers=workers, initializer=ignore_sigint) as pool:
        futures = [pool.submit(_fit_chunk, name, chunk, step_s, horizon_steps) for chunk in chunks]
        return [model for future in futures for model in future.result()]
