"""The Prometheus metrics source against a real Prometheus (and a fake one for garbage)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time

import numpy as np
import pytest
from aiohttp import web

from adapters.prometheus.client import PrometheusClient, PrometheusError
from adapters.prometheus.signals import KNATIVE, KNATIVE_OTEL, VLLM, SignalSet
from adapters.prometheus.source import PrometheusSource, source_from_config
from autoscaler.config import config_from_mapping
from autoscaler.errors import InputError
from autoscaler.ports import MetricsChunk, NoData, ServiceKey
from leadtime import main
from tests.helpers.exporters import TEST_SIGNALS
from tests.helpers.prometheus import (
    SERVICES,
    Exporter,
    inflight,
    kv_cache,
    rate,
    serve_exporter,
    start_prometheus,
)

pytestmark = pytest.mark.prometheus


@pytest.fixture(scope="module")
def prometheus():
    exporter = Exporter()
    server, port = serve_exporter(exporter)
    prom = start_prometheus(port)
    try:
        _wait_for_samples(prom.url, 8)
        yield prom, exporter
    finally:
        prom.remove()
        server.shutdown()


def _wait_for_samples(url: str, seconds: int) -> None:
    """Until every service has `seconds` of counter samples (a rate needs two)."""

    async def count() -> int:
        client = PrometheusClient(url)
        try:
            samples = await client.query("min(count_over_time(leadtime_test_requests_total[1m]))")
            return int(samples[0].value) if samples else 0
        finally:
            await client.close()

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if asyncio.run(count()) >= seconds:
            return
        time.sleep(0.5)
    pytest.fail("prometheus scraped too few samples in 60 s")


async def test_one_query_per_signal_covers_every_service_with_the_right_numbers(prometheus):
    prom, _ = prometheus
    client = PrometheusClient(prom.url)
    source = PrometheusSource(client, TEST_SIGNALS, rate_window_s=5.0)
    try:
        snapshot = await source.snapshot(time.time())
    finally:
        await client.close()
    assert client.requests == 3  # arrivals, concurrency, queue: batched across 40 services
    assert len(snapshot) == SERVICES
    for i in range(SERVICES):
        chunk = snapshot[ServiceKey(f"ns{i % 3}", f"svc-{i}")]
        assert isinstance(chunk, MetricsChunk), chunk
        assert chunk.arrivals[-1] == pytest.approx(rate(i), rel=0.1)
        assert chunk.concurrency[-1] == inflight(i)
        assert chunk.queue[-1] == inflight(i) / 2


async def snapshot_of(url: str, signals: SignalSet, key: ServiceKey) -> MetricsChunk | NoData:
    """One snapshot from a fresh source over the real Prometheus; the entry of `key`."""
    client = PrometheusClient(url)
    source = PrometheusSource(client, signals, rate_window_s=5.0)
    try:
        return (await source.snapshot(time.time()))[key]
    finally:
        await client.close()


@pytest.mark.parametrize("signals", [KNATIVE, KNATIVE_OTEL], ids=lambda s: s.name)
async def test_knative_names_are_read_with_their_labels(prometheus, signals):
    prom, _ = prometheus
    chunk = await snapshot_of(prom.url, signals, ServiceKey("ns2", "svc-5"))
    assert isinstance(chunk, MetricsChunk)
    assert chunk.arrivals[-1] == pytest.approx(rate(5), rel=0.1)
    assert chunk.concurrency[-1] == inflight(5)


async def test_vllm_names_are_read_running_plus_waiting(prometheus):
    prom, _ = prometheus
    chunk = await snapshot_of(prom.url, VLLM, ServiceKey("ns0", "svc-6"))
    assert isinstance(chunk, MetricsChunk)
    assert chunk.arrivals[-1] == pytest.approx(rate(6), rel=0.1)
    assert chunk.concurrency[-1] == inflight(6)  # running + waiting
    assert chunk.queue[-1] == inflight(6) / 2  # waiting
    extras = chunk.extras or {}
    assert extras["kv_cache_usage"] == kv_cache(6)
    assert extras["generation_tokens_per_s"] == pytest.approx(100 * rate(6), rel=0.1)
    assert extras["prompt_tokens_per_s"] == pytest.approx(1000 * rate(6), rel=0.1)
    assert extras["gpu_utilisation"] == pytest.approx(0.46)
    odd = await snapshot_of(prom.url, VLLM, ServiceKey("ns1", "svc-7"))
    assert isinstance(odd, MetricsChunk)
    assert "gpu_utilisation" not in (odd.extras or {})  # no DCGM there: left out, not zero


async def test_a_counter_reset_does_not_read_as_a_drop_in_demand(prometheus):
    prom, exporter = prometheus
    exporter.reset_at = time.time()  # every pod restarted: counters from 0
    await asyncio.sleep(2.5)
    chunk = await snapshot_of(prom.url, TEST_SIGNALS, ServiceKey("ns2", "svc-11"))
    assert isinstance(chunk, MetricsChunk)
    assert chunk.arrivals[-1] == pytest.approx(rate(11), rel=0.25)


async def test_successive_snapshots_cover_every_second_once(prometheus):
    prom, _ = prometheus
    client = PrometheusClient(prom.url)
    source = PrometheusSource(client, TEST_SIGNALS, rate_window_s=5.0)
    key = ServiceKey("ns0", "svc-3")
    try:
        first = (await source.snapshot(time.time()))[key]
        await asyncio.sleep(2.2)
        second = (await source.snapshot(time.time()))[key]
    finally:
        await client.close()
    assert isinstance(first, MetricsChunk) and isinstance(second, MetricsChunk)
    assert second.start == first.end
    assert 2 <= second.arrivals.size <= 3


async def test_history_pulls_per_second_arrivals_in_chunks(prometheus):
    prom, _ = prometheus
    client = PrometheusClient(prom.url)
    source = PrometheusSource(client, TEST_SIGNALS, rate_window_s=5.0)
    now = time.time()
    try:
        history = await source.history(ServiceKey("ns1", "svc-4"), now - 8, now)
    finally:
        await client.close()
    assert history.size == 8
    known = history[~np.isnan(history)]
    assert known.size >= 3
    assert np.median(known) == pytest.approx(rate(4), rel=0.15)


async def test_a_series_that_stops_is_no_data_not_zero(prometheus):
    prom, exporter = prometheus
    exporter.hidden.add(7)
    try:
        await asyncio.sleep(2.5)  # a scrape without it: Prometheus marks the series stale
        client = PrometheusClient(prom.url)
        source = PrometheusSource(client, TEST_SIGNALS, rate_window_s=5.0)
        source.seen.add(ServiceKey("ns1", "svc-7"))
        try:
            snapshot = await source.snapshot(time.time())
        finally:
            await client.close()
        gone = snapshot[ServiceKey("ns1", "svc-7")]
        assert isinstance(gone, NoData) and "no " in gone.reason and "series" in gone.reason
        assert isinstance(snapshot[ServiceKey("ns2", "svc-8")], MetricsChunk)
    finally:
        exporter.hidden.discard(7)


async def all_chunks(source: PrometheusSource, limit_s: float = 30.0) -> bool:
    """Whether every service has usable data within `limit_s` (polling)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        snapshot = await source.snapshot(time.time())
        if snapshot and all(isinstance(v, MetricsChunk) for v in snapshot.values()):
            return True
        await asyncio.sleep(0.5)
    return False


async def test_prometheus_stopped_mid_run_gives_no_data_then_recovers(prometheus):
    prom, _ = prometheus
    client = PrometheusClient(prom.url, timeout_s=1.0, retries=1, backoff_s=0.05)
    source = PrometheusSource(client, TEST_SIGNALS, rate_window_s=5.0)
    try:
        assert await all_chunks(source)
        prom.stop()
        down = await source.snapshot(time.time())
        assert len(down) == SERVICES
        for item in down.values():
            assert isinstance(item, NoData) and item.reason.startswith("prometheus: unreachable")
        prom.start()
        assert await all_chunks(source)  # recovers by itself once Prometheus is back
        # a full rate window of scrapes again before the tests after this one
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            full = await client.query("min(count_over_time(leadtime_test_requests_total[5s]))")
            if full and full[0].value >= 5:
                break
            await asyncio.sleep(0.5)
    finally:
        await client.close()


# ----------------------------------------------------------- a fake Prometheus for garbage
async def fake_prometheus(aiohttp_server, handler, **options) -> PrometheusClient:
    """A client of a test server answering `/api/v1/query` with `handler`."""
    app = web.Application()
    app.router.add_get("/api/v1/query", handler)
    server = await aiohttp_server(app)
    return PrometheusClient(str(server.make_url("")), **options)


ANSWERS = {
    "not json": (200, "<html>oops</html>"),
    "server error": (
        503,
        json.dumps({"status": "error", "errorType": "unavailable", "error": "busy"}),
    ),
    "query error": (
        400,
        json.dumps({"status": "error", "errorType": "bad_data", "error": "parse error"}),
    ),
    "matrix for an instant query": (
        200,
        json.dumps({"status": "success", "data": {"resultType": "matrix", "result": []}}),
    ),
    "malformed sample": (
        200,
        json.dumps(
            {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}}]}}
        ),
    ),
}


@pytest.mark.parametrize("case", list(ANSWERS))
async def test_garbage_answers_are_no_data_with_the_reason(aiohttp_server, case):
    status, body = ANSWERS[case]
    seen_headers = []

    async def handler(request: web.Request) -> web.Response:
        seen_headers.append(dict(request.headers))
        return web.Response(status=status, text=body, content_type="application/json")

    client = await fake_prometheus(
        aiohttp_server,
        handler,
        retries=1,
        backoff_s=0.01,
        bearer_token="t0ken",
        headers={"X-Scope-OrgID": "tenant-a"},
    )
    source = PrometheusSource(client, TEST_SIGNALS)
    source.seen.add(ServiceKey("ns", "svc"))
    try:
        snapshot = await source.snapshot(time.time())
    finally:
        await client.close()
    item = snapshot[ServiceKey("ns", "svc")]
    assert isinstance(item, NoData) and item.reason.startswith("prometheus: ")
    assert seen_headers[0]["Authorization"] == "Bearer t0ken"
    assert seen_headers[0]["X-Scope-OrgID"] == "tenant-a"
    transient = case in ("server error", "not json") and status >= 500
    assert len(seen_headers) == (3 * 2 if transient else 3)  # retried only when transient


async def test_nan_negative_and_stale_values_are_refused_per_service(aiohttp_server):
    now = time.time()

    def vector(value: str, at: float) -> dict:
        return {"metric": {"namespace": "ns", "service": "svc"}, "value": [at, value]}

    answers = {
        "rate(": [vector("NaN", now)],
        "leadtime_test_in_flight": [vector("3", now)],
        "leadtime_test_queued": [vector("1", now - 600)],
    }

    async def handler(request: web.Request) -> web.Response:
        query = request.query["query"]
        result = next(v for k, v in answers.items() if k in query)
        payload = {"status": "success", "data": {"resultType": "vector", "result": result}}
        return web.json_response(payload)

    client = await fake_prometheus(aiohttp_server, handler)
    source = PrometheusSource(client, TEST_SIGNALS)
    try:
        item = (await source.snapshot(now))[ServiceKey("ns", "svc")]
        assert isinstance(item, NoData) and "arrivals is nan" in item.reason
        answers["rate("] = [vector("2.5", now)]
        item = (await source.snapshot(now))[ServiceKey("ns", "svc")]
        assert isinstance(item, NoData) and "queue stale" in item.reason
    finally:
        await client.close()


def test_a_client_error_is_one_exception_type():
    async def go():
        client = PrometheusClient("http://127.0.0.1:9", timeout_s=0.5, retries=0)
        try:
            await client.query("up")
        finally:
            await client.close()

    with pytest.raises(PrometheusError, match="unreachable"):
        asyncio.run(go())


async def test_all_requests_waiting_and_none_in_service_is_a_poke(aiohttp_server):
    now = time.time()
    values = {"rate(": "0.5", "leadtime_test_in_flight": "2", "leadtime_test_queued": "2"}

    async def handler(request: web.Request) -> web.Response:
        value = next(v for k, v in values.items() if k in request.query["query"])
        sample = {"metric": {"namespace": "ns", "service": "svc"}, "value": [now, value]}
        result = {"resultType": "vector", "result": [sample]}
        return web.json_response({"status": "success", "data": result})

    client = await fake_prometheus(aiohttp_server, handler)
    source = PrometheusSource(client, TEST_SIGNALS)
    try:
        woken = (await source.snapshot(now))[ServiceKey("ns", "svc")]
        values["leadtime_test_in_flight"] = "5"
        serving = (await source.snapshot(now + 2))[ServiceKey("ns", "svc")]
    finally:
        await client.close()
    assert isinstance(woken, MetricsChunk) and woken.poke
    assert isinstance(serving, MetricsChunk) and not serving.poke


async def test_a_revision_at_zero_has_only_the_activators_waiting_requests(aiohttp_server):
    """No pod, so no request-count series: the waiting requests alone wake it (not no-data)."""
    now = time.time()

    async def handler(request: web.Request) -> web.Response:
        query = request.query["query"]
        sample = {"metric": {"namespace": "ns", "service": "svc"}, "value": [now, "1"]}
        found = [] if "rate(" in query else [sample]  # no arrivals series at all
        return web.json_response(
            {"status": "success", "data": {"resultType": "vector", "result": found}}
        )

    client = await fake_prometheus(aiohttp_server, handler)
    try:
        chunk = (await PrometheusSource(client, TEST_SIGNALS).snapshot(now))[
            ServiceKey("ns", "svc")
        ]
    finally:
        await client.close()
    assert isinstance(chunk, MetricsChunk) and chunk.poke
    assert chunk.arrivals.sum() == 0 and chunk.queue[-1] == 1


def test_the_source_is_built_from_the_configuration(tmp_path):
    token = tmp_path / "token"
    token.write_text("abc123\n")
    settings = config_from_mapping(
        {
            "prometheus": {
                "url": "http://127.0.0.1:9090",
                "signals": "vllm",
                "token_file": str(token),
                "tenant": "team-a",
                "rate_window": "15s",
            }
        }
    ).prometheus
    source = source_from_config(settings)
    assert source.client.bearer_token == "abc123"
    assert source.client.headers == {"X-Scope-OrgID": "team-a"}
    assert source.signals is VLLM and source.rate_window_s == 15.0
    missing = dataclasses.replace(settings, token_file=str(tmp_path / "nope"))
    with pytest.raises(InputError, match=r"prometheus\.token_file: cannot read it"):
        source_from_config(missing)


def test_backtest_reads_its_history_from_prometheus(prometheus, capsys):
    prom, _ = prometheus
    end = time.time()
    argv = ["backtest", "--prometheus", prom.url, "--query"]
    argv += ["sum(rate(leadtime_test_requests_total[5s]))", "--start", str(end - 40)]
    argv += ["--end", str(end), "--resolution", "1s", "--horizon", "3s"]
    argv += ["--models", "naive,seasonal_naive", "--origins", "5", "--json"]
    assert main(argv) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["model"] for row in rows] == ["naive", "seasonal_naive"]
    assert rows[0]["mase"] is not None


def test_backtest_from_prometheus_names_a_missing_query_and_a_dead_server(capsys):
    assert main(["backtest", "--prometheus", "http://127.0.0.1:9"]) == 2
    assert "needs --query" in capsys.readouterr().err
    argv = ["backtest", "--prometheus", "http://127.0.0.1:9", "--query", "up"]
    assert main(argv) == 2
    assert "unreachable" in capsys.readouterr().err


async def test_a_slow_prometheus_times_out_into_no_data(aiohttp_server):
    async def handler(request: web.Request) -> web.Response:
        await asyncio.sleep(2.0)
        return web.json_response(
            {"status": "success", "data": {"resultType": "vector", "result": []}}
        )

    client = await fake_prometheus(aiohttp_server, handler, timeout_s=0.3, retries=0)
    source = PrometheusSource(client, TEST_SIGNALS)
    source.seen.add(ServiceKey("ns", "svc"))
    try:
        item = (await source.snapshot(time.time()))[ServiceKey("ns", "svc")]
    finally:
        await client.close()
    assert isinstance(item, NoData) and "timed out after 0.3s" in item.reason


async def test_custom_queries_from_the_configuration_run_as_given(prometheus):
    prom, _ = prometheus
    settings = config_from_mapping(
        {
            "prometheus": {
                "url": prom.url,
                "signals": "custom",
                "query_arrivals": TEST_SIGNALS.arrivals,
                "query_concurrency": TEST_SIGNALS.concurrency,
                "rate_window": "5s",
            }
        }
    ).prometheus
    source = source_from_config(settings)
    try:
        snapshot = await source.snapshot(time.time())
    finally:
        await source.client.close()
    assert source.client.requests == 2  # no queue query given: taken as 0
    chunk = snapshot[ServiceKey("ns1", "svc-10")]
    assert isinstance(chunk, MetricsChunk)
    assert chunk.arrivals[-1] == pytest.approx(rate(10), rel=0.1)
    assert chunk.queue[-1] == 0


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"signals": "custom", "query_arrivals": "x"}, "both needed with signals: custom"),
        ({"query_arrivals": "x"}, "must be custom when query_"),
        ({"signals": "custom", "query_arrivals": "", "query_concurrency": "y"}, "PromQL"),
    ],
)
def test_custom_query_settings_are_checked_at_load(section, message):
    with pytest.raises(InputError, match=message):
        config_from_mapping({"prometheus": section})


async def test_a_failing_extra_signal_is_left_out_and_demand_still_counts(aiohttp_server):
    now = time.time()

    async def handler(request: web.Request) -> web.Response:
        query = request.query["query"]
        if "DCGM" in query:
            return web.json_response(
                {"status": "error", "errorType": "bad_data", "error": "x"}, status=400
            )
        sample = {"metric": {"namespace": "ns", "service": "svc"}, "value": [now, "1"]}
        return web.json_response(
            {"status": "success", "data": {"resultType": "vector", "result": [sample]}}
        )

    client = await fake_prometheus(aiohttp_server, handler)
    try:
        item = (await PrometheusSource(client, VLLM).snapshot(now))[ServiceKey("ns", "svc")]
    finally:
        await client.close()
    assert isinstance(item, MetricsChunk)
    assert item.extras is not None
    assert "gpu_utilisation" not in item.extras and item.extras["kv_cache_usage"] == 1.0


async def test_a_service_with_its_own_query_template(prometheus):
    prom, _ = prometheus
    client = PrometheusClient(prom.url)
    source = PrometheusSource(client, KNATIVE, rate_window_s=5.0)
    own = ServiceKey("ns1", "svc-13")
    source.service_queries[own] = {
        "arrivals": 'sum(rate(leadtime_test_requests_total{namespace="{namespace}",'
        'service="{service}"}[{window}]))',
    }
    broken = ServiceKey("ns2", "svc-14")
    source.service_queries[broken] = {"arrivals": "sum(rate(nonsense{[1m]))"}
    try:
        first = await source.snapshot(time.time())
        assert isinstance(first[own], NoData)  # its own round runs beside the snapshot
        await asyncio.gather(*source._own_rounds.values())
        snapshot = await source.snapshot(time.time())
    finally:
        await source.close()
        await client.close()
    chunk = snapshot[own]
    assert isinstance(chunk, MetricsChunk)
    assert chunk.arrivals[-1] == pytest.approx(rate(13), rel=0.1)
    assert chunk.concurrency[-1] == inflight(13)  # the shared Knative query still serves
    failed = snapshot[broken]
    assert isinstance(failed, NoData) and "arrivals of ns2/svc-14" in failed.reason
    assert isinstance(snapshot[ServiceKey("ns0", "svc-3")], MetricsChunk)  # the others go on
