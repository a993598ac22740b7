"""What the loop remembers about one service between ticks, besides its row of the fleet-wide
arrays (`fleet.py`: metrics, forecasts, replica history): its policy and state, the decisions
shown by the API, its forecast as the workers delivered it.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from autoscaler.config import PolicyConfig
from autoscaler.policies.leadtime import Leadtime, LeadtimeState
from autoscaler.ports import ReplicaStatus, ServiceKey
from autoscaler.slo import SLO_TARGET_DEFAULT, SLO_TTFT_DEFAULT_S, Attainment
from forecasting.forecast import Forecast

DISPLAY_S = 900
"""Seconds of per-second history kept for the API and the status page."""


class DecisionRecord(NamedTuple):
    """One decision as the API shows it.

    A tuple of plain values on purpose: the garbage collector stops tracking such tuples, and
    thousands of services times dozens of kept decisions would otherwise make every full
    collection walk hundreds of thousands of objects (100 ms pauses at 10,000 services)."""

    time: float
    desired: int
    reason: str
    detail: str
    applied: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "desired": self.desired,
            "reason": self.reason,
            "detail": self.detail,
            "applied": self.applied,
        }


@dataclass
class ServiceState:
    """Everything the loop keeps for one service."""

    key: ServiceKey
    policy: Leadtime
    policy_state: LeadtimeState | None
    """Its policy's state between decisions (None until its first data, or while the fleet
    path holds it in its row)."""
    row: int
    """This service's row in the loop's `Fleet` (metrics ring, forecasts, history)."""
    paused: bool = False
    pause_reason: str = ""
    """Why it was paused through the API (shown beside `paused`)."""
    settings: PolicyConfig | None = None
    """The settings its policy was built from (to notice when they change)."""
    shares_policy: bool = True
    """Whether its policy settings are the shared ones (only then can the fleet path decide
    for it; a service with its own overrides is always decided by the scalar policy)."""
    status: ReplicaStatus = field(default_factory=lambda: ReplicaStatus(0, 0, 0))
    data_status: str = "waiting for metrics"
    """`ok`, or why the newest metrics are unusable (`no data: …`)."""
    forecast: Forecast | None = None
    forecast_at: float = 0.0
    forecast_note: str = "no forecast yet"
    forecast_mase: float = math.nan
    forecast_coverage: float = math.nan
    last: DecisionRecord | None = None
    decisions: deque[DecisionRecord] = field(default_factory=lambda: deque(maxlen=50))
    signals: dict[str, float] = field(default_factory=dict)
    """Newest values of the further signals the source reads (KV-cache use, tokens/s, ...)."""
    attainment: Attainment | None = None
    """The newest measured SLO attainment (requests within `slo_ttft_s` over the source's
    window, and where the counts came from); None when the source cannot tell."""
    slo_target: float = SLO_TARGET_DEFAULT
    """The share of requests that must meet the objective."""
    slo_ttft_s: float = SLO_TTFT_DEFAULT_S
    """The objective's time to first token (seconds)."""
    fed_until: int | None = None
    """The second up to which arrivals were handed to the forecasting workers."""
    warming: bool = False
    """Its history is being pulled: its new seconds wait in the ring until that ends."""

    def held_state(self) -> LeadtimeState:
        """Its policy's state, which every service decided for at least once has (the fleet
        path keeps the keep-alive histogram there while the row holds the rest)."""
        if self.policy_state is None:
            raise RuntimeError(f"{self.key}: no policy state before its first decision")
        return self.policy_state

    def forecast_load(self, now: float) -> float | None:
        """The forecast mean arrivals per second one lead time (the measured cold start, else
        the prior, plus actuation) after `now`: the load being provisioned for at `now`. None
        without a forecast. Both `/metrics` and the external metrics API report this."""
        forecast = self.forecast
        if forecast is None or forecast.horizon_steps == 0:
            return None
        lead = self.policy.config.lead_time_s(self.status.cold_start_s)
        step = math.ceil((now + lead - self.forecast_at) / forecast.step_s) - 1
        return float(forecast.mean[min(max(step, 0), forecast.horizon_steps - 1)])

    def amend(self, **changes: Any) -> None:
        """Change the last decision (it is immutable: replaced, here and in the log)."""
        if self.last is None:
            return
        amended = self.last._replace(**changes)
        if self.decisions and self.decisions[0] is self.last:
            self.decisions[0] = amended
        self.last = amended

    def record(self, record: DecisionRecord) -> bool:
        """Keep a decision; True when it differs from the previous one (it is then logged)."""
        changed = self.last is None or (self.last.desired, self.last.reason) != (
            record.desired,
            record.reason,
        )
        self.last = record
        if changed:
            self.decisions.appendleft(record)
        return changed
