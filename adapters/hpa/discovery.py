"""Which `autoscaling` version of the HPA the cluster serves: `v2` where it exists (Kubernetes
≥ 1.23), else `v2beta2` (1.12–1.25), chosen by discovery as kubectl does."""

from __future__ import annotations

from kubernetes_asyncio import client

PREFERRED = ("autoscaling/v2", "autoscaling/v2beta2")


async def hpa_group_version(api: client.ApiClient) -> str:
    group = await client.AutoscalingApi(api).get_api_group()
    served = {version.group_version for version in group.versions}
    for candidate in PREFERRED:
        if candidate in served:
            return candidate
    raise RuntimeError(
        f"this cluster serves no HPA version with external metrics "
        f"(needs one of {', '.join(PREFERRED)}; it serves {sorted(served)})"
    )
