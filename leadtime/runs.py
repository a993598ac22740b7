"""One bench run — some services under one policy — and running many of them on several cores.

`bench` on its own runs one `BenchRun` per policy; `bench --slo-target` one per policy and
setting of its knob; `bench --corpus` that for every case. A run is plain, picklable data, so
`run_all` can hand runs to worker processes (`--jobs`): a replay is CPU-bound Python, and only
processes use more than one core. Workers return the JSON summaries, not the per-request arrays.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from typing import Any, TypeVar, cast

from adapters.simulator.config import SimConfig
from adapters.simulator.engine import ServiceSpec, service_config, simulate_services
from adapters.simulator.forecast_shells import shell_for
from adapters.simulator.oracle import policy_context
from adapters.simulator.results import SimResult
from adapters.simulator.sources import load_workload
from adapters.simulator.workload import Workload
from autoscaler.policies.catalog import make_policy

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Source:
    """Where one service's arrivals come from: `load_workload`'s arguments."""

    trace: str | None
    workload: str | None
    seed: int
    offset: float = 0.0
    duration: float | None = None
    rate_scale: float = 1.0


@dataclass(frozen=True)
class BenchRun:
    """Services (sharing one cluster) under one policy; `share` sets the policy's tuning knob
    (`autoscaler.policies.knobs`), None keeps its default."""

    sources: tuple[Source, ...]
    config: SimConfig
    policy: str
    container_concurrency: int | None = None
    share: float | None = None
    slo_target: float | None = None
    """The objective's target share given to policies that take one (Leadtime); None: the
    default (99 %)."""


@lru_cache(maxsize=8)
def _workload(source: Source) -> Workload:
    """Load each source once per process: a run per knob setting replays the same arrivals."""
    return load_workload(**asdict(source))


def simulate_run(run: BenchRun, progress: Callable[[float], None] | None = None) -> list[SimResult]:
    """Replay the run: one result per service, then their total when there are several."""
    workloads = [_workload(source) for source in run.sources]
    services = []
    for index, workload in enumerate(workloads):
        own = service_config(run.config, index)
        context = policy_context(workload, own, run.container_concurrency)
        if run.slo_target is not None:
            context = replace(context, slo_target=run.slo_target)
        policy = make_policy(run.policy, context, share=run.share)
        services.append(ServiceSpec(workload, policy, shell_for(policy, run.config)))
    return simulate_services(services, run.config, progress=progress)


def summarise_run(run: BenchRun) -> list[dict[str, Any]]:
    """The JSON summaries of a run (what a worker process sends back)."""
    return [result.to_dict() for result in simulate_run(run)]


def run_all(
    runs: Sequence[BenchRun], jobs: int, *, bar: str | None = None
) -> list[list[dict[str, Any]]]:
    """Every run's summaries, in the order of `runs`, on `jobs` processes (`map_in_processes`)."""
    return map_in_processes(summarise_run, runs, jobs, bar=bar)


def map_in_processes(
    work: Callable[[T], R], items: Sequence[T], jobs: int, *, bar: str | None = None
) -> list[R]:
    """`work` of every item, in the order of `items`, on `jobs` processes (1: in this one).
    `work` and the items must pickle. With `bar` (what an item is called), a progress bar on
    stderr counts the items done."""
    out: list[R | None] = [None] * len(items)
    if bar is None:
        for index, result in _completed(work, items, jobs):
            out[index] = result
        return cast(list[R], out)
    from tqdm import tqdm

    with tqdm(total=len(items), desc=f"{bar}s", unit=bar, leave=False) as progress:
        for index, result in _completed(work, items, jobs):
            out[index] = result
            progress.update(1)
    return cast(list[R], out)


def _completed(work: Callable[[T], R], items: Sequence[T], jobs: int) -> Iterator[tuple[int, R]]:
    if jobs <= 1 or len(items) <= 1:
        for index, item in enumerate(items):
            yield index, work(item)
        return
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(work, item): index for index, item in enumerate(items)}
        for future in as_completed(futures):
            yield futures[future], future.result()


def default_jobs() -> int:
    """The cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
