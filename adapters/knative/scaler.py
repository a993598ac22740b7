"""How many replicas to ask for and which way traffic flows — Knative's `scaler.scale` rules
for a custom class (initial scale, bounds, scale to zero through the activator), as a pure
function.

Scale to zero is the delicate part: the last replica may go only once the activator is in the
request path, so a request arriving meanwhile is buffered instead of refused. Hence: switch the
ServerlessService to Proxy, confirm the activator answers its probe, wait out the grace period,
and only then set zero. Until the policy has decided anything, a new revision gets its
`initial-scale`, and nothing goes below `initial-scale` before the scale target is initialized.
"""

from __future__ import annotations

from dataclasses import dataclass

from adapters.knative.names import PROXY, SERVE


@dataclass(frozen=True)
class ScaleInputs:
    want: int | None
    """The policy's desired replicas; None before its first decision."""
    min_scale: int
    max_scale: int
    """0 = unbounded."""
    initial_scale: int
    initialized: bool
    """ScaleTargetInitialized is True."""
    current: int
    """The Deployment's replicas now (from /scale)."""
    ready: int
    sks_mode: str | None
    """The ServerlessService's mode now; None when it does not exist yet."""
    proxy_since: float | None
    """Since when the activator has been in the path (None: it is not)."""
    activator_ok: bool | None
    """The activator probe's answer (None: not probed this time)."""
    now: float
    grace_s: float
    """scale-to-zero-grace-period (Knative's default 30 s)."""
    reachable: bool = True
    """False when no route sends it traffic any more (`spec.reachability: Unreachable`, an old
    revision after a rollout): then min-scale no longer holds it up, as in Knative."""


@dataclass(frozen=True)
class ScalePlan:
    replicas: int
    """What to set on the Deployment's /scale."""
    mode: str
    """The ServerlessService's mode."""
    desired_scale: int
    """The bounded decision, for the PA's status."""
    probe: bool = False
    """Probe the activator, then plan again with its answer."""
    requeue_after_s: float | None = None
    reason: str = ""


def bounded(inputs: ScaleInputs) -> int:
    """The decision within min/max, and not below initial-scale before initialization."""
    if inputs.want is not None:
        want = inputs.want
    else:
        want = inputs.current if inputs.initialized else inputs.initial_scale
    if inputs.reachable:
        want = max(want, inputs.min_scale)
    if inputs.max_scale > 0:
        want = min(want, inputs.max_scale)
    if not inputs.initialized:
        want = max(want, inputs.initial_scale)
    return want


def plan(inputs: ScaleInputs) -> ScalePlan:
    want = bounded(inputs)
    if want > 0:
        # The activator buffers while no replica is ready; the pods serve directly after.
        mode = SERVE if inputs.ready > 0 else PROXY
        return ScalePlan(want, mode, want, reason="scale" if want != inputs.current else "steady")
    if inputs.current == 0:
        return ScalePlan(0, PROXY, 0, reason="at zero")
    if inputs.sks_mode != PROXY or inputs.proxy_since is None:
        return ScalePlan(
            inputs.current,
            PROXY,
            0,
            requeue_after_s=1.0,
            reason="to zero: putting the activator in the path first",
        )
    if inputs.activator_ok is None:
        return ScalePlan(
            inputs.current, PROXY, 0, probe=True, reason="to zero: probing the activator"
        )
    if not inputs.activator_ok:
        return ScalePlan(
            inputs.current,
            PROXY,
            0,
            requeue_after_s=1.0,
            reason="to zero: the activator does not answer its probe yet",
        )
    left = inputs.proxy_since + inputs.grace_s - inputs.now
    if left > 0:
        return ScalePlan(
            inputs.current,
            PROXY,
            0,
            requeue_after_s=left,
            reason=f"to zero: grace period, {left:.0f} s left",
        )
    return ScalePlan(0, PROXY, 0, reason="to zero")
