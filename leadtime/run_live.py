"""`leadtime run` on a cluster: the composition root for live scaling.

Demand from Prometheus (`prometheus:`), decisions by the control loop, actuation through the
enabled adapters: Knative (`knative:`; the catalog is every PA of Leadtime's class, each
revision's policy comes from its annotations) and/or the HPA adapter (`hpa:`; floors on opted-in
HPAs, plain workloads, and the external metrics API on its own TLS listener). Wall-clock time;
SIGTERM/Ctrl-C finish the tick in progress and stop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import ssl
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web
from kubernetes_asyncio import client

from adapters.hpa.access import Authorizer, FrontProxy, read_front_proxy
from adapters.hpa.adapter import KubernetesWorkloads
from adapters.hpa.provider import loop_provider
from adapters.hpa.server import Access, metrics_app
from adapters.knative.adapter import KnativeAdapter
from adapters.knative.annotations import QueryFence
from adapters.knative.reconciler import ReconcileSettings
from adapters.kubernetes.api import kubernetes_api
from adapters.kubernetes.lease import LeaseElector
from adapters.prometheus.source import PrometheusSource, source_from_config
from autoscaler.clock import WallClock
from autoscaler.composite import CompositeAdapter
from autoscaler.config import Config, HpaConfig
from autoscaler.errors import InputError
from autoscaler.forecast_workers import ShellSettings
from autoscaler.http.app import make_app
from autoscaler.loop import loop_with_workers
from autoscaler.ports import ServiceKey
from autoscaler.service_state import DecisionRecord, ServiceState
from autoscaler.sharding import Timing
from autoscaler.slo import SLO_TTFT_DEFAULT_S

log = logging.getLogger("leadtime")
CATALOG_EVERY_S = 5.0
"""New revisions join the loop within this; the adapter reconciles them at once regardless."""


def shell_settings(config: Config) -> ShellSettings:
    """Forecasts reach far enough for cold starts up to three times the prior."""
    policy, forecasting = config.policy, config.forecasting
    return ShellSettings(
        horizon_s=3 * policy.cold_start_prior_s + policy.horizon_s + 2.0,
        model=forecasting.model,
        step_s=forecasting.step_s,
        refit_every_s=forecasting.refit_every_s,
        min_history_s=forecasting.min_history_s,
    )


def query_setter(source: PrometheusSource):
    """Keeps the source's per-revision PromQL in step with the `leadtime.dev/query*`
    annotations."""

    def set_queries(key: ServiceKey, queries: Mapping[str, str]) -> None:
        if queries:
            source.service_queries[key] = dict(queries)
        else:
            source.service_queries.pop(key, None)

    return set_queries


def knative_adapter(
    config: Config,
    api: client.ApiClient,
    source: PrometheusSource,
    elector: LeaseElector | None = None,
) -> KnativeAdapter:
    knative = config.knative
    return KnativeAdapter(
        api,
        config.policy,
        class_name=knative.class_name,
        settings=ReconcileSettings(
            grace_s=knative.scale_to_zero_grace_period_s,
            probe_url_template=knative.activator_probe_url,
            probe_timeout_s=knative.probe_timeout_s,
        ),
        resync_s=knative.resync_s,
        on_queries=query_setter(source),
        owns=elector.owns if elector is not None else None,
        query_fence=QueryFence(knative.query_namespaces, knative.query_namespace_label),
    )


async def serve_live(config: Config) -> int:
    """Run against a cluster until SIGTERM/Ctrl-C; every listener and client closed after."""
    source = source_from_config(config.prometheus)
    source.service_query_budget_s = config.knative.query_budget_s
    elector, election_api = await _elector(config)
    apis, members = await _adapters(config, source, elector)
    adapter = CompositeAdapter(members, lambda k: config.policy_for(k.namespace, k.name))
    aio = asyncio.get_running_loop()
    loop, pool = loop_with_workers(
        config,
        shell_settings(config),
        source=source,
        actuator=adapter,
        catalog=adapter,
        clock=WallClock(),
        policy_settings=adapter.policy_for,
        catalog_every_s=CATALOG_EVERY_S,
    )
    # the attainment query judges each service against its own objective, as the loop has it
    source.slo_ttft_s = lambda key: (
        loop.states[key].slo_ttft_s if key in loop.states else SLO_TTFT_DEFAULT_S
    )
    loop.on_change = log_decision_change(_utc)
    for signum in (signal.SIGINT, signal.SIGTERM):
        aio.add_signal_handler(signum, loop.stop)
    runners = [await _listen(make_app(loop, config), config.http.host, config.http.port)]
    if config.hpa.metrics_api_port:
        access_api = await kubernetes_api(config.hpa.kubeconfig)
        apis.append(access_api)
        front_proxy = await front_proxy_of(config.hpa, access_api)
        runners.append(
            await _listen(
                metrics_app(loop_provider(loop), Access(front_proxy, Authorizer(access_api))),
                config.hpa.metrics_api_host,
                config.hpa.metrics_api_port,
                metrics_api_tls(config.hpa, front_proxy),
            )
        )
    print(
        f"leadtime: serving http://{config.http.host}:{config.http.port}/ — "
        f"{_actuators(config)}; metrics from {config.prometheus.url}, mode {config.mode}",
        flush=True,
    )
    try:
        await loop.run()
    finally:
        pool.close()
        for runner in runners:
            await runner.cleanup()
        for member in members:
            await member.stop()
        if elector is not None and election_api is not None:  # nothing acts: hand buckets over
            await elector.stop(release=True)
            await election_api.close()
        await source.close()
        await source.client.close()
        for api in apis:
            await api.close()
    return 0


async def _elector(config: Config) -> tuple[LeaseElector | None, client.ApiClient | None]:
    """With `leader_election.enabled`, the Lease elector after its first round (so a replica
    alone owns its buckets before its adapters list anything); its client is the first enabled
    adapter's cluster."""
    election = config.leader_election
    if not election.enabled:
        return None, None
    kubeconfig = config.knative.kubeconfig if config.knative.enabled else config.hpa.kubeconfig
    api = await kubernetes_api(kubeconfig)
    elector = LeaseElector(
        api,
        namespace=election.resolved_namespace(os.environ),
        identity=election.resolved_identity(os.environ),
        buckets=election.buckets,
        prefix=election.name_prefix,
        timing=Timing(
            election.lease_duration_s, election.renew_deadline_s, election.retry_period_s
        ),
    )
    await elector.start()
    log.info(
        "leader election: %s in namespace %s, %d bucket(s), holding %s",
        elector.identity,
        elector.namespace,
        elector.buckets,
        sorted(elector.held()),
    )
    return elector, api


async def _adapters(
    config: Config, source: PrometheusSource, elector: LeaseElector | None = None
) -> tuple[list, list]:
    """The enabled adapters, started (Knative first: a revision is Knative's when both list it),
    each acting only on the services of the elector's buckets when there is one."""
    apis: list[client.ApiClient] = []
    members: list[KnativeAdapter | KubernetesWorkloads] = []
    owns = elector.owns if elector is not None else None
    if config.knative.enabled:
        api = await kubernetes_api(config.knative.kubeconfig)
        apis.append(api)
        members.append(knative_adapter(config, api, source, elector))
    if config.hpa.enabled:
        api = await kubernetes_api(config.hpa.kubeconfig)
        apis.append(api)
        members.append(KubernetesWorkloads(api, owns=owns))
    for member in members:
        await member.start()
        if elector is not None:
            elector.add_listener(member.ownership_changed)
    return apis, members


async def front_proxy_of(hpa: HpaConfig, api: client.ApiClient) -> FrontProxy:
    """The aggregation layer's client CA and names: from the config, else from the cluster."""
    if hpa.client_ca_file is None:
        return await read_front_proxy(api)
    try:
        pem = Path(hpa.client_ca_file).read_text(encoding="utf-8")
    except OSError as error:
        raise InputError(f"config hpa.client_ca_file: cannot read it ({error})") from None
    return FrontProxy(pem, hpa.client_names)


def metrics_api_tls(hpa: HpaConfig, front_proxy: FrontProxy) -> ssl.SSLContext:
    """TLS for the external metrics API: only a certificate from the front proxy's CA gets a
    connection (which names are allowed is checked per request)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(hpa.tls_cert_file or "", hpa.tls_key_file)
    context.load_verify_locations(cadata=front_proxy.ca_pem)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


async def _listen(
    app: web.Application, host: str, port: int, tls: ssl.SSLContext | None = None
) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port, ssl_context=tls).start()
    return runner


def _actuators(config: Config) -> str:
    parts = []
    if config.knative.enabled:
        parts.append(f"Knative class {config.knative.class_name}")
    if config.hpa.enabled:
        parts.append("HPA floors and plain workloads")
    if config.hpa.metrics_api_port:
        parts.append(f"external metrics API on :{config.hpa.metrics_api_port}")
    if config.leader_election.enabled:
        parts.append(f"sharded over {config.leader_election.buckets} Lease bucket(s)")
    return ", ".join(parts)


def log_decision_change(
    moment: Callable[[float], str],
) -> Callable[[ServiceState, DecisionRecord], None]:
    """The loop's `on_change`: one log line per change of a service's decision, its time as
    `moment` writes the loop's clock (virtual seconds in the simulator, UTC live)."""

    def log_change(state: ServiceState, record: DecisionRecord) -> None:
        applied = " (paused: not applied)" if state.paused else ""
        log.info(
            "%s %s: desired %d, ready %d — %s%s: %s",
            moment(record.time),
            state.key,
            record.desired,
            state.status.ready,
            record.reason,
            applied,
            record.detail,
        )

    return log_change


def _utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
