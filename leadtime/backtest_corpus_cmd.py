"""`leadtime backtest --corpus`: run the forecasting corpus (`backtest_corpus`) and print it.

A row per case (its best single model and that model's pinball-0.9 loss, then `auto`'s ratio to
it and its 90 % coverage), then the summary per half and model, and of the two selectors that
see the outcomes (`backtest_corpus.YARDSTICKS`). `--json` prints both as data.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from autoscaler.errors import InputError
from leadtime.backtest import finite, model_list
from leadtime.backtest_corpus import (
    COVERAGE_TARGET,
    RATIO_TARGET,
    SINGLE,
    YARDSTICKS,
    forecast_cases,
    run_cases,
    summarise,
)
from leadtime.corpus import check_traces, select_cases
from leadtime.corpus_cmd import wants_progress_bar
from leadtime.table import align


def run_backtest_corpus(args: argparse.Namespace) -> int:
    if args.trace or args.workload or args.prometheus:
        raise InputError("--corpus: the cases bring their own series; drop --trace/--workload")
    models = tuple(model_list(args.models))
    cases = select_cases(forecast_cases(args.traces_dir), args.cases)
    check_traces(cases)
    rows = run_cases(cases, models, args.jobs, bar="case" if wants_progress_bar(args) else None)
    summary = summarise(rows)
    if args.json:
        json.dump(
            {"cases": [finite(row) for row in rows], "summary": [finite(row) for row in summary]},
            sys.stdout,
        )
        sys.stdout.write("\n")
        return 0
    print(render_cases(rows))
    print()
    print(render_summary(summary))
    return 0


def render_cases(rows: list[dict[str, Any]]) -> str:
    """A row per case: its half, the best single model and its loss, `auto` against it."""
    by_case: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_case.setdefault(row["case"], []).append(row)
    header = ("case", "half", "best single", "pinball_90", "auto / best", "auto coverage_90")
    table: list[tuple[str, ...]] = [header]
    left_out = []
    for name, models in by_case.items():
        if "skipped" in models[0]:
            left_out.append(f"left out: {name} ({models[0]['skipped']})")
            continue
        singles = [row for row in models if row["model"] not in (SINGLE, *YARDSTICKS)]
        best = min(singles, key=lambda row: row["pinball_90"]) if singles else None
        auto = next((row for row in models if row["model"] == SINGLE), None)
        ratio = (
            auto["pinball_90"] / best["pinball_90"]
            if auto and best and best["pinball_90"] > 0
            else math.nan
        )
        table.append(
            (
                name,
                models[0]["half"],
                best["model"] if best else "-",
                f"{best['pinball_90']:.4g}" if best else "-",
                _number(ratio, "{:.3f}"),
                _number(auto["coverage_90"], "{:.1%}") if auto else "-",
            )
        )
    return "\n".join([*align(table), *left_out])


def render_summary(summary: list[dict[str, Any]]) -> str:
    """Per half and model: pinball-0.9 against each case's best single model, coverage."""
    low, high = COVERAGE_TARGET
    header = (
        "half",
        "model",
        "cases",
        "mean / best",
        "worst / best",
        "worst case",
        f"≤ {RATIO_TARGET:g}",
        "coverage_90",
        f"in {low:.0%}–{high:.0%}",
    )
    table: list[tuple[str, ...]] = [header]
    for row in summary:
        covered = math.isfinite(row["coverage_min"])
        table.append(
            (
                row["half"],
                row["model"],
                str(row["cases"]),
                _number(row["mean_ratio"], "{:.3f}"),
                _number(row["worst_ratio"], "{:.3f}"),
                row["worst_case"] or "-",
                str(row["within_ratio_target"]),
                "–".join(_number(row[key], "{:.1%}") for key in ("coverage_min", "coverage_max"))
                if covered
                else "-",
                str(row["within_coverage_target"]) if covered else "-",
            )
        )
    return "\n".join(align(table))


def _number(value: float, pattern: str) -> str:
    return pattern.format(value) if math.isfinite(value) else "-"
