"""Observations for tests of the policies that average a steady load (HPA, KEDA, AIBrix's APA)."""

from __future__ import annotations

import numpy as np

from autoscaler.policy import Observation


def steady_observation(
    total: float | None,
    *,
    seconds: int,
    now: float,
    ready: int,
    pending: int = 0,
    desired: int | None = None,
) -> Observation:
    """`seconds` of `total` requests in flight across the service, nothing queued (None: an
    empty series, no metrics delivered); the spec's replicas are ready + pending unless given."""
    series = np.zeros(0) if total is None else np.full(seconds, float(total))
    return Observation(
        now=now,
        concurrency=series,
        arrivals=np.zeros_like(series),
        queue=np.zeros_like(series),
        ready=ready,
        pending=pending,
        desired=ready + pending if desired is None else desired,
    )
