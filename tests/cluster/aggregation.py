"""Registering a server that runs in the test process as an aggregated API of the control plane,
as a metrics adapter is registered on a real cluster: a Service, an `APIService` with the CA that
signed the server's certificate, and TLS on both legs (the API server presents the front-proxy
client certificate; the server presents a certificate for `<service>.<namespace>.svc`).

The API server reaches aggregated APIs through their Service's Endpoints (there is no Service
network), and Endpoints refuse loopback addresses: the Service here has no selector and its
Endpoints name this machine's own address, so the server must listen there too (`LISTEN`)."""

from __future__ import annotations

import asyncio
import base64
import ssl

from kubernetes_asyncio import client

from tests.cluster.certificates import make_serving_certificate
from tests.cluster.control_plane import ControlPlane
from tests.cluster.objects import eventually
from tests.cluster.pod_process import machine_address

LISTEN = "0.0.0.0"
"""Where a registered server listens: this machine's address (the aggregator's) and loopback."""


def server_tls(plane: ControlPlane, service: str, namespace: str) -> ssl.SSLContext:
    """A TLS context for the aggregated server: its certificate is signed by the cluster CA, and
    it accepts only clients holding a front-proxy certificate (the API server)."""
    assert plane.certificates is not None
    cert, key = make_serving_certificate(
        plane.certificates,
        f"{service}-{namespace}",
        [f"{service}.{namespace}.svc", "localhost", "127.0.0.1"],
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    context.load_verify_locations(plane.certificates.front_proxy_ca)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


async def register_api_service(
    api: client.ApiClient,
    plane: ControlPlane,
    group: str,
    version: str,
    service: str,
    namespace: str,
    port: int,
) -> str:
    """Point `<version>.<group>` at this machine's address, port `port`, and wait until the
    aggregator marks it Available and proxies to it (the proxy is installed a moment after
    Available). Returns the APIService's name (cluster-scoped: delete it when done)."""
    core = client.CoreV1Api(api)
    ports = [{"name": "https", "port": port, "protocol": "TCP"}]
    await core.create_namespaced_service(
        namespace, {"metadata": {"name": service}, "spec": {"ports": ports}}
    )
    address = await asyncio.to_thread(machine_address)
    await core.create_namespaced_endpoints(
        namespace,
        {
            "metadata": {"name": service},
            "subsets": [{"addresses": [{"ip": address}], "ports": ports}],
        },
    )
    name = f"{version}.{group}"
    registration = client.ApiregistrationV1Api(api)
    await registration.create_api_service(
        {
            "metadata": {"name": name},
            "spec": {
                "group": group,
                "version": version,
                "service": {"name": service, "namespace": namespace, "port": port},
                "caBundle": base64.b64encode(plane.ca_file.read_bytes()).decode(),
                "groupPriorityMinimum": 100,
                "versionPriority": 100,
            },
        }
    )

    async def available():
        status = (await registration.read_api_service_status(name)).status
        return any(c.type == "Available" and c.status == "True" for c in status.conditions or [])

    async def proxied():
        try:
            await api.call_api(
                f"/apis/{group}/{version}",
                "GET",
                auth_settings=["BearerToken"],
                response_types_map={200: "object"},
            )
        except client.ApiException:
            return False  # 404 until the proxy is installed
        return True

    await eventually(available, timeout_s=60, what=f"APIService {name} Available")
    await eventually(proxied, timeout_s=30, what=f"the API server proxying {group}/{version}")
    return name
