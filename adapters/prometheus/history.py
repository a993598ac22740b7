"""Long request-rate histories out of Prometheus, for backtests and warm starts.

Prometheus refuses range queries of more than 11,000 points, so a week at one minute (10,080)
fits in one, and a day at one second takes nine: the window is cut into chunks, pulled one
after the other, and stitched on a fixed time grid. Steps without a sample stay NaN (the
forecasters treat them as missing, not as zero demand). Several series in an answer are summed.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from adapters.prometheus.client import PrometheusClient

MAX_POINTS = 10_000


async def pull_rate_series(
    client: PrometheusClient,
    promql: str,
    start: float,
    end: float,
    step_s: float,
    keep: Callable[[dict[str, str]], bool] | None = None,
) -> np.ndarray:
    """`promql` evaluated every `step_s` over [start, end), one value per step; only the series
    whose labels `keep` accepts (all when None) are summed."""
    steps = max(0, math.floor((end - start) / step_s))
    out = np.full(steps, np.nan)
    for first in range(0, steps, MAX_POINTS):
        last = min(steps, first + MAX_POINTS) - 1
        series = await client.query_range(
            promql, start + first * step_s, start + last * step_s, step_s
        )
        for item in series:
            if keep is not None and not keep(item.labels):
                continue
            index = np.rint((np.asarray(item.times) - start) / step_s).astype(np.int64)
            inside = (index >= 0) & (index < steps)
            values = np.asarray(item.values)[inside]
            slots = index[inside]
            current = out[slots]
            out[slots] = np.where(np.isnan(current), values, current + values)
    return out
