"""The exact Kubernetes permissions the Knative adapter uses — the chart's Role is made from
these, and a test runs the adapter as a ServiceAccount bound to exactly them."""

from __future__ import annotations

RULES: list[dict] = [
    {
        "apiGroups": ["autoscaling.internal.knative.dev"],
        "resources": ["podautoscalers"],
        "verbs": ["get", "list", "watch"],
    },
    {
        "apiGroups": ["autoscaling.internal.knative.dev"],
        "resources": ["podautoscalers/status"],
        "verbs": ["get", "update", "patch"],
    },
    # An owner reference with blockOwnerDeletion needs this where OwnerReferencesPermission-
    # Enforcement is on (OpenShift, hardened clusters).
    {
        "apiGroups": ["autoscaling.internal.knative.dev"],
        "resources": ["podautoscalers/finalizers"],
        "verbs": ["update"],
    },
    {
        "apiGroups": ["networking.internal.knative.dev"],
        "resources": ["serverlessservices"],
        "verbs": ["get", "list", "watch", "create", "update", "patch"],
    },
    {
        "apiGroups": ["apps"],
        "resources": ["deployments/scale"],
        "verbs": ["get", "patch", "update"],
    },
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
]


def manifests(namespace: str, name: str = "leadtime") -> list[dict]:
    """A ServiceAccount, a ClusterRole of exactly `RULES` and the binding between them."""
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": name, "namespace": namespace},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": f"{name}-knative"},
            "rules": RULES,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": f"{name}-knative"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": f"{name}-knative",
            },
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        },
    ]


if __name__ == "__main__":  # python -m adapters.knative.rbac NAMESPACE > rbac.yaml
    import sys

    import yaml

    print(
        yaml.safe_dump_all(
            manifests(sys.argv[1] if len(sys.argv) > 1 else "leadtime"), sort_keys=False
        ),
        end="",
    )
