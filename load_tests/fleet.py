"""The forecasting fleet at N services, through the service's own path (`bench_forecasting.py
--services N`): `ForecastPool`'s worker processes, one `ForecastShell` per service, fed as the
control loop feeds them.

1. **Start.** N services join at once, each with `--history-h` hours of history (the warm
   start from Prometheus: per-second arrivals, seeded into the pool). Every tick (2 s of wall
   time, as the loop's) each service gets its new 2 seconds and the pool a `submit`. Printed:
   the time until every service has a forecast (the starter's or its own model's), and until
   every one has its own model (`auto`: its selection fitted; a warm start's first fit chooses
   among the quick candidates, `autoscaler.forecast_shell.QUICK_SERVES_S`), or how many had it when
   `--ready-s` ran out and the time all would take at the rate they came.
2. **Steady state.** `--steady-services` services (a sample: the cost is per service) in a new
   pool, every one fitted, then `--steady-h` hours of new data (by default one refit period,
   `ShellSettings.refit_every_s` or `--refit-h`, and a quarter of an hour: every service
   refits once in it, the full selection replacing the quick first one after at most an
   hour, the fits rationed as in the service) fed as fast as the workers take
   it, one 10 s step per batch. The workers' CPU time (from /proc) is read around every batch:
   the batches without a refit give the cost of updates and forecasts, the others less that
   give a refit's, which comes once a refit period. Printed per service-hour, and as the
   cores N services would keep busy.

The fleet: a third each of web-like diurnal series, on/off bursty LLM-like series and flat
Poisson series, scales log-uniform over 0.05-50 requests/s (seeded).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import time
from dataclasses import dataclass, field

import numpy as np

from adapters.simulator.synthetic import diurnal_profile
from autoscaler.forecast_workers import ForecastPool, ForecastResult, ShellSettings, to_loop

TICK_S = 2.0
STEP_S = 10.0
HORIZON_S = 62.0
"""What the policy reads ahead at a 60 s cold start (lead + 2 s)."""


def fleet_seconds(index: int, seconds: int, seed: int) -> np.ndarray:
    """Per-second arrivals of service `index` over `seconds`, ending now (see the docstring)."""
    rng = np.random.default_rng([seed, index])
    steps = seconds // int(STEP_S)
    t = np.arange(steps) * STEP_S
    scale = 10 ** rng.uniform(np.log10(0.05), np.log10(50))
    kind = index % 3
    if kind == 0:
        rate = scale * diurnal_profile(t) * np.exp(np.cumsum(rng.normal(0, 0.02, steps)) * 0.3)
    elif kind == 1:
        on = np.repeat(rng.random(steps // 30 + 1) < 0.3, 30)[:steps]
        rate = scale * on * rng.gamma(2.0, 0.5, steps)
    else:
        rate = np.full(steps, scale)
    counts = rng.poisson(rate * STEP_S)
    return np.repeat(counts / STEP_S, int(STEP_S))


@dataclass
class Tally:
    """What the pool sent back, per service."""

    forecast: set[str] = field(default_factory=set)
    own: set[str] = field(default_factory=set)
    """Services served by their own model: the quick first selection or the full one."""
    full: set[str] = field(default_factory=set)
    fit_s: list[float] = field(default_factory=list)

    def record(self, result: ForecastResult) -> None:
        if result.forecast is not None:
            self.forecast.add(result.key)
            if not result.starter:
                self.own.add(result.key)
                if not result.quick:
                    self.full.add(result.key)
        if result.fit_s is not None:
            self.fit_s.append(result.fit_s)


def worker_cpu_s(pool: ForecastPool) -> float:
    """User + system CPU seconds of the pool's worker processes so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pool.worker_pids():
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def worker_rss_gb(pool: ForecastPool) -> list[float]:
    """Resident memory of each of the pool's worker processes, in GB."""
    sizes = []
    for pid in pool.worker_pids():
        with open(f"/proc/{pid}/status") as status:
            kb = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
        sizes.append(kb / 1e6)
    return sizes


def start_pool(
    count: int, settings: ShellSettings, workers: int, history_s: int, seed: int
) -> tuple[ForecastPool, Tally]:
    """A pool whose results reach a tally on this event loop, every service seeded."""
    tally = Tally()
    pool = ForecastPool(settings, workers, to_loop(asyncio.get_running_loop(), tally.record))
    for index in range(count):
        pool.seed(f"fleet/svc-{index}", fleet_seconds(index, history_s, seed), float(history_s))
    return pool, tally


async def tick_until(pool, tally, count, now, limit_s, done) -> tuple[float, float, float]:
    """Tick in wall time until `done(tally)` or `limit_s`; returns (seconds, now, cpu)."""
    started = time.perf_counter()
    new = np.zeros(int(TICK_S))
    while time.perf_counter() - started < limit_s and not done(tally):
        pool.submit(now)
        await asyncio.sleep(TICK_S)
        await asyncio.sleep(0)
        now += TICK_S
        for index in range(count):
            pool.feed(f"fleet/svc-{index}", new, now)
    return time.perf_counter() - started, now, worker_cpu_s(pool)


async def start_phase(args: argparse.Namespace, settings: ShellSettings) -> None:
    count, history_s = args.services, int(args.history_h * 3600)
    built = time.perf_counter()
    pool, tally = start_pool(count, settings, args.workers, history_s, args.seed)
    took = time.perf_counter() - built
    print(f"built and seeded {count:,} histories of {args.history_h:g} h in {took:.0f}s")
    try:
        first, now, _ = await tick_until(
            pool, tally, count, float(history_s), args.ready_s, lambda t: len(t.forecast) == count
        )
        print(
            f"every service has a forecast after {first:.0f}s"
            if len(tally.forecast) == count
            else f"{len(tally.forecast):,} of {count:,} have a forecast after {first:.0f}s"
        )
        rest, _, cpu = await tick_until(
            pool, tally, count, now, max(0.0, args.ready_s - first), lambda t: len(t.own) == count
        )
        elapsed = first + rest
        own, full = len(tally.own), len(tally.full)
        if own == count:
            print(
                f"every service has its own {settings.model} after {elapsed:.0f}s "
                f"({full:,} the full selection, the others the quick one)"
            )
        else:
            projected = elapsed * count / max(own, 1)
            print(
                f"{own:,} of {count:,} have their own {settings.model} after {elapsed:.0f}s "
                f"({full:,} the full selection); all would at that rate after "
                f"~{projected / 60:.0f} min"
            )
        fits = np.asarray(tally.fit_s)
        if fits.size:
            print(
                f"{fits.size:,} fits: median {np.median(fits):.2f}s, p90 "
                f"{np.percentile(fits, 90):.2f}s; workers' CPU {cpu:.0f}s in {elapsed:.0f}s"
            )
        memory = ", ".join(f"{gb:.2f}" for gb in worker_rss_gb(pool))
        print(f"workers' resident memory: {memory} GB")
    finally:
        pool.close()


async def steady_phase(args: argparse.Namespace, settings: ShellSettings) -> None:
    count, history_s = args.steady_services, int(args.history_h * 3600)
    period_h = settings.refit_every_s / 3600
    hours = args.steady_h or period_h + 0.25  # one refit each, by default
    pool, tally = start_pool(count, settings, args.workers, history_s, args.seed + 1)
    try:
        _, now, _ = await tick_until(
            pool, tally, count, float(history_s), 3600.0, lambda t: len(t.own) == count
        )
        await pool.drain()
        await asyncio.sleep(0)
        step = np.zeros(int(STEP_S))
        readings = [(worker_cpu_s(pool), len(tally.fit_s))]  # after each batch: CPU s, fits
        for _ in range(int(hours * 3600 / STEP_S)):
            for index in range(count):
                pool.feed(f"fleet/svc-{index}", step + (index % 5), now)
            now += STEP_S
            pool.submit(now)
            await pool.drain()
            await asyncio.sleep(0)  # the results' callbacks
            readings.append((worker_cpu_s(pool), len(tally.fit_s)))
    finally:
        pool.close()
    cpu, refits = np.diff(np.array(readings), axis=0).T
    update_s = float(cpu[refits == 0].mean()) if (refits == 0).any() else 0.0
    refit_s = float((cpu[refits > 0] - update_s).sum() / refits.sum()) if refits.any() else 0.0
    updates = update_s * 3600 / STEP_S / count
    total = updates + refit_s / period_h
    print(
        f"steady state on {count} services, {hours:g} h of 10 s steps: updates and forecasts "
        f"{updates:.3f} CPU-s per service-hour; {int(refits.sum())} refits at {refit_s:.2f} "
        f"CPU-s each, every {period_h:g} h: {refit_s / period_h:.3f}; total {total:.3f} CPU-s "
        f"per service-hour = {total * args.services / 3600:.2f} cores at {args.services:,} services"
    )


def run_fleet(args: argparse.Namespace) -> None:
    settings = ShellSettings(horizon_s=HORIZON_S, step_s=STEP_S)
    if args.refit_h:
        settings = dataclasses.replace(settings, refit_every_s=args.refit_h * 3600)
    print(
        f"{args.services:,} services, {settings.model} on {STEP_S:g} s steps "
        f"{HORIZON_S:g} s ahead, {args.workers} worker processes"
    )
    asyncio.run(start_phase(args, settings))
    asyncio.run(steady_phase(args, settings))
