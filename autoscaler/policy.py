"""The policy contract: what a scaling policy sees, what it returns, and the shape it has.

A policy is a pure function of plain data (docs/architecture.md §3): `decide(observation, state)`
returns a `Decision` and the policy's next state. It does no I/O and reads no clock, so the very
same policy runs in the simulator, in tests and live. Memory that a policy needs between ticks
(panic mode, stabilisation windows) lives in its explicit, immutable state, as Ray Serve's
`policy_state` does, instead of in hidden attributes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from autoscaler.slo import Attainment
from forecasting.forecast import Forecast


@dataclass(frozen=True, slots=True)
class Observation:
    """What a policy sees about one service at one tick.

    The per-second series end at the last whole second that the metrics pipeline has delivered
    (`now - metrics delay`, rounded down); element `-1` is the most recent second, element 0 the
    oldest one kept. They hold at most `Policy.history_s` seconds, fewer early in a run.
    Replica counts come from the API server, which has no metrics delay.
    """

    now: float
    """Seconds since the start of the run (simulator) or the Unix epoch (live)."""
    concurrency: np.ndarray
    """Per-second time-averaged number of requests in the system (queued + in service),
    as Knative's queue-proxy and activator report it together."""
    arrivals: np.ndarray
    """Requests that arrived in each second (the request rate at 1 s resolution)."""
    queue: np.ndarray
    """Per-second time-averaged number of requests waiting for a free replica slot."""
    ready: int
    """Replicas that are ready and not draining."""
    pending: int
    """Replicas requested but not yet ready (waiting for a GPU, or in their cold start)."""
    desired: int
    """The replica count last applied (ready + pending), i.e. the scale target's spec."""
    poke: bool = False
    """True when this extra evaluation was triggered by a request reaching a service at zero
    (Knative's activator 'poke'); the request itself is not yet in the series."""
    forecast: Forecast | None = None
    """Quantile forecast of the arrival rate (requests/s) for the steps after the last visible
    second, when the shell runs a forecaster for this service; None otherwise."""
    forecast_note: str = ""
    """Why `forecast` is None (too little history, live quality bad): goes into reasons."""
    cold_start_s: float | None = None
    """Measured cold start (requested → ready) of this service's recent replicas, if any."""
    attainment: Attainment | None = None
    """Requests within the service's SLO over a recent sliding window, when measured."""


@dataclass(frozen=True, slots=True)
class Decision:
    """A desired replica count and the machine-readable reason for it."""

    desired: int
    reason: str
    detail: str = ""

    def __post_init__(self) -> None:
        if self.desired < 0:
            raise ValueError(f"desired replicas must be >= 0, got {self.desired}")


class Policy(Protocol):
    """A scaling policy. Implementations are small frozen dataclasses holding configuration."""

    @property
    def name(self) -> str:
        """Short name used in tables (`kpa`, `hpa`, `static:4`, `oracle`, ...)."""
        ...

    @property
    def tick_s(self) -> float:
        """How often the policy is evaluated (Knative's KPA: 2 s; Kubernetes' HPA: 15 s)."""
        ...

    @property
    def history_s(self) -> float:
        """How many seconds of per-second history the policy reads."""
        ...

    @property
    def pokeable(self) -> bool:
        """Whether a request reaching a service at zero triggers an immediate evaluation."""
        ...

    def initial_replicas(self) -> int:
        """Replicas that are already ready when a run starts (the service was deployed warm)."""
        ...

    def initial_state(self, now: float, ready: int) -> Any:
        """The policy's state before its first decision."""
        ...

    def decide(self, observation: Observation, state: Any) -> tuple[Decision, Any]:
        """Return the decision for this tick and the policy's next state. Pure."""
        ...


@runtime_checkable
class ReadsForecasts(Protocol):
    """A policy that reads the forecast: whoever drives it runs a forecaster for it, far enough
    ahead for its reach (the simulator's `shell_for`)."""

    @property
    def forecast_reach_s(self) -> float:
        """How far past `now`, beyond a cold start, the policy reads the forecast."""
        ...


def window_mean(series: np.ndarray, seconds: int) -> float | None:
    """Average of the last `seconds` one-second buckets, or None when there is no data yet.

    As Knative's `WindowAverage`: the divisor is the number of buckets observed, capped at the
    window length, so early in a run the average is over what has been seen, not diluted by
    seconds before the first sample.
    """
    if seconds <= 0 or series.size == 0:
        return None
    tail = series[-seconds:]
    return float(tail.sum()) / tail.size
