"""`backtest --corpus`: every forecaster on a fixed corpus of series, in a tune and a report half.

Why: a selection that wins on the two shared traces can lose by 42 % on a third. So the corpus
holds every shared trace at four time scales, NASA windows, and the bench corpus's synthetic
families with three seeds. Its halves are the bench corpus's (`autoscaler/cli/corpus.py`: by
family, fixed before any result), so a choice made on the tune half is reported on the other.

Time scales (resolution, horizon): the policy's own, 10 s steps one minute ahead; and 1 min with
5 min, 5 min with 15 min, 10 min with 30 min. A series too short for a scale's backtest (fewer
than `MIN_ORIGINS` origins), or longer than `MAX_STEPS` at it, is left out and says why. Each
case is backtested as `leadtime backtest` does it by default (`backtest.plan_for`): the last
30 % of the series scored from at most `ORIGINS` origins, refits once a day.

The summary per half and model (`summarise`): the mean over the half's cases of the model's
pinball-0.9 loss relative to the best single model of each case (1.0: always the best; `auto`
is compared with the single models, never with itself), the worst such ratio and its case, and
the range of its 90 % interval's coverage.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

from adapters.simulator.sources import load_rate_series
from autoscaler.cli.backtest import OUTAGE_S, outage_mask, plan_for, score_models
from autoscaler.cli.corpus import (
    AZURE,
    DAY,
    MOONCAKE,
    NASA,
    NASA_RATE_SCALE,
    REPORT,
    SEEDS,
    TUNE,
)
from autoscaler.cli.runs import Source, map_in_processes
from autoscaler.durations import format_duration

SCALES = ((10.0, 60.0), (60.0, 300.0), (300.0, 900.0), (600.0, 1800.0))
"""(resolution, horizon) in seconds."""
NASA_WINDOWS = (
    ("monday", 2.0, 1.0),
    ("thursday", 12.0, 1.0),
    ("sunday", 8.0, 1.0),
    ("week", 9.0, 7.0),
)
"""(name, offset in days, length in days); day 0 of the trace is Saturday 1 July 1995."""
SYNTHETIC = (
    ("llm-bursty", "azure-code", TUNE),
    ("web-diurnal", "nasa", TUNE),
    ("diurnal-bursts", "nasa", TUNE),
    ("step-change", "step-change", TUNE),
    ("long-context", "long-context", REPORT),
    ("flash-crowd", "flash-crowd", REPORT),
    ("slow-ramp", "slow-ramp", REPORT),
    ("sparse", "sparse", REPORT),
)
"""(workload, family, half), as in the bench corpus."""
MAX_STEPS = 20_000
"""Longer series are left out at that scale: a week at 10 s (60,480 steps) would take `auto`'s
fits most of the corpus's time and say little the week at 1 min does not."""
ORIGINS = 200
MIN_ORIGINS = 12
"""Fewer scored origins than this say nothing: the case is left out (an hour at 10 minutes)."""
SINGLE = "auto"
"""The model that is compared with the others' best, not counted in it."""


@dataclass(frozen=True)
class ForecastCase:
    """One series at one time scale."""

    name: str
    family: str
    half: str
    source: Source
    step_s: float
    horizon_s: float

    @property
    def sources(self) -> tuple[Source, ...]:
        return (self.source,)


def forecast_cases(traces_dir: str | Path) -> list[ForecastCase]:
    """Every case, in a fixed order (see the module docstring)."""
    traces = Path(traces_dir)
    nasa = str(traces / NASA)
    series = [
        ("azure-code", "azure-code", TUNE, Source(str(traces / AZURE), None, 0)),
        *(
            (
                f"nasa-{name}",
                "nasa",
                TUNE,
                Source(nasa, None, 0, start * DAY, days * DAY, NASA_RATE_SCALE),
            )
            for name, start, days in NASA_WINDOWS
        ),
        ("mooncake", "long-context", REPORT, Source(str(traces / MOONCAKE), None, 0)),
        *(
            (f"{workload}/seed-{seed}", family, half, Source(None, workload, seed))
            for workload, family, half in SYNTHETIC
            for seed in SEEDS
        ),
    ]
    return [
        ForecastCase(
            f"{label}/{_scale(step_s, horizon_s)}", family, half, source, step_s, horizon_s
        )
        for label, family, half, source in series
        for step_s, horizon_s in SCALES
    ]


def _scale(step_s: float, horizon_s: float) -> str:
    return f"{format_duration(step_s)}-{format_duration(horizon_s)}"


def run_case(case: ForecastCase, models: tuple[str, ...]) -> list[dict[str, Any]]:
    """One row per model with the backtest's figures, or one row saying why the case is out."""
    head = {"case": case.name, "family": case.family, "half": case.half}
    _, y = load_rate_series(case.step_s, **asdict(case.source))
    if y.size > MAX_STEPS:
        return [{**head, "skipped": f"{y.size:,} steps, more than {MAX_STEPS:,}"}]
    horizon = max(1, math.ceil(case.horizon_s / case.step_s))
    try:
        plan = plan_for(y.size, horizon, case.step_s, origins=ORIGINS)
    except ValueError as error:
        return [{**head, "skipped": str(error)}]
    if plan.origins.size < MIN_ORIGINS:
        return [{**head, "skipped": f"{y.size} steps: {plan.origins.size} origins, too short"}]
    mask = outage_mask(y, OUTAGE_S, case.step_s)
    rows, _ = score_models(y, case.step_s, plan, list(models), mask)
    return [{**head, **row} for row in rows]


def run_cases(
    cases: list[ForecastCase], models: tuple[str, ...], jobs: int, *, bar: str | None = None
) -> list[dict[str, Any]]:
    """Every case's rows, in the order of `cases`, on `jobs` processes (`map_in_processes`)."""
    per_case = map_in_processes(partial(run_case, models=models), cases, jobs, bar=bar)
    return [row for rows in per_case for row in rows]


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per half and model: the mean and worst pinball-0.9 ratio to each case's best single
    model (and the worst case), and the lowest and highest 90 % coverage. Cases where the best
    single loss is 0 (nothing to forecast) have no ratio."""
    by_case: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for row in rows:
        if "skipped" not in row:
            by_case.setdefault((row["half"], row["case"]), {})[row["model"]] = row
    out = []
    for half in (TUNE, REPORT):
        cases = {name: models for (h, name), models in by_case.items() if h == half}
        if not cases:
            continue
        order = list(dict.fromkeys(model for models in cases.values() for model in models))
        for model in order:
            out.append(_summary(half, model, cases))
    return out


def _summary(half: str, model: str, cases: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    ratios: dict[str, float] = {}
    coverage = []
    for name, models in cases.items():
        if model not in models:
            continue
        best = min(
            (row["pinball_90"] for other, row in models.items() if other != SINGLE),
            default=math.nan,
        )
        if math.isfinite(best) and best > 0:
            ratios[name] = models[model]["pinball_90"] / best
        if math.isfinite(models[model]["coverage_90"]):
            coverage.append(models[model]["coverage_90"])
    worst = max(ratios, key=ratios.__getitem__) if ratios else None
    return {
        "half": half,
        "model": model,
        "cases": len(ratios),
        "mean_ratio": sum(ratios.values()) / len(ratios) if ratios else math.nan,
        "worst_ratio": ratios[worst] if worst else math.nan,
        "worst_case": worst,
        "coverage_min": min(coverage, default=math.nan),
        "coverage_max": max(coverage, default=math.nan),
    }
