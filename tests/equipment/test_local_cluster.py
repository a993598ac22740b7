"""The load-test harness's parts on real processes and sockets: the fake model server, the
activator-like balancer over real replica processes, the policy's view in trace time over a real
Prometheus, the harness's scoring against the simulator's, and `python -m load_tests.loadtest` end
to end with a real Prometheus, giving the same result keys as `leadtime simulate`."""

from __future__ import annotations

import asyncio
import json
import math
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import numpy as np
import pytest
from aiohttp import web

from adapters.prometheus.client import PrometheusClient
from adapters.simulator.config import SimConfig
from adapters.simulator.engine import running_replicas, simulate
from adapters.simulator.requests import Requests, build_requests
from adapters.simulator.synthetic import generate
from autoscaler.clock import VirtualClock
from autoscaler.forecast_workers import to_loop
from autoscaler.policies.catalog import PolicyContext, make_policy
from autoscaler.policy import Observation
from autoscaler.ports import ReplicaStatus
from load_tests.loadtest import Measured, _summary, drive_policy, first_replicas
from load_tests.local.balancer import Balancer
from load_tests.local.cluster import SERVICE
from load_tests.local.loadgen import Outcomes, replay
from load_tests.local.model_server import ModelServer
from load_tests.local.prometheus_server import PrometheusNotAvailable, PrometheusProcess
from load_tests.local.replicas import ReplicaManager, free_port
from load_tests.local.trace_source import (
    TraceTimeSource,
    forward_filled,
    on_trace_grid,
    scrape_interval,
)
from tests.helpers.prometheus import serve_exporter

CHECKOUT = Path(__file__).resolve().parents[2]


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"


async def test_the_model_server_loads_then_serves_with_slots_and_vllm_metrics(aiohttp_client):
    server = ModelServer(
        slots=2, cold_start_s=0.3, prefill_s_per_token=0.001, decode_s_per_token=0.02
    )
    client = await aiohttp_client(server.app())
    assert (await client.get("/health")).status == 503  # still loading the model
    assert (await client.post("/v1/completions", json={"max_tokens": 3})).status == 503
    await asyncio.sleep(0.35)
    assert (await client.get("/health")).status == 200

    async def complete() -> float:
        loop = asyncio.get_running_loop()
        started = loop.time()
        answer = await client.post("/v1/completions", json={"prompt_tokens": 100, "max_tokens": 5})
        body = await answer.read()
        assert body.count(b"data: ") == 6  # five tokens and [DONE]
        return loop.time() - started

    durations = sorted(await asyncio.gather(*(complete() for _ in range(3))))
    # 0.1 s prefill + 4 × 20 ms decode each; the third waits for one of the two slots.
    assert durations[0] >= 0.17 and durations[2] >= 0.34  # lower bounds only: no timing bet
    metrics = await (await client.get("/metrics")).text()
    for name in (
        "vllm:num_requests_running 0",
        "vllm:num_requests_waiting 0",
        "vllm:request_success_total 3",
        "vllm:generation_tokens_total 15",
        "vllm:prompt_tokens_total 300",
        "vllm:gpu_cache_usage_perc 0.0",
    ):
        assert name in metrics


async def test_the_balancer_holds_requests_until_a_replica_is_ready_then_spreads_them():
    replicas = ReplicaManager(cold_start_s=0.8, slots=4)
    await replicas.start()
    runner, url = await serve(Balancer(replicas).app())
    try:
        outcome_task = asyncio.create_task(replay(url, np.zeros(6), np.full(6, 10), np.full(6, 2)))
        await asyncio.sleep(0.2)  # requests arrive at zero replicas: they wait, like the activator
        await replicas.scale(2)
        outcomes = await asyncio.wait_for(outcome_task, 30)
        assert outcomes.served.all()
        assert outcomes.ttft.min() >= 0.8  # nobody served before a model finished loading
        assert len(replicas.cold_starts) == 2 and min(replicas.cold_starts) >= 0.8
        async with aiohttp.ClientSession() as session:
            metrics = await (await session.get(url + "/metrics")).text()
        assert 'lb_requests_total{namespace="local",service="model"} 6' in metrics
        assert 'lb_queued{namespace="local",service="model"} 0' in metrics
        # the queue as a time integral too: every request waited for the cold start, and
        # a per-second average of the queue is its rate (what the simulator's policies see)
        assert 6 * 0.5 <= _metric(metrics, "lb_queued_seconds_total") <= outcomes.ttft.sum()
    finally:
        await runner.cleanup()
        await replicas.stop()
    assert all(r.process.poll() is not None for r in replicas.replicas) and not replicas.replicas


def _metric(text: str, name: str) -> float:
    """The value of one unlabelled-by-us series in a Prometheus exposition."""
    for line in text.splitlines():
        if line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not exported:\n{text}")


async def test_cold_starts_are_reported_in_trace_seconds():
    """At 10x a 5 s cold start loads in 0.5 wall seconds; the policy must see 5 s, not 0.5."""
    replicas = ReplicaManager(cold_start_s=5.0, time_scale=10.0, slots=2)
    await replicas.start()
    try:
        await replicas.scale(1)
        while not replicas.ready:
            await asyncio.sleep(0.05)
        assert replicas.cold_starts[0] >= 5.0
    finally:
        await replicas.stop()


def test_a_forecast_that_lands_after_the_run_is_dropped():
    """A fit still running when the run ends calls back from the executor's thread after the
    event loop has closed: dropped, not `RuntimeError: Event loop is closed`."""
    seen: list[int] = []
    aio = asyncio.new_event_loop()
    deliver = to_loop(aio, seen.append)
    deliver(1)
    aio.run_until_complete(asyncio.sleep(0))
    aio.close()
    deliver(2)
    assert seen == [1]


def test_range_answers_become_one_sample_per_trace_second():
    # at 10x, trace seconds end every 0.1 wall s; the answer skipped the third one
    grid = on_trace_grid(np.array([100.0, 100.1, 100.3]), np.array([1.0, 2.0, 4.0]), 100.0, 10, 4)
    assert np.array_equal(grid, [1.0, 2.0, np.nan, 4.0], equal_nan=True)
    assert np.array_equal(forward_filled(grid), [1.0, 2.0, 2.0, 4.0])
    assert np.array_equal(forward_filled(np.array([np.nan, 3.0])), [3.0, 3.0])
    assert forward_filled(np.full(3, np.nan)) is None


RATE, CONCURRENCY, QUEUED = 4.0, 6.0, 0.05
"""The test exporter's arrivals per trace second, requests in flight, and requests waiting on
average: a request waits 5 % of the time, though one is caught waiting at every scrape (the
instantaneous gauge reads 1) — the few wall milliseconds between a request's arrival and its
dispatch, which a scrape per trace second catches ten times as often at 10x."""


@dataclass
class BalancerMetrics:
    """The balancer's metrics as a replay at `speed` would export them: `RATE` requests per
    trace second (RATE x speed per wall second) and `CONCURRENCY` in flight throughout."""

    speed: float
    started: float = field(default_factory=time.time)

    def text(self) -> str:
        wall = time.time() - self.started
        labels = 'namespace="local",service="model"'
        return (
            f"lb_requests_total{{{labels}}} {RATE * self.speed * wall}\n"
            f"lb_in_flight_seconds_total{{{labels}}} {CONCURRENCY * wall}\n"
            f"lb_queued{{{labels}}} 1\n"
            f"lb_queued_seconds_total{{{labels}}} {QUEUED * wall}\n"
        )


class _Recording:
    """A policy that records every observation it decides on, and otherwise is `inner`."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.seen: list[Observation] = []
        self.tick_s, self.history_s = inner.tick_s, inner.history_s

    def initial_state(self, now: float, ready: int):
        return self.inner.initial_state(now, ready)

    def decide(self, observation: Observation, state):
        self.seen.append(observation)
        return self.inner.decide(observation, state)


class _OneReplica:
    async def status(self, keys):
        return {SERVICE: ReplicaStatus(1, 0, 1, 20.0)}

    async def apply(self, decisions):
        return {}


@pytest.mark.prometheus
@pytest.mark.slow
@pytest.mark.parametrize(("speed", "span_s"), [(1.0, 10.0), (10.0, 70.0)])
async def test_at_any_speed_the_policy_sees_one_sample_per_trace_second(speed, span_s):
    """The KPA's 60 s stable window spans 60 trace seconds at 10x, as at 1x: at trace time t
    its observation holds min(60, floor(t)) samples, one per trace second (per wall second,
    it would hold a tenth of them and its window would last 600 trace seconds), and the rates
    in it are per trace second. Concurrency and queue are each second's averages, as the
    simulator's are: an instantaneous queue of 1 at every scrape made Leadtime learn 2 of 8
    slots per replica (queued seconds read as saturated ones) and cost 4x the GPU-seconds."""
    server, port = serve_exporter(BalancerMetrics(speed))
    try:
        prometheus = PrometheusProcess(
            [f"127.0.0.1:{port}"], static_scrape_interval=scrape_interval(speed)
        )
        await asyncio.to_thread(prometheus.start)
    except PrometheusNotAvailable as error:
        server.shutdown()
        pytest.fail(str(error))
    client = PrometheusClient(prometheus.url, timeout_s=2.0)
    try:
        while not await client.query("lb_requests_total"):  # scraped at least once
            await asyncio.sleep(0.1)
        await asyncio.sleep(12.0 / speed)  # a rate window of history before second 0
        source = TraceTimeSource(client, speed=speed, second_zero=time.time())
        clock = VirtualClock(speed)
        kpa = make_policy("kpa", PolicyContext(container_concurrency=8))
        assert kpa.history_s == 60
        policy, stop = _Recording(kpa), asyncio.Event()
        driver = asyncio.create_task(drive_policy(policy, source, _OneReplica(), clock, stop))
        await clock.sleep_until(span_s)
        stop.set()
        await driver
    finally:
        await client.close()
        prometheus.remove()
        server.shutdown()
    assert policy.seen
    for observation in policy.seen:
        assert observation.concurrency.size == min(60, math.floor(observation.now))
    last = policy.seen[-1]
    assert last.now >= span_s - 2 * kpa.tick_s
    assert np.allclose(last.arrivals[-5:], RATE, rtol=0.2)
    assert np.allclose(last.concurrency[-5:], CONCURRENCY, rtol=0.2)
    assert np.allclose(last.queue[-5:], QUEUED, rtol=0.2)


def test_the_harness_scores_the_warm_up_as_the_simulator_does():
    """The same requests served at the same times score the same on both sides: requests that
    arrive before the warm-up's end are not counted, each is judged by its wait, and the
    oracle bound starts at the warm-up's end."""
    config = SimConfig(cold_start_s=20.0, warmup_s=20.0)
    workload = generate("llm-bursty", seed=0, duration=120.0)
    requests = build_requests(workload, config)
    policy = make_policy("static:1", PolicyContext(container_concurrency=config.max_concurrency))
    result = simulate(workload, policy, config)
    outcomes = result.outcomes
    started = outcomes["start"] >= 0
    measured = Outcomes(
        requests.arrival,
        np.where(started, outcomes["ttft"], np.nan),
        np.where(outcomes["end"] >= 0, outcomes["latency"], np.nan),
        np.where(started & ~outcomes["dropped"], 200, 0),
    )
    summary = _summary(
        measured,
        requests,
        config,
        Measured(
            scored_from=20.0,
            gpu_seconds=0.0,
            scale_events=0,
            replicas_started=0,
            wall_s=120.0,
            speed=1.0,
        ),
    )
    simulated = result.summary
    assert simulated["warmup_s"] == summary["warmup_s"] == 20.0
    assert 0 < summary["requests"] < requests.arrival.size  # the warm-up's requests are out
    assert summary["requests"] == simulated["requests"]
    assert summary["served_requests"] == simulated["served_requests"]
    assert 0 < simulated["slo_attainment"] < 1  # some miss: the rule is exercised
    assert summary["slo_attainment"] == pytest.approx(simulated["slo_attainment"])
    assert summary["oracle_gpu_seconds"] == pytest.approx(simulated["oracle_gpu_seconds"])
    assert summary["ttft_p99_s"] == pytest.approx(simulated["ttft_p99_s"])


def test_a_long_prompt_is_judged_on_its_wait_and_the_warm_up_is_not_scored():
    config = SimConfig(slo_ttft_s=2.0)
    prefill = np.array([0.5, 3.0, 3.0, 0.5])
    # arrived during the warm-up (missed badly), a long prompt that waited 0.9 s (TTFT 3.9 s:
    # meets, its budget is SLO/2), one that waited 1.2 s (misses), a short one that waited 1 s
    requests = Requests(
        np.array([1.0, 12.0, 13.0, 14.0]),
        np.ones(4, dtype=np.int64),
        np.ones(4, dtype=np.int64),
        prefill,
        prefill + 1.0,
    )
    wait = np.array([30.0, 0.9, 1.2, 1.0])
    outcomes = Outcomes(requests.arrival, wait + prefill, wait + prefill + 1.0, np.full(4, 200))
    measured = Measured(10.0, 100.0, 1, 1, 60.0, 1.0)
    summary = _summary(outcomes, requests, config, measured)
    assert summary["requests"] == 3
    assert summary["slo_attainment"] == pytest.approx(2 / 3)


def test_a_warm_run_starts_with_the_replicas_its_first_minute_keeps_busy():
    config = SimConfig()
    workload = generate("web-diurnal", seed=0, duration=600.0)
    requests = build_requests(workload, config)
    running = running_replicas(requests, config.max_concurrency)
    assert running > 1
    assert first_replicas(1, requests, config, scored_from=0.0) == 1  # --warmup 0: cold
    assert first_replicas(1, requests, config, scored_from=60.0) == running
    assert first_replicas(50, requests, config, scored_from=60.0) == 50


@pytest.mark.prometheus
@pytest.mark.slow
def test_leadtime_loadtest_runs_the_whole_loop_and_reports_like_simulate():
    common = ["--workload", "llm-bursty", "--duration", "40s", "--cold-start", "10s", "--json"]
    common += ["--warmup", "0"]  # a cold start: the first replica counts as started
    loadtest = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "load_tests.loadtest",
            *common,
            "--speed",
            "4",
            "--policy",
            "kpa",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=CHECKOUT,  # python -m load_tests.loadtest runs from a checkout
        text=True,
    )
    started = _watch_descendants(loadtest, limit_s=300)
    stdout, stderr = loadtest.communicate(timeout=30)
    assert loadtest.returncode == 0, stderr[-2000:]
    measured = json.loads(stdout)
    simulated = json.loads(
        subprocess.run(
            [sys.executable, "-m", "leadtime", "simulate", *common, "--policy", "kpa"],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
    )
    if isinstance(simulated, list):
        simulated = simulated[0]
    assert set(simulated) <= set(measured) | {
        "cluster_gpu_seconds",
        "placeholder_gpu_seconds",
        "placeholder_preemptions",
        "nodes_added",
    }
    assert measured["requests"] == simulated["requests"] > 0
    assert measured["served_requests"] == measured["requests"]
    assert 0 < measured["gpu_seconds"] and measured["replicas_started"] >= 1
    assert measured["warmup_s"] == simulated["warmup_s"] == 0
    assert len(started) >= 3  # Prometheus, the generator, replicas
    assert not [pid for pid in started if _alive(pid)]  # every process it started is stopped


def _descendants(pid: int) -> set[int]:
    """Every process below `pid` (children of children included), from /proc."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found: set[int] = set()
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        children = {child for child, ppid in parents.items() if ppid == parent} - found
        frontier.extend(children)
        found |= children
    return found


def _watch_descendants(run: subprocess.Popen, limit_s: float) -> set[int]:
    """Every process `run` started while it ran (sampled every 0.2 s), once it has exited.
    Other load tests on the machine (someone's fidelity run) are not counted."""
    seen: set[int] = set()
    deadline = time.monotonic() + limit_s
    while run.poll() is None and time.monotonic() < deadline:
        seen |= _descendants(run.pid)
        time.sleep(0.2)
    if run.poll() is None:
        run.kill()
    return seen


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.prometheus
@pytest.mark.slow
def test_sigterm_stops_loadtest_and_every_process_it_started():
    """A load test stopped from outside (a CI timeout, `kill`) must not leave model servers,
    the generator or Prometheus running."""
    run = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "load_tests.loadtest",
            "--workload",
            "llm-bursty",
            "--duration",
            "5m",
            "--cold-start",
            "2s",
            "--policy",
            "static:3",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=CHECKOUT,  # python -m load_tests.loadtest runs from a checkout
        text=True,
    )
    try:
        deadline, started = time.monotonic() + 60, set()
        while time.monotonic() < deadline and len(started) < 5:  # 3 replicas, Prometheus, generator
            time.sleep(0.2)
            started = _descendants(run.pid)
        assert len(started) >= 5, f"only {len(started)} processes started"
        run.send_signal(signal.SIGTERM)
        _, stderr = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    assert "stopped by SIGTERM" in stderr
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(map(_alive, started)):
        time.sleep(0.1)
    assert not [pid for pid in started if _alive(pid)]
