"""Policies by name: the names the command line, the bench and the simulator pick a policy by,
and `make_policy`, which makes one.

`kpa` and `hpa` are faithful re-implementations of Knative's Pod Autoscaler and Kubernetes'
Horizontal Pod Autoscaler with their defaults: the baselines every Leadtime claim is measured
against. `hpa` is the HPA without `behavior` (what `kubectl autoscale` and Knative's HPA class
create), `hpa-behavior` the same HPA with the autoscaling/v2 default `behavior` set (the
controller's other normalisation; `autoscaler/policies/hpa.py` says which path is which).
`ray-serve`, `keda`, `aibrix-apa` and `dynamo-planner` are the autoscalers teams running GPU
inference compare against, each re-implemented from its upstream code with its defaults (each
module's docstring cites the files). `static:N` holds N replicas. `oracle` knows the future; it
needs the caller to supply that future (`PolicyContext.oracle_need_ahead`), which only the
simulator can.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from autoscaler.errors import InputError
from autoscaler.policies import aibrix_apa, dynamo_planner, keda, ray_serve
from autoscaler.policies.hpa import Hpa, HpaConfig, default_scale_down, default_scale_up
from autoscaler.policies.knobs import KNOBS
from autoscaler.policies.kpa import (
    CONTAINER_CONCURRENCY_TARGET_DEFAULT,
    TARGET_UTILIZATION_DEFAULT,
    Kpa,
    KpaConfig,
)
from autoscaler.policies.leadtime import Leadtime
from autoscaler.policies.leadtime_config import LeadtimeConfig
from autoscaler.policies.oracle import Oracle
from autoscaler.policies.static import Static
from autoscaler.policy import Policy
from autoscaler.slo import SLO_TARGET_DEFAULT, SLO_TTFT_DEFAULT_S

POLICY_NAMES = (
    "kpa",
    "hpa",
    "hpa-behavior",
    "ray-serve",
    "keda",
    "aibrix-apa",
    "dynamo-planner",
    "leadtime",
    "leadtime:no-placeholders",
    "static:N",
    "oracle",
)
PEER_MAX_REPLICAS = 100
"""The replica ceiling of the peers whose upstream requires one (AIBrix's `maxReplicas`) or sets
one from a GPU budget (Dynamo's planner: 8 GPUs): the default Ray Serve's `num_replicas="auto"`
and KEDA's `maxReplicaCount` take."""
ORACLE_TICK_S = 2.0


@dataclass(frozen=True)
class PolicyContext:
    """What policies need to know about the service they scale."""

    container_concurrency: int
    """Request slots per replica; the KPA's containerConcurrency and the HPA's basis (0: unset,
    so both aim at Knative's default of 100 in flight per pod)."""
    target_utilization: float = TARGET_UTILIZATION_DEFAULT
    """Knative's container-concurrency-target-percentage; the HPA gets the same per-pod target
    so that the two baselines aim at the same load per replica."""
    oracle_need_ahead: Callable[[float], np.ndarray] | None = None
    """Given the oracle's tick, the replicas it should hold in each second (simulator only)."""
    slo_ttft_s: float = SLO_TTFT_DEFAULT_S
    slo_target: float = SLO_TARGET_DEFAULT
    """The service's objective: TTFT within `slo_ttft_s` for `slo_target` of requests. Leadtime
    takes it as its input; the baselines have no such knob (`bench --slo-target` tunes them)."""
    profiled_service_s: float | None = None
    """A request's mean time in service on one replica, as profiling the engine on the
    workload's prompt and output lengths measures it (Dynamo's planner sizes from such a
    profile); the simulator knows it, a live service does not."""


def parse_policy_list(text: str) -> list[str]:
    """`kpa,hpa,static:4` → ['kpa', 'hpa', 'static:4'], refusing empty and repeated names."""
    names = [part.strip() for part in text.split(",")]
    if not text.strip() or any(not name for name in names):
        raise InputError(
            f"--policies: expected a comma-separated list of {', '.join(POLICY_NAMES)}"
        )
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InputError(f"--policies: {', '.join(repeated)} named more than once")
    return names


def make_policy(spec: str, context: PolicyContext, *, share: float | None = None) -> Policy:
    """Build the policy a name stands for; unknown names list the known ones.

    `share` sets a tunable baseline's main knob to that share of the slots per replica (the
    grid of `knobs.py`, which `bench --slo-target` searches); None keeps its default."""
    name, _, argument = spec.strip().partition(":")
    if share is not None and (name not in KNOBS or argument):
        raise InputError(f"policy {spec!r}: has no tuning knob; tunable: {', '.join(KNOBS)}")
    per_pod = context.container_concurrency or CONTAINER_CONCURRENCY_TARGET_DEFAULT

    def tuned(key: str) -> dict[str, float]:
        """The knob's keyword override at `share`, or none (the policy's default)."""
        return {} if share is None else {key: KNOBS[name].value(share, per_pod)}

    if name == "kpa" and not argument:
        kpa = KpaConfig(container_concurrency=context.container_concurrency)
        return Kpa(kpa if share is None else replace(kpa, target_utilization=share))
    if name == "leadtime" and argument in ("", "no-placeholders"):
        kpa = KpaConfig(container_concurrency=context.container_concurrency)
        pool = argument != "no-placeholders"
        return Leadtime(
            LeadtimeConfig(
                kpa=kpa,
                placeholders=pool,
                slo_ttft_s=context.slo_ttft_s,
                slo_target=context.slo_target,
            )
        )
    if name in ("hpa", "hpa-behavior") and not argument:
        target = per_pod * (context.target_utilization if share is None else share)
        if name == "hpa":  # no `behavior`: upstream's normalizeDesiredReplicas
            return Hpa(HpaConfig(target_per_pod=target))
        return Hpa(
            HpaConfig(
                target_per_pod=target, scale_up=default_scale_up(), scale_down=default_scale_down()
            )
        )
    if name == "ray-serve" and not argument:
        return ray_serve.make(context.container_concurrency, **tuned("target_ongoing_requests"))
    if name == "keda" and not argument:
        return keda.make(context.container_concurrency, **tuned("threshold"))
    if name == "aibrix-apa" and not argument:
        return aibrix_apa.make(
            context.container_concurrency, max_replicas=PEER_MAX_REPLICAS, **tuned("target_value")
        )
    if name == "dynamo-planner" and not argument:
        # The batch an engine keeps within a latency SLA: by default the share of the slots the
        # other baselines aim at (our replicas' latency does not grow with the batch, so the
        # profiler alone would take every slot and size for 100 % utilisation).
        slots = context.container_concurrency
        batch_share = context.target_utilization if share is None else share
        batch = {"max_num_seqs": int(KNOBS[name].value(batch_share, slots))} if slots else {}
        return dynamo_planner.make(
            slots,
            max_replicas=PEER_MAX_REPLICAS,
            profiled_service_s=context.profiled_service_s,
            **batch,
        )
    if name == "static":
        return Static(_replica_count(argument, spec))
    if name == "oracle" and not argument:
        if context.oracle_need_ahead is None:
            raise InputError("policy oracle: needs the future, which only the simulator has")
        return Oracle(context.oracle_need_ahead(ORACLE_TICK_S), tick_s=ORACLE_TICK_S)
    raise InputError(f"policy {spec!r}: expected one of {', '.join(POLICY_NAMES)}")


def _replica_count(argument: str, spec: str) -> int:
    try:
        count = int(argument)
    except ValueError:
        count = -1
    if count < 0:
        raise InputError(f"policy {spec!r}: static:N needs a whole number of replicas N >= 0")
    return count
