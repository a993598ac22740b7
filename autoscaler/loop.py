"""The control loop (DESIGN §2): one tick = read every service's metrics, decide, apply.

Each tick: one `MetricsSource.snapshot` for all services, the per-service state update, the
forecast each service's worker last produced, the pure policy, and `Actuator.apply` for the
decisions that change a replica count. Forecasting runs in worker processes
(`forecast_pool.py`); a tick hands them the new seconds and never waits for them.

Safety rules live here, around the pure policy, because they are about the data, not the policy:
- no usable metrics for a service → it is held at its current scale (`hold`), never scaled down;
- an adapter that fails is counted and logged, and the tick goes on for everyone else;
- for one stabilisation window after (re)start nothing is scaled down (`warmup`): a restarted
  Leadtime has no history and must not shed capacity it cannot yet judge (the KPA, likewise,
  starts a new decider in panic mode);
- `dry-run` computes and records everything and applies nothing; a paused service the same.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from autoscaler.config import Config
from autoscaler.forecast_pool import ForecastPool, ForecastResult
from autoscaler.forecasts import shift_forecast
from autoscaler.policies.leadtime import Leadtime
from autoscaler.policy import Decision, Observation
from autoscaler.ports import (
    Actuator,
    Catalog,
    Clock,
    MetricsChunk,
    MetricsSource,
    NoData,
    ReplicaStatus,
    ServiceKey,
)
from autoscaler.service_state import DISPLAY_S, DecisionRecord, SecondsRing, ServiceState
from autoscaler.telemetry import Telemetry

log = logging.getLogger("leadtime.loop")

HOLD = "hold"
WARMUP = "warmup"
STALE_FORECAST_STEPS = 3
"""A forecast older than this many steps is not used (its worker is overloaded or stuck)."""


@dataclass(frozen=True)
class TickReport:
    """What one tick did (for logs, tests and the bench)."""

    now: float
    wall_s: float
    services: int
    applied: int
    no_data: int


class ControlLoop:
    """Drives every managed service, one tick at a time (see the module docstring)."""

    def __init__(
        self,
        config: Config,
        *,
        source: MetricsSource,
        actuator: Actuator,
        catalog: Catalog,
        clock: Clock,
        forecasts: ForecastPool | None = None,
        telemetry: Telemetry | None = None,
        warmup_s: float | None = None,
        history_s: float = 86_400.0,
    ) -> None:
        self.config = config
        self.source, self.actuator, self.catalog, self.clock = source, actuator, catalog, clock
        self.forecasts = forecasts
        self.telemetry = telemetry or Telemetry()
        self.warmup_s = config.policy.stable_window_s if warmup_s is None else warmup_s
        self.history_s = history_s
        self.states: dict[ServiceKey, ServiceState] = {}
        self.started_at: float | None = None
        self.ticks = 0
        self.ready = False
        """True after the first full tick with every adapter answering (`/readyz`)."""
        self._stopping = asyncio.Event()
        self._catalog_at = -math.inf
        self.on_change: Callable[[ServiceState, DecisionRecord], None] | None = None
        self._reason_counters: dict[str, Any] = {}

    # ------------------------------------------------------------------------ running
    async def run(self) -> None:
        """Tick every `tick_s` until `stop()`; the tick in progress always completes."""
        self.started_at = self.clock.now() if self.started_at is None else self.started_at
        next_at = self.clock.now()
        while not self._stopping.is_set():
            await self.tick()
            next_at = max(next_at + self.config.tick_s, self.clock.now())
            sleeper = asyncio.ensure_future(self.clock.sleep_until(next_at))
            stopper = asyncio.ensure_future(self._stopping.wait())
            await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
            for task in (sleeper, stopper):
                task.cancel()

    def stop(self) -> None:
        self._stopping.set()

    # --------------------------------------------------------------------------- tick
    async def tick(self) -> TickReport:
        started = time.perf_counter()
        now = self.clock.now()
        if self.started_at is None:
            self.started_at = now
        healthy = await self._sync_catalog(now)
        keys = list(self.states)
        snapshot, metrics_ok = await self._snapshot(now, keys)
        statuses, status_ok = await self._statuses(keys)
        changes: dict[ServiceKey, int] = {}
        no_data = 0
        for key in keys:
            state = self.states[key]
            state.status = statuses.get(key, state.status)
            item = snapshot.get(key) or NoData("no series for this service")
            record = self._decide(state, item, now)
            no_data += isinstance(item, NoData)
            if record.applied:
                changes[key] = record.desired
            self._account(state, record, now)
        applied = await self._apply(changes, now)
        self._feed_forecasts(now)
        wall = time.perf_counter() - started
        self.telemetry.tick_seconds.observe(wall)
        self.telemetry.services.set(len(keys))
        self.telemetry.no_data.set(no_data)
        self.ticks += 1
        self.ready = self.ready or (healthy and metrics_ok and status_ok)
        return TickReport(now, wall, len(keys), applied, no_data)

    # ------------------------------------------------------------------ the decision
    def _decide(
        self, state: ServiceState, item: MetricsChunk | NoData, now: float
    ) -> DecisionRecord:
        current = state.status.desired
        if isinstance(item, NoData):
            state.data_status = f"no data: {item.reason}"
            return DecisionRecord(now, current, HOLD, state.data_status, applied=False)
        state.ring.extend(item)
        state.data_status = "ok"
        observation = self._observation(state, item, now)
        if state.policy_state is None:  # first data: start as Knative starts a new decider
            state.policy_state = state.policy.initial_state(now, state.status.ready)
        try:
            decision, state.policy_state = state.policy.decide(observation, state.policy_state)
        except Exception as error:  # a policy bug must not take the loop down
            log.exception("policy failed for %s", state.key)
            return DecisionRecord(now, current, HOLD, f"policy error: {error}", applied=False)
        decision = self._guard(decision, current, now)
        apply = self.config.mode == "live" and not state.paused and decision.desired != current
        return DecisionRecord(now, decision.desired, decision.reason, decision.detail, apply)

    def _guard(self, decision: Decision, current: int, now: float) -> Decision:
        """No scale-down during the warm-up window after a (re)start."""
        assert self.started_at is not None
        if decision.desired < current and now - self.started_at < self.warmup_s:
            detail = (
                f"would scale to {decision.desired} ({decision.reason}); holding {current} until "
                f"{self.warmup_s:.0f}s after start"
            )
            return Decision(current, WARMUP, detail)
        return decision

    def _observation(self, state: ServiceState, chunk: MetricsChunk, now: float) -> Observation:
        window = state.ring.tail(int(math.ceil(state.policy.history_s)))
        forecast, note = self._forecast(state, now)
        status = state.status
        return Observation(
            now=now,
            concurrency=window[0],
            arrivals=window[1],
            queue=window[2],
            ready=status.ready,
            pending=status.pending,
            desired=status.desired,
            poke=chunk.poke,
            forecast=forecast,
            forecast_note=note,
            cold_start_s=status.cold_start_s,
        )

    def _forecast(self, state: ServiceState, now: float):
        forecast = state.forecast
        if forecast is None:
            return None, state.forecast_note
        steps = int((now - state.forecast_at) // forecast.step_s)
        if steps > STALE_FORECAST_STEPS:
            return None, f"forecast stale ({now - state.forecast_at:.0f}s old)"
        return shift_forecast(forecast, steps), ""

    def _account(self, state: ServiceState, record: DecisionRecord, now: float) -> None:
        status = state.status
        state.replicas.append(now, status.ready, status.pending, record.desired)
        if state.record(record) and self.on_change is not None:
            self.on_change(state, record)
        reason = record.reason.partition(":")[0]
        counter = self._reason_counters.get(reason)
        if counter is None:
            counter = self._reason_counters[reason] = self.telemetry.decisions.labels(reason)
        counter.inc()
        if state.gauges is None:  # label lookups cost more than the rest of the accounting
            labels = (state.key.namespace, state.key.name)
            state.gauges = (
                self.telemetry.desired.labels(*labels),
                self.telemetry.ready.labels(*labels),
            )
        state.gauges[0].set(record.desired)
        state.gauges[1].set(status.ready)

    # -------------------------------------------------------------------- adapters
    async def _sync_catalog(self, now: float) -> bool:
        if now - self._catalog_at < 30.0 and self.states:
            return True
        try:
            keys = await self.catalog.services()
        except Exception as error:
            self._adapter_error("catalog", "services", error)
            return False
        self._catalog_at = now
        for key in keys:
            if key not in self.states:
                self.states[key] = await self._new_state(key, now)
        current = set(keys)
        for key in [k for k in self.states if k not in current]:
            del self.states[key]
            self.telemetry.forget(key.namespace, key.name)
            if self.forecasts is not None:
                self.forecasts.forget(str(key))
        return True

    async def _new_state(self, key: ServiceKey, now: float) -> ServiceState:
        settings = self.config.policy_for(key.namespace, key.name)
        policy = Leadtime(settings.leadtime_config())
        ring = SecondsRing(max(DISPLAY_S, int(math.ceil(policy.history_s))))
        state = ServiceState(key, policy, None, ring, paused=settings.paused)
        await self._warm_start(state, now)
        return state

    async def _warm_start(self, state: ServiceState, now: float) -> None:
        """Feed the forecaster the service's recent history, so it forecasts from the first
        minutes after a restart instead of relearning the day."""
        if self.forecasts is None:
            return
        start = math.floor(now - self.history_s)
        try:
            arrivals = await self.source.history(state.key, float(start), math.floor(now))
        except Exception as error:
            self._adapter_error("metrics", "history", error)
            return
        if arrivals.size:
            first = math.floor(now) - int(arrivals.size)
            self.forecasts.feed(str(state.key), arrivals, float(first))
            state.fed_until = math.floor(now)

    async def _snapshot(
        self, now: float, keys: list[ServiceKey]
    ) -> tuple[Mapping[ServiceKey, MetricsChunk | NoData], bool]:
        try:
            return await self.source.snapshot(now), True
        except Exception as error:
            self._adapter_error("metrics", "snapshot", error)
            return {key: NoData(f"metrics source failed: {error}") for key in keys}, False

    async def _statuses(
        self, keys: list[ServiceKey]
    ) -> tuple[Mapping[ServiceKey, ReplicaStatus], bool]:
        try:
            return await self.actuator.status(keys), True
        except Exception as error:
            self._adapter_error("actuator", "status", error)
            return {}, False

    async def _apply(self, changes: dict[ServiceKey, int], now: float) -> int:
        if not changes:
            return 0
        try:
            failures = await self.actuator.apply(changes)
        except Exception as error:
            self._adapter_error("actuator", "apply", error)
            failures = {key: str(error) for key in changes}
        for key, message in failures.items():
            state = self.states.get(key)
            if state is not None and state.last is not None:
                state.last.applied = False
                state.last.detail += f"; apply failed: {message}"
        for key in changes.keys() - failures.keys():
            state = self.states[key]
            state.status = replace(state.status, desired=changes[key])
        return len(changes) - len(failures)

    def _adapter_error(self, adapter: str, operation: str, error: BaseException) -> None:
        self.telemetry.adapter_errors.labels(adapter, operation).inc()
        log.warning("%s %s failed: %s", adapter, operation, error)

    # ------------------------------------------------------------------ forecasting
    def _feed_forecasts(self, now: float) -> None:
        pool = self.forecasts
        if pool is None:
            return
        for state in self.states.values():
            ring_end = state.ring.end
            if ring_end is None:
                continue
            stored = state.ring.tail(state.ring.size).shape[1]
            fresh = stored if state.fed_until is None else min(stored, ring_end - state.fed_until)
            if fresh <= 0:
                continue
            arrivals = state.ring.tail(fresh)[1]
            pool.feed(str(state.key), arrivals.copy(), float(ring_end - arrivals.size))
            state.fed_until = ring_end
        pool.submit(now)

    def forecast_arrived(self, result: ForecastResult) -> None:
        """Store a worker's forecast (called on the loop's thread)."""
        key = _parse_key(result.key)
        state = self.states.get(key)
        if state is None:
            return
        state.forecast, state.forecast_at, state.forecast_note = (
            result.forecast,
            result.at,
            result.note,
        )
        state.forecast_mase, state.forecast_coverage = result.mase, result.coverage
        labels = (key.namespace, key.name)
        if result.fit_s is not None:
            self.telemetry.fit_seconds.observe(result.fit_s)
        if math.isfinite(result.mase):
            self.telemetry.forecast_mase.labels(*labels).set(result.mase)
        if math.isfinite(result.coverage):
            self.telemetry.forecast_coverage.labels(*labels).set(result.coverage)
        if result.forecast is not None:
            lead = state.policy.config.cold_start_prior_s
            step = min(result.forecast.horizon_steps - 1, int(lead // result.forecast.step_s))
            median = float(np.asarray(result.forecast.quantile(0.5))[step])
            self.telemetry.forecast_load.labels(*labels).set(median)


def _parse_key(text: str) -> ServiceKey:
    namespace, _, name = text.partition("/")
    return ServiceKey(namespace, name)
