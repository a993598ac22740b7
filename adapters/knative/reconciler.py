"""One reconcile of one Leadtime-class PodAutoscaler: the I/O around the pure rules
(annotations, scaler, status). What a custom-class controller must do at the least:
own the ServerlessService, scale through /scale, write the status, scale to zero through the
activator.

Conflicts are expected, not exceptional: the status is written with the resourceVersion the
reconcile read (a PUT), so a concurrent writer makes it fail with 409; the reconcile then
reads the PA again and recomputes, as Knative's generated reconcilers do.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import aiohttp
from kubernetes_asyncio import client

from adapters.knative.annotations import RevisionSettings
from adapters.knative.conditions import FALSE, TRUE, set_condition, status_of, with_ready
from adapters.knative.names import (
    PA_GROUP,
    PA_PLURAL,
    PA_VERSION,
    PROXY,
    SCALE_TARGET_INITIALIZED,
    SKS_GROUP,
    SKS_PLURAL,
    SKS_READY,
    SKS_VERSION,
)
from adapters.knative.pods import PodCounts
from adapters.knative.probe import DEFAULT_URL, activator_answers, probe_url
from adapters.knative.scaler import ScaleInputs, ScalePlan, plan
from adapters.knative.status import StatusInputs, pa_status
from adapters.kubernetes import events
from adapters.kubernetes.api import (
    CONFLICT_RETRIES,
    MERGE_PATCH,
    REQUEST_TIMEOUT_S,
    call,
    rfc3339,
)
from autoscaler.config import PolicyConfig

log = logging.getLogger(__name__)


@dataclass
class ReconcileSettings:
    grace_s: float = 30.0
    probe_url_template: str = DEFAULT_URL
    probe_timeout_s: float = 2.0
    api_timeout_s: float = REQUEST_TIMEOUT_S


@dataclass
class Outcome:
    """What a reconcile did, for the adapter's bookkeeping and the tests."""

    plan: ScalePlan | None = None
    error: str | None = None
    requeue_after_s: float | None = None
    gone: bool = False
    """The PA itself was deleted meanwhile (nothing left to report the error on)."""


@dataclass
class RevisionMemory:
    """What the reconciler remembers of a revision between reconciles."""

    proxy_since: float | None = None
    reported: str = ""
    """The last annotation problems sent as an Event (one Event per distinct message)."""


class Reconciler:
    def __init__(
        self, api: client.ApiClient, session: aiohttp.ClientSession, settings: ReconcileSettings
    ) -> None:
        self.api = api
        self.session = session
        self.settings = settings
        self.custom = client.CustomObjectsApi(api)
        self.apps = client.AppsV1Api(api)

    async def reconcile(
        self,
        pa: dict[str, Any],
        revision: RevisionSettings,
        sks: dict[str, Any] | None,
        counts: PodCounts,
        want: int | None,
        memory: RevisionMemory,
        read_pa: Callable[[], Any],
    ) -> Outcome:
        """Bring the cluster in line with `pa`; a PA deleted meanwhile ends it cleanly (its
        writes meet 409 on the UID precondition or 404, and it is reported as gone)."""
        try:
            return await self._reconcile(pa, revision, sks, counts, want, memory, read_pa)
        except client.ApiException as error:
            # A 404 from a call on the PA means the PA went; from any other call (the scale
            # target, the SKS), it is an error to report on the PA.
            on_pa = "PodAutoscaler" in getattr(error, "operation", "PodAutoscaler")
            if error.status != 404 or not on_pa:
                raise
            meta = pa["metadata"]
            return Outcome(error=f"{meta['namespace']}/{meta['name']} is gone", gone=True)

    async def _call(self, operation: str, request: Any) -> Any:
        return await call(operation, request, self.settings.api_timeout_s)

    async def _reconcile(
        self,
        pa: dict[str, Any],
        revision: RevisionSettings,
        sks: dict[str, Any] | None,
        counts: PodCounts,
        want: int | None,
        memory: RevisionMemory,
        read_pa: Callable[[], Any],
    ) -> Outcome:
        meta = pa["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        await self._report_problems(pa, revision.problems, memory)
        if sks is not None and not _controlled_by(sks, pa):
            message = f"ServerlessService {name} exists and is not owned by this PodAutoscaler"
            await self._write_status(pa, read_pa, lambda p: _not_owned_status(p, message))
            return Outcome(error=message)
        target = pa["spec"]["scaleTargetRef"]
        if target.get("kind") != "Deployment":
            return Outcome(error=f"scaleTargetRef kind {target.get('kind')!r}: only Deployment")
        try:
            scale = await self._call(
                f"get scale of {target['name']}",
                self.apps.read_namespaced_deployment_scale(target["name"], namespace),
            )
        except client.ApiException as error:
            if error.status == 404:
                return Outcome(
                    error=f"scale target {target['name']} not found", requeue_after_s=5.0
                )
            raise
        current = scale.spec.replicas or 0
        decided = await self._plan(pa, revision.policy, sks, counts, want, memory, current)
        sks = await self._ensure_sks(pa, sks, decided.mode)
        if decided.replicas != current:
            await self._call(
                f"patch scale of {target['name']}",
                self.apps.patch_namespaced_deployment_scale(
                    target["name"],
                    namespace,
                    [{"op": "add", "path": "/spec/replicas", "value": decided.replicas}],
                ),
            )
        sks_status = (sks or {}).get("status") or {}
        if not (sks_status.get("serviceName") and sks_status.get("privateServiceName")):
            # The status needs both names (required by the CRD; Kubernetes 1.20 also refuses
            # empty strings), and the Revision reads a PA without status as "Deploying".
            return Outcome(plan=decided, requeue_after_s=1.0)
        await self._write_status(
            pa,
            read_pa,
            lambda p: pa_status(
                StatusInputs(
                    generation=p["metadata"].get("generation", 0),
                    previous=p.get("status") or {},
                    service_name=sks_status.get("serviceName", ""),
                    metrics_service_name=sks_status.get("privateServiceName", ""),
                    sks_ready=_sks_ready(sks),
                    sks_message=_sks_message(sks),
                    desired_scale=decided.desired_scale,
                    ready=counts.ready,
                    min_scale=revision.policy.min_scale,
                    initial_scale=revision.policy.initial_scale,
                    now=rfc3339(),
                    problems=revision.problems,
                )
            ),
        )
        return Outcome(plan=decided, requeue_after_s=decided.requeue_after_s)

    # ------------------------------------------------------------------------ pieces
    async def _plan(
        self,
        pa: dict,
        policy: PolicyConfig,
        sks: dict | None,
        counts: PodCounts,
        want: int | None,
        memory: RevisionMemory,
        current: int,
    ) -> ScalePlan:
        """The scaler's plan; when it asks, the activator is probed and it plans again."""
        mode_now = (sks or {}).get("spec", {}).get("mode")
        memory.proxy_since = (memory.proxy_since or time.time()) if mode_now == PROXY else None
        inputs = ScaleInputs(
            want=want,
            min_scale=policy.min_scale,
            max_scale=policy.max_scale,
            initial_scale=policy.initial_scale,
            initialized=status_of(
                (pa.get("status") or {}).get("conditions") or [], SCALE_TARGET_INITIALIZED
            )
            == TRUE,
            current=current,
            ready=counts.ready,
            sks_mode=mode_now,
            proxy_since=memory.proxy_since,
            activator_ok=None,
            now=time.time(),
            grace_s=self.settings.grace_s,
            reachable=pa["spec"].get("reachability") != "Unreachable",
        )
        decided = plan(inputs)
        if not decided.probe:
            return decided
        ok, why = await self._probe(pa, sks)
        if not ok:
            log.info("%s/%s: %s", pa["metadata"]["namespace"], pa["metadata"]["name"], why)
        return plan(replace(inputs, activator_ok=ok))

    async def _report_problems(
        self, pa: dict, problems: Mapping[str, str], memory: RevisionMemory
    ) -> None:
        message = "; ".join(problems[k] for k in sorted(problems))
        if message and message != memory.reported:
            await events.record(self.api, pa, "Warning", "InvalidAnnotation", message)
        memory.reported = message

    async def _probe(self, pa: dict, sks: dict | None) -> tuple[bool, str]:
        service = ((sks or {}).get("status") or {}).get("serviceName") or pa["metadata"]["name"]
        url = probe_url(
            self.settings.probe_url_template,
            service,
            pa["metadata"]["namespace"],
            pa["spec"].get("protocolType", "http1"),
        )
        return await activator_answers(self.session, url, self.settings.probe_timeout_s)

    async def _ensure_sks(self, pa: dict, sks: dict | None, mode: str) -> dict:
        meta = pa["metadata"]
        spec = {
            "mode": mode,
            "objectRef": pa["spec"]["scaleTargetRef"],
            "protocolType": pa["spec"].get("protocolType", "http1"),
            "numActivators": 0,
        }
        if sks is None:
            body = {
                "apiVersion": f"{SKS_GROUP}/{SKS_VERSION}",
                "kind": "ServerlessService",
                "metadata": {
                    "name": meta["name"],
                    "namespace": meta["namespace"],
                    "labels": dict(meta.get("labels") or {}),
                    "annotations": _metric_annotation(meta),
                    "ownerReferences": [
                        {
                            "apiVersion": f"{PA_GROUP}/{PA_VERSION}",
                            "kind": "PodAutoscaler",
                            "name": meta["name"],
                            "uid": meta["uid"],
                            "controller": True,
                            "blockOwnerDeletion": True,
                        }
                    ],
                },
                "spec": spec,
            }
            try:
                created = await self._call(
                    "create ServerlessService",
                    self.custom.create_namespaced_custom_object(
                        SKS_GROUP, SKS_VERSION, meta["namespace"], SKS_PLURAL, body
                    ),
                )
                log.info(
                    "%s/%s: created its ServerlessService (mode %s)",
                    meta["namespace"],
                    meta["name"],
                    mode,
                )
                return created
            except client.ApiException as error:
                if error.status != 409:
                    raise
                sks = await self._call(
                    "get ServerlessService",
                    self.custom.get_namespaced_custom_object(
                        SKS_GROUP, SKS_VERSION, meta["namespace"], SKS_PLURAL, meta["name"]
                    ),
                )
        if {k: sks.get("spec", {}).get(k) for k in spec} != spec:
            return await self._call(
                "patch ServerlessService",
                self.custom.patch_namespaced_custom_object(
                    SKS_GROUP,
                    SKS_VERSION,
                    meta["namespace"],
                    SKS_PLURAL,
                    meta["name"],
                    {"spec": spec},
                    _content_type=MERGE_PATCH,
                ),
            )
        return sks

    async def _write_status(
        self, pa: dict, read_pa: Callable[[], Any], compute: Callable[[dict], dict]
    ) -> None:
        """PUT the status computed from `pa`; on 409 read the PA again and recompute."""
        for attempt in range(CONFLICT_RETRIES + 1):
            status = compute(pa)
            if (pa.get("status") or {}) == status:
                return
            body = {**pa, "status": status}
            try:
                await self._call(
                    "update PodAutoscaler status",
                    self.custom.replace_namespaced_custom_object_status(
                        PA_GROUP,
                        PA_VERSION,
                        pa["metadata"]["namespace"],
                        PA_PLURAL,
                        pa["metadata"]["name"],
                        body,
                    ),
                )
                return
            except client.ApiException as error:
                if error.status != 409 or attempt == CONFLICT_RETRIES:
                    raise
                log.info(
                    "%s/%s: status conflict, rereading",
                    pa["metadata"]["namespace"],
                    pa["metadata"]["name"],
                )
                pa = await self._call("get PodAutoscaler", read_pa())


def _controlled_by(sks: dict, pa: dict) -> bool:
    uid = pa["metadata"].get("uid")
    return any(
        ref.get("controller") and ref.get("uid") == uid
        for ref in sks.get("metadata", {}).get("ownerReferences") or []
    )


def _metric_annotation(meta: dict) -> dict:
    key = "autoscaling.knative.dev/metric"
    annotations = meta.get("annotations") or {}
    return {key: annotations[key]} if key in annotations else {}


def _sks_ready(sks: dict | None) -> bool:
    if sks is None:
        return False
    status = sks.get("status") or {}
    current = status.get("observedGeneration") == sks["metadata"].get("generation")
    return current and status_of(status.get("conditions") or [], "Ready") == TRUE


def _sks_message(sks: dict | None) -> str:
    if sks is None:
        return "ServerlessService not created yet"
    ready = next(
        (c for c in (sks.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"),
        None,
    )
    return (ready or {}).get("message", "") or "ServerlessService not ready"


def _not_owned_status(pa: dict, message: str) -> dict:
    previous = pa.get("status") or {}
    now = rfc3339()
    conditions = set_condition(
        list(previous.get("conditions") or []), SKS_READY, FALSE, now, "NotOwned", message
    )
    return {
        **previous,
        "serviceName": previous.get("serviceName", ""),
        "metricsServiceName": previous.get("metricsServiceName", ""),
        "observedGeneration": pa["metadata"].get("generation", 0),
        "conditions": with_ready(conditions, now),
    }
