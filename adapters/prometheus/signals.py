"""Ready-made PromQL for the demand signals Leadtime reads, one batched query per signal.

Each query aggregates `by` the labels that name a service, so one request returns every
service (never one query per service). `{window}` is the rate window. Names:
- `knative`: Knative Serving ≤ 1.18 (OpenCensus names): queue-proxy's request count and queue
  depth, plus the activator's request concurrency, which is the only signal of a revision at
  zero;
- `knative-otel`: Knative ≥ 1.19 (OpenTelemetry names, dots as underscores);
- `vllm`: vLLM's own metrics (running and waiting requests, finished requests as the rate),
  with the namespace and service labels a Kubernetes scrape config adds; also KV-cache use,
  token throughput and DCGM's GPU utilisation, for the API and the capacity rules;
- a custom set: any three PromQL expressions from the configuration.

Each built-in set also names the latency histograms a service's SLO attainment is read from, in
order of preference: the model server's time to first token (vLLM's
`vllm:time_to_first_token_seconds`) and, for a service without it, the request-latency histogram
beside the set's arrivals counter (whole-request latency, never shorter than the TTFT, so the
share it finds within the SLO is a lower bound). `render_attainment` asks for every service's
buckets in one query, the first histogram a service has winning.
"""

from __future__ import annotations

from dataclasses import dataclass

from autoscaler.errors import InputError

HISTOGRAM_LABEL = "leadtime_histogram"
"""The label the attainment query adds to each answer: the histogram its buckets come from."""


@dataclass(frozen=True)
class LatencyHistogram:
    """A Prometheus histogram of per-request latency (`<metric>_bucket{le=...}`)."""

    metric: str
    """The histogram's name, without `_bucket`."""
    unit_s: float = 1.0
    """Seconds per unit of its `le` edges (0.001 for a histogram in milliseconds)."""
    ttft: bool = True
    """Whether it measures time to first token; False: whole-request latency (at least the
    TTFT, so the share within the SLO is a lower bound)."""

    @property
    def unit(self) -> str:
        """How its edges are written (for messages)."""
        return "ms" if self.unit_s == 0.001 else "s" if self.unit_s == 1.0 else f"x{self.unit_s:g}s"


@dataclass(frozen=True)
class SignalSet:
    """Three PromQL expressions and the labels that name a service in their results."""

    name: str
    arrivals: str
    """Requests per second arriving, per service."""
    concurrency: str
    """Requests in the system (in service + queued), per service."""
    queue: str | None
    """Requests waiting, per service (None: not available, taken as 0)."""
    namespace_label: str
    service_label: str
    extras: tuple[tuple[str, str], ...] = ()
    """Further per-service signals (name, PromQL) read in the same batch and shown by the API:
    KV-cache use, token throughput, GPU utilisation. Optional: a failing one is left out."""
    latency_histograms: tuple[LatencyHistogram, ...] = ()
    """Histograms a service's SLO attainment is read from, preferred first (none: no
    attainment)."""

    def render(self, window_s: float) -> dict[str, str]:
        window = f"{max(1, round(window_s))}s"
        queries = {"arrivals": self.arrivals, "concurrency": self.concurrency}
        if self.queue:
            queries["queue"] = self.queue
        queries.update(self.extras)
        return {name: query.replace("{window}", window) for name, query in queries.items()}

    def render_attainment(self, window_s: float) -> str | None:
        """One PromQL for every service's latency buckets over the last `window_s`: per service,
        the buckets of the first histogram it has (`or on` the service labels), each answer
        labelled `leadtime_histogram` with that histogram's name. None: the set names none."""
        window = f"{max(1, round(window_s))}s"
        by = f"{self.namespace_label}, {self.service_label}"
        parts = [
            f"label_replace(sum by ({by}, le) (increase({h.metric}_bucket[{window}])), "
            f'"{HISTOGRAM_LABEL}", "{h.metric}", "", "")'
            for h in self.latency_histograms
        ]
        return f" or on ({by}) ".join(parts) or None

    def histogram(self, metric: str) -> LatencyHistogram | None:
        """The histogram of this set named `metric`, if any."""
        return next((h for h in self.latency_histograms if h.metric == metric), None)


VLLM_TTFT = LatencyHistogram("vllm:time_to_first_token_seconds")
"""vLLM's time to first token (seconds). A Knative revision's vLLM is read with the revision's
labels (the scrape config must add them, as it does for the queue-proxy)."""

KNATIVE = SignalSet(
    name="knative",
    arrivals="sum by (namespace_name, revision_name) (rate(revision_request_count[{window}]))",
    concurrency="sum by (namespace_name, revision_name) (revision_queue_depth) "
    "or sum by (namespace_name, revision_name) (activator_request_concurrency)",
    queue="sum by (namespace_name, revision_name) (activator_request_concurrency)",
    namespace_label="namespace_name",
    service_label="revision_name",
    # the queue-proxy's latency beside revision_request_count: milliseconds, and from the
    # request's arrival at the queue-proxy (its queueing included) to the end of the response
    latency_histograms=(
        VLLM_TTFT,
        LatencyHistogram("revision_request_latencies", unit_s=0.001, ttft=False),
    ),
)
KNATIVE_OTEL = SignalSet(
    name="knative-otel",
    arrivals="sum by (k8s_namespace_name, kn_revision_name) "
    "(rate(kn_serving_invocation_duration_seconds_count[{window}]))",
    concurrency="sum by (k8s_namespace_name, kn_revision_name) (kn_serving_queue_depth) "
    "or sum by (k8s_namespace_name, kn_revision_name) (kn_revision_request_concurrency)",
    queue="sum by (k8s_namespace_name, kn_revision_name) (kn_revision_request_queued)",
    namespace_label="k8s_namespace_name",
    service_label="kn_revision_name",
    latency_histograms=(
        VLLM_TTFT,
        LatencyHistogram("kn_serving_invocation_duration_seconds", ttft=False),
    ),
)
VLLM = SignalSet(
    name="vllm",
    arrivals="sum by (namespace, service) (rate(vllm:request_success_total[{window}]))",
    concurrency="sum by (namespace, service) "
    "(vllm:num_requests_running + vllm:num_requests_waiting)",
    queue="sum by (namespace, service) (vllm:num_requests_waiting)",
    namespace_label="namespace",
    service_label="service",
    extras=(
        ("kv_cache_usage", "avg by (namespace, service) (vllm:gpu_cache_usage_perc)"),
        (
            "generation_tokens_per_s",
            "sum by (namespace, service) (rate(vllm:generation_tokens_total[{window}]))",
        ),
        (
            "prompt_tokens_per_s",
            "sum by (namespace, service) (rate(vllm:prompt_tokens_total[{window}]))",
        ),
        ("gpu_utilisation", "avg by (namespace, service) (DCGM_FI_DEV_GPU_UTIL) / 100"),
    ),
    latency_histograms=(
        VLLM_TTFT,
        LatencyHistogram("vllm:e2e_request_latency_seconds", ttft=False),
    ),
)
BUILT_IN = {signals.name: signals for signals in (KNATIVE, KNATIVE_OTEL, VLLM)}


def signal_set(name: str) -> SignalSet:
    try:
        return BUILT_IN[name]
    except KeyError:
        raise InputError(
            f"prometheus.signals: unknown signal set {name!r} (built in: {', '.join(BUILT_IN)}; "
            "or give arrivals/concurrency/queue queries)"
        ) from None
