"""Clocks for the control loop: wall time live, virtual time in the embedded simulator.

One clock (docs/architecture.md §5): the loop never reads time itself, so the same loop runs on a
cluster in real time, on the simulator at 10× (or 1000×), and in tests on a clock they move by hand.
"""

from __future__ import annotations

import asyncio
import time


class WallClock:
    """Unix time."""

    def now(self) -> float:
        return time.time()

    async def sleep_until(self, when: float) -> None:
        await asyncio.sleep(max(0.0, when - time.time()))


class VirtualClock:
    """Virtual seconds that run `speed` times faster than the wall clock, from `start`."""

    def __init__(self, speed: float, start: float = 0.0) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be > 0, got {speed!r}")
        self.speed = speed
        self._start = start
        self._wall0 = time.monotonic()

    def now(self) -> float:
        return self._start + (time.monotonic() - self._wall0) * self.speed

    async def sleep_until(self, when: float) -> None:
        await asyncio.sleep(max(0.0, (when - self.now()) / self.speed))


class ManualClock:
    """A clock that moves only when told to, or when the loop sleeps (tests, benchmarks):
    sleeping to a time jumps there at once, so virtual hours take no wall time."""

    def __init__(self, start: float = 0.0) -> None:
        self.time = start

    def now(self) -> float:
        return self.time

    def advance(self, seconds: float) -> None:
        self.time += seconds

    async def sleep_until(self, when: float) -> None:
        self.time = max(self.time, when)
        await asyncio.sleep(0)
