"""Manifests and waiting helpers shared by the tests that run on the control plane."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from kubernetes_asyncio import client

from tests.cluster.kubelet import COLD_START_ANNOTATION, GPU

T = TypeVar("T")


async def eventually(
    check: Callable[[], Awaitable[T]],
    timeout_s: float = 30.0,
    interval_s: float = 0.2,
    what: str = "condition",
) -> T:
    """Poll `check` until it returns something truthy; fail with `what` after the timeout."""
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what} (last: {last!r})")


def gpu_deployment(
    name: str,
    replicas: int,
    gpus: int = 1,
    pool: str | None = None,
    cold_start_s: float | None = None,
    priority_class: str | None = None,
    labels: dict[str, str] | None = None,
) -> dict:
    """A Deployment of model-server replicas, each asking for `gpus` GPUs, optionally pinned to
    the nodes labelled `leadtime.test/pool=<pool>` (so tests don't share GPUs)."""
    pod_labels = {"app": name, **(labels or {})}
    annotations = {} if cold_start_s is None else {COLD_START_ANNOTATION: str(cold_start_s)}
    spec: dict = {
        "containers": [
            {
                "name": "model",
                "image": "example.invalid/model-server:1",
                "resources": {"limits": {GPU: str(gpus)}, "requests": {GPU: str(gpus)}},
            }
        ],
        "terminationGracePeriodSeconds": 5,
    }
    if pool is not None:
        spec["nodeSelector"] = {"leadtime.test/pool": pool}
    if priority_class is not None:
        spec["priorityClassName"] = priority_class
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": pod_labels, "annotations": annotations},
                "spec": spec,
            },
        },
    }


async def deployment_replicas(api: client.ApiClient, namespace: str, name: str) -> int:
    """The replicas a Deployment asks for, read through its scale subresource."""
    scale = await client.AppsV1Api(api).read_namespaced_deployment_scale(name, namespace)
    return scale.spec.replicas or 0  # 0 is omitted from the JSON


async def pods_by_phase(api: client.ApiClient, namespace: str, app: str) -> dict[str, int]:
    """Counts of the app's pods: by phase, plus `Ready` and `Terminating`."""
    pods = await client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=f"app={app}")
    counts: dict[str, int] = {}
    for pod in pods.items:
        if pod.metadata.deletion_timestamp is not None:
            counts["Terminating"] = counts.get("Terminating", 0) + 1
            continue
        counts[pod.status.phase] = counts.get(pod.status.phase, 0) + 1
        ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
        counts["Ready"] = counts.get("Ready", 0) + int(ready)
    return counts


async def create_external_metric_hpa(
    api: client.ApiClient,
    namespace: str,
    deployment: str,
    metric: str,
    service: str,
    *,
    max_replicas: int,
    version: str = "autoscaling/v2beta2",
) -> None:
    """An HPA holding Deployment `deployment` at one replica per unit of the external metric
    `metric` for `service` (as Leadtime's desired replicas are read), scaling down at once."""
    hpa = {
        "apiVersion": version,
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": deployment},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment},
            "minReplicas": 1,
            "maxReplicas": max_replicas,
            "metrics": [
                {
                    "type": "External",
                    "external": {
                        "metric": {
                            "name": metric,
                            "selector": {"matchLabels": {"service": service}},
                        },
                        "target": {"type": "AverageValue", "averageValue": "1"},
                    },
                }
            ],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}},
        },
    }
    await api.call_api(
        f"/apis/{version}/namespaces/{namespace}/horizontalpodautoscalers",
        "POST",
        body=hpa,
        auth_settings=["BearerToken"],
        response_types_map={201: "object"},
    )
