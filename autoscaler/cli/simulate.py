"""`leadtime simulate` and `leadtime bench`: replay a workload under one policy, or several.

The composition root for the simulator: it alone knows the concrete adapters (see the layers in
docs/architecture.md §1). Every policy of a bench run sees the same arrivals, tokens, cold-start
draws and seed, so the rows differ only by policy. With several `--trace`s every trace is a service
of one cluster (they share the GPU pool); each policy then gets one row per service and a `total`
row.
"""

from __future__ import annotations

import argparse
import json
import sys

from adapters.simulator.config import SimConfig
from adapters.simulator.engine import ServiceSpec, service_config, simulate_services
from adapters.simulator.forecasts import shell_for
from adapters.simulator.oracle import policy_context
from adapters.simulator.results import SimResult
from adapters.simulator.workload import Workload
from autoscaler.cli.options import (
    add_sim_options,
    add_workload_options,
    config_from_args,
    workloads_from_args,
)
from autoscaler.cli.progress import progress_bar
from autoscaler.cli.table import render_results
from autoscaler.policies import POLICY_NAMES, make_policy, parse_policy_list

DEFAULT_POLICY = "leadtime"
DEFAULT_BENCH_POLICIES = "kpa,hpa,leadtime,oracle"


def add_simulate_command(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("simulate", help="replay a workload under one policy")
    add_workload_options(parser)
    add_sim_options(parser)
    parser.add_argument(
        "--policy",
        default=DEFAULT_POLICY,
        help=f"one of {', '.join(POLICY_NAMES)} (default %(default)s)",
    )
    _add_policy_options(parser)
    _add_output_options(parser)
    parser.set_defaults(handler=run_simulate)


def add_bench_command(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "bench", help="replay a workload under several policies, side by side"
    )
    add_workload_options(parser)
    add_sim_options(parser)
    parser.add_argument(
        "--policies",
        default=DEFAULT_BENCH_POLICIES,
        help=f"comma-separated, of {', '.join(POLICY_NAMES)} (default %(default)s)",
    )
    _add_policy_options(parser)
    _add_output_options(parser)
    parser.set_defaults(handler=run_bench)


def _add_policy_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--container-concurrency",
        type=_non_negative_int,
        metavar="N",
        help="the containerConcurrency policies are configured with (default: the replica's "
        "real slots, --max-concurrency; 0: unset, Knative's default target of 70 in flight)",
    )


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return value


def _add_output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", action="store_true", help="print JSON on stdout instead of a table"
    )
    parser.add_argument(
        "--plot",
        metavar="FILE.png",
        help="draw load, replicas and SLO misses over time (needs matplotlib)",
    )


def run_simulate(args: argparse.Namespace) -> int:
    results = _run(args, [args.policy])
    _emit(args, results, single=True)
    return 0


def run_bench(args: argparse.Namespace) -> int:
    results = _run(args, parse_policy_list(args.policies))
    _emit(args, results, single=False)
    return 0


def _run(args: argparse.Namespace, specs: list[str]) -> list[SimResult]:
    workloads = workloads_from_args(args)
    config = config_from_args(args)
    contexts = [
        policy_context(workload, service_config(config, index), args.container_concurrency)
        for index, workload in enumerate(workloads)
    ]
    show_progress = not args.json and sys.stderr.isatty()
    results: list[SimResult] = []
    for spec in specs:
        policies = [make_policy(spec, context) for context in contexts]
        results += _simulate_one(workloads, policies, config, show_progress)
    return results


def _simulate_one(
    workloads: list[Workload], policies: list, config: SimConfig, show_progress: bool
) -> list[SimResult]:
    services = [
        ServiceSpec(workload, policy, shell_for(policy, config))
        for workload, policy in zip(workloads, policies, strict=True)
    ]
    with progress_bar(f"{policies[0].name}", enabled=show_progress) as update:
        return simulate_services(services, config, progress=update)


def _emit(args: argparse.Namespace, results: list[SimResult], *, single: bool) -> None:
    if args.plot:
        from autoscaler.cli.plot import plot_results

        first_service = [r for r in results if r.trace == results[0].trace]
        plot_results(first_service, args.plot)
    if args.json:
        one = single and len(results) == 1
        payload = results[0].to_dict() if one else [r.to_dict() for r in results]
        json.dump(payload, sys.stdout, allow_nan=False)
        sys.stdout.write("\n")
        return
    print(render_results(results))
    if args.plot:
        services = len({r.trace for r in results})
        shown = f" (service {results[0].trace})" if services > 1 else ""
        print(f"plot written to {args.plot}{shown}")
