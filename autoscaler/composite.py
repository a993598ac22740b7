"""Several adapters behind one `Catalog` + `Actuator`: a cluster may run Knative revisions and
HPA-managed or plain workloads side by side, and one loop decides for all of them.

Each service belongs to the first adapter that lists it; decisions and status requests go to
its owner only. A service's policy settings come from its owner when the owner has its own
(Knative's annotations), else from the configuration.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Protocol, runtime_checkable

from autoscaler.config import PolicyConfig
from autoscaler.ports import ReplicaStatus, ServiceAdapter, ServiceKey


@runtime_checkable
class PolicySource(Protocol):
    """An adapter whose services carry their own policy settings (Knative's annotations)."""

    def policy_for(self, key: ServiceKey) -> PolicyConfig: ...


class CompositeAdapter:
    def __init__(
        self,
        members: Sequence[ServiceAdapter],
        default_policy: Callable[[ServiceKey], PolicyConfig],
    ) -> None:
        self.members = list(members)
        self.default_policy = default_policy
        self.owner: dict[ServiceKey, ServiceAdapter] = {}

    async def services(self) -> list[ServiceKey]:
        owner: dict[ServiceKey, ServiceAdapter] = {}
        for member in self.members:
            for key in await member.services():
                owner.setdefault(key, member)
        self.owner = owner
        return sorted(owner)

    def policy_for(self, key: ServiceKey) -> PolicyConfig:
        member = self.owner.get(key)
        if isinstance(member, PolicySource):
            return member.policy_for(key)
        return self.default_policy(key)

    async def apply(self, decisions: Mapping[ServiceKey, int]) -> Mapping[ServiceKey, str]:
        failures: dict[ServiceKey, str] = {
            key: f"{key}: no adapter manages it" for key in decisions if key not in self.owner
        }
        groups = self._by_owner(k for k in decisions if k in self.owner)
        answers = await asyncio.gather(
            *(member.apply({k: decisions[k] for k in keys}) for member, keys in groups)
        )
        for answer in answers:
            failures.update(answer)
        return failures

    async def status(self, keys: list[ServiceKey]) -> Mapping[ServiceKey, ReplicaStatus]:
        groups = self._by_owner(k for k in keys if k in self.owner)
        answers = await asyncio.gather(*(member.status(list(ks)) for member, ks in groups))
        return {key: value for answer in answers for key, value in answer.items()}

    def _by_owner(
        self, keys: Iterable[ServiceKey]
    ) -> list[tuple[ServiceAdapter, list[ServiceKey]]]:
        groups: dict[int, tuple[ServiceAdapter, list[ServiceKey]]] = {}
        for key in keys:
            member = self.owner[key]
            groups.setdefault(id(member), (member, []))[1].append(key)
        return list(groups.values())
