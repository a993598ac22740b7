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
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from adapters.knative.names import PA_GROUP, PA_PLURAL, PA_VERSION
from adapters.kubernetes.api import kubernetes_api
from adapters.simulator.config import SimConfig
from adapters.simulator.requests import build_requests
from adapters.simulator.sources import load_workload
from autoscaler.durations import parse_duration
from load_tests.local.loadgen import Outcomes, replay


async def watch_replicas(args: argparse.Namespace, total: list[float], stop: asyncio.Event) -> None:
    if not args.revision:
        return
    from kubernetes_asyncio import client

    api = await kubernetes_api(args.kubeconfig)
    custom = client.CustomObjectsApi(api)
    last = time.monotonic()
    try:
        while not stop.is_set():
            pa = await custom.get_namespaced_custom_object(
                PA_GROUP, PA_VERSION, args.namespace, PA_PLURAL, args.revision
            )
            now = time.monotonic()
            total[0] += (pa.get("status") or {}).get("actualScale", 0) * (now - last)
            last = now
            await asyncio.sleep(1.0)
    finally:
        await api.close()


async def run(args: argparse.Namespace) -> tuple[Outcomes, float]:
    """Replay the workload while the PA's ready replicas are read; (outcomes, replica-seconds)."""
    workload = load_workload(
        trace=args.trace,
        workload=None if args.trace else args.workload,
        seed=args.seed,
        offset=parse_duration(args.offset),
        duration=parse_duration(args.duration) if args.duration else None,
    )
    requests = build_requests(workload, SimConfig(seed=args.seed))
    replica_seconds, stop = [0.0], asyncio.Event()
    watcher = asyncio.create_task(watch_replicas(args, replica_seconds, stop))
    outcomes = await replay(
        args.url,
        requests.arrival,
        requests.prompt_tokens,
        requests.output_tokens,
        speed=args.speed,
        host=args.host,
        timeout_s=parse_duration(args.timeout),
    )
    stop.set()
    await watcher
    return outcomes, replica_seconds[0]


def summary(
    outcomes: Outcomes, replica_seconds: float, slo_s: float, gpus_per_replica: int
) -> dict:
    served = outcomes.served
    ttft = outcomes.ttft[served]
    errors: dict[str, int] = {}
    for status in outcomes.status[~served]:
        name = "connection" if status == 0 else str(int(status))
        errors[name] = errors.get(name, 0) + 1
    sent = int(outcomes.arrival.size)
    return {
        "requests": sent,
        "served": int(served.sum()),
        "slo_attainment": float((ttft <= slo_s).sum() / sent) if sent else math.nan,
        "ttft_p50_s": float(np.percentile(ttft, 50)) if ttft.size else math.nan,
        "ttft_p99_s": float(np.percentile(ttft, 99)) if ttft.size else math.nan,
        "gpu_seconds": replica_seconds * gpus_per_replica,
        "errors": errors,
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
    outcomes, replica_seconds = asyncio.run(run(args))
    result = summary(
        outcomes, replica_seconds, parse_duration(args.slo_ttft), args.gpus_per_replica
    )
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key:>16}  {value:.4g}" if isinstance(value, float) else f"{key:>16}  {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
