"""One entry point for "where do the arrivals come from": a trace file or a built-in workload.

Why one function: the CLI commands (simulate, bench, loadtest, run) all take the same
`--trace FILE | --workload NAME`, `--offset`, `--duration`, `--rate-scale` and `--seed`, and must
treat them identically.
"""

from __future__ import annotations

import math

import numpy as np

from adapters.simulator.counts import CountSeries
from adapters.simulator.synthetic import WORKLOADS, generate
from adapters.simulator.traces import read_trace
from adapters.simulator.workload import Workload
from autoscaler.errors import InputError


def load_workload(
    *,
    trace: str | None,
    workload: str | None,
    seed: int,
    offset: float = 0.0,
    duration: float | None = None,
    rate_scale: float = 1.0,
) -> Workload:
    """Load `trace` or generate `workload` (exactly one), cut `[offset, offset + duration)`, scale.

    A synthetic workload is generated just long enough for the window (its default duration when
    `duration` is None), so a window never runs past its end. A count trace is cut and scaled
    as counts, and only then drawn as arrivals.
    """
    source = _windowed(trace, workload, seed, offset, duration, rate_scale)
    return source.arrivals(seed) if isinstance(source, CountSeries) else source


def load_rate_series(
    step_s: float,
    *,
    trace: str | None,
    workload: str | None,
    seed: int,
    offset: float = 0.0,
    duration: float | None = None,
    rate_scale: float = 1.0,
) -> tuple[str, np.ndarray]:
    """What `load_workload` loads, as requests per second in steps of `step_s`, with its label.
    A count trace is binned from its counts: no single arrival is drawn."""
    source = _windowed(trace, workload, seed, offset, duration, rate_scale)
    return source.source or source.name, source.rate_series(step_s)


def _windowed(
    trace: str | None,
    workload: str | None,
    seed: int,
    offset: float,
    duration: float | None,
    rate_scale: float,
) -> Workload | CountSeries:
    if (trace is None) == (workload is None):
        raise InputError(
            "give exactly one of --trace FILE or --workload NAME "
            f"(built-in workloads: {', '.join(WORKLOADS)})"
        )
    _check_window(offset, duration)
    source: Workload | CountSeries
    if trace is not None:
        source = read_trace(trace)
    else:
        assert workload is not None  # exactly one of the two, checked above
        source = _generate(workload, seed, offset, duration)
    if offset != 0 or duration is not None:
        source = source.window(offset, duration)
    if isinstance(source, CountSeries):
        return source.scale(rate_scale, seed)
    return source.scale_rate(rate_scale, seed)


def _generate(name: str, seed: int, offset: float, duration: float | None) -> Workload:
    spec = WORKLOADS.get(name)
    if spec is None:
        raise InputError(f"unknown workload {name!r}; built-in workloads: {', '.join(WORKLOADS)}")
    span = spec.default_duration if duration is None else duration
    return generate(name, seed=seed, duration=span if offset == 0 else offset + span)


def _check_window(offset: float, duration: float | None) -> None:
    """Refuse bad windows before generating anything (a NaN would slip past `window`)."""
    if not (math.isfinite(offset) and offset >= 0):
        raise InputError(f"--offset must be a finite number of seconds >= 0, got {offset!r}")
    if duration is not None and not (math.isfinite(duration) and duration > 0):
        raise InputError(f"--duration must be a finite number of seconds > 0, got {duration!r}")
