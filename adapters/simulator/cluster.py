"""The GPUs every simulated service shares: a bounded pool, node provisioning, placeholder pods.

Why a separate object: with several services in one run (`--trace` given several times), the
only thing they share is the cluster's GPUs, and that sharing is what makes a placeholder pool
pay off — one spare node covers whichever service bursts first.

Model (constants in `SimConfig`):
- `gpu_pool` GPUs are free at the start; `None` means unbounded (every request is granted);
- a replica that finds no free GPU waits in one cluster-wide FIFO (Kubernetes' scheduler queue,
  all real replicas at one priority); if `node_provisioning_s` > 0 the cluster autoscaler orders
  nodes of `gpus_per_node` GPUs for the shortfall, which appear that much later and stay;
- placeholder pods (low priority, as in the cluster-autoscaler "overprovisioning" pattern) hold
  `gpus_per_replica` GPUs each. A real replica that finds no free GPU preempts one at once and
  gets its GPUs; the preempted placeholder is recreated pending, which makes the cluster
  autoscaler order a node for it — the spare capacity is rebuilt in the background, off the
  replica's critical path. Freed and new GPUs go to waiting replicas first, then to placeholders;
- a provisioned node is removed once a node's worth of GPUs has stayed free for `node_idle_s`
  (cluster-autoscaler's scale-down of unneeded nodes; pods are assumed packed, so any node's
  worth of free GPUs counts as one empty node). The initial `gpu_pool` stays.
What a bounded cluster costs is the GPUs that are up, busy or not — the fixed pool plus the
provisioned nodes while they exist (`cluster_gpu_seconds`, the cloud bill). That is where
placeholders show their price: a placeholder on a GPU of the fixed pool costs nothing extra,
one that keeps a provisioned node up costs that node. `placeholder_gpu_seconds` (GPUs held by
placeholders) is reported beside it.
"""

from __future__ import annotations

import heapq
from collections import deque
from typing import Protocol

from adapters.simulator.config import SimConfig

EV_READY, EV_GPU_FREE, EV_NODE_UP = range(3)


class Tenant(Protocol):
    """A service's side of the GPU queue (the engine's per-service run)."""

    def still_waiting(self, rid: int) -> bool: ...

    def grant(self, rid: int, now: float) -> None: ...


class GpuCluster:
    """Shared GPU state and the control-event heap of one simulation (see the module docstring)."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.gpus = config.gpus_per_replica
        self.free: int | None = config.gpu_pool
        self.provisioning = 0
        self.added = 0
        """GPUs on provisioned nodes that are up (beyond the initial pool)."""
        self._spare_since: float | None = None
        self.waiting: deque[tuple[Tenant, int]] = deque()
        self.waiting_count = 0
        self.placeholders = 0
        """Placeholder pods holding GPUs."""
        self.placeholders_pending = 0
        """Placeholder pods that want GPUs (preempted, or not yet placed)."""
        self.placeholder_area = 0.0
        self.node_area: float | None = None if config.gpu_pool is None else 0.0
        self._held_since = 0.0
        self.scored_from = 0.0
        """GPU areas count from here on (the earliest warm-up end of the services)."""
        self.preemptions = 0
        self.nodes_added = 0
        self.control: list[tuple[float, int, int, Tenant | None, int]] = []
        self._seq = 0

    @property
    def bounded(self) -> bool:
        return self.free is not None

    # --------------------------------------------------------------------- events
    def push(self, at: float, kind: int, tenant: Tenant | None = None, rid: int = -1) -> None:
        self._seq += 1
        heapq.heappush(self.control, (at, self._seq, kind, tenant, rid))

    def next_event_at(self) -> float:
        return self.control[0][0] if self.control else float("inf")

    def pop_event(self) -> tuple[float, int, Tenant | None, int]:
        at, _, kind, tenant, rid = heapq.heappop(self.control)
        if kind == EV_GPU_FREE:
            self._add_free(self.gpus, at)
        elif kind == EV_NODE_UP:
            self.provisioning -= self.config.gpus_per_node
            self._account(at)
            self.added += self.config.gpus_per_node
            self._add_free(self.config.gpus_per_node, at)
        return at, kind, tenant, rid

    # ------------------------------------------------------------------- replicas
    def request(self, tenant: Tenant, rid: int, now: float) -> bool:
        """Ask GPUs for a replica; True when granted now (else it waits in the FIFO)."""
        if self.free is None:
            return True
        if not self.waiting_count and self.free < self.gpus and self.placeholders:
            self._preempt(now)
        if not self.waiting_count and self.free >= self.gpus:
            self.free -= self.gpus
            self._provision(now)  # for a placeholder just preempted
            return True
        self.waiting.append((tenant, rid))
        self.waiting_count += 1
        self._provision(now)
        return False

    def cancel(self) -> None:
        """A waiting replica was scaled away; its FIFO entry is skipped when reached. Nodes
        already ordered for it still come (a cluster autoscaler does not cancel them)."""
        self.waiting_count -= 1

    def release(self, at: float) -> None:
        """A replica gives its GPUs back at `at` (now, or when its draining ends)."""
        if self.free is not None:
            self.push(at, EV_GPU_FREE)

    # ---------------------------------------------------------------- placeholders
    def set_placeholders(self, target: int, now: float) -> None:
        """Hold `target` placeholder pods: extra ones take free GPUs (or wait, ordering nodes),
        surplus ones are deleted at once, pending ones first."""
        if self.free is None:
            return
        total = self.placeholders + self.placeholders_pending
        if target > total:
            self.placeholders_pending += target - total
            self._place_pending(now)
            self._provision(now)
            return
        surplus = total - target
        cut = min(surplus, self.placeholders_pending)
        self.placeholders_pending -= cut
        surplus -= cut
        if surplus:
            self._account(now)
            self.placeholders -= surplus
            self.free += surplus * self.gpus
            self._grant_waiting(now)

    def remove_idle_nodes(self, now: float) -> None:
        """Remove provisioned nodes that have had nothing to hold for `node_idle_s`."""
        if self.free is None:
            return
        per_node = self.config.gpus_per_node
        if self.free < per_node or self.added < per_node:
            self._spare_since = None
            return
        if self._spare_since is None:
            self._spare_since = now
            return
        if now - self._spare_since < self.config.node_idle_s:
            return
        nodes = min(self.free // per_node, self.added // per_node)
        self._account(now)
        self.free -= nodes * per_node
        self.added -= nodes * per_node
        self._spare_since = None

    def finish(self, now: float) -> None:
        self._account(now)

    @property
    def gpu_seconds(self) -> float | None:
        """GPU-seconds of every GPU that was up (None for an unbounded pool)."""
        return self.node_area

    # -------------------------------------------------------------------- internals
    def _preempt(self, now: float) -> None:
        self._account(now)
        self.placeholders -= 1
        self.placeholders_pending += 1
        self.preemptions += now >= self.scored_from
        assert self.free is not None
        self.free += self.gpus

    def _add_free(self, gpus: int, now: float) -> None:
        assert self.free is not None
        self.free += gpus
        self._grant_waiting(now)

    def _grant_waiting(self, now: float) -> None:
        assert self.free is not None
        while self.waiting and self.free >= self.gpus:
            tenant, rid = self.waiting.popleft()
            if not tenant.still_waiting(rid):
                continue
            self.waiting_count -= 1
            self.free -= self.gpus
            tenant.grant(rid, now)
        if not self.waiting_count:
            self._place_pending(now)

    def _place_pending(self, now: float) -> None:
        assert self.free is not None
        placeable = min(self.placeholders_pending, self.free // self.gpus)
        if self.waiting_count or placeable <= 0:
            return
        self._account(now)
        self.placeholders += placeable
        self.placeholders_pending -= placeable
        self.free -= placeable * self.gpus

    def _provision(self, now: float) -> None:
        """Order nodes (a cluster autoscaler) for every pod that wants GPUs and has none."""
        delay, per_node = self.config.node_provisioning_s, self.config.gpus_per_node
        if delay <= 0 or self.free is None:
            return
        while self._shortfall() > self.provisioning:
            self.provisioning += per_node
            self.nodes_added += now >= self.scored_from
            self.push(now + delay, EV_NODE_UP)

    def _shortfall(self) -> int:
        assert self.free is not None
        wanted = (self.waiting_count + self.placeholders_pending) * self.gpus
        return wanted - self.free

    def _account(self, now: float) -> None:
        """Integrate the placeholders' and the nodes' GPUs up to `now`; call before changing
        either count."""
        elapsed = max(0.0, now - max(self._held_since, self.scored_from))
        self.placeholder_area += self.placeholders * self.gpus * elapsed
        if self.node_area is not None and self.config.gpu_pool is not None:
            self.node_area += (self.config.gpu_pool + self.added) * elapsed
        self._held_since = now
