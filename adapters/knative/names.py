"""Knative's names for what the adapter reads and writes: API groups, labels, annotations."""

from __future__ import annotations

from autoscaler.config.sections import ANNOTATION_PREFIXES

CLASS_ANNOTATION = "autoscaling.knative.dev/class"
KPA_CLASS = "kpa.autoscaling.knative.dev"
HPA_CLASS = "hpa.autoscaling.knative.dev"
DEFAULT_CLASS = "leadtime.dev"
"""Leadtime's class; configurable, but never ending in `.knative.dev` (Knative's webhook
rejects such classes other than its own two)."""

AUTOSCALING, LEADTIME = ANNOTATION_PREFIXES
"""Knative's annotation prefix and Leadtime's: the policy settings name their annotations with
them (`autoscaler/config/sections.py`), so the two are declared there."""

PA_GROUP, PA_VERSION, PA_PLURAL = "autoscaling.internal.knative.dev", "v1alpha1", "podautoscalers"
SKS_GROUP, SKS_VERSION, SKS_PLURAL = (
    "networking.internal.knative.dev",
    "v1alpha1",
    "serverlessservices",
)
REVISION_LABEL = "serving.knative.dev/revision"

SERVE, PROXY = "Serve", "Proxy"
"""ServerlessService modes: traffic straight to the pods, or through the activator."""

# PodAutoscaler condition types; Ready is the AND of the other three (a living condition set).
ACTIVE = "Active"
SCALE_TARGET_INITIALIZED = "ScaleTargetInitialized"
SKS_READY = "SKSReady"
READY = "Ready"
ANNOTATIONS_VALID = "AnnotationsValid"
"""Leadtime's own, of severity Warning: not part of Ready, so a typo never takes traffic away."""
DEPENDENT_CONDITIONS = (ACTIVE, SCALE_TARGET_INITIALIZED, SKS_READY)


def valid_class_name(name: str) -> bool:
    return bool(name) and not name.endswith(".knative.dev")
