"""A small load balancer in front of the local replicas that queues like Knative's activator:
a request waits (first come, first served) until a ready replica has a free slot, then goes to
the least-loaded one; with no replica at all it waits for one to come up. It exports what
Leadtime's `custom` signals read: requests arrived, waiting, and in the system — the last two
also as time integrals (`lb_queued_seconds_total`, `lb_in_flight_seconds_total`), whose rates
are the time-averaged queue and concurrency that Knative's queue-proxy reports and the
simulator's policies see. An instantaneous gauge sampled once a second is a different, noisier
signal: the KPA's panic threshold is crossed or not on one sample, and a request caught in the
few milliseconds between its arrival and its dispatch reads as a full second of queue — at
`--speed 10` ten times as often, since those milliseconds are ten times longer in trace time —
which Leadtime's capacity learning takes for saturated replicas.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

import aiohttp
from aiohttp import web

from load_tests.local.replicas import Replica, ReplicaManager

LABELS = 'namespace="local",service="model"'


class Balancer:
    def __init__(self, replicas: ReplicaManager, *, queue_timeout_s: float = 600.0) -> None:
        self.replicas = replicas
        self.queue_timeout_s = queue_timeout_s
        self.arrived = 0
        self.waiting: deque[asyncio.Future] = deque()
        self.in_service = 0
        self._area = 0.0
        self._queued_area = 0.0
        self._area_at = time.monotonic()
        self._session: aiohttp.ClientSession | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_get("/metrics", self._metrics)
        app.on_startup.append(self._open)
        app.on_cleanup.append(self._close)
        return app

    async def _open(self, app: web.Application) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        app["dispatcher"] = asyncio.create_task(self._dispatch_forever())

    async def _close(self, app: web.Application) -> None:
        app["dispatcher"].cancel()
        if self._session is not None:
            await self._session.close()

    @property
    def in_flight(self) -> int:
        return len(self.waiting) + self.in_service

    def _integrate(self) -> None:
        """Add in-flight and waiting request-seconds up to now; called before every change of
        either."""
        now = time.monotonic()
        self._area += self.in_flight * (now - self._area_at)
        self._queued_area += len(self.waiting) * (now - self._area_at)
        self._area_at = now

    async def _metrics(self, request: web.Request) -> web.Response:
        self._integrate()
        lines = [
            f"lb_requests_total{{{LABELS}}} {self.arrived}",
            f"lb_in_flight{{{LABELS}}} {self.in_flight}",
            f"lb_in_flight_seconds_total{{{LABELS}}} {self._area:.6f}",
            f"lb_queued{{{LABELS}}} {len(self.waiting)}",
            f"lb_queued_seconds_total{{{LABELS}}} {self._queued_area:.6f}",
        ]
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")

    def _free(self) -> Replica | None:
        ready = [r for r in self.replicas.ready if r.in_flight < self.replicas.slots]
        return min(ready, key=lambda r: r.in_flight) if ready else None

    async def _dispatch_forever(self) -> None:
        """Hand waiting requests to replicas as slots free up (polled: replicas come and go)."""
        while True:
            while self.waiting and (replica := self._free()) is not None:
                self._integrate()
                waiter = self.waiting.popleft()
                if not waiter.done():
                    replica.in_flight += 1
                    self.in_service += 1
                    waiter.set_result(replica)
            await asyncio.sleep(0.002)

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        self.arrived += 1
        body = await request.read()
        waiter: asyncio.Future = asyncio.get_running_loop().create_future()
        self._integrate()
        self.waiting.append(waiter)
        try:
            replica = await asyncio.wait_for(waiter, self.queue_timeout_s)
        except TimeoutError:
            self._integrate()
            if waiter in self.waiting:
                self.waiting.remove(waiter)
            return web.json_response({"error": "no replica in time"}, status=503)
        try:
            return await self._proxy(request, replica, body)
        finally:
            self._integrate()
            self.in_service -= 1
            replica.in_flight -= 1

    async def _proxy(
        self, request: web.Request, replica: Replica, body: bytes
    ) -> web.StreamResponse:
        assert self._session is not None
        async with self._session.post(
            replica.url + "/v1/completions", data=body, headers={"Content-Type": "application/json"}
        ) as upstream:
            response = web.StreamResponse(
                status=upstream.status, headers={"Content-Type": upstream.content_type}
            )
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            return response
