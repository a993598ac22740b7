"""The control loop on the simulator adapter with a clock moved by hand: two services, a loop,
ticks."""

from __future__ import annotations

import dataclasses

import numpy as np

from adapters.simulator.config import SimConfig
from adapters.simulator.live import LiveCluster
from adapters.simulator.workload import Workload
from autoscaler.clock import ManualClock
from autoscaler.config import load_config
from autoscaler.loop import ControlLoop
from autoscaler.ports import ServiceKey

CHAT = ServiceKey("default", "chat")


CODE = ServiceKey("default", "code")


def steady(rate: float, duration: float, seed: int = 0) -> Workload:
    """Poisson arrivals at `rate`/s with short requests (prompt 100, output 40 tokens)."""
    rng = np.random.default_rng(seed)
    times = np.sort(rng.uniform(0, duration, int(rate * duration)))
    n = times.size
    return Workload(
        name=f"steady-{rate:g}",
        times=times,
        duration=duration,
        prompt_tokens=np.full(n, 100),
        output_tokens=np.full(n, 40),
    )


def make_loop(cluster, *, mode="live", warmup_s=60.0, forecasts=None, **policy):
    config = load_config(None, env={})
    config = dataclasses.replace(
        config,
        mode=mode,
        policy=dataclasses.replace(config.policy, container_concurrency=8, **policy),
    )
    clock = ManualClock()
    loop = ControlLoop(
        config,
        source=cluster,
        actuator=cluster,
        catalog=cluster,
        clock=clock,
        forecasts=forecasts,
        warmup_s=warmup_s,
    )
    return loop, clock


async def run_for(loop, clock, seconds, tick_s=2.0):
    reports = []
    for _ in range(int(seconds / tick_s)):
        reports.append(await loop.tick())
        clock.advance(tick_s)
    return reports


def two_services(rate_chat=20.0, rate_code=2.0, duration=900.0):
    """Two services deployed with one replica each: no warm-up, so the loop's tests see every
    scale-up from the deployment on."""
    return LiveCluster(
        [(CHAT, steady(rate_chat, duration)), (CODE, steady(rate_code, duration, 1))],
        SimConfig(warmup_s=0.0),
    )
