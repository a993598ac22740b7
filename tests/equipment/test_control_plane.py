"""The test control plane itself: a real API server, controller manager and scheduler, Knative's
CRDs, and the kubelet stand-in on fake GPU nodes (tests/cluster/)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiohttp import web
from kubernetes_asyncio import client, watch

from tests.cluster.aggregation import LISTEN, register_api_service, server_tls
from tests.cluster.certificates import FRONT_PROXY_CLIENT
from tests.cluster.objects import eventually, gpu_deployment, pods_by_phase
from tests.conftest import free_port

pytestmark = [pytest.mark.kubernetes]

PA_GROUP, PA_VERSION, PA_PLURAL = "autoscaling.internal.knative.dev", "v1alpha1", "podautoscalers"


def podautoscaler(name: str) -> dict:
    return {
        "apiVersion": f"{PA_GROUP}/{PA_VERSION}",
        "kind": "PodAutoscaler",
        "metadata": {
            "name": name,
            "annotations": {"autoscaling.knative.dev/class": "leadtime.dev"},
        },
        "spec": {
            "protocolType": "http1",
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
        },
    }


async def test_serves_kubernetes_1_20_with_knative_crds_and_controllers(kube, control_plane):
    version = await client.VersionApi(kube).get_code()
    assert version.git_version.startswith("v1.20."), version.git_version
    crds = await client.ApiextensionsV1Api(kube).list_custom_resource_definition()
    names = {crd.metadata.name for crd in crds.items}
    assert {
        "podautoscalers.autoscaling.internal.knative.dev",
        "serverlessservices.networking.internal.knative.dev",
        "metrics.autoscaling.internal.knative.dev",
        "revisions.serving.knative.dev",
        "services.serving.knative.dev",
    } <= names
    control_plane.check_running()


async def test_deployment_replicas_become_ready_after_the_cold_start_and_scale_to_zero(
    kube, namespace, gpu_pool
):
    pool = gpu_pool(gpus=8)
    apps = client.AppsV1Api(kube)
    await apps.create_namespaced_deployment(
        namespace, gpu_deployment("model", 3, pool=pool, cold_start_s=3.0)
    )

    async def all_bound():
        pods = await client.CoreV1Api(kube).list_namespaced_pod(namespace)
        bound = [p for p in pods.items if p.spec.node_name]
        return len(bound) == 3 and pods

    pods = await eventually(all_bound, what="3 pods bound by the scheduler")
    # Bound but still loading the model: nobody is Ready before the cold start is over.
    assert not any(
        c.type == "Ready" and c.status == "True"
        for p in pods.items
        for c in p.status.conditions or []
    )

    async def deployment_ready():
        status = (await apps.read_namespaced_deployment_status("model", namespace)).status
        return status.ready_replicas == 3

    await eventually(deployment_ready, what="3 ready replicas in the Deployment's status")
    assert (await pods_by_phase(kube, namespace, "model")).get("Ready") == 3

    await apps.patch_namespaced_deployment_scale("model", namespace, {"spec": {"replicas": 0}})

    async def no_pods():
        return (await pods_by_phase(kube, namespace, "model")) == {} or None

    await eventually(no_pods, what="every pod gone after scaling to 0")


async def test_more_gpu_replicas_than_gpus_leaves_the_rest_pending(kube, namespace, gpu_pool):
    pool = gpu_pool(gpus=8)
    await client.AppsV1Api(kube).create_namespaced_deployment(
        namespace, gpu_deployment("big", 10, pool=pool, cold_start_s=0.5)
    )

    async def eight_and_two():
        counts = await pods_by_phase(kube, namespace, "big")
        return counts.get("Ready") == 8 and counts.get("Pending") == 2 and counts

    await eventually(eight_and_two, what="8 ready and 2 pending")
    pods = await client.CoreV1Api(kube).list_namespaced_pod(namespace)
    pending = [p for p in pods.items if p.status.phase == "Pending"]
    for pod in pending:
        scheduled = next(c for c in pod.status.conditions if c.type == "PodScheduled")
        assert scheduled.status == "False" and scheduled.reason == "Unschedulable"
        assert "nvidia.com/gpu" in scheduled.message


async def test_a_serving_replica_preempts_a_low_priority_placeholder(kube, namespace, gpu_pool):
    pool = gpu_pool(gpus=2)
    scheduling = client.SchedulingV1Api(kube)
    low, high = f"placeholder-{namespace}", f"serving-{namespace}"
    await scheduling.create_priority_class(
        {"metadata": {"name": low}, "value": -10, "preemptionPolicy": "Never"}
    )
    await scheduling.create_priority_class({"metadata": {"name": high}, "value": 1000})
    try:
        apps = client.AppsV1Api(kube)
        await apps.create_namespaced_deployment(
            namespace,
            gpu_deployment("placeholder", 2, pool=pool, cold_start_s=0.2, priority_class=low),
        )

        async def placeholders_hold_the_gpus():
            return (await pods_by_phase(kube, namespace, "placeholder")).get("Ready") == 2

        await eventually(placeholders_hold_the_gpus, what="2 placeholders running")
        await apps.create_namespaced_deployment(
            namespace,
            gpu_deployment("serving", 1, pool=pool, cold_start_s=0.2, priority_class=high),
        )

        async def preempted():
            serving = await pods_by_phase(kube, namespace, "serving")
            placeholders = await pods_by_phase(kube, namespace, "placeholder")
            done = (
                serving.get("Ready") == 1
                and placeholders.get("Ready") == 1
                and placeholders.get("Pending") == 1
            )
            return done and (serving, placeholders)

        await eventually(preempted, what="the serving pod in a placeholder's GPU")
    finally:
        await scheduling.delete_priority_class(low)
        await scheduling.delete_priority_class(high)


async def test_podautoscaler_status_is_checked_against_knative_schema(kube, namespace):
    custom = client.CustomObjectsApi(kube)
    await custom.create_namespaced_custom_object(
        PA_GROUP, PA_VERSION, namespace, PA_PLURAL, podautoscaler("model-00001")
    )

    async def patch_status(status: dict) -> None:
        await custom.patch_namespaced_custom_object_status(
            PA_GROUP,
            PA_VERSION,
            namespace,
            PA_PLURAL,
            "model-00001",
            {"status": status},
            _content_type="application/merge-patch+json",
        )

    with pytest.raises(client.ApiException) as missing:
        await patch_status({"serviceName": "model-00001", "desiredScale": 2})
    assert missing.value.status == 422 and "metricsServiceName" in missing.value.body
    with pytest.raises(client.ApiException) as wrong_type:
        await patch_status({"serviceName": "s", "metricsServiceName": "m", "desiredScale": "two"})
    assert wrong_type.value.status == 422 and "desiredScale" in wrong_type.value.body

    await patch_status(
        {
            "serviceName": "model-00001",
            "metricsServiceName": "model-00001-private",
            "desiredScale": 2,
            "actualScale": 0,
        }
    )
    stored = await custom.get_namespaced_custom_object(
        PA_GROUP, PA_VERSION, namespace, PA_PLURAL, "model-00001"
    )
    assert stored["status"]["desiredScale"] == 2


async def test_a_stale_resource_version_is_a_conflict(kube, namespace):
    core = client.CoreV1Api(kube)
    created = await core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "state"}, "data": {"n": "1"}}
    )
    first = await core.replace_namespaced_config_map(
        "state",
        namespace,
        {
            "metadata": {"name": "state", "resourceVersion": created.metadata.resource_version},
            "data": {"n": "2"},
        },
    )
    assert first.data == {"n": "2"}
    with pytest.raises(client.ApiException) as conflict:
        await core.replace_namespaced_config_map(
            "state",
            namespace,
            {
                "metadata": {"name": "state", "resourceVersion": created.metadata.resource_version},
                "data": {"n": "3"},
            },
        )
    assert conflict.value.status == 409


async def test_a_watch_streams_added_modified_deleted(kube, namespace):
    custom = client.CustomObjectsApi(kube)
    seen: list[tuple[str, str]] = []

    async def follow() -> None:
        stream = watch.Watch().stream(
            custom.list_namespaced_custom_object,
            PA_GROUP,
            PA_VERSION,
            namespace,
            PA_PLURAL,
            timeout_seconds=20,
        )
        async with stream as events:
            async for event in events:
                seen.append((event["type"], event["object"]["metadata"]["name"]))
                if event["type"] == "DELETED":
                    return

    watcher = asyncio.create_task(follow())
    await asyncio.sleep(0.5)
    name = f"pa-{uuid.uuid4().hex[:6]}"
    await custom.create_namespaced_custom_object(
        PA_GROUP, PA_VERSION, namespace, PA_PLURAL, podautoscaler(name)
    )
    await custom.patch_namespaced_custom_object(
        PA_GROUP,
        PA_VERSION,
        namespace,
        PA_PLURAL,
        name,
        {"metadata": {"annotations": {"autoscaling.knative.dev/min-scale": "1"}}},
        _content_type="application/merge-patch+json",
    )
    await custom.delete_namespaced_custom_object(PA_GROUP, PA_VERSION, namespace, PA_PLURAL, name)
    await asyncio.wait_for(watcher, 20)
    assert seen == [("ADDED", name), ("MODIFIED", name), ("DELETED", name)]


async def test_state_and_the_kubelet_survive_an_api_server_restart(
    kube_configuration, control_plane, namespace, gpu_pool
):
    pool = gpu_pool(gpus=4)
    async with client.ApiClient(kube_configuration) as api:
        await client.AppsV1Api(api).create_namespaced_deployment(
            namespace, gpu_deployment("survivor", 1, pool=pool, cold_start_s=0.2)
        )
    await asyncio.to_thread(control_plane.restart_apiserver, 1.0)
    async with client.ApiClient(kube_configuration) as api:
        apps = client.AppsV1Api(api)
        assert (await apps.read_namespaced_deployment("survivor", namespace)).spec.replicas == 1
        await apps.patch_namespaced_deployment_scale(
            "survivor", namespace, {"spec": {"replicas": 3}}
        )

        async def three_ready():
            return (await pods_by_phase(api, namespace, "survivor")).get("Ready") == 3

        await eventually(three_ready, timeout_s=60, what="3 ready pods after the restart")


async def test_an_aggregated_api_is_reached_through_the_front_proxy(kube, control_plane, namespace):
    group, version = f"{namespace}.leadtime.test", "v1"
    seen_users: list[str] = []

    async def discovery(request: web.Request) -> web.Response:
        assert request.transport is not None
        peer = request.transport.get_extra_info("peercert") or {}
        subject = dict(item for rdn in peer.get("subject", ()) for item in rdn)
        assert subject.get("commonName") == FRONT_PROXY_CLIENT
        seen_users.append(request.headers.get("X-Remote-User", ""))
        return web.json_response(
            {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": f"{group}/{version}",
                "resources": [
                    {
                        "name": "probes",
                        "singularName": "",
                        "namespaced": True,
                        "kind": "Probe",
                        "verbs": ["get"],
                    }
                ],
            }
        )

    app = web.Application()
    app.router.add_get(f"/apis/{group}/{version}", discovery)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(
        runner, LISTEN, port, ssl_context=server_tls(control_plane, "probe", namespace)
    ).start()
    name = None
    try:
        name = await register_api_service(
            kube, control_plane, group, version, "probe", namespace, port
        )
        seen_users.clear()
        body, status, _ = await kube.call_api(
            f"/apis/{group}/{version}",
            "GET",
            auth_settings=["BearerToken"],
            response_types_map={200: "object"},
            _return_http_data_only=False,
        )
        assert status == 200 and body["resources"][0]["kind"] == "Probe"
        # who asked, as the API server authenticated them (the controller manager's discovery
        # of every API group may reach the server in the same moment, as itself)
        assert "admin" in seen_users
        assert all(user == "admin" or user.startswith("system:") for user in seen_users)
    finally:
        if name is not None:
            await client.ApiregistrationV1Api(kube).delete_api_service(name)
        await runner.cleanup()
