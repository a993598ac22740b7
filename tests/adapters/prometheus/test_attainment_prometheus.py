"""SLO attainment read by the Prometheus source from latency histograms a real Prometheus scraped.

A test exporter serves vLLM-style histograms (`vllm:time_to_first_token_seconds_bucket{le=...}`)
and Knative's queue-proxy latency in milliseconds, growing at known rates with known shares per
bucket; Debian's Prometheus scrapes it every second. Every bucket series of the exporter is
sampled at the same instants, so `increase` extrapolates them alike and the share read back is
the share served, to float precision.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import pytest

from adapters.prometheus.client import PrometheusClient
from adapters.prometheus.signals import KNATIVE, VLLM, SignalSet
from adapters.prometheus.source import PrometheusSource
from autoscaler.ports import MetricsChunk, ServiceKey
from autoscaler.slo import Attainment
from tests.helpers.prometheus import serve_exporter, start_prometheus

pytestmark = pytest.mark.prometheus

TTFT = "vllm:time_to_first_token_seconds"
E2E = "vllm:e2e_request_latency_seconds"
KNATIVE_LATENCY = "revision_request_latencies"

# service -> histogram -> [(le as written, cumulative share)], and requests/s per pod
VLLM_SERVICES: dict[str, dict[str, list[tuple[str, float]]]] = {
    # vLLM's own edges around 2 s are 1.0 and 2.5: the SLO falls between them
    "ttft": {
        TTFT: [
            ("0.25", 0.3),
            ("0.5", 0.6),
            ("1.0", 0.8),
            ("2.5", 0.95),
            ("5.0", 0.99),
            ("+Inf", 1),
        ],
        E2E: [("1.0", 0.1), ("2.0", 0.2), ("+Inf", 1)],  # present, but TTFT wins
    },
    "e2e-only": {E2E: [("1.0", 0.5), ("2.0", 0.7), ("5.0", 0.9), ("+Inf", 1)]},
    "coarse": {TTFT: [("0.1", 0.2), ("10.0", 0.9), ("+Inf", 1)]},
    "no-inf": {TTFT: [("0.5", 0.4), ("1.0", 0.9)]},
    "plain": {},
}
KNATIVE_REVISIONS: dict[str, dict[str, list[tuple[str, float]]]] = {
    "kn-ms": {KNATIVE_LATENCY: [("500", 0.4), ("1000", 0.6), ("2000", 0.75), ("+Inf", 1)]},
    "kn-ttft": {
        TTFT: [("1.0", 0.9), ("2.5", 0.97), ("+Inf", 1)],
        KNATIVE_LATENCY: [("1000", 0.1), ("+Inf", 1)],
    },
}
PODS = (("a", 4.0), ("b", 2.0))
"""Two pods per service: pod b writes `le="1"` where pod a writes `le="1.0"`."""


@dataclass
class HistogramExporter:
    started: float = field(default_factory=time.time)

    def text(self) -> str:
        elapsed = time.time() - self.started
        lines: list[str] = []
        for name, histograms in VLLM_SERVICES.items():
            labels = f'namespace="ns",service="{name}"'
            lines += _demand("vllm", labels)
            lines += _histograms(histograms, labels, elapsed)
        idle = 'namespace="ns",service="idle"'  # requests long ago, none in the window
        lines += _demand("vllm", idle)
        lines += [f'{TTFT}_bucket{{{idle},le="1.0"}} 7', f'{TTFT}_bucket{{{idle},le="+Inf"}} 9']
        for name, histograms in KNATIVE_REVISIONS.items():
            labels = f'namespace_name="kn",service_name="svc",revision_name="{name}"'
            lines += _demand("knative", labels)
            lines += _histograms(histograms, labels, elapsed)
        return "\n".join(lines) + "\n"


def _demand(kind: str, labels: str) -> list[str]:
    if kind == "vllm":
        return [
            f"vllm:request_success_total{{{labels}}} 10",
            f"vllm:num_requests_running{{{labels}}} 1",
            f"vllm:num_requests_waiting{{{labels}}} 0",
        ]
    return [f"revision_request_count{{{labels}}} 10", f"revision_queue_depth{{{labels}}} 1"]


def _histograms(
    histograms: dict[str, list[tuple[str, float]]], labels: str, elapsed: float
) -> list[str]:
    lines = []
    for metric, buckets in histograms.items():
        for pod, rate in PODS:
            for le, share in buckets:
                written = le.removesuffix(".0") if pod == "b" else le
                count = rate * elapsed * share
                lines.append(f'{metric}_bucket{{{labels},pod="{pod}",le="{written}"}} {count}')
    return lines


@pytest.fixture(scope="module")
def prometheus():
    exporter = HistogramExporter()
    server, port = serve_exporter(exporter)
    prom = start_prometheus(port)
    try:
        _wait_for_scrapes(prom.url, 4)
        yield prom
    finally:
        prom.remove()
        server.shutdown()


def _wait_for_scrapes(url: str, scrapes: int) -> None:
    async def count() -> int:
        client = PrometheusClient(url)
        try:
            samples = await client.query(f'min(count_over_time({TTFT}_bucket{{le="+Inf"}}[1m]))')
            return int(samples[0].value) if samples else 0
        finally:
            await client.close()

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if asyncio.run(count()) >= scrapes:
            return
        time.sleep(0.5)
    pytest.fail("prometheus scraped too few samples in 60 s")


async def snapshot(url: str, signals: SignalSet, **options) -> tuple[dict, PrometheusSource]:
    client = PrometheusClient(url)
    source = PrometheusSource(client, signals, rate_window_s=5.0, **options)
    try:
        return dict(await source.snapshot(time.time())), source
    finally:
        await client.close()


def attainment_of(chunks: dict, name: str, namespace: str = "ns") -> Attainment | None:
    chunk = chunks[ServiceKey(namespace, name)]
    assert isinstance(chunk, MetricsChunk), chunk  # a histogram never costs the demand signals
    return chunk.attainment


async def test_the_slo_between_two_edges_counts_only_the_buckets_below_it(prometheus):
    chunks, source = await snapshot(prometheus.url, VLLM)
    assert source.client.requests == len(VLLM.render(5.0)) + 1  # one histogram query, all services
    found = attainment_of(chunks, "ttft")
    assert found is not None
    # SLO 2 s, edges 1.0 and 2.5: only the requests at or below 1 s count (a lower bound)
    assert found.ratio == pytest.approx(0.8, rel=1e-6)
    assert found.source == f"{TTFT} le=1 (SLO 2s)"
    assert found.total > 6  # both pods' requests, le="1" and le="1.0" added up
    assert ServiceKey("ns", "ttft") not in source.attainment_notes


async def test_a_service_without_the_ttft_histogram_falls_back_to_request_latency(prometheus):
    chunks, _ = await snapshot(prometheus.url, VLLM)
    found = attainment_of(chunks, "e2e-only")
    assert found is not None and found.ratio == pytest.approx(0.7, rel=1e-6)
    assert found.source == (
        f"{E2E} le=2 (SLO 2s; whole-request latency, at least the TTFT: a lower bound)"
    )


async def test_an_edge_far_below_the_slo_is_used_and_said(prometheus):
    chunks, _ = await snapshot(prometheus.url, VLLM)
    found = attainment_of(chunks, "coarse")
    assert found is not None and found.ratio == pytest.approx(0.2, rel=1e-6)
    assert found.source == (
        f"{TTFT} le=0.1 (SLO 2s; nearest edge under half the SLO: a loose lower bound)"
    )


async def test_each_service_is_judged_against_its_own_slo(prometheus):
    slo = {ServiceKey("ns", "ttft"): 2.5, ServiceKey("ns", "coarse"): 0.05}
    chunks, source = await snapshot(prometheus.url, VLLM, slo_ttft_s=slo)
    on_edge = attainment_of(chunks, "ttft")
    assert on_edge is not None and on_edge.ratio == pytest.approx(0.95, rel=1e-6)
    assert on_edge.source == f"{TTFT} le=2.5 (SLO 2.5s)"
    assert attainment_of(chunks, "coarse") is None  # no edge at or below 50 ms
    assert (
        "no bucket edge at or below the SLO 0.05s"
        in source.attainment_notes[ServiceKey("ns", "coarse")]
    )
    e2e = attainment_of(chunks, "e2e-only")  # not in the mapping: the default 2 s
    assert e2e is not None and "(SLO 2s;" in e2e.source

    def tight(key: ServiceKey) -> float:
        return 0.5

    chunks, _ = await snapshot(prometheus.url, VLLM, slo_ttft_s=tight)
    half = attainment_of(chunks, "ttft")
    assert half is not None and half.ratio == pytest.approx(0.6, rel=1e-6)
    assert half.source == f"{TTFT} le=0.5 (SLO 0.5s)"


async def test_missing_or_garbled_histograms_leave_the_chunk_without_attainment(prometheus):
    chunks, source = await snapshot(prometheus.url, VLLM)
    assert attainment_of(chunks, "no-inf") is None
    assert source.attainment_notes[ServiceKey("ns", "no-inf")] == (
        f"{TTFT}: no +Inf bucket (not a histogram?)"
    )
    assert attainment_of(chunks, "plain") is None
    assert source.attainment_notes[ServiceKey("ns", "plain")] == (
        f"no {TTFT} or {E2E} series for this service"
    )
    idle = attainment_of(chunks, "idle")  # the histogram is there, no request in the window
    assert idle is not None and idle.total == 0 and idle.ratio is None


async def test_knative_revisions_read_the_queue_proxy_latency_in_milliseconds(prometheus):
    slo = {ServiceKey("kn", "kn-ms"): 1.5}
    chunks, _ = await snapshot(prometheus.url, KNATIVE, slo_ttft_s=slo)
    found = attainment_of(chunks, "kn-ms", "kn")
    assert found is not None and found.ratio == pytest.approx(0.6, rel=1e-6)  # 1000 ms ≤ 1.5 s
    assert found.source == (
        f"{KNATIVE_LATENCY} le=1000ms (SLO 1.5s; whole-request latency, at least the TTFT: "
        "a lower bound)"
    )
    ttft = attainment_of(chunks, "kn-ttft", "kn")  # vLLM's TTFT with the revision's labels
    assert ttft is not None and ttft.ratio == pytest.approx(0.9, rel=1e-6)
    assert ttft.source == f"{TTFT} le=1 (SLO 2s)"
