"""`leadtime loadtest`: the whole loop on real processes — open-loop generator → balancer →
model-server replicas ← a real Prometheus (scraping every second) ← the policy → the local
actuator — and the same results as `leadtime simulate`, to check the simulator against.

`leadtime` runs as the service runs (the control loop with forecasting workers); `kpa` and
`hpa` are the same pure policies the simulator drives, driven here by a plain tick over the
Prometheus source. `--speed X` replays X× faster: arrivals, prefill, decode and cold starts
are all divided by X and measured durations multiplied back, so concurrency (rate × time) is
unchanged; the policies' own windows and tick are not scaled, so at X > 1 they act like X×
longer windows. Everything listens on loopback and every process is stopped at the end.
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
from collections.abc import Awaitable, Mapping
from typing import Any, TypeVar

import numpy as np
from aiohttp import web

from adapters.local.balancer import Balancer
from adapters.local.cluster import SERVICE, LocalCluster
from adapters.local.loadgen import Outcomes, replay_in_process
from adapters.local.prometheus_server import PrometheusProcess
from adapters.local.replicas import ReplicaManager, free_port
from adapters.prometheus.client import PrometheusClient
from adapters.prometheus.signals import SignalSet
from adapters.prometheus.source import PrometheusSource
from adapters.simulator.config import SimConfig
from adapters.simulator.oracle import lower_bound_gpu_seconds
from adapters.simulator.requests import build_requests
from adapters.simulator.sources import load_workload
from autoscaler.cli.run_live import shell_settings
from autoscaler.cli.table import render_results
from autoscaler.clock import WallClock
from autoscaler.config import config_from_mapping
from autoscaler.durations import parse_duration
from autoscaler.errors import InputError
from autoscaler.forecast_pool import ForecastPool
from autoscaler.loop import ControlLoop
from autoscaler.policies import PolicyContext, make_policy
from autoscaler.policy import Observation
from autoscaler.ports import MetricsChunk, NoData, ServiceKey

BALANCER_SIGNALS = SignalSet(
    name="local",
    arrivals="sum by (namespace, service) (rate(lb_requests_total[{window}]))",
    # The last second's time-averaged concurrency (scrapes are 1 s apart), as Knative's
    # queue-proxy reports it and the simulator's policies see it.
    concurrency="sum by (namespace, service) (irate(lb_in_flight_seconds_total[5s]))",
    queue="sum by (namespace, service) (lb_queued)",
    namespace_label="namespace",
    service_label="service",
)
T = TypeVar("T")
TICK_S = 2.0
LAUNCH_S = 3.0
"""Seconds to start the generator's Python process before the workload begins."""


def add_loadtest_command(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("loadtest", help="the loop on real local processes")
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
    parser.add_argument("--slo-ttft", default="2s")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(handler=run_loadtest)


def run_loadtest(args: argparse.Namespace) -> int:
    if args.policy not in ("leadtime", "kpa", "hpa") and not args.policy.startswith("static:"):
        raise InputError(f"--policy: expected leadtime, kpa, hpa or static:N, got {args.policy!r}")
    if not 0 < args.speed <= 100:
        raise InputError(f"--speed: expected a number in (0, 100], got {args.speed!r}")
    try:
        result = asyncio.run(_stoppable(loadtest(args)))
    except asyncio.CancelledError:
        print(
            "leadtime loadtest: stopped by SIGTERM; every process it started is stopped",
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
    )
    requests = build_requests(workload, sim)
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
    prometheus = PrometheusProcess([f"127.0.0.1:{port}"])
    client = None
    try:
        await asyncio.to_thread(prometheus.start)
        cluster = LocalCluster(replicas, prometheus)
        context = PolicyContext(container_concurrency=sim.max_concurrency)
        await _warm(cluster, make_policy(args.policy, context).initial_replicas())
        client = PrometheusClient(prometheus.url, timeout_s=2.0)
        source = PrometheusSource(client, BALANCER_SIGNALS, rate_window_s=10.0, stale_after_s=30.0)
        stop = asyncio.Event()
        # The workload's second 0 a little ahead, so the generator's process is up by then and
        # the policy ticks at the workload's seconds 0, 2, 4, … as in the simulator.
        start_at = time.time() + LAUNCH_S
        driver = asyncio.create_task(_drive(args.policy, source, cluster, sim, stop, start_at))
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
            await asyncio.sleep(start_at - time.time())
            replicas.account()
            replicas.replica_seconds = 0.0
            started = time.monotonic()
            outcomes = await replay
        # The simulator's run lasts the workload's whole duration even when the last request
        # ends sooner; the replicas are billed (and the policy ticks) until then here too.
        await asyncio.sleep(max(0.0, workload.duration / args.speed - (time.monotonic() - started)))
        wall = time.monotonic() - started
        replicas.account()
        stop.set()
        await driver
        summary = _summary(outcomes, requests, sim, replicas, cluster, wall, args.speed)
    finally:
        if client is not None:
            await client.close()
        await runner.cleanup()
        await replicas.stop()
        prometheus.remove()
    return {"trace": workload.source or workload.name, "policy": args.policy, "summary": summary}


async def _warm(cluster: LocalCluster, replicas: int) -> None:
    """The policy's initial replicas ready before the first request, as the simulator starts."""
    await cluster.apply({SERVICE: replicas})
    while len(cluster.replicas.ready) < replicas:
        await asyncio.sleep(0.05)
    cluster.scale_events = 0


async def _drive(
    policy: str,
    source: PrometheusSource,
    cluster: LocalCluster,
    sim: SimConfig,
    stop: asyncio.Event,
    start_at: float,
) -> None:
    # First tick at the workload's second 0; the warm replicas hold until then.
    await asyncio.sleep(max(0.0, start_at - time.time()))
    if policy == "leadtime":
        await _drive_loop(_SinceSecondZero(source, start_at), cluster, sim, stop)
    else:
        await _drive_policy(policy, source, cluster, sim, stop)


class _SinceSecondZero:
    """The Prometheus source with no history before the workload's second 0. The harness's
    balancer counts from its start, some seconds before the workload, and the loop's warm
    start would read those idle seconds as history the simulator's run never had (its first
    fit would come that much earlier)."""

    def __init__(self, source: PrometheusSource, start_at: float) -> None:
        self.source, self.start_at = source, start_at

    async def snapshot(self, now: float) -> Mapping[ServiceKey, MetricsChunk | NoData]:
        return await self.source.snapshot(now)

    async def history(self, key: ServiceKey, start: float, end: float) -> np.ndarray:
        start = max(start, math.floor(self.start_at))
        return await self.source.history(key, start, end) if start < end else np.zeros(0)


async def _drive_loop(
    source: _SinceSecondZero, cluster: LocalCluster, sim: SimConfig, stop: asyncio.Event
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
    aio = asyncio.get_running_loop()
    box: list[ControlLoop] = []
    pool = ForecastPool(
        shell_settings(config),
        config.forecasting.workers,
        lambda result: aio.call_soon_threadsafe(box[0].forecast_arrived, result),
    )
    loop = ControlLoop(
        config,
        source=source,
        actuator=cluster,
        catalog=cluster,
        clock=WallClock(),
        forecasts=pool,
        warmup_s=0.0,
    )
    box.append(loop)
    running = asyncio.create_task(loop.run())
    await stop.wait()
    loop.stop()
    await running
    pool.close()


async def _drive_policy(
    name: str, source: PrometheusSource, cluster: LocalCluster, sim: SimConfig, stop: asyncio.Event
) -> None:
    """A baseline policy decides on its own tick (the KPA's 2 s, the HPA's 15 s sync period)
    over the per-second series the simulator would give it. The source is read every
    `TICK_S` whatever the policy's tick: it repeats each sample over the seconds since the
    last read, so reading it only every 15 s would show the HPA the last few seconds' value
    across its whole window."""
    policy = make_policy(name, PolicyContext(container_concurrency=sim.max_concurrency))
    keep = int(math.ceil(policy.history_s)) or 1
    series: list[np.ndarray] = [np.zeros(0), np.zeros(0), np.zeros(0)]
    state, poked = None, False
    next_sample = next_decision = time.time()
    while not stop.is_set():
        now = time.time()
        item = (await source.snapshot(now)).get(SERVICE)
        fresh = isinstance(item, MetricsChunk)
        if isinstance(item, MetricsChunk):
            new = (item.concurrency, item.arrivals, item.queue)
            series = [
                np.concatenate([old, add])[-keep:] for old, add in zip(series, new, strict=True)
            ]
            poked = poked or item.poke
        # Without a fresh read the policy holds, as the loop does on NoData.
        if now >= next_decision - 0.5 * TICK_S and fresh:
            state, poked = await _decide(policy, state, series, poked, cluster, now), False
            next_decision += policy.tick_s
        next_sample = max(next_sample + TICK_S, time.time())  # fixed rates, as the loop ticks
        try:
            await asyncio.wait_for(stop.wait(), next_sample - time.time())
        except TimeoutError:
            pass


async def _decide(
    policy, state, series: list[np.ndarray], poke: bool, cluster: LocalCluster, now: float
):
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


def _summary(
    outcomes: Outcomes,
    requests,
    sim: SimConfig,
    replicas: ReplicaManager,
    cluster: LocalCluster,
    wall_s: float,
    speed: float,
) -> dict[str, Any]:
    """The keys of `leadtime simulate --json`, measured; None where a process cannot tell."""
    served = outcomes.served
    met_slo = served & (outcomes.ttft <= sim.slo_ttft_s)
    n = int(outcomes.arrival.size)
    gpu_seconds = replicas.replica_seconds * speed * sim.gpus_per_replica

    def percentile(values: np.ndarray, q: float) -> float | None:
        return float(np.percentile(values, q)) if values.size else None

    return {
        "requests": n,
        "served_requests": int(served.sum()),
        "in_flight_requests": 0,
        "slo_attainment": float(met_slo.sum() / n) if n else 1.0,
        "ttft_p50_s": percentile(outcomes.ttft[served], 50),
        "ttft_p99_s": percentile(outcomes.ttft[served], 99),
        "latency_p99_s": percentile(outcomes.latency[served], 99),
        "cold_start_requests": None,
        "dropped_requests": int((~served).sum()),
        "gpu_seconds": gpu_seconds,
        "oracle_gpu_seconds": lower_bound_gpu_seconds(
            requests.arrival,
            requests.prefill,
            requests.service,
            met_slo,
            slo_ttft_s=sim.slo_ttft_s,
            slots=sim.max_concurrency,
            shortest_cold_start=sim.cold_start_bounds[0],
            gpus_per_replica=sim.gpus_per_replica,
        ),
        "mean_ready_replicas": None,
        "scale_events": cluster.scale_events,
        "replicas_started": len(replicas.cold_starts),
        "duration_s": wall_s * speed,
        "sim_wall_s": wall_s,
    }
