"""The KPA for a whole fleet at once: Knative's steady-state rules on numpy arrays.

Why: a tick over 10,000 services cannot afford ~35 µs of Python per service for the KPA alone
(`load_tests/bench_loop.py`). Most services, most of the time, are in the KPA's steady regime —
Active, initialised, with metrics, wanting at least one replica — where `Kpa.decide` reduces
to the decider's arithmetic (stable and panic windows, rate limits, panic memory), the min/max
bounds and the SKS mode from the excess burst capacity. This module computes exactly that for
every such service in a handful of vector operations. Services outside the regime (activating,
at or going to zero, poked, with a scale-down delay or an activation scale configured) stay on
the scalar `Kpa`; `pack` / `unpack` move a service's state between the two, and the property
tests check that both paths take the same decision and reach the same state.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from autoscaler.policies.kpa import ACTIVE, PROXY, SERVE, KpaConfig, KpaState

STABLE, PANIC, BOUNDS = 0, 1, 2
REASONS = ("stable", "panic", "bounds")
"""Reason codes of the fleet path, as the scalar KPA names them."""


def config_supported(cfg: KpaConfig) -> bool:
    """Whether this configuration's steady regime is the one implemented here."""
    return cfg.activation_scale == 1 and cfg.scale_down_delay_s == 0


def state_supported(cfg: KpaConfig, state: KpaState, ready: int) -> bool:
    """Whether a service with this state and ready count is in the steady regime (before its
    metrics are seen: `decide` also reports rows whose result would leave it)."""
    return (
        state.active == ACTIVE and state.scale_target_initialized and ready >= max(cfg.min_scale, 1)
    )


@dataclass
class FleetKpaState:
    """The decider's memory and the SKS status of n services, one entry per row."""

    panic_time: np.ndarray
    """When each service last crossed the panic threshold; NaN when not panicking."""
    max_panic: np.ndarray
    proxy_since: np.ndarray
    """Since when the activator is in the path (SKS Proxy); NaN in Serve."""
    active_since: np.ndarray

    def take(self, rows: np.ndarray) -> FleetKpaState:
        return FleetKpaState(
            self.panic_time[rows],
            self.max_panic[rows],
            self.proxy_since[rows],
            self.active_since[rows],
        )


def pack(states: Sequence[KpaState]) -> FleetKpaState:
    """Steady-regime scalar states → arrays (each must satisfy `state_supported`)."""
    return FleetKpaState(
        np.array([math.nan if s.panic_time is None else s.panic_time for s in states]),
        np.array([s.max_panic_pods for s in states], dtype=np.int64),
        np.array([math.nan if s.proxy_since is None else s.proxy_since for s in states]),
        np.array([s.active_since for s in states], dtype=float),
    )


def unpack(fleet: FleetKpaState, row: int) -> KpaState:
    """Row → the scalar state the KPA would hold (for the scalar path and for the API)."""
    panic_time = float(fleet.panic_time[row])
    proxy_since = float(fleet.proxy_since[row])
    return KpaState(
        active=ACTIVE,
        active_since=float(fleet.active_since[row]),
        scale_target_initialized=True,
        sks_mode=SERVE if math.isnan(proxy_since) else PROXY,
        proxy_since=None if math.isnan(proxy_since) else proxy_since,
        panic_time=None if math.isnan(panic_time) else panic_time,
        max_panic_pods=int(fleet.max_panic[row]),
    )


@dataclass
class FleetDecision:
    """The fleet path's result for n services."""

    desired: np.ndarray
    reason: np.ndarray
    """Codes into REASONS."""
    leaves_regime: np.ndarray
    """Rows whose result is not a steady-regime one (bounded to 0, or no data): they must be
    decided again by the scalar KPA, from their state before this tick."""
    state: FleetKpaState
    stable: np.ndarray
    panic: np.ndarray
    dspc: np.ndarray
    dppc: np.ndarray


def decide(
    cfg: KpaConfig,
    stable: np.ndarray,
    panic: np.ndarray,
    ready: np.ndarray,
    now: float,
    state: FleetKpaState,
) -> FleetDecision:
    """`Kpa.decide` for n services in the steady regime, from their stable and panic window
    means of the KPA's metric (NaN: no data). See `kpa._decider_scale`, `_scale`, `_sks_mode`
    and `_compute_active_condition` for the rules, which this follows line for line."""
    target = cfg.target_value
    ready_f = np.maximum(1, ready).astype(float)
    max_up = np.ceil(cfg.max_scale_up_rate * ready_f)
    max_down = np.floor(ready_f / cfg.max_scale_down_rate)
    no_data = np.isnan(stable) | np.isnan(panic)
    dspc = np.ceil(np.where(no_data, 0.0, stable) / target)
    dppc = np.ceil(np.where(no_data, 0.0, panic) / target)
    want_stable = np.minimum(np.maximum(dspc, max_down), max_up)
    want_panic = np.minimum(np.maximum(dppc, max_down), max_up)
    over = dppc / ready_f >= cfg.panic_threshold
    panic_time, max_panic = _panic_memory(cfg, state, now, over)
    panicking = ~np.isnan(panic_time)
    max_panic = np.where(
        panicking, np.maximum(max_panic, np.maximum(want_stable, want_panic)), max_panic
    ).astype(np.int64)
    decided = np.where(panicking, max_panic, want_stable).astype(np.int64)
    bounded = np.maximum(decided, cfg.min_scale)
    if cfg.max_scale:
        bounded = np.minimum(bounded, cfg.max_scale)
    reason = np.where(bounded != decided, BOUNDS, np.where(panicking, PANIC, STABLE))
    ebc = _excess_burst_capacity(cfg, ready, np.where(no_data, 0.0, panic))
    proxy_since = np.where(
        ebc < 0, np.where(np.isnan(state.proxy_since), now, state.proxy_since), np.nan
    )
    new_state = FleetKpaState(panic_time, max_panic, proxy_since, state.active_since.copy())
    return FleetDecision(
        bounded, reason, no_data | (bounded <= 0), new_state, stable, panic, dspc, dppc
    )


def _panic_memory(
    cfg: KpaConfig, state: FleetKpaState, now: float, over: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Enter or extend panic when over the threshold; leave it one stable window after the
    last over-threshold tick, forgetting the panic maximum."""
    expired = ~np.isnan(state.panic_time) & (state.panic_time + cfg.stable_window < now) & ~over
    panic_time = np.where(over, now, np.where(expired, np.nan, state.panic_time))
    max_panic = np.where(expired, 0, state.max_panic)
    return panic_time, max_panic


def _excess_burst_capacity(cfg: KpaConfig, ready: np.ndarray, panic: np.ndarray) -> np.ndarray:
    tbc = cfg.target_burst_capacity
    if tbc == 0:
        return np.zeros(ready.shape)
    if tbc < 0:
        return np.full(ready.shape, -1.0)
    return np.floor(ready * cfg.total_value - tbc - panic)


def detail(decision: FleetDecision, cfg: KpaConfig, row: int, ready: int) -> str:
    """The scalar KPA's detail text for one row (built only for decisions that are shown)."""
    text = (
        f"stable {decision.stable[row]:.2f} / target {cfg.target_value:g} -> "
        f"{int(decision.dspc[row])}, panic {decision.panic[row]:.2f} -> "
        f"{int(decision.dppc[row])}, ready {ready}"
    )
    panic_time = decision.state.panic_time[row]
    if not math.isnan(panic_time):
        text += f", panicking since {panic_time:g}"
    return text
