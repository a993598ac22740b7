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
"""

from __future__ import annotations

from dataclasses import dataclass

from autoscaler.errors import InputError


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

    def render(self, window_s: float) -> dict[str, str]:
        window = f"{max(1, round(window_s))}s"
        queries = {"arrivals": self.arrivals, "concurrency": self.concurrency}
        if self.queue:
            queries["queue"] = self.queue
        queries.update(self.extras)
        return {name: query.replace("{window}", window) for name, query in queries.items()}


KNATIVE = SignalSet(
    name="knative",
    arrivals="sum by (namespace_name, revision_name) (rate(revision_request_count[{window}]))",
    concurrency="sum by (namespace_name, revision_name) (revision_queue_depth) "
    "or sum by (namespace_name, revision_name) (activator_request_concurrency)",
    queue="sum by (namespace_name, revision_name) (activator_request_concurrency)",
    namespace_label="namespace_name",
    service_label="revision_name",
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
