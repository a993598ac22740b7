"""Knative's objects on the test control plane as the tests read them, the Knative adapter as
they make it, and a Prometheus scraping Knative's series for revisions the test sets
(`prometheus_with_exporter`, a fixture: tests/conftest.py registers this module)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pytest
from kubernetes_asyncio import client

from adapters.knative.adapter import KnativeAdapter
from adapters.knative.names import (
    PA_GROUP,
    PA_PLURAL,
    PA_VERSION,
    SKS_GROUP,
    SKS_PLURAL,
    SKS_VERSION,
)
from adapters.knative.reconciler import ReconcileSettings
from autoscaler.config import PolicyConfig
from tests.cluster.knative import Activator
from tests.cluster.objects import deployment_replicas, eventually
from tests.helpers.prometheus import serve_exporter, start_prometheus


def make_adapter(api: client.ApiClient, activator: Activator, **kwargs) -> KnativeAdapter:
    settings = ReconcileSettings(grace_s=1.0, probe_url_template=activator.url_template)
    return KnativeAdapter(api, PolicyConfig(), settings=settings, resync_s=2.0, **kwargs)


async def read_pa(api, namespace: str, name: str) -> dict:
    return await client.CustomObjectsApi(api).get_namespaced_custom_object(
        PA_GROUP, PA_VERSION, namespace, PA_PLURAL, name
    )


async def read_sks(api, namespace: str, name: str) -> dict | None:
    try:
        return await client.CustomObjectsApi(api).get_namespaced_custom_object(
            SKS_GROUP, SKS_VERSION, namespace, SKS_PLURAL, name
        )
    except client.ApiException as error:
        if error.status == 404:
            return None
        raise


async def replicas(api, namespace: str, revision: str) -> int:
    """The replicas of a revision's Deployment (`create_revision` names it)."""
    return await deployment_replicas(api, namespace, f"{revision}-deployment")


async def wait_ready(api, namespace: str, name: str, timeout_s: float = 30.0) -> dict:
    async def ready():
        pa = await read_pa(api, namespace, name)
        return condition(pa, "Ready").get("status") == "True" and pa

    return await eventually(ready, timeout_s=timeout_s, what=f"PA {name} Ready")


FAST = {  # a revision that reacts within seconds, so the test does too
    "autoscaling.knative.dev/target": "1",
    "autoscaling.knative.dev/target-utilization-percentage": "100",
    "autoscaling.knative.dev/window": "6s",
    "autoscaling.knative.dev/min-scale": "1",
    "autoscaling.knative.dev/scale-down-delay": "0s",
    "leadtime.dev/cold-start-prior": "2s",
    # An objective no queue of a stable service misses (a wait budget of 5 minutes): the count
    # is then the fewest one-slot replicas with more slots than requests in service, which
    # the tests can state (3.5 in flight: 4).
    "leadtime.dev/slo-ttft": "600s",
}


@dataclass
class RevisionExporter:
    """Knative's series (≤ 1.18 names) for revisions whose in-flight requests (queue-proxy)
    and requests waiting at the activator the test sets."""

    in_flight: dict[tuple[str, str], float] = field(default_factory=dict)
    waiting: dict[tuple[str, str], float] = field(default_factory=dict)
    started: float = field(default_factory=time.time)

    def text(self) -> str:
        lines = []
        for (namespace, revision), value in self.in_flight.items():
            labels = f'namespace_name="{namespace}",revision_name="{revision}"'
            count = 2.0 * (time.time() - self.started)
            lines += [
                f"revision_queue_depth{{{labels}}} {value}",
                f"revision_request_count{{{labels}}} {count}",
            ]
        for (namespace, revision), value in self.waiting.items():
            labels = f'namespace_name="{namespace}",revision_name="{revision}"'
            lines.append(f"activator_request_concurrency{{{labels}}} {value}")
        return "\n".join(lines) + "\n"


@pytest.fixture
def prometheus_with_exporter():
    exporter = RevisionExporter()
    server, port = serve_exporter(exporter)
    prometheus = start_prometheus(port)
    yield exporter, prometheus
    prometheus.remove()
    server.shutdown()


def condition(pa: dict, kind: str) -> dict:
    found = [c for c in (pa.get("status") or {}).get("conditions") or [] if c["type"] == kind]
    return found[0] if found else {}
