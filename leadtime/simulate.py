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
from typing import Any

from adapters.simulator.results import SimResult
from autoscaler.errors import InputError
from autoscaler.policies.catalog import POLICY_NAMES, parse_policy_list
from leadtime.corpus import add_corpus_options, refuse_corpus_flags
from leadtime.corpus_cmd import CORPUS_POLICIES, run_corpus, tuned_rows, wants_progress_bar
from leadtime.options import (
    add_sim_options,
    add_workload_options,
    config_from_args,
    non_negative_int,
    sources_from_args,
)
from leadtime.progress import progress_bar
from leadtime.runs import BenchRun, Source, simulate_run
from leadtime.table import SummaryRow, render_results

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
    parser.add_argument(
        "--slo-target",
        type=_attainment,
        metavar="T",
        help="the share of requests the objective asks to meet --slo-ttft, given to leadtime "
        "as its target, in [0.5, 1) (default 0.99; the baselines have no such knob)",
    )
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
        help=f"comma-separated, of {', '.join(POLICY_NAMES)} (default {DEFAULT_BENCH_POLICIES}; "
        f"with --corpus {CORPUS_POLICIES})",
    )
    _add_policy_options(parser)
    tuning = parser.add_argument_group("cost at equal SLO, and the corpus")
    tuning.add_argument(
        "--slo-target",
        type=_attainment,
        metavar="T",
        help="tune each baseline's main knob on a grid (10%%..100%% of the slots per replica; "
        "see the README) and report its cheapest setting that meets T of requests within the "
        "SLO on the scored window, or 'not met' with its best; leadtime takes T as its objective's "
        "target (default 0.99) and runs once, as the oracle does",
    )
    add_corpus_options(
        tuning,
        corpus_help="run the fixed, seeded corpus of cases (shared traces, NASA windows, "
        "synthetic families; tune and report halves) instead of --trace/--workload, and "
        "summarise leadtime against each other policy per half",
        jobs_help="replays",
    )
    _add_output_options(parser)
    parser.set_defaults(handler=run_bench)


def _add_policy_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--container-concurrency",
        type=non_negative_int,
        metavar="N",
        help="the containerConcurrency policies are configured with (default: the replica's "
        "real slots, --max-concurrency; 0: unset, Knative's default target of 70 in flight)",
    )


def _attainment(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.5 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a share of requests in [0.5, 1), got {text!r}")
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
    if args.corpus:
        return run_corpus(args)
    refuse_corpus_flags(args)
    specs = parse_policy_list(args.policies or DEFAULT_BENCH_POLICIES)
    if args.slo_target is None:
        _emit(args, _run(args, specs), single=False)
        return 0
    if args.plot:
        raise InputError("--plot: not with --slo-target (plot one setting with simulate)")
    rows = tuned_rows(
        _bench_runs(args, specs), args.slo_target, args.jobs, show_progress=wants_progress_bar(args)
    )
    _emit_rows(args, rows)
    return 0


def _bench_runs(args: argparse.Namespace, specs: list[str]) -> list[BenchRun]:
    """One run per policy over the services of --trace/--workload."""
    sources = tuple(Source(**source) for source in sources_from_args(args))
    config = config_from_args(args)
    slots, target = args.container_concurrency, args.slo_target
    return [BenchRun(sources, config, spec, slots, slo_target=target) for spec in specs]


def _run(args: argparse.Namespace, specs: list[str]) -> list[SimResult]:
    results: list[SimResult] = []
    for run in _bench_runs(args, specs):
        with progress_bar(run.policy, enabled=wants_progress_bar(args)) as update:
            results += simulate_run(run, progress=update)
    return results


def _emit_rows(args: argparse.Namespace, rows: list[list[dict[str, Any]]]) -> None:
    """Summaries (one list per policy, a row per service) as JSON or a table."""
    flat = [row for policy_rows in rows for row in policy_rows]
    if args.json:
        json.dump(flat, sys.stdout, allow_nan=False)
        sys.stdout.write("\n")
        return
    print(render_results([SummaryRow.of(row) for row in flat]))


def _emit(args: argparse.Namespace, results: list[SimResult], *, single: bool) -> None:
    if args.plot:
        from leadtime.plot import plot_results

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
