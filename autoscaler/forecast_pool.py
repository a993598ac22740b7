"""Forecasting off the event loop: worker processes that each hold the models of a shard.

Why shards of stateful workers rather than a plain process pool: a fitted model is updated
with every new step and asked for a forecast every step, for every service. Shipping models
back and forth for that would cost more than the work. So each service is pinned to one worker
process (by a stable hash of its key), which keeps its `ForecastShell` in memory; the loop only
sends the new seconds of arrivals and gets forecasts back.

The loop never waits: `submit` hands each idle shard one batch (everything that arrived for its
services since its previous batch) and returns at once; results land through a callback when
the worker is done, and meanwhile the previous forecasts keep serving. Fits are rationed per
batch (`fits_per_batch`), rotating through the shard's services, so a burst of due fits (at
start-up, or when a thousand histories double at once) is staggered and never starves updates.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import multiprocessing
import zlib
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar

import numpy as np

from autoscaler.forecasts import REFIT_EVERY_S, ForecastShell
from forecasting.forecast import Forecast
from forecasting.pool import ignore_sigint

T = TypeVar("T")


@dataclass(frozen=True)
class ShellSettings:
    """How every service's shell is built (picklable: it crosses to the workers); the fields
    are `ForecastShell`'s own."""

    horizon_s: float
    model: str = "auto"
    step_s: float = 10.0
    refit_every_s: float = REFIT_EVERY_S
    min_history_s: float = 60.0


@dataclass(frozen=True)
class ForecastResult:
    """A worker's answer for one service."""

    key: str
    forecast: Forecast | None
    note: str
    at: float
    """The loop time the forecast starts at."""
    fit_s: float | None = None
    """Wall time of a fit made in this batch, if one was."""
    mase: float = math.nan
    coverage: float = math.nan


# ------------------------------------------------------------------ worker process side
_SHELLS: dict[str, ForecastShell] = {}


def _refresh(
    settings: ShellSettings,
    items: list[tuple[str, np.ndarray, float, float]],
    fits_allowed: int,
) -> list[ForecastResult]:
    """In a worker: feed each service its new seconds (first second at `origin`), forecast at
    `now`, fitting at most `fits_allowed` of them."""
    results = []
    for key, seconds, origin, now in items:
        shell = _SHELLS.get(key)
        if shell is None:
            shell = _SHELLS[key] = ForecastShell(**dataclasses.asdict(settings))
        shell.feed(seconds, origin_s=origin)
        allow = fits_allowed > 0
        fitted_before = shell.last_fit_s
        shell.last_fit_s = None
        forecast, note = shell.forecast(now, allow_fit=allow)
        fit_s = shell.last_fit_s
        if fit_s is None:
            shell.last_fit_s = fitted_before
        else:
            fits_allowed -= 1
        quality = shell.quality
        results.append(
            ForecastResult(key, forecast, note, now, fit_s, quality.mase, quality.coverage)
        )
    return results


def _forget(keys: list[str]) -> None:
    for key in keys:
        _SHELLS.pop(key, None)


# ------------------------------------------------------------------------- loop side
@dataclass
class _Shard:
    executor: ProcessPoolExecutor
    busy: Future | None = None
    queued: dict[str, list[np.ndarray]] = field(default_factory=dict)
    origins: dict[str, float] = field(default_factory=dict)
    turn: int = 0


class ForecastPool:
    """Stateful forecasting workers behind a non-blocking interface (see the module docstring)."""

    def __init__(
        self,
        settings: ShellSettings,
        workers: int,
        on_result: Callable[[ForecastResult], object],
        *,
        fits_per_batch: int = 1,
    ) -> None:
        self.settings = settings
        self.fits_per_batch = fits_per_batch
        self._on_result = on_result
        self._shards = [_Shard(self._new_executor()) for _ in range(max(1, workers))]
        self._fed: set[str] = set()

    @staticmethod
    def _new_executor() -> ProcessPoolExecutor:
        # spawn: a forked child would inherit the event loop's threads and locks
        return ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=ignore_sigint,
        )

    def _shard(self, key: str) -> _Shard:
        return self._shards[zlib.crc32(key.encode()) % len(self._shards)]

    def feed(self, key: str, seconds: np.ndarray, origin_s: float) -> None:
        """Queue new per-second arrivals of a service; `origin_s` is the clock time of the
        first second the service ever fed."""
        shard = self._shard(key)
        shard.queued.setdefault(key, []).append(np.asarray(seconds, dtype=float))
        if key not in self._fed:
            shard.origins[key] = origin_s
            self._fed.add(key)

    def submit(self, now: float) -> None:
        """Hand every idle shard its queued work; never waits."""
        for shard in self._shards:
            if shard.busy is not None or not shard.queued:
                continue
            keys = list(shard.queued)
            start = shard.turn % len(keys)
            keys = keys[start:] + keys[:start]  # rotate so fits reach every service in turn
            shard.turn += 1
            items = [
                (key, np.concatenate(shard.queued[key]), shard.origins.pop(key, 0.0), now)
                for key in keys
            ]
            shard.queued.clear()
            try:
                future = shard.executor.submit(_refresh, self.settings, items, self.fits_per_batch)
            except BrokenProcessPool:  # a worker died: start a fresh one; its models refit
                shard.executor = self._new_executor()
                future = shard.executor.submit(_refresh, self.settings, items, self.fits_per_batch)
            shard.busy = future
            future.add_done_callback(partial(self._done, shard, keys, now))

    def _done(self, shard: _Shard, keys: list[str], now: float, future: Future) -> None:
        """Runs in the executor's thread; `on_result` must hand over to the loop's thread."""
        shard.busy = None
        if future.cancelled():
            return
        error = future.exception()
        if error is not None:  # a crashed worker: the services fall back, and say why
            for key in keys:
                self._on_result(ForecastResult(key, None, f"forecast worker failed: {error}", now))
            return
        for result in future.result():
            self._on_result(result)

    def forget(self, key: str) -> None:
        shard = self._shard(key)
        shard.queued.pop(key, None)
        self._fed.discard(key)
        shard.executor.submit(_forget, [key])

    async def drain(self) -> None:
        """Wait for every batch in flight (tests and shutdown)."""
        futures = [asyncio.wrap_future(s.busy) for s in self._shards if s.busy is not None]
        if futures:
            await asyncio.gather(*futures, return_exceptions=True)

    def close(self) -> None:
        for shard in self._shards:
            shard.executor.shutdown(wait=False, cancel_futures=True)


def to_loop(aio: asyncio.AbstractEventLoop, handler: Callable[[T], object]) -> Callable[[T], None]:
    """A worker thread's callback that runs `handler` on the event loop `aio`: how a pool's
    results reach the control loop. A result that comes after the run has ended and its event
    loop closed (a fit still running when the pool was shut down) is dropped instead of raising
    `RuntimeError: Event loop is closed` in the executor's thread."""

    def deliver(result: T) -> None:
        try:
            aio.call_soon_threadsafe(handler, result)
        except RuntimeError:
            if not aio.is_closed():
                raise

    return deliver
