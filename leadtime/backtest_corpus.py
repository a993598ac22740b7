"""`backtest --corpus`: every forecaster on a fixed corpus of series, in a tune and a report half.

Why: a selection that wins on the two shared traces can lose by 42 % on a third. So the corpus
holds every shared trace at four time scales, NASA windows, and the bench corpus's synthetic
families with three seeds. Its halves are the bench corpus's (`leadtime/corpus.py`: by
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

The best single model of a case is known only once its outcomes are: no selector can match it
where the models' losses differ by less than their noise over the case's origins. Two
yardsticks (`YARDSTICKS`, `selection_yardsticks`) say how far off a selector that could look
at the scored outcomes themselves still lands: one that picks the best single model on the
first half of the case's origins and is scored on the second, and one that picks on every
other tenth of them and is scored on the rest. They are summarised as the models are.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from adapters.simulator.sources import load_rate_series
from autoscaler.durations import format_duration
from forecasting.backtest import actuals, scored_points
from forecasting.metrics import pinball_losses
from leadtime.backtest import OUTAGE_S, outage_mask, plan_for, score_models
from leadtime.corpus import (
    AZURE,
    DAY,
    MOONCAKE,
    NASA,
    NASA_RATE_SCALE,
    REPORT,
    SEEDS,
    TUNE,
)
from leadtime.runs import Source, map_in_processes

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
RATIO_TARGET = 1.02
COVERAGE_TARGET = (0.85, 0.95)
"""What the corpus holds `auto` to in every case: pinball-0.9 within 2 % of the best single
model's, and its 90 % interval covering 85–95 % of outcomes. The summary counts the cases."""
PICKED_ON_FIRST_HALF = "picked on 1st half"
PICKED_ON_OTHER_TENTHS = "picked on other 10ths"
YARDSTICKS = (PICKED_ON_FIRST_HALF, PICKED_ON_OTHER_TENTHS)
"""Selectors that see the scored outcomes (module docstring): rows of their own, never models."""


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
    rows, runs = score_models(y, case.step_s, plan, list(models), mask)
    actual, keep = actuals(y, plan), scored_points(plan, mask)
    losses = {
        name: np.where(keep, pinball_losses(actual, runs[name].quantiles[0.9], 0.9), np.nan)
        for name in models
        if name != SINGLE
    }
    yardsticks = selection_yardsticks(losses) if len(losses) > 1 else {}
    return [
        *({**head, **row} for row in rows),
        *({**head, "model": name, "ratio": ratio} for name, ratio in yardsticks.items()),
    ]


def selection_yardsticks(losses: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Loss of the model each yardstick selector picks over the best single model's, on the
    origins it did not pick on (`losses`: model → (origins, horizon), NaN where not scored).

    The first-half selector is the best a selection from the past could hope for; the
    other-tenths one sees outcomes interleaved with those it is scored on, so only noise
    (not a change of regime) separates it from the best."""
    count = next(iter(losses.values())).shape[0]
    index = np.arange(count)
    first = index < count // 2
    tenths = (index * 10 // count) % 2 == 0
    return {
        PICKED_ON_FIRST_HALF: _picked_over_best(losses, first, ~first),
        PICKED_ON_OTHER_TENTHS: (
            _picked_over_best(losses, tenths, ~tenths) + _picked_over_best(losses, ~tenths, tenths)
        )
        / 2,
    }


def _picked_over_best(
    losses: Mapping[str, np.ndarray], pick: np.ndarray, score: np.ndarray
) -> float:
    """The loss on `score` origins of the model best on `pick` origins, over the best on `score`."""
    on_pick = {name: _mean(loss[pick]) for name, loss in losses.items()}
    on_score = {name: _mean(loss[score]) for name, loss in losses.items()}
    picked = min(on_pick, key=lambda name: (math.isnan(on_pick[name]), on_pick[name]))
    best = min((value for value in on_score.values() if not math.isnan(value)), default=math.nan)
    return on_score[picked] / best if best > 0 else math.nan


def _mean(values: np.ndarray) -> float:
    return float(np.nanmean(values)) if np.isfinite(values).any() else math.nan


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
        row = models[model]
        best = min(
            (
                other_row["pinball_90"]
                for other, other_row in models.items()
                if other not in (SINGLE, *YARDSTICKS)
            ),
            default=math.nan,
        )
        if math.isfinite(best) and best > 0:
            ratio = row["ratio"] if model in YARDSTICKS else row["pinball_90"] / best
            if math.isfinite(ratio):
                ratios[name] = ratio
        if math.isfinite(row.get("coverage_90", math.nan)):
            coverage.append(row["coverage_90"])
    worst = max(ratios, key=ratios.__getitem__) if ratios else None
    low, high = COVERAGE_TARGET
    return {
        "half": half,
        "model": model,
        "cases": len(ratios),
        "mean_ratio": sum(ratios.values()) / len(ratios) if ratios else math.nan,
        "worst_ratio": ratios[worst] if worst else math.nan,
        "worst_case": worst,
        "within_ratio_target": sum(ratio <= RATIO_TARGET for ratio in ratios.values()),
        "coverage_min": min(coverage, default=math.nan),
        "coverage_max": max(coverage, default=math.nan),
        "within_coverage_target": sum(low <= value <= high for value in coverage),
    }
