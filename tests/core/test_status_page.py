"""The status page in headless Chromium: against the real service, and against canned answers.

`running_service` (tests/conftest.py) yields the base URL of the real Leadtime service running the
embedded simulator with at least two services after several ticks. The canned-API tests serve the
packaged static files from a stdlib HTTP server, to reach the states the simulator does not show
on demand (API down, no forecast yet, hostile strings).
"""

from __future__ import annotations

import json
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from autoscaler.http.app import _summary
from autoscaler.policies.leadtime import Leadtime
from autoscaler.ports import ServiceKey
from autoscaler.service_state import ServiceState
from autoscaler.slo import Attainment
from tests.helpers.browser import Rendered, render

pytestmark = pytest.mark.browser

STATIC = Path(__file__).resolve().parents[2] / "autoscaler" / "http" / "static"


# ---- a minimal DOM from the dumped HTML -------------------------------------------------------

_VOID = {
    "area",
    "base",
    "br",
    "col",
    "embed",
    "hr",
    "img",
    "input",
    "link",
    "meta",
    "source",
    "track",
    "wbr",
}


class Node:
    def __init__(self, tag: str, attrs: dict[str, str], parent: Node | None) -> None:
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node | str] = []

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def iter(self) -> Iterator[Node]:
        for c in self.children:
            if isinstance(c, Node):
                yield c
                yield from c.iter()

    def find_all(self, tag: str | None = None, cls: str | None = None) -> list[Node]:
        return [
            n
            for n in self.iter()
            if (tag is None or n.tag == tag) and (cls is None or cls in n.classes)
        ]

    def by_id(self, id_: str) -> Node:
        found = [n for n in self.iter() if n.attrs.get("id") == id_]
        assert len(found) == 1, f"expected one #{id_}, found {len(found)}"
        return found[0]


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = self.cur = Node("#document", {}, None)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs}, self.cur)
        self.cur.children.append(node)
        if tag not in _VOID:
            self.cur = node

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.cur.children.append(Node(tag, {k: v or "" for k, v in attrs}, self.cur))

    def handle_endtag(self, tag: str) -> None:
        n: Node | None = self.cur
        while n is not None and n.tag != tag:
            n = n.parent
        if n is not None and n.parent is not None:
            self.cur = n.parent

    def handle_data(self, data: str) -> None:
        self.cur.children.append(data)


def parse(dom: str) -> Node:
    b = _Builder()
    b.feed(dom)
    b.close()
    return b.root


# ---- helpers ----------------------------------------------------------------------------------


def get_json(base: str, path: str) -> Any:
    with urllib.request.urlopen(urllib.parse.urljoin(base, path), timeout=10) as r:
        return json.load(r)


def detail_path(key: str) -> str:
    ns, name = key.split("/", 1)
    return f"api/v1/services/{urllib.parse.quote(ns, safe='')}/{urllib.parse.quote(name, safe='')}"


def service_rows(doc: Node) -> list[Node]:
    return doc.by_id("services").find_all("tr", "service")


def chart_paths(doc: Node) -> dict[str, str]:
    """The chart's paths by class: their `d` attributes."""
    svgs = doc.by_id("chart").find_all("svg")
    assert len(svgs) == 1, "the chart is one inline SVG"
    out: dict[str, str] = {}
    for p in svgs[0].find_all():
        if p.tag in ("path", "polygon"):
            for c in p.classes:
                out[c] = p.attrs.get("d") or p.attrs.get("points", "")
    return out


def decision_reasons(doc: Node) -> list[str]:
    rows = doc.by_id("decisions").find_all("tr", "decision")
    return [r.find_all("td", "reason")[0].text() for r in rows]


def assert_clean(page: Rendered) -> None:
    assert page.errors == [], f"console errors: {page.errors}"
    # The page logs nothing when things go as expected, and Chromium logs every level alike.
    assert page.console == [], f"unexpected console output: {page.console}"


# ---- against the real service -----------------------------------------------------------------


def test_page_loads_without_console_errors(running_service: str) -> None:
    page = render(running_service)
    assert_clean(page)
    doc = parse(page.dom)
    assert "hidden" in doc.by_id("error").attrs, doc.by_id("error").text()
    assert doc.by_id("mode").text() in ("live", "dry-run")
    assert service_rows(doc), "no service rows"


@pytest.mark.parametrize(
    ("asset", "kind"),
    [("", "text/html"), ("static/app.js", "javascript"), ("static/style.css", "text/css")],
)
def test_assets_are_served(running_service: str, asset: str, kind: str) -> None:
    with urllib.request.urlopen(urllib.parse.urljoin(running_service, asset), timeout=10) as r:
        assert r.status == 200
        assert kind in r.headers.get("Content-Type", ""), r.headers.get("Content-Type")
        assert r.read(), f"{asset or '/'} is empty"


def test_services_table_lists_every_service(running_service: str) -> None:
    api = get_json(running_service, "api/v1/services")
    keys = [f"{s['namespace']}/{s['name']}" for s in api["services"]]
    assert len(keys) >= 2, "the fixture promises at least two services"
    page = render(running_service)
    assert_clean(page)
    doc = parse(page.dom)
    rows = service_rows(doc)
    assert [r.attrs["data-key"] for r in rows] == keys
    selected = [r.attrs["data-key"] for r in rows if "selected" in r.classes]
    assert selected == [keys[0]], "the first service is selected by default"


def test_chart_of_first_service(running_service: str) -> None:
    first = get_json(running_service, "api/v1/services")["services"][0]
    key = f"{first['namespace']}/{first['name']}"
    detail = get_json(running_service, detail_path(key))  # before the page: a forecast stays
    page = render(running_service)
    assert_clean(page)
    doc = parse(page.dom)
    assert doc.by_id("detail-title").text().startswith(key)
    paths = chart_paths(doc)
    if detail["series"]["time"]:
        assert paths.get("load", "").startswith("M"), paths.keys()
    if detail["replicas"]["time"]:
        assert paths.get("ready", "").startswith("M"), paths.keys()
        assert paths.get("desired", "").startswith("M"), paths.keys()
    if detail["forecast"] is not None:
        assert paths.get("forecast-band", "").startswith("M"), paths.keys()
        assert paths["forecast-band"].endswith("Z")
    else:
        assert "forecast-band" not in paths
        assert doc.by_id("forecast-note").text()


def test_decisions_match_the_api(running_service: str) -> None:
    first = get_json(running_service, "api/v1/services")["services"][0]
    path = detail_path(f"{first['namespace']}/{first['name']}")
    before = [d["reason"] for d in get_json(running_service, path)["decisions"]]
    page = render(running_service)
    after = [d["reason"] for d in get_json(running_service, path)["decisions"]]
    assert_clean(page)
    shown = decision_reasons(parse(page.dom))
    if before or after:
        assert 0 < len(shown) <= 50
    assert set(shown) <= set(before) | set(after), (shown, before, after)
    if before == after:  # nothing moved meanwhile: the very same list
        assert shown == after


def test_link_selects_a_service(running_service: str) -> None:
    services = get_json(running_service, "api/v1/services")["services"]
    key = f"{services[1]['namespace']}/{services[1]['name']}"
    page = render(running_service + "#" + urllib.parse.quote(key, safe=""))
    assert_clean(page)
    doc = parse(page.dom)
    assert [r.attrs["data-key"] for r in service_rows(doc) if "selected" in r.classes] == [key]
    assert doc.by_id("detail-title").text().startswith(key)


# ---- against canned answers -------------------------------------------------------------------

NOW = 5000.0
HOSTILE = '<img src=x onerror="alert(1)">&amp;'


def _service(ns: str, name: str, **over: Any) -> dict[str, Any]:
    base = {
        "namespace": ns,
        "name": name,
        "paused": False,
        "status": "ok",
        "ready": 2,
        "pending": 0,
        "desired": 3,
        "last_decision": {"time": NOW - 2, "desired": 3, "reason": "predictive", "detail": ""},
    }
    return base | over


def _detail(svc: dict[str, Any], forecast: dict[str, Any] | None) -> dict[str, Any]:
    times = [NOW - 120 + i for i in range(121)]
    return {
        "now": NOW,
        **svc,
        "series": {
            "time": times,
            "arrivals": [5.0 + (i % 7) for i in range(121)],
            "concurrency": [1.0] * 121,
        },
        "replicas": {"time": times[::2], "ready": [2] * 61, "desired": [3] * 61},
        "decisions": [
            {"time": NOW - 2, "desired": 3, "reason": "predictive", "detail": HOSTILE},
            {"time": NOW - 30, "desired": 2, "reason": "fallback:no history", "detail": ""},
        ],
        "forecast": forecast,
        "forecast_note": "" if forecast else "not enough history",
        "lead_time_s": 62.0,
    }


def _canned() -> dict[str, tuple[int, Any]]:
    a = _service("default", "llm")
    b = _service("team b", HOSTILE, status="no data: prometheus down", paused=True)
    fc = {
        "start": NOW,
        "step_s": 10.0,
        "quantiles": {"0.1": [1.0] * 12, "0.5": [4.0] * 12, "0.9": [9.0] * 12},
    }
    return {
        "/api/v1/services": (200, {"now": NOW, "mode": "dry-run", "services": [a, b]}),
        "/" + detail_path("default/llm"): (200, _detail(a, fc)),
        "/" + detail_path(f"team b/{HOSTILE}"): (200, _detail(b, None)),
    }


@pytest.fixture
def canned_api() -> Iterator[Callable[[dict[str, tuple[int, Any]]], str]]:
    """Serves the static files and the given {path: (status, json)}; returns its base URL."""
    servers: list[ThreadingHTTPServer] = []

    def start(routes: dict[str, tuple[int, Any]]) -> str:
        # Compared decoded: the page's encodeURIComponent leaves ( ) ! ' * as they are.
        def unquoted(path: str) -> str:
            return "/".join(urllib.parse.unquote(part) for part in path.split("/"))

        decoded = {unquoted(k): v for k, v in routes.items()}

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                if path in ("/", "/static/app.js", "/static/style.css"):
                    file = STATIC / ("index.html" if path == "/" else path.rsplit("/", 1)[1])
                    kind = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}[
                        file.suffix
                    ]
                    self._send(200, file.read_bytes(), f"{kind}; charset=utf-8")
                elif unquoted(path) in decoded:
                    status, body = decoded[unquoted(path)]
                    self._send(status, json.dumps(body).encode(), "application/json")
                else:
                    self._send(404, b'{"error": "not found"}', "application/json")

            def _send(self, status: int, body: bytes, kind: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


def test_canned_page_draws_forecast_and_escapes_strings(canned_api) -> None:
    page = render(canned_api(_canned()), budget_ms=3000)
    assert_clean(page)
    doc = parse(page.dom)
    rows = service_rows(doc)
    assert [r.attrs["data-key"] for r in rows] == ["default/llm", f"team b/{HOSTILE}"]
    assert not doc.find_all("img"), "an API string became markup"
    assert rows[1].find_all("button")[0].text() == f"team b/{HOSTILE}"
    assert {"load", "forecast-band", "forecast-median", "ready", "desired"} <= set(chart_paths(doc))
    assert decision_reasons(doc) == ["predictive", "fallback:no history"]
    assert doc.by_id("decisions").find_all("td", "detail")[0].text() == HOSTILE


def test_canned_page_without_forecast_shows_the_note(canned_api) -> None:
    key = f"team b/{HOSTILE}"
    page = render(canned_api(_canned()) + "#" + urllib.parse.quote(key, safe=""), budget_ms=3000)
    assert_clean(page)
    doc = parse(page.dom)
    paths = chart_paths(doc)
    assert "forecast-band" not in paths and paths["load"].startswith("M")
    assert "not enough history" in doc.by_id("forecast-note").text()
    assert doc.by_id("detail-title").text() == f"{key} (paused)"


def test_canned_api_down_shows_an_error(canned_api) -> None:
    page = render(canned_api({"/api/v1/services": (503, {"error": "down"})}), budget_ms=3000)
    # Chromium itself logs nothing for a failed fetch with an HTTP status; the page stays quiet.
    assert_clean(page)
    error = parse(page.dom).by_id("error")
    assert "hidden" not in error.attrs
    assert "503" in error.text()


def _state(name: str, row: int, **fields: Any) -> ServiceState:
    return ServiceState(ServiceKey("default", name), Leadtime(), None, row, **fields)


def test_canned_page_shows_slo_attainment_against_the_target(canned_api) -> None:
    source = "vllm:time_to_first_token_seconds le=1 (SLO 2s)"
    states = [
        _state("llm", 0, attainment=Attainment(800, 1000, source)),
        _state("fast", 1, attainment=Attainment(999, 1000, HOSTILE), slo_ttft_s=0.5),
        _state("idle", 2),
    ]
    listed = [json.loads(json.dumps(_summary(s))) for s in states]  # the API's own shape
    routes = {"/api/v1/services": (200, {"now": NOW, "mode": "live", "services": listed})}
    for svc in listed:
        routes["/" + detail_path(f"default/{svc['name']}")] = (200, _detail(svc, None))
    base = canned_api(routes)
    doc = parse(_clean_render(base))
    headers = [th.text() for th in doc.by_id("services").parent.find_all("th")]  # type: ignore[union-attr]
    assert headers[5] == "SLO met" and len(headers) == len(service_rows(doc)[0].find_all("td"))
    assert "SLO met" not in doc.by_id("decisions").parent.text()  # type: ignore[union-attr]
    cells = {r.attrs["data-key"]: r.find_all("td", "slo")[0] for r in service_rows(doc)}
    assert cells["default/llm"].text() == "80 % (target 99 %)"
    assert "warn" in cells["default/llm"].classes
    assert cells["default/llm"].attrs["title"] == f"TTFT ≤ 2 s; {source}"
    assert cells["default/fast"].text() == "99.9 % (target 99 %)"
    assert "ok" in cells["default/fast"].classes
    assert cells["default/fast"].attrs["title"] == f"TTFT ≤ 0.5 s; {HOSTILE}"
    assert cells["default/idle"].text() == "n/a (target 99 %)"
    assert not ({"ok", "warn"} & cells["default/idle"].classes)
    assert doc.by_id("slo").text() == (
        f"SLO: TTFT ≤ 2 s for 99 % of requests — attained 80 % (800 of 1,000 requests), "
        f"from {source}"
    )
    fast = parse(_clean_render(base + "#" + urllib.parse.quote("default/fast", safe="")))
    assert not fast.find_all("img"), "a source string became markup"
    assert (
        fast.by_id("slo")
        .text()
        .endswith(f"attained 99.9 % (999 of 1,000 requests), from {HOSTILE}")
    )
    idle = parse(_clean_render(base + "#" + urllib.parse.quote("default/idle", safe="")))
    assert idle.by_id("slo").text() == "SLO: TTFT ≤ 2 s for 99 % of requests — attained n/a"


def _clean_render(url: str) -> str:
    page = render(url, budget_ms=3000)
    assert_clean(page)
    return page.dom
