"""Several adapters behind one port: each service is its first lister's, decisions and status
go to that owner only, policies come from the owner when it has its own."""

from __future__ import annotations

import dataclasses

from adapters.simulator.config import SimConfig
from adapters.simulator.live import LiveCluster
from autoscaler.composite import CompositeAdapter
from autoscaler.config import PolicyConfig
from autoscaler.ports import ServiceKey
from tests.helpers.loop import steady

A, B, SHARED = ServiceKey("a", "one"), ServiceKey("b", "two"), ServiceKey("a", "both")
OWN = dataclasses.replace(PolicyConfig(), max_scale=3)


class WithPolicies(LiveCluster):
    """A simulated cluster that, like the Knative adapter, has per-service policies."""

    def policy_for(self, key: ServiceKey) -> PolicyConfig:
        return OWN


async def test_services_decisions_and_status_go_to_the_owner():
    first = WithPolicies([(A, steady(5, 300)), (SHARED, steady(5, 300))], SimConfig())
    second = LiveCluster([(B, steady(5, 300)), (SHARED, steady(5, 300, 1))], SimConfig())
    composite = CompositeAdapter([first, second], lambda key: PolicyConfig())
    assert await composite.services() == sorted([A, B, SHARED])
    assert composite.owner[SHARED] is first  # the first lister owns a service both list

    failures = await composite.apply({A: 2, B: 3, SHARED: 4, ServiceKey("c", "x"): 1})
    assert set(failures) == {ServiceKey("c", "x")}
    statuses = await composite.status([A, B, SHARED])
    assert (statuses[A].desired, statuses[B].desired, statuses[SHARED].desired) == (2, 3, 4)
    assert (await second.status([SHARED]))[SHARED].desired != 4  # untouched
    assert composite.policy_for(A) is OWN and composite.policy_for(B) == PolicyConfig()
