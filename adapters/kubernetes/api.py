"""A Kubernetes API client for Leadtime's adapters."""

from __future__ import annotations

import os

from kubernetes_asyncio import client
from kubernetes_asyncio import config as kube_config


async def kubernetes_api(kubeconfig: str | None) -> client.ApiClient:
    """A client from the kubeconfig file, or the pod's service account when None."""
    configuration = client.Configuration()
    if kubeconfig:
        await kube_config.load_kube_config(config_file=os.path.expanduser(kubeconfig),
                                           client_configuration=configuration)
    else:
        kube_config.load_incluster_config(client_configuration=configuration)
    return client.ApiClient(configuration)
