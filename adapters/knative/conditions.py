"""Knative conditions as plain data: set one, aggregate Ready (as Knative's `pa_lifecycle.go`).

A condition's `lastTransitionTime` moves only when its status flips — Knative's scale-to-zero
timers read it, so rewriting it on every reconcile would reset them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from adapters.knative.names import DEPENDENT_CONDITIONS, READY

Condition = dict[str, Any]
TRUE, FALSE, UNKNOWN = "True", "False", "Unknown"


def find(conditions: Iterable[Condition], kind: str) -> Condition | None:
    return next((c for c in conditions if c.get("type") == kind), None)


def set_condition(
    conditions: list[Condition],
    kind: str,
    status: str,
    now: str,
    reason: str = "",
    message: str = "",
    severity: str = "",
) -> list[Condition]:
    """A copy of `conditions` with `kind` set; its transition time kept unless status flips."""
    old = find(conditions, kind)
    kept = old is not None and old.get("status") == status
    new: Condition = {
        "type": kind,
        "status": status,
        "lastTransitionTime": old.get("lastTransitionTime", now) if kept and old else now,
    }
    if reason:
        new["reason"] = reason
    if message:
        new["message"] = message
    if severity:
        new["severity"] = severity
    rest = [c for c in conditions if c.get("type") != kind]
    return sorted([*rest, new], key=lambda c: c["type"])


def with_ready(conditions: list[Condition], now: str) -> list[Condition]:
    """Ready = AND of Active, ScaleTargetInitialized and SKSReady: any False gives False (with
    that condition's reason), else any Unknown gives Unknown, else True."""
    dependents = [
        find(conditions, kind) or {"type": kind, "status": UNKNOWN} for kind in DEPENDENT_CONDITIONS
    ]
    for status in (FALSE, UNKNOWN):
        culprit = next((c for c in dependents if c.get("status") == status), None)
        if culprit is not None:
            return set_condition(
                conditions,
                READY,
                status,
                now,
                culprit.get("reason", ""),
                culprit.get("message", ""),
            )
    return set_condition(conditions, READY, TRUE, now)


def status_of(conditions: Iterable[Condition], kind: str) -> str:
    found = find(conditions, kind)
    return found.get("status", UNKNOWN) if found else UNKNOWN
