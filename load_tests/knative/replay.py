"""Replay a trace against a Knative Service on a real cluster and print what its requests got.

Open loop (requests leave at the trace's times, divided by --speed, whether or not earlier
ones have been answered — as users arrive), each an OpenAI-style streaming completion; TTFT is
the time to the first streamed byte. Meanwhile the revision's PodAutoscaler is read every second
for its ready replicas, so GPU-seconds are what the cluster really held. See README.md here for
the cluster this expects.

    python load_tests/knative/replay.py --url http://chat.default.127.0.0.1.sslip.io \\
        --trace ../shared/data/traces/AzureLLMInferenceTrace_code.csv --duration 10m \\
        --namespace default --revision chat-00001 --speed 1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from adapters.knative.names import PA_GROUP, PA_PLURAL, PA_VERSION  # noqa: E402
from adapters.simulator.sources import load_workload  # noqa: E402
from adapters.kubernetes.api import kubernetes_api  # noqa: E402
from autoscaler.durations import parse_duration  # noqa: E402


@dataclass
class Outcome:
    ttft_s: list[float] = field(default_factory=list)
    latency_s: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    replica_seconds: float = 0.0


async def one_request(session: aiohttp.ClientSession, url: str, host: str | None,
                      max_tokens: int, outcome: Outcome, timeout_s: float) -> None:
    body = {"model": "default", "prompt": "Write a function that", "max_tokens": max_tokens,
            "stream": True}
    headers = {"Host": host} if host else {}
    started = time.perf_counter()
    try:
        async with session.post(url + "/v1/completions", json=body, headers=headers,
                                timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
            if response.status != 200:
                outcome.errors[str(response.status)] = outcome.errors.get(str(response.status), 0) + 1
                return
            first = None
            async for _ in response.content.iter_any():
                if first is None:
                    first = time.perf_counter() - started
            outcome.ttft_s.append(first if first is not None else math.inf)
            outcome.latency_s.append(time.perf_counter() - started)
    except (aiohttp.ClientError, asyncio.TimeoutError) as error:
        name = error.__class__.__name__
        outcome.errors[name] = outcome.errors.get(name, 0) + 1


async def watch_replicas(args: argparse.Namespace, outcome: Outcome, stop: asyncio.Event) -> None:
    if not args.revision:
        return
    from kubernetes_asyncio import client

    api = await kubernetes_api(args.kubeconfig)
    custom = client.CustomObjectsApi(api)
    last = time.monotonic()
    try:
        while not stop.is_set():
            pa = await custom.get_namespaced_custom_object(
                PA_GROUP, PA_VERSION, args.namespace, PA_PLURAL, args.revision)
            now = time.monotonic()
            outcome.replica_seconds += (pa.get("status") or {}).get("actualScale", 0) * (now - last)
            last = now
            await asyncio.sleep(1.0)
    finally:
        await api.close()


async def replay(args: argparse.Namespace) -> Outcome:
    workload = load_workload(
        trace=args.trace, workload=None if args.trace else args.workload, seed=args.seed,
        offset=parse_duration(args.offset), duration=parse_duration(args.duration)
        if args.duration else None)
    outputs = (workload.output_tokens if workload.output_tokens is not None
               else np.full(workload.times.size, 128))
    outcome, stop = Outcome(), asyncio.Event()
    watcher = asyncio.create_task(watch_replicas(args, outcome, stop))
    timeout_s = parse_duration(args.timeout)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        start, tasks = time.monotonic(), []
        for at, tokens in zip(workload.times, outputs, strict=True):
            delay = start + float(at) / args.speed - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one_request(
                session, args.url.rstrip("/"), args.host, int(tokens), outcome, timeout_s)))
        await asyncio.gather(*tasks)
    stop.set()
    await watcher
    return outcome


def summary(outcome: Outcome, slo_s: float, gpus_per_replica: int) -> dict:
    ttft = np.array(outcome.ttft_s)
    sent = ttft.size + sum(outcome.errors.values())
    return {
        "requests": sent,
        "served": int(ttft.size),
        "slo_attainment": float((ttft <= slo_s).sum() / sent) if sent else math.nan,
        "ttft_p50_s": float(np.percentile(ttft, 50)) if ttft.size else math.nan,
        "ttft_p99_s": float(np.percentile(ttft, 99)) if ttft.size else math.nan,
        "gpu_seconds": outcome.replica_seconds * gpus_per_replica,
        "errors": outcome.errors,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the Service's URL (or the ingress)")
    parser.add_argument("--host", help="Host header, when --url is the ingress address")
    parser.add_argument("--trace", help="a trace file (see `leadtime trace-info`)")
    parser.add_argument("--workload", default="llm-bursty", help="or a built-in workload")
    parser.add_argument("--offset", default="0s")
    parser.add_argument("--duration", default="10m")
    parser.add_argument("--speed", type=float, default=1.0, help="trace seconds per second")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--slo-ttft", default="2s")
    parser.add_argument("--timeout", default="5m", help="per request")
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--revision", help="the revision's PA, for GPU-seconds")
    parser.add_argument("--kubeconfig", help="default: the in-cluster account")
    parser.add_argument("--gpus-per-replica", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = summary(asyncio.run(replay(args)), parse_duration(args.slo_ttft),
                     args.gpus_per_replica)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key:>16}  {value:.4g}" if isinstance(value, float) else f"{key:>16}  {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
