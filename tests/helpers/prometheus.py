"""A real Prometheus (Debian's package) scraping a test exporter with known request rates.

The exporter is a plain HTTP server in a thread: each service i has a request counter that
grows at `rate(i)` requests/s from the moment it starts, and an in-flight gauge `inflight(i)`,
in both the generic names the tests' custom signals read and Knative's ≤ 1.18 names. Prometheus
scrapes it every second into a temporary data directory, on a free loopback port.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol

import pytest

from load_tests.local.prometheus_server import PrometheusNotAvailable, PrometheusProcess

SERVICES = 40


def rate(i: int) -> float:
    return 0.5 + i * 0.25


def inflight(i: int) -> float:
    return float(i % 7)


def kv_cache(i: int) -> float:
    return (i % 10) / 10


@dataclass
class Exporter:
    started: float = field(default_factory=time.time)
    hidden: set[int] = field(default_factory=set)
    """Services whose series have stopped (to test staleness)."""
    reset_at: float | None = None
    """When the counters restarted from 0 (a restarted pod), if they did."""

    def text(self) -> str:
        now = time.time()
        elapsed = now - (self.reset_at or self.started)
        lines = []
        for i in range(SERVICES):
            if i in self.hidden:
                continue
            labels = f'namespace="ns{i % 3}",service="svc-{i}"'
            # Knative scales revisions: its series carry the revision's name (here the same).
            knative = f'namespace_name="ns{i % 3}",service_name="svc",revision_name="svc-{i}"'
            otel = (
                f'k8s_namespace_name="ns{i % 3}",kn_service_name="svc",kn_revision_name="svc-{i}"'
            )
            count = rate(i) * elapsed
            lines += [
                f"leadtime_test_requests_total{{{labels}}} {count}",
                f"leadtime_test_in_flight{{{labels}}} {inflight(i)}",
                f"leadtime_test_queued{{{labels}}} {inflight(i) / 2}",
                f"revision_request_count{{{knative}}} {count}",
                f"revision_queue_depth{{{knative}}} {inflight(i)}",
                f"kn_serving_invocation_duration_seconds_count{{{otel}}} {count}",
                f"kn_serving_queue_depth{{{otel}}} {inflight(i)}",
                f"vllm:request_success_total{{{labels}}} {count}",
                f"vllm:num_requests_running{{{labels}}} {inflight(i) / 2}",
                f"vllm:num_requests_waiting{{{labels}}} {inflight(i) / 2}",
                f"vllm:gpu_cache_usage_perc{{{labels}}} {kv_cache(i)}",
                f"vllm:generation_tokens_total{{{labels}}} {count * 100}",
                f"vllm:prompt_tokens_total{{{labels}}} {count * 1000}",
            ]
            if i % 2 == 0:  # DCGM runs on some nodes only
                lines.append(f"DCGM_FI_DEV_GPU_UTIL{{{labels}}} {40 + i}")
        return "\n".join(lines) + "\n"


class Exposition(Protocol):
    """Anything that renders a Prometheus text exposition when scraped."""

    def text(self) -> str: ...


def serve_exporter(exporter: Exposition) -> tuple[ThreadingHTTPServer, int]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = exporter.text().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, int(server.server_address[1])


def start_prometheus(exporter_port: int) -> PrometheusProcess:
    """A real Prometheus scraping the exporter every second; `stop()` and `start()` again for
    the outage tests (same port, same data)."""
    try:
        server = PrometheusProcess([f"127.0.0.1:{exporter_port}"])
        server.start()
    except PrometheusNotAvailable as error:
        pytest.fail(str(error))
    return server
