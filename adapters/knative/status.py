"""The PodAutoscaler's status, computed from what the reconcile saw (as the KPA reconciler
writes it), as a pure function."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from adapters.knative.conditions import FALSE, TRUE, UNKNOWN, set_condition, status_of, with_ready
from adapters.knative.names import ACTIVE, ANNOTATIONS_VALID, SCALE_TARGET_INITIALIZED, SKS_READY


@dataclass(frozen=True)
class StatusInputs:
    generation: int
    previous: Mapping[str, Any]
    """The PA's current status (may be empty)."""
    service_name: str
    metrics_service_name: str
    sks_ready: bool
    sks_message: str
    desired_scale: int
    ready: int
    min_scale: int
    initial_scale: int
    now: str
    problems: Mapping[str, str] = field(default_factory=dict)


def pa_status(inputs: StatusInputs) -> dict[str, Any]:
    conditions = list(inputs.previous.get("conditions") or [])
    now = inputs.now
    if inputs.sks_ready:
        conditions = set_condition(conditions, SKS_READY, TRUE, now)
    else:
        conditions = set_condition(
            conditions, SKS_READY, UNKNOWN, now, "NotReady", inputs.sks_message
        )
    initialized = status_of(conditions, SCALE_TARGET_INITIALIZED) == TRUE
    min_ready = (
        max(inputs.min_scale, 1) if initialized else max(inputs.min_scale, inputs.initial_scale)
    )
    if not initialized:
        if inputs.ready >= min_ready and inputs.service_name:
            conditions = set_condition(conditions, SCALE_TARGET_INITIALIZED, TRUE, now)
            initialized = True
        else:
            conditions = set_condition(
                conditions,
                SCALE_TARGET_INITIALIZED,
                UNKNOWN,
                now,
                "Queued",
                f"{inputs.ready} of {min_ready} replicas ready",
            )
    conditions = _active(conditions, inputs, min_ready, now)
    conditions = _annotations(conditions, inputs.problems, now)
    return {
        "observedGeneration": inputs.generation,
        "serviceName": inputs.service_name,
        "metricsServiceName": inputs.metrics_service_name,
        "desiredScale": inputs.desired_scale,
        "actualScale": inputs.ready,
        "conditions": with_ready(conditions, now),
    }


def _active(conditions: list, inputs: StatusInputs, min_ready: int, now: str) -> list:
    if inputs.desired_scale == 0 or min_ready == 0:
        activating = status_of(conditions, ACTIVE) == UNKNOWN and any(
            c.get("type") == ACTIVE for c in conditions
        )
        reason = "TimedOut" if activating else "NoTraffic"
        return set_condition(
            conditions, ACTIVE, FALSE, now, reason, "The target is not receiving traffic."
        )
    if inputs.ready < min_ready:
        return set_condition(
            conditions,
            ACTIVE,
            UNKNOWN,
            now,
            "Queued",
            "Requests to the target are being buffered as resources are provisioned.",
        )
    return set_condition(conditions, ACTIVE, TRUE, now)


def _annotations(conditions: list, problems: Mapping[str, str], now: str) -> list:
    if problems:
        message = "; ".join(problems[key] for key in sorted(problems))
        return set_condition(
            conditions,
            ANNOTATIONS_VALID,
            FALSE,
            now,
            "InvalidAnnotation",
            message,
            severity="Warning",
        )
    return set_condition(conditions, ANNOTATIONS_VALID, TRUE, now, severity="Warning")
