"""A PodAutoscaler's annotations → the revision's policy settings, with every refused value
named; Knative's keys keep Knative's meanings.

Knative's own keys keep Knative's meanings; Leadtime's knobs live under `leadtime.dev/`. Values
are checked exactly as the same keys of the config file are (`policy_with_overrides`), so an
annotation and a config key can never disagree about what is allowed. A refused annotation
is reported (PA condition + Event) and the default applies for it; the others still apply.
Knative's keys that only its KPA reads (`panic-*`, `activation-scale`, retention period) are
left to Knative's webhook, which validates them for every class.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from adapters.knative.names import AUTOSCALING, LEADTIME
from adapters.prometheus.fence import confined, fill_template
from autoscaler.config import PolicyConfig, policy_with_overrides
from autoscaler.config.schema import annotated_policy_settings
from autoscaler.errors import InputError

POLICY_ANNOTATIONS: dict[str, str] = {
    annotation: setting.key for annotation, setting in annotated_policy_settings().items()
}
"""Annotation → policy config key, as the settings declare them (`autoscaler/config/sections.py`;
the README's settings table lists each)."""

UTILIZATION = AUTOSCALING + "target-utilization-percentage"
QUERY_ANNOTATIONS: dict[str, str] = {
    LEADTIME + "query": "arrivals",
    LEADTIME + "query-concurrency": "concurrency",
    LEADTIME + "query-queue": "queue",
}
"""Per-revision PromQL templates ({namespace}, {service} = the revision, {window})."""

MAX_VALUE_CHARS = 256
"""Longest value read of a policy annotation: every allowed value is a short number, duration or
boolean; a longer one is refused before any parser sees it (a 5,000-digit integer once raised
past the parser)."""
MAX_QUERY_CHARS = 4096
"""Longest per-revision PromQL template read."""

LEADTIME_ANNOTATIONS = sorted(
    [a for a in POLICY_ANNOTATIONS if a.startswith(LEADTIME)] + list(QUERY_ANNOTATIONS)
)


@dataclass(frozen=True)
class QueryFence:
    """Who may bring their own PromQL, and how it is held to its namespace (config
    `knative.query_*`). The default allows no namespace."""

    namespaces: tuple[str, ...] = ()
    namespace_label: str = "namespace"

    def allows(self, namespace: str) -> bool:
        return "*" in self.namespaces or namespace in self.namespaces

    def check(self, template: str, namespace: str, revision: str) -> None:
        """An InputError unless `template`, filled in as the source fills it, reads only
        `namespace`'s series."""
        if not self.allows(namespace):
            raise InputError(
                f"per-revision queries are not allowed in namespace {namespace!r} "
                "(knative.query_namespaces lists where they are)"
            )
        rendered = fill_template(template, namespace, revision, "1m")
        confined(rendered, self.namespace_label, namespace)


@dataclass(frozen=True)
class RevisionSettings:
    policy: PolicyConfig
    queries: Mapping[str, str] = field(default_factory=dict)
    problems: Mapping[str, str] = field(default_factory=dict)
    """Annotation → why its value was refused (the default applies instead)."""


def revision_settings(
    annotations: Mapping[str, str],
    container_concurrency: int,
    defaults: PolicyConfig,
    *,
    namespace: str = "",
    revision: str = "",
    fence: QueryFence = QueryFence(),
) -> RevisionSettings:
    """The policy for one revision: `defaults`, then its PA's spec and annotations; its own
    queries only where `fence` lets them through."""
    overrides: dict[str, tuple[str, str]] = {
        "container_concurrency": ("spec.containerConcurrency", str(container_concurrency or 0))
    }
    problems: dict[str, str] = {}
    queries: dict[str, str] = {}
    for annotation, text in annotations.items():
        limit = MAX_QUERY_CHARS if annotation in QUERY_ANNOTATIONS else MAX_VALUE_CHARS
        if _ours(annotation) and len(text) > limit:
            problems[annotation] = (
                f"{annotation}: the value has {len(text):,} characters; at most {limit:,} are read"
            )
            continue
        if annotation in POLICY_ANNOTATIONS:
            if annotation == AUTOSCALING + "metric" and text == "":
                continue  # Knative's webhook writes metric: "" for classes it does not know
            overrides[POLICY_ANNOTATIONS[annotation]] = (annotation, text)
        elif annotation == UTILIZATION:
            try:
                overrides["target_utilization"] = (annotation, str(_percentage(text)))
            except InputError as error:
                problems[annotation] = f"{annotation}: {error}"
        elif annotation in QUERY_ANNOTATIONS:
            if not text.strip():
                problems[annotation] = f"{annotation}: expected a PromQL template, got ''"
                continue
            try:
                fence.check(text.strip(), namespace, revision)
            except InputError as error:
                problems[annotation] = f"{annotation}: {error}"
                continue
            queries[QUERY_ANNOTATIONS[annotation]] = text.strip()
        elif annotation.startswith(LEADTIME):
            known = ", ".join(LEADTIME_ANNOTATIONS)
            problems[annotation] = f"{annotation}: unknown annotation (Leadtime's are {known})"
    policy, refused = policy_with_overrides(defaults, overrides)
    return RevisionSettings(policy, queries, {**problems, **refused})


def _ours(annotation: str) -> bool:
    """An annotation this module reads (the others, Knative's KPA-only keys among them, are
    not ours to judge)."""
    return (
        annotation in POLICY_ANNOTATIONS
        or annotation in QUERY_ANNOTATIONS
        or annotation == UTILIZATION
        or annotation.startswith(LEADTIME)
    )


def _percentage(text: str) -> float:
    allowed = "expected a number in (0, 100] (percent of the target)"
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{allowed}, got {text!r}") from None
    if not 0 < value <= 100:
        raise InputError(f"{allowed}, got {text!r}")
    return value / 100
