"""The Knative adapter on the real control plane (marker `knative`): Knative's CRDs, the real
controller manager, scheduler and garbage collector, and stand-ins only for the Knative
controllers that do not run here (tests/cluster/knative.py)."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from kubernetes_asyncio import client

from adapters.knative.annotations import RevisionSettings
from adapters.knative.names import (
    HPA_CLASS,
    KPA_CLASS,
    PA_GROUP,
    PA_PLURAL,
    PA_VERSION,
    PROXY,
    SERVE,
)
from adapters.knative.pods import PodCounts
from adapters.knative.rbac import RULES
from adapters.knative.reconciler import Reconciler, ReconcileSettings, RevisionMemory
from autoscaler.config import PolicyConfig
from autoscaler.ports import ServiceKey
from tests.cluster.fixtures import bound_service_account
from tests.cluster.knative import create_revision, ready_pods, serve_sks_status
from tests.cluster.objects import eventually
from tests.helpers.knative import condition, make_adapter, read_pa, read_sks, replicas, wait_ready

pytestmark = [pytest.mark.kubernetes, pytest.mark.knative]


@pytest.fixture
async def adapter(kube, activator, sks_status):
    running = make_adapter(kube, activator)
    await running.start()
    yield running
    await running.stop()


async def test_a_new_revision_becomes_ready(kube, namespace, gpu_pool, adapter):
    pool = gpu_pool(gpus=4)
    await create_revision(kube, namespace, "chat-00001", pool=pool)
    pa = await wait_ready(kube, namespace, "chat-00001")
    status = pa["status"]
    assert status["serviceName"] == "chat-00001"
    assert status["metricsServiceName"] == "chat-00001-private"
    assert (status["desiredScale"], status["actualScale"]) == (1, 1)
    assert status["observedGeneration"] == pa["metadata"]["generation"]
    for kind in ("Active", "ScaleTargetInitialized", "SKSReady", "Ready"):
        assert condition(pa, kind)["status"] == "True", kind
        assert condition(pa, kind)["lastTransitionTime"]
    sks = await read_sks(kube, namespace, "chat-00001")
    owner = sks["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["uid"], owner["controller"]) == (
        "PodAutoscaler",
        pa["metadata"]["uid"],
        True,
    )
    assert sks["spec"]["objectRef"]["name"] == "chat-00001-deployment"
    assert sks["spec"]["protocolType"] == "http1"
    assert sks["spec"]["mode"] == SERVE
    assert ServiceKey(namespace, "chat-00001") in await adapter.services()

    # Nothing flips: the next reconcile keeps every transition time.
    before = {c["type"]: c["lastTransitionTime"] for c in status["conditions"]}
    await adapter.reconcile((namespace, "chat-00001"))
    after = await read_pa(kube, namespace, "chat-00001")
    assert {c["type"]: c["lastTransitionTime"] for c in after["status"]["conditions"]} == before


async def test_decisions_scale_within_initial_min_and_max(kube, namespace, gpu_pool, adapter):
    pool = gpu_pool(gpus=8)
    await create_revision(
        kube,
        namespace,
        "llm-00001",
        pool=pool,
        cold_start_s=1.5,
        annotations={
            "autoscaling.knative.dev/initial-scale": "3",
            "autoscaling.knative.dev/min-scale": "2",
            "autoscaling.knative.dev/max-scale": "5",
        },
    )
    key = ServiceKey(namespace, "llm-00001")
    await eventually(lambda: read_pa(kube, namespace, "llm-00001"), what="PA")
    await adapter.apply({key: 1})  # before initialization: initial-scale holds
    assert await replicas(kube, namespace, "llm-00001") == 3
    await wait_ready(kube, namespace, "llm-00001")
    await adapter.apply({key: 9})
    assert await replicas(kube, namespace, "llm-00001") == 5  # max-scale
    await adapter.apply({key: 0})
    assert await replicas(kube, namespace, "llm-00001") == 2  # min-scale
    pa = await read_pa(kube, namespace, "llm-00001")
    assert pa["status"]["desiredScale"] == 2
    assert adapter.policy_for(key).max_scale == 5


async def test_scale_to_zero_through_the_activator_and_back(
    kube, namespace, gpu_pool, adapter, activator
):
    pool = gpu_pool(gpus=4)
    await create_revision(kube, namespace, "img-00001", pool=pool, cold_start_s=2.0)
    await wait_ready(kube, namespace, "img-00001")
    key = ServiceKey(namespace, "img-00001")

    await adapter.apply({key: 0})
    # The activator goes into the path first; the replica stays through the grace period.
    sks = await read_sks(kube, namespace, "img-00001")
    assert sks["spec"]["mode"] == PROXY
    assert await replicas(kube, namespace, "img-00001") == 1

    async def at_zero():
        return await replicas(kube, namespace, "img-00001") == 0

    await eventually(at_zero, timeout_s=20, what="scaled to zero after the grace period")
    assert "img-00001" in activator.probes

    async def inactive():
        pa = await read_pa(kube, namespace, "img-00001")
        return condition(pa, "Active").get("reason") == "NoTraffic" and pa

    pa = await eventually(inactive, what="Active=False NoTraffic")
    assert condition(pa, "Active")["status"] == "False"
    assert condition(pa, "Ready")["status"] == "False"

    # From zero: a decision of 1 (as the activator's demand makes the policy take) → ready.
    started = time.monotonic()
    await adapter.apply({key: 1})
    await wait_ready(kube, namespace, "img-00001")
    latency = time.monotonic() - started
    assert latency >= 2.0, latency  # never faster than the pods' 2 s cold start
    assert (await read_sks(kube, namespace, "img-00001"))["spec"]["mode"] == SERVE


async def test_no_scale_to_zero_while_the_activator_does_not_answer(
    kube, namespace, gpu_pool, adapter, activator
):
    pool = gpu_pool(gpus=2)
    await create_revision(kube, namespace, "tts-00001", pool=pool)
    await wait_ready(kube, namespace, "tts-00001")
    activator.healthy = False
    key = ServiceKey(namespace, "tts-00001")
    await adapter.apply({key: 0})
    await asyncio.sleep(3.0)  # past the 1 s grace period, with probes failing
    await adapter.apply({key: 0})
    assert await replicas(kube, namespace, "tts-00001") == 1
    assert len(activator.probes) >= 2
    activator.healthy = True

    async def at_zero():
        return await replicas(kube, namespace, "tts-00001") == 0

    await eventually(at_zero, timeout_s=20, what="zero once the activator answers")


async def test_kpa_and_hpa_class_podautoscalers_are_left_alone(kube, namespace, gpu_pool, adapter):
    pool = gpu_pool(gpus=4)
    await create_revision(kube, namespace, "kpa-00001", pool=pool, class_name=KPA_CLASS)
    await create_revision(kube, namespace, "hpa-00001", pool=pool, class_name=HPA_CLASS)
    await create_revision(kube, namespace, "ours-00001", pool=pool)
    await wait_ready(kube, namespace, "ours-00001")
    await asyncio.sleep(2.5)  # one resync more
    for name in ("kpa-00001", "hpa-00001"):
        pa = await read_pa(kube, namespace, name)
        assert not pa.get("status"), name
        assert await read_sks(kube, namespace, name) is None
    services = await adapter.services()
    assert ServiceKey(namespace, "ours-00001") in services
    assert ServiceKey(namespace, "kpa-00001") not in services
    await adapter.apply({ServiceKey(namespace, "kpa-00001"): 3})
    assert await replicas(kube, namespace, "kpa-00001") == 1


async def test_a_bad_annotation_is_reported_and_other_revisions_keep_working(
    kube, namespace, gpu_pool, adapter
):
    pool = gpu_pool(gpus=4)
    await create_revision(
        kube,
        namespace,
        "bad-00001",
        pool=pool,
        annotations={
            "autoscaling.knative.dev/max-scale": "lots",
            "leadtime.dev/slo-target": "2",
        },
    )
    await create_revision(kube, namespace, "good-00001", pool=pool)

    async def reported():
        pa = await read_pa(kube, namespace, "bad-00001")
        return condition(pa, "AnnotationsValid").get("status") == "False" and pa

    pa = await eventually(reported, what="AnnotationsValid=False")
    message = condition(pa, "AnnotationsValid")["message"]
    assert "autoscaling.knative.dev/max-scale" in message and "integer" in message
    assert "leadtime.dev/slo-target" in message and "0.5" in message
    assert condition(pa, "AnnotationsValid")["severity"] == "Warning"
    await wait_ready(kube, namespace, "bad-00001")  # defaults apply; traffic is not taken away
    await wait_ready(kube, namespace, "good-00001")

    async def event():
        listing = await client.CoreV1Api(kube).list_namespaced_event(namespace)
        return [
            e
            for e in listing.items
            if e.reason == "InvalidAnnotation" and e.involved_object.name == "bad-00001"
        ]

    events = await eventually(event, what="an InvalidAnnotation Event")
    assert events[0].type == "Warning" and "max-scale" in events[0].message
    assert len(events) == 1  # one Event per distinct message, not one per reconcile


HOSTILE_ANNOTATIONS = {
    "autoscaling.knative.dev/min-scale": "9" * 5000,  # past Python's integer-string limit
    "autoscaling.knative.dev/max-scale": "-" + "9" * 5000,
    "autoscaling.knative.dev/target": "[" * 3000 + "]" * 3000,
    "autoscaling.knative.dev/window": "{a: " * 1000 + "1" + "}" * 1000,
    "leadtime.dev/slo-target": "\u202e\u0000\U0001f600" * 200,
    "leadtime.dev/horizon": "&a [*a, *a]",
    "leadtime.dev/query": "x" * 10_000,
    "leadtime.dev/" + "k" * 60: "unknown and long",
}
"""What a namespace owner can write on a PodAutoscaler (the API server takes all of it)."""


@pytest.mark.security
async def test_hostile_annotations_stop_no_worker_and_other_revisions_reconcile(
    kube, namespace, gpu_pool, adapter
):
    """Each hostile value on its own revision, for several resyncs: every reconcile worker is
    alive, nothing raised past a guard, each revision says what it refused, and a revision
    created afterwards still becomes Ready and follows decisions."""
    pool = gpu_pool(gpus=len(HOSTILE_ANNOTATIONS) + 2)
    custom = client.CustomObjectsApi(kube)
    for index, (annotation, value) in enumerate(HOSTILE_ANNOTATIONS.items()):
        name = f"hostile{index}-00001"
        await create_revision(kube, namespace, name, pool=pool, cold_start_s=0.1)
        patch = {"metadata": {"annotations": {annotation: value}}}
        await custom.patch_namespaced_custom_object(
            PA_GROUP,
            PA_VERSION,
            namespace,
            PA_PLURAL,
            name,
            patch,
            _content_type="application/merge-patch+json",
        )
    await asyncio.sleep(3 * adapter.resync_s)  # three resyncs of every hostile revision
    for index, annotation in enumerate(HOSTILE_ANNOTATIONS):
        pa = await read_pa(kube, namespace, f"hostile{index}-00001")
        valid = condition(pa, "AnnotationsValid")
        assert valid.get("status") == "False" and annotation in valid["message"], valid
    workers = [t for t in adapter._tasks if t.get_name().startswith("reconcile-")]
    assert len(workers) == adapter.workers and not any(t.done() for t in workers)
    assert adapter.worker_failures == 0
    await create_revision(kube, namespace, "good-00001", pool=pool, cold_start_s=0.1)
    await wait_ready(kube, namespace, "good-00001")
    assert not await adapter.apply({ServiceKey(namespace, "good-00001"): 2})
    await eventually(
        lambda: replicas_are(kube, namespace, "good-00001", 2), what="the good revision at 2"
    )


async def replicas_are(api, namespace: str, revision: str, wanted: int) -> bool:
    return await replicas(api, namespace, revision) == wanted


async def test_a_status_conflict_is_recovered(kube, namespace, gpu_pool, activator, sks_status):
    pool = gpu_pool(gpus=2)
    settings = ReconcileSettings(grace_s=1.0, probe_url_template=activator.url_template)
    stale = await create_revision(kube, namespace, "cfl-00001", pool=pool)
    async with aiohttp.ClientSession() as session:
        reconciler = Reconciler(kube, session, settings)

        async def reconcile(pa: dict, sks: dict | None):
            return await reconciler.reconcile(
                pa,
                RevisionSettings(PolicyConfig()),
                sks,
                PodCounts(ready=1),
                None,
                RevisionMemory(),
                lambda: read_pa(kube, namespace, "cfl-00001"),
            )

        await reconcile(stale, None)  # creates the SKS; its status comes from Knative's side

        async def sks_with_names():
            sks = await read_sks(kube, namespace, "cfl-00001")
            return sks if (sks or {}).get("status", {}).get("serviceName") else None

        sks = await eventually(sks_with_names, what="the SKS status")
        # A conflicting writer changes the PA after our copy was read.
        await client.CustomObjectsApi(kube).patch_namespaced_custom_object(
            PA_GROUP,
            PA_VERSION,
            namespace,
            PA_PLURAL,
            "cfl-00001",
            {"metadata": {"labels": {"team": "search"}}},
            _content_type="application/merge-patch+json",
        )
        outcome = await reconcile(stale, sks)
    assert outcome.error is None
    pa = await read_pa(kube, namespace, "cfl-00001")
    assert pa["metadata"]["labels"]["team"] == "search"  # the other writer's change survives
    assert pa["status"]["desiredScale"] == 1  # and ours landed after rereading
    assert pa["status"]["serviceName"] == "cfl-00001"


async def test_watches_recover_after_an_api_server_restart(
    kube_configuration, control_plane, namespace, gpu_pool, activator
):
    pool = gpu_pool(gpus=4)
    async with client.ApiClient(kube_configuration) as api:
        sks_task = asyncio.create_task(serve_sks_status(api, namespace))
        running = make_adapter(api, activator)
        await running.start()
        try:
            await create_revision(api, namespace, "rst-00001", pool=pool)
            await wait_ready(api, namespace, "rst-00001")
            relists = running.pas.relists
            await asyncio.to_thread(control_plane.restart_apiserver, 1.0)
            await create_revision(api, namespace, "rst-00002", pool=pool)
            await wait_ready(api, namespace, "rst-00002", timeout_s=60)
            assert running.pas.relists > relists
        finally:
            await running.stop()
            sks_task.cancel()


async def test_a_podautoscaler_deleted_mid_reconcile(kube, namespace, gpu_pool, adapter):
    pool = gpu_pool(gpus=2)
    await create_revision(kube, namespace, "del-00001", pool=pool)
    pa = await wait_ready(kube, namespace, "del-00001")
    sks = await read_sks(kube, namespace, "del-00001")
    await client.CustomObjectsApi(kube).delete_namespaced_custom_object(
        PA_GROUP, PA_VERSION, namespace, PA_PLURAL, "del-00001"
    )
    # A reconcile already holding the deleted PA (and its SKS): its status write meets the
    # UID precondition / 404, and it ends cleanly, reporting the PA gone.
    outcome = await adapter._reconciler.reconcile(
        {**pa, "status": {}},
        RevisionSettings(PolicyConfig()),
        sks,
        PodCounts(ready=1),
        1,
        RevisionMemory(),
        lambda: read_pa(kube, namespace, "del-00001"),
    )
    assert outcome.error == f"{namespace}/del-00001 is gone"

    async def forgotten():
        return ServiceKey(namespace, "del-00001") not in await adapter.services()

    await eventually(forgotten, what="the adapter forgetting the PA")
    # The real garbage collector removes the SKS the PA owned.
    await eventually(
        lambda: _gone(kube, namespace, "del-00001"),
        timeout_s=30,
        what="the owned SKS garbage-collected",
    )


async def _gone(api, namespace: str, name: str) -> bool:
    return await read_sks(api, namespace, name) is None


async def test_cold_start_is_learned_from_pod_readiness(kube, namespace, gpu_pool, adapter):
    pool = gpu_pool(gpus=4)
    await create_revision(kube, namespace, "cs-00001", pool=pool, cold_start_s=3.0)
    await wait_ready(kube, namespace, "cs-00001")
    key = ServiceKey(namespace, "cs-00001")
    status = (await adapter.status([key]))[key]
    assert status.ready == 1
    # Creation → Ready, in whole seconds as Kubernetes keeps timestamps.
    assert status.cold_start_s is not None and 2.0 <= status.cold_start_s <= 6.0


async def test_the_shipped_rbac_rules_are_enough(
    kube, control_plane, namespace, gpu_pool, activator, sks_status
):
    pool = gpu_pool(gpus=2)
    async with bound_service_account(kube, control_plane, namespace, RULES) as limited:
        with pytest.raises(client.ApiException) as forbidden:
            await client.CoreV1Api(limited).list_namespaced_secret(namespace)
        assert forbidden.value.status == 403  # RBAC is enforced for this identity
        running = make_adapter(limited, activator)
        await running.start()
        try:
            await create_revision(
                kube,
                namespace,
                "rbac-00001",
                pool=pool,
                annotations={"leadtime.dev/horizon": "soon"},
            )  # an Event to create, too
            await wait_ready(kube, namespace, "rbac-00001")
            await running.apply({ServiceKey(namespace, "rbac-00001"): 2})
            assert await replicas(kube, namespace, "rbac-00001") == 2
            ours = {k: o for k, o in running.outcomes.items() if k[0] == namespace}
            assert ours and all(o.error is None for o in ours.values()), ours
            events = await client.CoreV1Api(kube).list_namespaced_event(namespace)
            assert any(e.reason == "InvalidAnnotation" for e in events.items)
        finally:
            await running.stop()


async def test_ready_pods_counted_by_the_revision_label(kube, namespace, gpu_pool, adapter):
    pool = gpu_pool(gpus=3)
    await create_revision(
        kube,
        namespace,
        "cnt-00001",
        pool=pool,
        annotations={"autoscaling.knative.dev/initial-scale": "2"},
    )
    await wait_ready(kube, namespace, "cnt-00001")
    await adapter.apply({ServiceKey(namespace, "cnt-00001"): 5})  # 3 GPUs: 2 stay Pending

    async def three_ready_two_pending():
        pa = await read_pa(kube, namespace, "cnt-00001")
        status = (await adapter.status([ServiceKey(namespace, "cnt-00001")]))[
            ServiceKey(namespace, "cnt-00001")
        ]
        return (
            pa["status"]["actualScale"] == 3
            and status.pending == 2
            and pa["status"]["desiredScale"] == 5
        )

    await eventually(three_ready_two_pending, what="actualScale 3 of desired 5, 2 pending")
    assert await ready_pods(kube, namespace, "cnt-00001") == 3
