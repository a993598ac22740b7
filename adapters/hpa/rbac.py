"""The exact Kubernetes permissions the HPA adapter uses (the chart's Role is made from these;
a test runs the adapter as a ServiceAccount bound to exactly them), and the one the HPA
controller needs to read Leadtime's external metrics."""

from __future__ import annotations

from adapters.hpa.metrics_api import METRICS

RULES: list[dict] = [
    {
        "apiGroups": ["autoscaling"],
        "resources": ["horizontalpodautoscalers"],
        "verbs": ["get", "list", "watch", "patch"],
    },
    {
        "apiGroups": ["apps"],
        "resources": ["deployments", "statefulsets"],
        "verbs": ["list", "watch"],
    },
    {
        "apiGroups": ["apps"],
        "resources": ["deployments/scale", "statefulsets/scale"],
        "verbs": ["patch"],
    },
]

METRICS_API_RULES: list[dict] = [
    {
        "apiGroups": ["authorization.k8s.io"],
        "resources": ["subjectaccessreviews"],
        "verbs": ["create"],
    },
    {
        "apiGroups": [""],
        "resources": ["configmaps"],
        "resourceNames": ["extension-apiserver-authentication"],
        "verbs": ["get"],
    },
]
"""What serving the external metrics API takes: authorising each caller with a
SubjectAccessReview, and reading the front proxy's CA and names (adapters/hpa/access.py)."""

EXTERNAL_METRICS_READER: list[dict] = [
    {
        "apiGroups": ["external.metrics.k8s.io"],
        "resources": list(METRICS),
        "verbs": ["get", "list"],
    },
]
"""Bound to kube-system's `horizontal-pod-autoscaler` ServiceAccount (as KEDA does), so the HPA
controller may read Leadtime's external metrics (the resources are the metric names)."""
