"""The control loop: one tick = read every service's metrics, decide, apply (docs/architecture.md
§2 follows one tick through).

Each tick: one `MetricsSource.snapshot` for all services, written into one fleet-wide ring
(`fleet.py`); the services in the policy's steady regime decided together on arrays
(`policies/leadtime_rows.py`), the others one by one by `Leadtime.decide` (the same rule, one
row), with the forecast
each service's worker last produced; and `Actuator.apply` for the decisions that change a
replica count. Forecasting runs in worker processes (`forecast_workers.py`); a tick hands them
the new seconds and never waits for them.

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
import gc
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from autoscaler.config import Config, PolicyConfig
from autoscaler.fleet import Fleet
from autoscaler.forecast_shell import shift_forecast
from autoscaler.forecast_workers import ForecastPool, ForecastResult, ShellSettings, to_loop
from autoscaler.policies import keepalive, leadtime_rows
from autoscaler.policies.leadtime import Leadtime, detail
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
from autoscaler.service_state import DISPLAY_S, DecisionRecord, ServiceState
from autoscaler.telemetry import Telemetry
from forecasting.forecast import Forecast

WARM_START_BUDGET_S = 60.0
"""Longest a service's history pull may take; past it the service starts without history."""
WARM_STARTS_AT_ONCE = 4
"""History pulls running at once, so new services share Prometheus with the ticks' reads."""
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
        fleet_path: bool = True,
        policy_settings: Callable[[ServiceKey], PolicyConfig] | None = None,
        catalog_every_s: float = 30.0,
    ) -> None:
        self.config = config
        self.source, self.actuator, self.catalog, self.clock = source, actuator, catalog, clock
        self.forecasts = forecasts
        self.telemetry = telemetry or Telemetry()
        self.warmup_s = config.policy.stable_window_s if warmup_s is None else warmup_s
        self.history_s = history_s
        self.fleet_path = fleet_path
        """Decide steady services together on arrays (off: every service by the scalar
        policy, the reference the fleet path is tested against)."""
        self.policy_settings = policy_settings or (
            lambda key: config.policy_for(key.namespace, key.name)
        )
        """Each service's policy settings: the config's, or (Knative) its PA's annotations over
        them; asked again at every catalog sync, so an edited annotation takes effect."""
        self.catalog_every_s = catalog_every_s
        """How often the catalog is listed again (services added and removed)."""
        self.states: dict[ServiceKey, ServiceState] = {}
        self.started_at: float | None = None
        self.ticks = 0
        self.ready = False
        """True after the first full tick with every adapter answering (`/readyz`)."""
        self._stopping = asyncio.Event()
        self._warm_starts: dict[ServiceKey, asyncio.Task[None]] = {}
        self._warm_gate = asyncio.Semaphore(WARM_STARTS_AT_ONCE)
        self._catalog_at = -math.inf
        self.on_change: Callable[[ServiceState, DecisionRecord], None] | None = None
        self._reason_counters: dict[str, Any] = {}
        self.shared = Leadtime(config.policy.leadtime_config())
        """The policy of every service without settings of its own: the fleet path's."""
        self.fleet = Fleet(self.shared, max(DISPLAY_S, int(math.ceil(self.shared.history_s))))
        self._reason_codes = {reason: code for code, reason in enumerate(self.shared.reasons)}
        """The fleet rule's code of each reason, to compare a decision with the last at once."""
        self.telemetry.watch(self)

    # ------------------------------------------------------------------------ running
    async def run(self) -> None:
        """Tick every `tick_s` until `stop()`; the tick in progress always completes."""
        self.started_at = self.clock.now() if self.started_at is None else self.started_at
        next_at = self.clock.now()
        gc.disable()  # collections run between ticks instead (`housekeeping`)
        try:
            await self._run(next_at)
        finally:
            gc.enable()
            await self.cancel_warm_starts()

    async def cancel_warm_starts(self) -> None:
        """Stop the history pulls still running (the loop is stopping)."""
        pulls = list(self._warm_starts.values())
        for pull in pulls:
            pull.cancel()
        await asyncio.gather(*pulls, return_exceptions=True)
        self._warm_starts.clear()

    async def _run(self, next_at: float) -> None:
        while not self._stopping.is_set():
            await self.tick()
            self.housekeeping()
            next_at = max(next_at + self.config.tick_s, self.clock.now())
            sleeper = asyncio.ensure_future(self.clock.sleep_until(next_at))
            stopper = asyncio.ensure_future(self._stopping.wait())
            await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
            for task in (sleeper, stopper):
                task.cancel()

    def stop(self) -> None:
        self._stopping.set()

    def housekeeping(self) -> None:
        """Garbage collection in the time between ticks, never during one: with thousands of
        services a full collection walks their state for ~100 ms, a pause the tick would
        otherwise take at random. Young objects every tick, everything every 30 ticks."""
        gc.collect(2 if self.ticks % 30 == 0 else 1)

    # --------------------------------------------------------------------------- tick
    async def tick(self) -> TickReport:
        started = time.perf_counter()
        now = self.clock.now()
        if self.started_at is None:
            self.started_at = now
        healthy = await self._sync_catalog(now)
        if self._warm_starts:
            await asyncio.sleep(0)  # let new history pulls start (a quick one ends here)
        keys = list(self.states)
        snapshot, metrics_ok = await self._snapshot(now, keys)
        statuses, status_ok = await self._statuses(keys)
        fresh = self.fleet.ingest(snapshot) if metrics_ok else np.zeros(0, dtype=bool)
        ordered = [self.states[key] for key in keys]
        for key, item in snapshot.items():
            if isinstance(item, MetricsChunk) and key in self.states:
                self.states[key].attainment = item.attainment
                if item.extras:
                    self.states[key].signals.update(item.extras)
        for state in ordered:
            state.status = statuses.get(state.key, state.status)
        fast, result = self._decide_fleet(ordered, snapshot, fresh, now)
        routine = self._routine(fast, result, ordered, now)
        changes: dict[ServiceKey, int] = {}
        no_data = 0
        for state in ordered:
            if fast is not None and result is not None and fast[state.row]:
                if routine[state.row]:
                    continue
                record = self._fleet_record(state, result, now)
            else:
                item = snapshot.get(state.key) or NoData("no series for this service")
                no_data += isinstance(item, NoData)
                record = self._decide(state, item, now)
            if record.applied:
                changes[state.key] = record.desired
            self._account(state, record)
        self._record_history(ordered, now)
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
        state.data_status = "ok"
        observation = self._observation(state, item, now)
        fleet = self.fleet
        if fleet.in_fleet[state.row]:  # leaving the fleet path: its state as the policy holds it
            state.policy_state = fleet.leave(state.row, state.held_state().idle)
        if state.policy_state is None:  # first data: start as Knative starts a new decider
            state.policy_state = state.policy.initial_state(now, state.status.ready)
        try:
            decision, state.policy_state = state.policy.decide(observation, state.policy_state)
        except Exception as error:  # a policy bug must not take the loop down
            log.exception("policy failed for %s", state.key)
            return DecisionRecord(now, current, HOLD, f"policy error: {error}", applied=False)
        if self.fleet_path and state.shares_policy and fleet.eligible(decision, state.status.ready):
            fleet.join(state.row, state.policy_state)
        decision = self._guard(decision, current, now)
        apply = self.config.mode == "live" and not state.paused and decision.desired != current
        return DecisionRecord(now, decision.desired, decision.reason, decision.detail, apply)

    def _decide_fleet(
        self,
        ordered: list[ServiceState],
        snapshot: Mapping[ServiceKey, MetricsChunk | NoData],
        fresh: np.ndarray,
        now: float,
    ) -> tuple[np.ndarray | None, leadtime_rows.RowDecision | None]:
        """Decide every service in the steady regime at once; returns the rows it decided."""
        fleet = self.fleet
        n = fleet.ring.n_rows
        candidates = fleet.in_fleet[:n].copy()
        candidates[fresh.size :] = False
        candidates[: fresh.size] &= fresh
        if not candidates.any():
            return None, None
        rows = np.array([state.row for state in ordered], dtype=np.intp)
        ready = np.zeros(n, dtype=np.int64)
        current = np.zeros(n, dtype=np.int64)
        cold = np.full(n, math.nan)
        poke = np.zeros(n, dtype=bool)
        ready[rows] = [state.status.ready for state in ordered]
        current[rows] = [state.status.desired for state in ordered]
        cold[rows] = [
            math.nan if state.status.cold_start_s is None else state.status.cold_start_s
            for state in ordered
        ]
        for key, item in snapshot.items():  # a poke goes through `Leadtime.decide`
            if isinstance(item, MetricsChunk) and item.poke and key in self.states:
                poke[self.states[key].row] = True
        candidates &= ~poke
        result = fleet.decide(now, ready, current, cold, poke)
        fast = candidates & ~result.leaves_regime
        fleet.commit(result, np.flatnonzero(fast))
        closed = np.flatnonzero(fast & result.closed_idle)
        if closed.size:  # an idle period ended: into that service's keep-alive histogram
            by_row = {state.row: state for state in ordered}
            for row in closed:
                state = by_row[int(row)]
                held = state.held_state()
                if held.idle is not None:  # as `Leadtime.decide` does
                    idle = keepalive.observe_idle(held.idle, float(result.idle_length[row]))
                    state.policy_state = replace(held, idle=idle)
        return fast, result

    def _routine(
        self,
        fast: np.ndarray | None,
        result: leadtime_rows.RowDecision | None,
        ordered: list[ServiceState],
        now: float,
    ) -> np.ndarray:
        """Fleet rows whose decision repeats the last one and matches the current scale:
        nothing to record or apply, only to count (most of them, most of the time)."""
        fleet = self.fleet
        n = fleet.ring.n_rows
        if fast is None or result is None:
            return np.zeros(n, dtype=bool)
        current = np.zeros(n, dtype=np.int64)
        current[[state.row for state in ordered]] = [state.status.desired for state in ordered]
        paused = np.zeros(n, dtype=bool)
        paused[[state.row for state in ordered if state.paused]] = True
        assert self.started_at is not None
        lowering = (result.desired < current) & (now - self.started_at < self.warmup_s)
        routine = (
            fast
            & ~lowering
            & ((result.desired == current) | paused | (self.config.mode != "live"))
            & (result.desired == fleet.last_desired[:n])
            & (result.reason == fleet.last_code[:n])
        )
        reasons = self.shared.reasons
        counts = np.bincount(result.reason[routine], minlength=len(reasons))
        for code, count in enumerate(counts):
            if count:
                self._count_reason(reasons[code], int(count))
        decided: np.ndarray = routine
        return decided

    def _fleet_record(
        self, state: ServiceState, result: leadtime_rows.RowDecision, now: float
    ) -> DecisionRecord:
        """The fleet path's decision for one service, guarded and described."""
        state.data_status = "ok"
        row = state.row
        code = int(result.reason[row])
        reason = self.shared.reasons[code]
        if code == leadtime_rows.FALLBACK:  # the same words as the scalar path (`_forecast`)
            note = self._forecast(state, now)[1] if state.forecast is not None else ""
            reason = f"fallback:{note or state.forecast_note or 'no forecast'}"
        current = state.status.desired
        decision = self._guard(Decision(int(result.desired[row]), reason, ""), current, now)
        apply = self.config.mode == "live" and not state.paused and decision.desired != current
        last = state.last
        if last is not None and (last.desired, last.reason) == (decision.desired, decision.reason):
            return DecisionRecord(now, decision.desired, decision.reason, last.detail, apply)
        line = decision.detail or detail(result, row)
        return DecisionRecord(now, decision.desired, decision.reason, line, apply)

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
        window = self.fleet.tail(state.key, int(math.ceil(state.policy.history_s)))
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
            attainment=chunk.attainment,
        )

    def _forecast(self, state: ServiceState, now: float) -> tuple[Forecast | None, str]:
        forecast = state.forecast
        if forecast is None:
            return None, state.forecast_note
        steps = int((now - state.forecast_at) // forecast.step_s)
        if steps > STALE_FORECAST_STEPS:
            return None, f"forecast stale ({now - state.forecast_at:.0f}s old)"
        return shift_forecast(forecast, steps), ""

    def _record_history(self, ordered: list[ServiceState], now: float) -> None:
        """Ready, pending and desired of every service this tick, for the chart."""
        n = self.fleet.ring.n_rows
        ready, pending, desired = (np.zeros(n, dtype=np.int64) for _ in range(3))
        rows = [state.row for state in ordered]
        ready[rows] = [state.status.ready for state in ordered]
        pending[rows] = [state.status.pending for state in ordered]
        desired[rows] = [
            state.last.desired if state.last is not None else state.status.desired
            for state in ordered
        ]
        self.fleet.record(now, ready, pending, desired)

    def _account(self, state: ServiceState, record: DecisionRecord) -> None:
        if state.record(record) and self.on_change is not None:
            self.on_change(state, record)
        reason = record.reason.partition(":")[0]
        self._count_reason(reason, 1)
        self.fleet.last_desired[state.row] = record.desired
        self.fleet.last_code[state.row] = self._reason_codes.get(reason, -1)

    def _count_reason(self, reason: str, count: int) -> None:
        counter = self._reason_counters.get(reason)
        if counter is None:
            counter = self._reason_counters[reason] = self.telemetry.decisions.labels(reason)
        counter.inc(count)

    # -------------------------------------------------------------------- adapters
    async def _sync_catalog(self, now: float) -> bool:
        if now - self._catalog_at < self.catalog_every_s and self.states:
            return True
        try:
            keys = await self.catalog.services()
        except Exception as error:
            self._adapter_error("catalog", "services", error)
            return False
        self._catalog_at = now
        added = [key for key in keys if key not in self.states]
        for state in self.states.values():
            self._refresh_policy(state, now)
        for key in added:
            self.states[key] = self._new_state(key, now)
        if added:
            # The services' long-lived state would otherwise be walked by every full garbage
            # collection: ~200 ms per tick at 10,000 services. Freezing moves what exists now
            # out of the collector's sight (a process-wide effect; Leadtime owns its process).
            gc.collect()
            gc.freeze()
        current = set(keys)
        for key in [k for k in self.states if k not in current]:
            pull = self._warm_starts.pop(key, None)
            if pull is not None:
                pull.cancel()
            del self.states[key]
            self.fleet.remove(key)
            self.telemetry.forget(key.namespace, key.name)
            if self.forecasts is not None:
                self.forecasts.forget(str(key))
        return True

    def _refresh_policy(self, state: ServiceState, now: float) -> None:
        """Rebuild a service's policy when its settings changed (a new decider, as Knative
        builds one when a PA's annotations change)."""
        settings = self.policy_settings(state.key)
        if settings is state.settings or settings == state.settings:
            return
        config = settings.leadtime_config()
        previous, state.settings = state.settings, settings
        state.slo_target, state.slo_ttft_s = settings.slo_target, settings.slo_ttft_s
        if self.fleet.in_fleet[state.row]:
            self.fleet.leave(state.row, state.held_state().idle)
        state.policy, state.policy_state = Leadtime(config), None
        if previous is None or settings.paused != previous.paused:  # an API pause outlives edits
            state.paused = settings.paused
        state.shares_policy = config == self.shared.config

    def _new_state(self, key: ServiceKey, now: float) -> ServiceState:
        settings = self.policy_settings(key)
        policy = Leadtime(settings.leadtime_config())
        row = self.fleet.add(key)
        shares = policy.config == self.shared.config
        state = ServiceState(
            key, policy, None, row, paused=settings.paused, settings=settings, shares_policy=shares
        )
        state.slo_target, state.slo_ttft_s = settings.slo_target, settings.slo_ttft_s
        if self.forecasts is not None:
            state.warming = True
            pull = asyncio.ensure_future(self._warm_start(state, now))
            self._warm_starts[key] = pull
            pull.add_done_callback(lambda _: self._warm_starts.pop(key, None))
        return state

    async def _warm_start(self, state: ServiceState, now: float) -> None:
        """Feed the forecaster the service's recent history, so it forecasts from the first
        minutes after a restart instead of relearning the day. It runs beside the ticks, a few
        services at a time, each within `WARM_START_BUDGET_S`: a thousand new services (or a
        slow Prometheus) never delay a tick. Until it ends, the service's new seconds wait in
        the ring; after it, they follow the history."""
        start, end = math.floor(now - self.history_s), math.floor(now)
        try:
            async with self._warm_gate, asyncio.timeout(WARM_START_BUDGET_S):
                arrivals = await self.source.history(state.key, float(start), float(end))
        except TimeoutError:
            late = TimeoutError(f"{state.key}: took over {WARM_START_BUDGET_S:g}s")
            self._adapter_error("metrics", "history", late)
            arrivals = np.zeros(0)
        except Exception as error:
            self._adapter_error("metrics", "history", error)
            arrivals = np.zeros(0)
        finally:
            state.warming = False
        if arrivals.size and self.forecasts is not None and state.fed_until is None:
            self.forecasts.seed(str(state.key), arrivals, float(end))
            state.fed_until = end

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
                state.amend(applied=False, detail=f"{state.last.detail}; apply failed: {message}")
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
            ring_end = self.fleet.ring.end
            if ring_end is None or state.warming:
                continue
            stored = int(self.fleet.ring.observed(np.array([state.row]))[0])
            fresh = stored if state.fed_until is None else min(stored, ring_end - state.fed_until)
            if fresh <= 0:
                continue
            if state.fed_until is not None and ring_end - state.fed_until > fresh:
                # the ring no longer holds every second since the history: missing, not zero
                gap = ring_end - state.fed_until - fresh
                pool.feed(str(state.key), np.full(gap, np.nan), float(state.fed_until))
            arrivals = self.fleet.tail(state.key, fresh)[1]
            pool.feed(str(state.key), arrivals.copy(), float(ring_end - arrivals.size))
            state.fed_until = ring_end
        pool.submit(now)

    def forecast_arrived(self, result: ForecastResult) -> None:
        """Store a worker's forecast (called on the loop's thread)."""
        key = _parse_key(result.key)
        state = self.states.get(key)
        if state is None:
            return
        if result.forecast is not None and not _finite(result.forecast):  # NaN is no forecast
            note = f"forecast not finite (model {result.forecast.model or 'unnamed'})"
            result = replace(result, forecast=None, note=note)
        state.forecast, state.forecast_at, state.forecast_note = (
            result.forecast,
            result.at,
            result.note,
        )
        state.forecast_mase, state.forecast_coverage = result.mase, result.coverage
        self.fleet.set_forecast(state.row, result.forecast, result.at)
        labels = (key.namespace, key.name)
        if result.fit_s is not None:
            self.telemetry.fit_seconds.observe(result.fit_s)
        if math.isfinite(result.mase):
            self.telemetry.forecast_mase.labels(*labels).set(result.mase)
        if math.isfinite(result.coverage):
            self.telemetry.forecast_coverage.labels(*labels).set(result.coverage)
        load = state.forecast_load(result.at)
        if load is not None:
            self.telemetry.forecast_load.labels(*labels).set(load)


def _finite(forecast: Forecast) -> bool:
    values = [forecast.mean, *forecast.quantiles.values()]
    return all(bool(np.isfinite(np.asarray(v, dtype=float)).all()) for v in values)


def _parse_key(text: str) -> ServiceKey:
    namespace, _, name = text.partition("/")
    return ServiceKey(namespace, name)


def loop_with_workers(
    config: Config,
    settings: ShellSettings,
    *,
    source: MetricsSource,
    actuator: Actuator,
    catalog: Catalog,
    clock: Clock,
    warmup_s: float | None = None,
    policy_settings: Callable[[ServiceKey], PolicyConfig] | None = None,
    catalog_every_s: float = 30.0,
) -> tuple[ControlLoop, ForecastPool]:
    """A control loop and the `forecasting.workers` processes that forecast for it, their
    results handed to the loop on its own event loop (the running one) as they arrive. Close
    the pool when the loop has stopped."""
    aio = asyncio.get_running_loop()
    box: list[ControlLoop] = []
    pool = ForecastPool(
        settings,
        config.forecasting.workers,
        to_loop(aio, lambda result: box[0].forecast_arrived(result)),
    )
    loop = ControlLoop(
        config,
        source=source,
        actuator=actuator,
        catalog=catalog,
        clock=clock,
        forecasts=pool,
        warmup_s=warmup_s,
        policy_settings=policy_settings,
        catalog_every_s=catalog_every_s,
    )
    box.append(loop)
    return loop, pool
