"""The control loop at fleet scale: tick time and resident memory with 10,000 services.

    python load_tests/bench_loop.py [--services 10000] [--minutes 10]

Each service is a cheap simulated one, generated vectorised for the whole fleet at once: Poisson
arrivals around its own rate (0.05–50 requests/s, log-uniform) with a slow daily wave, a
time in service of one second, replicas that become ready one cold start (60 s) after they are
asked for. Every service gets a quantile forecast refreshed every 10 s, as forecasting workers
would deliver it, so the policy runs its predictive path; fitting itself is excluded (it runs
in other processes). The loop, its state, the pure policy and the telemetry are the real ones,
on a clock moved by hand, with garbage collection between ticks as `ControlLoop.run` does it
(`housekeeping`, untimed, as the service runs it in the idle time between ticks). Reports tick
p50/p99 after warm-up and resident memory (RSS).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import math
import resource
import statistics
import time
from collections.abc import Callable, Mapping

import numpy as np

from autoscaler.clock import ManualClock
from autoscaler.config import load_config
from autoscaler.forecast_workers import ForecastResult
from autoscaler.loop import ControlLoop
from autoscaler.ports import MetricsChunk, NoData, ReplicaStatus, ServiceKey
from forecasting.forecast import Forecast

COLD_START_S = 60.0
SERVICE_TIME_S = 1.0


class Fleet:
    """MetricsSource, Actuator and Catalog for N cheap simulated services (numpy across all)."""

    def __init__(self, count: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.keys = [ServiceKey(f"ns-{i % 100}", f"svc-{i}") for i in range(count)]
        self.index = {key: i for i, key in enumerate(self.keys)}
        self.rate = np.exp(rng.uniform(np.log(0.05), np.log(50.0), count))
        self.phase = rng.uniform(0, 2 * np.pi, count)
        self.rng = rng
        self.desired = np.ones(count, dtype=np.int64)
        self.ready = np.ones(count, dtype=np.int64)
        self.ready_at: list[list[float]] = [[] for _ in range(count)]
        self.second = 0

    def rates_at(self, second: float) -> np.ndarray:
        wave = 1 + 0.5 * np.sin(2 * np.pi * second / 86_400 + self.phase)
        return self.rate * wave

    async def services(self) -> list[ServiceKey]:
        return self.keys

    async def snapshot(self, now: float) -> Mapping[ServiceKey, MetricsChunk | NoData]:
        end = int(now)
        seconds = max(0, end - self.second)
        if seconds == 0:
            return {}
        arrivals = self.rng.poisson(self.rates_at(now)[:, None] * np.ones(seconds)).astype(float)
        capacity = self.ready[:, None] * 8.0
        concurrency = arrivals * SERVICE_TIME_S
        queue = np.clip(concurrency - capacity, 0, None)
        start = self.second
        self.second = end
        self._start_replicas(now)
        # one batched answer for the fleet, as one PromQL query per signal would give
        return {
            key: MetricsChunk(start, c, a, q)
            for key, c, a, q in zip(self.keys, concurrency, arrivals, queue, strict=True)
        }

    def _start_replicas(self, now: float) -> None:
        for i, pending in enumerate(self.ready_at):
            while pending and pending[0] <= now:
                pending.pop(0)
                self.ready[i] += 1

    async def history(self, key: ServiceKey, start: float, end: float) -> np.ndarray:
        return np.zeros(0)

    async def apply(self, decisions: Mapping[ServiceKey, int]) -> Mapping[ServiceKey, str]:
        failures = {}
        for key, desired in decisions.items():
            i = self.index.get(key)
            if i is None:  # removed from the catalog since the loop last asked for it
                failures[key] = "no such service"
                continue
            up = desired - self.desired[i]
            if up > 0:
                self.ready_at[i].extend([self.second + COLD_START_S] * int(up))
            else:
                drop = min(-up, len(self.ready_at[i]))
                del self.ready_at[i][len(self.ready_at[i]) - drop :]
                self.ready[i] = max(0, self.ready[i] - (-up - drop))
            self.desired[i] = desired
        return failures

    async def status(self, keys: list[ServiceKey]) -> Mapping[ServiceKey, ReplicaStatus]:
        pending = [len(starting) for starting in self.ready_at]
        return {
            key: ReplicaStatus(ready, waiting, desired, COLD_START_S)
            for key, ready, waiting, desired in zip(
                self.keys, self.ready.tolist(), pending, self.desired.tolist(), strict=True
            )
        }


def install_forecasts(
    loop: ControlLoop, fleet: Fleet, now: float, part: int, parts: int, quality: bool = False
) -> None:
    """What the forecasting workers would hand the loop: a p50/p90 forecast per service, every
    10 s, in batches (one fifth of the services each 2 s tick, as the worker shards deliver).
    With `quality`, each also carries a live MASE and coverage (per-service gauges)."""
    steps = 20
    rates = fleet.rates_at(now)
    mase, coverage = (0.8, 0.9) if quality else (math.nan, math.nan)
    for key in list(loop.states)[part::parts]:
        i = fleet.index.get(key)
        if i is None:  # removed from the catalog: its worker has forgotten it
            continue
        median = np.full(steps, rates[i])
        quantiles = {0.05: median * 0.6, 0.5: median, 0.9: median * 1.3, 0.95: median * 1.4}
        forecast = Forecast(median, quantiles, 10.0, "bench")
        loop.forecast_arrived(ForecastResult(str(key), forecast, "", now, None, mase, coverage))


def make_loop(fleet: Fleet) -> tuple[ControlLoop, ManualClock]:
    """The real loop (default config, containerConcurrency 8) over `fleet`, on a hand clock."""
    config = load_config(None, env={})
    config = dataclasses.replace(
        config, policy=dataclasses.replace(config.policy, container_concurrency=8)
    )
    clock = ManualClock(start=0.0)
    loop = ControlLoop(
        config, source=fleet, actuator=fleet, catalog=fleet, clock=clock, warmup_s=0.0
    )
    return loop, clock


async def drive(
    loop: ControlLoop,
    fleet: Fleet,
    clock: ManualClock,
    ticks: int,
    after: Callable[[int, float, float], None],
    before: Callable[[float], None] | None = None,
    quality: bool = False,
) -> None:
    """Run `ticks` ticks as `ControlLoop.run` does (garbage collection off during a tick,
    `housekeeping` between ticks), with forecasts delivered before each; `before(now)` runs
    before the forecasts, `after(tick, wall_s, cpu_s)` after housekeeping, both untimed.
    `cpu_s` is the process's CPU time during the tick: unlike wall time, it does not grow
    when other processes take the cores."""
    gc.disable()  # as ControlLoop.run does: collections happen in housekeeping, between ticks
    try:
        for tick in range(ticks):
            clock.advance(loop.config.tick_s)
            if before is not None:
                before(clock.now())
            if loop.states:
                install_forecasts(loop, fleet, clock.now(), tick % 5, 5, quality)
            started, cpu_started = time.perf_counter(), time.process_time()
            await loop.tick()
            wall = time.perf_counter() - started
            cpu = time.process_time() - cpu_started
            loop.housekeeping()
            after(tick, wall, cpu)
    finally:
        gc.enable()


async def bench(count: int, minutes: float) -> dict[str, float]:
    fleet = Fleet(count)
    loop, clock = make_loop(fleet)
    ticks = int(minutes * 60 / loop.config.tick_s)
    warmup = max(1, ticks // 5)
    walls: list[float] = []
    rss_after_warmup = 0.0

    def after(tick: int, wall: float, cpu: float) -> None:
        nonlocal rss_after_warmup
        walls.append(wall)
        if tick == warmup:
            rss_after_warmup = rss_mib()

    await drive(loop, fleet, clock, ticks, after)
    steady = sorted(walls[warmup:])
    return {
        "services": count,
        "ticks": len(steady),
        "tick_p50_ms": 1000 * statistics.median(steady),
        "tick_p99_ms": 1000 * p99(steady),
        "rss_after_warmup_mib": rss_after_warmup,
        "rss_end_mib": rss_mib(),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def p99(ordered: list[float]) -> float:
    """The 99th percentile of sorted values (the nearest rank below)."""
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def rss_mib() -> float:
    """Resident memory of this process now (not the peak), in MiB."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--minutes", type=float, default=10.0, help="virtual minutes to run")
    args = parser.parse_args()
    result = asyncio.run(bench(args.services, args.minutes))
    width = max(map(len, result))
    for key, value in result.items():
        print(
            f"{key.ljust(width)}  {value:,.1f}"
            if isinstance(value, float)
            else f"{key.ljust(width)}  {value}"
        )


if __name__ == "__main__":
    main()
