"""The service's configuration: defaults, the file, the environment, per-service overrides, and
one clear message naming the key path for every bad input."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.simulator.synthetic import WORKLOADS
from autoscaler.config import (
    Config,
    ForecastingConfig,
    HttpConfig,
    PolicyConfig,
    PrometheusConfig,
    SimulatorConfig,
    config_from_mapping,
    config_to_mapping,
    load_config,
    override_variables,
)
from autoscaler.errors import InputError, SettingError
from autoscaler.policies.kpa import KpaConfig
from autoscaler.policies.leadtime_config import LeadtimeConfig
from forecasting.registry import model_names
from leadtime import main

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "leadtime.yaml"

FULL = """\
mode: dry-run
tick: 500ms
http:
  host: 0.0.0.0
  port: 9090
  token: s3cret
  max_body_bytes: 1024
forecasting:
  model: ets
  step: 30s
  refit_every: 2h
  min_history: 5m
  workers: 4
policy:
  slo_target: 0.95
  horizon: 2m
  cold_start_prior: 90
  scale_down_delay: 5m
  hold_leads: 3
  metric: rps
  container_concurrency: 4
  target: 12.5
  target_utilization: 0.8
  min_scale: 1
  max_scale: 20
  stable_window: 2m
  initial_scale: 2
  paused: true
services:
  default/chat:
    slo_target: 0.99
    max_scale: 40
  team-a/embed-1:
simulator:
  speed: 100
  workloads: [web-diurnal]
  traces: [a.csv, b.jsonl]
  rate_scale: 0.5
  cold_start: 45s
  max_concurrency: 16
  gpu_pool: 32
  seed: 7
prometheus:
  url: https://prometheus.monitoring:9090
"""


def write(tmp_path: Path, text: str, name: str = "leadtime.yaml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def error_of(data: object, env: dict[str, str] | None = None) -> str:
    with pytest.raises(InputError) as caught:
        if env is None:
            config_from_mapping(data)  # type: ignore[arg-type]
        else:
            load_config(None, env={**env})
    message = str(caught.value)
    assert "\n" not in message
    return message


# --- defaults and valid files -------------------------------------------------------------------


def test_defaults_without_a_file_or_environment():
    config = load_config(None, env={})
    assert config == Config()
    assert config.mode == "live" and config.tick_s == 2.0
    assert config.http == HttpConfig("127.0.0.1", 8080, None, None, 65536)
    assert config.forecasting == ForecastingConfig("auto", 10.0, 6 * 3600.0, 60.0, 2)
    assert config.simulator.workloads == ("llm-bursty", "web-diurnal")
    assert config.simulator.traces == () and config.simulator.gpu_pool is None
    assert config.prometheus == PrometheusConfig(None)
    assert config.embedded
    assert dict(config.services) == {}
    assert config.policy_for("default", "chat") is config.policy


def test_default_policy_is_the_leadtime_policys_own_defaults():
    assert PolicyConfig().leadtime_config() == LeadtimeConfig()


def test_an_empty_file_and_empty_sections_are_the_defaults(tmp_path):
    assert load_config(write(tmp_path, "# nothing yet\n"), env={}) == Config()
    assert load_config(write(tmp_path, "http:\npolicy:\n"), env={}) == Config()


def test_a_full_file_sets_every_key(tmp_path):
    config = load_config(write(tmp_path, FULL), env={})
    assert config.mode == "dry-run" and config.tick_s == 0.5
    assert config.http == HttpConfig("0.0.0.0", 9090, "s3cret", None, 1024)
    assert config.forecasting == ForecastingConfig("ets", 30.0, 7200.0, 300.0, 4)
    policy = PolicyConfig(
        slo_target=0.95,
        horizon_s=120.0,
        cold_start_prior_s=90.0,
        scale_down_delay_s=300.0,
        hold_leads=3.0,
        metric="rps",
        container_concurrency=4,
        target=12.5,
        target_utilization=0.8,
        min_scale=1,
        max_scale=20,
        stable_window_s=120.0,
        initial_scale=2,
        paused=True,
    )
    assert config.policy == policy
    assert config.simulator == SimulatorConfig(
        100.0, ("web-diurnal",), ("a.csv", "b.jsonl"), 0.5, 45.0, 16, 32, 7
    )
    assert config.prometheus.url == "https://prometheus.monitoring:9090"
    assert not config.embedded
    assert set(config.services) == {"default/chat", "team-a/embed-1"}
    assert config.policy_for("team-a", "embed-1") == policy
    assert config.policy_for("other", "svc") is config.policy


def test_the_full_files_policy_becomes_the_leadtime_config(tmp_path):
    leadtime = load_config(write(tmp_path, FULL), env={}).policy.leadtime_config()
    assert leadtime.slo_target == 0.95 and leadtime.horizon_s == 120.0
    assert leadtime.cold_start_prior_s == 90.0 and leadtime.scale_down_delay_s == 300.0
    assert leadtime.hold_leads == 3.0
    assert leadtime.kpa == KpaConfig(
        metric="rps",
        container_concurrency=4,
        target=12.5,
        target_utilization=0.8,
        stable_window_s=120,
        min_scale=1,
        max_scale=20,
        initial_scale=2,
    )


def test_initial_scale_zero_is_knatives_allow_zero_initial_scale():
    config = config_from_mapping({"policy": {"initial_scale": 0}})
    assert config.policy.leadtime_config().kpa.allow_zero_initial_scale


def test_durations_accept_units_and_plain_numbers():
    for written, seconds in (("30s", 30.0), ("5m", 300.0), ("1h", 3600.0), (45, 45.0)):
        config = config_from_mapping({"policy": {"horizon": written}})
        assert config.policy.horizon_s == seconds


def test_the_example_file_is_valid_and_documents_every_key_at_its_default():
    config = load_config(str(EXAMPLE), env={})
    assert (config.mode, config.tick_s) == (Config().mode, Config().tick_s)
    assert config.http == HttpConfig()
    assert config.forecasting == ForecastingConfig()
    assert config.policy == PolicyConfig()
    assert config.simulator == SimulatorConfig()
    assert config.prometheus == PrometheusConfig()
    assert config.embedded and len(config.services) == 2
    raw = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    every = config_to_mapping(Config(), reveal_secrets=True)
    assert list(raw) == list(every)
    for section, keys in every.items():
        if isinstance(keys, dict) and section != "services":
            assert set(raw[section]) == set(keys), section


def test_shown_config_loads_back_to_the_same_config(tmp_path):
    config = load_config(write(tmp_path, FULL), env={})
    text = yaml.safe_dump(config_to_mapping(config, reveal_secrets=True), sort_keys=False)
    assert load_config(write(tmp_path, text, "shown.yaml"), env={}) == config
    assert "token" not in config_to_mapping(config)["http"]
    assert config_to_mapping(config)["services"] == {
        "default/chat": {"slo_target": 0.99, "max_scale": 40},
        "team-a/embed-1": {},
    }


def test_the_token_is_never_in_a_repr():
    config = config_from_mapping({"http": {"token": "s3cret"}})
    assert "s3cret" not in repr(config)


# --- environment overrides ----------------------------------------------------------------------


def test_environment_overrides_the_defaults_and_reads_yaml_scalars():
    env = {
        "LEADTIME_HTTP__PORT": "9090",
        "LEADTIME_POLICY__SLO_TARGET": "0.95",
        "LEADTIME_MODE": "dry-run",
        "LEADTIME_TICK": "1s",
        "LEADTIME_SIMULATOR__WORKLOADS": "llm-bursty, web-diurnal,llm-bursty",
        "LEADTIME_POLICY__PAUSED": "true",
        "LEADTIME_POLICY__TARGET": "null",
        "LEADTIME_FORECASTING__REFIT_EVERY": "30m",
    }
    config = load_config(None, env=env)
    assert config.http.port == 9090
    assert config.policy.slo_target == 0.95 and config.policy.paused
    assert config.policy.target is None
    assert config.mode == "dry-run" and config.tick_s == 1.0
    assert config.simulator.workloads == ("llm-bursty", "web-diurnal", "llm-bursty")
    assert config.forecasting.refit_every_s == 1800.0
    assert set(override_variables(env)) == set(env)


def test_environment_wins_over_the_file_and_keeps_the_rest_of_its_section(tmp_path):
    path = write(tmp_path, "http:\n  port: 8000\n  host: 0.0.0.0\ntick: 5s\n")
    config = load_config(path, env={"LEADTIME_HTTP__PORT": "9000"})
    assert config.http.port == 9000 and config.http.host == "0.0.0.0"
    assert config.tick_s == 5.0


def test_environment_key_names_are_case_insensitive():
    config = load_config(None, env={"LEADTIME_Http__Max_Body_Bytes": "100"})
    assert config.http.max_body_bytes == 100


def test_string_keys_from_the_environment_keep_their_text():
    env = {"LEADTIME_HTTP__TOKEN": "0123", "LEADTIME_HTTP__HOST": "true"}
    config = load_config(None, env=env)
    assert config.http.token == "0123" and config.http.host == "true"


def test_unrelated_and_kubernetes_service_link_variables_are_ignored():
    env = {
        "LEADTIME_CONFIG": "/etc/leadtime/config.yaml",
        "HOME": "/root",
        "LEADTIME_SERVICE_HOST": "10.0.0.1",
        "LEADTIME_SERVICE_PORT": "8080",
        "LEADTIME_SERVICE_PORT_HTTP": "8080",
        "LEADTIME_PORT": "tcp://10.0.0.1:8080",
        "LEADTIME_PORT_8080_TCP": "tcp://10.0.0.1:8080",
        "LEADTIME_PORT_8080_TCP_ADDR": "10.0.0.1",
        "LEADTIME_METRICS_SERVICE_HOST": "10.0.0.2",
        "LEADTIME_METRICS_PORT_9090_TCP_PROTO": "tcp",
    }
    assert load_config(None, env=env) == Config()
    assert override_variables(env) == ()


def test_a_service_link_lookalike_without_its_service_is_an_error():
    message = error_of(None, {"LEADTIME_HTTP_PORT": "9090"})
    assert "LEADTIME_HTTP_PORT" in message and "LEADTIME_<SECTION>__<KEY>" in message


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"LEADTIME_FOO": "1"}, ["unknown environment variable LEADTIME_FOO", "HTTP, FORECASTING"]),
        ({"LEADTIME_HTTP": "1"}, ["LEADTIME_HTTP", "LEADTIME_<SECTION>__<KEY>"]),
        ({"LEADTIME_HTTP__PORTT": "1"}, ["LEADTIME_HTTP__PORTT", "'portt'", "allowed: host, port"]),
        ({"LEADTIME_HTTP__PORT__X": "1"}, ["LEADTIME_HTTP__PORT__X"]),
        ({"LEADTIME_SERVICES__DEFAULT/CHAT": "1"}, ["LEADTIME_SERVICES__DEFAULT/CHAT", "file"]),
        ({"LEADTIME_HTTP__PORT": "x"}, ["LEADTIME_HTTP__PORT (http.port)", "1..65535", "'x'"]),
        ({"LEADTIME_TICK": "forever"}, ["LEADTIME_TICK (tick)", "[0.1s, 1m]"]),
        (
            {"LEADTIME_POLICY__SLO_TARGET": "[1"},
            ["LEADTIME_POLICY__SLO_TARGET (policy.slo_target)"],
        ),
        ({"LEADTIME_MODE": "on"}, ["LEADTIME_MODE (mode)", "'live', 'dry-run'", "'on'"]),
        (
            {"LEADTIME_SIMULATOR__WORKLOADS": "llm-bursty,nope"},
            ["LEADTIME_SIMULATOR__WORKLOADS (simulator.workloads)", "'nope'", "'llm-bursty'"],
        ),
        ({"LEADTIME_HTTP__PORT": "1", "LEADTIME_http__port": "2"}, ["both set http.port"]),
    ],
)
def test_bad_environment_variables_are_named(env, expected):
    message = error_of(None, env)
    for part in expected:
        assert part in message


# --- per-service overrides ----------------------------------------------------------------------


def test_service_overrides_apply_over_the_environment_overridden_defaults(tmp_path):
    text = """\
policy:
  slo_target: 0.8
  min_scale: 1
services:
  default/chat:
    slo_target: 0.99
    horizon: 5m
  prod/llama:
    max_scale: 3
"""
    env = {"LEADTIME_POLICY__MIN_SCALE": "2", "LEADTIME_POLICY__HORIZON": "2m"}
    config = load_config(write(tmp_path, text), env=env)
    assert config.policy == PolicyConfig(slo_target=0.8, min_scale=2, horizon_s=120.0)
    chat = config.policy_for("default", "chat")
    assert chat == PolicyConfig(slo_target=0.99, min_scale=2, horizon_s=300.0)
    llama = config.policy_for("prod", "llama")
    assert llama == PolicyConfig(slo_target=0.8, min_scale=2, horizon_s=120.0, max_scale=3)
    assert llama.leadtime_config().kpa.max_scale == 3
    assert config.policy_for("prod", "other") == config.policy


def test_a_service_override_conflicting_with_the_defaults_names_the_service():
    data = {"policy": {"min_scale": 4}, "services": {"default/chat": {"max_scale": 2}}}
    message = error_of(data)
    assert message.startswith("config services.default/chat.max_scale: ")
    assert "min_scale=4" in message


def test_services_cannot_be_changed_after_load():
    config = config_from_mapping({"services": {"a/b": {"slo_target": 0.6}}})
    with pytest.raises(TypeError):
        config.services["a/c"] = PolicyConfig()


# --- bad input: one message naming the key path and what is allowed -----------------------------

BAD = [
    ({"slo_target": 0.9}, ["config: unknown key 'slo_target'", "allowed: mode, tick, http"]),
    ({"http": {"prot": 1}}, ["config http: unknown key 'prot'", "did you mean 'port'?"]),
    ({"forecasting": {"steps": "1m"}}, ["config forecasting: unknown key 'steps'", "step"]),
    (
        {"policy": {"slo_targe": 0.9}},
        ["config policy: unknown key 'slo_targe'", "allowed: slo_ttft, slo_target"],
    ),
    ({"policy": {"horizon_s": 60}}, ["config policy: unknown key 'horizon_s'", "horizon"]),
    ({"simulator": {"sped": 1}}, ["config simulator: unknown key 'sped'", "speed"]),
    ({"prometheus": {"uri": "http://p"}}, ["config prometheus: unknown key 'uri'", "url"]),
    (
        {"services": {"default/chat": {"slo_targe": 0.9}}},
        ["config services.default/chat: unknown key 'slo_targe'", "allowed: slo_ttft, slo_target"],
    ),
    ({7: 1}, ["config: unknown key 7"]),
    ({"http": 5}, ["config http: expected a mapping, got 5"]),
    ({"services": ["a/b"]}, ["config services: expected a mapping of namespace/name"]),
    ({"http": {"port": "x"}}, ["config http.port: expected an integer in 1..65535, got 'x'"]),
    ({"http": {"port": 0}}, ["config http.port", "1..65535", "got 0"]),
    ({"http": {"port": 80.0}}, ["config http.port", "got 80.0"]),
    ({"http": {"port": True}}, ["config http.port", "got True"]),
    ({"http": {"host": ""}}, ["config http.host", "non-empty string"]),
    ({"http": {"token": 1234}}, ["config http.token", "string", "got 1234"]),
    ({"http": {"token": "a b"}}, ["config http.token", "without spaces"]),
    ({"http": {"max_body_bytes": 20_000_000}}, ["config http.max_body_bytes", "1..10485760"]),
    ({"mode": "live!"}, ["config mode: expected one of 'live', 'dry-run', got 'live!'"]),
    ({"tick": "5x"}, ["config tick", "[0.1s, 1m]", "30s, 5m, 1h", "got '5x'"]),
    ({"tick": 0.05}, ["config tick", "got 0.05"]),
    ({"tick": "2m"}, ["config tick", "got '2m'"]),
    ({"tick": None}, ["config tick", "got None"]),
    ({"tick": [1]}, ["config tick", "got [1]"]),
    ({"tick": 10**400}, ["config tick"]),
    ({"forecasting": {"model": "prophet"}}, ["config forecasting.model", "'auto'", "'prophet'"]),
    ({"forecasting": {"step": "-1s"}}, ["config forecasting.step", "[1s, 1h]"]),
    ({"forecasting": {"workers": 65}}, ["config forecasting.workers", "1..64"]),
    ({"policy": {"slo_target": 1.0}}, ["config policy.slo_target", "[0.5, 1)", "got 1.0"]),
    ({"policy": {"slo_target": 0.4}}, ["config policy.slo_target", "[0.5, 1)"]),
    ({"policy": {"slo_target": float("nan")}}, ["config policy.slo_target", "got nan"]),
    ({"policy": {"slo_target": "0.9"}}, ["config policy.slo_target", "a number", "got '0.9'"]),
    ({"policy": {"horizon": 0}}, ["config policy.horizon", "> 0s"]),
    ({"policy": {"horizon": "soon"}}, ["config policy.horizon", "got 'soon'"]),
    ({"policy": {"scale_down_delay": "-2m"}}, ["config policy.scale_down_delay", ">= 0s"]),
    ({"policy": {"hold_leads": -1}}, ["config policy.hold_leads", ">= 0"]),
    ({"policy": {"metric": "cpu"}}, ["config policy.metric", "'concurrency', 'rps'", "'cpu'"]),
    ({"policy": {"container_concurrency": -1}}, ["config policy.container_concurrency", "0..1000"]),
    ({"policy": {"target": 0}}, ["config policy.target", ">= 0.01", "null"]),
    ({"policy": {"target_utilization": 1.5}}, ["config policy.target_utilization", "[0.01, 1]"]),
    ({"policy": {"min_scale": -1}}, ["config policy.min_scale", ">= 0"]),
    ({"policy": {"max_scale": 2.5}}, ["config policy.max_scale", "0 = unbounded"]),
    (
        {"policy": {"min_scale": 3, "max_scale": 2}},
        ["config policy.max_scale: must be >= min_scale=3 (or 0 = unbounded), got 2"],
    ),
    ({"policy": {"stable_window": "2s"}}, ["config policy.stable_window", "[6s, 1h]"]),
    ({"policy": {"stable_window": 60.5}}, ["config policy.stable_window", "whole seconds"]),
    ({"policy": {"paused": "yes please"}}, ["config policy.paused", "true or false"]),
    ({"simulator": {"speed": 0}}, ["config simulator.speed", "(0, 10000]"]),
    ({"simulator": {"speed": 20000}}, ["config simulator.speed", "(0, 10000]"]),
    ({"simulator": {"workloads": ["llm"]}}, ["config simulator.workloads", "'llm-bursty'"]),
    ({"simulator": {"workloads": 3}}, ["config simulator.workloads", "list of built-in"]),
    ({"simulator": {"workloads": [], "traces": []}}, ["config simulator", "at least one"]),
    ({"simulator": {"traces": [""]}}, ["config simulator.traces", "trace file path"]),
    ({"simulator": {"max_concurrency": 0}}, ["config simulator.max_concurrency", ">= 1"]),
    ({"simulator": {"gpu_pool": 0}}, ["config simulator.gpu_pool", ">= 1", "null"]),
    ({"simulator": {"seed": -1}}, ["config simulator.seed", ">= 0"]),
    ({"simulator": {"cold_start": "0s"}}, ["config simulator.cold_start", "> 0s"]),
    ({"prometheus": {"url": "prometheus:9090"}}, ["config prometheus.url", "http(s) URL"]),
    ({"prometheus": {"url": "http://p:99999"}}, ["config prometheus.url", "got 'http://p:99999'"]),
    ({"prometheus": {"url": ""}}, ["config prometheus.url"]),
    (
        {"http": {"token": "a", "token_file": "/x"}},
        ["config http: token and token_file are exclusive"],
    ),
]


@pytest.mark.parametrize(("data", "expected"), BAD)
def test_bad_values_name_the_key_path_and_what_is_allowed(data, expected):
    message = error_of(data)
    for part in expected:
        assert part in message


@pytest.mark.parametrize(
    "key",
    [
        "default",
        "default/chat/v1",
        "Default/chat",
        "default/-chat",
        "a_b/c",
        "/chat",
        "a/" + "x" * 64,
    ],
)
def test_bad_service_keys_are_refused_with_the_rule(key):
    message = error_of({"services": {key: {"slo_target": 0.9}}})
    assert message.startswith("config services: expected keys namespace/name")
    assert "DNS-1123" in message and repr(key) in message


def test_a_source_name_starts_every_message():
    with pytest.raises(InputError, match=r"^annotations policy\.slo_target: "):
        config_from_mapping({"policy": {"slo_target": 2}}, source="annotations")


def test_a_policy_built_by_hand_is_refused_naming_its_attributes():
    with pytest.raises(SettingError, match=r"^max_scale: must be >= min_scale=2") as refused:
        PolicyConfig(min_scale=2, max_scale=1)
    assert refused.value.keys == ("max_scale",)
    with pytest.raises(SettingError, match=r"^stable_window_s: must be whole"):
        PolicyConfig(stable_window_s=math.inf)


# --- the token file -----------------------------------------------------------------------------


def test_the_token_file_is_read_and_stripped(tmp_path):
    token = tmp_path / "token"
    token.write_text("  s3cret-token\n", encoding="utf-8")
    config = load_config(None, env={"LEADTIME_HTTP__TOKEN_FILE": str(token)})
    assert config.http.token == "s3cret-token"
    assert config.http.token_file == str(token)
    assert "token" not in config_to_mapping(config, reveal_secrets=True)["http"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "does not exist"),
        ("", "is empty"),
        (" \n\n", "is empty"),
        ("two\nlines", "one token without spaces"),
        (b"\xff\xfe\xfa", "not readable UTF-8"),
    ],
)
def test_a_bad_token_file_names_the_key_and_the_file(tmp_path, content, expected):
    token = tmp_path / "token"
    if isinstance(content, bytes):
        token.write_bytes(content)
    elif content is not None:
        token.write_text(content, encoding="utf-8")
    message = error_of({"http": {"token_file": str(token)}})
    assert message.startswith("config http.token_file: token file ")
    assert str(token) in message and expected in message


def test_a_token_file_that_is_a_directory_is_refused(tmp_path):
    message = error_of({"http": {"token_file": str(tmp_path)}})
    assert "config http.token_file" in message and "is a directory" in message


# --- file problems ------------------------------------------------------------------------------


def test_a_missing_file_is_named(tmp_path):
    path = str(tmp_path / "nope.yaml")
    with pytest.raises(InputError, match=r"config file .*nope\.yaml' does not exist"):
        load_config(path, env={})


def test_a_directory_is_not_a_config_file(tmp_path):
    with pytest.raises(InputError, match="is a directory, not a file"):
        load_config(str(tmp_path), env={})


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("http:\n  port: 8080\n   host: x\n", 3, "mapping values are not allowed here"),
        ("mode: live\npolicy: [1, 2\n", 3, "invalid YAML"),
        ("policy:\n  slo_target: 0.8\npolicy:\n  horizon: 1m\n", 3, "duplicate key 'policy'"),
        ("http:\n  port: 1\n  port: 2\n", 3, "(first on line 2)"),
    ],
)
def test_yaml_errors_name_the_file_and_line(tmp_path, text, line, problem):
    path = write(tmp_path, text)
    with pytest.raises(InputError) as caught:
        load_config(path, env={})
    message = str(caught.value)
    assert message.startswith(f"{path} line {line}, column ")
    assert problem in message and "\n" not in message


def test_merge_keys_are_not_duplicates(tmp_path):
    text = (
        "policy: &base\n  slo_target: 0.8\nservices:\n  a/b:\n    <<: *base\n    slo_target: 0.7\n"
    )
    config = load_config(write(tmp_path, text), env={})
    assert config.policy_for("a", "b").slo_target == 0.7


@pytest.mark.parametrize("text", ["- mode: live\n", "just a string\n", "42\n"])
def test_the_top_level_must_be_a_mapping(tmp_path, text):
    path = write(tmp_path, text)
    with pytest.raises(InputError, match=r"expected a mapping of sections at the top level"):
        load_config(path, env={})


def test_value_errors_in_a_file_name_the_file(tmp_path):
    path = write(tmp_path, "http:\n  port: x\n")
    with pytest.raises(InputError) as caught:
        load_config(path, env={})
    assert str(caught.value) == f"{path} http.port: expected an integer in 1..65535, got 'x'"


def test_binary_junk_is_one_line(tmp_path):
    path = tmp_path / "junk.yaml"
    path.write_bytes(b"mode: \xff\xfe\x00live\n")
    with pytest.raises(InputError, match=r"junk\.yaml: not UTF-8 text"):
        load_config(str(path), env={})


# --- the command line ---------------------------------------------------------------------------


def test_config_check_accepts_the_example(capsys):
    assert main(["config", "check", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{EXAMPLE}: ok\n")
    assert "mode live, tick 2s" in out
    assert "2 service overrides" in out
    assert "embedded: yes" in out


def test_config_check_summarises_a_live_config(tmp_path, capsys):
    path = write(tmp_path, FULL)
    assert main(["config", "check", path]) == 0
    out = capsys.readouterr().out
    assert "mode dry-run, tick 0.5s" in out
    assert "embedded: no (metrics from https://prometheus.monitoring:9090)" in out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("policy:\n  slo_targe: 0.9\n", "policy: unknown key 'slo_targe'"),
        ("policy: [1\n", "line 2, column 1: invalid YAML"),
    ],
)
def test_config_check_errors_are_one_line_and_exit_2(tmp_path, capsys, text, expected):
    path = write(tmp_path, text)
    assert main(["config", "check", path]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"leadtime: error: {path}") and expected in lines[0]


def test_config_check_of_a_missing_file(tmp_path, capsys):
    assert main(["config", "check", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml' does not exist" in capsys.readouterr().err


def test_config_show_prints_yaml_that_loads_back(tmp_path, capsys):
    path = write(tmp_path, FULL)
    assert main(["config", "show", path]) == 0
    out = capsys.readouterr().out
    assert "s3cret" not in out and "http.token is set but not shown" in out
    shown = yaml.safe_load(out)
    assert shown["policy"]["horizon"] == "2m"
    expected = load_config(path, env={})
    expected = replace(expected, http=replace(expected.http, token=None))
    assert config_from_mapping(shown) == expected


def test_config_without_an_action_prints_usage(capsys):
    assert main(["config"]) == 2
    assert "usage: leadtime config" in capsys.readouterr().err


# --- junk never escapes as anything but InputError ---------------------------------------------

KEYS = sorted(
    {
        *config_to_mapping(Config(), reveal_secrets=True),
        *(
            key
            for section in config_to_mapping(Config(), reveal_secrets=True).values()
            if isinstance(section, dict)
            for key in section
        ),
        "default/chat",
        "a/b",
    }
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["30s", "5m", "1h", "-1s", "auto", "rps", "llm-bursty", "http://p:1", "a/b"]),
    st.sampled_from(model_names()),
    st.sampled_from(list(WORKLOADS)),
)
JUNK = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), inner, max_size=5)
    ),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(KEYS), JUNK, max_size=8) | JUNK)
def test_junk_mappings_raise_only_input_error(data):
    try:
        config = config_from_mapping(data)
    except InputError as error:
        assert "\n" not in str(error)
    else:
        assert isinstance(config, Config)


ENV_NAMES = st.sampled_from(
    [
        "LEADTIME_MODE",
        "LEADTIME_TICK",
        "LEADTIME_HTTP__PORT",
        "LEADTIME_HTTP__TOKEN",
        "LEADTIME_POLICY__SLO_TARGET",
        "LEADTIME_POLICY__STABLE_WINDOW",
        "LEADTIME_SIMULATOR__WORKLOADS",
        "LEADTIME_SIMULATOR__GPU_POOL",
        "LEADTIME_PROMETHEUS__URL",
        "LEADTIME_SERVICE_HOST",
        "LEADTIME_PORT",
    ]
) | st.text(max_size=20).map(lambda rest: "LEADTIME_" + rest)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(ENV_NAMES, st.text(max_size=20), max_size=5))
def test_junk_environments_raise_only_input_error(env):
    try:
        load_config(None, env=env)
    except InputError as error:
        assert "\n" not in str(error)


YAML_TEXT = st.text(alphabet=st.sampled_from(list("ab:- []{}&*!<>|'\"\n\t#,?%@`0.9/")), max_size=60)


@settings(max_examples=200, deadline=None)
@given(YAML_TEXT | st.binary(max_size=40).map(lambda raw: raw.decode("latin-1")))
def test_junk_files_raise_only_input_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("junk") / "leadtime.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_config(str(path), env={})
    except InputError as error:
        assert "\n" not in str(error)


def test_knative_section_defaults_environment_and_class_check():
    config = config_from_mapping(
        {"knative": {"enabled": True, "scale_to_zero_grace_period": "10s"}}
    )
    assert config.knative.enabled and config.knative.class_name == "leadtime.dev"
    assert config.knative.scale_to_zero_grace_period_s == 10.0
    assert (
        load_config(None, env={"LEADTIME_KNATIVE__CLASS": "gpu.example.com"}).knative.class_name
        == "gpu.example.com"
    )
    with pytest.raises(InputError, match=r"knative.class: must not end in .knative.dev"):
        config_from_mapping({"knative": {"class": "leadtime.knative.dev"}})
    with pytest.raises(InputError, match=r"knative.resync: expected a duration"):
        config_from_mapping({"knative": {"resync": "never"}})


def test_leader_election_defaults_are_client_gos_and_off():
    election = Config().leader_election
    assert not election.enabled and election.buckets == 1 and election.name_prefix == "leadtime"
    assert (election.lease_duration_s, election.renew_deadline_s, election.retry_period_s) == (
        15.0,
        10.0,
        2.0,
    )
    assert election.resolved_namespace({"POD_NAMESPACE": "ops"}) == "ops"
    assert election.resolved_namespace({}) == "leadtime"
    assert election.resolved_identity({"POD_NAME": "leadtime-6f7-x"}) == "leadtime-6f7-x"
    assert election.resolved_identity({})  # the sanitised host name


def test_leader_election_section_file_environment_and_round_trip(tmp_path):
    path = write(
        tmp_path,
        "leader_election:\n  enabled: true\n  buckets: 4\n"
        "  lease_duration: 3s\n  renew_deadline: 2s\n  retry_period: 0.5s\n"
        "  namespace: ops\n  identity: leadtime-0.node-a\n",
    )
    config = load_config(path, env={"LEADTIME_LEADER_ELECTION__NAME_PREFIX": "gpu"})
    election = config.leader_election
    assert election.enabled and election.buckets == 4 and election.name_prefix == "gpu"
    assert (election.lease_duration_s, election.renew_deadline_s, election.retry_period_s) == (
        3.0,
        2.0,
        0.5,
    )
    assert election.resolved_namespace({"POD_NAMESPACE": "x"}) == "ops"
    assert election.resolved_identity({"POD_NAME": "x"}) == "leadtime-0.node-a"
    assert config_from_mapping(config_to_mapping(config)) == config


@pytest.mark.parametrize(
    "values, key, message",
    [
        ({"enabled": "yes"}, "enabled", "true or false"),
        ({"buckets": 0}, "buckets", r"an integer in 1\.\.100"),
        ({"buckets": 101}, "buckets", r"an integer in 1\.\.100"),
        ({"buckets": 2.5}, "buckets", "an integer"),
        ({"lease_duration": "1.5s"}, "lease_duration", "whole seconds"),
        ({"lease_duration": "0s"}, "lease_duration", "a duration"),
        (
            {"renew_deadline": "20s"},
            "renew_deadline",
            "retry_period < renew_deadline < lease_duration",
        ),
        (
            {"retry_period": "10s"},
            "renew_deadline",
            "retry_period < renew_deadline < lease_duration",
        ),
        ({"retry_period": 0}, "retry_period", "a duration"),
        ({"identity": "Leadtime_0"}, "identity", "DNS-1123 subdomain"),
        ({"identity": "a" * 254}, "identity", "DNS-1123 subdomain"),
        ({"namespace": "Ops"}, "namespace", "DNS-1123 label"),
        ({"name_prefix": "lead.time"}, "name_prefix", "DNS-1123 label"),
        ({"name_prefix": "a" * 41}, "name_prefix", "at most 40"),
        ({"bucket": 4}, "", "unknown key 'bucket' \\(did you mean 'buckets'"),
    ],
)
def test_each_bad_leader_election_value_names_its_key(values, key, message):
    with pytest.raises(InputError, match=rf"^config leader_election\.?{key}: .*{message}"):
        config_from_mapping({"leader_election": values})


def test_leader_election_refuses_the_external_metrics_api(tmp_path):
    (tmp_path / "tls.crt").write_text("x")
    data = {
        "leader_election": {"enabled": True},
        "hpa": {
            "enabled": True,
            "metrics_api_port": 6443,
            "tls_cert_file": "tls.crt",
            "tls_key_file": "tls.key",
        },
    }
    with pytest.raises(InputError, match=r"^in\.yaml leader_election\.enabled: .*metrics_api"):
        config_from_mapping(data, source="in.yaml")
    data["leader_election"]["enabled"] = False
    assert config_from_mapping(data).hpa.metrics_api_port == 6443
