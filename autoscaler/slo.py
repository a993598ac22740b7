"""The service-level objective a request is judged on: a time to first token every request can meet.

A request's time to first token (TTFT) is its wait for a slot plus its own prefill. The wait is
what an autoscaler controls; the prefill is not. A plain "TTFT ≤ 2 s" therefore fails every
prompt whose prefill alone takes 2 s or more (on a long-context trace, 30 % of requests), whatever
the autoscaler does, and leaves a prompt whose prefill takes 1.9 s 0.1 s of wait. So:

    a request meets the SLO when it starts within its wait budget,
    wait budget = max(slo_ttft − prefill, slo_ttft × MIN_WAIT_SHARE),

that is TTFT ≤ max(slo_ttft, prefill + slo_ttft / 2) with the default share of one half.

- A short prompt (prefill ≤ half the SLO: ≤ 6,700 tokens at the simulator's default prefill
  rate) keeps the plain rule, TTFT ≤ slo_ttft.
- A longer prompt is judged on its wait alone: it may wait half the SLO, whatever its prefill.
- The budget is continuous and never shorter than half the SLO, so a policy that starts every
  request within slo_ttft / 2 meets the SLO for every request: the oracle can reach 100 %.

Both the simulator and the load-test harness score with this function (one rule).

`Attainment` is what a policy is told about how a service has been doing against its objective
over a sliding window: the simulator counts its requests with the rule above, a live cluster reads
the model server's TTFT histogram from Prometheus (`adapters/prometheus/`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MIN_WAIT_SHARE = 0.5
"""The share of the TTFT objective every request may spend waiting, whatever its prefill."""

RULE = (
    "a request meets the SLO when TTFT <= max(SLO, prefill + SLO/2): short prompts keep "
    "TTFT <= SLO, a long prompt is judged on its wait alone (at most SLO/2)"
)
"""The rule in one line, for `--help` and reports."""


def wait_budget(prefill: np.ndarray, slo_ttft_s: float) -> np.ndarray:
    """How long each request may wait for a slot and still meet the SLO (seconds)."""
    return np.maximum(slo_ttft_s - prefill, slo_ttft_s * MIN_WAIT_SHARE)


def met_slo(wait: np.ndarray, prefill: np.ndarray, slo_ttft_s: float) -> np.ndarray:
    """Per request: did it start within its wait budget? `wait` is NaN for a request that never
    started, which misses."""
    with np.errstate(invalid="ignore"):
        return np.asarray(wait <= wait_budget(prefill, slo_ttft_s))


SLO_TTFT_DEFAULT_S = 2.0
"""The objective's time to first token when a service sets none."""
SLO_TARGET_DEFAULT = 0.99
"""The share of requests that must meet it when a service sets none."""
ATTAINMENT_WINDOW_S = 600.0
"""The sliding window a service's attainment is measured over (simulator and Prometheus)."""


@dataclass(frozen=True, slots=True)
class Attainment:
    """Requests that met the SLO, out of those judged, over a recent sliding window.

    `source` names where the counts come from (the simulator's scoring, or the histogram and the
    bucket edge a live estimate used), so a status page can say what the figure means."""

    met: float
    total: float
    source: str = ""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.met) and math.isfinite(self.total)):
            raise ValueError(f"attainment: counts must be finite, got {self.met}/{self.total}")
        if not 0 <= self.met <= self.total:
            raise ValueError(f"attainment: need 0 <= met <= total, got {self.met}/{self.total}")

    @property
    def ratio(self) -> float | None:
        """The share met, or None when no request was judged in the window."""
        return self.met / self.total if self.total > 0 else None
