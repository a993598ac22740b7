"""Flags shared by every command that replays a workload, and their translation to objects.

Every command that takes `--trace` takes the same window and scaling flags, so they are
declared once here. Values are validated where they are parsed, and a bad one is one clear
`InputError` naming the flag.

`simulate` and `bench` run several services at once when `--trace` (or `--workload`) is given
several times; `--offset`, `--duration` and `--rate-scale` then take either one value for every
service or one per service, in the order of the traces. Service i draws with seed `--seed` + i,
so three `--workload llm-bursty` are three different services.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from adapters.simulator.config import SimConfig
from adapters.simulator.sources import load_rate_series, load_workload
from adapters.simulator.synthetic import WORKLOADS
from adapters.simulator.workload import Workload
from autoscaler import slo
from autoscaler.durations import parse_duration
from autoscaler.errors import InputError

DEFAULT_WORKLOAD = "llm-bursty"


def add_workload_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("workload")
    group.add_argument(
        "--trace",
        action="append",
        metavar="FILE",
        help="request trace (Azure LLM CSV, Mooncake JSONL, interval-count CSV, "
        "per-second counts; gzip/bz2/tar read transparently); several: one service each",
    )
    group.add_argument(
        "--workload",
        action="append",
        metavar="NAME",
        help=f"built-in synthetic workload when no --trace is given: "
        f"{', '.join(WORKLOADS)} (default {DEFAULT_WORKLOAD})",
    )
    group.add_argument(
        "--offset",
        action="append",
        metavar="D",
        help="start of the window, relative to the trace's first timestamp (default 0)",
    )
    group.add_argument(
        "--duration", action="append", metavar="D", help="length of the window (default: all)"
    )
    group.add_argument(
        "--rate-scale",
        action="append",
        metavar="X",
        help="thin (<1) or replicate (>1) arrivals, seeded (default 1)",
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
        help=f"time-to-first-token SLO (default %(default)s); {slo.RULE}",
    )
    group.add_argument(
        "--warmup",
        metavar="D",
        help="start of each window that every policy runs through and is not scored: the "
        "service is running, its forecasters take it as history (default: 10%% of the "
        "window, at most 1h; 0: a cold start, scored from the first request)",
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
        "--gpus-per-node",
        type=int,
        default=defaults.gpus_per_node,
        metavar="N",
        help="GPUs a new node brings (default %(default)s)",
    )
    group.add_argument(
        "--node-provisioning",
        default=f"{defaults.node_provisioning_s:g}s",
        metavar="D",
        help="with --gpu-pool: delay for a new GPU node when none is free, 0 = never "
        "(default %(default)s)",
    )


def workloads_from_args(args: argparse.Namespace) -> list[Workload]:
    """One workload per `--trace` (or `--workload`), each with its window and rate scale."""
    return [load_workload(**source) for source in sources_from_args(args)]


def workload_from_args(args: argparse.Namespace) -> Workload:
    """The one workload of a command that studies a single trace (trace-info)."""
    return load_workload(**_one_source(args))


def rate_series_from_args(args: argparse.Namespace, step_s: float) -> tuple[str, np.ndarray]:
    """The one trace or workload of `backtest` as requests per second in steps of `step_s`,
    with its label; a count trace is binned from its counts, never drawn as arrivals."""
    return load_rate_series(step_s, **_one_source(args))


def _one_source(args: argparse.Namespace) -> dict[str, Any]:
    if len(args.trace or []) > 1 or len(args.workload or []) > 1:
        raise InputError(f"{args.command}: give one --trace or --workload, not several")
    return sources_from_args(args)[0]


def sources_from_args(args: argparse.Namespace) -> list[dict[str, Any]]:
    """`load_workload`'s arguments for each `--trace` (or `--workload`)."""
    if args.trace and args.workload:
        raise InputError("give either --trace or --workload, not both")
    sources: list[tuple[str | None, str | None]] = [(trace, None) for trace in args.trace or []]
    if not sources:
        sources = [(None, name) for name in args.workload or [DEFAULT_WORKLOAD]]
    count = len(sources)
    offsets = _per_service(args.offset, count, "--offset")
    durations = _per_service(args.duration, count, "--duration")
    scales = _per_service(args.rate_scale, count, "--rate-scale")
    return [
        _source(trace, name, args.seed + index, offset, duration, scale)
        for index, ((trace, name), offset, duration, scale) in enumerate(
            zip(sources, offsets, durations, scales, strict=True)
        )
    ]


def _source(
    trace: str | None,
    name: str | None,
    seed: int,
    offset: str | None,
    duration_text: str | None,
    scale: str | None,
) -> dict[str, Any]:
    duration = parse_duration(duration_text, field="--duration") if duration_text else None
    if duration is not None and duration <= 0:
        raise InputError("--duration: must be longer than 0s")
    return {
        "trace": trace,
        "workload": name,
        "seed": seed,
        "offset": parse_duration("0" if offset is None else offset, field="--offset"),
        "duration": duration,
        "rate_scale": _positive_float("1" if scale is None else scale, "--rate-scale"),
    }


def _per_service(values: list[str] | None, count: int, flag: str) -> list[str | None]:
    """One value for every service, or exactly one per service (None: the default)."""
    if not values:
        return [None] * count
    if len(values) == 1:
        return [values[0]] * count
    if len(values) != count:
        raise InputError(
            f"{flag}: give it once for every service or once per --trace "
            f"({count} services), got {len(values)} values"
        )
    return list(values)


def config_from_args(args: argparse.Namespace) -> SimConfig:
    return SimConfig(
        cold_start_s=parse_duration(args.cold_start, field="--cold-start"),
        slo_ttft_s=parse_duration(args.slo_ttft, field="--slo-ttft"),
        max_concurrency=args.max_concurrency,
        metrics_delay_s=parse_duration(args.metrics_delay, field="--metrics-delay"),
        request_timeout_s=parse_duration(args.timeout, field="--timeout"),
        gpus_per_replica=args.gpus_per_replica,
        gpu_pool=args.gpu_pool,
        gpus_per_node=args.gpus_per_node,
        node_provisioning_s=parse_duration(args.node_provisioning, field="--node-provisioning"),
        warmup_s=None if args.warmup is None else parse_duration(args.warmup, field="--warmup"),
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


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    value = non_negative_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: a whole number >= 0."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return value
