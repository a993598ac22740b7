"""`python -m load_tests.loadtest` (from a checkout): the whole loop on real processes —
open-loop generator → balancer → model-server replicas ← a real Prometheus ← the policy → the
local actuator — and the same results as `leadtime simulate`, scored the same way, to check
the simulator against.

`leadtime` runs as the service runs (the control loop with forecasting workers); `kpa` and
`hpa` are the same pure policies the simulator drives, driven here by a plain tick over the
metrics. `--speed X` replays X× faster in trace time: arrivals, prefill, decode and cold starts
are divided by X, and the policy runs on a virtual clock in trace seconds (second 0 = the
workload's second 0), so its ticks, windows and holds last what they last in the simulator. It
reads per-trace-second series (`load_tests/local/trace_source.py`: the balancer is scraped every
1/X s), cold starts in trace seconds, and every measured duration is multiplied back by X.
`--warmup` runs the start of the window without scoring it, as `leadtime simulate` does.
Everything listens on loopback and every process is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from aiohttp import web

from adapters.prometheus.client import PrometheusClient
from adapters.simulator.config import SimConfig
from adapters.simulator.engine import running_replicas
from adapters.simulator.oracle import lower_bound_gpu_seconds
from adapters.simulator.requests import Requests, build_requests
from adapters.simulator.sources import load_workload
from autoscaler import slo
from autoscaler.clock import VirtualClock
from autoscaler.config import config_from_mapping
from autoscaler.durations import parse_duration
from autoscaler.errors import InputError
from autoscaler.loop import loop_with_workers
from autoscaler.policies.catalog import PolicyContext, make_policy
from autoscaler.policy import Observation, Policy
from autoscaler.ports import MetricsChunk
from autoscaler.slo import met_slo
from leadtime import run_command
from leadtime.run_live import shell_settings
from leadtime.table import render_results
from load_tests.local.balancer import Balancer
from load_tests.local.cluster import SERVICE, LocalCluster
from load_tests.local.loadgen import Outcomes, replay_in_process
from load_tests.local.prometheus_server import PrometheusProcess
from load_tests.local.replicas import ReplicaManager, free_port
from load_tests.local.trace_source import NO_NEW_SECOND, TraceTimeSource, scrape_interval

T = TypeVar("T")
TICK_S = 2.0
"""Trace seconds between reads of the metrics (and the loop's tick)."""
WAKE_SLACK_S = 0.05
"""Trace seconds a wake-up may come early and still count as on time (timer resolution)."""
LAUNCH_S = 3.0
"""Seconds to start the generator's Python process before the workload begins."""


def main(argv: Sequence[str] | None = None) -> int:
    """Bad input is one line on stderr and exit status 2, as in the `leadtime` commands."""
    parser = argparse.ArgumentParser(
        prog="python -m load_tests.loadtest",
        description="the loop on real local processes, scored as `leadtime simulate` scores",
    )
    add_arguments(parser)
    parser.set_defaults(handler=run_loadtest)
    return run_command(parser, argv)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trace", help="a trace file")
    parser.add_argument("--workload", default="llm-bursty", help="or a built-in workload")
    parser.add_argument("--offset", default="0s")
    parser.add_argument("--duration", default="5m")
    parser.add_argument("--speed", type=float, default=1.0, help="trace seconds per second")
    parser.add_argument(
        "--policy",
        default="leadtime",
        help="leadtime, kpa, hpa, or static:N (to compare serving alone)",
    )
    parser.add_argument("--cold-start", default="60s")
    parser.add_argument("--slo-ttft", default="2s", help=f"time-to-first-token SLO; {slo.RULE}")
    parser.add_argument(
        "--warmup",
        metavar="D",
        help="start of each window that every policy runs through and is not scored: the "
        "service is running, its forecasters take it as history (default: 10%% of the "
        "window, at most 1h; 0: a cold start, scored from the first request)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")


def run_loadtest(args: argparse.Namespace) -> int:
    if args.policy not in ("leadtime", "kpa", "hpa") and not args.policy.startswith("static:"):
        raise InputError(f"--policy: expected leadtime, kpa, hpa or static:N, got {args.policy!r}")
    if not 0 < args.speed <= 100:
        raise InputError(f"--speed: expected a number in (0, 100], got {args.speed!r}")
    try:
        result = asyncio.run(_stoppable(loadtest(args)))
    except asyncio.CancelledError:
        print(
            "loadtest: stopped by SIGTERM; every process it started is stopped",
            file=sys.stderr,
        )
        return 128 + signal.SIGTERM
    if args.json:
        print(
            json.dumps(
                {"trace": result["trace"], "policy": result["policy"], **result["summary"]},
                indent=2,
            )
        )
    else:
        print(render_results([_AsResult(result)]))
    return 0


async def _stoppable(work: Awaitable[T]) -> T:
    """`work` with SIGTERM cancelling it like Ctrl-C does, so the `finally` blocks stop the
    replicas, the generator and Prometheus instead of leaving them running."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await work


class _AsResult:
    """What the results table reads of a SimResult."""

    def __init__(self, result: dict) -> None:
        self.trace, self.policy, self.summary = result["trace"], result["policy"], result["summary"]


async def loadtest(args: argparse.Namespace) -> dict[str, Any]:
    workload = load_workload(
        trace=args.trace,
        workload=None if args.trace else args.workload,
        seed=args.seed,
        offset=parse_duration(args.offset),
        duration=parse_duration(args.duration),
    )
    cold = parse_duration(args.cold_start, field="--cold-start")
    sim = SimConfig(
        cold_start_s=cold,
        seed=args.seed,
        slo_ttft_s=parse_duration(args.slo_ttft, field="--slo-ttft"),
        warmup_s=None if args.warmup is None else parse_duration(args.warmup, field="--warmup"),
    )
    scored_from = sim.warmup_for(workload.duration)
    requests = build_requests(workload, sim)
    policy = make_policy(args.policy, PolicyContext(container_concurrency=sim.max_concurrency))
    initial = first_replicas(policy.initial_replicas(), requests, sim, scored_from)
    replicas = ReplicaManager(
        cold_start_s=cold,
        time_scale=args.speed,
        slots=sim.max_concurrency,
        sigma=sim.cold_start_sigma,
        seed=args.seed,
    )
    await replicas.start()
    balancer, port = Balancer(replicas), free_port()
    runner = web.AppRunner(balancer.app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    prometheus = PrometheusProcess(
        [f"127.0.0.1:{port}"], static_scrape_interval=scrape_interval(args.speed)
    )
    client = None
    try:
        await asyncio.to_thread(prometheus.start)
        cluster = LocalCluster(replicas, prometheus)
        await _warm(cluster, initial)
        client = PrometheusClient(prometheus.url, timeout_s=2.0)
        stop = asyncio.Event()
        # The workload's second 0 a little ahead, so the generator's process is up by then and
        # the policy ticks at the workload's seconds 0, 2, 4, … as in the simulator.
        start_at = time.time() + LAUNCH_S
        source = TraceTimeSource(client, speed=args.speed, second_zero=start_at)
        driver = asyncio.create_task(_drive(args.policy, source, cluster, sim, stop))
        with tempfile.TemporaryDirectory(prefix="leadtime-loadtest-") as folder:
            replay = asyncio.create_task(
                replay_in_process(
                    f"http://127.0.0.1:{port}",
                    requests.arrival,
                    requests.prompt_tokens,
                    requests.output_tokens,
                    speed=args.speed,
                    folder=folder,
                    start_at=start_at,
                )
            )
            # GPUs are billed from the warm-up's end, as the simulator bills them.
            await _sleep_until(source.wall(scored_from))
            replicas.account()
            replicas.replica_seconds = 0.0
            outcomes = await replay
        # The simulator's run lasts the workload's whole duration even when the last request
        # ends sooner; the replicas are billed (and the policy ticks) until then here too.
        await _sleep_until(source.wall(workload.duration))
        replicas.account()
        wall = time.time() - start_at
        stop.set()
        await driver
        measured = Measured(
            scored_from=scored_from,
            gpu_seconds=replicas.replica_seconds * args.speed * sim.gpus_per_replica,
            scale_events=scored_count(cluster.scale_times, source, scored_from, clip=False),
            replicas_started=scored_count(replicas.launched_at, source, scored_from, clip=True),
            wall_s=wall,
            speed=args.speed,
        )
        summary = _summary(outcomes, requests, sim, measured)
    finally:
        if client is not None:
            await client.close()
        await runner.cleanup()
        await replicas.stop()
        prometheus.remove()
    return {"trace": workload.source or workload.name, "policy": args.policy, "summary": summary}


def first_replicas(initial: int, requests: Requests, sim: SimConfig, scored_from: float) -> int:
    """The replicas ready at second 0, as the simulator starts them: the policy's initial
    replicas, or with a warm-up (a service already running) at least what its first minute
    of load keeps busy (`engine.running_replicas`)."""
    if scored_from > 0:
        return max(initial, running_replicas(requests, sim.max_concurrency))
    return initial


def scored_count(
    unix_times: list[float], source: TraceTimeSource, scored_from: float, *, clip: bool
) -> int:
    """Events at or after the warm-up's end. With `clip`, the ones before second 0 (the
    replicas started warm) count as at second 0, where the simulator grants them."""
    trace = (np.asarray(unix_times, dtype=float) - source.second_zero) * source.speed
    if clip:
        trace = np.maximum(trace, 0.0)
    return int((trace >= scored_from).sum())


async def _sleep_until(unix_time: float) -> None:
    await asyncio.sleep(max(0.0, unix_time - time.time()))


async def _warm(cluster: LocalCluster, replicas: int) -> None:
    """The first replicas ready before the first request, as the simulator starts."""
    await cluster.apply({SERVICE: replicas})
    while len(cluster.replicas.ready) < replicas:
        await asyncio.sleep(0.05)


async def _drive(
    policy: str,
    source: TraceTimeSource,
    cluster: LocalCluster,
    sim: SimConfig,
    stop: asyncio.Event,
) -> None:
    """The policy on a virtual clock in trace seconds from the workload's second 0: its
    tick, windows and holds, and every time it reads, are the trace's, as in the simulator.
    It starts ticking at second 0; the warm replicas hold until then."""
    clock = VirtualClock(source.speed, start=(time.time() - source.second_zero) * source.speed)
    if policy == "leadtime":
        await _drive_loop(source, cluster, clock, sim, stop)
    else:
        context = PolicyContext(container_concurrency=sim.max_concurrency)
        await drive_policy(make_policy(policy, context), source, cluster, clock, stop)


async def _drive_loop(
    source: TraceTimeSource,
    cluster: LocalCluster,
    clock: VirtualClock,
    sim: SimConfig,
    stop: asyncio.Event,
) -> None:
    """Leadtime as the service runs it: the control loop and its forecasting workers."""
    config = config_from_mapping(
        {
            "tick": f"{TICK_S}s",
            "forecasting": {"workers": 1},
            "policy": {
                "container_concurrency": sim.max_concurrency,
                "cold_start_prior": f"{sim.cold_start_s}s",
            },
        }
    )
    loop, pool = loop_with_workers(
        config,
        shell_settings(config),
        source=source,
        actuator=cluster,
        catalog=cluster,
        clock=clock,
        warmup_s=0.0,
    )
    # Built before second 0: setting up the loop and its workers takes the harness's event
    # loop (which serves the balancer too) for a while, at 10x the first seconds' scrapes.
    await clock.sleep_until(0.0)
    running = asyncio.create_task(loop.run())
    await stop.wait()
    loop.stop()
    await running
    pool.close()


async def drive_policy(
    policy: Policy,
    source: TraceTimeSource,
    cluster: Any,
    clock: VirtualClock,
    stop: asyncio.Event,
) -> None:
    """A baseline policy decides on its own tick (the KPA's 2 s, the HPA's 15 s sync period)
    over the per-second series the simulator would give it, all in trace seconds. The source
    is read every `TICK_S` whatever the policy's tick, and the series kept for the policy's
    window (`history_s` samples, one per trace second)."""
    keep = int(math.ceil(policy.history_s)) or 1
    series: list[np.ndarray] = [np.zeros(0), np.zeros(0), np.zeros(0)]
    state, poked = None, False
    await clock.sleep_until(0.0)  # second 0, or now if the clock is past it
    next_sample = next_decision = clock.now()
    while not stop.is_set():
        now = clock.now()
        item = (await source.snapshot(now)).get(SERVICE)
        if isinstance(item, MetricsChunk):
            new = (item.concurrency, item.arrivals, item.queue)
            series = [
                np.concatenate([old, add])[-keep:] for old, add in zip(series, new, strict=True)
            ]
            poked = poked or item.poke
        if now >= next_decision - WAKE_SLACK_S:
            # Each tick in its phase, as in the simulator (second 0, then every tick_s). On
            # NoData the policy holds, as the loop does; before second 1 its series is
            # complete but empty, and it decides on it as at the simulator's first tick.
            if isinstance(item, MetricsChunk) or item is NO_NEW_SECOND:
                state, poked = await _decide(policy, state, series, poked, cluster, now), False
        next_decision = next_tick(next_decision, policy.tick_s, now)
        next_sample = next_tick(next_sample, TICK_S, now)
        wake = max(min(next_sample, next_decision), clock.now())
        try:
            await asyncio.wait_for(stop.wait(), (wake - clock.now()) / clock.speed)
        except TimeoutError:
            pass


def next_tick(due: float, every: float, now: float) -> float:
    """The first tick of a fixed-rate schedule (`due`, `due` + `every`, …) after `now`: a late
    wake-up skips the ticks it missed, as the loop does, instead of deciding them at once."""
    if now < due - WAKE_SLACK_S:
        return due
    return due + every * (math.floor((now + WAKE_SLACK_S - due) / every) + 1)


async def _decide(policy: Policy, state, series: list[np.ndarray], poke: bool, cluster, now: float):
    """One decision of a baseline policy, applied; returns its next state."""
    status = (await cluster.status([SERVICE]))[SERVICE]
    if state is None:
        state = policy.initial_state(now, status.ready)
    decision, state = policy.decide(
        Observation(
            now=now,
            concurrency=series[0],
            arrivals=series[1],
            queue=series[2],
            ready=status.ready,
            pending=status.pending,
            desired=status.desired,
            poke=poke,
            cold_start_s=status.cold_start_s,
        ),
        state,
    )
    if decision.desired != status.desired:
        await cluster.apply({SERVICE: decision.desired})
    return state


@dataclass(frozen=True)
class Measured:
    """What the harness measured besides the requests' outcomes, within the scored window
    (from the warm-up's end, `scored_from` trace seconds, on)."""

    scored_from: float
    gpu_seconds: float
    scale_events: int
    replicas_started: int
    wall_s: float
    speed: float


def _summary(
    outcomes: Outcomes, requests: Requests, sim: SimConfig, measured: Measured
) -> dict[str, Any]:
    """The keys of `leadtime simulate --json`, scored as the simulator scores
    (`adapters/simulator/results.summarise`): only requests that arrive from the warm-up's
    end on, each judged by `autoscaler.slo.met_slo` on its wait (its TTFT less its prefill;
    NaN for one never served); None where a process cannot tell."""
    scored_from = measured.scored_from
    arrived = outcomes.arrival >= scored_from
    served = outcomes.served & arrived
    wait = outcomes.ttft - requests.prefill  # NaN where no first token came
    met = served & met_slo(wait, requests.prefill, sim.slo_ttft_s)
    n = int(arrived.sum())

    def percentile(values: np.ndarray, q: float) -> float | None:
        return float(np.percentile(values, q)) if values.size else None

    return {
        "requests": n,
        "served_requests": int(served.sum()),
        "in_flight_requests": 0,
        "slo_attainment": float(met.sum() / n) if n else 1.0,
        "ttft_p50_s": percentile(outcomes.ttft[served], 50),
        "ttft_p99_s": percentile(outcomes.ttft[served], 99),
        "latency_p99_s": percentile(outcomes.latency[served], 99),
        "cold_start_requests": None,
        "dropped_requests": int((arrived & ~served).sum()),
        "gpu_seconds": measured.gpu_seconds,
        "oracle_gpu_seconds": lower_bound_gpu_seconds(
            requests.arrival,
            requests.prefill,
            requests.service,
            met,
            slo_ttft_s=sim.slo_ttft_s,
            slots=sim.max_concurrency,
            shortest_cold_start=sim.cold_start_bounds[0],
            gpus_per_replica=sim.gpus_per_replica,
            scored_from=scored_from,
        ),
        "mean_ready_replicas": None,
        "scale_events": measured.scale_events,
        "replicas_started": measured.replicas_started,
        "warmup_s": scored_from,
        "duration_s": measured.wall_s * measured.speed,
        "sim_wall_s": measured.wall_s,
    }


if __name__ == "__main__":
    sys.exit(main())
