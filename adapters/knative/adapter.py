"""The Knative adapter: Leadtime's `Catalog` and `Actuator` for Knative Serving.

It keeps informers on PodAutoscalers, ServerlessServices and revision pods, and reconciles every
PA of Leadtime's class — whenever one of them changes, every `resync_s`, after a timer the
scale-to-zero rules ask for, and when the control loop applies a decision (the decision is the
`want` the scaler bounds). PAs of other classes (the KPA's, the HPA's) are never touched.
A revision's policy comes from its PA's annotations over the config's defaults; its cold start
is learned from its pods' readiness and fed back through `status()`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
from kubernetes_asyncio import client

from adapters.knative.annotations import QueryFence, RevisionSettings, revision_settings
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
    valid_class_name,
)
from adapters.knative.pods import PodInfo, cold_start_s, count
from adapters.knative.reconciler import Outcome, Reconciler, ReconcileSettings, RevisionMemory
from adapters.kubernetes import events
from adapters.kubernetes.api import ApiCallFailed
from adapters.kubernetes.informer import Informer, Key
from autoscaler.config import PolicyConfig
from autoscaler.errors import InputError
from autoscaler.ports import ReplicaStatus, ServiceKey
from autoscaler.sharding import owns_every_service

log = logging.getLogger(__name__)
REQUEUE_S = 2.0
"""Seconds before a revision whose reconcile failed is tried again."""


def pod_info(pod: client.V1Pod) -> tuple[str, PodInfo]:
    """(revision, plain facts) of a pod."""
    ready_at = None
    for condition in pod.status.conditions or []:
        if condition.type == "Ready" and condition.status == "True":
            ready_at = condition.last_transition_time.timestamp()
    created = pod.metadata.creation_timestamp
    return (pod.metadata.labels or {}).get(REVISION_LABEL, ""), PodInfo(
        name=pod.metadata.name,
        phase=pod.status.phase or "Pending",
        ready=ready_at is not None,
        terminating=pod.metadata.deletion_timestamp is not None,
        created_s=created.timestamp() if created else time.time(),
        ready_at_s=ready_at,
    )


class KnativeAdapter:
    """`start()` / `stop()`; `services()`, `policy_for()` (Catalog); `apply()`, `status()`
    (Actuator)."""

    def __init__(
        self,
        api: client.ApiClient,
        defaults: PolicyConfig,
        *,
        class_name: str = DEFAULT_CLASS,
        settings: ReconcileSettings | None = None,
        resync_s: float = 30.0,
        workers: int = 4,
        on_queries: Callable[[ServiceKey, Mapping[str, str]], None] | None = None,
        owns: Callable[[ServiceKey], bool] | None = None,
        query_fence: QueryFence | None = None,
    ) -> None:
        if not valid_class_name(class_name):
            raise InputError(
                f"knative.class: must not be empty or end in .knative.dev, got {class_name!r}"
            )
        self.api = api
        self.defaults = defaults
        self.class_name = class_name
        self.settings = settings or ReconcileSettings()
        self.resync_s = resync_s
        self.workers = workers
        self.on_queries = on_queries
        self.query_fence = query_fence or QueryFence()
        """Which namespaces may bring their own PromQL (none by default), held to themselves."""
        self.owns: Callable[[ServiceKey], bool] = owns or owns_every_service
        """With several replicas: whether this one holds the revision's bucket now (the Lease
        elector's `owns`); PAs of other replicas are listed by nobody here and not touched."""
        custom = client.CustomObjectsApi(api)
        self.pas: Informer[dict] = Informer(
            "podautoscalers",
            custom.list_cluster_custom_object,
            dict,
            self._pa_changed,
            group=PA_GROUP,
            version=PA_VERSION,
            plural=PA_PLURAL,
        )
        self.sks: Informer[dict] = Informer(
            "serverlessservices",
            custom.list_cluster_custom_object,
            dict,
            self._sks_changed,
            group=SKS_GROUP,
            version=SKS_VERSION,
            plural=SKS_PLURAL,
        )
        self.pods: Informer[tuple[str, PodInfo]] = Informer(
            "pods",
            client.CoreV1Api(api).list_pod_for_all_namespaces,
            pod_info,
            self._pod_changed,
            label_selector=REVISION_LABEL,
        )
        self.by_revision: dict[Key, dict[str, PodInfo]] = {}
        self.desired: dict[Key, int] = {}
        self.settings_of: dict[Key, RevisionSettings] = {}
        self.memory: dict[Key, RevisionMemory] = {}
        self.outcomes: dict[Key, Outcome] = {}
        self._dirty: set[Key] = set()
        self._wake = asyncio.Event()
        self._locks: dict[Key, asyncio.Lock] = {}
        self._tasks: list[asyncio.Task] = []
        self._session: aiohttp.ClientSession | None = None
        self._reconciler: Reconciler | None = None
        self._failures = events.FailureEvents(api, "ReconcileFailed")
        self.worker_failures = 0
        """Reconciles that raised past their own guard, and workers replaced (both logged)."""

    # ------------------------------------------------------------------------ lifecycle
    async def start(self, timeout_s: float = 30.0) -> None:
        self._session = aiohttp.ClientSession()
        self._reconciler = Reconciler(self.api, self._session, self.settings)
        informers = (self.pas, self.sks, self.pods)
        self._tasks = [asyncio.create_task(i.run(), name=f"informer-{i.name}") for i in informers]
        await asyncio.wait_for(asyncio.gather(*(i.synced.wait() for i in informers)), timeout_s)
        for number in range(self.workers):
            self._start_worker(number)
        self._tasks.append(asyncio.create_task(self._resync(), name="resync"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    # ------------------------------------------------------------------------ Catalog
    def ours(self, pa: dict | None) -> bool:
        annotations = (pa or {}).get("metadata", {}).get("annotations") or {}
        return annotations.get(CLASS_ANNOTATION) == self.class_name

    async def services(self) -> list[ServiceKey]:
        return sorted(
            ServiceKey(*key)
            for key, pa in self.pas.objects.items()
            if self.ours(pa) and self.owns(ServiceKey(*key))
        )

    def policy_for(self, key: ServiceKey) -> PolicyConfig:
        """The revision's policy (its PA's annotations over the defaults)."""
        found = self.settings_of.get((key.namespace, key.name))
        return found.policy if found else self.defaults

    # ------------------------------------------------------------------------ Actuator
    async def apply(self, decisions: Mapping[ServiceKey, int]) -> Mapping[ServiceKey, str]:
        """Record each decision and reconcile its PA now; returns the failures.

        Another replica's revision (its bucket moved since the catalog was read) is skipped:
        not reconciled, no failure, and its decision not kept either — a kept one would be
        applied, stale, the moment this replica took the bucket over."""
        decisions = {k: v for k, v in decisions.items() if self.owns(k)}
        for key, replicas in decisions.items():
            self.desired[(key.namespace, key.name)] = replicas
        results = await asyncio.gather(
            *(self.reconcile((key.namespace, key.name)) for key in decisions)
        )
        return {
            key: outcome.error
            for key, outcome in zip(decisions, results, strict=True)
            if outcome.error
        }

    async def status(self, keys: list[ServiceKey]) -> Mapping[ServiceKey, ReplicaStatus]:
        statuses = {}
        for key in keys:
            pods = list(self.by_revision.get((key.namespace, key.name), {}).values())
            counts = count(pods)
            pa = self.pas.objects.get((key.namespace, key.name)) or {}
            desired = (pa.get("status") or {}).get("desiredScale")
            statuses[key] = ReplicaStatus(
                ready=counts.ready,
                pending=counts.pending + counts.not_ready,
                desired=desired if isinstance(desired, int) and desired >= 0 else counts.ready,
                cold_start_s=cold_start_s(pods),
            )
        return statuses

    # ------------------------------------------------------------------------ reconciling
    async def reconcile(self, key: Key) -> Outcome:
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            outcome = await self._reconcile(key)
        self.outcomes[key] = outcome
        pa = self.pas.objects.get(key)
        if outcome.error and not outcome.gone and pa is not None and self.ours(pa):
            await self._failures.report(pa, outcome.error)
        if outcome.requeue_after_s is not None:
            asyncio.get_running_loop().call_later(outcome.requeue_after_s, self._enqueue, key)
        return outcome

    async def _reconcile(self, key: Key) -> Outcome:
        pa = self.pas.objects.get(key)
        if pa is None or not self.ours(pa) or not self.owns(ServiceKey(*key)):
            return Outcome()
        assert self._reconciler is not None

        async def read_pa() -> dict:
            return await client.CustomObjectsApi(self.api).get_namespaced_custom_object(
                PA_GROUP, PA_VERSION, key[0], PA_PLURAL, key[1]
            )

        try:
            # A tenant writes the annotations: reading them is inside the guard too.
            spec = pa.get("spec") or {}
            revision = revision_settings(
                (pa["metadata"].get("annotations") or {}),
                spec.get("containerConcurrency") or 0,
                self.defaults,
                namespace=key[0],
                revision=key[1],
                fence=self.query_fence,
            )
            self.settings_of[key] = revision
            if self.on_queries is not None:
                self.on_queries(ServiceKey(*key), revision.queries)
            counts = count(self.by_revision.get(key, {}).values())
            return await self._reconciler.reconcile(
                pa,
                revision,
                self.sks.objects.get(key),
                counts,
                self.desired.get(key),
                self.memory.setdefault(key, RevisionMemory()),
                read_pa,
            )
        except client.ApiException as error:
            message = (
                str(error)
                if isinstance(error, ApiCallFailed)
                else f"API error {error.status} {error.reason}"
            )
            return Outcome(error=message, requeue_after_s=REQUEUE_S)
        except Exception as error:
            log.exception("reconcile %s/%s failed", *key)
            return Outcome(error=f"{error.__class__.__name__}: {error}", requeue_after_s=REQUEUE_S)

    def _enqueue(self, key: Key) -> None:
        self._dirty.add(key)
        self._wake.set()

    def _start_worker(self, number: int) -> None:
        task = asyncio.create_task(self._work(), name=f"reconcile-{number}")
        self._tasks.append(task)
        task.add_done_callback(lambda done: self._worker_ended(number, done))

    def _worker_ended(self, number: int, task: asyncio.Task) -> None:
        """Supervision: a reconcile worker never ends but by `stop()`; one that failed is
        logged, counted and replaced, so the fleet never runs out of workers."""
        if task.cancelled():
            return
        self._tasks.remove(task)
        self.worker_failures += 1
        log.error("reconcile worker %d failed; starting another", number, exc_info=task.exception())
        self._start_worker(number)

    async def _work(self) -> None:
        while True:
            await self._wake.wait()
            if not self._dirty:
                self._wake.clear()
                continue
            key = self._dirty.pop()
            try:
                await self.reconcile(key)
            except Exception:
                self.worker_failures += 1
                log.exception("reconcile %s/%s failed; requeued", *key)
                asyncio.get_running_loop().call_later(REQUEUE_S, self._enqueue, key)

    async def _resync(self) -> None:
        while True:
            await asyncio.sleep(self.resync_s)
            self._enqueue_owned()

    def _enqueue_owned(self) -> None:
        for key, pa in list(self.pas.objects.items()):
            if self.ours(pa) and self.owns(ServiceKey(*key)):
                self._enqueue(key)

    def ownership_changed(self, acquired: set[int], lost: set[int]) -> None:
        """The elector's callback: reconcile every revision this replica now owns at once (a
        taken-over revision is not left waiting for the next resync), and forget the decisions
        for the ones it no longer owns (stale if their bucket ever comes back)."""
        for key in [k for k in self.desired if not self.owns(ServiceKey(*k))]:
            del self.desired[key]
        if acquired:
            self._enqueue_owned()

    # ------------------------------------------------------------------------ informers
    def _pa_changed(self, key: Key, old: dict | None, new: dict | None) -> None:
        if new is None:
            self._failures.forget(*key)
            for table in (self.desired, self.settings_of, self.memory, self.outcomes, self._locks):
                table.pop(key, None)
            return
        if self.ours(new) and self.owns(ServiceKey(*key)):
            self._enqueue(key)

    def _sks_changed(self, key: Key, old: Any, new: Any) -> None:
        if key in self.pas.objects:
            self._enqueue(key)

    def _pod_changed(
        self, key: Key, old: tuple[str, PodInfo] | None, new: tuple[str, PodInfo] | None
    ) -> None:
        namespace, name = key
        if old is not None:
            self.by_revision.get((namespace, old[0]), {}).pop(name, None)
        if new is not None:
            self.by_revision.setdefault((namespace, new[0]), {})[name] = new[1]
        revision = (namespace, (new or old)[0])  # type: ignore[index]
        if revision in self.pas.objects:
            self._enqueue(revision)
