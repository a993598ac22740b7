"""`bench --slo-target T`: what each baseline costs to meet the same SLO target.

Each tunable baseline (`autoscaler.policies.knobs`) is replayed at every setting of its grid;
its row is the cheapest setting whose attainment on the scored window is at least T, or, when
none is, the setting with the best attainment, marked "not met". Leadtime, `oracle` and
`static:N` run once, as given. The result rows carry two more keys: `tuned_setting` (the
knob as an operator writes it, None when untuned) and `target_met`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from autoscaler.policies.knobs import KNOBS, TUNING_SHARES
from autoscaler.policies.kpa import CONTAINER_CONCURRENCY_TARGET_DEFAULT
from leadtime.runs import BenchRun


def grid_runs(run: BenchRun) -> list[BenchRun]:
    """The runs that tune `run`'s policy: one per grid setting (itself alone if untuned)."""
    if run.policy not in KNOBS:
        return [run]
    return [replace(run, share=share) for share in TUNING_SHARES]


def pick(
    run: BenchRun,
    settings: Sequence[BenchRun],
    outcomes: Sequence[list[dict[str, Any]]],
    target: float,
) -> list[dict[str, Any]]:
    """The rows of the cheapest setting that meets `target` (judged on the total when there
    are several services), or of the best attainment if none does, with the two keys added."""
    scored = [(rows[-1], setting, rows) for setting, rows in zip(settings, outcomes, strict=True)]
    met = [entry for entry in scored if entry[0]["slo_attainment"] >= target]
    if met:
        _, chosen, rows = min(met, key=lambda entry: entry[0]["gpu_seconds"])
    else:
        _, chosen, rows = max(scored, key=lambda entry: entry[0]["slo_attainment"])
    setting = _describe(run, chosen)
    return [
        {**row, "tuned_setting": setting, "target_met": row["slo_attainment"] >= target}
        for row in rows
    ]


def _describe(run: BenchRun, chosen: BenchRun) -> str | None:
    if chosen.share is None:
        return None
    slots = run.container_concurrency
    if slots is None:
        slots = run.config.max_concurrency
    return KNOBS[run.policy].describe(chosen.share, slots or CONTAINER_CONCURRENCY_TARGET_DEFAULT)
