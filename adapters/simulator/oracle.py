"""The clairvoyant yardstick: how few GPU-seconds perfect knowledge of the future would need.

Two things live here, both built from the same replica staircase r(t) = ⌈N(t) / slots⌉, where
N(t) counts requests that must be holding a slot at time t:

1. `lower_bound_gpu_seconds` — the `oracle_gpu_seconds` of every result. Its exact definition:

   Take the requests that the run served within the SLO. Such a request arrived at `a`, has
   wait budget `b` (`autoscaler.slo.wait_budget`: `slo − p` for a short prompt of prefill `p`)
   and service time `s`; meeting the SLO means it started by `a + b`, so whatever the schedule
   it held a slot throughout its *mandatory interval* `[a + b, a + s)`. Let N(t) count the
   mandatory intervals covering t; at every t any schedule had at least
   r(t) = ⌈N(t)/max_concurrency⌉ replicas ready. For each level k of that staircase, with need
   intervals I_k,1 … I_k,j (where r ≥ k):
        cost_k = Σ |I_k,i| + min(start of I_k,1, C) + Σ_i min(gap between I_k,i and I_k,i+1, C)
   where C is the shortest cold start a replica can draw. The bound is Σ_k cost_k times
   `gpus_per_replica`.

   Why it is a lower bound for the run that produced it: writing the run's cost as
   ∫ A(t) dt = Σ_k |{t : A(t) ≥ k}| with A the replicas alive (holding GPUs), A ≥ r ≥ k on I_k;
   across a gap of level k, either A stays ≥ k for the whole gap, or it dips below k and then
   the ≥ k replicas ready when the need returns were all alive for the C seconds before it (a
   replica is alive for its whole cold start), so the gap adds at least min(gap, C); the same
   argument from the start of the scored window (time 0, or the end of the warm-up, from which
   GPU-seconds are counted too) gives min(start, C) for the first interval. Hence every result has
   gpu_seconds ≥ oracle_gpu_seconds, whatever its policy — the simulator's tests check it.

2. `zero_wait_need` — the per-second replica need if every request starts the moment it
   arrives; the `oracle` policy provisions it one (longest) cold start ahead.
"""

from __future__ import annotations

import math

import numpy as np

from adapters.simulator.config import SimConfig
from adapters.simulator.requests import build_requests
from adapters.simulator.workload import Workload
from autoscaler.policies.catalog import PolicyContext
from autoscaler.slo import wait_budget


def occupancy(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The step function N(t) of intervals [start, end): change times and the count after each.

    At equal times departures come first, so a slot freed at t can serve an arrival at t.
    """
    keep = ends > starts
    starts, ends = starts[keep], ends[keep]
    times = np.concatenate([starts, ends])
    deltas = np.concatenate([np.ones(starts.size), -np.ones(ends.size)])
    order = np.lexsort((deltas, times))
    times, counts = times[order], np.cumsum(deltas[order])
    last_of_time = np.ones(times.size, dtype=bool)
    last_of_time[:-1] = times[1:] != times[:-1]
    return times[last_of_time], counts[last_of_time]


def level_cover_cost(times: np.ndarray, levels: np.ndarray, cold_start: float) -> float:
    """Σ over staircase levels of (time needed + bridging ≤ one cold start per interval).

    `levels[j]` holds on [times[j], times[j+1]); the last level must be 0.
    """
    if times.size == 0:
        return 0.0
    durations = np.diff(times)
    body = levels[:-1]
    total = float(np.dot(body, durations))
    for k in range(1, int(levels.max(initial=0)) + 1):
        on = levels >= k
        edges = np.diff(on.astype(np.int8))
        starts = times[1:][edges == 1]
        ends = times[1:][edges == -1]
        if on[0]:
            starts = np.concatenate([times[:1], starts])
        gaps = starts[1:] - ends[: starts.size - 1]
        total += min(float(starts[0]), cold_start) + float(np.minimum(gaps, cold_start).sum())
    return total


def lower_bound_gpu_seconds(
    arrival: np.ndarray,
    prefill: np.ndarray,
    service: np.ndarray,
    met_slo: np.ndarray,
    *,
    slo_ttft_s: float,
    slots: int,
    shortest_cold_start: float,
    gpus_per_replica: int,
    scored_from: float = 0.0,
) -> float:
    """The oracle bound defined in the module docstring, for the requests in `met_slo`, all of
    which arrived at or after `scored_from`, the start of the scored window."""
    a, p, s = arrival[met_slo] - scored_from, prefill[met_slo], service[met_slo]
    times, counts = occupancy(a + wait_budget(p, slo_ttft_s), a + s)
    levels = np.ceil(counts / slots - 1e-9).astype(np.int64)
    return gpus_per_replica * level_cover_cost(times, levels, shortest_cold_start)


def zero_wait_need(
    arrival: np.ndarray, service: np.ndarray, slots: int, seconds: int
) -> np.ndarray:
    """Replicas needed in each second so that no request ever waits (the max within the second)."""
    times, counts = occupancy(arrival, arrival + service)
    most = np.zeros(seconds)
    if times.size:
        buckets = np.floor(times).astype(np.int64)
        inside = buckets < seconds
        np.maximum.at(most, buckets[inside], counts[inside])
        before = np.searchsorted(times, np.arange(seconds), side="left") - 1
        at_start = np.where(before >= 0, counts[np.maximum(before, 0)], 0.0)
        most = np.maximum(most, at_start)
    return np.ceil(most / slots - 1e-9).astype(np.int64)


def forward_max(values: np.ndarray, window: int) -> np.ndarray:
    """out[i] = max(values[i : i + window]) by doubling, O(n log window)."""
    out = values.copy()
    span = 1
    while span < window:
        step = min(span, window - span)
        out[:-step] = np.maximum(out[:-step], out[step:])
        span += step
    return out


def lookahead_seconds(longest_cold_start: float, tick_s: float) -> int:
    """How far ahead a clairvoyant policy must look to have replicas ready in time."""
    return int(math.ceil(longest_cold_start + tick_s)) + 1


def oracle_need_ahead(
    arrival: np.ndarray,
    service: np.ndarray,
    *,
    slots: int,
    longest_cold_start: float,
    tick_s: float,
    seconds: int,
) -> np.ndarray:
    """What the `oracle` policy holds at each second: the zero-wait need over its look-ahead."""
    need = zero_wait_need(arrival, service, slots, seconds)
    return forward_max(need, lookahead_seconds(longest_cold_start, tick_s))


def policy_context(
    workload: Workload, config: SimConfig, container_concurrency: int | None = None
) -> PolicyContext:
    """The context policies get in the simulator, where the future is known to the oracle.

    `config` must be the service's own (`engine.service_config`) so the oracle sees the very
    requests the service will. `container_concurrency` is what the policies are told a replica
    takes (default: the simulated slots; 0: unset, Knative's default target applies)."""

    def need_ahead(tick_s: float) -> np.ndarray:
        requests = build_requests(workload, config)
        seconds = (
            int(workload.duration + config.request_timeout_s + requests.service.max(initial=0.0))
            + 2
        )
        return oracle_need_ahead(
            requests.arrival,
            requests.service,
            slots=config.max_concurrency,
            # with a bounded pool, one node provisioning further: ready even when the
            # replicas' GPUs must first be provisioned
            longest_cold_start=config.cold_start_bounds[1] + config.node_wait_s,
            tick_s=tick_s,
            seconds=seconds,
        )

    slots = config.max_concurrency if container_concurrency is None else container_concurrency
    service = build_requests(workload, config).service
    profiled = float(service.mean()) if service.size else None
    return PolicyContext(
        container_concurrency=slots,
        oracle_need_ahead=need_ahead,
        profiled_service_s=profiled,
        slo_ttft_s=config.slo_ttft_s,
    )
