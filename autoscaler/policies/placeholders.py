"""Sizing the GPU placeholder pool: how many spare GPUs to hold so scale-ups skip node provisioning.

A new GPU node takes minutes (180 s by default in the simulator; often more on a cloud). A
replica that finds no free GPU waits for that on top of its own cold start. Placeholder pods —
low-priority pods that only hold GPUs, preempted at once by a real replica — keep that wait off
the critical path (the cluster-autoscaler "overprovisioning" pattern). Holding them costs GPU-
seconds, so they are sized from the forecast, per GPU class, across every service of that class:

    placeholders = ceil( (Σ expected_i + √Σ (upper_i − expected_i)²) · gpus / pod )

`expected_i` is what service i's median forecast adds within one node provisioning, `upper_i`
what its upper quantile adds. Expected growth adds up; the surprises of independent services
rarely coincide, so their spreads add in quadrature. That is what pooling buys: one spare node
covers whichever service bursts first, where per-service pools would each hold their own.
Pure: plain data in, counts out.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from autoscaler.policy import Observation


@dataclass(frozen=True, slots=True)
class ScaleUpNeed:
    """One service's forecast growth within the node-provisioning time, in replicas."""

    gpu_class: str
    gpus_per_replica: int
    expected: float
    """Replicas beyond its current count that the median forecast asks for."""
    upper: float
    """The same for the upper quantile; at least `expected`."""

    def __post_init__(self) -> None:
        if self.gpus_per_replica < 1:
            raise ValueError(f"gpus_per_replica must be >= 1, got {self.gpus_per_replica}")
        if not (0 <= self.expected <= self.upper) or not math.isfinite(self.upper):
            raise ValueError(
                f"need 0 <= expected <= upper < inf, got {self.expected!r}, {self.upper!r}"
            )


@runtime_checkable
class SizesPlaceholders(Protocol):
    """A policy whose forecast growth sizes the cluster's GPU placeholder pool."""

    def scale_up_need(
        self,
        observation: Observation,
        state: Any,
        *,
        current: int,
        within_s: float,
        gpu_class: str,
        gpus_per_replica: int,
    ) -> ScaleUpNeed | None:
        """Replicas beyond `current` the forecast asks for within `within_s`; None without a
        usable forecast or when the policy does not size placeholders."""
        ...


def placeholder_pods(needs: Iterable[ScaleUpNeed]) -> dict[str, int]:
    """Placeholder pods per GPU class (see the module docstring). A pod holds as many GPUs as
    the largest replica of its class, so any replica of the class can take its place."""
    expected: dict[str, float] = defaultdict(float)
    spread_sq: dict[str, float] = defaultdict(float)
    pod_gpus: dict[str, int] = defaultdict(int)
    for need in needs:
        gpus = need.gpus_per_replica
        expected[need.gpu_class] += need.expected * gpus
        spread_sq[need.gpu_class] += ((need.upper - need.expected) * gpus) ** 2
        pod_gpus[need.gpu_class] = max(pod_gpus[need.gpu_class], gpus)
    return {
        gpu_class: math.ceil((expected[gpu_class] + math.sqrt(spread_sq[gpu_class])) / size - 1e-9)
        for gpu_class, size in pod_gpus.items()
    }
