"""Fault matrix, data and model half: the real ControlLoop, end to end, tick by tick.

Every case drives `ControlLoop` over `PrometheusSource` — against a real Prometheus where the
fault is Prometheus' own (down, stale series, counter reset), against a small aiohttp fake where
it is an answer no real Prometheus gives on demand (5xx, garbage, NaN) — or over the real
forecasting worker pool with a forecaster that misbehaves. Each asserts the four promises:
(a) no exception escapes a tick, (b) no scale-down while the data is missing or bad, (c) a status
that names the fault plus a countable record (the exported `leadtime_decisions_total`,
`leadtime_services_without_data`, and the decision log), (d) recovery once the fault ends: `ok`
data and normal decisions again, down to a scale-down under low load.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import multiprocessing
import os
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp import web

from adapters.knative.annotations import revision_settings
from adapters.prometheus.client import PrometheusClient
from adapters.prometheus.signals import SignalSet
from adapters.prometheus.source import PrometheusSource
from autoscaler.clock import ManualClock, WallClock
from autoscaler.config import Config, config_from_mapping, load_config
from autoscaler.errors import InputError
from autoscaler.forecast_workers import ForecastPool, ShellSettings
from autoscaler.loop import HOLD, WARMUP, ControlLoop
from autoscaler.ports import ReplicaStatus, ServiceKey
from forecasting.forecast import Forecast
from tests.helpers.prometheus import Exporter, serve_exporter, start_prometheus

pytestmark = pytest.mark.faults

CHAT = ServiceKey("ns", "chat")
CODE = ServiceKey("ns", "code")
TICK_S = 2.0
HIGH, LOW = 40.0, 2.0
"""In flight (and arriving per second: 1 s in service); on 8-slot replicas, the fewest that keep
99 % of requests within the SLO (an M/M/c queue of 40 erlangs): 6, and 1."""
SCALED = 6

SIGNALS = SignalSet(
    name="test",
    arrivals="sum by (namespace, service) (rate(leadtime_test_requests_total[{window}]))",
    concurrency="sum by (namespace, service) (leadtime_test_in_flight)",
    # The exporter's queue is the same whatever the replicas (no service behaves so): read as
    # real, it would teach the policy that a replica serves 1.5 requests at a time. These tests
    # are about faults in the data path, so the queue reads 0 and the configured slots stand.
    queue="0 * sum by (namespace, service) (leadtime_test_queued)",
    namespace_label="namespace",
    service_label="service",
)


# ------------------------------------------------------------------ actuator and catalog
class Replicas:
    """An in-memory cluster: services at a replica count, ready at once; every change logged,
    so a test can see whether a count ever went down."""

    def __init__(self, counts: Mapping[ServiceKey, int], cold_start_s: float = 5.0) -> None:
        self.counts = dict(counts)
        self.cold_start_s = cold_start_s
        self.changes: list[tuple[ServiceKey, int, int]] = []

    async def services(self) -> list[ServiceKey]:
        return sorted(self.counts)

    async def apply(self, decisions: Mapping[ServiceKey, int]) -> Mapping[ServiceKey, str]:
        for key, desired in decisions.items():
            self.changes.append((key, self.counts[key], desired))
            self.counts[key] = desired
        return {}

    async def status(self, keys: list[ServiceKey]) -> Mapping[ServiceKey, ReplicaStatus]:
        return {
            key: ReplicaStatus(self.counts[key], 0, self.counts[key], self.cold_start_s)
            for key in keys
        }

    def lowered(self, key: ServiceKey, since: int = 0) -> bool:
        """Whether `key` was scaled down among the changes from index `since` on."""
        return any(k == key and new < old for k, old, new in self.changes[since:])


def fast_config(**policy: object) -> Config:
    """Knative-like settings with short windows, so a scale-down is minutes of loop time."""
    settings: dict[str, object] = {
        "container_concurrency": 8,
        "stable_window": "6s",
        "scale_down_delay": "0s",
        "cold_start_prior": "5s",
        "horizon": "10s",
    }
    settings.update(policy)
    return config_from_mapping({"tick": f"{TICK_S}s", "policy": settings})


def counter(loop: ControlLoop, name: str, **labels: str) -> float:
    """A value of Leadtime's exported metrics (0 when the series does not exist yet)."""
    return loop.telemetry.registry.get_sample_value(name, labels) or 0.0


def holds(loop: ControlLoop) -> float:
    return counter(loop, "leadtime_decisions_total", reason=HOLD)


# ------------------------------------------------------------------------ a fake Prometheus
@dataclass
class FakePrometheus:
    """Answers the three test queries from `load` (service name → in flight = arrivals/s);
    `fault` spoils every answer, `series` one service's samples."""

    load: dict[str, float] = field(default_factory=lambda: {"chat": HIGH, "code": HIGH})
    fault: str | None = None
    series: dict[str, str] = field(default_factory=dict)
    url: str = ""

    async def query(self, request: web.Request) -> web.Response:
        if self.fault is not None:
            return await ANSWER_FAULTS[self.fault](request)
        at = float(request.query.get("time", time.time()))
        promql = request.query["query"]
        result = [
            sample
            for name, load in self.load.items()
            if (sample := self._sample(name, _signal(promql), load, at)) is not None
        ]
        return web.json_response(
            {"status": "success", "data": {"resultType": "vector", "result": result}}
        )

    async def query_range(self, request: web.Request) -> web.Response:
        """No history (warm starts then begin from nothing, as for a new service)."""
        return web.json_response(
            {"status": "success", "data": {"resultType": "matrix", "result": []}}
        )

    def _sample(self, name: str, signal: str, load: float, at: float) -> dict | None:
        value = {"arrivals": load, "concurrency": load, "queue": 0.0}[signal]
        text = f"{value:g}"
        fault = self.series.get(name)
        if fault == "missing":
            return None
        if fault in SERIES_VALUES and signal in SERIES_VALUES[fault][0]:
            text = SERIES_VALUES[fault][1]
        if fault == "stale":
            at -= 600.0
        return {"metric": {"namespace": "ns", "service": name}, "value": [at, text]}


def _signal(promql: str) -> str:
    if "rate(" in promql:
        return "arrivals"
    return "queue" if "queued" in promql else "concurrency"


SERIES_VALUES = {
    "nan": (("arrivals",), "NaN"),
    "+inf": (("concurrency",), "+Inf"),
    "negative": (("concurrency", "arrivals"), "-3"),
}
"""A per-series fault → (the signals it spoils, the value Prometheus writes)."""


def _reply(status: int, text: str, content_type: str = "application/json"):
    async def answer(request: web.Request) -> web.Response:
        return web.Response(status=status, text=text, content_type=content_type)

    return answer


async def _slow(request: web.Request) -> web.Response:
    await asyncio.sleep(1.0)
    return web.json_response({"status": "success", "data": {"resultType": "vector", "result": []}})


def _error(kind: str, why: str) -> str:
    return f'{{"status": "error", "errorType": "{kind}", "error": "{why}"}}'


ANSWER_FAULTS: dict[str, Callable] = {
    "http 503": _reply(503, _error("unavailable", "too many queries")),
    "http 502 html": _reply(502, "<html>bad gateway</html>", "text/html"),
    "garbage": _reply(200, "\x00\x01 not json {"),
    "status error": _reply(422, _error("execution", "query timed out in expression")),
    "wrong result type": _reply(
        200, '{"status": "success", "data": {"resultType": "matrix", "result": []}}'
    ),
    "malformed sample": _reply(
        200, '{"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}}]}}'
    ),
    "not an object": _reply(200, "[1, 2, 3]"),
    "empty result": _reply(
        200, '{"status": "success", "data": {"resultType": "vector", "result": []}}'
    ),
    "slow": _slow,
}


@pytest.fixture
async def fake(aiohttp_server) -> FakePrometheus:
    prometheus = FakePrometheus()
    app = web.Application()
    app.router.add_get("/api/v1/query", prometheus.query)
    app.router.add_get("/api/v1/query_range", prometheus.query_range)
    server = await aiohttp_server(app)
    prometheus.url = str(server.make_url(""))
    return prometheus


@dataclass
class Rig:
    """A loop over the fake Prometheus and an in-memory cluster, on a clock moved by hand."""

    loop: ControlLoop
    clock: ManualClock
    cluster: Replicas
    client: PrometheusClient

    async def run(self, seconds: float, check: Callable[[], None] | None = None) -> None:
        """Tick for `seconds` of loop time; `check` after every tick (each tick must return)."""
        for _ in range(int(seconds / TICK_S)):
            report = await self.loop.tick()
            assert report.services == len(self.cluster.counts)
            if check is not None:
                check()
            self.clock.advance(TICK_S)

    async def run_until(self, done: Callable[[], bool], limit_s: float) -> bool:
        for _ in range(int(limit_s / TICK_S)):
            await self.loop.tick()
            self.clock.advance(TICK_S)
            if done():
                return True
        return False


@pytest.fixture
async def rig(fake: FakePrometheus):
    client = PrometheusClient(fake.url, timeout_s=0.25, retries=1, backoff_s=0.01)
    source = PrometheusSource(client, SIGNALS, rate_window_s=5.0)
    cluster = Replicas({CHAT: SCALED, CODE: SCALED})
    clock = ManualClock(1_000_000.0)
    loop = ControlLoop(
        fast_config(), source=source, actuator=cluster, catalog=cluster, clock=clock, warmup_s=0
    )
    try:
        yield Rig(loop, clock, cluster, client)
    finally:
        await client.close()


def never_lowered(rig: Rig, keys: tuple[ServiceKey, ...], why: str) -> Callable[[], None]:
    """A per-tick check: each faulty service held (`hold`, status naming `why`), not lowered."""

    def check() -> None:
        for key in keys:
            state = rig.loop.states[key]
            assert rig.cluster.counts[key] == SCALED, rig.cluster.changes
            assert state.data_status.startswith("no data: "), state.data_status
            assert why in state.data_status, state.data_status
            assert state.last is not None
            assert state.last.reason == HOLD and why in state.last.detail

    return check


async def recovers_and_scales_down(rig: Rig, fake: FakePrometheus, key: ServiceKey) -> None:
    """(d): the fault over and the load low, `key` has ok data and is scaled down."""
    fake.load[key.name] = LOW
    lowered = await rig.run_until(lambda: rig.cluster.counts[key] < SCALED, 300)
    state = rig.loop.states[key]
    assert lowered, (state.data_status, state.last)
    assert state.data_status == "ok" and state.last is not None and state.last.reason != HOLD


# ---------------------------------------------------------------- whole-answer faults (fake)
ANSWER_REASONS = {
    "http 503": "prometheus: HTTP 503: unavailable: too many queries",
    "http 502 html": "prometheus: HTTP 502: not JSON",
    "garbage": "prometheus: HTTP 200: not JSON",
    "status error": "prometheus: HTTP 422: execution: query timed out",
    "wrong result type": "prometheus: expected a vector, got 'matrix'",
    "malformed sample": "prometheus: malformed sample",
    "not an object": "prometheus: HTTP 200: expected a JSON object",
    "empty result": "series for this service",  # its arrivals', then (forgotten) any
    "slow": "prometheus: timed out after 0.25s",
}


@pytest.mark.parametrize("fault", list(ANSWER_REASONS))
async def test_a_bad_prometheus_answer_holds_every_service_and_recovers(rig, fake, fault):
    await rig.run(20)
    assert rig.loop.states[CHAT].data_status == "ok"
    holds_before = holds(rig.loop)
    fake.fault = fault
    seconds = 20 if fault == "slow" else 120  # a slow answer costs wall time per tick
    await rig.run(seconds, never_lowered(rig, (CHAT, CODE), ANSWER_REASONS[fault]))
    ticks = seconds / TICK_S
    assert holds(rig.loop) - holds_before == 2 * ticks  # both services, every tick
    assert counter(rig.loop, "leadtime_services_without_data") == 2
    logged = rig.loop.states[CHAT].decisions[0]
    assert logged.reason == HOLD and ANSWER_REASONS[fault] in logged.detail
    fake.fault = None
    await recovers_and_scales_down(rig, fake, CHAT)
    assert counter(rig.loop, "leadtime_services_without_data") == 0


# ------------------------------------------------------------------ one bad series (fake)
SERIES_REASONS = {
    "nan": "arrivals is nan (not a finite count)",
    "+inf": "concurrency is inf (not a finite count)",
    "negative": "is -3.0 (not a finite count)",
    "stale": "stale: newest sample 600s old",
    "missing": "series for this service",  # its arrivals', then (forgotten) any
}


@pytest.mark.parametrize("fault", list(SERIES_REASONS))
async def test_one_bad_series_holds_that_service_and_the_other_goes_on(rig, fake, fault):
    await rig.run(20)
    holds_before = holds(rig.loop)
    fake.series["chat"] = fault
    fake.load["code"] = LOW  # the healthy neighbour keeps being decided: it scales down
    await rig.run(120, never_lowered(rig, (CHAT,), SERIES_REASONS[fault]))
    assert holds(rig.loop) - holds_before == 120 / TICK_S  # chat only
    assert counter(rig.loop, "leadtime_services_without_data") == 1
    assert rig.loop.states[CODE].data_status == "ok"
    assert rig.cluster.counts[CODE] < SCALED
    del fake.series["chat"]
    await recovers_and_scales_down(rig, fake, CHAT)


# ------------------------------------------------------------------- the real Prometheus
SVC6, SVC13 = ServiceKey("ns0", "svc-6"), ServiceKey("ns1", "svc-13")
"""Exporter services with 6 in flight each: 2 replicas at 8 per replica (70 % target)."""
NEEDED = 2


def _prometheus_and_exporter():
    exporter = Exporter()
    server, port = serve_exporter(exporter)
    prom = start_prometheus(port)
    try:
        yield prom, exporter
    finally:
        prom.remove()
        server.shutdown()


@pytest.fixture(scope="module")
def real_prometheus():
    """Debian's Prometheus scraping the test exporter every second (tests/helpers/prometheus.py)."""
    yield from _prometheus_and_exporter()


@pytest.fixture
def own_prometheus():
    """A Prometheus of its own, for the test that restarts it: a restarted Prometheus writes
    no staleness markers for series that stop afterwards (their gauges linger for its 5-minute
    lookback), which would change what the other tests see."""
    yield from _prometheus_and_exporter()


def wall_loop(url: str, **options: Any) -> tuple[ControlLoop, Replicas, PrometheusClient]:
    """A loop on wall time over the real Prometheus, its two services at what they need."""
    client = PrometheusClient(url, timeout_s=1.0, retries=1, backoff_s=0.05)
    source = PrometheusSource(client, SIGNALS, rate_window_s=5.0)
    cluster = Replicas({SVC6: NEEDED, SVC13: NEEDED})
    config = dataclasses.replace(fast_config(), tick_s=0.5)
    loop = ControlLoop(
        config,
        source=source,
        actuator=cluster,
        catalog=cluster,
        clock=WallClock(),
        warmup_s=0,
        **options,
    )
    return loop, cluster, client


async def eventually(condition: Callable[[], bool], limit_s: float = 60.0) -> bool:
    """Poll `condition` every 0.1 s for up to `limit_s` of wall time (a generous bound)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.1)
    return condition()


def data_ok(loop: ControlLoop, *keys: ServiceKey) -> Callable[[], bool]:
    return lambda: all(key in loop.states and loop.states[key].data_status == "ok" for key in keys)


async def bumped_back_down(loop: ControlLoop, cluster: Replicas, key: ServiceKey) -> bool:
    """(d) on the real Prometheus, whose load is fixed: someone scales `key` up to 6; normal
    decisions bring it back to what its load needs."""
    cluster.counts[key] = 6
    return await eventually(lambda: cluster.counts[key] <= NEEDED + 1, 60)


@pytest.mark.prometheus
async def test_prometheus_stopped_mid_run_then_restarted(own_prometheus):
    prom, _ = own_prometheus
    loop, cluster, client = wall_loop(prom.url)
    task = asyncio.create_task(loop.run())  # the loop as the service runs it
    try:
        assert await eventually(data_ok(loop, SVC6, SVC13))
        await asyncio.sleep(8.0)  # a stable window of healthy decisions: nothing moves
        assert cluster.counts == {SVC6: NEEDED, SVC13: NEEDED}, cluster.changes
        holds_before, since, mark = holds(loop), len(cluster.changes), loop.ticks
        prom.stop()
        assert await eventually(lambda: "unreachable" in loop.states[SVC6].data_status, 30)
        outage_ended = time.monotonic() + 8.0  # longer than the stable window: zeros would drop
        while time.monotonic() < outage_ended:
            assert not task.done()
            for key in (SVC6, SVC13):
                state = loop.states[key]
                assert state.data_status.startswith("no data: prometheus: unreachable")
                assert state.last.reason == HOLD
            await asyncio.sleep(0.2)
        assert not cluster.lowered(SVC6, since) and not cluster.lowered(SVC13, since)
        assert loop.ticks - mark >= 3
        assert holds(loop) - holds_before >= 2 * 3
        assert counter(loop, "leadtime_services_without_data") == 2
        prom.start()
        assert await eventually(data_ok(loop, SVC6, SVC13))
        assert not task.done()
        assert await bumped_back_down(loop, cluster, SVC6)
        assert loop.states[SVC6].last.reason != HOLD
    finally:
        loop.stop()
        await asyncio.wait_for(task, 30)
        await client.close()


async def tick_for(loop: ControlLoop, seconds: float, check: Callable[[], None]) -> None:
    """Tick every 0.5 s of wall time for `seconds`, `check` after each tick."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await loop.tick()
        check()
        await asyncio.sleep(0.5)


async def tick_until(loop: ControlLoop, condition: Callable[[], bool], limit_s: float) -> bool:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        await loop.tick()
        if condition():
            return True
        await asyncio.sleep(0.5)
    return False


@pytest.mark.prometheus
async def test_a_series_that_goes_stale_on_the_real_prometheus_is_held(real_prometheus):
    prom, exporter = real_prometheus
    loop, cluster, client = wall_loop(prom.url)
    try:
        assert await tick_until(loop, data_ok(loop, SVC6, SVC13), 60)
        holds_before = holds(loop)
        exporter.hidden.add(13)  # its pod is gone: Prometheus marks the series stale

        def held() -> None:
            state = loop.states[SVC13]
            if state.data_status != "ok":  # until the next scrape it is still there
                assert state.data_status == "no data: no arrivals series for this service"
                assert state.last.reason == HOLD
            assert cluster.counts[SVC13] == NEEDED, loop.states[SVC13].last
            assert loop.states[SVC6].data_status == "ok"

        assert await tick_until(loop, lambda: loop.states[SVC13].data_status != "ok", 30)
        await tick_for(loop, 8.0, held)
        assert not cluster.lowered(SVC13)
        assert holds(loop) - holds_before >= 8
        assert counter(loop, "leadtime_services_without_data") == 1
        exporter.hidden.discard(13)
        assert await tick_until(loop, data_ok(loop, SVC13), 30)
        cluster.counts[SVC13] = 6
        assert await tick_until(loop, lambda: cluster.counts[SVC13] <= NEEDED + 1, 60)
    finally:
        exporter.hidden.discard(13)
        await client.close()


@pytest.mark.prometheus
async def test_a_counter_reset_on_the_real_prometheus_is_no_drop_in_demand(real_prometheus):
    prom, exporter = real_prometheus
    loop, cluster, client = wall_loop(prom.url)
    try:
        assert await tick_until(loop, data_ok(loop, SVC6, SVC13), 60)
        cluster.counts[SVC13] = 3  # one above need: a drop in demand would show at once
        await tick_for(loop, 3.0, lambda: None)
        holds_before = holds(loop)
        exporter.reset_at = time.time()  # every pod restarted: counters from 0

        def steady() -> None:
            for key in (SVC6, SVC13):
                assert loop.states[key].data_status == "ok"
                arrivals = loop.fleet.tail(key, 1)[1]
                assert arrivals[-1] > 0.5  # rate() spans the reset: never 0, never negative
            assert cluster.counts[SVC6] == NEEDED, loop.states[SVC6].last

        await tick_for(loop, 8.0, steady)
        assert holds(loop) == holds_before
        assert counter(loop, "leadtime_services_without_data") == 0
        assert cluster.counts[SVC13] >= NEEDED  # decided on its real load, not on a dip
        assert loop.states[SVC13].last.reason != HOLD
    finally:
        exporter.reset_at = None
        await client.close()


# ----------------------------------------------------------------- misbehaving forecasters
FAULT_FILE = "LEADTIME_TEST_FORECAST_FAULT"
"""Environment variable naming the file whose text sets the faulty forecaster's behaviour (the
workers are spawned processes: they read the file, the test writes it)."""
HEADROOM = 1.25


def _mode() -> str:
    try:
        return Path(os.environ[FAULT_FILE]).read_text().strip()
    except (KeyError, OSError):
        return "ok"


class FaultyForecaster:
    """A forecaster as the shell uses one (`fit`, `update`, `predict`), deliberately without
    the base class's guard rails, so its faults reach the worker and the loop as they are:
    `ok` forecasts the last rate with a p90 25 % above it; `raise` raises from fit and predict;
    `nan` / `inf` forecast non-finite quantiles; `hang` never finishes a fit while the file
    says so (capped at two minutes, so a failed test cannot leave a worker behind for ever)."""

    def __init__(self) -> None:
        self.last, self.step_s = 0.0, 10.0

    def fit(self, y: np.ndarray, *, step_s: float, **_: object) -> FaultyForecaster:
        deadline = time.monotonic() + 120
        while _mode() == "hang" and time.monotonic() < deadline:
            time.sleep(0.05)
        if _mode() == "raise":
            raise RuntimeError("injected forecaster failure")
        self.step_s = step_s
        self.update(y)
        return self

    def update(self, y: np.ndarray) -> None:
        known = np.asarray(y, dtype=float)
        known = known[np.isfinite(known)]  # a warm start's gap in the history is NaN
        if known.size:
            self.last = float(known[-1])

    def predict(self, horizon: int, levels: tuple[float, ...]) -> Forecast:
        mode = _mode()
        if mode == "raise":
            raise RuntimeError("injected forecaster failure")
        value = {"nan": math.nan, "inf": math.inf}.get(mode, self.last)
        mean = np.full(horizon, value)
        quantiles = {q: mean * (HEADROOM if q > 0.5 else 1.0) for q in levels}
        return Forecast(mean, quantiles, self.step_s, "faulty")


def _register_faulty_model() -> None:
    """Worker initializer: make `faulty` a model name the shell can build."""
    from forecasting import registry

    registry.MODELS["faulty"] = ("tests.e2e.test_faults_data", "FaultyForecaster")


class FaultyPool(ForecastPool):
    """The real forecasting pool, its spawned workers knowing the `faulty` model."""

    @staticmethod
    def _new_executor() -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_register_faulty_model,
        )


@dataclass
class ForecastRig:
    rig: Rig
    pool: ForecastPool
    mode_file: Path

    def set_mode(self, mode: str) -> None:
        self.mode_file.write_text(mode)

    async def tick(self, *, drain: bool = True) -> None:
        """One tick; with `drain`, wait for the workers' answers to reach the loop."""
        await self.rig.loop.tick()
        if drain:
            await asyncio.wait_for(self.pool.drain(), 60)
        await asyncio.sleep(0.01)  # the answers are handed over with call_soon_threadsafe
        self.rig.clock.advance(TICK_S)


@pytest.fixture
async def forecasting(fake, tmp_path, monkeypatch):
    mode_file = tmp_path / "mode"
    mode_file.write_text("ok")
    monkeypatch.setenv(FAULT_FILE, str(mode_file))
    client = PrometheusClient(fake.url, timeout_s=2.0, retries=1, backoff_s=0.01)
    source = PrometheusSource(client, SIGNALS, rate_window_s=5.0)
    cluster = Replicas({CHAT: SCALED, CODE: SCALED})
    clock = ManualClock(1_000_000.0)
    aio = asyncio.get_running_loop()
    box: list[ControlLoop] = []
    settings = ShellSettings(horizon_s=30.0, model="faulty", refit_every_s=1.0, min_history_s=30.0)
    pool = FaultyPool(settings, 1, lambda r: aio.call_soon_threadsafe(box[0].forecast_arrived, r))
    loop = ControlLoop(
        fast_config(),
        source=source,
        actuator=cluster,
        catalog=cluster,
        clock=clock,
        forecasts=pool,
        warmup_s=0,
        history_s=60.0,
    )
    box.append(loop)
    try:
        yield ForecastRig(Rig(loop, clock, cluster, client), pool, mode_file)
    finally:
        mode_file.write_text("ok")  # frees a hung fit
        pool.close()
        await client.close()


def uses_forecast(state) -> bool:
    return state.forecast is not None and not state.last.reason.startswith("fallback")


async def forecast_in_use(f: ForecastRig, limit_s: float = 200) -> None:
    """Tick until the loop decides both services by their forecasts (a p90 25 % above the
    median: the rate's own uncertainty asks for more than the observed load alone)."""
    for _ in range(int(limit_s / TICK_S)):
        await f.tick()
        states = [f.rig.loop.states[key] for key in (CHAT, CODE)]
        if all(uses_forecast(s) and s.last and s.last.reason == "predictive" for s in states):
            return
    pytest.fail(f"no forecast in use: {[(s.last, s.forecast_note) for s in states]}")


async def forecast_recovers(f: ForecastRig, fake: FakePrometheus) -> None:
    """(d): the forecaster fine again and the load low, forecasts are used and chat scales down."""
    f.set_mode("ok")
    fake.load["chat"] = LOW
    for _ in range(int(300 / TICK_S)):
        await f.tick()
        state = f.rig.loop.states[CHAT]
        if uses_forecast(state) and f.rig.cluster.counts[CHAT] < SCALED:
            return
    pytest.fail(f"no recovery: {state.last}, {state.forecast_note}")


def hold_s(loop: ControlLoop) -> float:
    """How long the policy keeps a replica it no longer needs, before the service has gaps of
    its own to learn from: ski-rental's break-even (two lead times)."""
    config = loop.states[CHAT].policy.config
    return max(config.scale_down_delay_s, config.hold_leads * config.lead_time_s(5.0))


async def shedding_waits_for_the_hold(
    f: ForecastRig, counts: dict[ServiceKey, int], mark: int, *, drain: bool
) -> None:
    """(b) for a forecaster's fault: the forecast's headroom is kept for the policy's hold
    window (a broken forecaster sheds nothing at once), and after it the reactive rule decides,
    which never goes below what the measured load needs (SCALED)."""
    fault_at = f.rig.clock.now()
    for _ in range(30):
        await f.tick(drain=drain)
        if f.rig.clock.now() - TICK_S - fault_at < hold_s(f.rig.loop):
            assert f.rig.cluster.counts == counts, f.rig.cluster.changes[mark:]
        assert min(f.rig.cluster.counts.values()) >= SCALED, f.rig.cluster.changes[mark:]


FORECAST_FAULTS = {
    "raise": "fallback:forecast worker failed: injected forecaster failure",
    "nan": "fallback:forecast not finite",
    "inf": "fallback:forecast not finite",
}


@pytest.mark.parametrize("mode", list(FORECAST_FAULTS))
async def test_a_forecaster_that_fails_falls_back_without_shedding(forecasting, fake, mode):
    f = forecasting
    await forecast_in_use(f)
    counts = dict(f.rig.cluster.counts)
    assert counts[CHAT] > SCALED, f.rig.loop.states[CHAT].last  # the headroom is in place
    fallbacks_before = counter(f.rig.loop, "leadtime_decisions_total", reason="fallback")
    mark = len(f.rig.cluster.changes)
    f.set_mode(mode)
    await shedding_waits_for_the_hold(f, counts, mark, drain=True)
    for key in (CHAT, CODE):
        state = f.rig.loop.states[key]
        assert state.data_status == "ok"  # the metrics are fine: only the forecast is not
        assert state.last.reason.startswith(FORECAST_FAULTS[mode]), state.last
    fallbacks = counter(f.rig.loop, "leadtime_decisions_total", reason="fallback")
    assert fallbacks - fallbacks_before >= 2 * 25
    await forecast_recovers(f, fake)


async def test_a_fit_that_never_finishes_goes_stale_and_falls_back(forecasting, fake):
    f = forecasting
    await forecast_in_use(f)
    counts = dict(f.rig.cluster.counts)
    f.set_mode("hang")
    mark = len(f.rig.cluster.changes)
    stale_from = None
    for tick in range(60):  # two minutes of loop time with the worker stuck in a fit
        await f.tick(drain=False)
        reason = f.rig.loop.states[CHAT].last.reason
        if reason.startswith("fallback:forecast stale"):
            stale_from = tick if stale_from is None else stale_from
        else:
            assert stale_from is None, reason  # once stale, it stays stale while stuck
        if stale_from is None or (tick - stale_from + 1) * TICK_S < hold_s(f.rig.loop):
            assert f.rig.cluster.counts == counts, f.rig.cluster.changes[mark:]  # fresh or held
        assert min(f.rig.cluster.counts.values()) >= SCALED  # then the reactive rule
    assert stale_from is not None and stale_from * TICK_S >= STALE_S
    assert counter(f.rig.loop, "leadtime_decisions_total", reason="fallback") >= 2 * 30
    await forecast_recovers(f, fake)


STALE_S = 3 * 10.0
"""STALE_FORECAST_STEPS steps of 10 s: a forecast is used until it is older than this."""


# ---------------------------------------------------------------------- restart mid-scale
async def test_a_restarted_leadtime_sheds_nothing_until_its_warm_up_ends(fake):
    """The old Leadtime scaled both services to 8 under high load and died; the load fell while
    it was down. The new one has no history: it holds for one stable window, then decides."""
    client = PrometheusClient(fake.url, timeout_s=2.0, retries=1, backoff_s=0.01)
    cluster = Replicas({CHAT: 2, CODE: 2})
    clock = ManualClock(1_000_000.0)
    config = fast_config(stable_window="60s")

    def new_loop() -> ControlLoop:
        source = PrometheusSource(client, SIGNALS, rate_window_s=5.0)
        return ControlLoop(config, source=source, actuator=cluster, catalog=cluster, clock=clock)

    try:
        old = Rig(new_loop(), clock, cluster, client)
        assert await old.run_until(lambda: min(cluster.counts.values()) >= SCALED, 200)
        fake.load.update(chat=LOW, code=LOW)
        restarted = Rig(new_loop(), clock, cluster, client)
        started, counts, mark = clock.now(), dict(cluster.counts), len(cluster.changes)

        def holds(record, key) -> bool:
            """The loop's warm-up guard, the KPA's panic start, or the rule's own hold of what
            ran when it joined (then the count it asks for is the current one)."""
            return (
                record.reason == WARMUP
                or "panicking since" in record.detail
                or record.desired == counts[key]
            )

        def held() -> None:
            for key in (CHAT, CODE):
                last = restarted.loop.states[key].last
                assert holds(last, key), last
            assert cluster.counts == counts, cluster.changes[mark:]

        await restarted.run(restarted.loop.warmup_s, held)
        assert restarted.loop.warmup_s == 60.0
        for key in (CHAT, CODE):  # the decision log says why: warm-up, panic start, or a hold
            logged = restarted.loop.states[key].decisions
            assert all(holds(record, key) for record in logged)
        decided = sum(
            sample.value
            for metric in restarted.loop.telemetry.decisions.collect()
            for sample in metric.samples
            if sample.name == "leadtime_decisions_total"
        )
        assert decided == 2 * restarted.loop.warmup_s / TICK_S  # every held decision counted
        assert restarted.loop.states[CHAT].data_status == "ok"
        lowered = await restarted.run_until(lambda: max(cluster.counts.values()) < SCALED, 300)
        assert lowered and clock.now() - started >= 60.0
    finally:
        await client.close()


# ------------------------------------------------------------- invalid configs and overrides
INVALID_CONFIGS = {
    "policy:\n  slo_target: 1.5\n": ("policy.slo_target", "expected a number in [0.5, 1)"),
    "policy:\n  metric: cpu\n": ("policy.metric", "expected one of 'concurrency', 'rps'"),
    "mode: wild\n": ("mode", "expected one of 'live', 'dry-run'"),
    "tick: 0s\n": ("tick", "expected a duration in [0.1s, 1m]"),
    "policy:\n  min_scale: 5\n  max_scale: 2\n": ("policy.max_scale", "must be >= min_scale=5"),
    "forecasting:\n  model: magic\n": ("forecasting.model", "'naive', 'seasonal_naive'"),
    "prometheus:\n  stale_after: 0s\n": ("prometheus.stale_after", "expected a duration in"),
    "services:\n  ns/chat:\n    slo_target: 2\n": (
        "services.ns/chat.slo_target",
        "expected a number in [0.5, 1)",
    ),
    "services:\n  chat:\n    max_scale: 2\n": ("services", "expected keys namespace/name"),
}


@pytest.mark.parametrize("text", list(INVALID_CONFIGS), ids=lambda t: t.split(":")[0])
def test_an_invalid_config_file_is_one_error_naming_the_field_and_what_is_allowed(tmp_path, text):
    path = tmp_path / "leadtime.yaml"
    path.write_text(text)
    field_name, allowed = INVALID_CONFIGS[text]
    with pytest.raises(InputError) as refused:
        load_config(str(path), env={})
    message = str(refused.value)
    assert f"{field_name}: " in message and allowed in message, message
    assert "\n" not in message


ANNOTATIONS = {
    CHAT: {"leadtime.dev/slo-target": "2", "autoscaling.knative.dev/metric": "cpu"},
    CODE: {"autoscaling.knative.dev/max-scale": "3"},
}


async def test_a_bad_override_of_one_service_is_named_and_the_others_keep_working(rig, fake):
    """Per-service settings as the Knative adapter reads them from a PA's annotations: the bad
    values of chat are refused (each named, with what is allowed) and its defaults apply; code's
    good override applies; the loop decides both; a corrected annotation takes effect."""
    defaults = rig.loop.config.policy
    annotations = {key: dict(values) for key, values in ANNOTATIONS.items()}

    def settings(key: ServiceKey):
        return revision_settings(annotations[key], 8, defaults)

    rig.loop.policy_settings = lambda key: settings(key).policy
    rig.loop.catalog_every_s = 10.0
    problems = settings(CHAT).problems
    assert problems["leadtime.dev/slo-target"].startswith("leadtime.dev/slo-target: expected")
    assert "a number in [0.5, 1), got 2" in problems["leadtime.dev/slo-target"]
    assert "one of 'concurrency', 'rps', got 'cpu'" in problems["autoscaling.knative.dev/metric"]
    assert settings(CODE).problems == {}
    await rig.run(120)
    chat, code = rig.loop.states[CHAT], rig.loop.states[CODE]
    assert chat.settings == defaults and chat.data_status == "ok"
    assert rig.cluster.counts[CHAT] == SCALED  # its load, with the default policy
    assert code.settings.max_scale == 3 and rig.cluster.counts[CODE] == 3
    annotations[CHAT]["leadtime.dev/slo-target"] = "0.95"
    del annotations[CHAT]["autoscaling.knative.dev/metric"]
    await rig.run(20)
    assert chat.settings.slo_target == 0.95 and chat.policy.config.slo_target == 0.95
    await recovers_and_scales_down(rig, fake, CHAT)
