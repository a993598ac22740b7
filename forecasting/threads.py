"""Numerical libraries on one thread while a model fits.

Why one thread: the matrices of a per-series fit are small, and BLAS or OpenMP waking threads
on cores that other fits keep busy made fits several times slower (see `models.sarimax`); the
autoscaler runs fits in parallel processes instead. Why a cached controller: `threadpoolctl`
finds the loaded libraries by scanning the process's shared objects, ~3 ms a call, which was
a tenth of a `ridge` fit. The controller is made at the first fit, once the models' modules
(numpy, SciPy, scikit-learn) have loaded their libraries.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from threadpoolctl import ThreadpoolController

_controller: ThreadpoolController | None = None


def one_thread(user_api: str | None = None) -> AbstractContextManager[Any]:
    """A context in which the loaded thread pools (`user_api`: "blas", "openmp" or all)
    run on one thread."""
    global _controller
    if _controller is None:
        _controller = ThreadpoolController()
    return _controller.limit(limits=1, user_api=user_api)
