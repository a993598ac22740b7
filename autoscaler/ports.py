"""The ports between the control loop and the world (docs/architecture.md §3): what adapters
implement.

The loop knows these shapes only; Prometheus, Kubernetes and the simulator are adapters behind
them, chosen by the composition root (`leadtime/run.py` for the embedded simulator,
`leadtime/run_live.py` for a cluster). Everything crossing a port is
plain data, so the loop is tested against the simulator adapter and a fake clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import numpy as np

from autoscaler.slo import Attainment


class ServiceKey(NamedTuple):
    """A scaled service, as Kubernetes names it."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class MetricsChunk:
    """Per-second samples of one service for the whole seconds [start, start + n).

    `concurrency` is requests in the system (queued + in service), `arrivals` requests that
    arrived in each second, `queue` requests waiting; the same meanings as in `Observation`.
    A source that samples less often than every second repeats its sample over the seconds it
    stands for."""

    start: int
    concurrency: np.ndarray
    arrivals: np.ndarray
    queue: np.ndarray
    poke: bool = False
    """A request reached the service while it had no replica (Knative's activator poke)."""
    extras: Mapping[str, float] | None = None
    """Further signals' newest values (KV-cache use, tokens/s, GPU utilisation), if read."""
    attainment: Attainment | None = None
    """Requests within the SLO over the source's sliding window, when the source can tell."""

    def __post_init__(self) -> None:
        if not self.concurrency.size == self.arrivals.size == self.queue.size:
            sizes = (self.concurrency.size, self.arrivals.size, self.queue.size)
            raise ValueError(f"metrics chunk: series of unequal lengths {sizes}")

    @property
    def end(self) -> int:
        return self.start + int(self.arrivals.size)


@dataclass(frozen=True, slots=True)
class NoData:
    """Why a source has nothing usable for a service this tick (the policy then holds)."""

    reason: str


@dataclass(frozen=True, slots=True)
class ReplicaStatus:
    """What the cluster says about a service's replicas."""

    ready: int
    pending: int
    desired: int
    cold_start_s: float | None = None
    """Measured time from requested to ready of its recent replicas, if any was seen."""


class MetricsSource(Protocol):
    """Where demand comes from (Prometheus, the simulator)."""

    async def snapshot(self, now: float) -> Mapping[ServiceKey, MetricsChunk | NoData]:
        """New samples of every service since the previous snapshot, in one batched read."""
        ...

    async def history(self, key: ServiceKey, start: float, end: float) -> np.ndarray:
        """Per-second arrivals of `key` over [start, end), for warm starts after a restart."""
        ...


class Actuator(Protocol):
    """What changes replica counts (Knative PA + SKS, HPA, Deployments, the simulator)."""

    async def apply(self, decisions: Mapping[ServiceKey, int]) -> Mapping[ServiceKey, str]:
        """Set desired replicas; returns an error message per service that failed."""
        ...

    async def status(self, keys: list[ServiceKey]) -> Mapping[ServiceKey, ReplicaStatus]:
        """Replica counts (and measured cold starts) of the given services."""
        ...


class Catalog(Protocol):
    """Which services Leadtime manages."""

    async def services(self) -> list[ServiceKey]: ...


class ServiceAdapter(Catalog, Actuator, Protocol):
    """An adapter that both lists its services and scales them (Knative, the HPA adapter)."""


class Clock(Protocol):
    """Time for the loop: wall time live, virtual time in the embedded simulator."""

    def now(self) -> float: ...

    async def sleep_until(self, when: float) -> None: ...
