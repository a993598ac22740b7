"""The load-test harness's parts on real processes and sockets: the fake model server, the
activator-like balancer over real replica processes, and `leadtime loadtest` end to end with a
real Prometheus, giving the same result keys as `leadtime simulate`."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import numpy as np
import pytest
from aiohttp import web

from adapters.local.balancer import Balancer
from adapters.local.loadgen import replay
from adapters.local.model_server import ModelServer
from adapters.local.replicas import ReplicaManager, free_port


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
    finally:
        await runner.cleanup()
        await replicas.stop()
    assert all(r.process.poll() is not None for r in replicas.replicas) and not replicas.replicas


@pytest.mark.prometheus
@pytest.mark.slow
def test_leadtime_loadtest_runs_the_whole_loop_and_reports_like_simulate():
    common = ["--workload", "llm-bursty", "--duration", "40s", "--cold-start", "10s", "--json"]
    loadtest = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "autoscaler",
            "loadtest",
            *common,
            "--speed",
            "4",
            "--policy",
            "kpa",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    started = _watch_descendants(loadtest, limit_s=300)
    stdout, stderr = loadtest.communicate(timeout=30)
    assert loadtest.returncode == 0, stderr[-2000:]
    measured = json.loads(stdout)
    simulated = json.loads(
        subprocess.run(
            [sys.executable, "-m", "autoscaler", "simulate", *common, "--policy", "kpa"],
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
            "autoscaler",
            "loadtest",
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
