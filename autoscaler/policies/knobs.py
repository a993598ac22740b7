"""The knob an operator turns on each baseline to meet an SLO, and the grid `bench` tunes it on.

Operators do not run the KPA or the HPA at their defaults: they lower the per-replica target
until the SLO holds, and then stop, because a lower target costs GPUs. `bench --slo-target T`
does the same for every baseline: it replays the trace at every setting of the grid and keeps
the cheapest one that meets T on the scored window. The fair comparison is then Leadtime's
GPU-seconds against what each baseline costs to meet the same target.

Every baseline's main knob is a per-replica load target, so one grid fits them all: the target
as a share of the replica's request slots (containerConcurrency, vLLM's max_num_seqs),
TUNING_SHARES = 10 %, 20 %, … 100 %. A share above 100 % would aim at queueing inside every
replica, which no operator of an SLO does; below 10 % a GPU replica holds less than one request.

| policy | knob (upstream's name) | value at share s, N slots | default share |
|---|---|---|---|
| kpa | `autoscaling.knative.dev/target-utilization-percentage` | s × 100 % | 70 % |
| hpa, hpa-behavior | the metric's target `averageValue` per pod | s × N | 70 % |
| ray-serve | `target_ongoing_requests` | s × N | 70 % |
| keda | the Prometheus trigger's `threshold` | s × N | 100 % |
| aibrix-apa | `autoscaling.aibrix.ai/target-value` (targetValue) | s × N | 50 % |
| dynamo-planner | the engine's batch (`max_num_seqs` in its profile) | round(s × N), ≥ 1 | 70 % |

With N unknown (containerConcurrency 0), N is Knative's default per-pod target of 100.
"""

from __future__ import annotations

from dataclasses import dataclass

TUNING_SHARES = tuple(round(0.1 * step, 1) for step in range(1, 11))
"""The grid every baseline is tuned on: its per-replica target as a share of the slots."""


@dataclass(frozen=True)
class Knob:
    """How one baseline's main knob is named, and shown at a share of the slots."""

    setting: str
    percent: bool = False
    """Shown as a percentage of the slots (the KPA's knob), not as requests in flight."""
    whole: bool = False
    """A whole number of requests (a batch size)."""

    def value(self, share: float, slots: float) -> float:
        """The knob's value at `share` of `slots` request slots per replica."""
        if self.percent:
            return 100.0 * share
        if self.whole:
            return float(max(1, round(share * slots)))
        return share * slots

    def describe(self, share: float, slots: float) -> str:
        """`setting=value` as an operator would write it."""
        value = self.value(share, slots)
        shown = f"{value:.0f}%" if self.percent else f"{value:g}"
        return f"{self.setting}={shown}"


_AVERAGE_VALUE = Knob("averageValue")

KNOBS: dict[str, Knob] = {
    "kpa": Knob("target-utilization-percentage", percent=True),
    "hpa": _AVERAGE_VALUE,
    "hpa-behavior": _AVERAGE_VALUE,
    "ray-serve": Knob("target_ongoing_requests"),
    "keda": Knob("threshold"),
    "aibrix-apa": Knob("targetValue"),
    "dynamo-planner": Knob("max_num_seqs", whole=True),
}
"""The tunable baselines by policy name; the others (leadtime, oracle, static:N) run as given."""
