"""The simulator as a live cluster: `MetricsSource`, `Actuator` and `Catalog` in virtual time.

The batch simulator (`engine.simulate`) calls a policy itself; here the control loop decides
instead, through the ports, exactly as it will against Prometheus and Kubernetes. Each call
first advances the virtual cluster to the loop's clock: requests arrive and are served, cold
starts end, nodes come up. This is the embedded default of `leadtime run`: no Kubernetes, no
Prometheus, and every part of the service still runs for real.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping

import numpy as np

from adapters.simulator.cluster import EV_READY, GpuCluster
from adapters.simulator.config import SimConfig
from adapters.simulator.engine import WARM_SIZING_S, _Run, running_replicas, service_config
from adapters.simulator.requests import build_requests
from adapters.simulator.results import SimResult, summarise
from adapters.simulator.workload import Workload
from autoscaler.policy import Decision, Observation
from autoscaler.ports import MetricsChunk, NoData, ReplicaStatus, ServiceKey


class _External:
    """Stands in for the policy inside the engine: decisions come from the loop instead."""

    name = "leadtime"
    tick_s = 2.0
    history_s = 0.0
    pokeable = False

    def initial_replicas(self) -> int:
        return 1

    def initial_state(self, now: float, ready: int) -> None:
        return None

    def decide(self, observation: Observation, state: None) -> tuple[Decision, None]:
        raise AssertionError("the live simulator never asks the policy itself")


class LiveCluster:
    """Several simulated services on one simulated GPU cluster (see the module docstring)."""

    def __init__(self, services: list[tuple[ServiceKey, Workload]], config: SimConfig) -> None:
        self.config = config
        self.cluster = GpuCluster(config)
        self.workloads = dict(services)
        self.runs: dict[ServiceKey, _Run] = {}
        for index, (key, workload) in enumerate(services):
            own = service_config(config, index)
            run = _Run(
                build_requests(workload, own),
                workload.duration,
                _External(),
                own,
                None,
                self.cluster,
            )
            run.start_warm()
            self.runs[key] = run
        self.time = 0.0
        self._sent = dict.fromkeys(self.runs, 0)
        self._wall0 = time.perf_counter()

    def warm_up(self) -> float:
        """Run the services through their warm-up as the running services they were before
        Leadtime took over, and return the virtual time the loop takes over at.

        Each minute every service is set to the replicas its load over the next minute and one
        cold start keeps busy at the common utilisation target (`engine.running_replicas`), as
        a service that has been running for a while under some autoscaler. The loop then finds
        a running service and the warm-up in its history (as Prometheus would have it)."""
        until = min(run.scored_from for run in self.runs.values())
        span = WARM_SIZING_S + self.config.cold_start_s
        for minute in np.arange(0.0, until, WARM_SIZING_S):
            self.advance(float(minute))
            for run in self.runs.values():
                need = running_replicas(run.requests, run.m, float(minute), span)
                run._apply(Decision(need, "warm-up"), float(minute))
        self.advance(until)
        self._sent = {key: run.seconds_done for key, run in self.runs.items()}
        return until

    @property
    def duration(self) -> float:
        """Virtual seconds until the last workload ends."""
        return max(workload.duration for workload in self.workloads.values())

    # ---------------------------------------------------------------- advancing time
    def advance(self, to: float) -> None:
        """Run the cluster up to virtual time `to`."""
        if to <= self.time:
            return
        cluster = self.cluster
        while True:
            barrier = min(cluster.next_event_at(), to)
            for run in self.runs.values():
                run.serve_until(min(barrier, cluster.next_event_at()))
            event_at = cluster.next_event_at()
            if event_at > to:
                break
            at, kind, tenant, rid = cluster.pop_event()
            if kind == EV_READY:
                assert isinstance(tenant, _Run)
                tenant.on_ready(rid, at)
        for run in self.runs.values():
            run._expire_queue(to)
            run._finalise_seconds(int(math.floor(to)))
        cluster.remove_idle_nodes(to)
        self.time = to

    # ------------------------------------------------------------------------- ports
    async def services(self) -> list[ServiceKey]:
        return list(self.runs)

    async def snapshot(self, now: float) -> Mapping[ServiceKey, MetricsChunk | NoData]:
        self.advance(now)
        out: dict[ServiceKey, MetricsChunk | NoData] = {}
        for key, run in self.runs.items():
            start, end = self._sent[key], run.seconds_done
            if end <= start and now > run.stop_at:
                out[key] = NoData("the simulated workload has ended")
                continue
            self._sent[key] = end
            out[key] = MetricsChunk(
                start,
                run.concurrency_ps[start:end].copy(),
                run.arrivals_ps[start:end].copy(),
                run.queue_ps[start:end].copy(),
                poke=bool(run.queue) and run.desired == 0,
                attainment=run.attainment(end),
            )
        return out

    async def history(self, key: ServiceKey, start: float, end: float) -> np.ndarray:
        run = self.runs[key]
        first = max(0, int(start))
        last = min(int(end), run.seconds_done)
        return run.arrivals_ps[first:last].copy() if last > first else np.zeros(0)

    async def apply(self, decisions: Mapping[ServiceKey, int]) -> Mapping[ServiceKey, str]:
        failures = {}
        for key, desired in decisions.items():
            run = self.runs.get(key)
            if run is None:
                failures[key] = "no such service in the simulated cluster"
                continue
            run._apply(Decision(desired, "leadtime"), self.time)
        return failures

    async def status(self, keys: list[ServiceKey]) -> Mapping[ServiceKey, ReplicaStatus]:
        out = {}
        for key in keys:
            run = self.runs.get(key)
            if run is None:
                continue
            out[key] = ReplicaStatus(
                run.n_ready, run._pending(), run.desired, run.measured_cold_start
            )
        return out

    # ----------------------------------------------------------------------- results
    def results(self) -> list[SimResult]:
        """What each service's requests got so far (the run is cut at the current time)."""
        wall = time.perf_counter() - self._wall0
        out = []
        for key, run in self.runs.items():
            run.finish(max(self.time, 1e-9))
            result = summarise(
                self.workloads[key], "leadtime", run.config, run.requests, run, None, wall_s=wall
            )
            result.trace = str(key)
            out.append(result)
        return out
