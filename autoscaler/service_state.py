"""What the loop remembers about one service between ticks.

Per-second metrics live in a ring buffer written twice (at i and i + size), so the newest
`size` seconds are always one contiguous numpy view: the policy reads them without a copy,
which is what keeps a tick over thousands of services cheap.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from autoscaler.policies.leadtime import Leadtime
from autoscaler.ports import MetricsChunk, ReplicaStatus, ServiceKey
from forecasting.forecast import Forecast

SIGNALS = ("concurrency", "arrivals", "queue")
DISPLAY_S = 900
"""Seconds of per-second history kept for the API and the status page."""
DISPLAY_TICKS = 450
"""Ticks of replica history kept for the chart (15 minutes at the default 2 s tick)."""


class SecondsRing:
    """The newest `size` seconds of the three signals, contiguous (see the module docstring)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data = np.zeros((len(SIGNALS), 2 * size))
        self._count = 0
        self.end: int | None = None
        """The second after the newest one stored (None before the first chunk)."""

    def extend(self, chunk: MetricsChunk) -> int:
        """Store a chunk; seconds already stored are skipped, a gap is filled by repeating the
        last stored second (a gap is missing data, not zero demand). Returns the new seconds."""
        start = chunk.start
        if self.end == start:  # the common case: the next seconds, in order
            self._write_signals(chunk.concurrency, chunk.arrivals, chunk.queue)
            self.end = start + chunk.arrivals.size
            return int(chunk.arrivals.size)
        values = np.vstack([chunk.concurrency, chunk.arrivals, chunk.queue]).astype(float)
        if self.end is not None and start > self.end:
            filler = np.repeat(self._last(), min(start - self.end, self.size), axis=1)
            values = np.hstack([filler, values])
            start -= filler.shape[1]
        elif self.end is not None and start < self.end:
            values = values[:, self.end - start :]
            start = self.end
        fresh = values.shape[1]
        if fresh:
            self._write(values[:, -self.size :])
            self.end = start + fresh
        return fresh

    def _last(self) -> np.ndarray:
        if self._count == 0:
            return np.zeros((len(SIGNALS), 1))
        index = (self._count - 1) % self.size
        return self._data[:, index : index + 1]

    def _write_signals(self, *signals: np.ndarray) -> None:
        """Write one chunk signal by signal, as contiguous slices (no index arrays)."""
        n = signals[0].size
        if n == 0:
            return
        if n > self.size:
            signals = tuple(signal[-self.size :] for signal in signals)
            n = self.size
        first = self._count % self.size
        head = min(n, self.size - first)
        data, size = self._data, self.size
        for row, signal in enumerate(signals):
            data[row, first : first + head] = signal[:head]
            data[row, first + size : first + size + head] = signal[:head]
            if head < n:
                data[row, : n - head] = signal[head:]
                data[row, size : size + n - head] = signal[head:]
        self._count += n

    def _write(self, values: np.ndarray) -> None:
        n = values.shape[1]
        positions = (self._count + np.arange(n)) % self.size
        self._data[:, positions] = values
        self._data[:, positions + self.size] = values
        self._count += n

    def tail(self, seconds: int) -> np.ndarray:
        """The newest `seconds` (or fewer) as a (3, n) view, oldest first."""
        n = min(seconds, self._count, self.size)
        if n <= 0:
            return self._data[:, :0]
        end = (self._count - 1) % self.size + self.size + 1
        return self._data[:, end - n : end]


class ReplicaHistory:
    """(time, ready, pending, desired) of the last `size` ticks in one numpy array: thousands of
    services times hundreds of ticks as Python tuples would be millions of objects for the
    garbage collector to walk, which showed as multi-second pauses in a 10,000-service tick."""

    def __init__(self, size: int) -> None:
        self._data = np.zeros((size, 4))
        self._count = 0

    def append(self, time: float, ready: int, pending: int, desired: int) -> None:
        self._data[self._count % len(self._data)] = (time, ready, pending, desired)
        self._count += 1

    def rows(self) -> np.ndarray:
        """Oldest first, as a (n, 4) array."""
        size = len(self._data)
        if self._count <= size:
            return self._data[: self._count]
        start = self._count % size
        return np.concatenate([self._data[start:], self._data[:start]])


@dataclass
class DecisionRecord:
    """One decision as the API shows it."""

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
    policy_state: Any
    ring: SecondsRing
    paused: bool = False
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
    replicas: ReplicaHistory = field(default_factory=lambda: ReplicaHistory(DISPLAY_TICKS))
    """Ready, pending and desired per tick, for the chart."""
    gauges: tuple[Any, Any] | None = None
    """This service's desired and ready gauge children, looked up once."""
    fed_until: int | None = None
    """The second up to which arrivals were handed to the forecasting workers."""

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
