"""The load-test harness's metrics, in trace time: what a policy replaying a trace X times faster
must see so that its windows, ticks and holds mean what they mean on the simulator.

A load test at `--speed X` runs every process X times faster: one wall second is X seconds of
the trace. The policy runs on a virtual clock in trace seconds (`autoscaler.clock.VirtualClock`,
second 0 = the workload's second 0), and this source answers it in trace seconds too:

- **one sample per trace second.** The simulator's policies, like Knative's queue-proxy,
  see one value per second (the last second's average concurrency, that second's arrivals).
  A series sampled per *wall* second would hold one sample per X trace seconds, so a 60-s
  window would average 60 × X trace seconds and a 6-s panic window would be one sample. So
  the balancer is scraped every 1/X wall seconds (`scrape_interval`) and each chunk is a
  Prometheus range query with a step of 1/X wall seconds: sample k is the query evaluated at
  the end of trace second k. Scraping every wall second and resampling instead would only
  repeat or interpolate the same coarse samples — a per-second average cannot be recovered
  from a 10-s average — so the scrape itself is made per trace second, and with it the
  metrics' delay (one scrape interval) is one trace second at every speed, as at speed 1.
- **averages over each trace second.** Concurrency and queue are the rates of the balancer's
  time integrals, the mean over the last scrape interval, as the simulator's series hold them.
  The queue was an instantaneous gauge: a request caught between its arrival and its dispatch
  (a few wall milliseconds, ten times longer in trace time at 10x) read as a whole second of
  queue, and Leadtime, which learns a replica's slots from its in-service count per ready
  replica in queued seconds, learned 2 to 6 slots of the real 8 and provisioned for them
  (up to 4x the simulator's GPU-seconds on the NASA window at 10x).
- **rates per trace second.** Prometheus' `rate()` counts per wall second; arrivals are
  divided by X. Concurrency and the queue (average counts) need no scaling.
- **windows in trace seconds.** The PromQL windows (10 s for arrivals, 5 s for the
  concurrency's and the queue's `irate`) are trace seconds, i.e. divided by X on the wall
  clock.
- **no history before second 0.** The balancer counts from its start, some seconds before the
  workload; a forecaster's warm start would read those idle seconds as history the
  simulator's run never had.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping

import numpy as np

from adapters.prometheus.client import PrometheusClient, PrometheusError, Series
from autoscaler.ports import MetricsChunk, NoData, ServiceKey
from load_tests.local.cluster import SERVICE

ARRIVALS_WINDOW_S = 10.0
"""Trace seconds `rate()` averages arrivals over (the speed-1 harness's window)."""
CONCURRENCY_WINDOW_S = 5.0
"""Trace seconds `irate()` looks back for its last two samples of the in-flight and queued
integrals..."""
MIN_LOOKBACK_S = 2.0
"""...and at least these wall seconds: a scrape the busy harness answered too late (the
timeout is one trace second) leaves a gap, and the two samples around it still give the
exact mean over the gap, where a shorter lookback would give nothing."""
QUERIES = {
    "arrivals": "sum(rate(lb_requests_total[{window}]))",
    # The last scrape interval's time-averaged concurrency, as Knative's queue-proxy reports it.
    "concurrency": "sum(irate(lb_in_flight_seconds_total[{window}]))",
    # ...and queue, as the simulator's per-second series holds it (see the module docstring).
    "queue": "sum(irate(lb_queued_seconds_total[{window}]))",
}
NO_NEW_SECOND = NoData("no whole trace second since the last read")
"""The answer before the first whole second: the data is complete up to now, only empty."""
MAX_POINTS = 10_000
"""Points per range query (Prometheus refuses more than 11,000)."""


def scrape_interval(speed: float) -> str:
    """The balancer's scrape interval for a replay at `speed`: one trace second."""
    return promql_duration(1.0 / speed)


def promql_duration(seconds: float) -> str:
    """Seconds as a PromQL duration, in whole milliseconds (at least 1 ms)."""
    return f"{max(1, round(seconds * 1000))}ms"


def on_trace_grid(
    times: np.ndarray, values: np.ndarray, first_wall: float, speed: float, n: int
) -> np.ndarray:
    """Values a range query gave at wall `times` (first step at `first_wall`, one step per
    trace second) as `n` per-trace-second samples; NaN where the answer has none."""
    out = np.full(n, np.nan)
    index = np.rint((np.asarray(times, dtype=float) - first_wall) * speed).astype(np.int64)
    inside = (index >= 0) & (index < n)
    out[index[inside]] = np.asarray(values, dtype=float)[inside]
    return out


def forward_filled(values: np.ndarray) -> np.ndarray | None:
    """Missing samples (a late scrape) take the previous one, leading ones the first present;
    None when none is present."""
    present = np.isfinite(values)
    if not present.any():
        return None
    last = np.maximum.accumulate(np.where(present, np.arange(values.size), -1))
    return values[np.where(last >= 0, last, int(np.argmax(present)))]


class TraceTimeSource:
    """A `MetricsSource` over the harness's Prometheus, in trace seconds (module docstring)."""

    def __init__(self, client: PrometheusClient, *, speed: float, second_zero: float) -> None:
        self.client, self.speed, self.second_zero = client, speed, second_zero
        self._next = 0
        """The first trace second no snapshot has returned yet."""

    def wall(self, trace_s: float) -> float:
        """The Unix time of a trace time."""
        return self.second_zero + trace_s / self.speed

    def render(self, signal: str) -> str:
        if signal == "arrivals":
            window = ARRIVALS_WINDOW_S / self.speed
        else:
            window = max(CONCURRENCY_WINDOW_S / self.speed, MIN_LOOKBACK_S)
        return QUERIES[signal].format(window=promql_duration(window))

    async def services(self) -> list[ServiceKey]:
        return [SERVICE]

    async def snapshot(self, now: float) -> Mapping[ServiceKey, MetricsChunk | NoData]:
        """The trace seconds since the last snapshot, up to the last whole one before `now`."""
        first, end = self._next, math.floor(now)
        if end <= first:
            return {SERVICE: NO_NEW_SECOND}
        try:
            answers = await asyncio.gather(*(self._series(s, first, end) for s in QUERIES))
        except PrometheusError as error:
            return {SERVICE: NoData(f"prometheus: {error}")}
        series = dict(zip(QUERIES, map(forward_filled, answers), strict=True))
        missing = [name for name, values in series.items() if values is None]
        if missing:
            return {SERVICE: NoData(f"no {', '.join(missing)} samples")}
        concurrency, arrivals, queue = series["concurrency"], series["arrivals"], series["queue"]
        assert concurrency is not None and arrivals is not None and queue is not None
        queue = np.minimum(queue, concurrency)
        self._next = end
        return {
            SERVICE: MetricsChunk(
                first,
                concurrency,
                arrivals,
                queue,
                # every request waiting and none in service: at zero, the activator's poke
                poke=bool(queue[-1] > 0 and queue[-1] >= concurrency[-1]),
            )
        }

    async def history(self, key: ServiceKey, start: float, end: float) -> np.ndarray:
        """Per-trace-second arrivals over [start, end), none before second 0; NaN where
        Prometheus has nothing (the forecasters take it as missing)."""
        first, last = max(0, math.floor(start)), math.floor(end)
        if key != SERVICE or last <= first:
            return np.zeros(0)
        return await self._series("arrivals", first, last)

    async def _series(self, signal: str, first: int, end: int) -> np.ndarray:
        """`signal` per trace second over [first, end): sample k evaluated at the end of
        second k, rates per trace second."""
        parts = []
        for lo in range(first, end, MAX_POINTS):
            hi = min(end, lo + MAX_POINTS)
            begin = self.wall(lo + 1)
            answer = await self.client.query_range(
                self.render(signal), begin, self.wall(hi), 1.0 / self.speed
            )
            parts.append(_summed(answer, begin, self.speed, hi - lo))
        values = np.concatenate(parts)
        return values / self.speed if signal == "arrivals" else values


def _summed(answer: list[Series], first_wall: float, speed: float, n: int) -> np.ndarray:
    """The series of an answer on the trace grid, summed (a `sum()` gives one or none)."""
    grids = [
        on_trace_grid(np.asarray(s.times), np.asarray(s.values), first_wall, speed, n)
        for s in answer
    ]
    if not grids:
        return np.full(n, np.nan)
    stacked = np.vstack(grids)
    total = np.nansum(stacked, axis=0)
    return np.where(np.isfinite(stacked).any(axis=0), total, np.nan)
