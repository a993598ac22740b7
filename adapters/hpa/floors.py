"""Predictive floors for existing HPAs, as a pure function: the merge patch that keeps an opted-in
HPA's `minReplicas` at Leadtime's decision, or restores the user's own when they opt out.

Why a floor and not a replacement: the HPA keeps its own reactive behaviour above the floor,
so a team adopts Leadtime without giving up what already works for them. The user's original
`minReplicas` is recorded on the HPA itself (an annotation), so a restarted Leadtime — or a
different replica of it — still knows what to restore. If the user edits `minReplicas` while
opted in, their value becomes the new original (we notice because it is no longer the value we
wrote last).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

FLOOR = "leadtime.dev/floor"
ORIGINAL_MIN = "leadtime.dev/original-min-replicas"
APPLIED = "leadtime.dev/floor-applied"
SERVICE = "leadtime.dev/service"
"""Optional: the Leadtime service whose decision is the floor (default: the scale target's
name)."""


@dataclass(frozen=True)
class HpaFacts:
    namespace: str
    name: str
    resource_version: str
    annotations: Mapping[str, str]
    min_replicas: int
    max_replicas: int
    target_name: str

    @property
    def opted_in(self) -> bool:
        return self.annotations.get(FLOOR, "").lower() == "true"

    @property
    def service(self) -> str:
        return self.annotations.get(SERVICE) or self.target_name


def hpa_facts(hpa: Mapping[str, Any]) -> HpaFacts:
    """The facts the rule needs, from an autoscaling/v1 HPA as a plain dict."""
    meta, spec = hpa["metadata"], hpa["spec"]
    return HpaFacts(
        meta["namespace"],
        meta["name"],
        meta.get("resourceVersion", ""),
        dict(meta.get("annotations") or {}),
        int(spec.get("minReplicas") or 1),
        int(spec["maxReplicas"]),
        spec["scaleTargetRef"]["name"],
    )


def original_min(facts: HpaFacts) -> int:
    """The user's own minReplicas: recorded, unless they changed it since we last wrote."""
    recorded, applied = facts.annotations.get(ORIGINAL_MIN), facts.annotations.get(APPLIED)
    if recorded is None or applied is None or applied != str(facts.min_replicas):
        return facts.min_replicas
    return max(1, int(recorded))


def floor_patch(facts: HpaFacts, decision: int | None) -> dict | None:
    """The merge patch (with the resourceVersion it was computed from, so a concurrent change
    is a 409, not a lost update), or None when the HPA is already right."""
    recorded = facts.annotations.get(ORIGINAL_MIN)
    if not facts.opted_in:
        if recorded is None:
            return None
        restore = original_min(facts)
        return _patch(facts, restore, {ORIGINAL_MIN: None, APPLIED: None})
    base = original_min(facts)
    floor = base if decision is None else min(max(decision, base), facts.max_replicas)
    annotations = {ORIGINAL_MIN: str(base), APPLIED: str(floor)}
    if floor == facts.min_replicas and all(
        facts.annotations.get(k) == v for k, v in annotations.items()
    ):
        return None
    return _patch(facts, floor, annotations)


def _patch(facts: HpaFacts, min_replicas: int, annotations: dict) -> dict:
    return {
        "metadata": {"resourceVersion": facts.resource_version, "annotations": annotations},
        "spec": {"minReplicas": min_replicas},
    }
