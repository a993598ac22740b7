"""How fast the simulator replays requests: simulated requests per second of wall time.

Replays a busy day (the built-in `web-diurnal` workload scaled to ~20 requests/s, about 1.7 M
requests) under each baseline policy in one process, one after the other, and prints requests
per wall-clock second for each, so machine noise shows as the spread between rows of one run.

    python load_tests/bench_simulator.py [--rate-scale 3.3] [--duration 1d] [--policies ...]
"""

from __future__ import annotations

import argparse
import time

from adapters.simulator.config import SimConfig
from adapters.simulator.engine import simulate
from adapters.simulator.oracle import policy_context
from adapters.simulator.sources import load_workload
from autoscaler.durations import parse_duration
from autoscaler.policies.catalog import make_policy, parse_policy_list


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", default="web-diurnal")
    parser.add_argument("--duration", default="1d")
    parser.add_argument("--rate-scale", type=float, default=3.3)
    parser.add_argument("--policies", default="static:40,kpa,hpa,oracle")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.perf_counter()
    workload = load_workload(
        trace=None,
        workload=args.workload,
        seed=args.seed,
        duration=parse_duration(args.duration),
        rate_scale=args.rate_scale,
    )
    config = SimConfig(seed=args.seed)
    print(
        f"workload {args.workload}: {len(workload):,} requests over "
        f"{workload.duration / 3600:.1f} h ({len(workload) / workload.duration:.1f}/s), "
        f"generated in {time.perf_counter() - started:.1f}s"
    )
    context = policy_context(workload, config)
    print(f"{'policy':<10} {'wall s':>8} {'requests/s':>12} {'SLO met':>8} {'GPU-s':>12}")
    for spec in parse_policy_list(args.policies):
        policy = make_policy(spec, context)
        result = simulate(workload, policy, config)
        wall = result.summary["sim_wall_s"]
        print(
            f"{policy.name:<10} {wall:>8.2f} {len(workload) / wall:>12,.0f} "
            f"{result.summary['slo_attainment']:>8.2%} {result.summary['gpu_seconds']:>12,.0f}"
        )


if __name__ == "__main__":
    main()
