"""Running `bench --slo-target` and `bench --corpus`: many replays on the cores, one table.

The cases and their halves are in `corpus.py`, the grid in `autoscaler.policies.knobs`, the
choice of a setting in `tuning.py`; this module expands them into runs, runs them
(`runs.run_all`, `--jobs` processes, a progress bar on a terminal), and prints a row per case
and the summary per half.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from autoscaler.errors import InputError
from autoscaler.policies.catalog import parse_policy_list
from leadtime.corpus import (
    Case,
    case_runs,
    check_traces,
    compare,
    corpus_cases,
    select_cases,
)
from leadtime.options import config_from_args
from leadtime.runs import BenchRun, run_all, simulate_run
from leadtime.table import align
from leadtime.tuning import grid_runs, pick

CORPUS_POLICIES = "kpa,hpa,hpa-behavior,ray-serve,keda,aibrix-apa,dynamo-planner,leadtime,oracle"
VERSUS = "leadtime"
"""The policy the corpus summary compares with every other one."""


def tuned_rows(
    runs: list[BenchRun], target: float | None, jobs: int, *, show_progress: bool
) -> list[list[dict[str, Any]]]:
    """Each run's summary rows; with a `target`, each tunable baseline at its tuned setting."""
    expanded = [grid_runs(run) if target is not None else [run] for run in runs]
    flat = [setting for settings in expanded for setting in settings]
    outcomes = run_all(flat, jobs, bar="replay" if show_progress else None)
    rows, position = [], 0
    for run, settings in zip(runs, expanded, strict=True):
        mine = outcomes[position : position + len(settings)]
        position += len(settings)
        rows.append(mine[0] if target is None else pick(run, settings, mine, target))
    return rows


def wants_progress_bar(args: argparse.Namespace) -> bool:
    """A progress bar on a terminal's stderr, never with --json."""
    return not args.json and sys.stderr.isatty()


def run_corpus(args: argparse.Namespace) -> int:
    """`bench --corpus`: the cases (or those matching --cases), a row per case, the summary."""
    if args.trace or args.workload:
        raise InputError("--corpus: the cases bring their own traces; drop --trace/--workload")
    policies = parse_policy_list(args.policies or CORPUS_POLICIES)
    cases = select_cases(corpus_cases(args.traces_dir), args.cases)
    check_traces(cases)
    base = config_from_args(args)
    runs = [
        run
        for case in cases
        for run in case_runs(case, base, policies, args.container_concurrency, args.slo_target)
    ]
    show = wants_progress_bar(args)
    if args.plot:
        outcomes = _plotted(runs, cases, args)
    else:
        outcomes = tuned_rows(runs, args.slo_target, args.jobs, show_progress=show)
    rows = []
    for index, case in enumerate(cases):
        for policy_rows in outcomes[index * len(policies) : (index + 1) * len(policies)]:
            label = {"case": case.name, "family": case.family, "half": case.half}
            rows += [{**label, **row, "total": row is policy_rows[-1]} for row in policy_rows]
    totals = [row for row in rows if row["total"]]
    summary = compare(totals, VERSUS) if VERSUS in policies else []
    if args.json:
        json.dump({"cases": rows, "summary": summary}, sys.stdout, allow_nan=False)
        sys.stdout.write("\n")
        return 0
    print(render_corpus(totals, policies))
    print()
    print(render_summary(summary) if summary else f"(no summary: {VERSUS} not among --policies)")
    return 0


def _plotted(
    runs: list[BenchRun], cases: list[Case], args: argparse.Namespace
) -> list[list[dict[str, Any]]]:
    """Run one case's policies here, plot them (the first service), and return their rows."""
    if len(cases) != 1 or args.slo_target is not None:
        raise InputError("--plot: with --corpus, pick one case with --cases, without --slo-target")
    from leadtime.plot import plot_results

    results = [simulate_run(run) for run in runs]
    plot_results([rows[0] for rows in results], args.plot)
    print(f"plot written to {args.plot}", file=sys.stderr)
    return [[result.to_dict() for result in rows] for rows in results]


def render_corpus(totals: list[dict[str, Any]], policies: list[str]) -> str:
    """A row per case: its half and requests, then each policy's SLO attainment and GPU-s."""
    cells: dict[str, dict[str, dict[str, Any]]] = {}
    for row in totals:
        cells.setdefault(row["case"], {})[row["policy"]] = row
    header = ["case", "half", "requests", *policies]
    lines = [header]
    for case, by_policy in cells.items():
        first = next(iter(by_policy.values()))
        lines.append(
            [
                case,
                first["half"],
                f"{first['requests']:,}",
                *(_cell(by_policy[p]) for p in policies),
            ]
        )
    return (
        "\n".join(align(lines))
        + "\n(each policy: SLO met, GPU-seconds"
        + ("; * = target not met)" if any("target_met" in row for row in totals) else ")")
    )


def _cell(row: dict[str, Any]) -> str:
    missed = "*" if row.get("target_met") is False else ""
    return f"{row['slo_attainment']:.2%} {_compact(row['gpu_seconds'])}{missed}"


def _compact(value: float) -> str:
    for limit, suffix in ((1e6, "M"), (1e3, "k")):
        if value >= limit:
            return f"{value / limit:.3g}{suffix}"
    return f"{value:.0f}"


def render_summary(summary: list[dict[str, Any]]) -> str:
    """Per half and other policy: cases where leadtime costs less at equal or better SLO, its
    dearest case and the case where it is furthest behind on SLO (GPU ratio, SLO points)."""
    header = [
        "half",
        "versus",
        f"{VERSUS} cheaper at >= SLO",
        "dearest case",
        "GPU ratio",
        "SLO pts",
        "furthest behind on SLO",
        "GPU ratio",
        "SLO pts",
    ]
    lines = [header]
    for item in summary:
        lines.append(
            [
                item["half"],
                item["versus"],
                f"{item['wins']} of {item['cases']}",
                item["dearest_case"],
                f"{item['dearest_gpu_ratio']:.2f}x",
                f"{item['dearest_slo_points']:+.2f}",
                item["behind_case"],
                f"{item['behind_gpu_ratio']:.2f}x",
                f"{item['behind_slo_points']:+.2f}",
            ]
        )
    return "\n".join(align(lines))
