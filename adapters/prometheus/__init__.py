"""Prometheus as Leadtime's metrics source: an async HTTP API client, ready-made signals
(Knative, vLLM, custom PromQL) and the `MetricsSource` built from them."""
