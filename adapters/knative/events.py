"""Kubernetes Events on a PodAutoscaler, so `kubectl describe` shows what Leadtime refused."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from kubernetes_asyncio import client

from adapters.kubernetes.api import rfc3339

log = logging.getLogger(__name__)
COMPONENT = "leadtime"


async def record(api: client.ApiClient, pa: dict[str, Any], kind: str, reason: str,
                 message: str) -> None:
    """Create a core/v1 Event about `pa` (`kind` Normal or Warning); failures are logged only:
    an Event is a courtesy, never a reason to stop reconciling."""
    meta = pa["metadata"]
    now = rfc3339()
    body = {
        "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:12]}",
                     "namespace": meta["namespace"]},
        "involvedObject": {"apiVersion": pa.get("apiVersion"), "kind": pa.get("kind"),
                           "name": meta["name"], "namespace": meta["namespace"],
                           "uid": meta.get("uid"), "resourceVersion": meta.get("resourceVersion")},
        "reason": reason, "message": message[:1024], "type": kind,
        "source": {"component": COMPONENT}, "firstTimestamp": now, "lastTimestamp": now,
        "count": 1, "reportingComponent": COMPONENT,
    }
    try:
        await client.CoreV1Api(api).create_namespaced_event(meta["namespace"], body)
    except Exception as error:
        log.warning("event %s on %s/%s not recorded: %s", reason, meta["namespace"],
                    meta["name"], error)
