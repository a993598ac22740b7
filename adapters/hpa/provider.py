"""The external metrics' values, read from the control loop's state of each service."""

from __future__ import annotations

import math

from adapters.hpa.metrics_api import DESIRED_REPLICAS, FORECAST_LOAD, Sample
from adapters.kubernetes.api import rfc3339
from autoscaler.loop import ControlLoop
from autoscaler.service_state import ServiceState


def loop_provider(loop: ControlLoop):
    """A `Provider` over the loop: one sample per service of the namespace that has a value."""

    def samples(namespace: str, metric: str) -> list[Sample]:
        now = loop.clock.now()
        stamp = rfc3339(now)
        found = []
        for key, state in loop.states.items():
            if key.namespace != namespace:
                continue
            value = (
                desired(state)
                if metric == DESIRED_REPLICAS
                else state.forecast_load(now)
                if metric == FORECAST_LOAD
                else None
            )
            if value is not None and math.isfinite(value):
                labels = {"service": key.name, "namespace": key.namespace}
                found.append(Sample(metric, labels, value, stamp))
        return found

    return samples


def desired(state: ServiceState) -> float | None:
    """Leadtime's latest decision (held decisions included), else what the cluster runs."""
    if state.last is not None:
        return float(state.last.desired)
    return float(state.status.desired) if state.status.desired else None
