"""A fixed replica count: the baseline every autoscaler has to beat on cost or on latency.

A static fleet never cold-starts and never reacts, so it brackets the other policies: sized
for the peak it is the latency yardstick, sized for the mean it is the cost one.
"""

from __future__ import annotations

from dataclasses import dataclass

from autoscaler.errors import InputError
from autoscaler.policy import Decision, Observation


@dataclass(frozen=True, slots=True)
class Static:
    """Always `replicas`, whatever the load."""

    replicas: int

    def __post_init__(self) -> None:
        if (
            isinstance(self.replicas, bool)
            or not isinstance(self.replicas, int)
            or self.replicas < 0
        ):
            raise InputError(f"static.replicas: must be an integer >= 0, got {self.replicas!r}")

    @property
    def name(self) -> str:
        return f"static:{self.replicas}"

    @property
    def tick_s(self) -> float:
        return 60.0

    @property
    def history_s(self) -> float:
        return 0.0

    @property
    def pokeable(self) -> bool:
        return False

    def initial_replicas(self) -> int:
        return self.replicas

    def initial_state(self, now: float, ready: int) -> None:
        return None

    def decide(self, observation: Observation, state: None) -> tuple[Decision, None]:
        return Decision(self.replicas, "static", f"fixed at {self.replicas}"), None
