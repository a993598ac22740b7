"""Leadtime as a Knative custom PodAutoscaler class (reference: ../shared/reference/knative.md §2).

Pure decisions (annotations, conditions, scaler, pods, status) are kept apart from the parts
that talk to the API server (reconciler, adapter, probe, events; the informer they share is
in adapters/kubernetes)."""
