"""The `oracle` policy: a clairvoyant reference that knows every future arrival.

It is handed, precomputed, the replicas needed in each second for no request to wait, already
maximised over the next (longest cold start + one tick) seconds. Holding that maximum requests
every replica one cold start before it is needed and keeps a replica through any idle gap
shorter than a cold start, which is cheaper than restarting it. It is the practical best
a policy could do; `oracle_gpu_seconds` in every result is the proven lower bound below it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from autoscaler.policy import Decision, Observation


@dataclass(frozen=True, eq=False)
class Oracle:
    """Replicas = the future need, looked up by time; `need_ahead[s]` covers second s."""

    need_ahead: np.ndarray
    tick_s: float = 2.0
    name: str = "oracle"
    history_s: float = 0.0
    pokeable: bool = False

    def _need_at(self, now: float) -> int:
        second = int(now)
        return int(self.need_ahead[second]) if 0 <= second < self.need_ahead.size else 0

    def initial_replicas(self) -> int:
        return self._need_at(0.0)

    def initial_state(self, now: float, ready: int) -> None:
        return None

    def decide(self, observation: Observation, state: None) -> tuple[Decision, None]:
        need = self._need_at(observation.now)
        return Decision(need, "oracle", f"future need {need}"), None
