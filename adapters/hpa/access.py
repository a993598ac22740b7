"""Who may read the external metrics API: the checks Kubernetes' own aggregated API servers make.

The API server's aggregation layer calls an extension API over TLS with its front-proxy client
certificate and names the user it authenticated in request headers (`X-Remote-User`,
`X-Remote-Group`). An extension server must therefore (1) accept only certificates from the
front-proxy CA, (2) only those whose common name is an allowed front proxy, or anyone holding
such a certificate could claim to be any user, and (3) authorise that user for the request
with a SubjectAccessReview, since the headers name a user, not a permission. The cluster
publishes (1) and (2) in `kube-system/extension-apiserver-authentication`.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes_asyncio import client
from multidict import MultiMapping

from adapters.hpa.metrics_api import GROUP, VERSION
from adapters.kubernetes.api import call
from autoscaler.errors import InputError

EXTENSION_AUTHENTICATION = ("kube-system", "extension-apiserver-authentication")
"""The ConfigMap where the API server publishes its front proxy's CA and names."""


@dataclass(frozen=True)
class FrontProxy:
    """How to recognise the aggregation layer and read the user it names."""

    ca_pem: str
    allowed_names: tuple[str, ...]
    """Common names a front-proxy certificate may carry; empty: any the CA signed."""
    user_headers: tuple[str, ...] = ("X-Remote-User",)
    group_headers: tuple[str, ...] = ("X-Remote-Group",)

    def admits(self, peer_certificate: Mapping[str, Any] | None) -> str | None:
        """Why the TLS peer is not an allowed front proxy, or None when it is."""
        name = common_name(peer_certificate)
        if name is None:
            return "a client certificate from the aggregation layer is needed"
        if self.allowed_names and name not in self.allowed_names:
            return f"client certificate {name!r} is not an allowed front proxy"
        return None

    def caller(self, headers: MultiMapping[str]) -> tuple[str, tuple[str, ...]] | None:
        """The user and groups the front proxy names, or None when it names no user."""
        user = next((headers[h] for h in self.user_headers if headers.get(h)), None)
        if user is None:
            return None
        groups = tuple(
            value for header in self.group_headers for value in headers.getall(header, []) if value
        )
        return user, groups


def front_proxy_from_configmap(data: Mapping[str, str]) -> FrontProxy:
    """The front proxy as `extension-apiserver-authentication` describes it."""
    ca = data.get("requestheader-client-ca-file", "").strip()
    if not ca:
        namespace, name = EXTENSION_AUTHENTICATION
        raise InputError(
            f"{namespace}/{name} has no requestheader-client-ca-file: this cluster's API server "
            "has no front proxy; give hpa.client_ca_file"
        )
    return FrontProxy(
        ca_pem=ca,
        allowed_names=_names(data, "requestheader-allowed-names"),
        user_headers=_names(data, "requestheader-username-headers") or ("X-Remote-User",),
        group_headers=_names(data, "requestheader-group-headers") or ("X-Remote-Group",),
    )


async def read_front_proxy(api: client.ApiClient) -> FrontProxy:
    namespace, name = EXTENSION_AUTHENTICATION
    configmap = await call(
        f"read configmap {namespace}/{name}",
        client.CoreV1Api(api).read_namespaced_config_map(name, namespace),
    )
    return front_proxy_from_configmap(configmap.data or {})


def common_name(peer_certificate: Mapping[str, Any] | None) -> str | None:
    """The subject CN of a certificate as `ssl.SSLSocket.getpeercert()` gives it."""
    for rdn in (peer_certificate or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


class Authorizer:
    """SubjectAccessReviews for `list` on one external metric in one namespace (a GET of the
    metric's collection, as the API server itself names that request), each answer kept for
    `ttl_s` (the HPA controller asks for the same metric every sync)."""

    def __init__(self, api: client.ApiClient, ttl_s: float = 10.0, max_entries: int = 10_000):
        self.api, self.ttl_s, self.max_entries = api, ttl_s, max_entries
        self._answers: OrderedDict[tuple, tuple[float, bool]] = OrderedDict()

    async def allowed(
        self, user: str, groups: tuple[str, ...], namespace: str, metric: str
    ) -> bool:
        key = (user, groups, namespace, metric)
        now = time.monotonic()
        kept = self._answers.get(key)
        if kept is not None and now - kept[0] < self.ttl_s:
            return kept[1]
        review = await call(
            "create subjectaccessreview",
            client.AuthorizationV1Api(self.api).create_subject_access_review(
                subject_access_review(user, groups, namespace, metric)
            ),
        )
        allowed = bool(review.status and review.status.allowed)
        self._answers[key] = (now, allowed)
        self._answers.move_to_end(key)
        while len(self._answers) > self.max_entries:
            self._answers.popitem(last=False)
        return allowed


def subject_access_review(
    user: str, groups: tuple[str, ...], namespace: str, metric: str
) -> dict[str, Any]:
    """May `user` (in `groups`) list external metric `metric` in `namespace`?"""
    return {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": user,
            "groups": list(groups),
            "resourceAttributes": {
                "group": GROUP,
                "version": VERSION,
                "resource": metric,
                "namespace": namespace,
                "verb": "list",
            },
        },
    }


def _names(data: Mapping[str, str], key: str) -> tuple[str, ...]:
    text = data.get(key, "").strip()
    if not text:
        return ()
    try:
        names = json.loads(text)
    except ValueError:
        names = [text]
    return tuple(str(name) for name in names if name) if isinstance(names, list) else ()
