"""What a simulation reports: the summary figures and per-second series for plots."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from adapters.simulator.config import SimConfig
from adapters.simulator.oracle import lower_bound_gpu_seconds
from adapters.simulator.requests import Requests
from adapters.simulator.workload import Workload
from autoscaler.policy import Decision
from autoscaler.slo import met_slo

if TYPE_CHECKING:
    from adapters.simulator.cluster import GpuCluster


class RunRecord(Protocol):
    """What `summarise` reads of one service's simulation (the engine's run state): when each
    request started and ended, which were dropped or met a cold start, the replicas' grant and
    release times, and the per-second series. A protocol, so the results need not import the
    engine that fills it."""

    scored_from: float
    end_time: float
    start: list[float]
    end: list[float]
    dropped: bytearray
    cold: bytearray
    rep_granted: list[float]
    rep_gone: list[float]
    ready_area: float
    scale_events: int
    arrivals_ps: np.ndarray
    concurrency_ps: np.ndarray
    queue_ps: np.ndarray
    ticks: TickLog


RESULT_KEYS = (
    "requests",
    "slo_attainment",
    "ttft_p50_s",
    "ttft_p99_s",
    "latency_p99_s",
    "cold_start_requests",
    "dropped_requests",
    "gpu_seconds",
    "cluster_gpu_seconds",
    "oracle_gpu_seconds",
    "mean_ready_replicas",
    "scale_events",
    "sim_wall_s",
)


@dataclass
class TickLog:
    """One row per policy evaluation: what the policy saw of the fleet and what it decided."""

    time: list[float] = field(default_factory=list)
    ready: list[int] = field(default_factory=list)
    pending: list[int] = field(default_factory=list)
    desired: list[int] = field(default_factory=list)
    reason: list[str] = field(default_factory=list)
    forecast_for: list[float] = field(default_factory=list)
    """When a forecast was in the observation: the time it was for (now + the lead time)."""
    forecast_p50: list[float] = field(default_factory=list)
    forecast_p90: list[float] = field(default_factory=list)
    """The forecast's median and p90 arrival rate (requests/s) at `forecast_for`."""

    def record(self, now: float, ready: int, pending: int, decision: Decision) -> None:
        self.time.append(now)
        self.ready.append(ready)
        self.pending.append(pending)
        self.desired.append(decision.desired)
        self.reason.append(decision.reason)

    def record_forecast(self, at: float, p50: float, p90: float) -> None:
        self.forecast_for.append(at)
        self.forecast_p50.append(p50)
        self.forecast_p90.append(p90)


@dataclass(eq=False)
class SimResult:
    """Summary figures (`summary`, JSON-ready) and series (`series`, numpy, for plots)."""

    trace: str
    policy: str
    summary: dict[str, Any]
    series: dict[str, np.ndarray]
    ticks: TickLog
    outcomes: dict[str, np.ndarray]
    """Per request: `start` (-1 if never started), `end` (finish or drop time, -1 if neither),
    `dropped`, `cold_start` (waited for a replica that was still starting), `ttft`, `latency`,
    `arrived` (within the scored window: after the warm-up, before the run ended), `served`
    (arrived and finished before the run ended), `met_slo` (served within the SLO)."""

    def to_dict(self) -> dict[str, Any]:
        return {"trace": self.trace, "policy": self.policy, **self.summary}


def summarise(
    workload: Workload,
    policy_name: str,
    config: SimConfig,
    requests: Requests,
    run: RunRecord,
    cluster: GpuCluster | None,
    *,
    wall_s: float,
) -> SimResult:
    """Per-request outcomes → the figures of the issue, plus the oracle bound for this run.

    Only the scored window counts: requests that arrive from the end of the warm-up
    (`run.scored_from`) on, and GPUs held from then on. A request meets the SLO by
    `autoscaler.slo.met_slo`. `cluster` is given when this service is the whole run: the
    cluster's figures (GPUs up, placeholders) are then its own; with several services only
    their total carries them."""
    end_time, scored_from = run.end_time, run.scored_from
    start = np.asarray(run.start)
    end = np.asarray(run.end)
    dropped = np.frombuffer(bytes(run.dropped), dtype=np.uint8).astype(bool)
    cold = np.frombuffer(bytes(run.cold), dtype=np.uint8).astype(bool)
    arrived = (requests.arrival >= scored_from) & (requests.arrival <= end_time)
    served = arrived & (start >= 0) & (end <= end_time) & ~dropped
    wait = np.where(start >= 0, start - requests.arrival, np.nan)
    ttft = wait + requests.prefill
    met = served & met_slo(wait, requests.prefill, config.slo_ttft_s)
    latency = end - requests.arrival
    n_arrived = int(arrived.sum())
    oracle = lower_bound_gpu_seconds(
        requests.arrival,
        requests.prefill,
        requests.service,
        met,
        slo_ttft_s=config.slo_ttft_s,
        slots=config.max_concurrency,
        shortest_cold_start=config.cold_start_bounds[0],
        gpus_per_replica=config.gpus_per_replica,
        scored_from=scored_from,
    )
    scored_s = end_time - scored_from
    granted = np.asarray(run.rep_granted)
    summary = {
        "requests": n_arrived,
        "served_requests": int(served.sum()),
        "in_flight_requests": int(n_arrived - served.sum() - (dropped & arrived).sum()),
        "slo_attainment": float(met.sum() / n_arrived) if n_arrived else 1.0,
        "ttft_p50_s": _percentile(ttft[served], 50),
        "ttft_p99_s": _percentile(ttft[served], 99),
        "latency_p99_s": _percentile(latency[served], 99),
        "cold_start_requests": int((cold & arrived).sum()),
        "dropped_requests": int((dropped & arrived).sum()),
        "gpu_seconds": _gpu_seconds(run, end_time, config.gpus_per_replica),
        **_cluster_figures(cluster),
        "oracle_gpu_seconds": oracle,
        "mean_ready_replicas": run.ready_area / scored_s if scored_s > 0 else 0.0,
        "scale_events": run.scale_events,
        "replicas_started": int((granted >= scored_from).sum()),
        "warmup_s": scored_from,
        "duration_s": end_time,
        "sim_wall_s": wall_s,
    }
    seconds = int(np.ceil(end_time))
    missed = arrived & ~met
    series = {
        "arrivals": run.arrivals_ps[:seconds],
        "concurrency": run.concurrency_ps[:seconds],
        "queue": run.queue_ps[:seconds],
        "slo_misses": np.bincount(
            np.floor(requests.arrival[missed]).astype(np.int64), minlength=seconds
        )[:seconds],
    }
    outcomes = {
        "start": start,
        "end": end,
        "dropped": dropped,
        "cold_start": cold,
        "ttft": ttft,
        "latency": latency,
        "arrived": arrived,
        "served": served,
        "met_slo": met,
    }
    return SimResult(
        workload.source or workload.name, policy_name, summary, series, run.ticks, outcomes
    )


def _cluster_figures(cluster: GpuCluster | None) -> dict[str, Any]:
    """What the shared GPUs did: GPUs up (bounded pools only), placeholders, nodes."""
    if cluster is None:
        return {}
    return {
        "cluster_gpu_seconds": cluster.gpu_seconds,
        "placeholder_gpu_seconds": cluster.placeholder_area,
        "placeholder_preemptions": cluster.preemptions,
        "nodes_added": cluster.nodes_added,
    }


def _percentile(values: np.ndarray, q: float) -> float | None:
    return float(np.percentile(values, q)) if values.size else None


def _gpu_seconds(run: RunRecord, end_time: float, gpus: int) -> float:
    """A replica costs from the moment it holds its GPUs until it is gone (or the run ends),
    counted within the scored window."""
    granted = np.asarray(run.rep_granted)
    gone = np.asarray(run.rep_gone)
    alive_until = np.where(gone >= 0, np.minimum(gone, end_time), end_time)
    held = granted >= 0
    alive_from = np.maximum(granted[held], run.scored_from)
    return float(gpus * np.clip(alive_until[held] - alive_from, 0.0, None).sum())


def combine(results: list[SimResult], cluster: GpuCluster, *, wall_s: float) -> SimResult:
    """The total of several services run together: requests and outcomes pooled, GPU-seconds
    summed, oracle bounds summed (a sum of lower bounds is one), and the cluster's figures."""
    outcomes = {
        key: np.concatenate([result.outcomes[key] for result in results])
        for key in results[0].outcomes
    }
    arrived, met, served = outcomes["arrived"], outcomes["met_slo"], outcomes["served"]
    n_arrived = int(arrived.sum())

    def total(key: str) -> float:
        return sum(result.summary[key] for result in results)

    summary = {
        "requests": n_arrived,
        "served_requests": int(total("served_requests")),
        "in_flight_requests": int(total("in_flight_requests")),
        "slo_attainment": float(met.sum() / n_arrived) if n_arrived else 1.0,
        "ttft_p50_s": _percentile(outcomes["ttft"][served], 50),
        "ttft_p99_s": _percentile(outcomes["ttft"][served], 99),
        "latency_p99_s": _percentile(outcomes["latency"][served], 99),
        "cold_start_requests": int(total("cold_start_requests")),
        "dropped_requests": int(total("dropped_requests")),
        "gpu_seconds": total("gpu_seconds"),
        **_cluster_figures(cluster),
        "oracle_gpu_seconds": total("oracle_gpu_seconds"),
        "mean_ready_replicas": total("mean_ready_replicas"),
        "scale_events": int(total("scale_events")),
        "replicas_started": int(total("replicas_started")),
        "warmup_s": min(result.summary["warmup_s"] for result in results),
        "duration_s": max(result.summary["duration_s"] for result in results),
        "sim_wall_s": wall_s,
    }
    seconds = max(result.series["arrivals"].size for result in results)
    series = {
        key: sum(
            (np.pad(r.series[key], (0, seconds - r.series[key].size)) for r in results),
            np.zeros(seconds),
        )
        for key in results[0].series
    }
    return SimResult("total", results[0].policy, summary, series, TickLog(), outcomes)
