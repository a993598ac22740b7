"""The whole live path on real components: an exporter's Knative metrics → a real Prometheus →
the Prometheus source → the control loop → the Knative adapter → the real API server,
controller manager and scheduler → pods on fake GPU nodes → the adapter's status. And
`leadtime run` itself, configured for Knative, as a process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator

import pytest
import yaml

from adapters.prometheus.source import source_from_config
from autoscaler.clock import WallClock
from autoscaler.config import config_from_mapping
from autoscaler.loop import ControlLoop
from leadtime.run_live import knative_adapter
from tests.cluster.knative import Activator, create_revision
from tests.cluster.objects import eventually
from tests.conftest import free_port
from tests.helpers.knative import (
    FAST,
    read_pa,
    replicas,
)

pytestmark = [pytest.mark.kubernetes, pytest.mark.knative, pytest.mark.prometheus]


def live_config(prometheus_url: str, activator: Activator, **knative):
    return config_from_mapping(
        {
            "tick": "500ms",
            "prometheus": {"url": prometheus_url, "rate_window": "5s", "stale_after": "30s"},
            "knative": {
                "enabled": True,
                "scale_to_zero_grace_period": "1s",
                "activator_probe_url": activator.url_template,
                "resync": "2s",
                **knative,
            },
        }
    )


@contextlib.asynccontextmanager
async def live_loop(kube, prometheus_url: str, activator: Activator) -> AsyncIterator[ControlLoop]:
    """The composition `leadtime run` makes for Knative, on the test's event loop, with fast
    settings; stopped and closed on the way out."""
    config = live_config(prometheus_url, activator)
    source = source_from_config(config.prometheus)
    adapter = knative_adapter(config, kube, source)
    await adapter.start()
    loop = ControlLoop(
        config,
        source=source,
        actuator=adapter,
        catalog=adapter,
        clock=WallClock(),
        policy_settings=adapter.policy_for,
        catalog_every_s=1.0,
        warmup_s=0.0,
    )
    running = asyncio.create_task(loop.run())
    try:
        yield loop
    finally:
        loop.stop()
        await asyncio.wait_for(running, 10)
        await adapter.stop()
        await source.client.close()


async def test_load_up_scales_up_with_real_pods_and_load_down_scales_down(
    kube, namespace, gpu_pool, prometheus_with_exporter, activator, sks_status
):
    exporter, prometheus = prometheus_with_exporter
    pool = gpu_pool(gpus=8)
    await create_revision(kube, namespace, "llm-00001", pool=pool, annotations=FAST)
    exporter.in_flight[(namespace, "llm-00001")] = 0.0
    async with live_loop(kube, prometheus.url, activator) as loop:
        exporter.in_flight[(namespace, "llm-00001")] = 3.5

        async def four_ready():
            pa = await read_pa(kube, namespace, "llm-00001")
            return (pa.get("status") or {}).get("actualScale") == 4 and pa

        pa = await eventually(four_ready, timeout_s=60, what="4 ready replicas for 3.5 in flight")
        assert pa["status"]["desiredScale"] == 4
        state = loop.states[next(k for k in loop.states if k.name == "llm-00001")]
        assert state.data_status == "ok"
        assert state.policy.config.kpa.target == 1.0  # the PA's annotation reached the policy

        exporter.in_flight[(namespace, "llm-00001")] = 0.0

        async def back_to_min():
            return await replicas(kube, namespace, "llm-00001") == 1

        await eventually(back_to_min, timeout_s=90, what="back to min-scale when load goes")
        assert loop.ready


async def test_scale_from_zero_on_the_activators_demand(
    kube, namespace, gpu_pool, prometheus_with_exporter, activator, sks_status
):
    """A revision at zero gets a request: the activator's concurrency reaches Prometheus, the
    source pokes, the loop decides 1, the adapter scales, the pod loads (2 s) and is Ready."""
    exporter, prometheus = prometheus_with_exporter
    pool = gpu_pool(gpus=2)
    await create_revision(
        kube,
        namespace,
        "zero-00001",
        pool=pool,
        cold_start_s=2.0,
        annotations={
            **FAST,
            "autoscaling.knative.dev/min-scale": "0",
            "autoscaling.knative.dev/initial-scale": "0",
        },
    )
    key = (namespace, "zero-00001")
    exporter.waiting[key] = 0.0
    async with live_loop(kube, prometheus.url, activator):

        async def inactive():
            pa = await read_pa(kube, namespace, "zero-00001")
            active = [
                c for c in (pa.get("status") or {}).get("conditions", []) if c["type"] == "Active"
            ]
            return active and active[0]["reason"] == "NoTraffic"

        await eventually(inactive, what="the revision at zero, NoTraffic")
        assert await replicas(kube, namespace, "zero-00001") == 0
        await asyncio.sleep(2.0)  # settled at zero
        started = time.monotonic()
        exporter.waiting[key] = 1.0  # one request waiting at the activator

        async def ready():
            pa = await read_pa(kube, namespace, "zero-00001")
            conditions = (pa.get("status") or {}).get("conditions", [])
            return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

        await eventually(ready, timeout_s=60, what="Ready from zero")
        latency = time.monotonic() - started
        print(
            f"\nscale-from-zero: {latency:.1f} s from the activator's first waiting request "
            "to a Ready PA (pod cold start 2 s, Prometheus scrape 1 s, tick 0.5 s)"
        )
        assert latency >= 2.0  # never faster than the pod's cold start


async def test_leadtime_run_serves_a_knative_class(
    kube,
    control_plane,
    namespace,
    gpu_pool,
    prometheus_with_exporter,
    activator,
    sks_status,
    tmp_path,
):
    exporter, prometheus = prometheus_with_exporter
    pool = gpu_pool(gpus=4)
    await create_revision(kube, namespace, "run-00001", pool=pool, annotations=FAST)
    exporter.in_flight[(namespace, "run-00001")] = 1.5
    port = free_port()
    config_file = tmp_path / "leadtime.yaml"
    config_file.write_text(
        yaml.safe_dump(
            {
                "tick": "500ms",
                "http": {"port": port},
                "forecasting": {"workers": 1},
                "prometheus": {"url": prometheus.url, "rate_window": "5s"},
                "knative": {
                    "enabled": True,
                    "kubeconfig": str(control_plane.kubeconfig),
                    "activator_probe_url": activator.url_template,
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
    try:

        async def two_ready():
            pa = await read_pa(kube, namespace, "run-00001")
            return (pa.get("status") or {}).get("actualScale") == 2

        await eventually(two_ready, timeout_s=90, what="leadtime run scaling the revision to 2")

        def services() -> list:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/services", timeout=5) as r:
                return json.load(r)["services"]

        listed = await asyncio.to_thread(services)
        assert any(s["name"] == "run-00001" and s["namespace"] == namespace for s in listed)
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output[-2000:]
    assert "Knative class leadtime.dev" in output
    # one log line per decision change, stamped with the wall clock in UTC
    assert re.search(rf"Z {namespace}/run-00001: desired 2, ready \d", output), output[-2000:]
