"""A revision's pods as plain data: counts, as the KPA reconciler counts them, and learned
cold starts.

The cold start is what Leadtime's lead time is made of, so it is measured on the cluster,
per revision: from a pod's creation to its Ready condition turning True — scheduling, image
pull, model load and readiness probe together, as the user experiences them.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass

RECENT_COLD_STARTS = 5


@dataclass(frozen=True)
class PodInfo:
    name: str
    phase: str
    ready: bool
    terminating: bool
    created_s: float
    ready_at_s: float | None
    """When Ready last turned True (None: not ready)."""


@dataclass(frozen=True)
class PodCounts:
    ready: int = 0
    not_ready: int = 0
    pending: int = 0
    terminating: int = 0


def count(pods: Iterable[PodInfo]) -> PodCounts:
    ready = not_ready = pending = terminating = 0
    for pod in pods:
        if pod.terminating:
            terminating += 1
        elif pod.ready:
            ready += 1
        elif pod.phase == "Pending":
            pending += 1
        else:
            not_ready += 1
    return PodCounts(ready, not_ready, pending, terminating)


def cold_start_s(pods: Iterable[PodInfo], recent: int = RECENT_COLD_STARTS) -> float | None:
    """Median creation-to-Ready time of the most recently ready pods, or None if none is."""
    samples = sorted(
        (pod.ready_at_s, pod.ready_at_s - pod.created_s)
        for pod in pods
        if pod.ready and pod.ready_at_s is not None and pod.ready_at_s >= pod.created_s
    )
    if not samples:
        return None
    return float(statistics.median(delay for _, delay in samples[-recent:]))
