"""The service's HTTP app on the simulator adapter, and ticking it."""

from __future__ import annotations

import dataclasses

from adapters.simulator.config import SimConfig
from adapters.simulator.live import LiveCluster
from autoscaler.clock import ManualClock
from autoscaler.config import load_config
from autoscaler.http.app import make_app
from autoscaler.loop import ControlLoop
from tests.helpers.loop import CHAT, CODE, steady

TOKEN = "s3cret-token"


def build(token=None, max_body=1024):
    config = load_config(None, env={})
    config = dataclasses.replace(
        config,
        http=dataclasses.replace(config.http, token=token, max_body_bytes=max_body),
        policy=dataclasses.replace(config.policy, container_concurrency=8),
    )
    cluster = LiveCluster([(CHAT, steady(10.0, 600.0)), (CODE, steady(1.0, 600.0, 1))], SimConfig())
    clock = ManualClock()
    loop = ControlLoop(config, source=cluster, actuator=cluster, catalog=cluster, clock=clock)
    return make_app(loop, config), loop, clock


async def ticked(loop, clock, seconds=120):
    for _ in range(int(seconds / 2)):
        await loop.tick()
        clock.advance(2.0)
