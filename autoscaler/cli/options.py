"""Flags shared by every command that replays a workload, and their translation to objects.

Every command that takes `--trace` takes the same window and scaling flags, so they are
declared once here. Values are validated where they are parsed, and a bad one is one clear
`InputError` naming the flag.
"""

from __future__ import annotations

import argparse

from adapters.simulator.config import SimConfig
from adapters.simulator.sources import load_workload
from adapters.simulator.synthetic import WORKLOADS
from adapters.simulator.workload import Workload
from autoscaler.durations import parse_duration
from autoscaler.errors import InputError

DEFAULT_WORKLOAD = "llm-bursty"


def add_workload_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("workload")
    group.add_argument(
        "--trace",
        metavar="FILE",
        help="request trace (Azure LLM CSV, Mooncake JSONL, interval-count CSV, "
        "per-second counts; gzip/bz2/tar read transparently)",
    )
    group.add_argument(
        "--workload",
        metavar="NAME",
        help=f"built-in synthetic workload when no --trace is given: "
        f"{', '.join(WORKLOADS)} (default {DEFAULT_WORKLOAD})",
    )
    group.add_argument(
        "--offset",
        default="0",
        metavar="D",
        help="start of the window, relative to the trace's first timestamp",
    )
    group.add_argument("--duration", metavar="D", help="length of the window (default: all)")
    group.add_argument(
        "--rate-scale",
        default="1",
        metavar="X",
        help="thin (<1) or replicate (>1) arrivals, seeded",
    )
    group.add_argument("--seed", type=int, default=0, help="seed for every random draw")


def add_sim_options(parser: argparse.ArgumentParser) -> None:
    defaults = SimConfig()
    group = parser.add_argument_group("simulated service")
    group.add_argument(
        "--cold-start",
        default=f"{defaults.cold_start_s:g}s",
        metavar="D",
        help="median replica cold start (default %(default)s)",
    )
    group.add_argument(
        "--slo-ttft",
        default=f"{defaults.slo_ttft_s:g}s",
        metavar="D",
        help="time-to-first-token SLO (default %(default)s)",
    )
    group.add_argument(
        "--max-concurrency",
        type=int,
        default=defaults.max_concurrency,
        metavar="N",
        help="request slots per replica (default %(default)s)",
    )
    group.add_argument(
        "--metrics-delay",
        default="0s",
        metavar="D",
        help="age of the newest metric a policy sees (default %(default)s)",
    )
    group.add_argument(
        "--timeout",
        default=f"{defaults.request_timeout_s:g}s",
        metavar="D",
        help="queue wait after which a request is dropped (default %(default)s)",
    )
    group.add_argument(
        "--gpus-per-replica", type=int, default=defaults.gpus_per_replica, metavar="N"
    )
    group.add_argument(
        "--gpu-pool",
        type=int,
        metavar="N",
        help="GPUs available without provisioning (default: unbounded)",
    )
    group.add_argument(
        "--node-provisioning",
        default="0s",
        metavar="D",
        help="delay for a new GPU node when the pool is full (default off)",
    )


def workload_from_args(args: argparse.Namespace) -> Workload:
    duration = parse_duration(args.duration, field="--duration") if args.duration else None
    if duration is not None and duration <= 0:
        raise InputError("--duration: must be longer than 0s")
    if args.trace and args.workload:
        raise InputError("give either --trace or --workload, not both")
    return load_workload(
        trace=args.trace,
        workload=None if args.trace else (args.workload or DEFAULT_WORKLOAD),
        seed=args.seed,
        offset=parse_duration(args.offset, field="--offset"),
        duration=duration,
        rate_scale=_positive_float(args.rate_scale, "--rate-scale"),
    )


def config_from_args(args: argparse.Namespace) -> SimConfig:
    return SimConfig(
        cold_start_s=parse_duration(args.cold_start, field="--cold-start"),
        slo_ttft_s=parse_duration(args.slo_ttft, field="--slo-ttft"),
        max_concurrency=args.max_concurrency,
        metrics_delay_s=parse_duration(args.metrics_delay, field="--metrics-delay"),
        request_timeout_s=parse_duration(args.timeout, field="--timeout"),
        gpus_per_replica=args.gpus_per_replica,
        gpu_pool=args.gpu_pool,
        node_provisioning_s=parse_duration(args.node_provisioning, field="--node-provisioning"),
        seed=args.seed,
    )


def _positive_float(text: str, flag: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise InputError(f"{flag}: expected a positive number, got {text!r}")
    return value
