"""A fault-injecting reverse proxy in front of the test control plane's kube-apiserver.

Why a proxy and not a mocked client: the adapters' error handling is only worth something if it
survives the answers a real API server gives on a bad day, delivered over a real connection —
so everything not programmed to fail is forwarded to the real kube-apiserver (TLS upstream with
the cluster CA, the client's bearer token passed through), and a fault is an HTTP answer or a
broken stream the client cannot tell from the real thing.

Clients speak plain HTTP to the proxy on loopback (`proxied_configuration`). Rules are matched
in the order they were added, by method, a regex searched in the path and, optionally, whether
the request is a watch; a rule acts on its first `times` matching requests and then lets them
through. The actions:

- `answer(status)`: a `Status` body as the API server writes it (409 Conflict, 429 with
  Retry-After, 500, 503, 404);
- `delay(seconds)`: hold the request (longer than the client's timeout, typically), then
  forward it if the client is still there;
- `cut_watch(after_events=K | after_s=t, clean=...)`: forward a watch, then end it — cleanly
  (the chunked stream is terminated, as a server-side timeout ends a watch) or mid-event (half
  a line, then the connection is dropped);
- `gone(after_events=K)`: a watch that sends K events and then the `410 Gone` ERROR event the
  API server sends for a resource version etcd has compacted ("too old resource version");
- `black_hole(after_s=t)`: forward a watch for t seconds, then send nothing more and keep the
  connection open, as a network path that silently drops packets does.
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web
from kubernetes_asyncio import client

from load_tests.local.replicas import free_port
from tests.cluster.control_plane import ControlPlane

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "host",
    "content-encoding",
    "accept-encoding",
    "upgrade",
    "proxy-connection",
    "te",
}
REASONS = {
    404: "NotFound",
    409: "Conflict",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    410: "Expired",
}


def is_watch(query: Mapping[str, str]) -> bool:
    return query.get("watch", "").lower() in ("true", "1")


def status_body(code: int, message: str) -> dict:
    """A metav1.Status as the API server answers a failed request."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": REASONS.get(code, "Unknown"),
        "code": code,
    }


@dataclass
class Rule:
    """What to do to the first `times` requests that match; `hits` counts them."""

    action: str
    path: re.Pattern[str]
    method: str | None = None
    watch: bool | None = None
    times: int = 1
    status: int = 500
    retry_after_s: int = 1
    seconds: float = 0.0
    after_events: int | None = None
    clean: bool = True
    hits: int = 0

    def matches(self, request: web.Request) -> bool:
        if self.hits >= self.times:
            return False
        if self.method is not None and request.method != self.method:
            return False
        if self.watch is not None and is_watch(request.query) != self.watch:
            return False
        return bool(self.path.search(request.path))

    @property
    def done(self) -> bool:
        return self.hits >= self.times


@dataclass
class Seen:
    """One request the proxy handled, and the rule that acted on it (if any)."""

    method: str
    path: str
    query: dict[str, str]
    at: float
    rule: str | None = None


@dataclass
class FaultProxy:
    """`await start()`, add rules, point clients at `url`; `await stop()`."""

    upstream: str
    ca_file: str
    port: int = field(default_factory=free_port)
    rules: list[Rule] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        context = ssl.create_default_context(cafile=self.ca_file)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=context),
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=None),
            read_bufsize=2**21,
        )
        app = web.Application(client_max_size=2**24)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    # ------------------------------------------------------------------------ programming
    def add(self, action: str, path: str, **kwargs) -> Rule:
        rule = Rule(action, re.compile(path), **kwargs)
        self.rules.append(rule)
        return rule

    def answer(self, method: str, path: str, status: int, times: int = 1, **kwargs) -> Rule:
        return self.add("answer", path, method=method, status=status, times=times, **kwargs)

    def delay(self, method: str, path: str, seconds: float, times: int = 1, **kwargs) -> Rule:
        return self.add("delay", path, method=method, seconds=seconds, times=times, **kwargs)

    def cut_watch(
        self,
        path: str,
        *,
        after_events: int | None = None,
        after_s: float = 0.0,
        clean: bool = True,
        times: int = 1,
    ) -> Rule:
        return self.add(
            "cut",
            path,
            method="GET",
            watch=True,
            after_events=after_events,
            seconds=after_s,
            clean=clean,
            times=times,
        )

    def black_hole(self, path: str, *, after_s: float = 0.0, times: int = 1) -> Rule:
        return self.add("silence", path, method="GET", watch=True, seconds=after_s, times=times)

    def gone(self, path: str, after_events: int = 0, times: int = 1) -> Rule:
        return self.add(
            "gone", path, method="GET", watch=True, after_events=after_events, times=times
        )

    def requests(self, method: str, path: str, watch: bool | None = None) -> list[Seen]:
        """What reached the proxy, for asserting a relist or a retry happened."""
        pattern = re.compile(path)
        return [
            s
            for s in self.seen
            if s.method == method
            and pattern.search(s.path)
            and (watch is None or is_watch(s.query) == watch)
        ]

    # ------------------------------------------------------------------------ serving
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        rule = next((r for r in self.rules if r.matches(request)), None)
        self.seen.append(
            Seen(
                request.method,
                request.path,
                dict(request.query),
                time.monotonic(),
                rule.action if rule else None,
            )
        )
        if rule is None:
            return await self._forward(request)
        rule.hits += 1
        if rule.action == "answer":
            return self._answer(request, rule)
        if rule.action == "delay":
            await asyncio.sleep(rule.seconds)
            return await self._forward(request)
        return await self._forward(request, rule)

    def _answer(self, request: web.Request, rule: Rule) -> web.Response:
        message = {
            409: f"Operation cannot be fulfilled on {request.path}: the object has been "
            "modified; please apply your changes to the latest version and try again",
            429: "Too many requests, please try again later.",
            503: "the server is currently unable to handle the request",
        }.get(rule.status, f"injected {rule.status} for {request.method} {request.path}")
        headers = {"Retry-After": str(rule.retry_after_s)} if rule.status == 429 else {}
        return web.json_response(
            status_body(rule.status, message), status=rule.status, headers=headers
        )

    async def _forward(self, request: web.Request, rule: Rule | None = None) -> web.StreamResponse:
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        # Uncompressed answers only: the API server gzips lists over 128 KiB, and the proxy
        # forwards bodies as they come (and cuts watches line by line).
        headers["Accept-Encoding"] = "identity"
        body = await request.read()
        try:
            upstream = await self._session.request(
                request.method,
                self.upstream + request.path_qs,
                headers=headers,
                data=body or None,
                allow_redirects=False,
            )
        except aiohttp.ClientError as error:  # the API server is down (restarting)
            return web.json_response(status_body(503, f"upstream unavailable: {error}"), status=503)
        async with upstream:
            out = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}
            if not is_watch(request.query) or upstream.status != 200:
                return web.Response(status=upstream.status, headers=out, body=await upstream.read())
            response = web.StreamResponse(status=upstream.status, headers=out)
            await response.prepare(request)
            await self._stream(request, response, upstream, rule)
            return response

    async def _stream(
        self,
        request: web.Request,
        response: web.StreamResponse,
        upstream: aiohttp.ClientResponse,
        rule: Rule | None,
    ) -> None:
        """Forward watch events line by line until the upstream ends or the rule cuts it."""
        sent = 0
        deadline = (
            time.monotonic() + rule.seconds
            if rule and rule.action in ("cut", "silence") and rule.after_events is None
            else None
        )
        limit = rule.after_events if rule and rule.after_events is not None else None
        while True:
            if limit is not None and sent >= limit:
                break
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                line = await asyncio.wait_for(upstream.content.readline(), timeout)
            except TimeoutError:
                break
            except aiohttp.ClientError:  # the upstream dropped: so does the client's stream
                if request.transport is not None:
                    request.transport.close()
                return
            if not line:
                await response.write_eof()
                return
            await response.write(line)
            sent += 1
        await self._end(request, response, rule)

    async def _end(
        self, request: web.Request, response: web.StreamResponse, rule: Rule | None
    ) -> None:
        assert rule is not None
        if rule.action == "silence":  # nothing more, and no end: until the client gives up
            while request.transport is not None and not request.transport.is_closing():
                await asyncio.sleep(0.2)
            return
        if rule.action == "gone":
            event = {"type": "ERROR", "object": status_body(410, "too old resource version: 1 (2)")}
            await response.write(json.dumps(event).encode() + b"\n")
            await response.write_eof()
        elif rule.clean:
            await response.write_eof()
        else:  # half an event, then the connection goes
            await response.write(b'{"type":"MODIFIED","object":{"kind":')
            await asyncio.sleep(0.05)
            if request.transport is not None:
                request.transport.close()


def proxied_configuration(
    proxy: FaultProxy, plane: ControlPlane, token: str | None = None
) -> client.Configuration:
    """A kubernetes_asyncio configuration that reaches the API server through `proxy`."""
    return client.Configuration(
        host=proxy.url,
        api_key={"BearerToken": token or plane.admin_token},
        api_key_prefix={"BearerToken": "Bearer"},
    )


@pytest.fixture
async def fault_proxy(control_plane: ControlPlane) -> AsyncIterator[FaultProxy]:
    """A fresh proxy (no rules) in front of the session's API server, on the test's loop."""
    proxy = FaultProxy(control_plane.url, str(control_plane.ca_file))
    await proxy.start()
    yield proxy
    await proxy.stop()


@pytest.fixture
async def proxied(
    fault_proxy: FaultProxy, control_plane: ControlPlane
) -> AsyncIterator[client.ApiClient]:
    """An admin ApiClient whose every request goes through `fault_proxy`."""
    async with client.ApiClient(proxied_configuration(fault_proxy, control_plane)) as api:
        yield api
