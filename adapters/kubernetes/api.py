"""A Kubernetes API client for Leadtime's adapters, and the conventions they share when
writing: merge patches, how often a 409 is retried, how long a call may take, how a failed call
is named, and timestamps in Kubernetes' format."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import time
from collections.abc import Awaitable
from typing import TypeVar

import aiohttp
from kubernetes_asyncio import client
from kubernetes_asyncio import config as kube_config

MERGE_PATCH = "application/merge-patch+json"
CONFLICT_RETRIES = 3
"""A write that meets 409 rereads and recomputes this many times before giving up."""
REQUEST_TIMEOUT_S = 10.0
"""How long one API call may take. kubernetes_asyncio sets no timeout at all, so without one a
hung API server (or a proxy in front of it) would hold a reconcile, and the tick that waits for
it, forever."""

T = TypeVar("T")


class ApiCallFailed(client.ApiException):
    """An API call that failed, naming the operation: `status` is the HTTP status (None when it
    timed out or the connection failed), so callers that branch on 404 / 409 keep working and
    what is reported says which call failed and how."""

    def __init__(self, operation: str, status: int | None, reason: str) -> None:
        super().__init__(status=status, reason=reason)
        self.operation = operation

    def __str__(self) -> str:
        how = f"HTTP {self.status} {self.reason}" if self.status else self.reason
        return f"{self.operation} failed: {how}"


async def call(operation: str, request: Awaitable[T], timeout_s: float = REQUEST_TIMEOUT_S) -> T:
    """Await one API call within `timeout_s`; any failure becomes an `ApiCallFailed`."""
    try:
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation
        # that arrives as the call completes, and a stopped adapter's task would live on.
        async with asyncio.timeout(timeout_s):
            return await request
    except client.ApiException as error:
        raise ApiCallFailed(operation, error.status, error.reason or "") from error
    except TimeoutError as error:
        raise ApiCallFailed(operation, None, f"no answer within {timeout_s:g} s") from error
    except aiohttp.ClientError as error:
        raise ApiCallFailed(operation, None, f"{error.__class__.__name__}: {error}") from error


def rfc3339(seconds: float | None = None) -> str:
    """A Unix time (default: now) as Kubernetes writes times: `2026-11-29T04:00:00Z`."""
    moment = dt.datetime.fromtimestamp(time.time() if seconds is None else seconds, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


async def kubernetes_api(kubeconfig: str | None) -> client.ApiClient:
    """A client from the kubeconfig file, or the pod's service account when None."""
    configuration = client.Configuration()
    if kubeconfig:
        await kube_config.load_kube_config(
            config_file=os.path.expanduser(kubeconfig), client_configuration=configuration
        )
    else:
        kube_config.load_incluster_config(client_configuration=configuration)
    return client.ApiClient(configuration)
