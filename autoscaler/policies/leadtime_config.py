"""The Leadtime policy's settings (`LeadtimeConfig`) and the one rule that is theirs alone: how
long a replica takes from being asked for to serving (`lead_times`). Apart from the policy and
its row rule, which both read them, so neither imports the other for them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from autoscaler.errors import SettingError
from autoscaler.policies import keepalive
from autoscaler.policies.kpa import KpaConfig
from autoscaler.slo import SLO_TARGET_DEFAULT, SLO_TTFT_DEFAULT_S


@dataclass(frozen=True, slots=True)
class LeadtimeConfig:
    """Knobs with defaults a user should not need to touch (one set for every trace)."""

    kpa: KpaConfig = field(default_factory=KpaConfig)
    """The Knative settings Leadtime honours, with Knative's names and defaults: slots per replica
    (containerConcurrency, or what the target stands for), min/max and initial scale, the tick."""
    idle: keepalive.HistogramConfig = field(default_factory=keepalive.HistogramConfig)
    """The idle-time histogram behind keep-alive and pre-warm (Shahrad et al. defaults)."""
    slo_ttft_s: float = SLO_TTFT_DEFAULT_S
    """The objective: time to first token within this..."""
    slo_target: float = SLO_TARGET_DEFAULT
    """...for this share of requests. Leadtime buys the fewest GPU-seconds that meet it."""
    horizon_s: float = 60.0
    """How far past the lead time capacity is planned."""
    cold_start_prior_s: float = 60.0
    """Lead time before a cold start has been measured (an LLM replica's order of magnitude)."""
    actuation_delay_s: float = 2.0
    """From a decision to the replica being requested (one tick)."""
    scale_down_delay_s: float = 0.0
    """The shortest time a replica the need no longer asks for is kept (Knative's
    scale-down-delay); ski-rental decides beyond it."""
    hold_leads: float = 2.0
    """Ski-rental's break-even, in lead times: bringing a released replica back costs its cold
    start's GPU-seconds (one lead) plus the misses while it starts (priced as one more). Without
    enough of the service's own gaps, an unneeded replica is kept this long."""
    service_time_window_s: float = 300.0
    """Window of the Little's-law estimate of time in service."""
    service_time_prior_s: float = 1.0
    learn_capacity: bool = True
    """Learn each replica's real slots from saturated seconds and never plan above them."""
    placeholders: bool = True
    """Whether this service's forecast growth sizes the cluster's GPU placeholder pool."""

    def lead_time_s(self, cold_start_s: float | None) -> float:
        """From asking for a replica to its serving: the measured cold start (the prior until
        one is measured) plus the actuation delay."""
        measured = math.nan if cold_start_s is None else cold_start_s
        return float(lead_times(self, np.array([measured]))[0])

    def __post_init__(self) -> None:
        if not 0.5 <= self.slo_target < 1:
            raise SettingError(
                "leadtime", ("slo_target",), f"must be in [0.5, 1), got {self.slo_target!r}"
            )
        for name in (
            "slo_ttft_s",
            "horizon_s",
            "cold_start_prior_s",
            "service_time_window_s",
            "service_time_prior_s",
        ):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise SettingError(
                    "leadtime", (name,), f"must be a positive duration, got {value!r}"
                )
        for name in ("actuation_delay_s", "scale_down_delay_s", "hold_leads"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise SettingError("leadtime", (name,), f"must be a duration >= 0, got {value!r}")


def lead_times(cfg: LeadtimeConfig, cold_start: np.ndarray) -> np.ndarray:
    """From asking for a replica to its serving, per row: the measured cold start (the prior
    where none was measured, NaN) plus the actuation delay."""
    measured = np.where(np.isnan(cold_start), cfg.cold_start_prior_s, cold_start)
    return measured + cfg.actuation_delay_s
