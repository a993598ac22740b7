"""Replicas as local processes: `scale(n)` starts model servers or stops the newest idle ones,
and the manager tracks what a cluster would show — requested, ready (its /health answers),
cold starts measured from start to ready (in trace seconds: wall seconds × `time_scale`, what
a policy replaying the trace must see), launch times, and replica-seconds (the GPU bill, in
wall seconds)."""

from __future__ import annotations

import asyncio
import math
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

import aiohttp
import numpy as np


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Replica:
    port: int
    process: subprocess.Popen
    started: float = field(default_factory=time.monotonic)
    ready_at: float | None = None
    in_flight: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class ReplicaManager:
    """Cold starts are drawn as the simulator draws them (log-normal around `cold_start_s`,
    spread `sigma`, its seed) and count from the process launch."""

    def __init__(
        self,
        *,
        cold_start_s: float,
        time_scale: float = 1.0,
        slots: int = 8,
        sigma: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.cold_start_s = cold_start_s
        self.sigma = sigma
        self.rng = np.random.default_rng([seed, 0xC01D])
        self.time_scale = time_scale
        self.slots = slots
        self.replicas: list[Replica] = []
        self.cold_starts: list[float] = []
        """Measured cold starts, in trace seconds."""
        self.launched_at: list[float] = []
        """Unix time of every replica's launch, to count the ones started in a scored window."""
        self.replica_seconds = 0.0
        self._accounted = time.monotonic()
        self._session: aiohttp.ClientSession | None = None
        self._watcher: asyncio.Task | None = None
        self._draining: set[asyncio.Task] = set()

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1.0))
        self._watcher = asyncio.create_task(self._watch_readiness())

    async def stop(self) -> None:
        """Every replica process terminated and reaped, draining ones included, before this
        returns: a cancelled run (SIGTERM, Ctrl-C) must not leave model servers behind."""
        await self.scale(0, force=True)
        await asyncio.shield(asyncio.gather(*self._draining, return_exceptions=True))
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    @property
    def ready(self) -> list[Replica]:
        return [r for r in self.replicas if r.ready_at is not None]

    def account(self) -> None:
        """Add replica-seconds up to now (every replica counts from its start: a GPU is held
        while the model loads)."""
        now = time.monotonic()
        self.replica_seconds += len(self.replicas) * (now - self._accounted)
        self._accounted = now

    async def scale(self, wanted: int, *, force: bool = False) -> None:
        self.account()
        while len(self.replicas) < wanted:
            port, launched = free_port(), time.monotonic()
            self.launched_at.append(time.time())
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "load_tests.local.model_server",
                    "--port",
                    str(port),
                    "--ready-at",
                    str(time.time() + self._draw_cold_start() / self.time_scale),
                    "--slots",
                    str(self.slots),
                    "--time-scale",
                    str(self.time_scale),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            # The clock starts before the launch, as `--ready-at` does, so a cold start is
            # never measured shorter than drawn.
            self.replicas.append(Replica(port, process, started=launched))
        while len(self.replicas) > wanted:
            # The newest first: it is the least likely to be serving (and may still be loading).
            victim = min(reversed(self.replicas), key=lambda r: r.in_flight > 0 and not force)
            self.replicas.remove(victim)
            task = asyncio.get_running_loop().create_task(self._drain(victim, force))
            self._draining.add(task)
            task.add_done_callback(self._draining.discard)

    def _draw_cold_start(self) -> float:
        z = min(3.0, max(-3.0, float(self.rng.standard_normal())))
        return self.cold_start_s * math.exp(self.sigma * z)

    async def _drain(self, replica: Replica, force: bool) -> None:
        try:
            while replica.in_flight and not force:
                await asyncio.sleep(0.05)
        finally:  # even when cancelled mid-drain, the process goes
            replica.process.terminate()
            await asyncio.shield(asyncio.to_thread(replica.process.wait))

    async def _watch_readiness(self) -> None:
        assert self._session is not None
        while True:
            for replica in [r for r in self.replicas if r.ready_at is None]:
                try:
                    async with self._session.get(replica.url + "/health") as answer:
                        if answer.status == 200:
                            replica.ready_at = time.monotonic()
                            wall = replica.ready_at - replica.started
                            self.cold_starts.append(wall * self.time_scale)
                except (TimeoutError, aiohttp.ClientError):
                    pass
            await asyncio.sleep(0.05)
