"""Stand-ins for the parts of Knative Serving that do not run in the test control plane.

- `create_revision` does what Knative's Revision reconciler does for autoscaling:
  a Deployment `<rev>-deployment` with `initial-scale` replicas whose pods carry the revision
  label, and a PodAutoscaler named after the revision with its class and annotations.
- `serve_sks_status` plays the class-agnostic SKS reconciler's status: `serviceName`,
  `privateServiceName`, `observedGeneration`, and Ready once the revision has a ready pod
  (EndpointsPopulated). The Services and Endpoints it would build are not built.
- `Activator` answers the autoscaler's probe on loopback, as the activator does when it is in
  the request path (status 200, body `activator`); `healthy=False` makes it refuse.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from kubernetes_asyncio import client

from adapters.knative.names import (
    CLASS_ANNOTATION,
    DEFAULT_CLASS,
    PA_GROUP,
    PA_PLURAL,
    PA_VERSION,
    REVISION_LABEL,
    SKS_GROUP,
    SKS_PLURAL,
    SKS_VERSION,
)
from tests.cluster.objects import gpu_deployment
from tests.conftest import free_port

MERGE = "application/merge-patch+json"


async def create_revision(
    api: client.ApiClient,
    namespace: str,
    name: str,
    *,
    class_name: str = DEFAULT_CLASS,
    annotations: dict[str, str] | None = None,
    cold_start_s: float = 0.5,
    pool: str | None = None,
    container_concurrency: int = 0,
) -> dict[str, Any]:
    """The Deployment and the PodAutoscaler of a new revision; returns the PA."""
    annotations = {CLASS_ANNOTATION: class_name, **(annotations or {})}
    initial = int(annotations.get("autoscaling.knative.dev/initial-scale", "1"))
    deployment = gpu_deployment(
        f"{name}-deployment",
        initial,
        pool=pool,
        cold_start_s=cold_start_s,
        labels={REVISION_LABEL: name},
    )
    await client.AppsV1Api(api).create_namespaced_deployment(namespace, deployment)
    labels = {REVISION_LABEL: name, "serving.knative.dev/service": name.rsplit("-", 1)[0]}
    return await client.CustomObjectsApi(api).create_namespaced_custom_object(
        PA_GROUP,
        PA_VERSION,
        namespace,
        PA_PLURAL,
        {
            "apiVersion": f"{PA_GROUP}/{PA_VERSION}",
            "kind": "PodAutoscaler",
            "metadata": {"name": name, "labels": labels, "annotations": annotations},
            "spec": {
                "containerConcurrency": container_concurrency,
                "protocolType": "http1",
                "scaleTargetRef": {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": f"{name}-deployment",
                },
            },
        },
    )


async def ready_pods(api: client.ApiClient, namespace: str, revision: str) -> int:
    pods = await client.CoreV1Api(api).list_namespaced_pod(
        namespace, label_selector=f"{REVISION_LABEL}={revision}"
    )
    return sum(
        1
        for pod in pods.items
        if pod.metadata.deletion_timestamp is None
        and any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
    )


async def serve_sks_status(api: client.ApiClient, namespace: str, every_s: float = 0.3) -> None:
    """Keep the status of every SKS in `namespace` as Knative's SKS reconciler would (until
    cancelled)."""
    custom = client.CustomObjectsApi(api)
    while True:
        try:
            listing = await custom.list_namespaced_custom_object(
                SKS_GROUP, SKS_VERSION, namespace, SKS_PLURAL
            )
            for sks in listing["items"]:
                await _write_sks_status(api, custom, namespace, sks)
        except Exception:
            pass
        await asyncio.sleep(every_s)


async def _write_sks_status(
    api: client.ApiClient, custom: client.CustomObjectsApi, namespace: str, sks: dict
) -> None:
    name = sks["metadata"]["name"]
    populated = await ready_pods(api, namespace, name) > 0
    ready = {"type": "Ready", "status": "True" if populated else "False"}
    if not populated:
        ready.update(reason="NoHealthyBackends", message="No healthy backends")
    status = {
        "observedGeneration": sks["metadata"]["generation"],
        "serviceName": name,
        "privateServiceName": f"{name}-private",
        "conditions": [
            {**ready, "lastTransitionTime": "2026-01-01T00:00:00Z"},
            {**ready, "type": "EndpointsPopulated", "lastTransitionTime": "2026-01-01T00:00:00Z"},
        ],
    }
    old = sks.get("status") or {}
    if (old.get("observedGeneration"), old.get("conditions", [{}])[0].get("status")) == (
        status["observedGeneration"],
        ready["status"],
    ):
        return
    await custom.patch_namespaced_custom_object_status(
        SKS_GROUP, SKS_VERSION, namespace, SKS_PLURAL, name, {"status": status}, _content_type=MERGE
    )


class Activator:
    """The activator's probe endpoint on loopback; `probes` counts what it was asked."""

    def __init__(self) -> None:
        self.healthy = True
        self.probes: list[str] = []
        self.port = free_port()
        self._runner: web.AppRunner | None = None

    @property
    def url_template(self) -> str:
        return f"http://127.0.0.1:{self.port}/healthz?service={{service}}&namespace={{namespace}}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._probe)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _probe(self, request: web.Request) -> web.Response:
        is_probe = request.headers.get("K-Network-Probe") == "activator"
        self.probes.append(request.query.get("service", ""))
        if self.healthy and is_probe:
            return web.Response(text="activator")
        return web.Response(status=503, text="not ready")
