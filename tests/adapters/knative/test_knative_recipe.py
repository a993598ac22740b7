"""The real-cluster recipe's parts that can run here: its configuration loads, the RBAC it
applies is exactly the adapter's rules, and the replay script drives a streaming server."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import yaml
from aiohttp import web

from adapters.knative.rbac import RULES
from autoscaler.config import load_config
from tests.conftest import free_port

RECIPE = Path(__file__).resolve().parents[3] / "load_tests" / "knative"


def test_the_recipes_configuration_loads_with_knative_enabled():
    config = load_config(str(RECIPE / "leadtime.yaml"), env={})
    assert config.knative.enabled and config.prometheus.url == "http://127.0.0.1:9090"


def test_the_rbac_the_recipe_applies_is_the_adapters_rules():
    printed = subprocess.run(
        [sys.executable, "-m", "adapters.knative.rbac", "ops"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    documents = list(yaml.safe_load_all(printed))
    role = next(d for d in documents if d["kind"] == "ClusterRole")
    assert role["rules"] == RULES
    binding = next(d for d in documents if d["kind"] == "ClusterRoleBinding")
    assert binding["subjects"][0] == {
        "kind": "ServiceAccount",
        "name": "leadtime",
        "namespace": "ops",
    }
    assert not any("*" in rule["verbs"] or "*" in rule["resources"] for rule in RULES)


async def test_the_replay_script_reports_what_a_streaming_server_gave():
    seen: list[str] = []

    async def completions(request: web.Request) -> web.StreamResponse:
        seen.append(request.headers["Host"])
        body = await request.json()
        if len(seen) % 10 == 0:
            return web.Response(status=503)
        response = web.StreamResponse()
        await response.prepare(request)
        for _ in range(min(body["max_tokens"], 3)):  # tokens drawn as the simulator draws them
            await response.write(b'data: {"choices":[{"text":"x"}]}\n\n')
        return response

    app = web.Application()
    app.router.add_post("/v1/completions", completions)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(RECIPE / "replay.py"),
            "--url",
            f"http://127.0.0.1:{port}",
            "--host",
            "chat.default.example.com",
            "--workload",
            "llm-bursty",
            "--duration",
            "1m",
            "--speed",
            "60",
            "--slo-ttft",
            "1h",
            "--json",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 120)
    finally:
        await runner.cleanup()
    assert process.returncode == 0, err.decode()[-2000:]
    result = json.loads(out)
    assert result["requests"] == len(seen) > 50
    assert result["errors"] == {"503": len(seen) // 10}
    assert result["served"] == len(seen) - len(seen) // 10
    # With an SLO no answer can miss, attainment is exactly the share served (no timing bet).
    assert result["slo_attainment"] == result["served"] / result["requests"]
    assert set(seen) == {"chat.default.example.com"}
