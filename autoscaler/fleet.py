"""Every service's tick data as arrays: the metrics ring, forecasts, replica history, and the
state of the services the fleet path decides (`policies/leadtime_fleet.py`).

The loop keeps one `Fleet`. Each service has a row. Per tick the metrics of every service go
into the ring in one block, the services in the policy's steady regime are decided together in
a few vector operations, and only the others (new, idle, at zero, poked, without data, or with
their own policy settings) go through the scalar policy one by one. A service moves between
the two paths with its state (`join` / `leave`), and both paths decide alike (property tests).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from autoscaler.fleet_ring import FleetRing
from autoscaler.forecasts import shift_forecast
from autoscaler.policies import kpa_fleet, leadtime_fleet
from autoscaler.policies.capacity import SATURATION_WINDOW_S
from autoscaler.policies.kpa import RPS
from autoscaler.policies.leadtime import Leadtime, LeadtimeState
from autoscaler.ports import MetricsChunk, NoData, ServiceKey
from forecasting.forecast import Forecast

FORECAST_STEPS = 64
"""Forecast steps kept per service (10 minutes at 10 s): more than lead + horizon needs."""
HISTORY_TICKS = 450
"""Ticks of replica history kept for the chart (15 minutes at 2 s)."""
STALE_STEPS = 3


class Fleet:
    """Arrays over service rows (see the module docstring)."""

    def __init__(
        self,
        policy: Leadtime,
        ring_s: int,
        hold_slots: int,
        *,
        hold_limit_s: float,
        capacity: int = 64,
    ) -> None:
        self.policy = policy
        """The shared policy of the services the fleet path can decide."""
        self.ring: FleetRing[ServiceKey] = FleetRing(ring_s, capacity)
        self.hold_slots = hold_slots
        self.hold_limit_s = hold_limit_s
        """Services holding longer than this (slow cold starts) stay on the scalar path."""
        self.in_fleet = np.zeros(capacity, dtype=bool)
        self.state = _empty_state(capacity, hold_slots)
        self.p50 = np.zeros((capacity, FORECAST_STEPS))
        self.upper = np.zeros((capacity, FORECAST_STEPS))
        self.forecast_at = np.full(capacity, -math.inf)
        self.has_forecast = np.zeros(capacity, dtype=bool)
        self.step_s = 10.0
        self.history_time = np.full(HISTORY_TICKS, math.nan)
        self.history = np.zeros((HISTORY_TICKS, capacity, 3), dtype=np.int32)
        self.last_desired = np.full(capacity, -1, dtype=np.int64)
        self.last_code = np.full(capacity, -1, dtype=np.int64)
        """Each service's last recorded decision, to tell a repeat from a change at once."""
        self._ticks = 0

    # ------------------------------------------------------------------------ rows
    def add(self, key: ServiceKey) -> int:
        row = self.ring.add(key)
        while row >= len(self.in_fleet):
            self._grow()
        self.in_fleet[row] = False
        self.has_forecast[row] = False
        self.history[:, row] = 0
        self.last_desired[row] = self.last_code[row] = -1
        return row

    def remove(self, key: ServiceKey) -> None:
        row = self.ring.row(key)
        self.in_fleet[row] = False
        self.has_forecast[row] = False
        self.ring.remove(key)

    def _grow(self) -> None:
        old = len(self.in_fleet)
        self.in_fleet = np.concatenate([self.in_fleet, np.zeros(old, dtype=bool)])
        self.state = _concat_state(self.state, _empty_state(old, self.hold_slots))
        self.p50 = np.vstack([self.p50, np.zeros_like(self.p50)])
        self.upper = np.vstack([self.upper, np.zeros_like(self.upper)])
        self.forecast_at = np.concatenate([self.forecast_at, np.full(old, -math.inf)])
        self.has_forecast = np.concatenate([self.has_forecast, np.zeros(old, dtype=bool)])
        self.history = np.concatenate([self.history, np.zeros_like(self.history)], axis=1)
        self.last_desired = np.concatenate([self.last_desired, np.full(old, -1, np.int64)])
        self.last_code = np.concatenate([self.last_code, np.full(old, -1, np.int64)])

    # --------------------------------------------------------------------- metrics
    def ingest(self, snapshot: Mapping[ServiceKey, MetricsChunk | NoData]) -> np.ndarray:
        """Write every chunk into the ring (the common aligned ones as one block); returns the
        rows that had usable data."""
        ring = self.ring
        fresh = np.zeros(ring.n_rows, dtype=bool)
        groups: dict[tuple[int, int], list[tuple[int, MetricsChunk]]] = {}
        for key, item in snapshot.items():
            if isinstance(item, MetricsChunk) and key in ring:
                row = ring.row(key)
                fresh[row] = True
                groups.setdefault((item.start, item.arrivals.size), []).append((row, item))
        for (start, _), members in sorted(groups.items()):
            rows = np.array([row for row, _ in members], dtype=np.intp)
            block = np.stack(
                [
                    np.array([chunk.concurrency for _, chunk in members]),
                    np.array([chunk.arrivals for _, chunk in members]),
                    np.array([chunk.queue for _, chunk in members]),
                ]
            )
            ring.write(start, block, rows)
        return fresh

    def tail(self, key: ServiceKey, seconds: int) -> np.ndarray:
        return self.ring.tail(key, seconds)

    # ------------------------------------------------------------------- forecasts
    def set_forecast(self, row: int, forecast: Forecast | None, at: float) -> None:
        if forecast is None:
            self.has_forecast[row] = False
            return
        self.step_s = forecast.step_s
        for target, quantile in ((self.p50, 0.5), (self.upper, self.policy.config.quantile)):
            values = np.asarray(forecast.quantile(quantile), dtype=float)[:FORECAST_STEPS]
            target[row, : values.size] = values
            target[row, values.size :] = values[-1] if values.size else 0.0
        self.forecast_at[row] = at
        self.has_forecast[row] = True

    def forecast_rows(self, now: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each row's forecast from `now` on (past steps dropped, the last step repeated), and
        whether it is usable (present and not stale)."""
        n = self.ring.n_rows
        age = now - self.forecast_at[:n]
        offset = np.clip(np.floor(age / self.step_s), 0, FORECAST_STEPS - 1).astype(np.intp)
        usable = self.has_forecast[:n] & (age < (STALE_STEPS + 1) * self.step_s)
        columns = np.minimum(offset[:, None] + np.arange(FORECAST_STEPS), FORECAST_STEPS - 1)
        rows = np.arange(n)[:, None]
        return self.p50[:n][rows, columns], self.upper[:n][rows, columns], usable

    # -------------------------------------------------------------------- deciding
    def decide(
        self, now: float, ready: np.ndarray, cold_start: np.ndarray, rows: np.ndarray
    ) -> leadtime_fleet.FleetLeadtimeDecision:
        """The fleet path for every row; the caller uses the results of `rows` (a mask), the
        only ones whose state this may change."""
        cfg = self.policy.config
        ring = self.ring
        n = ring.n_rows
        metric = 1 if cfg.kpa.metric == RPS else 0
        stable, stable_n = ring.window_sums(cfg.kpa.stable_window)
        panic, panic_n = ring.window_sums(cfg.kpa.panic_window)
        sums, _ = ring.window_sums(int(cfg.service_time_window_s))
        tail = self._tail(SATURATION_WINDOW_S)
        p50, upper, usable = self.forecast_rows(now)
        inputs = leadtime_fleet.FleetInputs(
            now=now,
            ready=ready[:n],
            stable=_mean(stable[metric], stable_n),
            panic=_mean(panic[metric], panic_n),
            arrivals_sum=sums[1],
            concurrency_sum=sums[0],
            queue_sum=sums[2],
            concurrency_tail=tail[0],
            queue_tail=tail[2],
            arrivals_last=tail[1][:, -1],
            cold_start=cold_start[:n],
            p50=p50,
            upper=upper,
            has_forecast=usable,
            step_s=self.step_s,
        )
        result = leadtime_fleet.decide(
            self.policy,
            inputs,
            self._state(n),
            in_place=rows & ~self._holds_too_long(cold_start[:n]),
        )
        result.leaves_regime |= self._holds_too_long(cold_start[:n])
        return result

    def _holds_too_long(self, cold_start: np.ndarray) -> np.ndarray:
        _, hold = leadtime_fleet.lead_and_hold(self.policy.config, cold_start)
        return hold > self.hold_limit_s

    def _tail(self, seconds: int) -> np.ndarray:
        """The newest seconds of every row, (3, n, seconds), zeros before a row's first."""
        ring = self.ring
        n = ring.n_rows
        if ring.end is None:
            return np.zeros((3, n, seconds))
        return ring.recent(seconds).astype(np.float64)

    def _state(self, n: int) -> leadtime_fleet.FleetLeadtimeState:
        s = self.state
        return leadtime_fleet.FleetLeadtimeState(
            s.kpa.take(np.arange(n)),
            s.service_time[:n],
            s.slots[:n],
            s.hold_time[:n],
            s.hold_count[:n],
            s.hold_next[:n],
            s.idle_since[:n],
        )

    def commit(self, result: leadtime_fleet.FleetLeadtimeDecision, rows: np.ndarray) -> None:
        """Keep the new state of the rows the fleet path decided."""
        new, s = result.state, self.state
        s.kpa.panic_time[rows] = new.kpa.panic_time[rows]
        s.kpa.max_panic[rows] = new.kpa.max_panic[rows]
        s.kpa.proxy_since[rows] = new.kpa.proxy_since[rows]
        s.kpa.active_since[rows] = new.kpa.active_since[rows]
        s.service_time[rows] = new.service_time[rows]
        s.slots[rows] = new.slots[rows]
        s.idle_since[rows] = new.idle_since[rows]
        # the hold rings were written in place by `decide` (for rows staying in the regime)

    def join(self, row: int, state: LeadtimeState) -> None:
        """A service enters the fleet path with its scalar state."""
        packed = leadtime_fleet.pack([state], self.hold_slots)
        s = self.state
        s.kpa.panic_time[row] = packed.kpa.panic_time[0]
        s.kpa.max_panic[row] = packed.kpa.max_panic[0]
        s.kpa.proxy_since[row] = packed.kpa.proxy_since[0]
        s.kpa.active_since[row] = packed.kpa.active_since[0]
        s.service_time[row] = packed.service_time[0]
        s.slots[row] = packed.slots[0]
        s.hold_time[row] = packed.hold_time[0]
        s.hold_count[row] = packed.hold_count[0]
        s.hold_next[row] = packed.hold_next[0]
        s.idle_since[row] = packed.idle_since[0]
        self.in_fleet[row] = True

    def leave(self, row: int, idle: Any, now: float, cold_start_s: float | None) -> LeadtimeState:
        """A service goes back to the scalar path: its state as the scalar policy holds it."""
        cfg = self.policy.config
        s = self.state
        slots = float(s.slots[row])
        idle_since = float(s.idle_since[row])
        self.in_fleet[row] = False
        cutoff = now - cfg.hold_s(cfg.lead_time_s(cold_start_s))
        return LeadtimeState(
            kpa=kpa_fleet.unpack(s.kpa, row),
            service_time_s=float(s.service_time[row]),
            held=leadtime_fleet.held(s, row, cutoff),
            idle=idle,
            idle_since=None if math.isnan(idle_since) else idle_since,
            slots=None if math.isnan(slots) else slots,
        )

    def eligible(self, state: LeadtimeState, ready: int, cold_start: float | None) -> bool:
        """Whether a service the scalar path just decided may join the fleet path."""
        cfg = self.policy.config.kpa
        measured = math.nan if cold_start is None else cold_start
        return (
            not self._holds_too_long(np.array([measured]))[0]
            and kpa_fleet.config_supported(cfg)
            and kpa_fleet.state_supported(cfg, state.kpa, ready)
            and len(state.held) <= self.hold_slots
        )

    # --------------------------------------------------------------------- history
    def record(
        self, now: float, ready: np.ndarray, pending: np.ndarray, desired: np.ndarray
    ) -> None:
        slot = self._ticks % HISTORY_TICKS
        n = self.ring.n_rows
        self.history_time[slot] = now
        self.history[slot, :n, 0] = ready[:n]
        self.history[slot, :n, 1] = pending[:n]
        self.history[slot, :n, 2] = desired[:n]
        self._ticks += 1

    def replicas(self, row: int) -> np.ndarray:
        """(ticks, 4): time, ready, pending, desired of one row, oldest first."""
        order = np.argsort(self.history_time)
        known = order[~np.isnan(self.history_time[order])]
        out = np.zeros((known.size, 4))
        out[:, 0] = self.history_time[known]
        out[:, 1:] = self.history[known, row]
        return out


def _mean(sums: np.ndarray, count: np.ndarray) -> np.ndarray:
    return np.where(count > 0, sums / np.maximum(count, 1), np.nan)


def _empty_state(n: int, hold_slots: int) -> leadtime_fleet.FleetLeadtimeState:
    return leadtime_fleet.FleetLeadtimeState(
        kpa_fleet.FleetKpaState(
            np.full(n, math.nan), np.zeros(n, np.int64), np.full(n, math.nan), np.zeros(n)
        ),
        np.ones(n),
        np.full(n, math.nan),
        np.full((n, hold_slots), math.nan),
        np.zeros((n, hold_slots), np.int64),
        np.zeros(n, np.int64),
        np.full(n, math.nan),
    )


def _concat_state(
    a: leadtime_fleet.FleetLeadtimeState, b: leadtime_fleet.FleetLeadtimeState
) -> leadtime_fleet.FleetLeadtimeState:
    return leadtime_fleet.FleetLeadtimeState(
        kpa_fleet.FleetKpaState(
            np.concatenate([a.kpa.panic_time, b.kpa.panic_time]),
            np.concatenate([a.kpa.max_panic, b.kpa.max_panic]),
            np.concatenate([a.kpa.proxy_since, b.kpa.proxy_since]),
            np.concatenate([a.kpa.active_since, b.kpa.active_since]),
        ),
        np.concatenate([a.service_time, b.service_time]),
        np.concatenate([a.slots, b.slots]),
        np.vstack([a.hold_time, b.hold_time]),
        np.vstack([a.hold_count, b.hold_count]),
        np.concatenate([a.hold_next, b.hold_next]),
        np.concatenate([a.idle_since, b.idle_since]),
    )


__all__ = ["Fleet", "shift_forecast"]
