"""The external metrics API over HTTP(S): the routes the aggregation layer proxies to.

Served on its own TLS listener (the API server dials it with its front-proxy client
certificate), never on the plain HTTP port of the status page. Errors are Kubernetes `Status`
objects: 404 for a metric this API does not have, 400 for a label selector it cannot read.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

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

Provider = Callable[[str, str], list[Sample]]
"""(namespace, metric) → that metric's samples for every service in the namespace."""


def metrics_app(provider: Provider) -> web.Application:
    app = web.Application()
    base = f"/apis/{GROUP_VERSION}"
    app.router.add_get(f"/apis/{GROUP}", _group)
    app.router.add_get(base, _discovery)
    app.router.add_get(base + "/namespaces/{namespace}/{metric}", _values(provider))
    return app


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
            return web.json_response(
                status(
                    404,
                    "NotFound",
                    f"external metric {metric!r} not found; this API serves {', '.join(METRICS)}",
                ),
                status=404,
            )
        try:
            terms = parse_selector(request.query.get("labelSelector", ""))
        except SelectorError as error:
            return web.json_response(status(400, "BadRequest", str(error)), status=400)
        samples = [s for s in provider(namespace, metric) if matches(terms, s.labels)]
        return web.json_response(value_list(samples))

    return handler
