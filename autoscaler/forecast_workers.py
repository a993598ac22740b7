"""Forecasting off the event loop: worker processes that each hold the models of a shard.

Why shards of stateful workers rather than a plain process pool: a fitted model is updated
with every new step and asked for a forecast every step, for every service. Shipping models
back and forth for that would cost more than the work. So each service is pinned to one worker
process (by a stable hash of its key), which keeps its `ForecastShell` in memory; the loop only
sends the new seconds of arrivals and gets forecasts back.

The loop never waits: `submit` hands each idle shard one batch (everything that arrived for its
services since its previous batch) and returns at once; results land through a callback when
the worker is done, and meanwhile the previous forecasts keep serving. Fits are rationed per
batch (`fit_budget_s` of fitting, then no new fit starts), rotating through the shard's
services, so a burst of due fits (at start-up, or when a thousand histories double at once) is
staggered and never starves updates; a service whose first fit waits is served by the shell's
starter model meanwhile (`ForecastResult.starter`).
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

from autoscaler.forecast_shell import REFIT_EVERY_S, ForecastShell, step_rates
from forecasting.batch_fit import ignore_sigint
from forecasting.forecast import Forecast
from forecasting.registry import import_models
from forecasting.threads import one_thread_for_good

T = TypeVar("T")

FIT_BUDGET_S = 1.0
"""Seconds of fitting a batch may start new fits within (one fit may run past it). A batch is
sent every tick (2 s) while the previous one is done, so fits take at most about half of a
worker's time while many are due, and a batch's forecasts come back within a few seconds."""


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
    starter: bool = False
    """The forecast comes from the starter model: the service's own fit has not run yet."""
    quick: bool = False
    """The forecast comes from the quick first model of a warm start (`QUICK_SERVES_S`)."""


# ------------------------------------------------------------------ worker process side
_SHELLS: dict[str, ForecastShell] = {}


def _start_worker(model: str) -> None:
    """A worker's initializer: Ctrl-C is the parent's (`ignore_sigint`), and with its models'
    libraries loaded, every thread pool runs on one thread (`one_thread_for_good`: a worker is
    one core's worth of fits and updates)."""
    ignore_sigint()
    import_models(model)
    one_thread_for_good()


@dataclass(frozen=True)
class _Item:
    """One service's work in a batch."""

    key: str
    seconds: np.ndarray
    origin: float
    """Clock time of the first second the service ever fed."""
    history: tuple[np.ndarray, float] | None
    """A warm start's rates at the shell's step and the time its last step ends, if one came."""


def _refresh(
    settings: ShellSettings, items: list[_Item], now: float, fit_budget_s: float
) -> list[ForecastResult]:
    """In a worker: seed and feed each service, forecast at `now`; fits start while the batch's
    fits so far took less than `fit_budget_s`."""
    results = []
    fitting = 0.0
    for item in items:
        shell = _SHELLS.get(item.key)
        if shell is None:
            shell = _SHELLS[item.key] = ForecastShell(**dataclasses.asdict(settings))
        if item.history is not None:
            shell.seed(item.history[0], end_s=item.history[1])
        shell.feed(item.seconds, origin_s=item.origin)
        fitted_before = shell.last_fit_s
        shell.last_fit_s = None
        forecast, note = shell.forecast(now, allow_fit=fitting < fit_budget_s)
        fit_s = shell.last_fit_s
        if fit_s is None:
            shell.last_fit_s = fitted_before
        else:
            fitting += fit_s
        quality = shell.quality
        results.append(
            ForecastResult(
                item.key,
                forecast,
                note,
                now,
                fit_s,
                quality.mase,
                quality.coverage,
                shell.serving_starter,
                shell.serving_quick,
            )
        )
    return results


def _forget(keys: list[str]) -> None:
    for key in keys:
        _SHELLS.pop(key, None)


# ------------------------------------------------------------------------- loop side
@dataclass
class _Shard:
    executor: ProcessPoolExecutor
    busy: Future[list[ForecastResult]] | None = None
    queued: dict[str, list[np.ndarray]] = field(default_factory=dict)
    origins: dict[str, float] = field(default_factory=dict)
    histories: dict[str, tuple[np.ndarray, float]] = field(default_factory=dict)
    turn: int = 0


class ForecastPool:
    """Stateful forecasting workers behind a non-blocking interface (see the module docstring)."""

    def __init__(
        self,
        settings: ShellSettings,
        workers: int,
        on_result: Callable[[ForecastResult], object],
        *,
        fit_budget_s: float = FIT_BUDGET_S,
    ) -> None:
        self.settings = settings
        self.fit_budget_s = fit_budget_s
        self._on_result = on_result
        self._shards = [_Shard(self._new_executor()) for _ in range(max(1, workers))]
        self._fed: set[str] = set()

    def _new_executor(self) -> ProcessPoolExecutor:
        # spawn: a forked child would inherit the event loop's threads and locks
        return ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(self.settings.model,),
        )

    def _shard(self, key: str) -> _Shard:
        return self._shards[zlib.crc32(key.encode()) % len(self._shards)]

    def seed(self, key: str, seconds: np.ndarray, end_s: float) -> None:
        """Queue a warm start's history of a service that has fed nothing yet: per-second
        arrivals, the last second ending at clock time `end_s` (new seconds follow). They
        cross to the worker as rates at the shells' step, aligned to `end_s`: a day of
        seconds is 691 kB per service, its 10 s steps a tenth of that."""
        if key in self._fed:
            return
        values = np.asarray(seconds, dtype=float)
        aligned = values[values.size % int(self.settings.step_s) :]  # whole steps up to end_s
        rates = step_rates(aligned, self.settings.step_s)
        shard = self._shard(key)
        shard.histories[key] = (rates, float(end_s))
        shard.queued.setdefault(key, [])
        shard.origins[key] = float(end_s)
        self._fed.add(key)

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
                _Item(
                    key,
                    np.concatenate([np.zeros(0), *shard.queued[key]]),
                    shard.origins.pop(key, 0.0),
                    shard.histories.pop(key, None),
                )
                for key in keys
            ]
            shard.queued.clear()
            work = partial(_refresh, self.settings, items, now, self.fit_budget_s)
            try:
                future = shard.executor.submit(work)
            except BrokenProcessPool:  # a worker died: start a fresh one; its models refit
                shard.executor = self._new_executor()
                future = shard.executor.submit(work)
            shard.busy = future
            future.add_done_callback(partial(self._done, shard, keys, now))

    def _done(
        self, shard: _Shard, keys: list[str], now: float, future: Future[list[ForecastResult]]
    ) -> None:
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
        shard.histories.pop(key, None)
        self._fed.discard(key)
        shard.executor.submit(_forget, [key])

    def worker_pids(self) -> list[int]:
        """The worker processes' ids (for CPU accounting; a shard not yet started has none)."""
        return [pid for shard in self._shards for pid in (shard.executor._processes or {})]

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
