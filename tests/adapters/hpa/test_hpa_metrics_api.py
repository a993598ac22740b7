"""Leadtime's external metrics API: the exact shapes (no network), and end to end on the real
control plane — registered with an APIService behind the aggregation layer, read by the real
HPA controller, which scales a real Deployment as Leadtime's metric moves (marker `hpa`)."""

from __future__ import annotations

import ssl

import aiohttp
import numpy as np
import pytest
from aiohttp import web
from kubernetes_asyncio import client

from adapters.hpa.access import Authorizer, read_front_proxy
from adapters.hpa.discovery import hpa_group_version
from adapters.hpa.metrics_api import (
    DESIRED_REPLICAS,
    FORECAST_LOAD,
    GROUP,
    VERSION,
    Sample,
    SelectorError,
    matches,
    parse_selector,
    quantity,
)
from adapters.hpa.provider import loop_provider
from adapters.hpa.server import Access, metrics_app
from autoscaler.forecast_workers import ForecastResult
from forecasting.forecast import Forecast
from tests.cluster.aggregation import LISTEN, register_api_service, server_tls
from tests.cluster.certificates import FRONT_PROXY_CLIENT, make_client_certificate
from tests.cluster.fixtures import service_account_token
from tests.cluster.objects import create_external_metric_hpa, eventually, gpu_deployment
from tests.conftest import free_port
from tests.helpers.loop import CHAT, make_loop, run_for, two_services

STAMP = "2026-11-29T00:00:00Z"


def provider_of(values: dict[tuple[str, str], float]):
    """Samples of `leadtime_desired_replicas` from {(namespace, service): value}."""

    def samples(namespace: str, metric: str) -> list[Sample]:
        return [
            Sample(metric, {"service": service, "namespace": ns}, value, STAMP)
            for (ns, service), value in values.items()
            if ns == namespace
        ]

    return samples


# --- shapes, no network --------------------------------------------------------------------------


async def test_discovery_values_and_errors_have_the_shapes_the_hpa_controller_reads(aiohttp_client):
    api = await aiohttp_client(
        metrics_app(
            provider_of({("prod", "chat"): 3, ("prod", "embed"): 1.5, ("dev", "chat"): 7}), None
        )
    )
    base = f"/apis/{GROUP}/{VERSION}"
    listing = await (await api.get(base)).json()
    assert listing["kind"] == "APIResourceList" and listing["groupVersion"] == f"{GROUP}/{VERSION}"
    assert {r["name"] for r in listing["resources"]} == {
        "leadtime_desired_replicas",
        "leadtime_forecast_load",
    }
    assert all(r["namespaced"] and r["verbs"] == ["get"] for r in listing["resources"])

    answer = await api.get(
        f"{base}/namespaces/prod/{DESIRED_REPLICAS}", params={"labelSelector": "service=chat"}
    )
    body = await answer.json()
    assert body["kind"] == "ExternalMetricValueList" and body["apiVersion"] == f"{GROUP}/{VERSION}"
    assert body["items"] == [
        {
            "metricName": DESIRED_REPLICAS,
            "metricLabels": {"service": "chat", "namespace": "prod"},
            "timestamp": STAMP,
            "value": "3",
        }
    ]
    every = await (await api.get(f"{base}/namespaces/prod/{DESIRED_REPLICAS}")).json()
    assert sorted(i["value"] for i in every["items"]) == ["1500m", "3"]  # namespace-scoped

    unknown = await api.get(f"{base}/namespaces/prod/requests_per_second")
    status = await unknown.json()
    assert unknown.status == 404 and status["kind"] == "Status" and status["code"] == 404
    assert "leadtime_desired_replicas" in status["message"]
    bad = await api.get(
        f"{base}/namespaces/prod/{DESIRED_REPLICAS}", params={"labelSelector": "service=(chat"}
    )
    assert bad.status == 400 and (await bad.json())["reason"] == "BadRequest"


def test_label_selectors_read_as_kubernetes_writes_them():
    labels = {"service": "chat", "namespace": "prod"}
    assert matches(parse_selector("service=chat"), labels)
    assert matches(parse_selector("service==chat,namespace in (prod, dev)"), labels)
    assert not matches(parse_selector("service!=chat"), labels)
    assert matches(parse_selector("service notin (embed),namespace"), labels)
    assert not matches(parse_selector("!namespace"), labels)
    assert matches(parse_selector(""), labels)
    with pytest.raises(SelectorError, match="labelSelector"):
        parse_selector("service=(chat")


def test_quantities_are_whole_or_thousandths():
    assert (quantity(4), quantity(0.25), quantity(2.0004)) == ("4", "250m", "2000m")
    with pytest.raises(ValueError):
        quantity(float("nan"))


# --- end to end ----------------------------------------------------------------------------------


@pytest.mark.kubernetes
@pytest.mark.hpa
async def test_the_real_hpa_controller_follows_leadtimes_metric(
    kube, control_plane, namespace, gpu_pool
):
    values = {(namespace, "chat"): 4.0}
    access = Access(await read_front_proxy(kube), Authorizer(kube))  # as `leadtime run` serves it
    runner = web.AppRunner(metrics_app(provider_of(values), access))
    await runner.setup()
    port = free_port()
    await web.TCPSite(
        runner,
        LISTEN,
        port,
        ssl_context=server_tls(control_plane, "leadtime-metrics", namespace),
    ).start()
    registration = None
    try:
        registration = await register_api_service(
            kube, control_plane, GROUP, VERSION, "leadtime-metrics", namespace, port
        )
        pool = gpu_pool(gpus=8)
        apps = client.AppsV1Api(kube)
        await apps.create_namespaced_deployment(
            namespace, gpu_deployment("chat", 1, pool=pool, cold_start_s=0.5)
        )
        version = await hpa_group_version(kube)
        assert version == "autoscaling/v2beta2"  # Kubernetes 1.20 serves no autoscaling/v2
        await create_external_metric_hpa(
            kube, namespace, "chat", DESIRED_REPLICAS, "chat", max_replicas=8, version=version
        )

        async def replicas(wanted: int):
            deployment = await apps.read_namespaced_deployment("chat", namespace)
            return deployment.spec.replicas == wanted

        await eventually(
            lambda: replicas(4), timeout_s=60, what="the HPA controller scaling to Leadtime's 4"
        )
        values[(namespace, "chat")] = 2.0
        await eventually(
            lambda: replicas(2),
            timeout_s=60,
            what="the HPA controller following Leadtime down to 2",
        )
    finally:
        if registration is not None:
            await client.ApiregistrationV1Api(kube).delete_api_service(registration)
        await runner.cleanup()


# --- values from the loop ------------------------------------------------------------------------


async def test_the_loop_provider_serves_each_services_decision_and_forecast_load():
    loop, clock = make_loop(two_services(), warmup_s=0.0)
    await run_for(loop, clock, 120)
    provider = loop_provider(loop)
    desired = {s.labels["service"]: s.value for s in provider(CHAT.namespace, DESIRED_REPLICAS)}
    assert desired == {
        key.name: float(state.last.desired)
        for key, state in loop.states.items()
        if key.namespace == CHAT.namespace
    }
    assert provider("elsewhere", DESIRED_REPLICAS) == []
    assert provider(CHAT.namespace, FORECAST_LOAD) == []  # no forecast yet: no value, not 0

    state = loop.states[CHAT]
    mean = np.arange(30, dtype=float)
    state.forecast = Forecast(mean=mean, quantiles={0.5: mean}, step_s=10.0)
    state.forecast_at = clock.now()
    lead = state.policy.config.lead_time_s(state.status.cold_start_s)  # 62 s with the prior
    loads = {s.labels["service"]: s.value for s in provider(CHAT.namespace, FORECAST_LOAD)}
    assert loads == {CHAT.name: mean[int(np.ceil(lead / 10.0)) - 1]}

    # /metrics reports the same load when the forecast arrives (it read another step before)
    forecast = Forecast(mean=mean, quantiles={0.5: mean + 100.0}, step_s=10.0)
    loop.forecast_arrived(ForecastResult(str(CHAT), forecast, "", clock.now()))
    gauge = loop.telemetry.registry.get_sample_value(
        "leadtime_forecast_load", {"namespace": CHAT.namespace, "service": CHAT.name}
    )
    assert gauge == loads[CHAT.name]


@pytest.mark.kubernetes
@pytest.mark.hpa
@pytest.mark.security
async def test_only_the_front_proxy_and_users_allowed_by_rbac_read_the_metrics(
    kube, control_plane, namespace
):
    """Through the API server, a ServiceAccount allowed to get the metric in its namespace
    reads it, and another is refused. Straight at the server's port: no certificate and a
    certificate from another CA get no connection; a front-proxy-CA certificate under another
    name is refused; the real front proxy naming an unauthorised user, or an authorised one in
    another namespace, is refused by the SubjectAccessReview."""
    front_proxy = await read_front_proxy(kube)
    assert front_proxy.allowed_names == (FRONT_PROXY_CLIENT,)
    values = {(namespace, "chat"): 3.0, ("elsewhere", "chat"): 9.0}
    access = Access(front_proxy, Authorizer(kube))
    runner = web.AppRunner(metrics_app(provider_of(values), access))
    await runner.setup()
    port = free_port()
    tls = server_tls(control_plane, "leadtime-metrics", namespace)
    await web.TCPSite(runner, LISTEN, port, ssl_context=tls).start()
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{DESIRED_REPLICAS}"
    registration = None
    try:
        registration = await register_api_service(
            kube, control_plane, GROUP, VERSION, "leadtime-metrics", namespace, port
        )
        reader = await service_account_allowed_to_read(kube, namespace, "reader")
        stranger = await service_account_allowed_to_read(kube, namespace, "stranger", rules=[])
        assert await via_api_server(control_plane, reader, path) == 200, "the reader"
        assert await via_api_server(control_plane, stranger, path) == 403
        assert control_plane.certificates is not None
        pki = control_plane.certificates
        direct = f"https://127.0.0.1:{port}{path}"
        proxy_cert = (pki.front_proxy_client_cert, pki.front_proxy_client_key)
        user = f"system:serviceaccount:{namespace}"
        assert await straight_at(control_plane, direct, proxy_cert, f"{user}:reader") == 200
        elsewhere = direct.replace(f"/namespaces/{namespace}/", "/namespaces/elsewhere/")
        assert await straight_at(control_plane, elsewhere, proxy_cert, f"{user}:reader") == 403
        assert await straight_at(control_plane, direct, proxy_cert, f"{user}:stranger") == 403
        assert await straight_at(control_plane, direct, proxy_cert, None) == 401
        intruder = make_client_certificate(pki, "intruder", "intruder")
        assert await straight_at(control_plane, direct, intruder, f"{user}:reader") == 401
        foreign = make_client_certificate(pki, "foreign", FRONT_PROXY_CLIENT, foreign=True)
        for certificate in (None, foreign):
            with pytest.raises(aiohttp.ClientError):  # no TLS connection at all
                await straight_at(control_plane, direct, certificate, f"{user}:reader")
    finally:
        if registration is not None:
            await client.ApiregistrationV1Api(kube).delete_api_service(registration)
        await runner.cleanup()


async def service_account_allowed_to_read(
    kube: client.ApiClient, namespace: str, name: str, rules: list | None = None
) -> str:
    """A ServiceAccount in `namespace` with a Role there (by default: list Leadtime's desired
    replicas, as the HPA controller does); returns its token."""
    if rules is None:
        rules = [{"apiGroups": [GROUP], "resources": [DESIRED_REPLICAS], "verbs": ["list"]}]
    await client.CoreV1Api(kube).create_namespaced_service_account(
        namespace, {"metadata": {"name": name}}
    )
    rbac = client.RbacAuthorizationV1Api(kube)
    await rbac.create_namespaced_role(namespace, {"metadata": {"name": name}, "rules": rules})
    await rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        },
    )
    token = await eventually(
        lambda: service_account_token(kube, namespace, name), what=f"{name}'s token"
    )
    assert token is not None
    return token


async def via_api_server(plane, token: str, path: str) -> int:
    tls = ssl.create_default_context(cafile=str(plane.ca_file))
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as session:
        async with session.get(plane.url + path, headers=headers, ssl=tls) as answer:
            return answer.status


async def straight_at(plane, url: str, certificate, user: str | None) -> int:
    """GET the server's own port as a front proxy would: a client certificate (or none) and
    the user in X-Remote-User."""
    tls = ssl.create_default_context(cafile=str(plane.ca_file))
    if certificate is not None:
        tls.load_cert_chain(*certificate)
    headers = {"X-Remote-User": user, "X-Remote-Group": "system:authenticated"} if user else {}
    async with aiohttp.ClientSession() as session:
        async with session.get(url, headers=headers, ssl=tls) as answer:
            return answer.status
