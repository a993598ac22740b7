"""Numerical libraries on one thread: while a model fits, or for a whole worker process.

Why one thread: the matrices of a per-series fit are small, and BLAS or OpenMP waking threads
on cores that other fits keep busy made fits several times slower (see `models.sarimax`); the
autoscaler runs fits in parallel processes instead. Why a cached controller: `threadpoolctl`
finds the loaded libraries by scanning the process's shared objects, ~3 ms a call, which was
a tenth of a `ridge` fit. The controller is made at the first fit, once the models' modules
(numpy, SciPy, scikit-learn) have loaded their libraries.

A forecasting worker process is limited for good (`one_thread_for_good`): models the fits do
not wrap (statsmodels' ETS, every update and forecast) left OpenBLAS's idle threads spinning
after each call, and a worker's CPU for a fit of `auto` on a day of 10 s steps was 0.29 s for
0.18 s of work on its own thread.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from threadpoolctl import ThreadpoolController

_controller: ThreadpoolController | None = None
_for_good: object = None
"""The process-wide limit, kept referenced for the life of the process."""


def one_thread_for_good() -> None:
    """From now on, every thread pool loaded so far runs on one thread (in a worker process,
    after its models' modules are imported)."""
    global _controller, _for_good
    _controller = ThreadpoolController()
    _for_good = _controller.limit(limits=1)


def one_thread(user_api: str | None = None) -> AbstractContextManager[Any]:
    """A context in which the loaded thread pools (`user_api`: "blas", "openmp" or all)
    run on one thread."""
    global _controller
    if _controller is None:
        _controller = ThreadpoolController()
    return _controller.limit(limits=1, user_api=user_api)
