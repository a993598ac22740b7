"""`leadtime run` on a cluster without Knative, as a process: demand from a real Prometheus
(custom PromQL), an opted-in Deployment scaled through /scale, and Leadtime's decision served
over TLS as an external metric that the real API server's aggregation layer proxies."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest
import yaml
from kubernetes_asyncio import client

from adapters.hpa.metrics_api import DESIRED_REPLICAS, GROUP, VERSION
from adapters.hpa.workloads import AUTOSCALE
from tests.cluster.aggregation import register_api_service
from tests.cluster.certificates import make_serving_certificate
from tests.cluster.objects import eventually, gpu_deployment
from tests.conftest import free_port
from tests.helpers.exporters import APP_SIGNALS, AppExporter
from tests.helpers.prometheus import serve_exporter, start_prometheus

pytestmark = [pytest.mark.kubernetes, pytest.mark.hpa, pytest.mark.prometheus]


async def test_leadtime_run_scales_a_plain_workload_and_serves_its_decision_to_hpas(
    kube, control_plane, namespace, gpu_pool, tmp_path
):
    exporter = AppExporter({(namespace, "chat"): 3.0})
    server, exporter_port = serve_exporter(exporter)
    prometheus = start_prometheus(exporter_port)
    pool = gpu_pool(gpus=8)
    deployment = gpu_deployment("chat", 1, pool=pool)
    deployment["metadata"]["annotations"] = {AUTOSCALE: "true"}
    await client.AppsV1Api(kube).create_namespaced_deployment(namespace, deployment)
    assert control_plane.certificates is not None
    cert, key = make_serving_certificate(
        control_plane.certificates,
        f"metrics-{namespace}",
        [f"leadtime-metrics.{namespace}.svc", "localhost"],
    )
    metrics_port, http_port = free_port(), free_port()
    config_file = tmp_path / "leadtime.yaml"
    config_file.write_text(
        yaml.safe_dump(
            {
                "tick": "500ms",
                "http": {"port": http_port},
                "forecasting": {"workers": 1},
                "policy": {"container_concurrency": 1, "stable_window": "6s"},
                "prometheus": {
                    "url": prometheus.url,
                    "rate_window": "5s",
                    **APP_SIGNALS,
                },
                "hpa": {
                    "enabled": True,
                    "kubeconfig": str(control_plane.kubeconfig),
                    "metrics_api_port": metrics_port,
                    "tls_cert_file": str(cert),
                    "tls_key_file": str(key),
                    "client_ca_file": str(control_plane.certificates.front_proxy_ca),
                },
            }
        )
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "leadtime", "run", "--config", str(config_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    registration = None
    try:

        async def scaled():
            """Chat's replicas once Leadtime has scaled it for 3 requests in service on one-slot
            replicas: at least 3 (with queueing headroom for its SLO, more)."""
            d = await client.AppsV1Api(kube).read_namespaced_deployment("chat", namespace)
            return d.spec.replicas if d.spec.replicas >= 3 else None

        await eventually(scaled, timeout_s=90, what="leadtime run scaling chat for 3 in flight")
        registration = await register_api_service(
            kube, control_plane, GROUP, VERSION, "leadtime-metrics", namespace, metrics_port
        )

        async def served_as_applied():
            """The external metrics API serves the count Leadtime applied to the Deployment."""
            body = await kube.call_api(
                f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{DESIRED_REPLICAS}",
                "GET",
                query_params=[("labelSelector", "service=chat")],
                auth_settings=["BearerToken"],
                response_types_map={200: "object"},
                _return_http_data_only=True,
            )
            replicas = await scaled()
            served = [(i["metricLabels"]["service"], i["value"]) for i in body["items"]]
            return served == [("chat", str(replicas))]

        await eventually(served_as_applied, timeout_s=30, what="the API serving chat's count")
    finally:
        if registration is not None:
            await client.ApiregistrationV1Api(kube).delete_api_service(registration)
        process.terminate()
        output, _ = await asyncio.to_thread(process.communicate, None, 30)
        prometheus.remove()
        server.shutdown()
    assert process.returncode == 0, output[-2000:]
    assert "HPA floors and plain workloads" in output and "external metrics API" in output
