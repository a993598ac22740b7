"""Kubernetes Events, so `kubectl describe` shows what Leadtime refused (a PodAutoscaler's bad
annotation) and, through `FailureEvents`, which API calls keep failing (on PAs, HPAs and
workloads alike)."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

from kubernetes_asyncio import client

from adapters.kubernetes.api import REQUEST_TIMEOUT_S, rfc3339

log = logging.getLogger(__name__)
COMPONENT = "leadtime"


async def record(
    api: client.ApiClient, pa: dict[str, Any], kind: str, reason: str, message: str
) -> None:
    """Create a core/v1 Event about `pa` (any object: `apiVersion`, `kind`, `metadata`; `kind`
    of the Event Normal or Warning); failures are logged only:
    an Event is a courtesy, never a reason to stop reconciling."""
    meta = pa["metadata"]
    now = rfc3339()
    body = {
        "metadata": {
            "name": f"{meta['name']}.{uuid.uuid4().hex[:12]}",
            "namespace": meta["namespace"],
        },
        "involvedObject": {
            "apiVersion": pa.get("apiVersion"),
            "kind": pa.get("kind"),
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
        },
        "reason": reason,
        "message": message[:1024],
        "type": kind,
        "source": {"component": COMPONENT},
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
        "reportingComponent": COMPONENT,
    }
    try:
        async with asyncio.timeout(REQUEST_TIMEOUT_S):
            await client.CoreV1Api(api).create_namespaced_event(meta["namespace"], body)
    except Exception as error:
        log.warning(
            "event %s on %s/%s not recorded: %s", reason, meta["namespace"], meta["name"], error
        )


class FailureEvents:
    """Warning Events for failed API calls, at most one per object and message every
    `every_s`: a fault that lasts (an API server answering 429 to every write) must be visible
    to `kubectl describe`, but must not add a flood of Events to the load it is under."""

    def __init__(self, api: client.ApiClient, reason: str, every_s: float = 60.0) -> None:
        self.api = api
        self.reason = reason
        self.every_s = every_s
        self._last: dict[tuple[str, str], tuple[str, float]] = {}

    async def report(self, obj: dict[str, Any], message: str) -> None:
        meta = obj["metadata"]
        key = (meta["namespace"], meta["name"])
        previous = self._last.get(key)
        now = time.monotonic()
        if previous is not None and previous[0] == message and now - previous[1] < self.every_s:
            return
        self._last[key] = (message, now)
        log.warning("%s/%s: %s", *key, message)
        await record(self.api, obj, "Warning", self.reason, message)

    def forget(self, namespace: str, name: str) -> None:
        self._last.pop((namespace, name), None)
