"""Each service's SLO and measured attainment as `/metrics` and the JSON API show them, from
`ServiceState` fields set directly (the loop's wiring is tested with the loop)."""

from __future__ import annotations

from types import SimpleNamespace

from prometheus_client.parser import text_string_to_metric_families

from autoscaler.policies.leadtime import Leadtime
from autoscaler.ports import ServiceKey
from autoscaler.service_state import ServiceState
from autoscaler.slo import SLO_TARGET_DEFAULT, SLO_TTFT_DEFAULT_S, Attainment
from autoscaler.telemetry import Telemetry
from tests.helpers.http import build, ticked
from tests.helpers.loop import CHAT, CODE

SOURCE = "vllm:time_to_first_token_seconds le=1 (SLO 2s)"


def state(name: str, row: int, **fields) -> ServiceState:
    return ServiceState(ServiceKey("ml", name), Leadtime(), None, row, **fields)


def gauges(text: str) -> dict[str, dict[tuple[str, str], float]]:
    """`/metrics` text: per family, (namespace, service) -> value."""
    out: dict[str, dict[tuple[str, str], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.labels.get("namespace", ""), sample.labels.get("service", ""))
            out.setdefault(sample.name, {})[key] = sample.value
    return out


def test_metrics_show_each_services_objective_and_attainment():
    states = [
        state("measured", 0, attainment=Attainment(800, 1000, SOURCE), slo_target=0.95),
        state("idle", 1, attainment=Attainment(0, 0, SOURCE), slo_ttft_s=0.5),
        state("unknown", 2),  # the defaults: no attainment, the default objective
    ]
    telemetry = Telemetry()
    telemetry.watch(SimpleNamespace(states={s.key: s for s in states}))
    found = gauges(telemetry.exposition().decode())
    assert found["leadtime_slo_attainment_ratio"] == {("ml", "measured"): 0.8}  # n/a: absent
    assert found["leadtime_slo_target_ratio"] == {
        ("ml", "measured"): 0.95,
        ("ml", "idle"): SLO_TARGET_DEFAULT,
        ("ml", "unknown"): SLO_TARGET_DEFAULT,
    }
    assert found["leadtime_slo_ttft_seconds"] == {
        ("ml", "measured"): SLO_TTFT_DEFAULT_S,
        ("ml", "idle"): 0.5,
        ("ml", "unknown"): SLO_TTFT_DEFAULT_S,
    }
    # read at scrape time: a new figure shows at the next scrape, nothing else to set
    states[2].attainment = Attainment(99, 100, SOURCE)
    again = gauges(telemetry.exposition().decode())["leadtime_slo_attainment_ratio"]
    assert again == {("ml", "measured"): 0.8, ("ml", "unknown"): 0.99}


async def test_the_api_shows_attainment_against_the_target_with_its_source(aiohttp_client):
    app, loop, clock = build()
    await ticked(loop, clock, seconds=20)
    chat, code = loop.states[CHAT], loop.states[CODE]
    chat.attainment = Attainment(995, 1000, SOURCE)
    chat.slo_target, chat.slo_ttft_s = 0.99, 1.5
    code.attainment = None
    client = await aiohttp_client(app)
    listing = await (await client.get("/api/v1/services")).json()
    by_name = {s["name"]: s["slo"] for s in listing["services"]}
    assert by_name["chat"] == {
        "ttft_s": 1.5,
        "target": 0.99,
        "attainment": 0.995,
        "met": 995,
        "total": 1000,
        "source": SOURCE,
        "meets_target": True,
    }
    assert by_name["code"] == {
        "ttft_s": SLO_TTFT_DEFAULT_S,
        "target": SLO_TARGET_DEFAULT,
        "attainment": None,
        "met": None,
        "total": None,
        "source": None,
        "meets_target": None,
    }
    code.attainment = Attainment(0, 0, "revision_request_latencies le=2000ms (SLO 2s)")
    chat.attainment = Attainment(900, 1000, SOURCE)
    detail = await (await client.get("/api/v1/services/default/chat")).json()
    assert detail["slo"]["attainment"] == 0.9 and detail["slo"]["meets_target"] is False
    idle = (await (await client.get("/api/v1/services/default/code")).json())["slo"]
    assert idle["attainment"] is None and idle["total"] == 0 and idle["source"].startswith("rev")
