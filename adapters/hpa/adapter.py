"""Leadtime's `Catalog` and `Actuator` for clusters without Knative: predictive floors on
opted-in HPAs (`leadtime.dev/floor: "true"`) and plain Deployments / StatefulSets
(`leadtime.dev/autoscale: "true"`) scaled through /scale.

HPAs are read and patched as `autoscaling/v1`, which every Kubernetes version serves and which
carries all a floor needs (min, max, target); the user's v2 metrics are untouched. A floor is
re-asserted whenever its HPA changes (the user edited it, or restarted it from a manifest) and
restored when the annotation goes. Every write carries the resourceVersion it was computed
from; a 409 rereads and recomputes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes_asyncio import client

from adapters.hpa.floors import ORIGINAL_MIN, HpaFacts, floor_patch, hpa_facts
from adapters.hpa.workloads import opted_in, replicas_for, workload_status
from adapters.kubernetes.api import (
    CONFLICT_RETRIES,
    MERGE_PATCH,
    REQUEST_TIMEOUT_S,
    call,
)
from adapters.kubernetes.events import FailureEvents
from adapters.kubernetes.informer import Informer, Key
from autoscaler.ports import ReplicaStatus, ServiceKey
from autoscaler.sharding import owns_every_service

log = logging.getLogger(__name__)


class KubernetesWorkloads:
    """`start()` / `stop()`; `services()` (Catalog); `apply()`, `status()` (Actuator)."""

    def __init__(
        self,
        api: client.ApiClient,
        *,
        api_timeout_s: float = REQUEST_TIMEOUT_S,
        owns: Callable[[ServiceKey], bool] | None = None,
    ) -> None:
        self.api = api
        self.owns: Callable[[ServiceKey], bool] = owns or owns_every_service
        """With several replicas: whether this one holds the service's bucket now (the Lease
        elector's `owns`); other replicas' services are neither listed nor written."""
        self.api_timeout_s = api_timeout_s
        self._failures = FailureEvents(api, "ScaleFailed")
        self.autoscaling = client.AutoscalingV1Api(api)
        self.apps = client.AppsV1Api(api)
        plain = api.sanitize_for_serialization
        self.hpas: Informer[dict] = Informer(
            "hpas",
            self.autoscaling.list_horizontal_pod_autoscaler_for_all_namespaces,
            plain,
            self._hpa_changed,
        )
        self.deployments: Informer[dict | None] = Informer(
            "deployments", self.apps.list_deployment_for_all_namespaces, self._opted, self._ignore
        )
        self.statefulsets: Informer[dict | None] = Informer(
            "statefulsets",
            self.apps.list_stateful_set_for_all_namespaces,
            self._opted,
            self._ignore,
        )
        self.desired: dict[ServiceKey, int] = {}
        self._tasks: list[asyncio.Task] = []
        self._background: set[asyncio.Task] = set()

    # ------------------------------------------------------------------------ lifecycle
    async def start(self, timeout_s: float = 30.0) -> None:
        informers = (self.hpas, self.deployments, self.statefulsets)
        self._tasks = [asyncio.create_task(i.run(), name=f"informer-{i.name}") for i in informers]
        await asyncio.wait_for(asyncio.gather(*(i.synced.wait() for i in informers)), timeout_s)

    async def stop(self) -> None:
        for task in [*self._tasks, *self._background]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._background, return_exceptions=True)

    # ------------------------------------------------------------------------ Catalog
    def floors(self) -> dict[ServiceKey, HpaFacts]:
        """Opted-in HPAs by the service whose decision is their floor."""
        found = {}
        for hpa in self.hpas.objects.values():
            facts = hpa_facts(hpa)
            if facts.opted_in:
                found[ServiceKey(facts.namespace, facts.service)] = facts
        return found

    def workloads(self) -> dict[ServiceKey, tuple[str, dict]]:
        """Opted-in workloads by name: (kind, object)."""
        found = {}
        for kind, informer in (
            ("Deployment", self.deployments),
            ("StatefulSet", self.statefulsets),
        ):
            for (namespace, name), obj in informer.objects.items():
                if obj is not None:
                    found[ServiceKey(namespace, name)] = (kind, obj)
        return found

    async def services(self) -> list[ServiceKey]:
        return sorted(k for k in set(self.floors()) | set(self.workloads()) if self.owns(k))

    # ------------------------------------------------------------------------ Actuator
    async def apply(self, decisions: Mapping[ServiceKey, int]) -> Mapping[ServiceKey, str]:
        # Another replica's service (its bucket moved since the catalog was read) is skipped:
        # not written, and no failure either — that replica scales it.
        decisions = {k: v for k, v in decisions.items() if self.owns(k)}
        self.desired.update(decisions)
        floors, workloads = self.floors(), self.workloads()
        failures: dict[ServiceKey, str] = {}
        for key, replicas in decisions.items():
            try:
                if key in floors:
                    await self._set_floor(floors[key])
                elif key in workloads:
                    await self._scale(key, *workloads[key], replicas)
                else:
                    failures[key] = f"{key}: no opted-in HPA or workload (gone?)"
            except client.ApiException as error:
                gone = error.status == 404
                failures[key] = f"{key} is gone" if gone else str(error)
                if not gone:
                    await self._report(key, floors, workloads, failures[key])
        return failures

    async def _report(
        self,
        key: ServiceKey,
        floors: dict[ServiceKey, HpaFacts],
        workloads: dict[ServiceKey, tuple[str, dict]],
        message: str,
    ) -> None:
        """A Warning Event on the HPA or workload whose write failed (rate-limited)."""
        if key in floors:
            obj = _hpa_object(floors[key])
        else:
            kind, workload = workloads[key]
            obj = {"apiVersion": "apps/v1", "kind": kind, "metadata": workload["metadata"]}
        await self._failures.report(obj, message)

    async def status(self, keys: list[ServiceKey]) -> Mapping[ServiceKey, ReplicaStatus]:
        floors, workloads = self.floors(), self.workloads()
        statuses = {}
        for key in keys:
            if key in workloads:
                statuses[key] = ReplicaStatus(*workload_status(workloads[key][1]))
            elif key in floors:
                hpa = self.hpas.objects[(floors[key].namespace, floors[key].name)]
                status = hpa.get("status") or {}
                statuses[key] = ReplicaStatus(
                    ready=int(status.get("currentReplicas") or 0),
                    pending=0,
                    desired=int(status.get("desiredReplicas") or 0),
                )
        return statuses

    # ------------------------------------------------------------------------ writes
    async def _set_floor(self, facts: HpaFacts) -> None:
        for attempt in range(CONFLICT_RETRIES + 1):
            patch = floor_patch(facts, self.desired.get(ServiceKey(facts.namespace, facts.service)))
            if patch is None:
                return
            try:
                await call(
                    f"patch HorizontalPodAutoscaler {facts.name}",
                    self.autoscaling.patch_namespaced_horizontal_pod_autoscaler(
                        facts.name, facts.namespace, patch, _content_type=MERGE_PATCH
                    ),
                    self.api_timeout_s,
                )
                return
            except client.ApiException as error:
                if error.status != 409 or attempt == CONFLICT_RETRIES:
                    raise
                fresh = await call(
                    f"get HorizontalPodAutoscaler {facts.name}",
                    self.autoscaling.read_namespaced_horizontal_pod_autoscaler(
                        facts.name, facts.namespace
                    ),
                    self.api_timeout_s,
                )
                facts = hpa_facts(self.api.sanitize_for_serialization(fresh))

    async def _scale(self, key: ServiceKey, kind: str, obj: dict, decision: int) -> None:
        replicas = replicas_for(decision, obj["metadata"].get("annotations"))
        body = [{"op": "replace", "path": "/spec/replicas", "value": replicas}]
        if kind == "Deployment":
            request = self.apps.patch_namespaced_deployment_scale(key.name, key.namespace, body)
        else:
            request = self.apps.patch_namespaced_stateful_set_scale(key.name, key.namespace, body)
        await call(f"patch scale of {kind} {key.name}", request, self.api_timeout_s)

    # ------------------------------------------------------------------------ informers
    def _opted(self, obj: Any) -> dict | None:
        plain = self.api.sanitize_for_serialization(obj)
        return plain if opted_in(plain["metadata"].get("annotations")) else None

    def _ignore(self, key: Key, old: Any, new: Any) -> None:
        return None

    def _hpa_changed(self, key: Key, old: dict | None, new: dict | None) -> None:
        """Re-assert a floor (or restore the original) whenever the HPA changes."""
        if new is None:
            return
        facts = hpa_facts(new)
        key = ServiceKey(facts.namespace, facts.service)
        if not self.owns(key):
            return
        if facts.opted_in and key not in self.desired and self.owns is not owns_every_service:
            # A replica that took this service over has no decision for it yet: the floor the
            # previous owner set stays until its first decision, instead of dropping to the
            # original minReplicas in between.
            return
        if facts.opted_in or ORIGINAL_MIN in facts.annotations:
            task = asyncio.get_running_loop().create_task(self._sync(facts))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    def ownership_changed(self, acquired: set[int], lost: set[int]) -> None:
        """The elector's callback: forget the decisions for services no longer owned (stale if
        their bucket ever comes back), and re-assert the floors of every owned HPA at once."""
        for key in [k for k in self.desired if not self.owns(k)]:
            del self.desired[key]
        if acquired:
            for hpa in list(self.hpas.objects.values()):
                self._hpa_changed(("", ""), None, hpa)

    async def _sync(self, facts: HpaFacts) -> None:
        try:
            await self._set_floor(facts)
        except client.ApiException as error:
            if error.status != 404:
                await self._failures.report(_hpa_object(facts), str(error))


def _hpa_object(facts: HpaFacts) -> dict:
    """What an Event about the HPA names as its object."""
    return {
        "apiVersion": "autoscaling/v1",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"namespace": facts.namespace, "name": facts.name},
    }
