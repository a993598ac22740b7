"""SLO attainment from histogram buckets, as functions (`adapters/prometheus/attainment.py`), and
the source's handling of a failing or garbled histogram answer (a fake Prometheus)."""

from __future__ import annotations

import logging
import math
import time

import promql_parser
from aiohttp import web

from adapters.prometheus.attainment import estimate, group
from adapters.prometheus.client import PrometheusClient, Sample
from adapters.prometheus.signals import (
    BUILT_IN,
    HISTOGRAM_LABEL,
    KNATIVE,
    VLLM,
    VLLM_TTFT,
    LatencyHistogram,
)
from adapters.prometheus.source import PrometheusSource
from autoscaler.ports import MetricsChunk, ServiceKey
from autoscaler.slo import ATTAINMENT_WINDOW_S, Attainment

MS = LatencyHistogram("revision_request_latencies", unit_s=0.001, ttft=False)
INF = math.inf


def test_only_buckets_at_or_below_the_slo_count_as_met():
    buckets = {0.5: 50.0, 1.0: 80.0, 2.5: 95.0, INF: 100.0}
    assert estimate(VLLM_TTFT, buckets, 2.0) == Attainment(
        80.0, 100.0, "vllm:time_to_first_token_seconds le=1 (SLO 2s)"
    )
    assert estimate(VLLM_TTFT, buckets, 2.5) == Attainment(
        95.0, 100.0, "vllm:time_to_first_token_seconds le=2.5 (SLO 2.5s)"
    )
    assert estimate(VLLM_TTFT, buckets, 0.99) == Attainment(
        50.0, 100.0, "vllm:time_to_first_token_seconds le=0.5 (SLO 0.99s)"
    )


def test_an_edge_in_milliseconds_is_compared_in_seconds():
    buckets = {1000.0: 60.0, 2000.0: 75.0, INF: 100.0}
    found = estimate(MS, buckets, 2.0)
    assert isinstance(found, Attainment) and found.met == 75.0  # 2000 ms is the 2 s SLO
    assert found.source.startswith("revision_request_latencies le=2000ms (SLO 2s; whole-request")
    assert "lower bound" in found.source


def test_an_edge_far_below_the_slo_is_said_and_none_below_is_no_estimate():
    far = estimate(VLLM_TTFT, {0.1: 20.0, 10.0: 90.0, INF: 100.0}, 2.0)
    assert isinstance(far, Attainment) and far.ratio == 0.2
    assert "nearest edge under half the SLO: a loose lower bound" in far.source
    # exactly half the SLO is not "under half"
    assert estimate(VLLM_TTFT, {1.0: 20.0, INF: 100.0}, 2.0) == Attainment(
        20.0, 100.0, "vllm:time_to_first_token_seconds le=1 (SLO 2s)"
    )
    none = estimate(VLLM_TTFT, {5.0: 20.0, INF: 100.0}, 2.0)
    assert none == (
        "vllm:time_to_first_token_seconds: no bucket edge at or below the SLO 2s "
        "(its lowest edge is 5s)"
    )


def test_counts_over_the_total_are_clamped_and_a_large_excess_is_said():
    noise = estimate(VLLM_TTFT, {1.0: 100.3, INF: 100.0}, 2.0)  # increase's extrapolation
    assert isinstance(noise, Attainment) and noise.met == noise.total == 100.0
    assert "clamped" not in noise.source
    reset = estimate(VLLM_TTFT, {1.0: 140.0, INF: 100.0}, 2.0)  # +Inf reset mid-window
    assert isinstance(reset, Attainment) and reset.met == 100.0
    assert "le bucket 40.0 over +Inf, clamped" in reset.source


def test_no_total_or_a_bad_slo_is_no_estimate():
    assert "no +Inf bucket" in str(estimate(VLLM_TTFT, {1.0: 5.0}, 2.0))
    for slo in (0.0, -1.0, math.nan, math.inf):
        assert "not a positive duration" in str(estimate(VLLM_TTFT, {1.0: 5.0, INF: 9.0}, slo))


def bucket(service: str, le: str, value: float, histogram: str = VLLM_TTFT.metric) -> Sample:
    labels = {"namespace": "ns", "service": service, "le": le, HISTOGRAM_LABEL: histogram}
    return Sample(labels, time.time(), value)


def test_grouping_adds_up_equal_edges_and_refuses_garbage_per_service():
    samples = [
        bucket("ok", "1.0", 3.0),
        bucket("ok", "1", 2.0),  # another pod writing the same edge
        bucket("ok", "+Inf", 10.0),
        bucket("nan", "1.0", math.nan),
        bucket("nan", "+Inf", 10.0),
        bucket("negative", "+Inf", -1.0),
        bucket("bad-le", "soon", 1.0),
        bucket("bad-le", "+Inf", 1.0),
        bucket("alien", "+Inf", 1.0, histogram="something_else"),
        Sample({"le": "+Inf", HISTOGRAM_LABEL: VLLM_TTFT.metric}, 0.0, 1.0),  # no service
    ]
    found, problems = group(samples, VLLM)
    assert found == {ServiceKey("ns", "ok"): (VLLM_TTFT, {1.0: 5.0, INF: 10.0})}
    assert problems[ServiceKey("ns", "nan")].endswith(
        "bucket le=1.0 counts nan (not a finite count)"
    )
    assert "counts -1.0" in problems[ServiceKey("ns", "negative")]
    assert "bucket edge le='soon' is not a number" in problems[ServiceKey("ns", "bad-le")]
    assert "unknown histogram 'something_else'" in problems[ServiceKey("ns", "alien")]
    assert len(problems) == 4


def test_every_built_in_set_asks_one_valid_query_with_the_ttft_histogram_first():
    for signals in BUILT_IN.values():
        query = signals.render_attainment(ATTAINMENT_WINDOW_S)
        assert query is not None
        promql_parser.parse(query)  # valid PromQL
        assert query.index(VLLM_TTFT.metric) < query.index(signals.latency_histograms[1].metric)
        assert "[600s]" in query and "le)" in query
        assert f"or on ({signals.namespace_label}, {signals.service_label})" in query
    assert KNATIVE.latency_histograms[1] == MS


# ---------------------------------------------------------------- the source, on a fake Prometheus
def _vector(*samples: dict) -> web.Response:
    return web.json_response(
        {"status": "success", "data": {"resultType": "vector", "result": list(samples)}}
    )


def _sample(labels: dict, value: str) -> dict:
    return {
        "metric": {"namespace": "ns", "service": "svc", **labels},
        "value": [time.time(), value],
    }


async def _source(aiohttp_server, histogram_answer, **options) -> PrometheusSource:
    async def handler(request: web.Request) -> web.Response:
        if HISTOGRAM_LABEL in request.query["query"]:
            return histogram_answer()
        return _vector(_sample({}, "1"))  # every demand signal: 1 for ns/svc

    app = web.Application()
    app.router.add_get("/api/v1/query", handler)
    server = await aiohttp_server(app)
    client = PrometheusClient(str(server.make_url("")), retries=0)
    return PrometheusSource(client, VLLM, **options)


async def test_a_failing_histogram_query_keeps_the_chunk_and_says_why(aiohttp_server):
    def refused() -> web.Response:
        body = {"status": "error", "errorType": "bad_data", "error": "too many samples"}
        return web.json_response(body, status=422)

    source = await _source(aiohttp_server, refused)
    try:
        chunk = (await source.snapshot(time.time()))[ServiceKey("ns", "svc")]
    finally:
        await source.client.close()
    assert isinstance(chunk, MetricsChunk) and chunk.attainment is None
    assert chunk.arrivals[-1] == 1.0
    assert source.attainment_notes[ServiceKey("ns", "svc")] == (
        "prometheus: HTTP 422: bad_data: too many samples"
    )


async def test_garbled_buckets_keep_the_chunk_and_are_logged_once(aiohttp_server, caplog):
    def garbled() -> web.Response:
        labels = {HISTOGRAM_LABEL: VLLM_TTFT.metric}
        return _vector(
            _sample({**labels, "le": "1.0"}, "NaN"), _sample({**labels, "le": "+Inf"}, "4")
        )

    source = await _source(aiohttp_server, garbled)
    caplog.set_level(logging.INFO, logger="adapters.prometheus.source")
    try:
        for _ in range(3):
            chunk = (await source.snapshot(time.time()))[ServiceKey("ns", "svc")]
            assert isinstance(chunk, MetricsChunk) and chunk.attainment is None
    finally:
        await source.client.close()
    logged = [r.getMessage() for r in caplog.records if "no SLO attainment" in r.getMessage()]
    assert logged == [
        "no SLO attainment for 1 service(s): ns/svc: vllm:time_to_first_token_seconds: "
        "bucket le=1.0 counts nan (not a finite count)"
    ]


async def test_an_slo_lookup_that_fails_costs_only_the_attainment(aiohttp_server):
    def fine() -> web.Response:
        labels = {HISTOGRAM_LABEL: VLLM_TTFT.metric}
        return _vector(
            _sample({**labels, "le": "1.0"}, "3"), _sample({**labels, "le": "+Inf"}, "4")
        )

    def broken(key: ServiceKey) -> float:
        raise KeyError(key.name)

    source = await _source(aiohttp_server, fine, slo_ttft_s=broken)
    try:
        chunk = (await source.snapshot(time.time()))[ServiceKey("ns", "svc")]
        assert isinstance(chunk, MetricsChunk) and chunk.attainment is None
        assert (
            "no SLO for this service (KeyError" in source.attainment_notes[ServiceKey("ns", "svc")]
        )
        source.slo_ttft_s = lambda key: 1.5  # wired after construction, read every snapshot
        chunk = (await source.snapshot(time.time()))[ServiceKey("ns", "svc")]
    finally:
        await source.client.close()
    assert isinstance(chunk, MetricsChunk)
    assert chunk.attainment == Attainment(
        3.0, 4.0, "vllm:time_to_first_token_seconds le=1 (SLO 1.5s)"
    )
    assert ServiceKey("ns", "svc") not in source.attainment_notes
