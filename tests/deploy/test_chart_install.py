"""The chart installed: a real `helm install` (helm-python-sdk) into the test control plane, whose
kubelet stand-in runs the release's pod as a process of the installed package
(`tests/cluster/pod_process.py`). What the chart creates must work together: the ServiceAccount's
RBAC is enough for the running service, the ConfigMap is read, the probes pass, the APIService
registers, an upgrade rolls the pod, an uninstall leaves nothing behind.

Each test runs twice in a row (`ATTEMPT`): the second install must not trip over anything the
first left. Values are the chart's defaults plus only what this environment needs
(`environment_values`): free ports, the test's Prometheus and activator, a node to run on, the
stand-in's opt-in annotation, and settings that make the loop react within seconds.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import helm_python as helm
import pytest
import yaml
from helm_python import _native as helm_native
from kubernetes_asyncio import client
from kubernetes_asyncio.dynamic import DynamicClient
from kubernetes_asyncio.dynamic.exceptions import NotFoundError

from adapters.hpa.metrics_api import DESIRED_REPLICAS, GROUP, VERSION
from adapters.hpa.workloads import AUTOSCALE
from tests.cluster.control_plane import ControlPlane
from tests.cluster.fixtures import ROOT
from tests.cluster.knative import create_revision
from tests.cluster.kubelet import FakeKubelet
from tests.cluster.objects import (
    create_external_metric_hpa,
    deployment_replicas,
    eventually,
    gpu_deployment,
)
from tests.cluster.pod_process import RUN_PROCESS_ANNOTATION
from tests.conftest import free_port
from tests.helpers.exporters import APP_SIGNALS, AppExporter
from tests.helpers.knative import FAST, replicas
from tests.helpers.prometheus import serve_exporter, start_prometheus

pytestmark = [pytest.mark.helm, pytest.mark.kubernetes, pytest.mark.prometheus]

CHART = str(ROOT / "charts" / "leadtime")
RELEASE = "leadtime"
INSTANCE = f"app.kubernetes.io/instance={RELEASE}"
ATTEMPT = pytest.mark.parametrize("attempt", [1, 2])
TOKEN = "s3cret-token"


def environment_values(pool: str, prometheus_url: str, port: int, config: dict) -> dict[str, Any]:
    """What this environment needs on top of the chart's defaults."""
    return {
        "podAnnotations": {RUN_PROCESS_ANNOTATION: "true"},
        "nodeSelector": {"leadtime.test/pool": pool},
        "service": {"port": port},
        "prometheus": {"url": prometheus_url},
        "config": {"tick": "500ms", "forecasting": {"workers": 1}, **config},
    }


@dataclass
class Release:
    """The chart as one release in the test's namespace, through Helm's own Go SDK."""

    plane: ControlPlane
    namespace: str
    manifests: list[dict] = field(default_factory=list)
    """Every object any revision of the release created."""

    def _helm(self) -> helm.Config:
        return helm.Config(
            kube_apiserver=self.plane.url,
            kube_token=self.plane.admin_token,
            kube_ca_file=str(self.plane.ca_file),
            namespace=self.namespace,
        )

    async def install(self, values: dict, *, server_side: bool = True) -> None:
        """`helm install`; with `server_side=False` as `helm install --server-side=false`.

        Why the choice: Helm 4 applies server-side by default, and Kubernetes 1.20's aggregator
        cannot (creating an APIService panics in the API server: "FieldManager must be
        installed to run apply"), so a release serving the metrics API is installed there with
        client-side apply, as Helm 3 always did. helm-python-sdk 0.2 has no keyword for it, so
        this passes the option to the SDK's own C call."""

        def run() -> dict:
            with self._helm() as config:
                if server_side:
                    return config.install(
                        CHART, RELEASE, values, namespace=self.namespace, timeout=60
                    )
                chart, reference = config._chart_args(CHART)
                options = {"namespace": self.namespace, "timeout_seconds": 60}
                payload = helm_native.call_string(
                    "helm_install",
                    config._raw(),
                    config._context_arg(None),
                    chart,
                    reference,
                    RELEASE,
                    json.dumps(values),
                    json.dumps({**options, "server_side_apply": False}),
                )
                return json.loads(payload)

        self._record(await asyncio.to_thread(run))

    async def upgrade(self, values: dict) -> None:
        """`helm upgrade` (applying as the install did: Helm 4's "auto")."""

        def run() -> dict:
            with self._helm() as config:
                return config.upgrade(CHART, RELEASE, values, namespace=self.namespace, timeout=60)

        self._record(await asyncio.to_thread(run))

    def _record(self, release: dict) -> None:
        self.manifests += [d for d in yaml.safe_load_all(release["manifest"]) if d]

    async def uninstall(self) -> None:
        def run() -> None:
            with self._helm() as config:
                config.uninstall(RELEASE, wait="watcher", timeout=60)

        await asyncio.to_thread(run)


@pytest.fixture
async def release(control_plane, namespace, kube, kubelet) -> AsyncIterator[Release]:
    """A release in the test's namespace, uninstalled at the end; then nothing it made is left,
    and its process has stopped."""
    made = Release(control_plane, namespace)
    yield made
    await made.uninstall()
    await nothing_left(kube, made.manifests)
    await eventually(
        lambda: no_process(kube, kubelet, namespace),
        timeout_s=60,
        what="the release's pods gone and their processes stopped",
    )


async def nothing_left(api: client.ApiClient, manifests: list[dict]) -> None:
    """Every object of `manifests`, cluster-scoped ones included, is gone."""
    dynamic = await DynamicClient(api)
    left = []
    for manifest in manifests:
        kind = await dynamic.resources.get(
            api_version=manifest["apiVersion"], kind=manifest["kind"]
        )
        metadata = manifest["metadata"]
        try:
            found = await dynamic.get(
                kind, name=metadata["name"], namespace=metadata.get("namespace")
            )
        except NotFoundError:
            continue
        if found.kind == "Status" and found.code == 404:  # how this client answers a 404
            continue
        left.append(f"{manifest['kind']} {metadata['name']}")
    assert not left, f"helm uninstall left {left}"


async def no_process(api: client.ApiClient, kubelet: FakeKubelet, namespace: str) -> bool:
    pods = await client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=INSTANCE)
    running = [key for key in kubelet.processes if key.startswith(f"{namespace}/")]
    return not pods.items and not running


async def ready_pod(
    api: client.ApiClient,
    namespace: str,
    *,
    restarts: int | None = None,
    not_named: str | None = None,
) -> client.V1Pod:
    """The release's pod once it is Ready (and, with `restarts` or `not_named`, once it has
    restarted that often or is another pod than that one)."""

    async def ready() -> client.V1Pod | None:
        listed = await client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=INSTANCE)
        for pod in listed.items:
            statuses = pod.status.container_statuses or []
            if (
                pod.metadata.deletion_timestamp is None
                and pod.metadata.name != not_named
                and statuses
                and statuses[0].ready
                and restarts in (None, statuses[0].restart_count)
            ):
                return pod
        return None

    after = f" after {restarts} restarts" if restarts is not None else ""
    other = f" other than {not_named}" if not_named else ""
    return await eventually(ready, timeout_s=90, what=f"the release's pod Ready{after}{other}")


async def http(method: str, url: str, token: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.request(method, url, headers=headers) as response:
            return response.status


@ATTEMPT
async def test_the_installed_chart_runs_leadtime_and_scales_a_knative_revision(
    attempt,
    kube,
    namespace,
    kubelet,
    gpu_pool,
    release,
    prometheus_with_exporter,
    activator,
    sks_status,
):
    exporter, prometheus = prometheus_with_exporter
    port = free_port()
    knative = {"activator_probe_url": activator.url_template, "resync": "2s"}
    values = environment_values(
        gpu_pool(gpus=0),
        prometheus.url,
        port,
        {"prometheus": {"rate_window": "5s"}, "knative": knative},
    )
    await release.install(values)
    (budget,) = [m for m in release.manifests if m["kind"] == "PodDisruptionBudget"]
    assert budget["apiVersion"] == "policy/v1beta1"  # 1.20 serves no policy/v1: capabilities
    pod = await ready_pod(kube, namespace)
    base = f"http://{pod.status.pod_ip}:{port}"
    assert await http("GET", f"{base}/readyz") == 200  # what the stand-in's probe asked

    key = (namespace, "llm-00001")
    exporter.in_flight[key] = 1.5
    await create_revision(kube, namespace, key[1], pool=gpu_pool(gpus=8), annotations=FAST)

    async def scaled_to(wanted: int):
        pa = await client.CustomObjectsApi(kube).get_namespaced_custom_object(
            "autoscaling.internal.knative.dev", "v1alpha1", namespace, "podautoscalers", key[1]
        )
        status = pa.get("status") or {}
        return (
            status.get("desiredScale") == wanted
            and status.get("actualScale") == wanted
            and await replicas(kube, namespace, key[1]) == wanted
        )

    await eventually(lambda: scaled_to(2), timeout_s=90, what="the release scaling to 2")

    kubelet.kill(namespace, pod.metadata.name)  # as if it crashed: the restart policy follows
    await ready_pod(kube, namespace, restarts=1)
    exporter.in_flight[key] = 3.5
    await eventually(lambda: scaled_to(4), timeout_s=90, what="the restarted process scaling")

    pause = f"{base}/api/v1/services/{namespace}/{key[1]}/pause"
    assert await http("POST", pause, TOKEN) == 404  # no token Secret: pause does not exist
    await client.CoreV1Api(kube).create_namespaced_secret(
        namespace,
        {
            "metadata": {"name": "leadtime-api"},
            "data": {"token": base64.b64encode(TOKEN.encode()).decode()},
        },
    )
    await release.upgrade({**values, "api": {"tokenSecret": "leadtime-api"}})
    upgraded = await ready_pod(kube, namespace, not_named=pod.metadata.name)
    checksum = "checksum/config"
    assert upgraded.metadata.annotations[checksum] != pod.metadata.annotations[checksum]

    async def paused():
        return await http("POST", pause, TOKEN) == 200

    await eventually(paused, timeout_s=60, what="pause enabled by the upgrade's token")
    assert await http("POST", pause, "wrong") == 403
    with pytest.raises(AssertionError, match="PriorityClass leadtime-placeholder"):
        await nothing_left(kube, release.manifests)  # what the uninstall must remove, seen


@ATTEMPT
async def test_the_installed_chart_serves_leadtimes_metric_to_the_hpa_controller(
    attempt, kube, namespace, gpu_pool, release
):
    exporter = AppExporter({(namespace, "chat"): 3.0})
    server, exporter_port = serve_exporter(exporter)
    prometheus = start_prometheus(exporter_port)
    try:
        await _serve_the_hpa_controller(kube, namespace, gpu_pool, release, prometheus.url)
    finally:
        prometheus.remove()
        server.shutdown()


async def _serve_the_hpa_controller(kube, namespace, gpu_pool, release, prometheus_url):
    pool = gpu_pool(gpus=16)
    chat = gpu_deployment("chat", 1, pool=pool)
    chat["metadata"]["annotations"] = {AUTOSCALE: "true"}
    apps = client.AppsV1Api(kube)
    await apps.create_namespaced_deployment(namespace, chat)
    values = environment_values(
        gpu_pool(gpus=0),
        prometheus_url,
        free_port(),
        {
            "policy": {"container_concurrency": 1, "stable_window": "6s"},
            "prometheus": {
                "rate_window": "5s",
                **APP_SIGNALS,
            },
        },
    )
    values["adapters"] = {
        "knative": {"enabled": False},
        "hpa": {"enabled": True, "metricsApi": {"enabled": True, "port": free_port()}},
    }
    await release.install(values, server_side=False)  # Kubernetes 1.20 (`Release.install`)
    await ready_pod(kube, namespace)
    name = f"{VERSION}.{GROUP}"
    registration = client.ApiregistrationV1Api(kube)

    async def available():
        status = (await registration.read_api_service_status(name)).status
        return any(c.type == "Available" and c.status == "True" for c in status.conditions or [])

    await eventually(available, timeout_s=60, what=f"the chart's APIService {name} Available")

    async def scaled():
        count = await deployment_replicas(kube, namespace, "chat")
        return count if count >= 3 else None

    await eventually(scaled, timeout_s=90, what="the release scaling chat for 3 in flight")

    # A second Deployment whose HPA follows chat's decision through the aggregated API.
    await apps.create_namespaced_deployment(namespace, gpu_deployment("mirror", 1, pool=pool))
    await create_external_metric_hpa(
        kube, namespace, "mirror", DESIRED_REPLICAS, "chat", max_replicas=16
    )

    async def mirrored():
        mirror = await deployment_replicas(kube, namespace, "mirror")
        return mirror == await deployment_replicas(kube, namespace, "chat")

    await eventually(mirrored, timeout_s=90, what="the HPA controller reading chat's decision")
