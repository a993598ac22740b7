"""Every HTTP endpoint of the service, against the real app on the simulator adapter."""

from __future__ import annotations

import pytest

from autoscaler.ports import ServiceKey
from tests.helpers.http import TOKEN, build, ticked
from tests.helpers.loop import CHAT


async def test_health_and_readiness(aiohttp_client):
    app, loop, _clock = build()
    client = await aiohttp_client(app)
    assert (await client.get("/healthz")).status == 200
    not_ready = await client.get("/readyz")
    assert not_ready.status == 503
    assert "not ready" in (await not_ready.json())["error"]["message"]
    await loop.tick()
    ready = await client.get("/readyz")
    assert ready.status == 200 and (await ready.json())["status"] == "ready"


async def test_metrics_exposition_has_every_leadtime_metric(aiohttp_client):
    app, loop, clock = build()
    client = await aiohttp_client(app)
    await ticked(loop, clock)
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    text = await response.text()
    for name in (
        "leadtime_tick_duration_seconds_bucket",
        "leadtime_decisions_total{",
        'leadtime_desired_replicas{namespace="default",service="chat"}',
        'leadtime_ready_replicas{namespace="default",service="code"}',
        "leadtime_services 2.0",
        "leadtime_services_without_data 0.0",
        "leadtime_fit_duration_seconds_count",
        "leadtime_adapter_errors_total",
    ):
        assert name in text, name
    assert all(line.startswith(("leadtime_", "#")) or not line for line in text.splitlines())


async def test_services_list_and_detail(aiohttp_client):
    app, loop, clock = build()
    client = await aiohttp_client(app)
    await ticked(loop, clock)
    listing = await (await client.get("/api/v1/services")).json()
    assert listing["mode"] == "live"
    assert {(s["namespace"], s["name"]) for s in listing["services"]} == {
        ("default", "chat"),
        ("default", "code"),
    }
    chat = next(s for s in listing["services"] if s["name"] == "chat")
    assert chat["status"] == "ok" and chat["ready"] >= 1
    assert chat["last_decision"]["reason"]
    detail = await (await client.get("/api/v1/services/default/chat")).json()
    assert len(detail["series"]["time"]) == len(detail["series"]["arrivals"]) > 60
    assert detail["replicas"]["time"] and detail["decisions"]
    assert detail["forecast"] is None and detail["forecast_note"]  # no forecasting workers here
    assert detail["lead_time_s"] > 0
    assert detail["signals"] == {}  # the simulator reads no KV-cache or token signals


async def test_unknown_service_and_unknown_path_are_json_404s(aiohttp_client):
    app, loop, _clock = build()
    client = await aiohttp_client(app)
    await loop.tick()
    for path in ("/api/v1/services/default/nope", "/api/v2/whatever"):
        response = await client.get(path)
        assert response.status == 404
        assert response.content_type == "application/json"
        assert (await response.json())["error"]["status"] == 404
    wrong_method = await client.delete("/api/v1/services")
    assert wrong_method.status == 405
    assert (await wrong_method.json())["error"]["status"] == 405


async def test_pause_and_resume_do_not_exist_without_a_token(aiohttp_client):
    app, loop, _clock = build(token=None)
    client = await aiohttp_client(app)
    await loop.tick()
    response = await client.post(
        "/api/v1/services/default/chat/pause", headers={"Authorization": "Bearer x"}
    )
    assert response.status == 404
    assert "disabled" in (await response.json())["error"]["message"]
    assert not loop.states[CHAT].paused


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"Authorization": "Bearer wrong"}, 403), ({"Authorization": "Basic abc"}, 401)],
)
async def test_pause_needs_the_bearer_token(aiohttp_client, headers, status):
    app, loop, _clock = build(token=TOKEN)
    client = await aiohttp_client(app)
    await loop.tick()
    response = await client.post("/api/v1/services/default/chat/pause", headers=headers)
    assert response.status == status
    assert (await response.json())["error"]["status"] == status
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert not loop.states[CHAT].paused


async def test_pause_and_resume_with_the_token(aiohttp_client):
    app, loop, _clock = build(token=TOKEN)
    client = await aiohttp_client(app)
    await loop.tick()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    paused = await client.post(
        "/api/v1/services/default/chat/pause", headers=auth, json={"reason": "maintenance"}
    )
    assert paused.status == 200 and (await paused.json())["paused"] is True
    assert loop.states[CHAT].paused
    listing = await (await client.get("/api/v1/services")).json()
    chat = next(s for s in listing["services"] if s["name"] == "chat")
    assert chat["paused"] is True and chat["pause_reason"] == "maintenance"
    resumed = await client.post("/api/v1/services/default/chat/resume", headers=auth)
    assert resumed.status == 200 and not loop.states[CHAT].paused
    assert (await resumed.json())["reason"] == "" and not loop.states[CHAT].pause_reason
    missing = await client.post("/api/v1/services/default/nope/pause", headers=auth)
    assert missing.status == 404


async def test_bodies_are_size_limited_and_must_be_json(aiohttp_client):
    app, loop, _clock = build(token=TOKEN, max_body=1024)
    client = await aiohttp_client(app)
    await loop.tick()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    url = "/api/v1/services/default/chat/pause"
    huge = await client.post(url, headers=auth, data=b"x" * 5000)
    assert huge.status == 413
    assert (await huge.json())["error"]["status"] == 413
    garbage = await client.post(url, headers=auth, data=b"{not json")
    assert garbage.status == 400
    assert "not valid JSON" in (await garbage.json())["error"]["message"]
    extra = await client.post(url, headers=auth, json={"replicas": 3})
    assert extra.status == 400
    assert not loop.states[CHAT].paused


async def test_status_page_and_its_assets_are_served(aiohttp_client):
    app, _loop, _clock = build()
    client = await aiohttp_client(app)
    page = await client.get("/")
    assert page.status == 200 and page.content_type == "text/html"
    html = await page.text()
    assert "static/app.js" in html
    script = await client.get("/static/app.js")
    assert script.status == 200
    assert "api/v1/services" in await script.text()
    assert (await client.get("/static/../../config.py")).status in (403, 404)


def test_service_key_prints_as_kubernetes_does():
    assert str(ServiceKey("ml", "llama")) == "ml/llama"
