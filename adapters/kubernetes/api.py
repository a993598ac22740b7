"""A Kubernetes API client for Leadtime's adapters, and the conventions they share when
writing: merge patches, how often a 409 is retried, and timestamps in Kubernetes' format."""

from __future__ import annotations

import datetime as dt
import os
import time

from kubernetes_asyncio import client
from kubernetes_asyncio import config as kube_config

MERGE_PATCH = "application/merge-patch+json"
CONFLICT_RETRIES = 3
"""A write that meets 409 rereads and recomputes this many times before giving up."""


def rfc3339(seconds: float | None = None) -> str:
    """A Unix time (default: now) as Kubernetes writes times: `2026-11-29T04:00:00Z`."""
    moment = dt.datetime.fromtimestamp(time.time() if seconds is None else seconds,
                                       dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


async def kubernetes_api(kubeconfig: str | None) -> client.ApiClient:
    """A client from the kubeconfig file, or the pod's service account when None."""
    configuration = client.Configuration()
    if kubeconfig:
        await kube_config.load_kube_config(config_file=os.path.expanduser(kubeconfig),
                                           client_configuration=configuration)
    else:
        kube_config.load_incluster_config(client_configuration=configuration)
    return client.ApiClient(configuration)
