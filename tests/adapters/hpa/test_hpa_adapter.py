"""Predictive HPA floors and plain workloads on the real control plane: the real HPA controller
enforces the floor Leadtime writes; Deployments and StatefulSets scale through /scale; conflicts
and deleted objects are survived (markers `kubernetes`, `hpa`)."""

from __future__ import annotations

import pytest
from kubernetes_asyncio import client

from adapters.hpa.adapter import KubernetesWorkloads
from adapters.hpa.floors import APPLIED, FLOOR, ORIGINAL_MIN
from adapters.hpa.rbac import RULES
from adapters.hpa.workloads import ALLOW_ZERO, AUTOSCALE
from autoscaler.ports import ServiceKey
from tests.cluster.fixtures import bound_service_account
from tests.cluster.objects import eventually, gpu_deployment

pytestmark = [pytest.mark.kubernetes, pytest.mark.hpa]
MERGE = "application/merge-patch+json"


@pytest.fixture
async def workloads(kube):
    adapter = KubernetesWorkloads(kube)
    await adapter.start()
    yield adapter
    await adapter.stop()


async def create_hpa(
    api,
    namespace: str,
    name: str,
    target: str,
    minimum: int,
    maximum: int,
    annotations: dict[str, str],
) -> None:
    await client.AutoscalingV1Api(api).create_namespaced_horizontal_pod_autoscaler(
        namespace,
        {
            "metadata": {"name": name, "annotations": annotations},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
                "minReplicas": minimum,
                "maxReplicas": maximum,
                "targetCPUUtilizationPercentage": 80,
            },
        },
    )


async def read_hpa(api, namespace: str, name: str):
    return await client.AutoscalingV1Api(api).read_namespaced_horizontal_pod_autoscaler(
        name, namespace
    )


async def listed(adapter: KubernetesWorkloads, key: ServiceKey) -> bool:
    return key in await adapter.services()


async def test_a_floor_is_enforced_by_the_real_hpa_controller_and_restored_on_opt_out(
    kube, namespace, gpu_pool, workloads
):
    pool = gpu_pool(gpus=8)
    apps = client.AppsV1Api(kube)
    await apps.create_namespaced_deployment(namespace, gpu_deployment("chat", 2, pool=pool))
    await create_hpa(kube, namespace, "chat", "chat", 2, 8, {FLOOR: "true"})
    key = ServiceKey(namespace, "chat")
    await eventually(lambda: listed(workloads, key), what="the opted-in HPA in the catalog")

    assert await workloads.apply({key: 5}) == {}
    hpa = await read_hpa(kube, namespace, "chat")
    assert hpa.spec.min_replicas == 5
    assert hpa.metadata.annotations[ORIGINAL_MIN] == "2"
    assert hpa.metadata.annotations[APPLIED] == "5"

    async def five():  # the HPA controller raises the Deployment to its new minimum
        return (await apps.read_namespaced_deployment("chat", namespace)).spec.replicas == 5

    await eventually(five, timeout_s=60, what="the HPA controller enforcing the floor")
    await workloads.apply({key: 1})
    assert (await read_hpa(kube, namespace, "chat")).spec.min_replicas == 2  # the user's own

    await client.AutoscalingV1Api(kube).patch_namespaced_horizontal_pod_autoscaler(
        "chat", namespace, {"metadata": {"annotations": {FLOOR: None}}}, _content_type=MERGE
    )

    async def restored():
        hpa = await read_hpa(kube, namespace, "chat")
        annotations = hpa.metadata.annotations or {}
        return hpa.spec.min_replicas == 2 and ORIGINAL_MIN not in annotations

    await eventually(restored, what="the original minReplicas restored, the record gone")
    assert not await listed(workloads, key)


async def test_a_floor_survives_a_conflicting_write_and_an_edit_by_the_user(
    kube, namespace, workloads
):
    await create_hpa(kube, namespace, "embed", "embed", 1, 6, {FLOOR: "true"})
    key = ServiceKey(namespace, "embed")
    await eventually(lambda: listed(workloads, key), what="the HPA in the catalog")
    # Our cached copy goes stale behind our back: the write meets 409, rereads, lands.
    await client.AutoscalingV1Api(kube).patch_namespaced_horizontal_pod_autoscaler(
        "embed", namespace, {"metadata": {"labels": {"team": "search"}}}, _content_type=MERGE
    )
    stale = workloads.floors()[key]
    workloads.desired[key] = 4
    await workloads._set_floor(stale)
    hpa = await read_hpa(kube, namespace, "embed")
    assert hpa.spec.min_replicas == 4 and hpa.metadata.labels["team"] == "search"

    # The user sets minReplicas 3 by hand: that is their new original; the floor stays 4.
    await client.AutoscalingV1Api(kube).patch_namespaced_horizontal_pod_autoscaler(
        "embed", namespace, {"spec": {"minReplicas": 3}}, _content_type=MERGE
    )

    async def re_asserted():
        hpa = await read_hpa(kube, namespace, "embed")
        return hpa.spec.min_replicas == 4 and hpa.metadata.annotations.get(ORIGINAL_MIN) == "3"

    await eventually(re_asserted, what="the floor re-asserted over the user's new original")


async def test_plain_workloads_scale_through_scale_and_keep_one_unless_allowed(
    kube, namespace, gpu_pool, workloads
):
    pool = gpu_pool(gpus=8)
    apps = client.AppsV1Api(kube)
    opted = gpu_deployment("llm", 1, pool=pool)
    opted["metadata"]["annotations"] = {AUTOSCALE: "true"}
    await apps.create_namespaced_deployment(namespace, opted)
    batch = gpu_deployment("batch", 1, pool=pool)
    batch["metadata"]["annotations"] = {AUTOSCALE: "true", ALLOW_ZERO: "true"}
    await apps.create_namespaced_deployment(namespace, batch)
    other = gpu_deployment("other", 1, pool=pool)
    await apps.create_namespaced_deployment(namespace, other)
    llm, zero = ServiceKey(namespace, "llm"), ServiceKey(namespace, "batch")
    await eventually(lambda: listed(workloads, zero), what="opted-in Deployments listed")
    assert ServiceKey(namespace, "other") not in await workloads.services()

    assert await workloads.apply({llm: 3, zero: 0}) == {}

    async def three_ready():
        status = (await workloads.status([llm]))[llm]
        return status.ready == 3 and status.desired == 3

    await eventually(three_ready, what="3 ready replicas read back through status()")
    await workloads.apply({llm: 0})
    assert (await apps.read_namespaced_deployment("llm", namespace)).spec.replicas == 1
    assert not (await apps.read_namespaced_deployment("batch", namespace)).spec.replicas


async def test_a_statefulset_scales_and_a_deleted_workload_is_an_error_not_a_crash(
    kube, namespace, gpu_pool, workloads
):
    pool = gpu_pool(gpus=4)
    apps = client.AppsV1Api(kube)
    template = gpu_deployment("kv", 1, pool=pool)
    await apps.create_namespaced_stateful_set(
        namespace,
        {
            "metadata": {"name": "kv", "annotations": {AUTOSCALE: "true"}},
            "spec": {**template["spec"], "serviceName": "kv"},
        },
    )
    key = ServiceKey(namespace, "kv")
    await eventually(lambda: listed(workloads, key), what="the StatefulSet listed")
    assert await workloads.apply({key: 2}) == {}
    assert (await apps.read_namespaced_stateful_set("kv", namespace)).spec.replicas == 2

    await apps.delete_namespaced_stateful_set("kv", namespace)
    failures = await workloads.apply({key: 3})  # the cache may still hold it: 404 or unknown
    assert key in failures and ("gone" in failures[key])
    await eventually(lambda: _not_listed(workloads, key), what="the deleted StatefulSet forgotten")


async def _not_listed(adapter: KubernetesWorkloads, key: ServiceKey) -> bool:
    return not await listed(adapter, key)


async def test_the_shipped_rbac_rules_are_enough_and_a_deleted_hpa_is_forgotten(
    kube, control_plane, namespace
):
    await create_hpa(kube, namespace, "rag", "rag", 1, 5, {FLOOR: "true"})
    key = ServiceKey(namespace, "rag")
    async with bound_service_account(kube, control_plane, namespace, RULES) as limited:
        adapter = KubernetesWorkloads(limited)
        await adapter.start()
        try:
            await eventually(lambda: listed(adapter, key), what="the HPA listed")
            assert await adapter.apply({key: 3}) == {}
            assert (await read_hpa(kube, namespace, "rag")).spec.min_replicas == 3
            await client.AutoscalingV1Api(kube).delete_namespaced_horizontal_pod_autoscaler(
                "rag", namespace
            )
            await eventually(lambda: _not_listed(adapter, key), what="the HPA forgotten")
            assert "gone" in (await adapter.apply({key: 4}))[key]
        finally:
            await adapter.stop()
