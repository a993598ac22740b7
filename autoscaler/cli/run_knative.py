"""`leadtime run` on a Knative cluster: the composition root for live scaling.

Demand from Prometheus (`prometheus:`), decisions by the control loop, actuation through the
Knative adapter (`knative:`), which is also the catalog (every PA of Leadtime's class) and gives
each revision its policy from its annotations. Wall-clock time; SIGTERM/Ctrl-C finish the tick
in progress and stop.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Mapping

from aiohttp import web
from kubernetes_asyncio import client

from adapters.knative.adapter import KnativeAdapter
from adapters.knative.reconciler import ReconcileSettings
from adapters.kubernetes.api import kubernetes_api
from adapters.prometheus.source import PrometheusSource, source_from_config
from autoscaler.clock import WallClock
from autoscaler.config import Config
from autoscaler.forecast_pool import ForecastPool, ShellSettings
from autoscaler.http.app import make_app
from autoscaler.loop import ControlLoop
from autoscaler.ports import ServiceKey

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


def knative_adapter(config: Config, api: client.ApiClient,
                    source: PrometheusSource) -> KnativeAdapter:
    knative = config.knative
    return KnativeAdapter(
        api, config.policy, class_name=knative.class_name,
        settings=ReconcileSettings(
            grace_s=knative.scale_to_zero_grace_period_s,
            probe_url_template=knative.activator_probe_url,
            probe_timeout_s=knative.probe_timeout_s,
        ),
        resync_s=knative.resync_s, on_queries=query_setter(source),
    )


async def serve_knative(config: Config) -> int:
    source = source_from_config(config.prometheus)
    api = await kubernetes_api(config.knative.kubeconfig)
    adapter = knative_adapter(config, api, source)
    await adapter.start()
    aio = asyncio.get_running_loop()
    box: list[ControlLoop] = []
    pool = ForecastPool(shell_settings(config), config.forecasting.workers,
                        lambda result: aio.call_soon_threadsafe(box[0].forecast_arrived, result))
    loop = ControlLoop(config, source=source, actuator=adapter, catalog=adapter,
                       clock=WallClock(), forecasts=pool, policy_settings=adapter.policy_for,
                       catalog_every_s=CATALOG_EVERY_S)
    box.append(loop)
    for signum in (signal.SIGINT, signal.SIGTERM):
        aio.add_signal_handler(signum, loop.stop)
    runner = web.AppRunner(make_app(loop, config), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, config.http.host, config.http.port).start()
    print(f"leadtime: serving http://{config.http.host}:{config.http.port}/ — Knative class "
          f"{config.knative.class_name}, metrics from {config.prometheus.url}, mode {config.mode}",
          flush=True)
    try:
        await loop.run()
    finally:
        pool.close()
        await runner.cleanup()
        await adapter.stop()
        await source.client.close()
        await api.close()
    return 0
