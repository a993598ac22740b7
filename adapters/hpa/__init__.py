"""Leadtime's decisions for the Kubernetes HPA: an external metrics API (as KEDA serves one),
predictive floors for existing HPAs, and plain workloads scaled through /scale."""
