"""`bench --corpus`: a fixed, seeded list of cases, split into a *tune* and a *report* half.

Why a corpus: a policy tuned on two traces can win on them and lose everywhere else. Every
number chosen by looking at results is chosen on the tune half; the report half is the claim.
The halves are split by family (a trace and the generator calibrated on it are one family) and
fixed here, before any result:

- tune: the two traces earlier rounds tuned on and their families — Azure's LLM code trace
  (`azure-code`, with `llm-bursty`), NASA-HTTP (`nasa`, with `web-diurnal` and
  `diurnal-bursts`) — and `step-change`;
- report: everything no earlier round looked at — the Mooncake long-context trace with its
  generator (`long-context`), `flash-crowd`, `slow-ramp`, `sparse`, and `shared-pool` (three
  services on 8 GPUs, new nodes in 180 s).

Every shared trace runs at cold starts of 30 s, 60 s and 180 s; NASA also on a weekday, a weekend
day and a week (arrivals ×10, about 10 requests/s); each synthetic family with seeds 1, 2, 3 at
its default length. The traces are read from `--traces-dir` (the repository's sibling
`../shared/data/traces` by default) and never copied.
"""

from __future__ import annotations

import argparse
import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

from adapters.simulator.config import SimConfig
from autoscaler.errors import InputError
from leadtime.options import positive_int
from leadtime.runs import BenchRun, Source, default_jobs

DAY = 86_400.0
TUNE, REPORT = "tune", "report"
SEEDS = (1, 2, 3)
COLD_STARTS_S = (30.0, 60.0, 180.0)
NASA = "nasa_http_1995_per_second_workload.tbz2"
AZURE = "AzureLLMInferenceTrace_code.csv"
MOONCAKE = "mooncake_synthetic_trace.jsonl"
NASA_RATE_SCALE = 10.0
"""NASA's ~1 request/s ×10: a service that needs 20+ GPU replicas at its peak."""
SHARED_POOL_GPUS = 8
DEFAULT_TRACES_DIR = "../shared/data/traces"


@dataclass(frozen=True)
class Case:
    """One corpus case: its services and what differs from the default simulated service."""

    name: str
    family: str
    half: str
    sources: tuple[Source, ...]
    overrides: dict[str, Any] = field(default_factory=dict, hash=False)

    def config(self, base: SimConfig) -> SimConfig:
        return replace(base, **self.overrides)


def corpus_cases(traces_dir: str | Path) -> list[Case]:
    """Every case, in a fixed order (see the module docstring)."""
    traces = Path(traces_dir)
    return [
        *_trace_cases("azure-code", TUNE, Source(str(traces / AZURE), None, 0)),
        *_nasa_cases(traces / NASA),
        *_synthetic_cases("llm-bursty", "azure-code", TUNE),
        *_synthetic_cases("web-diurnal", "nasa", TUNE),
        *_synthetic_cases("diurnal-bursts", "nasa", TUNE),
        *_synthetic_cases("step-change", "step-change", TUNE),
        *_trace_cases("mooncake", REPORT, Source(str(traces / MOONCAKE), None, 0)),
        *_synthetic_cases("long-context", "long-context", REPORT),
        *_synthetic_cases("flash-crowd", "flash-crowd", REPORT),
        *_synthetic_cases("slow-ramp", "slow-ramp", REPORT),
        *_synthetic_cases("sparse", "sparse", REPORT),
        *_shared_pool_cases(),
    ]


def _trace_cases(family: str, half: str, source: Source, name: str = "") -> list[Case]:
    return [
        Case(f"{name or family}/cold-{cold:.0f}s", family, half, (source,), {"cold_start_s": cold})
        for cold in COLD_STARTS_S
    ]


def _nasa_cases(path: Path) -> list[Case]:
    """Monday 3 July 1995 at three cold starts, then a Thursday, a Sunday and a week (day 0 of
    the trace is Saturday 1 July)."""

    def window(offset_days: float, days: float) -> Source:
        return Source(str(path), None, 0, offset_days * DAY, days * DAY, NASA_RATE_SCALE)

    return [
        *_trace_cases("nasa", TUNE, window(2, 1), name="nasa-monday"),
        Case("nasa/thursday", "nasa", TUNE, (window(12, 1),)),
        Case("nasa/sunday", "nasa", TUNE, (window(8, 1),)),
        Case("nasa/week", "nasa", TUNE, (window(9, 7),)),
    ]


def _synthetic_cases(workload: str, family: str, half: str) -> list[Case]:
    return [
        Case(f"{workload}/seed-{seed}", family, half, (Source(None, workload, seed),))
        for seed in SEEDS
    ]


def _shared_pool_cases() -> list[Case]:
    """Three services for an hour on one bounded pool: where GPUs are scarce, one service's
    over-buying is another's wait for a node."""
    names = ("llm-bursty", "flash-crowd", "sparse")
    return [
        Case(
            f"shared-pool/seed-{seed}",
            "shared-pool",
            REPORT,
            tuple(
                Source(None, name, seed + index, 0.0, 3600.0) for index, name in enumerate(names)
            ),
            {"gpu_pool": SHARED_POOL_GPUS},
        )
        for seed in SEEDS
    ]


def add_corpus_options(group: argparse._ArgumentGroup, *, corpus_help: str, jobs_help: str) -> None:
    """`--corpus`, `--cases`, `--traces-dir`, `--jobs`: how `bench` and `backtest` take a
    corpus (`corpus_help` says what the corpus run does, `jobs_help` what runs at once)."""
    group.add_argument("--corpus", action="store_true", help=corpus_help)
    group.add_argument("--cases", metavar="PATTERN", help="with --corpus: a glob of case names")
    group.add_argument(
        "--traces-dir",
        default=DEFAULT_TRACES_DIR,
        metavar="DIR",
        help="with --corpus: where the shared traces are (default %(default)s)",
    )
    group.add_argument(
        "--jobs",
        type=positive_int,
        default=default_jobs(),
        metavar="N",
        help=f"{jobs_help} at once, in processes (default: the cores, %(default)s)",
    )


def refuse_corpus_flags(args: argparse.Namespace) -> None:
    """The corpus's own flags given without `--corpus`: an error naming the flag."""
    if args.cases is not None:
        raise InputError("--cases: only with --corpus")
    if args.traces_dir != DEFAULT_TRACES_DIR:
        raise InputError("--traces-dir: only with --corpus")


class Named(Protocol):
    """A case of a corpus: its name, and where its series come from."""

    @property
    def name(self) -> str: ...

    @property
    def sources(self) -> tuple[Source, ...]: ...


C = TypeVar("C", bound=Named)


def select_cases(cases: list[C], pattern: str | None) -> list[C]:
    """The cases whose name matches the glob `pattern` (all when None); none is an error."""
    if pattern is None:
        return cases
    chosen = [case for case in cases if fnmatch.fnmatchcase(case.name, pattern)]
    if not chosen:
        names = ", ".join(case.name for case in cases)
        raise InputError(f"--cases: {pattern!r} matches no case; the cases are {names}")
    return chosen


def check_traces(cases: Sequence[Named]) -> None:
    """Fail at once, naming the flag, when a case's trace file is missing."""
    for case in cases:
        for source in case.sources:
            if source.trace is not None and not Path(source.trace).is_file():
                raise InputError(
                    f"--traces-dir: case {case.name} needs {source.trace}, which does not exist"
                )


def case_runs(
    case: Case,
    base: SimConfig,
    policies: list[str],
    slots: int | None,
    slo_target: float | None = None,
) -> list[BenchRun]:
    """One run per policy for `case` (`slo_target`: the objective given to Leadtime)."""
    config = case.config(base)
    return [
        BenchRun(case.sources, config, policy, slots, slo_target=slo_target) for policy in policies
    ]


def compare(rows: list[dict[str, Any]], versus: str) -> list[dict[str, Any]]:
    """Per half and per other policy: in how many cases `versus` costs less at equal or better
    attainment, and its two worst cases: the dearest (the highest ratio of its GPU-seconds to
    the other's) and the one where it is furthest behind on attainment. `rows` are the cases'
    total rows, with `case`, `half` and `policy` keys."""
    by_case: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for row in rows:
        by_case.setdefault((row["half"], row["case"]), {})[row["policy"]] = row
    others = sorted({row["policy"] for row in rows} - {versus}, key=_policy_order(rows))
    out = []
    for half in (TUNE, REPORT):
        cases = [(name, policies) for (h, name), policies in by_case.items() if h == half]
        for other in others:
            pairs = [
                (name, policies[versus], policies[other])
                for name, policies in cases
                if versus in policies and other in policies
            ]
            if pairs:
                out.append(_versus(half, other, pairs))
    return out


def _policy_order(rows: list[dict[str, Any]]):
    order = {row["policy"]: index for index, row in reversed(list(enumerate(rows)))}
    return order.__getitem__


def _versus(half: str, other: str, pairs: list[tuple[str, dict, dict]]) -> dict[str, Any]:
    wins = [name for name, ours, theirs in pairs if _cheaper_at_equal_slo(ours, theirs)]
    dearest = max(pairs, key=lambda pair: _ratio(pair[1], pair[2]))
    behind = min(pairs, key=lambda pair: _points(pair[1], pair[2]))
    return {
        "half": half,
        "versus": other,
        "cases": len(pairs),
        "wins": len(wins),
        "dearest_case": dearest[0],
        "dearest_gpu_ratio": _ratio(dearest[1], dearest[2]),
        "dearest_slo_points": _points(dearest[1], dearest[2]),
        "behind_case": behind[0],
        "behind_gpu_ratio": _ratio(behind[1], behind[2]),
        "behind_slo_points": _points(behind[1], behind[2]),
    }


def _points(ours: dict, theirs: dict) -> float:
    """Percentage points of SLO attainment ours has over theirs."""
    return 100 * (ours["slo_attainment"] - theirs["slo_attainment"])


def _cheaper_at_equal_slo(ours: dict, theirs: dict) -> bool:
    return (
        ours["gpu_seconds"] < theirs["gpu_seconds"]
        and ours["slo_attainment"] >= theirs["slo_attainment"]
    )


def _ratio(ours: dict, theirs: dict) -> float:
    return (
        ours["gpu_seconds"] / theirs["gpu_seconds"] if theirs["gpu_seconds"] > 0 else float("inf")
    )
