"""What is generated from the settings' declarations — the chart's JSON Schema for `config`, the
README's table, `leadtime config schema` — matches the committed copies and the loader: the
schema never refuses a config the service would run, and refuses the values it names."""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import adapters.simulator.synthetic  # noqa: F401  (registers the workload names)
from adapters.knative.annotations import POLICY_ANNOTATIONS
from autoscaler.config import config_from_mapping
from autoscaler.config.reference import chart_values_schema, markdown_table, readme_with_table
from autoscaler.config.schema import sections, settings_of
from autoscaler.config.sections import Config
from autoscaler.errors import InputError
from leadtime import main

ROOT = Path(__file__).resolve().parents[2]
CHART_SCHEMA = ROOT / "charts" / "leadtime" / "values.schema.json"
README = ROOT / "README.md"
EXAMPLE = ROOT / "examples" / "leadtime.yaml"
REGENERATE = "out of date: run scripts/settings-reference"


def every_path() -> list[tuple[str, ...]]:
    paths: list[tuple[str, ...]] = [(key,) for key in settings_of(Config)]
    for name, section in sections().items():
        paths += [(name, key) for key in settings_of(section)]
    paths += [("services", "default/chat", path[1]) for path in paths if path[0] == "policy"]
    return paths


def nested(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    for key in reversed(path):
        value = {key: value}
    return value


@functools.cache
def chart_validator() -> jsonschema.Draft7Validator:
    """The chart's whole values schema, as Helm checks `--set config.…` against it."""
    return jsonschema.Draft7Validator(json.loads(CHART_SCHEMA.read_text(encoding="utf-8")))


def config_validator(capsys: pytest.CaptureFixture[str]) -> jsonschema.Draft7Validator:
    assert main(["config", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def test_the_charts_schema_for_config_is_the_generated_one():
    committed = json.loads(CHART_SCHEMA.read_text(encoding="utf-8"))
    assert chart_values_schema(committed) == committed, REGENERATE
    assert committed["properties"]["config"] == {"$ref": "#/definitions/Config"}


def test_the_readme_table_is_the_generated_one():
    readme = README.read_text(encoding="utf-8")
    assert readme_with_table(readme) == readme, REGENERATE


def test_the_table_lists_every_setting_and_every_annotation():
    table = markdown_table()
    for path in every_path():
        if path[0] != "services":
            assert f"| `{'.'.join(path)}` |" in table
    for annotation in POLICY_ANNOTATIONS:
        assert f"Annotation `{annotation}`." in table


def test_the_example_file_and_the_defaults_pass_the_schema(capsys):
    validator = config_validator(capsys)
    example = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    assert list(validator.iter_errors(example)) == []
    loaded = config_from_mapping(example)  # its services are examples, the rest the defaults
    assert dataclasses.replace(loaded, services=Config().services) == Config()


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"policy": {"slo_target": 1.5}}, ["policy", "slo_target"]),
        ({"policy": {"slo_ttft": "soon"}}, ["policy", "slo_ttft"]),
        ({"policy": {"min_scale": -1}}, ["policy", "min_scale"]),
        ({"http": {"port": 0}}, ["http", "port"]),
        ({"forecasting": {"model": "prophet"}}, ["forecasting", "model"]),
        ({"prometheus": {"url": "prometheus:9090"}}, ["prometheus", "url"]),
        ({"services": {"Default/chat": {}}}, ["services"]),
        ({"services": {"default/chat": {"paused": "yes"}}}, ["services", "default/chat", "paused"]),
        ({"polcy": {}}, []),
    ],
)
def test_the_schema_refuses_what_the_loader_refuses_at_the_same_key(capsys, data, where):
    validator = config_validator(capsys)
    errors = list(validator.iter_errors(data))
    assert errors and all(list(error.absolute_path) == where for error in errors)
    key = re.escape(" " + ".".join(where)) if where else ""
    with pytest.raises(InputError, match=rf"^config{key}: "):
        config_from_mapping(data)


VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 10**6),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["30s", "5m", "1h30m", "250ms", "0", "-1s", "1x", "", "a b", "auto"]),
    st.sampled_from(["concurrency", "rps", "llm-bursty", "http://p:9090", "leadtime", "ns-1"]),
    st.lists(st.sampled_from(["llm-bursty", "web-diurnal", "a.csv", "*", "x y"]), max_size=3),
    st.text(max_size=8),
)


@settings(max_examples=400, deadline=None)
@given(path=st.sampled_from(every_path()), value=VALUES)
def test_the_schema_never_refuses_a_value_the_service_would_run(path, value):
    validator = chart_validator()
    data = {"config": nested(path, value)}
    try:
        config_from_mapping(data["config"])
    except InputError:
        return  # refused by the service: the schema may refuse it too, or leave it to the service
    assert [e.message for e in validator.iter_errors(data)] == [], data
