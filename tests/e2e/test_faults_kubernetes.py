"""The Kubernetes half of the fault matrix: the Knative reconciler and the HPA
adapter talk to the real control plane through a fault-injecting proxy
(tests/cluster/fault_proxy.py), which answers 409 / 429 / 500 / 503, stalls past the client's
timeout, drops or cuts watches and answers them 410 Gone; other faults delete objects behind
the adapters' backs or restart the API server.

Every case checks the same four things: no crash (the adapter's tasks still run and it
reconciles afterwards); no scale-down caused by the fault (the Deployment's replicas, read
directly from the API server, never go below their value before the fault); a report a user can
find (a Warning Event naming the failing call and its status, a PA condition, or a log record);
and recovery (the desired scale is reached once the fault has passed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp
import pytest
from kubernetes_asyncio import client

from adapters.hpa.adapter import KubernetesWorkloads
from adapters.hpa.floors import FLOOR
from adapters.hpa.workloads import AUTOSCALE
from adapters.knative.adapter import KnativeAdapter
from adapters.knative.names import (
    PA_GROUP,
    PA_PLURAL,
    PA_VERSION,
    REVISION_LABEL,
    SKS_GROUP,
    SKS_PLURAL,
    SKS_VERSION,
)
from adapters.knative.reconciler import ReconcileSettings
from adapters.kubernetes.api import CONFLICT_RETRIES, REQUEST_TIMEOUT_S
from adapters.kubernetes.informer import DEADLINE_MARGIN_S, Informer
from autoscaler.config import PolicyConfig
from autoscaler.ports import ServiceKey
from tests.cluster.knative import create_revision
from tests.cluster.objects import eventually, gpu_deployment

if TYPE_CHECKING:  # imported by pytest_plugins below, so that pytest rewrites its asserts
    from tests.cluster.fault_proxy import FaultProxy

pytest_plugins = ["tests.cluster.fault_proxy"]  # the `fault_proxy` and `proxied` fixtures
pytestmark = [pytest.mark.kubernetes, pytest.mark.faults]
MERGE = "application/merge-patch+json"

SCALE = r"/deployments/[^/]+/scale$"
PA_STATUS = r"/podautoscalers/[^/]+/status$"
PA_LIST = r"/podautoscalers$"
PODS = r"/pods$"
HPA = r"/horizontalpodautoscalers/[^/]+$"
API_TIMEOUT_S = 2.0
"""The adapters' request timeout in the timeout cases (the proxy stalls for three times it)."""


# ---------------------------------------------------------------------------------- helpers
async def deployment_replicas(api: client.ApiClient, namespace: str, name: str) -> int | None:
    """spec.replicas read directly from the API server (None when the Deployment is gone)."""
    try:
        scale = await client.AppsV1Api(api).read_namespaced_deployment_scale(name, namespace)
    except client.ApiException as error:
        if error.status == 404:
            return None
        raise
    return scale.spec.replicas or 0


@contextlib.asynccontextmanager
async def never_below(
    api: client.ApiClient, namespace: str, name: str, floor: int
) -> AsyncIterator[list[int]]:
    """Sample the Deployment's replicas every 0.2 s while the body runs; fail if any sample is
    below `floor` (a missing Deployment or an API server that is down is not a sample)."""
    samples: list[int] = []

    async def sample() -> None:
        while True:
            with contextlib.suppress(client.ApiException, aiohttp.ClientError, OSError):
                value = await deployment_replicas(api, namespace, name)
                if value is not None:
                    samples.append(value)
            await asyncio.sleep(0.2)

    task = asyncio.create_task(sample())
    try:
        yield samples
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert samples, "no sample of the Deployment's replicas was taken"
    assert min(samples) >= floor, f"scaled below {floor} during the fault: {samples}"


async def warning_events(
    api: client.ApiClient, namespace: str, name: str, reason: str
) -> list[client.CoreV1Event]:
    listing = await client.CoreV1Api(api).list_namespaced_event(namespace)
    return [
        e
        for e in listing.items
        if e.reason == reason and e.involved_object.name == name and e.type == "Warning"
    ]


async def event_saying(
    api: client.ApiClient, namespace: str, name: str, reason: str, *words: str
) -> client.CoreV1Event:
    """The Warning Event `reason` on `name` whose message holds every one of `words`."""

    async def found():
        for event in await warning_events(api, namespace, name, reason):
            if all(word in event.message for word in words):
                return event
        return None

    return await eventually(found, what=f"a {reason} Event on {name} saying {words}")


def logged(caplog: pytest.LogCaptureFixture, *words: str) -> bool:
    return any(all(word in record.getMessage() for word in words) for record in caplog.records)


async def read_pa(api: client.ApiClient, namespace: str, name: str) -> dict:
    return await client.CustomObjectsApi(api).get_namespaced_custom_object(
        PA_GROUP, PA_VERSION, namespace, PA_PLURAL, name
    )


def condition(pa: dict, kind: str) -> dict:
    found = [c for c in (pa.get("status") or {}).get("conditions") or [] if c["type"] == kind]
    return found[0] if found else {}


# ---------------------------------------------------------------------------------- Knative
@dataclass
class Revision:
    """A Leadtime-class revision, its adapter (talking through the proxy) and the proxy."""

    kube: client.ApiClient
    adapter: KnativeAdapter
    proxy: FaultProxy
    namespace: str
    name: str
    pool: str

    @property
    def key(self) -> ServiceKey:
        return ServiceKey(self.namespace, self.name)

    @property
    def deployment(self) -> str:
        return f"{self.name}-deployment"

    def alive(self) -> bool:
        """Every informer, worker and the resync task is still running."""
        return bool(self.adapter._tasks) and not any(t.done() for t in self.adapter._tasks)

    async def replicas(self) -> int | None:
        return await deployment_replicas(self.kube, self.namespace, self.deployment)

    async def reaches(self, replicas: int, timeout_s: float = 60.0, ready: bool = True) -> dict:
        """Wait for the Deployment at `replicas` and the PA's status saying so (and Ready,
        unless `ready` is False)."""

        async def there():
            pa = await read_pa(self.kube, self.namespace, self.name)
            status = pa.get("status") or {}
            is_ready = condition(pa, "Ready").get("status") == "True" or not ready
            return (
                await self.replicas() == replicas
                and status.get("desiredScale") == replicas
                and is_ready
                and pa
            )

        return await eventually(
            there, timeout_s=timeout_s, what=f"{self.name} at {replicas} replicas, Ready"
        )

    async def set_min_scale(self, replicas: int) -> None:
        """Change the PA directly (not through the proxy): only a working informer sees it."""
        await client.CustomObjectsApi(self.kube).patch_namespaced_custom_object(
            PA_GROUP,
            PA_VERSION,
            self.namespace,
            PA_PLURAL,
            self.name,
            {"metadata": {"annotations": {"autoscaling.knative.dev/min-scale": str(replicas)}}},
            _content_type=MERGE,
        )


@pytest.fixture
async def knative_setup(kube, proxied, fault_proxy, namespace, gpu_pool, activator, sks_status):
    """`await knative_setup(name, replicas=2, api_timeout_s=...)`: a revision at `replicas`
    (Ready) reconciled by an adapter that talks through the proxy. Rules added before the call
    act on the adapter's first lists and watches."""
    made: list[KnativeAdapter] = []

    async def make(
        name: str, replicas: int = 2, api_timeout_s: float = REQUEST_TIMEOUT_S
    ) -> Revision:
        pool = gpu_pool(gpus=8)
        await create_revision(kube, namespace, name, pool=pool)
        settings = ReconcileSettings(
            grace_s=1.0, probe_url_template=activator.url_template, api_timeout_s=api_timeout_s
        )
        adapter = KnativeAdapter(proxied, PolicyConfig(), settings=settings, resync_s=2.0)
        made.append(adapter)  # stopped even when its start fails
        await adapter.start()
        revision = Revision(kube, adapter, fault_proxy, namespace, name, pool)
        await revision.adapter.apply({revision.key: replicas})
        await revision.reaches(replicas)
        return revision

    yield make
    for adapter in made:
        await adapter.stop()


ANSWERED = [
    pytest.param(
        "PUT",
        PA_STATUS,
        409,
        CONFLICT_RETRIES + 1,
        "update PodAutoscaler status",
        id="409-on-PA-status-past-the-retries",
    ),
    pytest.param("PUT", PA_STATUS, 503, 2, "update PodAutoscaler status", id="503-on-PA-status"),
    pytest.param("PATCH", SCALE, 409, 2, "patch scale", id="409-on-scale-subresource"),
    pytest.param("PATCH", SCALE, 429, 3, "patch scale", id="429-on-patch-scale"),
    pytest.param("GET", SCALE, 500, 2, "get scale", id="500-on-get-scale"),
    pytest.param("GET", SCALE, 429, 2, "get scale", id="429-on-get-scale"),
]


@pytest.mark.knative
@pytest.mark.parametrize(("method", "path", "status", "times", "operation"), ANSWERED)
async def test_knative_survives_an_api_error(knative_setup, method, path, status, times, operation):
    revision = await knative_setup("err-00001")
    rule = revision.proxy.answer(method, path, status, times=times)
    async with never_below(revision.kube, revision.namespace, revision.deployment, 2):
        await revision.adapter.apply({revision.key: 3})
        await eventually(lambda: _done(rule), what="the fault used up")
        event = await event_saying(
            revision.kube,
            revision.namespace,
            revision.name,
            "ReconcileFailed",
            operation,
            str(status),
        )
        await revision.reaches(3)
    assert event.involved_object.kind == "PodAutoscaler"
    assert revision.alive()


async def _done(rule) -> bool:
    return rule.done


@pytest.mark.knative
async def test_knative_status_conflicts_within_the_retries_are_reread(knative_setup, caplog):
    """Two conflicts on the status write: the reconcile rereads the PA and lands its status in
    the same pass, so there is nothing to report but a log line."""
    caplog.set_level(logging.INFO, logger="adapters.knative.reconciler")
    revision = await knative_setup("cfl-00001")
    rule = revision.proxy.answer("PUT", PA_STATUS, 409, times=CONFLICT_RETRIES - 1)
    async with never_below(revision.kube, revision.namespace, revision.deployment, 2):
        await revision.adapter.apply({revision.key: 3})
        await revision.reaches(3)
    assert rule.done
    assert logged(caplog, revision.name, "status conflict, rereading")
    assert not await warning_events(
        revision.kube, revision.namespace, revision.name, "ReconcileFailed"
    )
    assert revision.alive()


@pytest.mark.knative
@pytest.mark.parametrize(
    ("method", "path", "operation"),
    [
        pytest.param("GET", SCALE, "get scale", id="timeout-on-get-scale"),
        pytest.param("PATCH", SCALE, "patch scale", id="timeout-on-patch-scale"),
        pytest.param("PUT", PA_STATUS, "update PodAutoscaler status", id="timeout-on-PA-status"),
    ],
)
async def test_knative_survives_an_api_server_that_does_not_answer(
    knative_setup, method, path, operation
):
    """The proxy holds the call three times longer than the adapter's request timeout: the
    reconcile gives up, reports, and a later one gets through."""
    revision = await knative_setup("slow-00001", api_timeout_s=API_TIMEOUT_S)
    rule = revision.proxy.delay(method, path, 3 * API_TIMEOUT_S, times=1)
    async with never_below(revision.kube, revision.namespace, revision.deployment, 2):
        await revision.adapter.apply({revision.key: 3})
        await eventually(lambda: _done(rule), what="the stalled call made")
        await event_saying(
            revision.kube,
            revision.namespace,
            revision.name,
            "ReconcileFailed",
            operation,
            f"no answer within {API_TIMEOUT_S:g} s",
        )
        await revision.reaches(3)
    assert revision.alive()


@pytest.mark.knative
async def test_knative_a_watch_ended_cleanly_is_resumed_without_a_relist(
    kube, fault_proxy, knative_setup
):
    """A watch the server ends cleanly (as its own timeout does) is normal: the informer
    resumes from the last resource version it saw — no relist, nothing to report — and still
    sees the next change."""
    rule = fault_proxy.cut_watch(PA_LIST, after_s=1.0, clean=True)
    revision = await knative_setup("drop-00001")
    await eventually(lambda: _done(rule), what="the first PA watch ended")
    watches = await eventually(
        lambda: _watches(fault_proxy, PA_LIST, 2), what="the PA watch resumed"
    )
    assert watches[1].query.get("resourceVersion"), "resumed from where it was"
    assert revision.adapter.pas.relists == 1
    async with never_below(kube, revision.namespace, revision.deployment, 2):
        await revision.set_min_scale(3)
        await revision.reaches(3)
    assert revision.alive()


async def _watches(proxy: FaultProxy, path: str, at_least: int):
    found = proxy.requests("GET", path, watch=True)
    return found if len(found) >= at_least else None


@pytest.mark.knative
async def test_knative_a_watch_cut_mid_event_relists(kube, fault_proxy, knative_setup, caplog):
    """The pods watch breaks in the middle of an event (the connection drops): the informer
    logs it, relists, and its cache is right again — the ready count reaches 3."""
    caplog.set_level(logging.INFO, logger="adapters.kubernetes.informer")
    rule = fault_proxy.cut_watch(PODS, after_events=2, clean=False)
    revision = await knative_setup("cut-00001")
    await eventually(lambda: _done(rule), what="the pods watch cut")
    await eventually(lambda: _relisted(revision.adapter.pods), what="the pods relisted")
    assert logged(caplog, "pods watch ended", "relisting")
    async with never_below(kube, revision.namespace, revision.deployment, 2):
        await revision.set_min_scale(3)
        pa = await revision.reaches(3)

        async def three_ready():
            return (await revision.adapter.status([revision.key]))[revision.key].ready == 3

        await eventually(three_ready, what="the pods cache counting 3 ready")
    assert pa["status"]["actualScale"] == 3
    assert revision.alive()


async def _relisted(informer) -> bool:
    return informer.relists >= 2


@pytest.mark.knative
async def test_knative_410_gone_on_the_watch_relists(kube, fault_proxy, knative_setup, caplog):
    caplog.set_level(logging.INFO, logger="adapters.kubernetes.informer")
    rule = fault_proxy.gone(PA_LIST, after_events=1)
    revision = await knative_setup("gone-00001")
    await eventually(lambda: _done(rule), what="the 410 sent")
    await eventually(lambda: _relisted(revision.adapter.pas), what="the PAs relisted")
    gone_at = next(s.at for s in fault_proxy.seen if s.rule == "gone")
    assert any(s.at > gone_at for s in fault_proxy.requests("GET", PA_LIST, watch=False))
    assert logged(caplog, "podautoscalers watch ended", "410")
    async with never_below(kube, revision.namespace, revision.deployment, 2):
        await revision.set_min_scale(3)
        await revision.reaches(3)
    assert revision.alive()


@pytest.mark.knative
async def test_knative_429_on_the_list_is_retried(kube, fault_proxy, knative_setup, caplog):
    """The PA list is refused three times with 429 at start: the informer logs each, retries,
    syncs, and the adapter reconciles as usual."""
    caplog.set_level(logging.INFO, logger="adapters.kubernetes.informer")
    rule = fault_proxy.answer("GET", PA_LIST, 429, times=3, watch=False)
    revision = await knative_setup("list-00001")
    assert rule.done
    assert logged(caplog, "podautoscalers", "429")
    async with never_below(kube, revision.namespace, revision.deployment, 2):
        await revision.adapter.apply({revision.key: 3})
        await revision.reaches(3)
    assert revision.alive()


@pytest.mark.knative
async def test_knative_pa_deleted_mid_reconcile(kube, fault_proxy, knative_setup):
    """The PA is deleted while its status write is in flight: the write meets 404, the
    reconcile says the PA is gone, the adapter forgets it; a PA recreated under the same name
    is adopted and reconciled."""
    revision = await knative_setup("pad-00001")
    old = await read_pa(kube, revision.namespace, revision.name)
    rule = fault_proxy.delay("PUT", PA_STATUS, 1.5)
    async with never_below(kube, revision.namespace, revision.deployment, 2):
        applying = asyncio.create_task(revision.adapter.apply({revision.key: 3}))
        await eventually(lambda: _hit(rule), what="the status write in flight")
        await client.CustomObjectsApi(kube).delete_namespaced_custom_object(
            PA_GROUP, PA_VERSION, revision.namespace, PA_PLURAL, revision.name
        )
        failures = await applying
        assert failures == {revision.key: f"{revision.namespace}/{revision.name} is gone"}

        async def forgotten():
            return revision.key not in await revision.adapter.services()

        await eventually(forgotten, what="the deleted PA forgotten")
        await client.CustomObjectsApi(kube).create_namespaced_custom_object(
            PA_GROUP,
            PA_VERSION,
            revision.namespace,
            PA_PLURAL,
            {
                "apiVersion": old["apiVersion"],
                "kind": old["kind"],
                "spec": old["spec"],
                "metadata": {k: old["metadata"][k] for k in ("name", "labels", "annotations")},
            },
        )
        await revision.adapter.apply({revision.key: 3})
        await revision.reaches(3, timeout_s=90)  # after the GC removed the old PA's SKS
    assert revision.alive()


async def _hit(rule) -> bool:
    return rule.hits >= 1


@pytest.mark.knative
async def test_knative_deployment_deleted_mid_reconcile(kube, fault_proxy, knative_setup):
    """The Deployment is deleted while the scale write is in flight: the write meets 404 and
    is reported on the PA (not mistaken for the PA going); once the Deployment is back the
    revision is scaled to its decision again."""
    revision = await knative_setup("dep-00001")
    rule = fault_proxy.delay("PATCH", SCALE, 1.5)
    applying = asyncio.create_task(revision.adapter.apply({revision.key: 3}))
    await eventually(lambda: _hit(rule), what="the scale write in flight")
    await client.AppsV1Api(kube).delete_namespaced_deployment(
        revision.deployment, revision.namespace
    )
    failures = await applying
    assert "patch scale" in failures[revision.key] and "404" in failures[revision.key]
    await event_saying(
        kube, revision.namespace, revision.name, "ReconcileFailed", "patch scale", "404"
    )
    await event_saying(
        kube,
        revision.namespace,
        revision.name,
        "ReconcileFailed",
        f"scale target {revision.deployment} not found",
    )
    assert revision.key in await revision.adapter.services()  # the PA is still ours
    await client.AppsV1Api(kube).create_namespaced_deployment(
        revision.namespace,
        gpu_deployment(
            revision.deployment,
            1,
            pool=revision.pool,
            cold_start_s=0.5,
            labels={REVISION_LABEL: revision.name},
        ),
    )
    async with never_below(kube, revision.namespace, revision.deployment, 1):
        await revision.reaches(3)
    assert revision.alive()


@pytest.mark.knative
async def test_knative_sks_deleted_is_recreated(kube, fault_proxy, knative_setup, caplog):
    caplog.set_level(logging.INFO, logger="adapters.knative.reconciler")
    revision = await knative_setup("sks-00001")
    pa = await read_pa(kube, revision.namespace, revision.name)
    caplog.clear()
    async with never_below(kube, revision.namespace, revision.deployment, 2):
        await client.CustomObjectsApi(kube).delete_namespaced_custom_object(
            SKS_GROUP, SKS_VERSION, revision.namespace, SKS_PLURAL, revision.name
        )

        async def recreated():
            try:
                sks = await client.CustomObjectsApi(kube).get_namespaced_custom_object(
                    SKS_GROUP, SKS_VERSION, revision.namespace, SKS_PLURAL, revision.name
                )
            except client.ApiException as error:
                if error.status == 404:
                    return None
                raise
            return sks if sks["metadata"].get("deletionTimestamp") is None else None

        sks = await eventually(recreated, what="the ServerlessService recreated")
        assert sks["metadata"]["ownerReferences"][0]["uid"] == pa["metadata"]["uid"]
        assert logged(caplog, revision.name, "created its ServerlessService")
        await revision.adapter.apply({revision.key: 3})
        await revision.reaches(3)
    assert revision.alive()


@pytest.mark.knative
async def test_knative_survives_an_api_server_restart(
    kube, control_plane, fault_proxy, knative_setup, caplog
):
    """kube-apiserver stops for 2 s and starts again: every watch through the proxy drops and
    every call meanwhile fails; the informers log and relist, and a change made after the
    restart is reconciled."""
    caplog.set_level(logging.INFO, logger="adapters.kubernetes.informer")
    revision = await knative_setup("rst-00001")
    relists = revision.adapter.pas.relists
    async with never_below(kube, revision.namespace, revision.deployment, 2):
        await asyncio.to_thread(control_plane.restart_apiserver, 2.0)
        await eventually(
            lambda: _relisted_since(revision.adapter.pas, relists),
            timeout_s=60,
            what="the PAs relisted after the restart",
        )
        assert logged(caplog, "watch ended", "relisting")
        await revision.set_min_scale(3)
        # Not Ready necessarily: the stand-in kubelet does not retry marking a pod ready when
        # the API server was down at that moment, and min-scale 3 wants all three ready.
        await revision.reaches(3, timeout_s=90, ready=False)
    assert revision.alive()


async def _relisted_since(informer, relists: int) -> bool:
    return informer.relists > relists


# ---------------------------------------------------------------------------------- HPA
@dataclass
class Workloads:
    kube: client.ApiClient
    adapter: KubernetesWorkloads
    proxy: FaultProxy
    namespace: str

    async def listed(self, key: ServiceKey) -> bool:
        return key in await self.adapter.services()

    async def floor(self, name: str) -> int:
        hpa = await client.AutoscalingV1Api(self.kube).read_namespaced_horizontal_pod_autoscaler(
            name, self.namespace
        )
        return hpa.spec.min_replicas

    def alive(self) -> bool:
        return bool(self.adapter._tasks) and not any(t.done() for t in self.adapter._tasks)


@pytest.fixture
async def hpa_setup(kube, proxied, fault_proxy, namespace):
    """`await hpa_setup(api_timeout_s=...)`: the HPA adapter, talking through the proxy."""
    made: list[KubernetesWorkloads] = []

    async def make(api_timeout_s: float = REQUEST_TIMEOUT_S) -> Workloads:
        adapter = KubernetesWorkloads(proxied, api_timeout_s=api_timeout_s)
        made.append(adapter)  # stopped even when its start fails
        await adapter.start()
        return Workloads(kube, adapter, fault_proxy, namespace)

    yield make
    for adapter in made:
        await adapter.stop()


async def floored_deployment(setup: Workloads, pool: str, name: str, floor: int) -> ServiceKey:
    """A Deployment under an opted-in HPA (min 1) whose floor Leadtime holds at `floor`, the
    real HPA controller having raised the Deployment to it."""
    await client.AppsV1Api(setup.kube).create_namespaced_deployment(
        setup.namespace, gpu_deployment(name, 1, pool=pool)
    )
    await create_floored_hpa(setup.kube, setup.namespace, name)
    key = ServiceKey(setup.namespace, name)
    await eventually(lambda: setup.listed(key), what="the opted-in HPA listed")
    assert await setup.adapter.apply({key: floor}) == {}
    await replicas_reach(setup, name, floor, f"the HPA controller holding {floor}")
    return key


async def replicas_reach(setup: Workloads, name: str, replicas: int, what: str) -> None:
    """Wait (up to a minute: the real HPA controller syncs every 2 s) until the Deployment's
    spec asks for `replicas`."""

    async def reached():
        return await deployment_replicas(setup.kube, setup.namespace, name) == replicas

    await eventually(reached, timeout_s=60, what=what)


async def create_floored_hpa(api: client.ApiClient, namespace: str, name: str) -> None:
    await client.AutoscalingV1Api(api).create_namespaced_horizontal_pod_autoscaler(
        namespace,
        {
            "metadata": {"name": name, "annotations": {FLOOR: "true"}},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                "minReplicas": 1,
                "maxReplicas": 8,
                "targetCPUUtilizationPercentage": 80,
            },
        },
    )


async def plain_deployment(setup: Workloads, pool: str, name: str, replicas: int) -> ServiceKey:
    body = gpu_deployment(name, 1, pool=pool)
    body["metadata"]["annotations"] = {AUTOSCALE: "true"}
    await client.AppsV1Api(setup.kube).create_namespaced_deployment(setup.namespace, body)
    key = ServiceKey(setup.namespace, name)
    await eventually(lambda: setup.listed(key), what="the opted-in Deployment listed")
    assert await setup.adapter.apply({key: replicas}) == {}
    return key


async def apply_until(setup: Workloads, key: ServiceKey, replicas: int) -> None:
    """Apply the decision every second, as the control loop re-applies one each tick, until
    the adapter reports success."""

    async def applied():
        return await setup.adapter.apply({key: replicas}) == {}

    await eventually(applied, interval_s=1.0, what=f"{key} applied at {replicas}")


@pytest.mark.hpa
@pytest.mark.parametrize(
    ("status", "times"),
    [
        pytest.param(409, CONFLICT_RETRIES + 1, id="409-on-HPA-patch-past-the-retries"),
        pytest.param(429, 2, id="429-on-HPA-patch"),
        pytest.param(503, 2, id="503-on-HPA-patch"),
    ],
)
async def test_hpa_floor_survives_an_api_error(hpa_setup, gpu_pool, status, times):
    setup = await hpa_setup()
    key = await floored_deployment(setup, gpu_pool(gpus=8), "chat", 2)
    rule = setup.proxy.answer("PATCH", HPA, status, times=times)
    async with never_below(setup.kube, setup.namespace, "chat", 2):
        failures = await setup.adapter.apply({key: 3})
        if failures:  # else a background re-assertion (on an HPA change) met the fault first
            assert str(status) in failures[key] and "patch HorizontalPodAutoscaler" in failures[key]
        await eventually(lambda: _done(rule), what="the fault used up")
        # Whichever write met the fault reported it on the HPA.
        event = await event_saying(
            setup.kube,
            setup.namespace,
            "chat",
            "ScaleFailed",
            "patch HorizontalPodAutoscaler",
            str(status),
        )
        assert event.involved_object.kind == "HorizontalPodAutoscaler"
        await apply_until(setup, key, 3)
        assert await setup.floor("chat") == 3
        await replicas_reach(setup, "chat", 3, "the HPA controller holding the new floor")
    assert setup.alive()


@pytest.mark.hpa
@pytest.mark.parametrize(
    ("status", "times"),
    [
        pytest.param(429, 2, id="429-on-workload-scale"),
        pytest.param(500, 1, id="500-on-workload-scale"),
        pytest.param(409, 1, id="409-on-workload-scale"),
    ],
)
async def test_a_plain_workload_survives_an_api_error_on_scale(hpa_setup, gpu_pool, status, times):
    setup = await hpa_setup()
    key = await plain_deployment(setup, gpu_pool(gpus=8), "llm", 2)
    rule = setup.proxy.answer("PATCH", SCALE, status, times=times)
    async with never_below(setup.kube, setup.namespace, "llm", 2):
        failures = await setup.adapter.apply({key: 3})
        assert rule.hits == 1
        assert "patch scale of Deployment llm" in failures[key] and str(status) in failures[key]
        event = await event_saying(
            setup.kube, setup.namespace, "llm", "ScaleFailed", "patch scale", str(status)
        )
        assert event.involved_object.kind == "Deployment"
        await apply_until(setup, key, 3)
        assert await deployment_replicas(setup.kube, setup.namespace, "llm") == 3
    assert setup.alive()


@pytest.mark.hpa
async def test_hpa_adapter_events_are_rate_limited(hpa_setup, gpu_pool):
    """The same failure ten times in a row makes one Event, not ten."""
    setup = await hpa_setup()
    key = await plain_deployment(setup, gpu_pool(gpus=4), "flood", 1)
    setup.proxy.answer("PATCH", SCALE, 429, times=10)
    for _ in range(10):
        assert key in await setup.adapter.apply({key: 2})
    await event_saying(setup.kube, setup.namespace, "flood", "ScaleFailed", "429")
    assert len(await warning_events(setup.kube, setup.namespace, "flood", "ScaleFailed")) == 1
    await apply_until(setup, key, 2)


@pytest.mark.hpa
@pytest.mark.parametrize("what", ["floor", "workload"])
async def test_hpa_adapter_survives_an_api_server_that_does_not_answer(hpa_setup, gpu_pool, what):
    setup = await hpa_setup(api_timeout_s=API_TIMEOUT_S)
    pool = gpu_pool(gpus=8)
    if what == "floor":
        key = await floored_deployment(setup, pool, "slow", 2)
        rule = setup.proxy.delay("PATCH", HPA, 3 * API_TIMEOUT_S)
    else:
        key = await plain_deployment(setup, pool, "slow", 2)
        rule = setup.proxy.delay("PATCH", SCALE, 3 * API_TIMEOUT_S)
    async with never_below(setup.kube, setup.namespace, "slow", 2):
        failures = await setup.adapter.apply({key: 3})
        if what == "workload" or failures:  # (a floor's background re-assertion may meet it)
            assert f"no answer within {API_TIMEOUT_S:g} s" in failures[key]
        await eventually(lambda: _done(rule), what="the stalled call made")
        await event_saying(
            setup.kube,
            setup.namespace,
            "slow",
            "ScaleFailed",
            f"no answer within {API_TIMEOUT_S:g} s",
        )
        await apply_until(setup, key, 3)
    assert setup.alive()


@pytest.mark.hpa
async def test_hpa_deleted_while_its_floor_is_held(hpa_setup, gpu_pool):
    """The HPA goes while Leadtime holds its floor at 3: nothing scales the Deployment down,
    the adapter forgets the HPA and says so; a recreated HPA gets the floor again."""
    setup = await hpa_setup()
    key = await floored_deployment(setup, gpu_pool(gpus=8), "rag", 3)
    async with never_below(setup.kube, setup.namespace, "rag", 3):
        await client.AutoscalingV1Api(setup.kube).delete_namespaced_horizontal_pod_autoscaler(
            "rag", setup.namespace
        )

        async def forgotten():
            return not await setup.listed(key)

        await eventually(forgotten, what="the deleted HPA forgotten")
        failures = await setup.adapter.apply({key: 4})
        assert "gone" in failures[key]
        await asyncio.sleep(2.5)  # a sync period of the HPA controller, with no HPA
        await create_floored_hpa(setup.kube, setup.namespace, "rag")
        await eventually(lambda: setup.listed(key), what="the recreated HPA listed")
        await apply_until(setup, key, 4)
        assert await setup.floor("rag") == 4
        await replicas_reach(setup, "rag", 4, "the recreated HPA holding the floor")
    assert setup.alive()


@pytest.mark.hpa
async def test_a_plain_workloads_deployment_deleted(hpa_setup, gpu_pool):
    setup = await hpa_setup()
    pool = gpu_pool(gpus=8)
    key = await plain_deployment(setup, pool, "emb", 2)
    await client.AppsV1Api(setup.kube).delete_namespaced_deployment("emb", setup.namespace)
    failures = await setup.adapter.apply({key: 3})
    assert "gone" in failures[key]  # 404 from /scale, or already forgotten

    async def forgotten():
        return not await setup.listed(key)

    await eventually(forgotten, what="the deleted Deployment forgotten")
    body = gpu_deployment("emb", 1, pool=pool)
    body["metadata"]["annotations"] = {AUTOSCALE: "true"}
    await client.AppsV1Api(setup.kube).create_namespaced_deployment(setup.namespace, body)
    await eventually(lambda: setup.listed(key), what="the recreated Deployment listed")
    async with never_below(setup.kube, setup.namespace, "emb", 1):
        await apply_until(setup, key, 3)
        assert await deployment_replicas(setup.kube, setup.namespace, "emb") == 3
    assert setup.alive()


@pytest.mark.security
async def test_a_watch_that_goes_silent_is_replaced_at_its_deadline(
    kube, fault_proxy, control_plane, namespace
):
    """The network path of a watch starts dropping everything (no data, no end): the informer
    gives that watch up just after the watch timeout, relists, and sees what changed."""
    from tests.cluster.fault_proxy import proxied_configuration

    fault_proxy.black_hole("/configmaps", after_s=0.5)
    seen: list[str] = []
    configuration = proxied_configuration(fault_proxy, control_plane)
    async with client.ApiClient(configuration) as proxied_api:
        informer = Informer(
            "configmaps",
            client.CoreV1Api(proxied_api).list_namespaced_config_map,
            lambda cm: cm.metadata.name,
            lambda key, old, new: seen.append(key[1]),
            watch_timeout_s=2,
            namespace=namespace,
        )
        running = asyncio.create_task(informer.run())
        try:
            await asyncio.wait_for(informer.synced.wait(), 10)
            await asyncio.sleep(1.0)  # the watch is silent by now
            await client.CoreV1Api(kube).create_namespaced_config_map(
                namespace, {"metadata": {"name": "after-the-silence"}}
            )

            async def noticed():
                return "after-the-silence" in seen

            await eventually(noticed, timeout_s=2 + DEADLINE_MARGIN_S + 5, what="the new object")
            assert informer.relists >= 2  # the silent watch was given up, and the cache rebuilt
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
