"""Exporters of request series for Leadtime's Prometheus source to read: an application's own
(`AppExporter`, read through `APP_SIGNALS`), and Leadtime's test signal set (`TEST_SIGNALS`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from adapters.prometheus.signals import SignalSet


@dataclass
class AppExporter:
    """An application's own request series, labelled by namespace and service."""

    in_flight: dict[tuple[str, str], float] = field(default_factory=dict)
    started: float = field(default_factory=time.time)

    def text(self) -> str:
        lines = []
        for (namespace, service), value in self.in_flight.items():
            labels = f'namespace="{namespace}",service="{service}"'
            lines += [
                f"app_in_flight{{{labels}}} {value}",
                f"app_requests_total{{{labels}}} {time.time() - self.started}",
            ]
        return "\n".join(lines) + "\n"


APP_SIGNALS = {
    "signals": "custom",
    "query_arrivals": "sum by (namespace, service) (rate(app_requests_total[{window}]))",
    "query_concurrency": "sum by (namespace, service) (app_in_flight)",
}
"""The `prometheus:` keys that read `AppExporter`'s series as Leadtime's custom signals."""


TEST_SIGNALS = SignalSet(
    name="test",
    arrivals="sum by (namespace, service) (rate(leadtime_test_requests_total[{window}]))",
    concurrency="sum by (namespace, service) (leadtime_test_in_flight)",
    queue="sum by (namespace, service) (leadtime_test_queued)",
    namespace_label="namespace",
    service_label="service",
)
