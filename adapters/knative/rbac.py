"""The exact Kubernetes permissions the Knative adapter uses — the chart's Role is made from
these, and a test runs the adapter as a ServiceAccount bound to exactly them."""

from __future__ import annotations

RULES: list[dict] = [
    {"apiGroups": ["autoscaling.internal.knative.dev"], "resources": ["podautoscalers"],
     "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["autoscaling.internal.knative.dev"], "resources": ["podautoscalers/status"],
     "verbs": ["get", "update", "patch"]},
    {"apiGroups": ["networking.internal.knative.dev"], "resources": ["serverlessservices"],
     "verbs": ["get", "list", "watch", "create", "update", "patch"]},
    {"apiGroups": ["apps"], "resources": ["deployments/scale"], "verbs": ["get", "patch", "update"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
]
