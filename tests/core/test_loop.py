"""The control loop on the simulator adapter with a clock moved by hand (no wall time)."""

from __future__ import annotations

import asyncio
import dataclasses

import numpy as np
import pytest

from adapters.simulator.config import SimConfig
from adapters.simulator.live import LiveCluster
from autoscaler.clock import ManualClock
from autoscaler.forecast_workers import ForecastPool, ForecastResult, ShellSettings
from autoscaler.loop import HOLD, WARMUP, ControlLoop
from autoscaler.ports import NoData, ServiceKey
from forecasting.forecast import Forecast
from tests.helpers.loop import CHAT, CODE, make_loop, run_for, steady, two_services


class CountingSource:
    """The real simulator behind a wrapper that counts calls and can be switched to fail."""

    def __init__(self, cluster: LiveCluster) -> None:
        self.cluster = cluster
        self.snapshots = 0
        self.failure: str | None = None
        self.no_data: str | None = None

    async def snapshot(self, now):
        self.snapshots += 1
        if self.failure:
            raise ConnectionError(self.failure)
        result = await self.cluster.snapshot(now)
        if self.no_data:
            return {key: NoData(self.no_data) for key in result}
        return result

    async def history(self, key, start, end):
        return await self.cluster.history(key, start, end)


class CountingActuator:
    def __init__(self, cluster: LiveCluster) -> None:
        self.cluster = cluster
        self.applied: list[dict] = []

    async def apply(self, decisions):
        self.applied.append(dict(decisions))
        return await self.cluster.apply(decisions)

    async def status(self, keys):
        return await self.cluster.status(keys)


async def test_one_snapshot_per_tick_for_every_service_and_only_changes_applied():
    cluster = two_services()
    source, actuator = CountingSource(cluster), CountingActuator(cluster)
    loop, clock = make_loop(cluster)
    loop.source, loop.actuator = source, actuator
    reports = await run_for(loop, clock, 300)
    assert source.snapshots == len(reports) == 150
    assert all(report.services == 2 for report in reports)
    # 20 req/s x ~1.0 s in service = ~20 in flight at 5.6 per replica: about 4 replicas
    assert 3 <= cluster.runs[CHAT].n_ready <= 6
    # applying is the exception, not the rule: only ticks whose decision changed a count
    assert 1 <= len(actuator.applied) < len(reports) / 3
    for batch in actuator.applied:
        assert all(desired >= 0 for desired in batch.values())
    assert loop.ready


async def test_missing_metrics_hold_the_scale_and_say_why_then_recover():
    cluster = two_services()
    source = CountingSource(cluster)
    loop, clock = make_loop(cluster, warmup_s=0.0)
    loop.source = source
    await run_for(loop, clock, 240)
    before = {key: cluster.runs[key].desired for key in (CHAT, CODE)}
    source.no_data = "series stale for 3m"
    reports = await run_for(loop, clock, 120)
    assert all(r.no_data == 2 for r in reports)
    for key in (CHAT, CODE):
        state = loop.states[key]
        assert state.last.reason == HOLD
        assert state.data_status == "no data: series stale for 3m"
        assert cluster.runs[key].desired == before[key]  # held, never scaled down
    source.no_data = None
    source.failure = "connection refused"
    await run_for(loop, clock, 20)
    assert loop.states[CHAT].data_status.startswith("no data: metrics source failed")
    assert cluster.runs[CHAT].desired == before[CHAT]
    errors = loop.telemetry.adapter_errors.labels("metrics", "snapshot")._value.get()
    assert errors == 10
    source.failure = None
    await run_for(loop, clock, 20)
    assert loop.states[CHAT].data_status == "ok"
    assert loop.states[CHAT].last.reason != HOLD


async def test_a_restarted_loop_does_not_scale_down_before_a_stabilisation_window():
    cluster = LiveCluster([(CHAT, steady(0.5, 900.0))], SimConfig())
    await cluster.apply({CHAT: 6})  # left at 6 replicas by the previous Leadtime
    cluster.advance(120.0)
    assert cluster.runs[CHAT].n_ready == 6
    loop, clock = make_loop(cluster, warmup_s=60.0)
    clock.time = 120.0
    reports = await run_for(loop, clock, 58)
    assert cluster.runs[CHAT].desired == 6
    last = loop.states[CHAT].last
    # held by the loop's warm-up guard, by the KPA floor starting in panic as Knative does, or
    # by the rule's own hold of what ran when the service joined (one break-even)
    assert last.desired == 6
    assert last.reason == WARMUP or "panicking since 120" in last.detail or "held 6" in last.detail
    await run_for(loop, clock, 200)
    assert cluster.runs[CHAT].desired < 6  # 0.5 req/s needs one replica
    assert reports


async def test_dry_run_records_every_decision_and_applies_none():
    cluster = two_services()
    actuator = CountingActuator(cluster)
    loop, clock = make_loop(cluster, mode="dry-run")
    loop.actuator = actuator
    await run_for(loop, clock, 200)
    assert actuator.applied == []
    assert cluster.runs[CHAT].desired == 1  # what the service was deployed with
    state = loop.states[CHAT]
    assert state.last.desired > 1 and not state.last.applied  # what it would have done
    assert state.status.desired == 1


async def test_a_paused_service_is_left_alone_and_the_others_go_on():
    cluster = two_services()
    loop, clock = make_loop(cluster)
    await loop._sync_catalog(clock.now())  # the services are known before any decision
    loop.states[CHAT].paused = True
    frozen = cluster.runs[CHAT].desired
    await run_for(loop, clock, 300)
    assert cluster.runs[CHAT].desired == frozen
    assert not loop.states[CHAT].last.applied
    assert loop.states[CHAT].last.desired != frozen  # what it would do, recorded
    assert cluster.runs[CODE].desired == loop.states[CODE].last.desired  # the others go on


async def test_failed_applies_are_recorded_and_retried():
    cluster = two_services()

    class Refusing(CountingActuator):
        async def apply(self, decisions):
            self.applied.append(dict(decisions))
            return dict.fromkeys(decisions, "409 Conflict")

    actuator = Refusing(cluster)
    loop, clock = make_loop(cluster)
    loop.actuator = actuator
    await run_for(loop, clock, 60)
    assert len(actuator.applied) > 1  # tried again on later ticks
    assert "apply failed: 409 Conflict" in loop.states[CHAT].last.detail
    assert not loop.states[CHAT].last.applied


@pytest.mark.slow
async def test_a_slow_fit_never_delays_a_tick():
    # one day of history: a per-series gradient boosting fits six boosted models on it, about
    # a second (`auto`'s first fit on a warm start is its quick selection, milliseconds)
    cluster = LiveCluster([(CHAT, steady(5.0, 90_000.0))], SimConfig())
    cluster.advance(86_400.0)
    received = []
    pool = ForecastPool(
        ShellSettings(horizon_s=200.0, model="gbm", min_history_s=60.0), 1, received.append
    )
    try:
        loop, clock = make_loop(cluster, forecasts=pool)
        clock.time = 86_400.0
        loop.forecasts = pool
        await loop.tick()  # warm start: a day of arrivals goes to the worker, a fit starts
        clock.advance(2.0)
        reports = await run_for(loop, clock, 20)
        assert received == []  # the fit is still running...
        assert max(report.wall_s for report in reports) < 0.5  # ...and no tick waited for it
        for _ in range(600):
            await asyncio.sleep(0.1)
            if received:
                break
        assert received and received[0].forecast is not None
        assert received[0].fit_s is not None and received[0].fit_s > 0.5
    finally:
        pool.close()


async def test_per_service_overrides_from_the_config_reach_the_loop():
    from autoscaler.config import config_from_mapping

    config = config_from_mapping(
        {
            "policy": {"container_concurrency": 8},
            "services": {
                "default/chat": {"max_scale": 2},
                "default/code": {"paused": True},
            },
        }
    )
    cluster = two_services(rate_chat=40.0)
    clock = ManualClock()
    loop = ControlLoop(
        config, source=cluster, actuator=cluster, catalog=cluster, clock=clock, warmup_s=0.0
    )
    frozen = cluster.runs[CODE].desired
    await run_for(loop, clock, 200)
    assert cluster.runs[CHAT].desired == 2  # 40 req/s would want ~8: capped by max_scale
    assert loop.states[CODE].paused and cluster.runs[CODE].desired == frozen


async def test_the_fleet_path_scales_as_the_scalar_policy_does():
    """Two loops on two identical clusters, one deciding steady services on arrays and one
    service by service: the same replica counts, tick after tick."""
    runs = []
    for fleet_path in (True, False):
        cluster = LiveCluster(
            [
                (CHAT, steady(20.0, 1200.0)),
                (CODE, steady(2.0, 1200.0, 1)),
                (ServiceKey("default", "batch"), steady(0.2, 1200.0, 2)),
            ],
            SimConfig(),
        )
        loop, clock = make_loop(cluster)
        loop.fleet_path = fleet_path
        counts, batch_on_arrays = [], []
        for tick in range(450):
            if tick % 5 == 0:  # forecasts as the workers would deliver them, every 10 s
                for key, rate in zip(cluster.runs, (22.0, 3.0, 0.5), strict=True):
                    wave = rate * (1 + 0.5 * np.sin(np.arange(30) / 5 + tick / 50))
                    forecast = Forecast(wave, {0.5: wave, 0.9: wave * 1.4}, 10.0)
                    loop.forecast_arrived(ForecastResult(str(key), forecast, "", clock.now()))
            await loop.tick()
            counts.append(tuple(run.desired for run in cluster.runs.values()))
            batch = loop.states[ServiceKey("default", "batch")]
            batch_on_arrays.append(bool(loop.fleet.in_fleet[batch.row]))
            clock.advance(2.0)
        runs.append((counts, loop, batch_on_arrays))
    (fast_counts, fast_loop, on_arrays), (scalar_counts, _, _) = runs
    assert fast_loop.fleet.in_fleet[:3].any()  # the fleet path did decide
    # the batch service is idle most seconds (0.2 requests/s) yet keeps a replica: it stays on
    # the fleet path (keep-alive acts only at zero), not one by one each tick
    assert sum(on_arrays[50:]) >= 0.9 * len(on_arrays[50:])
    reasons = {state.last.reason for state in fast_loop.states.values()}
    assert reasons & {"predictive", "headroom", "holding"}  # ...with the forecasts
    assert fast_counts == scalar_counts


async def test_further_signals_from_the_source_are_kept_for_the_api():
    cluster = two_services()

    class WithExtras(CountingSource):
        async def snapshot(self, now):
            chunks = await super().snapshot(now)
            return {
                key: dataclasses.replace(chunk, extras={"kv_cache_usage": 0.42})
                for key, chunk in chunks.items()
            }

    loop, clock = make_loop(cluster)
    loop.source = WithExtras(cluster)
    await run_for(loop, clock, 4)
    assert loop.states[CHAT].signals == {"kv_cache_usage": 0.42}


async def test_a_pause_made_through_the_api_outlives_an_edit_of_other_settings():
    """An operator edits a service's slo_target (an annotation, say) while it is paused through
    the API: the new decider is built and the pause stays; the setting's own pause still
    applies when it is the one edited."""
    cluster = two_services()
    loop, clock = make_loop(cluster)
    settings = {"slo_target": 0.9, "paused": False}
    base = loop.config.policy
    loop.policy_settings = lambda key: dataclasses.replace(base, **settings)
    loop.catalog_every_s = 0.0
    await run_for(loop, clock, 4)
    loop.states[CHAT].paused = True  # what POST .../pause does
    settings["slo_target"] = 0.95
    await run_for(loop, clock, 4)
    assert loop.states[CHAT].settings.slo_target == 0.95 and loop.states[CHAT].paused
    settings["paused"] = True
    await run_for(loop, clock, 4)
    settings["paused"] = False
    await run_for(loop, clock, 4)
    assert not loop.states[CHAT].paused
