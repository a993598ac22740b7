"""The local cluster behind Leadtime's ports: one service (`local/model`) whose replicas are
processes; `apply` scales them and points Prometheus' file targets at the new set. It reports
cold starts in trace seconds (the replica manager's), and when each change of scale happened,
so that a load test counts only the ones in its scored window."""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping

from autoscaler.ports import ReplicaStatus, ServiceKey
from load_tests.local.prometheus_server import PrometheusProcess
from load_tests.local.replicas import ReplicaManager

SERVICE = ServiceKey("local", "model")


class LocalCluster:
    def __init__(self, replicas: ReplicaManager, prometheus: PrometheusProcess) -> None:
        self.replicas = replicas
        self.prometheus = prometheus
        self.scale_times: list[float] = []
        """Unix time of every change of the replica count."""

    async def services(self) -> list[ServiceKey]:
        return [SERVICE]

    async def apply(self, decisions: Mapping[ServiceKey, int]) -> Mapping[ServiceKey, str]:
        failures = {key: f"{key}: not a local service" for key in decisions if key != SERVICE}
        if SERVICE in decisions:
            if decisions[SERVICE] != len(self.replicas.replicas):
                self.scale_times.append(time.time())
            await self.replicas.scale(decisions[SERVICE])
            self.prometheus.set_file_targets(
                [f"127.0.0.1:{replica.port}" for replica in self.replicas.replicas]
            )
        return failures

    async def status(self, keys: list[ServiceKey]) -> Mapping[ServiceKey, ReplicaStatus]:
        every, ready = len(self.replicas.replicas), len(self.replicas.ready)
        recent = self.replicas.cold_starts[-5:]
        cold = float(statistics.median(recent)) if recent else None
        return (
            {SERVICE: ReplicaStatus(ready, every - ready, every, cold)} if SERVICE in keys else {}
        )
