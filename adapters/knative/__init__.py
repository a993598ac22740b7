"""Leadtime as a Knative custom PodAutoscaler class: the contract Knative's autoscaling API sets
for a PodAutoscaler whose `autoscaling.knative.dev/class` names another autoscaler than the KPA.

Pure decisions (annotations, conditions, scaler, pods, status) are kept apart from the parts
that talk to the API server (reconciler, adapter, probe, events; the informer they share is
in adapters/kubernetes)."""
