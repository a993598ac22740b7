"""Leadtime's own metrics, in Prometheus' exposition format (prometheus-client).

One registry per service instance (not the library's global one), so tests and several loops
in one process never see each other's series. Names follow Prometheus conventions: the
`leadtime_` prefix, base units, `_seconds`, `_total` for counters.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

SERVICE_LABELS = ("namespace", "service")


class Telemetry:
    """Every metric the service exports (the Helm chart's dashboard reads these names)."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.tick_seconds = Histogram(
            "leadtime_tick_duration_seconds",
            "Wall time of one control-loop tick over every service (fitting excluded).",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=r,
        )
        self.decisions = Counter(
            "leadtime_decisions_total",
            "Decisions taken, by reason (predictive, headroom, panic, stable, hold, ...).",
            ["reason"],
            registry=r,
        )
        self.forecast_mase = Gauge(
            "leadtime_forecast_mase",
            "Live MASE of the service's one-step forecasts (below 1: better than naive).",
            SERVICE_LABELS,
            registry=r,
        )
        self.forecast_coverage = Gauge(
            "leadtime_forecast_coverage_ratio",
            "Share of outcomes inside the forecast's 5-95 % interval.",
            SERVICE_LABELS,
            registry=r,
        )
        self.forecast_load = Gauge(
            "leadtime_forecast_load",
            "Forecast mean arrival rate (requests/s) one lead time ahead.",
            SERVICE_LABELS,
            registry=r,
        )
        self.fit_seconds = Histogram(
            "leadtime_fit_duration_seconds",
            "Wall time of one model fit in a forecasting worker.",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )
        self.adapter_errors = Counter(
            "leadtime_adapter_errors_total",
            "Failed calls to an adapter (metrics source, actuator, catalog).",
            ["adapter", "operation"],
            registry=r,
        )
        self.services = Gauge("leadtime_services", "Services under management.", registry=r)
        self.no_data = Gauge(
            "leadtime_services_without_data",
            "Services whose metrics were unusable on the last tick (held, not scaled down).",
            registry=r,
        )

    def watch(self, loop: Any) -> None:
        """Export every service's desired and ready replicas, and its SLO and measured
        attainment, from the loop's state at scrape time: setting gauges per service per tick
        would cost more than deciding."""
        self.registry.register(_ReplicaCollector(loop))
        self.registry.register(_SloCollector(loop))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def forget(self, namespace: str, service: str) -> None:
        """Drop a removed service's series."""
        for gauge in (
            self.forecast_mase,
            self.forecast_coverage,
            self.forecast_load,
        ):
            try:
                gauge.remove(namespace, service)
            except KeyError:
                pass


class _ReplicaCollector(Collector):
    """`leadtime_desired_replicas` and `leadtime_ready_replicas` per service, read from the
    control loop when Prometheus scrapes."""

    def __init__(self, loop: Any) -> None:
        self.loop = loop

    def describe(self) -> list[Metric]:
        return []  # unchecked: the families are built at collect time

    def collect(self) -> Iterator[GaugeMetricFamily]:
        desired = GaugeMetricFamily(
            "leadtime_desired_replicas",
            "Replicas Leadtime wants for the service.",
            labels=SERVICE_LABELS,
        )
        ready = GaugeMetricFamily(
            "leadtime_ready_replicas", "Ready replicas of the service.", labels=SERVICE_LABELS
        )
        for state in list(self.loop.states.values()):
            labels = [state.key.namespace, state.key.name]
            wanted = state.last.desired if state.last is not None else state.status.desired
            desired.add_metric(labels, wanted)
            ready.add_metric(labels, state.status.ready)
        yield desired
        yield ready


class _SloCollector(Collector):
    """Each service's objective and its measured attainment, read from the control loop when
    Prometheus scrapes: `leadtime_slo_ttft_seconds`, `leadtime_slo_target_ratio` and
    `leadtime_slo_attainment_ratio` (absent while the service's attainment is unknown, or no
    request was judged in the source's window)."""

    def __init__(self, loop: Any) -> None:
        self.loop = loop

    def describe(self) -> list[Metric]:
        return []  # unchecked: the families are built at collect time

    def collect(self) -> Iterator[GaugeMetricFamily]:
        ttft = GaugeMetricFamily(
            "leadtime_slo_ttft_seconds",
            "The service's objective: time to first token a request must meet.",
            labels=SERVICE_LABELS,
        )
        target = GaugeMetricFamily(
            "leadtime_slo_target_ratio",
            "Share of the service's requests that must meet its time to first token.",
            labels=SERVICE_LABELS,
        )
        attained = GaugeMetricFamily(
            "leadtime_slo_attainment_ratio",
            "Measured share of the service's recent requests that met its time to first token "
            "(over the metrics source's window; a lower bound where a histogram's bucket edge "
            "falls below the objective).",
            labels=SERVICE_LABELS,
        )
        for state in list(self.loop.states.values()):
            labels = [state.key.namespace, state.key.name]
            ttft.add_metric(labels, state.slo_ttft_s)
            target.add_metric(labels, state.slo_target)
            ratio = state.attainment.ratio if state.attainment is not None else None
            if ratio is not None:
                attained.add_metric(labels, ratio)
        yield ttft
        yield target
        yield attained
