"""The external metrics API over HTTP(S): the routes the aggregation layer proxies to.

Served on its own TLS listener (the API server dials it with its front-proxy client
certificate), never on the plain HTTP port of the status page. Every request must come from an
allowed front proxy and name a user, and a metric is served only to a user a SubjectAccessReview
allows to `list` it in that namespace (`access.py`). Errors are Kubernetes `Status` objects: 401
and 403 for who may not, 404 for a metric this API does not have, 400 for a label selector it
cannot read, 503 when authorisation cannot be checked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from adapters.hpa.access import Authorizer, FrontProxy
from adapters.hpa.metrics_api import (
    GROUP,
    GROUP_VERSION,
    METRICS,
    Sample,
    SelectorError,
    discovery,
    matches,
    parse_selector,
    status,
    value_list,
)
from adapters.kubernetes.api import ApiCallFailed

Provider = Callable[[str, str], list[Sample]]
"""(namespace, metric) → that metric's samples for every service in the namespace."""


@dataclass(frozen=True)
class Access:
    """Who may call: the front proxy it must be, and the authoriser of the user it names."""

    front_proxy: FrontProxy
    authorizer: Authorizer


def metrics_app(provider: Provider, access: Access | None) -> web.Application:
    """The API's routes; with `access` None (tests of the shapes alone) nobody is checked."""
    app = web.Application(middlewares=[_guard(access)] if access is not None else [])
    base = f"/apis/{GROUP_VERSION}"
    app.router.add_get(f"/apis/{GROUP}", _group)
    app.router.add_get(base, _discovery)
    app.router.add_get(base + "/namespaces/{namespace}/{metric}", _values(provider))
    return app


def _guard(access: Access) -> Callable:
    @web.middleware
    async def guard(request: web.Request, handler: Callable) -> web.StreamResponse:
        transport = request.transport
        peer = transport.get_extra_info("peercert") if transport is not None else None
        refused = access.front_proxy.admits(peer)
        if refused is not None:
            return _status(401, "Unauthorized", refused)
        caller = access.front_proxy.caller(request.headers)
        if caller is None:
            return _status(401, "Unauthorized", "the front proxy named no user")
        namespace, metric = request.match_info.get("namespace"), request.match_info.get("metric")
        if namespace is not None and metric is not None:  # discovery needs a user, no more
            user, groups = caller
            try:
                allowed = await access.authorizer.allowed(user, groups, namespace, metric)
            except ApiCallFailed as error:
                return _status(503, "ServiceUnavailable", f"cannot authorise now: {error}")
            if not allowed:
                return _status(
                    403, "Forbidden", f"{user} may not list {metric} in namespace {namespace}"
                )
        return await handler(request)

    return guard


def _status(code: int, reason: str, message: str) -> web.Response:
    return web.json_response(status(code, reason, message), status=code)


async def _discovery(request: web.Request) -> web.Response:
    return web.json_response(discovery())


async def _group(request: web.Request) -> web.Response:
    version = {"groupVersion": GROUP_VERSION, "version": GROUP_VERSION.split("/")[1]}
    return web.json_response(
        {
            "kind": "APIGroup",
            "apiVersion": "v1",
            "name": GROUP,
            "versions": [version],
            "preferredVersion": version,
        }
    )


def _values(provider: Provider):
    async def handler(request: web.Request) -> web.Response:
        namespace, metric = request.match_info["namespace"], request.match_info["metric"]
        if metric not in METRICS:
            served = ", ".join(METRICS)
            return _status(
                404, "NotFound", f"external metric {metric!r} not found; this API serves {served}"
            )
        try:
            terms = parse_selector(request.query.get("labelSelector", ""))
        except SelectorError as error:
            return _status(400, "BadRequest", str(error))
        samples = [s for s in provider(namespace, metric) if matches(terms, s.labels)]
        return web.json_response(value_list(samples))

    return handler
