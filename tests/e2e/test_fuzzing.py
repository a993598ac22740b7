"""Fuzzing every parser of outside input: nothing escapes but the project's own clear errors.

Why: a trace file, a config file, a PodAutoscaler's annotations, a Prometheus answer and an
HTTP request all come from outside, and an autoscaler that dies on a malformed one takes the
fleet's scaling down with it (docs/architecture.md §6). Each property feeds random and adversarial
input (junk bytes, near-miss formats, wrong types, huge and non-finite numbers, deep nesting)
through the real entry point and asserts the outcome is either a valid result or the module's own
error (`InputError`, `PrometheusError`, an HTTP 4xx with a JSON message) that names where the
problem is and what is allowed.
"""

from __future__ import annotations

import asyncio
import bz2
import gzip
import io
import json
import math
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from yarl import URL

from adapters.knative.annotations import (
    POLICY_ANNOTATIONS,
    QUERY_ANNOTATIONS,
    UTILIZATION,
    QueryFence,
    revision_settings,
)
from adapters.knative.names import AUTOSCALING, LEADTIME
from adapters.prometheus.client import PrometheusClient, PrometheusError, Sample, Series
from adapters.prometheus.source import PrometheusSource
from adapters.simulator.traces import load_trace
from adapters.simulator.workload import Workload
from autoscaler.config import Config, PolicyConfig, config_from_mapping, config_to_mapping
from autoscaler.errors import InputError
from autoscaler.ports import MetricsChunk, NoData, ServiceKey
from tests.helpers.exporters import TEST_SIGNALS
from tests.helpers.http import TOKEN, build

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ALLOWED_WORDS = re.compile(
    r"expected|must|allowed|accepted|not a|not valid|missing|unknown|"
    r"at most|outside|need|duplicate|empty|corrupt|is negative|not on|"
    r"no data|cannot|exclusive|too |over |does not exist|is a directory"
)
"""A rejection says what is allowed or what is wrong with the value, in one of these words."""

# --- shared junk -----------------------------------------------------------------------------

NUMBER_TEXT = st.sampled_from(
    [
        "0",
        "1",
        "-1",
        "1.5",
        "1e3",
        "1e400",
        "-1e400",
        "nan",
        "NaN",
        "inf",
        "-inf",
        "+Inf",
        "9223372036854775807",
        "9223372036854775808",
        "99999999999999999999999",
        "0x10",
        "1_000",
        "5000000000",
        "1e12",
        "1e308",
        "-1e308",
        "1e-300",
        "",
        " ",
        "abc",
        "٣",
        "1,5",
        "true",
        "null",
    ]
)
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.sampled_from([10**400, -(10**30), 2**63, 2**63 - 1]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=10),
    NUMBER_TEXT,
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=15,
)


def nested(depth: int) -> str:
    """JSON nested deeper than Python's recursion limit allows json.loads to go."""
    return "[" * depth + "]" * depth


def one_line(message: str) -> bool:
    return "\n" not in message and bool(message.strip())


# --- 1. trace files --------------------------------------------------------------------------

ISO_TIMES = st.one_of(
    st.datetimes().map(lambda t: t.isoformat(sep=" ")),
    st.sampled_from(
        [
            "2023-11-16 18:17:05.5000000",
            "0001-01-01",
            "9999-12-31T23:59:59",
            "1677-09-21",
            "2262-04-12",
            "1970-01-01T00:00:00Z",
            "2024-01-01T00:00:00+14:00",
            "2024-02-30",
            "1",
            "yesterday",
        ]
    ),
)
SMALL = st.integers(0, 30).map(str)
HUGE_COUNTS = st.sampled_from(
    [
        "5000000000",
        "4611686018427387904",
        "9223372036854775806",
        "9223372036854775807",
        "18446744073709551616",
    ]
)
EPOCHS = st.one_of(
    st.integers(0, 200).map(str),
    st.integers(1_600_000_000, 1_700_000_000).map(str),
    st.sampled_from(["1e12", "1e308", "-1e308", "1e-300", "0.5", "nan", "inf"]),
)
CELLS = st.one_of(
    NUMBER_TEXT,
    ISO_TIMES,
    SMALL,
    HUGE_COUNTS,
    st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=8),
)


@st.composite
def csv_texts(draw: st.DrawFn) -> str:
    """CSV that looks like an Azure trace or a counts file: a plausible header, junk cells."""
    header = draw(
        st.sampled_from(
            [
                ["TIMESTAMP", "ContextTokens", "GeneratedTokens"],
                ["time", "count"],
                ["timestamp", "requests"],
                ["date", "value", "extra"],
                ["a", "b"],
                ["ContextTokens", "x"],
            ]
        )
    )
    if draw(st.booleans()):
        header = header + draw(st.lists(st.text(max_size=4), max_size=2))
    width = len(header) + draw(st.sampled_from([0, 0, 0, -1, 1]))
    rows = draw(
        st.lists(st.lists(CELLS, min_size=max(0, width), max_size=max(0, width)), max_size=8)
    )
    quote_char = draw(st.sampled_from(["", "", '"']))
    lines = [",".join(header)] + [",".join(quote_char + c + quote_char for c in r) for r in rows]
    return "\n".join(lines) + draw(st.sampled_from(["", "\n", "\n\n  \n"]))


@st.composite
def counts_csv_texts(draw: st.DrawFn) -> str:
    """A well-formed counts CSV whose times or counts are at the edges: far apart on a fine
    grid, beyond float range, years outside what nanoseconds hold, counts near 2^63."""
    times = draw(st.lists(EPOCHS | ISO_TIMES, min_size=2, max_size=5, unique=True))
    counts = draw(st.lists(SMALL | SMALL | HUGE_COUNTS, min_size=len(times), max_size=len(times)))
    name = draw(st.sampled_from(["time,count", "timestamp,requests", "interval,hits"]))
    return "\n".join([name, *(f"{t},{c}" for t, c in zip(times, counts, strict=True))])


@st.composite
def azure_texts(draw: st.DrawFn) -> str:
    """A well-formed Azure trace over any years and token counts."""
    rows = draw(st.lists(st.tuples(ISO_TIMES, SMALL | HUGE_COUNTS, SMALL), min_size=1, max_size=5))
    lines = ["TIMESTAMP,ContextTokens,GeneratedTokens", *(",".join(row) for row in rows)]
    return "\n".join(lines)


@st.composite
def jsonl_texts(draw: st.DrawFn) -> str:
    """Mooncake-like JSON Lines: the three keys with values of any JSON type, or junk lines."""
    record = st.fixed_dictionaries(
        {},
        optional={
            "timestamp": JSON_VALUES,
            "input_length": JSON_VALUES,
            "output_length": JSON_VALUES,
            "hash_ids": JSON_VALUES,
        },
    ).map(json.dumps)
    plausible = st.builds(
        lambda t, i, o: json.dumps({"timestamp": t, "input_length": i, "output_length": o}),
        st.one_of(st.integers(0, 10**7), st.sampled_from([1e308, -1e308, 10**20, 5e-324])),
        st.one_of(st.integers(0, 9000), st.sampled_from([2**63 - 1, 2**63, 2**64, 10**30])),
        st.integers(0, 9000),
    )
    junk = st.sampled_from(
        ["{", "{}", "[1]", '{"timestamp": NaN}', '{"a": ' + nested(5000), "{" + "x" * 9]
    )
    lines = draw(st.lists(st.one_of(record, plausible, plausible, junk), min_size=1, max_size=6))
    return "\n".join(lines)


@st.composite
def whitespace_texts(draw: st.DrawFn) -> str:
    """Per-second counts: mostly small integers, with huge, negative and non-integer tokens."""
    token = st.one_of(
        SMALL, SMALL, SMALL, HUGE_COUNTS, st.integers(-5, 2**64).map(str), NUMBER_TEXT
    )
    lines = draw(st.lists(st.lists(token, min_size=1, max_size=6), min_size=1, max_size=5))
    return "\n".join(" ".join(line) for line in lines)


TRACE_TEXTS = st.one_of(
    csv_texts(),
    counts_csv_texts(),
    azure_texts(),
    jsonl_texts(),
    whitespace_texts(),
    st.text(max_size=60),
    st.just(""),
)


def wrapped(data: bytes, how: str) -> bytes:
    """The bytes as a user might ship them: compressed, archived, or cut short."""
    if how == "gz":
        return gzip.compress(data)
    if how == "bz2":
        return bz2.compress(data)
    if how == "truncated-gz":
        return gzip.compress(data)[: max(2, len(data) // 2)]
    if how in ("tar", "tar-two"):
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            for name in ("trace.csv", "other.csv")[: 1 + (how == "tar-two")]:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
        return buffer.getvalue()
    return data


def check_trace(path: Any) -> Workload | None:
    """Load a fuzzed trace: a sane Workload, or an InputError naming the file."""
    try:
        workload = load_trace(path)
    except InputError as error:
        message = str(error)
        assert message.startswith(str(path)), message
        assert one_line(message) and ALLOWED_WORDS.search(message), message
        return None
    times = workload.times
    assert math.isfinite(workload.duration) and workload.duration > 0, workload.duration
    assert np.isfinite(times).all() and (np.diff(times) >= 0).all()
    for tokens in (workload.prompt_tokens, workload.output_tokens):
        assert tokens is None or (tokens.shape == times.shape and (tokens >= 0).all())
    return workload


FOUND_TRACES = [
    "1 5000000000",
    "time,count\n0,1\n1,1\n1e12,1",
    "time,count\n1e308,1\n-1e308,1",
    "time,count\n0,0\n1e308,0",
    "TIMESTAMP,ContextTokens,GeneratedTokens\n0001-01-01,1,1\n2000-01-01,1,1",
    "TIMESTAMP,ContextTokens,GeneratedTokens\n1903-01-01 00:00:00,0,0\n2196-01-01 00:00:00,0,0",
    '{"timestamp": 1, "input_length": 100000000000000000000000, "output_length": 1}',
    '{"timestamp": 1e308, "input_length": 1, "output_length": 1}\n'
    '{"timestamp": -1e308, "input_length": 1, "output_length": 1}',
    '{"a": ' + nested(5000),
    ",",
]
"""Inputs that crashed a parser or were silently misread before the fixes fuzzing led to."""


@FUZZ
@given(
    text=TRACE_TEXTS,
    how=st.sampled_from(["plain", "plain", "gz", "bz2", "truncated-gz", "tar", "tar-two"]),
)
def test_trace_texts_load_or_are_refused_with_the_file_and_line(tmp_path_factory, text, how):
    """Format-shaped junk, plain or wrapped: a sane Workload or an InputError naming the file."""
    path = tmp_path_factory.mktemp("trace") / "fuzzed.trace"
    path.write_bytes(wrapped(text.encode("utf-8"), how))
    check_trace(path)


@FUZZ
@given(
    data=st.binary(max_size=300)
    | st.sampled_from([b"\x1f\x8b", b"BZh9", b"\xef\xbb\xbf", b"\xff\xfe1 2 3", b"1 2\x003", b","])
)
def test_trace_bytes_load_or_are_refused_with_the_file(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("trace") / "fuzzed.bin"
    path.write_bytes(data)
    check_trace(path)


@FUZZ
@given(moments=st.lists(st.datetimes(), min_size=1, max_size=5))
def test_azure_times_are_read_exactly_or_refused(tmp_path_factory, moments):
    """Any years at all: the arrival times are the true differences, or the line is named —
    never a time silently wrapped around (numpy's nanoseconds hold 1678-2262 only)."""
    path = tmp_path_factory.mktemp("azure") / "azure.csv"
    rows = [f"{moment.isoformat(sep=' ')},1,1" for moment in moments]
    path.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n" + "\n".join(rows))
    workload = check_trace(path)
    if workload is not None:
        first = min(moments)
        expected = sorted((moment - first).total_seconds() for moment in moments)
        assert np.allclose(workload.times, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("text", FOUND_TRACES)
def test_traces_that_broke_a_parser_are_refused_clearly(tmp_path, text):
    path = tmp_path / "found.trace"
    path.write_text(text)
    with pytest.raises(InputError):
        load_trace(path)
    assert check_trace(path) is None  # and the message names the file and the problem


# --- 2. the config loader --------------------------------------------------------------------

SECTIONS = config_to_mapping(Config(), reveal_secrets=True)
"""Every section and key under its YAML name, at its default."""
BAD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(),
    st.text(max_size=12),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.sampled_from(
        [
            "-1s",
            "1x",
            "5 m",
            "1e400s",
            "nans",
            "infs",
            "0s",
            "1h1m",
            "3601s",
            "s",
            "1e-9s",
            "99999999999h",
            "2",
            "http://",
            "a b",
        ]
    ),
)


@FUZZ
@given(
    section=st.sampled_from(sorted(k for k, v in SECTIONS.items() if isinstance(v, dict))),
    data=st.data(),
    value=BAD_VALUES,
)
def test_one_bad_value_is_refused_naming_its_key_and_what_is_allowed(section, data, value):
    """One key of one section set to junk: accepted, or refused by a message that starts with
    the source and the key's path and says what the key allows."""
    keys = sorted(SECTIONS[section]) if section != "services" else ["default/chat"]
    key = data.draw(st.sampled_from(keys), label="key")
    if section == "services":
        value = {data.draw(st.sampled_from(sorted(SECTIONS["policy"])), label="policy key"): value}
    try:
        config_from_mapping({section: {key: value}}, source="fuzz")
    except InputError as error:
        message = str(error)
        assert message.startswith(f"fuzz {section}"), message
        named = SECTIONS["policy"] if section == "services" else SECTIONS[section]
        assert any(name in message for name in named), message
        assert one_line(message) and ALLOWED_WORDS.search(message), message


@FUZZ
@given(
    section=st.sampled_from(sorted(SECTIONS)) | st.text(max_size=8),
    key=st.text(max_size=10),
    value=BAD_VALUES,
)
def test_unknown_keys_are_refused_naming_the_allowed_ones(section, key, value):
    """An unknown section, or an unknown key in a known one, is refused with the list of
    what is allowed there (`services` keys are service names, checked separately)."""
    known = SECTIONS.get(section)
    if known is None:
        top = {section: value}
    elif isinstance(known, dict) and section != "services" and key not in known:
        top = {section: {key: value}}
    else:
        return
    with pytest.raises(InputError) as caught:
        config_from_mapping(top, source="fuzz")
    message = str(caught.value)
    assert message.startswith("fuzz"), message
    assert "unknown key" in message and "allowed:" in message, message
    assert one_line(message)


# --- 3. Knative annotations ------------------------------------------------------------------

KEY_TEXT = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCZ0123456789-_./", max_size=12)
"""What the API server lets through as an annotation key (a qualified name: no spaces)."""
ANNOTATION_KEYS = st.one_of(
    st.sampled_from(sorted(POLICY_ANNOTATIONS) + [UTILIZATION] + sorted(QUERY_ANNOTATIONS)),
    KEY_TEXT.map(lambda rest: LEADTIME + rest),
    KEY_TEXT.map(lambda rest: AUTOSCALING + rest),
    KEY_TEXT,
)
ANNOTATION_VALUES = st.one_of(
    NUMBER_TEXT,
    st.text(max_size=12),
    st.sampled_from(
        [
            "30s",
            "5m",
            "-1s",
            "1h",
            "0",
            "100",
            "0.5",
            "rps",
            "concurrency",
            "true",
            "yes",
            "{a: 1}",
            "[1, 2]",
            "!!binary AAAA",
            "&a 1",
            "*a",
            "sum(rate(x[1m]))",
            "'quoted'",
            "~",
            "1e400",
            "9" * 5000,  # past Python's integer-string limit
            "[" * 300 + "]" * 300,
            "x" * 5000,
            "\u202e\u0000\ud7ff\U0001f600",
        ]
    ),
)


@FUZZ
@given(
    annotations=st.dictionaries(ANNOTATION_KEYS, ANNOTATION_VALUES, max_size=8),
    container_concurrency=st.integers(-5, 5000) | st.sampled_from([0, 8, 1000, 1001]),
)
def test_annotations_give_a_valid_policy_and_name_every_refused_one(
    annotations, container_concurrency
):
    """Whatever the annotations: a policy that builds, and each problem keyed and prefixed by
    the annotation (or spec field) it is about, saying what is allowed."""
    fence = QueryFence(("*",))  # every query goes through the PromQL fence
    settings_ = revision_settings(
        annotations, container_concurrency, PolicyConfig(), namespace="ns", fence=fence
    )
    settings_.policy.leadtime_config()  # always a valid combination
    for label, message in settings_.problems.items():
        assert label in annotations or label == "spec.containerConcurrency", label
        assert message.startswith(label), (label, message)
        assert one_line(message) and ALLOWED_WORDS.search(message), message
    for name, query in settings_.queries.items():
        assert name in QUERY_ANNOTATIONS.values() and query.strip() == query and query


# --- 4. Prometheus answers -------------------------------------------------------------------

VALUE_TEXT = st.one_of(NUMBER_TEXT, st.floats().map(str), JSON_SCALARS)
TIMES = st.one_of(
    st.floats(allow_nan=False),
    st.integers(-(10**20), 10**400),
    st.sampled_from(["1700000000.5", "x", None, 10**400]),
)
LABELS = st.one_of(
    st.fixed_dictionaries(
        {
            "namespace": st.sampled_from(["default", "", "x"]),
            "service": st.sampled_from(["chat", "code", ""]),
        }
    ),
    st.fixed_dictionaries({"namespace": JSON_SCALARS, "service": JSON_SCALARS}),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
    JSON_VALUES,
)


@st.composite
def prometheus_documents(draw: st.DrawFn) -> bytes:
    """What a broken or odd Prometheus might send: a well-formed answer with junk inside it,
    any JSON, deep nesting, or bytes."""
    sample = st.fixed_dictionaries(
        {}, optional={"metric": LABELS, "value": st.lists(VALUE_TEXT | TIMES, max_size=3)}
    )
    series = st.fixed_dictionaries(
        {},
        optional={
            "metric": LABELS,
            "values": st.lists(st.lists(VALUE_TEXT | TIMES, max_size=3), max_size=3),
        },
    )
    result = st.lists(sample | series | JSON_VALUES, max_size=4) | JSON_VALUES
    data = st.fixed_dictionaries(
        {},
        optional={
            "resultType": st.sampled_from(["vector", "matrix", "scalar", "x"]) | JSON_VALUES,
            "result": result,
        },
    )
    answer = st.fixed_dictionaries(
        {},
        optional={
            "status": st.sampled_from(["success", "error"]) | JSON_VALUES,
            "data": data | JSON_VALUES,
            "error": JSON_VALUES,
            "errorType": JSON_VALUES,
        },
    )
    point = st.lists(VALUE_TEXT | TIMES, min_size=2, max_size=2) | st.tuples(TIMES, VALUE_TEXT)
    strict = st.fixed_dictionaries(
        {
            "status": st.just("success"),
            "data": st.fixed_dictionaries(
                {
                    "resultType": st.sampled_from(["vector", "matrix"]),
                    "result": st.lists(
                        st.fixed_dictionaries({"metric": LABELS, "value": point})
                        | st.fixed_dictionaries(
                            {"metric": LABELS, "values": st.lists(point, max_size=3)}
                        ),
                        max_size=3,
                    ),
                }
            ),
        }
    )
    kind = draw(
        st.sampled_from(["strict", "strict", "answer", "answer", "json", "nested", "bytes"])
    )
    if kind == "strict":
        return json.dumps(draw(strict)).encode()
    if kind == "answer":
        return json.dumps(draw(answer)).encode()
    if kind == "json":
        return json.dumps(draw(JSON_VALUES)).encode()
    if kind == "nested":
        return nested(draw(st.integers(2000, 200_000))).encode()
    return draw(st.binary(max_size=100))


@dataclass
class Canned:
    """The answer a tiny HTTP server gives to every request, swapped per example."""

    status: int = 200
    body: bytes = b"{}"


class Runner:
    """One event loop for a whole hypothesis test, so a server started once serves every
    example (hypothesis' examples are synchronous)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)


@pytest.fixture
def runner() -> Iterator[Runner]:
    runner = Runner()
    yield runner
    runner.loop.close()


async def canned_server(canned: Canned) -> TestServer:
    async def answer(request: web.Request) -> web.Response:
        return web.Response(status=canned.status, body=canned.body, content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    server = TestServer(app)
    await server.start_server()
    return server


def check_samples(result: list[Any]) -> None:
    for item in result:
        assert isinstance(item, Sample | Series)
        assert isinstance(item.labels, dict)


async def ask_everything(source: PrometheusSource, client: PrometheusClient) -> None:
    """The client's two queries and the source's snapshot, each checked."""
    for call in (client.query("up", at=1.0), client.query_range("up", 0.0, 60.0, 1.0)):
        try:
            check_samples(await call)
        except PrometheusError as error:
            assert one_line(str(error)), str(error)
    snapshot = await source.snapshot(1_700_000_000.0)
    assert all(isinstance(part, str) for key in source.seen for part in key), source.seen
    for value in snapshot.values():
        if isinstance(value, NoData):
            assert one_line(value.reason)
        else:
            assert isinstance(value, MetricsChunk)
            for series in (value.concurrency, value.arrivals, value.queue):
                assert np.isfinite(series).all() and (series >= 0).all()


def test_prometheus_answers_parse_or_are_one_prometheus_error(runner):
    """Over real HTTP, against a server answering with fuzzed statuses and bodies: the client
    returns samples or raises PrometheusError; the source turns everything into NoData."""
    canned = Canned()
    server = runner.run(canned_server(canned))
    client = PrometheusClient(str(server.make_url("/")), timeout_s=5.0, retries=1, backoff_s=0)
    source = PrometheusSource(client, TEST_SIGNALS, rate_window_s=5.0, stale_after_s=1e12)
    source.seen.add(ServiceKey("default", "chat"))

    @FUZZ
    @given(
        status=st.sampled_from([200, 200, 200, 400, 404, 422, 429, 500, 503]),
        body=prometheus_documents(),
    )
    @example(status=200, body=b'{"status": "error", "errorType": "\\n"}')  # a two-line message
    def check(status: int, body: bytes) -> None:
        canned.status, canned.body = status, body
        runner.run(ask_everything(source, client))

    try:
        check()
    finally:
        runner.run(client.close())
        runner.run(server.close())


# --- 5. the HTTP API -------------------------------------------------------------------------

SEGMENTS = st.one_of(
    st.sampled_from(
        [
            "api",
            "v1",
            "v2",
            "services",
            "default",
            "chat",
            "code",
            "pause",
            "resume",
            "healthz",
            "readyz",
            "metrics",
            "static",
            "index.html",
            "..",
            ".",
            "",
            "%",
            "%00",
            "%2e%2e",
            "nope",
        ]
    ),
    st.text(max_size=10).map(lambda s: quote(s, safe="")),
)
HEADERS: st.SearchStrategy[dict[str, str]] = st.one_of(
    st.just({}),
    st.sampled_from(
        [
            f"Bearer {TOKEN}",
            "Bearer wrong",
            "Bearer",
            "Basic abc",
            "bearer " + TOKEN,
            "Bearer  " + TOKEN,
            "",
        ]
    ).map(lambda v: {"Authorization": v}),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=20).map(
        lambda v: {"Authorization": v}
    ),
)
BODIES = st.one_of(
    st.none(),
    st.binary(max_size=64),
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    st.sampled_from(
        [
            b'{"reason": "maintenance"}',
            b"{}",
            b'{"reason": 1, "x": 2}',
            b"  ",
            b"\xff\xfe",
            nested(20_000).encode()[:1000],
            nested(900).encode(),
            nested(20_000).encode(),
            b"x" * 70_000,
        ]
    ),
)


@st.composite
def http_requests(draw: st.DrawFn) -> tuple[str, str, dict[str, str], dict[str, str], Any]:
    known = st.sampled_from(
        [
            "/",
            "/healthz",
            "/readyz",
            "/metrics",
            "/api/v1/services",
            "/api/v1/services/default/chat",
            "/api/v1/services/default/chat/pause",
            "/api/v1/services/default/chat/resume",
            "/static/app.js",
            "/static/../app.py",
        ]
    )
    random_path = st.lists(SEGMENTS, max_size=6).map(lambda parts: "/" + "/".join(parts))
    if draw(st.integers(0, 3)) == 0:  # an authorised pause or resume: only the body is odd
        verb = draw(st.sampled_from(["pause", "resume"]))
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        return "POST", f"/api/v1/services/default/chat/{verb}", {}, bearer, draw(BODIES)
    path = draw(known | random_path)
    method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]))
    query = draw(st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3))
    return method, path, query, draw(HEADERS), draw(BODIES)


async def api_client() -> TestClient:
    app, loop, _clock = build(token=TOKEN, max_body=65536)  # the default limit
    await loop.tick()
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


async def send(client: TestClient, request: tuple[Any, ...]) -> tuple[int, str, bytes]:
    """Send the path as written (`..`, `//`, stray `%` included), not as a client tidies it."""
    method, path, query, headers, body = request
    url = URL(str(client.make_url("/")).rstrip("/") + path, encoded=True)
    async with client.session.request(
        method, url, params=query, headers=headers, data=body
    ) as response:
        return response.status, response.content_type, await response.read()


def test_http_api_answers_every_request_without_a_server_error(runner):
    """Random methods, paths, query strings, tokens and bodies: never a 5xx, and every error
    is JSON `{"error": {"status", "message"}}` with the response's own status."""
    client = runner.run(api_client())

    @FUZZ
    @given(request=http_requests())
    def check(request: tuple[Any, ...]) -> None:
        status, content_type, body = runner.run(send(client, request))
        assert status < 500, (request, status, body[:200])
        if status >= 400 and request[0] != "HEAD":
            assert content_type == "application/json", (request, status, content_type)
            error = json.loads(body)["error"]
            assert error["status"] == status and isinstance(error["message"], str)
            assert error["message"].strip(), body

    try:
        check()
    finally:
        runner.run(client.close())
