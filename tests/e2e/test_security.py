"""What a namespace owner writes is untrusted (marker `security`): annotations never reach a
reconcile worker unguarded, a worker that fails anyway is replaced, and a revision's own PromQL
is off unless allowed, held to its namespace, and never delays another service."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import aiohttp
import numpy as np
import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st
from kubernetes_asyncio import client

from adapters.hpa.metrics_api import SelectorError, parse_selector
from adapters.knative.adapter import KnativeAdapter
from adapters.knative.annotations import (
    POLICY_ANNOTATIONS,
    QUERY_ANNOTATIONS,
    QueryFence,
    revision_settings,
)
from adapters.knative.probe import activator_answers
from adapters.knative.reconciler import Outcome
from adapters.prometheus.client import PrometheusClient, PrometheusError
from adapters.prometheus.fence import confined
from adapters.prometheus.signals import SignalSet
from adapters.prometheus.source import PrometheusSource
from adapters.simulator.config import SimConfig
from adapters.simulator.live import LiveCluster
from adapters.simulator.workload import Workload
from autoscaler.clock import ManualClock
from autoscaler.config import PolicyConfig, load_config
from autoscaler.errors import InputError
from autoscaler.http import app as http_app
from autoscaler.http.app import make_app
from autoscaler.loop import ControlLoop
from autoscaler.ports import MetricsChunk, NoData, ServiceKey

pytestmark = pytest.mark.security

VALUE_LIMIT, QUERY_LIMIT = 256, 4096
"""The longest policy value and PromQL template read (adapters/knative/annotations.py)."""
HUGE_NUMBER = "9" * 5000
"""More digits than Python converts to an int (4,300): it once raised ValueError in every
reconcile of its revision, killing one worker per resync."""
HOSTILE_VALUES = [
    HUGE_NUMBER,
    "-" + HUGE_NUMBER,
    "1" * (VALUE_LIMIT + 1),
    "[" * 5000 + "]" * 5000,
    "{a: " * 2000 + "1" + "}" * 2000,
    "&a [*a, *a]",
    "!!python/object/apply:os.system ['true']",
    "\u202e\u0000\U0001f600" * 100,
    "1e999",
    "nan",
]


@pytest.mark.parametrize("value", HOSTILE_VALUES, ids=range(len(HOSTILE_VALUES)))
@pytest.mark.parametrize("annotation", sorted(POLICY_ANNOTATIONS))
def test_a_hostile_value_is_a_problem_of_its_annotation_never_an_exception(annotation, value):
    settings_ = revision_settings({annotation: value}, 0, PolicyConfig())
    assert annotation in settings_.problems, settings_.problems
    message = settings_.problems[annotation]
    assert message.startswith(annotation) and "\n" not in message and len(message) < 600


@settings(max_examples=200, deadline=None)
@given(
    annotations=st.dictionaries(
        st.sampled_from(sorted(POLICY_ANNOTATIONS) + sorted(QUERY_ANNOTATIONS)),
        st.text(min_size=VALUE_LIMIT + 1, max_size=QUERY_LIMIT + 50)
        | st.sampled_from(HOSTILE_VALUES),
        min_size=1,
    )
)
def test_long_values_are_refused_before_any_parser_reads_them(annotations):
    settings_ = revision_settings(annotations, 0, PolicyConfig())
    for annotation, value in annotations.items():
        limit = QUERY_LIMIT if annotation in QUERY_ANNOTATIONS else VALUE_LIMIT
        if len(value) > limit:
            assert "characters; at most" in settings_.problems[annotation]
        if annotation in QUERY_ANNOTATIONS and len(value) > limit:
            assert QUERY_ANNOTATIONS[annotation] not in settings_.queries
    settings_.policy.leadtime_config()  # whatever was refused, the policy builds


async def test_a_failing_reconcile_is_logged_counted_and_requeued_and_no_worker_is_lost(
    monkeypatch,
):
    """The worker loop, without a cluster: one revision's reconcile raises past every guard
    (the failure that once ended a worker per resync); the worker lives on, the failure is
    counted, and the revision is tried again."""
    monkeypatch.setattr("adapters.knative.adapter.REQUEUE_S", 0.01)
    api = client.ApiClient()
    adapter = KnativeAdapter(api, PolicyConfig(), workers=2)
    calls: list[tuple[str, str]] = []

    async def reconcile(key):
        calls.append(key)
        if key == ("tenant", "hostile") and calls.count(key) == 1:
            raise ValueError("Exceeds the limit (4300 digits) for integer string conversion")
        return Outcome()

    monkeypatch.setattr(adapter, "reconcile", reconcile)
    for number in range(adapter.workers):
        adapter._start_worker(number)
    try:
        adapter._enqueue(("tenant", "hostile"))
        adapter._enqueue(("tenant", "fine"))
        for _ in range(200):
            if calls.count(("tenant", "hostile")) >= 2 and ("tenant", "fine") in calls:
                break
            await asyncio.sleep(0.01)
        assert calls.count(("tenant", "hostile")) == 2 and ("tenant", "fine") in calls
        assert adapter.worker_failures == 1
        assert len(adapter._tasks) == 2 and not any(t.done() for t in adapter._tasks)
    finally:
        await adapter.stop()
        await api.close()


async def test_a_worker_that_dies_is_replaced(monkeypatch):
    api = client.ApiClient()
    adapter = KnativeAdapter(api, PolicyConfig(), workers=1)
    crashed = asyncio.Event()

    async def work():
        if not crashed.is_set():
            crashed.set()
            raise RuntimeError("a bug in the worker loop itself")
        await asyncio.sleep(3600)

    monkeypatch.setattr(adapter, "_work", work)
    adapter._start_worker(0)
    try:
        await crashed.wait()
        for _ in range(100):
            if adapter.worker_failures:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.01)
        assert adapter.worker_failures == 1
        assert len(adapter._tasks) == 1 and not adapter._tasks[0].done()
    finally:
        await adapter.stop()
        await api.close()


# --- per-revision PromQL --------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        'sum(rate(x{namespace="other"}[1m]))',  # another namespace
        "sum(rate(x[1m]))",  # every namespace
        'x{namespace=~"team-a|other"}',  # a regex reaching further
        'x{namespace="team-a"} + on() group_left y',  # one selector left open
        'x{namespace="team-a" or namespace="other"}',
        "(" * 10_000 + "1" + ")" * 10_000,  # overflowed the parser's stack: a segfault
        "sum(rate(x{namespace=",  # not PromQL
    ],
)
def test_a_query_that_can_read_another_namespace_is_refused_and_never_sent(query):
    with pytest.raises(InputError):
        confined(query, "namespace", "team-a")


def test_a_query_held_to_its_namespace_passes_unchanged():
    query = 'sum(rate(x{namespace="team-a"}[1m])) / max_over_time(y{namespace="team-a"}[5m:1m])'
    assert confined(query, "namespace", "team-a") == query


OWN = 'sum(rate(app_requests_total{namespace="{namespace}", service="{service}"}[{window}]))'


def test_per_revision_queries_are_off_unless_the_operator_allows_the_namespace():
    annotations = {"leadtime.dev/query": OWN}
    refused = revision_settings(annotations, 0, PolicyConfig(), namespace="team-a", revision="r")
    assert (
        refused.queries == {}
        and "knative.query_namespaces" in refused.problems["leadtime.dev/query"]
    )
    for fence in (QueryFence(("team-a",)), QueryFence(("*",))):
        allowed = revision_settings(
            annotations, 0, PolicyConfig(), namespace="team-a", revision="r", fence=fence
        )
        assert allowed.queries == {"arrivals": OWN} and allowed.problems == {}
    elsewhere = revision_settings(
        {"leadtime.dev/query": 'sum(rate(app_requests_total{namespace="team-b"}[{window}]))'},
        0,
        PolicyConfig(),
        namespace="team-a",
        revision="r",
        fence=QueryFence(("team-a",)),
    )
    assert elsewhere.queries == {}
    assert 'must match namespace="team-a"' in elsewhere.problems["leadtime.dev/query"]


SIGNALS = SignalSet(
    name="test",
    arrivals="sum by (namespace, service) (rate(requests_total[{window}]))",
    concurrency="sum by (namespace, service) (in_flight)",
    queue=None,
    namespace_label="namespace",
    service_label="service",
)


async def test_a_slow_revision_query_delays_no_snapshot_and_costs_only_its_revision(
    aiohttp_server,
):
    """One revision's own query hangs 5 s (× the client's retries): the fleet's snapshot does
    not wait for it; that revision has no data past its budget, every other service has its
    numbers, and once the query answers again the revision has them too."""
    slow = asyncio.Event()
    slow.set()

    async def handler(request: web.Request) -> web.Response:
        query = request.query["query"]
        services = [("team-a", "chat"), ("team-b", "slow-00001")]
        labels = [{"namespace": namespace, "service": name} for namespace, name in services]
        if "slow_metric" in query:
            if slow.is_set():
                await asyncio.sleep(5)
            labels = [{}]
        value = "7" if "slow_metric" in query else "3"  # its own answer, told apart
        result = [{"metric": one, "value": [time.time(), value]} for one in labels]
        body = {"status": "success", "data": {"resultType": "vector", "result": result}}
        return web.json_response(body)

    app = web.Application()
    app.router.add_get("/api/v1/query", handler)
    server = await aiohttp_server(app)
    client = PrometheusClient(str(server.make_url("")), timeout_s=5.0, retries=3)
    source = PrometheusSource(client, SIGNALS, rate_window_s=5.0, service_query_budget_s=0.3)
    mine = ServiceKey("team-b", "slow-00001")
    source.service_queries[mine] = {"arrivals": 'sum(rate(slow_metric{namespace="team-b"}[1m]))'}
    try:
        first = await asyncio.wait_for(source.snapshot(time.time()), 1.0)
        assert isinstance(first[ServiceKey("team-a", "chat")], MetricsChunk)
        assert isinstance(first[mine], NoData)
        await asyncio.sleep(0.5)  # past the budget
        second = await asyncio.wait_for(source.snapshot(time.time()), 1.0)
        assert isinstance(second[mine], NoData) and "took over 0.3s" in second[mine].reason
        assert isinstance(second[ServiceKey("team-a", "chat")], MetricsChunk)
        slow.clear()
        await asyncio.wait_for(source.snapshot(time.time()), 1.0)  # starts a fast round
        await asyncio.sleep(0.2)
        third = await asyncio.wait_for(source.snapshot(time.time()), 1.0)
        assert isinstance(third[mine], MetricsChunk) and third[mine].arrivals[-1] == 7.0
    finally:
        await source.close()
        await client.close()


# --- warm starts and answers of any size -----------------------------------------------------


class RecordingPool:
    """What the loop hands the forecasting workers (a stand-in for ForecastPool's three calls)."""

    def __init__(self) -> None:
        self.fed: dict[str, list[tuple[float, int]]] = {}

    def feed(self, key: str, seconds: np.ndarray, origin_s: float) -> None:
        self.fed.setdefault(key, []).append((origin_s, int(seconds.size)))

    def submit(self, now: float) -> None:
        pass

    def forget(self, key: str) -> None:
        self.fed.pop(key, None)


class SlowHistory:
    """The simulator's metrics, with one service whose history pull hangs (a slow Prometheus)."""

    def __init__(self, cluster: LiveCluster, slow: ServiceKey) -> None:
        self.cluster, self.slow = cluster, slow

    async def snapshot(self, now):
        return await self.cluster.snapshot(now)

    async def history(self, key, start, end):
        if key == self.slow:
            await asyncio.sleep(3600)
        return await self.cluster.history(key, start, end)


def steady(rate: float, duration: float) -> Workload:
    times = np.linspace(0.0, duration, int(rate * duration), endpoint=False)
    tokens = np.full(times.size, 100)
    return Workload("steady", times, duration, prompt_tokens=tokens, output_tokens=tokens)


async def test_a_hanging_history_pull_delays_no_tick_and_ends_at_its_budget(monkeypatch):
    """Warm starts run beside the ticks: a service whose history never comes costs no tick any
    wait; past the budget it starts without history, and its seconds go to the workers."""
    monkeypatch.setattr("autoscaler.loop.WARM_START_BUDGET_S", 0.3)
    quick, slow = ServiceKey("team-a", "quick"), ServiceKey("team-b", "slow")
    cluster = LiveCluster([(quick, steady(2.0, 3600.0)), (slow, steady(2.0, 3600.0))], SimConfig())
    cluster.advance(600.0)
    pool = RecordingPool()
    clock = ManualClock()
    clock.time = 600.0
    loop = ControlLoop(
        load_config(None, env={}),
        source=SlowHistory(cluster, slow),
        actuator=cluster,
        catalog=cluster,
        clock=clock,
        forecasts=pool,
        warmup_s=0,
    )
    try:
        await asyncio.wait_for(loop.tick(), 1.0)  # the hanging pull is not awaited
        assert pool.fed[str(quick)][0][1] > 0  # its history went to the workers at once
        assert loop.states[slow].warming and str(slow) not in pool.fed
        await asyncio.sleep(0.5)  # past the budget
        assert not loop.states[slow].warming
        clock.advance(2.0)
        await asyncio.wait_for(loop.tick(), 1.0)
        assert [size for _, size in pool.fed[str(slow)]] and loop.states[slow].fed_until
    finally:
        await loop.cancel_warm_starts()


async def test_a_history_pull_asks_prometheus_for_its_service_alone(aiohttp_server):
    queries: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        queries.append(request.query["query"])
        return web.json_response(
            {"status": "success", "data": {"resultType": "matrix", "result": []}}
        )

    app = web.Application()
    app.router.add_get("/api/v1/query_range", handler)
    server = await aiohttp_server(app)
    client = PrometheusClient(str(server.make_url("")))
    source = PrometheusSource(client, SIGNALS, rate_window_s=5.0)
    try:
        await source.history(ServiceKey("team-a", "chat-00001"), 0.0, 600.0)
    finally:
        await client.close()
    assert queries and all(
        'namespace="team-a"' in query and 'service="chat-00001"' in query for query in queries
    )


async def test_an_answer_larger_than_the_limit_is_an_error_read_no_further(aiohttp_server):
    sent = []

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()  # chunked: no Content-Length to refuse it by
        await response.prepare(request)
        for _ in range(64):  # 64 MiB offered
            await response.write(b" " * (1 << 20))
            sent.append(1)
        return response

    app = web.Application()
    app.router.add_get("/api/v1/query", handler)
    server = await aiohttp_server(app)
    client = PrometheusClient(str(server.make_url("")), retries=0, max_answer_bytes=1 << 20)
    try:
        with pytest.raises(PrometheusError, match="over the 1,048,576 bytes read"):
            await client.query("up")
    finally:
        await client.close()


# --- the lower findings ------------------------------------------------------------------------


async def test_services_no_answer_names_are_forgotten_after_stale_after(aiohttp_server):
    """A service whose series stop is reported stale, then forgotten: what the source keeps
    does not grow with every service that ever existed."""
    named = {"gone": True}

    async def handler(request: web.Request) -> web.Response:
        services = ["kept"] + (["gone"] if named["gone"] else [])
        result = [
            {"metric": {"namespace": "ns", "service": s}, "value": [time.time(), "1"]}
            for s in services
        ]
        return web.json_response(
            {"status": "success", "data": {"resultType": "vector", "result": result}}
        )

    app = web.Application()
    app.router.add_get("/api/v1/query", handler)
    server = await aiohttp_server(app)
    client_ = PrometheusClient(str(server.make_url("")))
    source = PrometheusSource(client_, SIGNALS, rate_window_s=5.0, stale_after_s=30.0)
    try:
        now = time.time()
        await source.snapshot(now)
        assert ServiceKey("ns", "gone") in source.seen
        named["gone"] = False
        await source.snapshot(now + 10)
        assert ServiceKey("ns", "gone") in source.seen  # reported on while it may come back
        snapshot = await source.snapshot(now + 31)
        assert source.seen == {ServiceKey("ns", "kept")} and set(snapshot) == source.seen
    finally:
        await client_.close()


def service_loop(token: str | None = None) -> ControlLoop:
    """A loop over two simulated services, for the HTTP API's tests."""
    config = load_config(None, env={})
    config = dataclasses.replace(config, http=dataclasses.replace(config.http, token=token))
    keys = [ServiceKey("team-a", "chat"), ServiceKey("team-b", "code")]
    cluster = LiveCluster([(key, steady(1.0, 600.0)) for key in keys], SimConfig())
    return ControlLoop(
        config, source=cluster, actuator=cluster, catalog=cluster, clock=ManualClock(), warmup_s=0
    )


async def raw_request(port: int, head: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(65536), 5)
    writer.close()
    return answer


async def test_a_token_that_is_not_utf8_is_refused_not_an_error(aiohttp_server):
    loop = service_loop(token="s3cret")
    await loop.tick()
    server = await aiohttp_server(make_app(loop, loop.config))
    head = (
        b"POST /api/v1/services/team-a/chat/pause HTTP/1.1\r\nHost: x\r\n"
        b"Authorization: Bearer \xff\xfe\xfd\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    answer = await raw_request(server.port, head)
    assert answer.startswith(b"HTTP/1.1 403"), answer[:200]
    assert not loop.states[ServiceKey("team-a", "chat")].paused


async def test_fleet_wide_answers_are_built_once_per_tick(aiohttp_client, monkeypatch):
    """However often anyone asks for the service list or /metrics, one build per tick."""
    loop = service_loop()
    await loop.tick()
    built: list[str] = []
    summary = http_app._summary
    monkeypatch.setattr(http_app, "_summary", lambda state: built.append("s") or summary(state))
    exposition = loop.telemetry.exposition
    monkeypatch.setattr(loop.telemetry, "exposition", lambda: built.append("m") or exposition())
    api = await aiohttp_client(make_app(loop, loop.config))
    first = [await (await api.get(path)).read() for path in ("/api/v1/services", "/metrics")]
    for _ in range(20):
        assert [await (await api.get(p)).read() for p in ("/api/v1/services", "/metrics")] == first
    assert built.count("s") == 2 and built.count("m") == 1  # two services, one exposition
    loop.clock.advance(2.0)
    await loop.tick()
    await api.get("/api/v1/services")
    assert built.count("s") == 4  # a new tick, a new list


def test_a_label_selector_past_the_cap_is_refused_before_it_is_read():
    with pytest.raises(SelectorError, match="at most 1,024 are read"):
        parse_selector("a" * 8000)
    assert parse_selector("service=chat,tier in (gpu,cpu)")


async def test_an_activator_probe_reads_a_few_bytes_of_whatever_answers(aiohttp_server):
    """A probe target that answers with an endless body costs a few bytes, not the body."""
    sent = []

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        for _ in range(600):  # 600 MiB offered
            try:
                await response.write(b"x" * (1 << 20))
            except (ConnectionResetError, RuntimeError):
                break
            sent.append(1)
        return response

    app = web.Application()
    app.router.add_get("/healthz", endless)
    server = await aiohttp_server(app)
    async with aiohttp.ClientSession() as session:
        ok, why = await activator_answers(session, str(server.make_url("/healthz")), 5.0)
    assert not ok and "status 200" in why
    assert len(sent) < 50, f"{len(sent)} MiB sent before the probe let go"
