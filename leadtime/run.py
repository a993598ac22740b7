"""`leadtime run`: the long-running service, and its composition root (docs/architecture.md §1).

With no Prometheus configured it runs the embedded default: the built-in synthetic workloads
(or `--trace` files) as services of a simulated GPU cluster in virtual time, 10× real time by
default — every part of the service (loop, forecasting workers, HTTP API, status page, metrics)
is real; only the cluster is simulated. Ctrl-C (or SIGTERM) finishes the tick in progress,
stops, prints what each service's requests got, and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import re
import signal
from pathlib import Path

from aiohttp import web

from adapters.simulator.config import SimConfig
from adapters.simulator.live import LiveCluster
from adapters.simulator.sources import load_workload
from adapters.simulator.workload import Workload
from autoscaler.clock import VirtualClock
from autoscaler.config import Config, load_config
from autoscaler.durations import parse_duration
from autoscaler.errors import InputError
from autoscaler.forecast_workers import ShellSettings
from autoscaler.http.app import make_app
from autoscaler.loop import ControlLoop, loop_with_workers
from autoscaler.ports import ServiceKey
from leadtime.run_live import log_decision_change, serve_live
from leadtime.table import render_results

log = logging.getLogger("leadtime")
NAMESPACE = "default"
DEFAULT_DURATION_S = 86_400.0
"""Virtual time the built-in workloads are generated for (2.4 hours of wall time at 10×)."""


def add_run_command(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("run", help="run the service (embedded simulator by default)")
    parser.add_argument("--config", metavar="FILE", help="YAML configuration (env LEADTIME_CONFIG)")
    parser.add_argument("--host", help="listen address (default from the config: 127.0.0.1)")
    parser.add_argument("--port", type=int, help="listen port (default from the config: 8080)")
    parser.add_argument("--mode", choices=("live", "dry-run"), help="apply decisions, or not")
    parser.add_argument("--trace", action="append", metavar="FILE", help="a trace as a service")
    parser.add_argument("--workload", action="append", metavar="NAME", help="a built-in workload")
    parser.add_argument("--speed", type=float, help="virtual seconds per second (default 10)")
    parser.add_argument("--duration", metavar="D", help="stop after this much virtual time")
    parser.set_defaults(handler=run_service)


def run_service(args: argparse.Namespace) -> int:
    config = _config(args)
    if not config.embedded:
        if not (config.knative.enabled or config.hpa.enabled):
            raise InputError(
                "config knative.enabled, hpa.enabled: Prometheus is configured but no actuator "
                "is; enable one (or both), or leave prometheus.url unset to run the embedded "
                "simulator"
            )
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        return asyncio.run(serve_live(config))
    if config.knative.enabled or config.hpa.enabled:
        raise InputError(
            "config prometheus.url: the cluster adapters read demand from "
            "Prometheus; set prometheus.url"
        )
    duration = parse_duration(args.duration, field="--duration") if args.duration else None
    if duration is not None and duration <= 0:
        raise InputError("--duration: must be longer than 0s")
    services, sim = _simulated_services(args, config, duration or DEFAULT_DURATION_S)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return asyncio.run(_serve(config, services, sim, duration))


def _config(args: argparse.Namespace) -> Config:
    config = load_config(args.config or os.environ.get("LEADTIME_CONFIG"))
    http = dataclasses.replace(
        config.http,
        host=args.host or config.http.host,
        port=config.http.port if args.port is None else args.port,
    )
    simulator = config.simulator
    if args.speed is not None:
        if not 0 < args.speed <= 10_000:
            raise InputError(f"--speed: expected a number in (0, 10000], got {args.speed!r}")
        simulator = dataclasses.replace(simulator, speed=args.speed)
    return dataclasses.replace(
        config, http=http, simulator=simulator, mode=args.mode or config.mode
    )


def _simulated_services(
    args: argparse.Namespace, config: Config, duration: float
) -> tuple[list[tuple[ServiceKey, Workload]], SimConfig]:
    """Services from --trace / --workload when given, else from the config's simulator."""
    settings = config.simulator
    if args.trace or args.workload:
        traces, names = list(args.trace or []), list(args.workload or [])
    else:
        traces, names = list(settings.traces), list(settings.workloads)
    services = []
    for index, trace in enumerate(traces):
        workload = load_workload(
            trace=trace, workload=None, seed=settings.seed + index, rate_scale=settings.rate_scale
        )
        services.append((ServiceKey(NAMESPACE, _dns_label(Path(trace).stem)), workload))
    for index, name in enumerate(names, start=len(traces)):
        workload = load_workload(
            trace=None,
            workload=name,
            seed=settings.seed + index,
            duration=duration,
            rate_scale=settings.rate_scale,
        )
        services.append((ServiceKey(NAMESPACE, _dns_label(name)), workload))
    keys = [key for key, _ in services]
    if len(set(keys)) != len(keys):
        raise InputError("run: two services would have the same name; give distinct traces")
    sim = SimConfig(
        cold_start_s=settings.cold_start_s,
        max_concurrency=settings.max_concurrency,
        gpu_pool=settings.gpu_pool,
        seed=settings.seed,
    )
    return services, sim


def _dns_label(text: str) -> str:
    label = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:63].strip("-")
    return label or "service"


async def _serve(
    config: Config,
    services: list[tuple[ServiceKey, Workload]],
    sim: SimConfig,
    duration: float | None,
) -> int:
    cluster = LiveCluster(services, sim)
    if config.policy.container_concurrency == 0:  # the simulated replicas' real slots
        policy = dataclasses.replace(config.policy, container_concurrency=sim.max_concurrency)
        config = dataclasses.replace(config, policy=policy)
    clock = VirtualClock(config.simulator.speed, start=cluster.warm_up())
    aio = asyncio.get_running_loop()
    loop, pool = loop_with_workers(
        config,
        _shell_settings(config, sim),
        source=cluster,
        actuator=cluster,
        catalog=cluster,
        clock=clock,
    )
    loop.on_change = log_decision_change(lambda t: f"t={t:.0f}s")
    end = min(duration or cluster.duration, cluster.duration)
    for signum in (signal.SIGINT, signal.SIGTERM):
        aio.add_signal_handler(signum, loop.stop)
    runner = web.AppRunner(make_app(loop, config), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, config.http.host, config.http.port)
    await site.start()
    print(
        f"leadtime: serving http://{config.http.host}:{config.http.port}/ — "
        f"{len(services)} simulated services at {config.simulator.speed:g}x, mode "
        f"{config.mode}; Ctrl-C stops",
        flush=True,
    )
    watcher = asyncio.ensure_future(_stop_at(loop, clock, end))
    try:
        await loop.run()
    finally:
        watcher.cancel()
        pool.close()
        await runner.cleanup()
    print(render_results(cluster.results()), flush=True)
    return 0


async def _stop_at(loop: ControlLoop, clock: VirtualClock, end: float) -> None:
    await clock.sleep_until(end)
    loop.stop()


def _shell_settings(config: Config, sim: SimConfig) -> ShellSettings:
    policy = config.policy
    reach = sim.cold_start_bounds[1] + policy.horizon_s + 2.0 + sim.metrics_delay_s
    forecasting = config.forecasting
    return ShellSettings(
        horizon_s=reach,
        model=forecasting.model,
        step_s=forecasting.step_s,
        refit_every_s=forecasting.refit_every_s,
        min_history_s=forecasting.min_history_s,
    )
