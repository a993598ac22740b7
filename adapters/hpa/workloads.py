"""Plain workloads (Deployments, StatefulSets) scaled by Leadtime through /scale, for clusters
with neither Knative nor an HPA in charge — as a pure rule on top of the policy's decision.

No activator buffers requests in front of a plain workload, so Leadtime never takes one to
zero unless the workload says that is fine (`leadtime.dev/allow-zero: "true"`, for batch
consumers that wait on a queue).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

AUTOSCALE = "leadtime.dev/autoscale"
ALLOW_ZERO = "leadtime.dev/allow-zero"


def opted_in(annotations: Mapping[str, str] | None) -> bool:
    return (annotations or {}).get(AUTOSCALE, "").lower() == "true"


def replicas_for(decision: int, annotations: Mapping[str, str] | None) -> int:
    """The decision, but at least one replica unless zero is allowed."""
    allow_zero = (annotations or {}).get(ALLOW_ZERO, "").lower() == "true"
    return max(decision, 0 if allow_zero else 1)


def workload_status(workload: Mapping[str, Any]) -> tuple[int, int, int]:
    """(ready, pending, desired) of a Deployment or StatefulSet as a plain dict."""
    desired = int((workload.get("spec") or {}).get("replicas") or 0)
    status = workload.get("status") or {}
    ready = int(status.get("readyReplicas") or 0)
    return ready, max(0, int(status.get("replicas") or 0) - ready), desired
