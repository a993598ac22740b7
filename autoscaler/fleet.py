"""Every service's tick data as arrays: the metrics ring, forecasts, replica history, and the
state of the services the fleet path decides (`policies/leadtime_rows.py`).

The loop keeps one `Fleet`. Each service has a row. Per tick the metrics of every service go
into the ring in one block, the services in the policy's steady regime are decided together by
the rule's one implementation, and only the others (new, at zero, poked, without data, or with
their own policy settings) go through `Leadtime.decide`, which calls the same rule with one row.
A service moves between the two paths with its state (`join` / `leave`): a row copied in or out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Generic, Protocol, TypeVar

import numpy as np

from autoscaler.fleet_ring import FleetRing
from autoscaler.forecast_shell import shift_forecast
from autoscaler.policies import keepalive, leadtime_rows
from autoscaler.policies.capacity import SATURATION_WINDOW_S
from autoscaler.policy import Decision
from autoscaler.ports import MetricsChunk, NoData, ServiceKey
from forecasting.forecast import Forecast

FORECAST_STEPS = 64
"""Forecast steps kept per service (10 minutes at 10 s): more than lead + horizon needs."""
HISTORY_TICKS = 450
"""Ticks of replica history kept for the chart (15 minutes at 2 s)."""
STALE_STEPS = 3

StateT = TypeVar("StateT")


class FleetPolicy(Protocol[StateT]):
    """What the fleet path needs of its policy: the rule its `decide` applies to one service,
    for many rows at once (decide many); a service's state as a row and back (join, leave);
    the reasons by code; and how far back and ahead the rows' inputs reach. `Leadtime` is one."""

    @property
    def reasons(self) -> tuple[str, ...]: ...

    @property
    def service_time_window_s(self) -> float: ...

    def rows_reach_s(self, cold_start: np.ndarray) -> float: ...

    def empty_rows(self, capacity: int) -> leadtime_rows.RowState: ...

    def decide_rows(
        self, inputs: leadtime_rows.RowInputs, rows: leadtime_rows.RowState
    ) -> leadtime_rows.RowDecision: ...

    def rows_of(self, state: StateT) -> leadtime_rows.RowState: ...

    def state_of(
        self, rows: leadtime_rows.RowState, idle: keepalive.HistogramState | None
    ) -> StateT: ...


class Fleet(Generic[StateT]):
    """Arrays over service rows (see the module docstring)."""

    def __init__(self, policy: FleetPolicy[StateT], ring_s: int, *, capacity: int = 64) -> None:
        self.policy = policy
        """The shared policy of the services the fleet path can decide."""
        self.ring: FleetRing[ServiceKey] = FleetRing(ring_s, capacity)
        self.in_fleet = np.zeros(capacity, dtype=bool)
        self.state = policy.empty_rows(capacity)
        self.p50 = np.zeros((capacity, FORECAST_STEPS))
        self.p90 = np.zeros((capacity, FORECAST_STEPS))
        self.met = np.full(capacity, math.nan)
        self.judged = np.full(capacity, math.nan)
        """Each row's newest attainment window (NaN: not measured)."""
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
        self.met[row] = self.judged[row] = math.nan
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
        self.state = self.state.followed_by(self.policy.empty_rows(old))
        self.p50 = np.vstack([self.p50, np.zeros_like(self.p50)])
        self.p90 = np.vstack([self.p90, np.zeros_like(self.p90)])
        self.met = np.concatenate([self.met, np.full(old, math.nan)])
        self.judged = np.concatenate([self.judged, np.full(old, math.nan)])
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
                attained = item.attainment
                self.met[row] = math.nan if attained is None else attained.met
                self.judged[row] = math.nan if attained is None else attained.total
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
        for target, quantile in ((self.p50, 0.5), (self.p90, 0.9)):
            values = np.asarray(forecast.quantile(quantile), dtype=float)[:FORECAST_STEPS]
            target[row, : values.size] = values
            target[row, values.size :] = values[-1] if values.size else 0.0
        self.forecast_at[row] = at
        self.has_forecast[row] = True

    def forecast_rows(self, now: float, steps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each row's forecast from `now` on, `steps` long (past steps dropped, the last step
        repeated), and whether it is usable (present and not stale)."""
        n = self.ring.n_rows
        age = now - self.forecast_at[:n]
        offset = np.clip(np.floor(age / self.step_s), 0, FORECAST_STEPS - 1).astype(np.intp)
        usable = self.has_forecast[:n] & (age < (STALE_STEPS + 1) * self.step_s)
        columns = np.minimum(offset[:, None] + np.arange(steps), FORECAST_STEPS - 1)
        rows = np.arange(n)[:, None]
        return self.p50[:n][rows, columns], self.p90[:n][rows, columns], usable

    # -------------------------------------------------------------------- deciding
    def decide(
        self,
        now: float,
        ready: np.ndarray,
        current: np.ndarray,
        cold_start: np.ndarray,
        poke: np.ndarray,
    ) -> leadtime_rows.RowDecision:
        """The rule for every row; the caller keeps the results (and the new state, `commit`)
        of the rows it decides by the fleet path."""
        ring = self.ring
        n = ring.n_rows
        window = int(self.policy.service_time_window_s)
        sums, window_n = ring.window_sums(window)
        recent, recent_n = ring.window_sums(leadtime_rows.REACT_S)
        stable, stable_n = ring.window_sums(leadtime_rows.STABLE_S)
        arrivals = ring.recent(window)[1]
        tail = self._tail(SATURATION_WINDOW_S)
        # the forecast as far as the rule reads it: the longest lead time plus the horizon
        reach = int(math.ceil(self.policy.rows_reach_s(cold_start[:n]) / self.step_s)) + 1
        p50, p90, usable = self.forecast_rows(now, min(reach, FORECAST_STEPS))
        inputs = leadtime_rows.RowInputs(
            now=now,
            ready=ready[:n],
            current=current[:n],
            arrivals_sum=sums[1],
            concurrency_sum=sums[0],
            queue_sum=sums[2],
            # in the ring's float32, as its sums (`FleetRing.window_sums`): peakedness only
            arrivals_squares=np.einsum("ij,ij->i", arrivals, arrivals).astype(np.float64),
            window_seconds=window_n,
            recent_arrivals=recent[1],
            recent_seconds=recent_n,
            stable_arrivals=stable[1],
            stable_seconds=stable_n,
            stable_in_service=np.maximum(stable[0] - stable[2], 0.0),
            concurrency_tail=tail[0],
            queue_tail=tail[2],
            arrivals_last=tail[1][:, -1],
            poke=poke[:n],
            cold_start=cold_start[:n],
            p50=p50,
            p90=p90,
            has_forecast=usable,
            step_s=self.step_s,
            met=self.met[:n],
            judged=self.judged[:n],
        )
        return self.policy.decide_rows(inputs, self.state.head(n))

    def _tail(self, seconds: int) -> np.ndarray:
        """The newest seconds of every row, (3, n, seconds), zeros before a row's first."""
        ring = self.ring
        n = ring.n_rows
        if ring.end is None:
            return np.zeros((3, n, seconds))
        return ring.recent(seconds).astype(np.float64)

    def commit(self, result: leadtime_rows.RowDecision, rows: np.ndarray) -> None:
        """Keep the new state of the rows the fleet path decided."""
        self.state.put(rows, result.state, source=rows)

    def join(self, row: int, state: StateT) -> None:
        """A service enters the fleet path with its state (one row)."""
        self.state.put(np.array([row]), self.policy.rows_of(state))
        self.in_fleet[row] = True

    def leave(self, row: int, idle: keepalive.HistogramState | None) -> StateT:
        """A service goes back to its policy's `decide`: its row as that policy's state."""
        self.in_fleet[row] = False
        return self.policy.state_of(self.state.take(np.array([row])), idle)

    def eligible(self, decision: Decision, ready: int) -> bool:
        """Whether a service its policy's `decide` just decided may join the fleet path: it has
        ready replicas and the rule itself set its count. One that keep-alive or pre-warm holds
        (the rule asked for none) would leave again at once; an idle service whose rule still
        asks for replicas is decided the same on either path (keep-alive acts only at zero)."""
        return ready > 0 and decision.reason.split(":")[0] in self.policy.reasons

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


__all__ = ["Fleet", "shift_forecast"]
