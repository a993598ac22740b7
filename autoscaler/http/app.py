"""The HTTP face of the service: health, metrics, the JSON API, the status page.

Errors are JSON (`{"error": {"status": …, "message": …}}`) whatever went wrong, request
bodies are size-limited by aiohttp (`client_max_size`), and pause/resume need a bearer token:
with none configured they do not exist (404), so a default install cannot be paused by anyone
who reaches the port. The fleet-wide answers (`/api/v1/services`, `/metrics`) are built at most
once per tick, so however often anyone asks, the event loop pays for one.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
from collections.abc import Callable
from importlib import resources
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from autoscaler.config import Config
from autoscaler.loop import ControlLoop
from autoscaler.ports import ServiceKey
from autoscaler.service_state import DISPLAY_S, ServiceState

log = logging.getLogger("leadtime.http")
LOOP = web.AppKey("loop", ControlLoop)
CONFIG = web.AppKey("config", Config)
PER_TICK = web.AppKey("per_tick", dict)
MAX_REASON_CHARS = 200
"""Longest reason a pause keeps (it is shown on the status page and in the API)."""
"""Fleet-wide answers by route: (the tick they were built at, the body)."""
STATIC = resources.files("autoscaler.http") / "static"


def make_app(loop: ControlLoop, config: Config) -> web.Application:
    app = web.Application(client_max_size=config.http.max_body_bytes, middlewares=[_json_errors])
    app[LOOP], app[CONFIG], app[PER_TICK] = loop, config, {}
    app.router.add_get("/", _index)
    app.router.add_get("/static/{name}", _static)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/api/v1/services", _services)
    app.router.add_get("/api/v1/services/{namespace}/{name}", _service)
    app.router.add_post("/api/v1/services/{namespace}/{name}/pause", _pause)
    app.router.add_post("/api/v1/services/{namespace}/{name}/resume", _resume)
    return app


# ------------------------------------------------------------------------- errors
@web.middleware
async def _json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except web.HTTPException as error:
        if error.status < 400:
            raise
        if error.content_type == "application/json" and error.text:
            body = error.text
        else:
            message = error.text or error.reason
            body = json.dumps({"error": {"status": error.status, "message": message}})
        kept = {k: v for k, v in error.headers.items() if k in ("WWW-Authenticate", "Allow")}
        return web.Response(
            status=error.status, text=body, content_type="application/json", headers=kept
        )
    except Exception:
        log.exception("unhandled error serving %s", request.path)
        body = json.dumps({"error": {"status": 500, "message": "internal error"}})
        return web.Response(status=500, text=body, content_type="application/json")


def _fail(status: type[web.HTTPException], message: str, **kwargs: Any) -> web.HTTPException:
    body = json.dumps({"error": {"status": status.status_code, "message": message}})
    return status(text=body, content_type="application/json", **kwargs)


# ------------------------------------------------------------------------ handlers
async def _index(request: web.Request) -> web.StreamResponse:
    page = (STATIC / "index.html").read_text(encoding="utf-8")
    return web.Response(text=page, content_type="text/html", headers={"Cache-Control": "no-cache"})


async def _static(request: web.Request) -> web.StreamResponse:
    """A file of the status page. Not aiohttp's static route: it answers a missing file with an
    empty `application/octet-stream` 404, where every error here is JSON."""
    name = request.match_info["name"]
    asset = STATIC / name
    if name.startswith(".") or "/" in name or "\\" in name or not asset.is_file():
        raise _fail(web.HTTPNotFound, f"no static file {name!r}")
    return web.FileResponse(str(asset))


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _readyz(request: web.Request) -> web.Response:
    loop = request.app[LOOP]
    if not loop.ready:
        raise _fail(web.HTTPServiceUnavailable, "not ready: no full tick with every adapter yet")
    return web.json_response({"status": "ready", "ticks": loop.ticks})


async def _metrics(request: web.Request) -> web.Response:
    telemetry = request.app[LOOP].telemetry
    response = web.Response(body=_per_tick(request, "metrics", telemetry.exposition))
    response.headers["Content-Type"] = telemetry.content_type
    return response


async def _services(request: web.Request) -> web.Response:
    loop = request.app[LOOP]

    def build() -> bytes:
        services = [_summary(state) for state in loop.states.values()]
        payload = {"now": loop.clock.now(), "mode": loop.config.mode, "services": services}
        return _dumps(payload).encode()

    body = _per_tick(request, "services", build)
    return web.Response(body=body, content_type="application/json")


def _per_tick(request: web.Request, route: str, build: Callable[[], bytes]) -> bytes:
    """`build()`'s body, built again only once the loop has ticked since the last build."""
    ticks = request.app[LOOP].ticks
    kept = request.app[PER_TICK].get(route)
    if kept is None or kept[0] != ticks:
        kept = (ticks, build())
        request.app[PER_TICK][route] = kept
    return kept[1]


async def _service(request: web.Request) -> web.Response:
    loop = request.app[LOOP]
    state = _lookup(request)
    return web.json_response(_detail(loop, state, loop.clock.now()), dumps=_dumps)


async def _pause(request: web.Request) -> web.Response:
    return await _set_paused(request, True)


async def _resume(request: web.Request) -> web.Response:
    return await _set_paused(request, False)


async def _set_paused(request: web.Request, paused: bool) -> web.Response:
    _authorise(request)
    state = _lookup(request)
    body = await request.read()  # over client_max_size: 413, as JSON via the middleware
    reason = ""
    if body.strip():
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError) as error:  # RecursionError: nested too deep
            raise _fail(web.HTTPBadRequest, f"body: not valid JSON ({error})") from error
        if not isinstance(payload, dict) or set(payload) - {"reason"}:
            raise _fail(web.HTTPBadRequest, 'body: expected {"reason": "..."} or nothing')
        reason = payload.get("reason", "")
        if not isinstance(reason, str) or len(reason) > MAX_REASON_CHARS:
            raise _fail(
                web.HTTPBadRequest,
                f"reason: expected text of at most {MAX_REASON_CHARS} characters",
            )
    state.paused, state.pause_reason = paused, reason if paused else ""
    request.app[PER_TICK].clear()  # the list shows the pause at once
    log.info("%s %s%s", "paused" if paused else "resumed", state.key, f": {reason}" * bool(reason))
    payload = {"service": str(state.key), "paused": paused, "reason": state.pause_reason}
    return web.json_response(payload)


def _authorise(request: web.Request) -> None:
    token = request.app[CONFIG].http.token
    if not token:
        raise _fail(web.HTTPNotFound, "pause and resume are disabled: no API token is configured")
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise _fail(
            web.HTTPUnauthorized,
            "missing bearer token (Authorization: Bearer <token>)",
            headers={"WWW-Authenticate": 'Bearer realm="leadtime"'},
        )
    # aiohttp keeps bytes that are not UTF-8 as surrogates: compare them as the bytes they were
    if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), token.encode()):
        raise _fail(web.HTTPForbidden, "wrong token")


def _lookup(request: web.Request) -> ServiceState:
    key = ServiceKey(request.match_info["namespace"], request.match_info["name"])
    state = request.app[LOOP].states.get(key)
    if state is None:
        raise _fail(web.HTTPNotFound, f"no service {key} is managed")
    return state


# ------------------------------------------------------------------------- payloads
def _summary(state: ServiceState) -> dict[str, Any]:
    status = state.status
    last = state.last
    return {
        "namespace": state.key.namespace,
        "name": state.key.name,
        "paused": state.paused,
        "pause_reason": state.pause_reason,
        "status": state.data_status,
        "ready": status.ready,
        "pending": status.pending,
        "desired": last.desired if last is not None else status.desired,
        "actual_desired": status.desired,
        "last_decision": last.as_dict() if last is not None else None,
        "slo": _slo(state),
    }


def _slo(state: ServiceState) -> dict[str, Any]:
    """The service's objective and its measured attainment; null where there is none (no
    source figure, or no request judged in its window)."""
    found = state.attainment
    ratio = found.ratio if found is not None else None
    return {
        "ttft_s": state.slo_ttft_s,
        "target": state.slo_target,
        "attainment": ratio,
        "met": found.met if found is not None else None,
        "total": found.total if found is not None else None,
        "source": found.source if found is not None else None,
        "meets_target": None if ratio is None else ratio >= state.slo_target,
    }


def _detail(loop: ControlLoop, state: ServiceState, now: float) -> dict[str, Any]:
    fleet = loop.fleet
    window = fleet.tail(state.key, DISPLAY_S)
    end = fleet.ring.end or 0
    times = [float(end - window.shape[1] + i) for i in range(window.shape[1])]
    replicas = fleet.replicas(state.row)
    forecast = state.forecast
    config = state.policy.config
    return {
        **_summary(state),
        "now": now,
        "series": {
            "time": times,
            "arrivals": window[1].tolist(),
            "concurrency": window[0].tolist(),
        },
        "replicas": {
            "time": replicas[:, 0].tolist(),
            "ready": replicas[:, 1].astype(int).tolist(),
            "pending": replicas[:, 2].astype(int).tolist(),
            "desired": replicas[:, 3].astype(int).tolist(),
        },
        "decisions": [record.as_dict() for record in state.decisions],
        "forecast": None
        if forecast is None
        else {
            "start": state.forecast_at,
            "step_s": forecast.step_s,
            "model": forecast.model,
            "quantiles": {f"{q:g}": values.tolist() for q, values in forecast.quantiles.items()},
        },
        "forecast_note": state.forecast_note,
        "signals": dict(state.signals),
        "forecast_quality": {"mase": state.forecast_mase, "coverage": state.forecast_coverage},
        "lead_time_s": config.lead_time_s(state.status.cold_start_s),
    }


def _dumps(payload: Any) -> str:
    """JSON without NaN (not JSON): missing values become null."""
    return json.dumps(_finite(payload), allow_nan=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
