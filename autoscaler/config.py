"""The service's configuration: a YAML file, `LEADTIME_*` environment overrides and per-service
overrides, validated once, at load.

Why everything is validated up front: a typo in a key or a value out of range must stop the
service at start with one message naming the key and what is allowed (docs/architecture.md §6), not
show up an hour later as a service scaled wrong. Every problem is an `InputError` whose message
starts with where the value came from — `config http.port`, the file (`leadtime.yaml http.port`) or
the environment variable (`LEADTIME_HTTP__PORT (http.port)`) — and unknown keys are errors at every
level, since a misspelt key silently ignored is a setting silently not applied.

Precedence, lowest first: the defaults below, the file, the environment (`LEADTIME_MODE`,
`LEADTIME_HTTP__PORT`: a double underscore between levels, key names case-insensitive, values
read as YAML scalars, list keys comma-separated), then `services:` — each service's overrides on
top of the (environment-overridden) `policy` defaults. Durations are written `30s`, `5m`, `1h`
or as seconds, and kept as float seconds (`*_s` attributes).
"""

from __future__ import annotations

import difflib
import math
import os
import re
import reprlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, NoReturn
from urllib.parse import urlsplit

import yaml

from autoscaler.durations import format_duration, parse_duration
from autoscaler.errors import InputError
from autoscaler.forecast_shell import REFIT_EVERY_S
from autoscaler.policies.kpa import CONCURRENCY, RPS, TARGET_UTILIZATION_DEFAULT, KpaConfig
from autoscaler.policies.leadtime_config import LeadtimeConfig
from autoscaler.sharding import (
    LEASE_DURATION_S,
    RENEW_DEADLINE_S,
    RETRY_PERIOD_S,
    default_identity,
    is_subdomain,
)
from autoscaler.slo import SLO_TARGET_DEFAULT, SLO_TTFT_DEFAULT_S
from forecasting.registry import model_names

LIVE, DRY_RUN = "live", "dry-run"
"""Modes: scale for real, or decide and report without touching any replica count."""
ENV_PREFIX = "LEADTIME_"
CONFIG_FILE_VARIABLE = "LEADTIME_CONFIG"
"""Names the config file for the CLI; not a config key."""
MAX_BODY_BYTES_LIMIT = 10 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class HttpConfig:
    """The service's HTTP listener."""

    host: str = "127.0.0.1"
    """Loopback by default: exposing the API is a deliberate choice."""
    port: int = 8080
    token: str | None = field(default=None, repr=False)
    """Bearer token for pause/resume (None: those endpoints are disabled); never in a repr, so it
    does not end up in logs."""
    token_file: str | None = None
    """Where `token` was read from (a mounted Secret), if it came from a file."""
    max_body_bytes: int = 65536


@dataclass(frozen=True, slots=True)
class ForecastingConfig:
    """Background forecasting: which model, on what grid, refitted how often, by how many
    processes."""

    model: str = "auto"
    step_s: float = 10.0
    refit_every_s: float = REFIT_EVERY_S
    min_history_s: float = 60.0
    """No forecast (the KPA decides alone) before a service has this much history."""
    workers: int = 2


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    """The Leadtime policy's settings: `policy` holds every service's defaults, and
    `services.<namespace>/<name>` may override any of them for one service. KPA settings keep
    Knative's names and meanings."""

    slo_ttft_s: float = SLO_TTFT_DEFAULT_S
    """The objective: time to first token within this for `slo_target` of requests."""
    slo_target: float = SLO_TARGET_DEFAULT
    horizon_s: float = 60.0
    cold_start_prior_s: float = 60.0
    scale_down_delay_s: float = 0.0
    hold_leads: float = 2.0
    metric: str = CONCURRENCY
    container_concurrency: int = 0
    """0 = unset, as in Knative (the default target of 100 in flight per pod then applies)."""
    target: float | None = None
    target_utilization: float = TARGET_UTILIZATION_DEFAULT
    min_scale: int = 0
    max_scale: int = 0
    """0 = unbounded."""
    stable_window_s: float = 60.0
    initial_scale: int = 1
    """0 starts a new service scaled to zero (Knative's allow-zero-initial-scale)."""
    paused: bool = False
    """Paused services keep their replica count; the policy still runs and reports."""

    def leadtime_config(self, *, path: str = "config policy") -> LeadtimeConfig:
        """The policy's own config; its constructors' errors are re-raised under this section's
        key path (`config policy.max_scale: ...`), so a bad combination is one clear message."""
        window = _whole_seconds(self.stable_window_s, f"{path}.stable_window")
        try:
            kpa = KpaConfig(
                metric=self.metric,
                container_concurrency=self.container_concurrency,
                target=self.target,
                target_utilization=self.target_utilization,
                stable_window_s=window,
                min_scale=self.min_scale,
                max_scale=self.max_scale,
                initial_scale=self.initial_scale,
                allow_zero_initial_scale=self.initial_scale == 0,
            )
            return LeadtimeConfig(
                kpa=kpa,
                slo_ttft_s=self.slo_ttft_s,
                slo_target=self.slo_target,
                horizon_s=self.horizon_s,
                cold_start_prior_s=self.cold_start_prior_s,
                scale_down_delay_s=self.scale_down_delay_s,
                hold_leads=self.hold_leads,
            )
        except InputError as error:
            raise InputError(_under(path, str(error))) from None


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """The embedded simulator the service runs when no Prometheus is configured. Every workload
    and every trace is one simulated service."""

    speed: float = 10.0
    """Virtual seconds per wall-clock second."""
    workloads: tuple[str, ...] = ("llm-bursty", "web-diurnal")
    traces: tuple[str, ...] = ()
    """Trace file paths, opened by the simulator, not at load."""
    rate_scale: float = 1.0
    cold_start_s: float = 60.0
    max_concurrency: int = 8
    gpu_pool: int | None = None
    """GPUs available without provisioning; None = unbounded."""
    seed: int = 0


@dataclass(frozen=True, slots=True)
class PrometheusConfig:
    """Where live metrics come from; no URL means the embedded simulator."""

    url: str | None = None
    signals: str = "knative"
    """Built-in PromQL for the demand signals: knative (≤ 1.18 names), knative-otel, vllm; or
    custom, with the three queries below."""
    query_arrivals: str | None = None
    query_concurrency: str | None = None
    query_queue: str | None = None
    """Custom PromQL (signals: custom), each aggregated by the two labels below; `{window}`
    stands for the rate window."""
    namespace_label: str = "namespace"
    service_label: str = "service"
    rate_window_s: float = 30.0
    """Window of the request-rate `rate()`: at least a few scrape intervals."""
    stale_after_s: float = 60.0
    """A service whose newest sample is older is held (no data), not scaled."""
    timeout_s: float = 5.0
    token_file: str | None = None
    """File with a bearer token for Prometheus (e.g. a mounted service-account token)."""
    tenant: str | None = None
    """X-Scope-OrgID header for Thanos / Cortex / Mimir."""
    verify_tls: bool = True

    def __post_init__(self) -> None:
        custom = (self.query_arrivals, self.query_concurrency, self.query_queue)
        if self.signals == "custom" and not (self.query_arrivals and self.query_concurrency):
            raise InputError(
                "config prometheus.query_arrivals, prometheus.query_concurrency: both needed "
                "with signals: custom"
            )
        if self.signals != "custom" and any(custom):
            raise InputError(
                "config prometheus.signals: must be custom when query_* are given "
                f"(it is {self.signals!r})"
            )


@dataclass(frozen=True, slots=True)
class KnativeConfig:
    """Leadtime as a Knative PodAutoscaler class (needs `prometheus.url` for demand)."""

    enabled: bool = False
    class_name: str = "leadtime.dev"
    """The `autoscaling.knative.dev/class` value Leadtime reconciles; never `*.knative.dev`."""
    kubeconfig: str | None = None
    """None: the in-cluster service account."""
    scale_to_zero_grace_period_s: float = 30.0
    activator_probe_url: str = "http://{service}.{namespace}.svc.cluster.local:{port}/healthz"
    probe_timeout_s: float = 2.0
    resync_s: float = 30.0
    query_namespaces: tuple[str, ...] = ()
    """Namespaces whose revisions may bring their own PromQL (`leadtime.dev/query*`); empty:
    none, `*`: every namespace. Each query must match its own namespace on every selector."""
    query_namespace_label: str = "namespace"
    """The label that names a series' namespace in those queries."""
    query_budget_s: float = 2.0
    """How long one revision's own queries may take; past it the revision keeps its last
    answer (or has no data) and nothing else waits."""

    def __post_init__(self) -> None:
        if self.class_name.endswith(".knative.dev"):
            raise InputError(
                "config knative.class: must not end in .knative.dev (Knative's webhook rejects "
                f"such classes but its own), got {self.class_name!r}"
            )


@dataclass(frozen=True, slots=True)
class HpaConfig:
    """Leadtime without Knative: floors on opted-in HPAs, plain workloads through /scale, and
    the external metrics API an HPA can scale on."""

    enabled: bool = False
    kubeconfig: str | None = None
    """None: the in-cluster service account."""
    metrics_api_port: int = 0
    """TLS port of external.metrics.k8s.io for the aggregation layer; 0 = not served."""
    metrics_api_host: str = "0.0.0.0"
    """The API server must reach it, so not loopback by default (TLS, client certificates)."""
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    client_ca_file: str | None = None
    """The aggregation layer's client CA (requestheader-client-ca-file). None: read it, and
    the allowed names, from kube-system/extension-apiserver-authentication at start."""
    client_names: tuple[str, ...] = ("front-proxy-client",)
    """With `client_ca_file`: the common names the front proxy's certificate may carry
    (requestheader-allowed-names); empty: any certificate the CA signed."""

    def __post_init__(self) -> None:
        if self.metrics_api_port and not (self.tls_cert_file and self.tls_key_file):
            raise InputError(
                "config hpa.tls_cert_file, hpa.tls_key_file: both needed when "
                "hpa.metrics_api_port is set (the aggregation layer speaks TLS only)"
            )


@dataclass(frozen=True, slots=True)
class LeaderElectionConfig:
    """Several replicas sharing the services: each service's bucket is a Kubernetes Lease in
    `namespace`, and a replica acts only on the services of the buckets it holds (as Knative's
    bucket leases; `autoscaler/sharding.py` has the rules)."""

    enabled: bool = False
    namespace: str | None = None
    """Where the Leases live; None: the `POD_NAMESPACE` variable, else `leadtime`."""
    name_prefix: str = "leadtime"
    """Lease names: `<prefix>.00-of-04` per bucket, `<prefix>.member.<identity>` per replica."""
    buckets: int = 1
    """1 (Knative's default): one active replica, the others on standby. Set it to at least the
    number of replicas for them to share the work; each held bucket is one Lease write per
    retry period."""
    lease_duration_s: float = LEASE_DURATION_S
    renew_deadline_s: float = RENEW_DEADLINE_S
    retry_period_s: float = RETRY_PERIOD_S
    """client-go's and Knative's defaults."""
    identity: str | None = None
    """This replica's holder identity; None: the `POD_NAME` variable, else the host name."""

    def __post_init__(self) -> None:
        if not self.retry_period_s < self.renew_deadline_s < self.lease_duration_s:
            raise InputError(
                "config leader_election.renew_deadline: needs retry_period < renew_deadline < "
                f"lease_duration, got {format_duration(self.retry_period_s)}, "
                f"{format_duration(self.renew_deadline_s)}, "
                f"{format_duration(self.lease_duration_s)}"
            )

    def resolved_namespace(self, env: Mapping[str, str]) -> str:
        return self.namespace or env.get("POD_NAMESPACE", "").strip() or "leadtime"

    def resolved_identity(self, env: Mapping[str, str]) -> str:
        return self.identity or default_identity(env)


def _no_services() -> Mapping[str, PolicyConfig]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Config:
    """Everything the service reads at start."""

    mode: str = LIVE
    tick_s: float = 2.0
    http: HttpConfig = field(default_factory=HttpConfig)
    forecasting: ForecastingConfig = field(default_factory=ForecastingConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    services: Mapping[str, PolicyConfig] = field(default_factory=_no_services)
    """`namespace/name` → that service's full policy (the defaults with its overrides)."""
    simulator: SimulatorConfig = field(default_factory=SimulatorConfig)
    prometheus: PrometheusConfig = field(default_factory=PrometheusConfig)
    knative: KnativeConfig = field(default_factory=KnativeConfig)
    hpa: HpaConfig = field(default_factory=HpaConfig)
    leader_election: LeaderElectionConfig = field(default_factory=LeaderElectionConfig)

    def __post_init__(self) -> None:
        if self.leader_election.enabled and self.hpa.metrics_api_port:
            raise InputError(
                "config leader_election.enabled: cannot be true while hpa.metrics_api_port is "
                "set — the API server sends each external-metrics request to any replica, and a "
                "replica knows only the services of its own buckets"
            )

    def policy_for(self, namespace: str, name: str) -> PolicyConfig:
        """The service's override if it has one, else the defaults."""
        return self.services.get(f"{namespace}/{name}", self.policy)

    @property
    def embedded(self) -> bool:
        """True when no Prometheus is configured: the service then runs the simulator."""
        return self.prometheus.url is None


def load_config(path: str | None = None, env: Mapping[str, str] | None = None) -> Config:
    """The config from the YAML file at `path` (None: the defaults) with the `LEADTIME_*`
    variables of `env` (default: the process environment) applied over it."""
    environment = os.environ if env is None else env
    if path is None:
        return _build({}, "config", environment)
    return _build(_read_yaml(path), path, environment)


def config_from_mapping(data: Mapping[str, Any], *, source: str = "config") -> Config:
    """The config from already-parsed data (no environment); `source` starts every message."""
    return _build(data, source, {})


def policy_with_overrides(
    base: PolicyConfig, overrides: Mapping[str, tuple[str, str]]
) -> tuple[PolicyConfig, dict[str, str]]:
    """`base` with text overrides applied one key at a time (`overrides`: policy key →
    (label, text), as Kubernetes annotations give them). Each text is read as a YAML scalar and
    checked exactly as the config file's key is. A refused value keeps `base`'s, and its message,
    starting with the label, is returned under that label — so one bad annotation is reported
    and the rest still apply. If the accepted values do not go together (min above max), none
    of them apply and every label gets the message."""
    accepted: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for name, (label, text) in overrides.items():
        key = _POLICY_KEYS[name]
        try:
            accepted[key.attr] = key.parse(_env_value(text, key), _Where(label))
        except InputError as error:
            problems[label] = str(error)
        except (ValueError, TypeError, OverflowError, RecursionError) as error:
            # untrusted text (an annotation) must never get past this as an exception
            problems[label] = f"{label}: cannot be read ({error.__class__.__name__})"
    policy = replace(base, **accepted)
    try:
        policy.leadtime_config(path="policy")
    except InputError as error:
        head, _, rest = str(error).partition(": ")
        culprit = overrides.get(head.removeprefix("policy."), (head, ""))[0]
        message = f"{culprit}: {rest}"
        return base, {label: message for label, _ in overrides.values()}
    return policy, problems


def override_variables(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The variables of `env` (default: the process environment) that override the config."""
    return tuple(variable for variable, _ in _env_overrides(os.environ if env is None else env))


def config_to_mapping(config: Config, *, reveal_secrets: bool = False) -> dict[str, Any]:
    """The config under its YAML names, durations written `60s` or `1h` (`leadtime config
    show`); loading it back gives the same config. `services` lists only what each service
    overrides. `http.token` is left out unless `reveal_secrets` (a token from `token_file` is
    never printed: the file is named instead)."""
    data: dict[str, Any] = {name: key.dump(getattr(config, key.attr)) for name, key in _TOP.items()}
    for section in _TOP_LEVEL[len(_TOP) :]:
        if section == "services":
            data[section] = {
                key: _section_mapping(policy, _POLICY_KEYS, unlike=config.policy)
                for key, policy in config.services.items()
            }
        else:
            data[section] = _section_mapping(getattr(config, section), _SECTIONS[section])
    if config.http.token_file is not None or not reveal_secrets:
        del data["http"]["token"]
    return data


# --- where a value came from ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Where:
    """A key path for messages: `config http.port`, or the environment variable that set it."""

    source: str
    path: tuple[str, ...] = ()
    origins: Mapping[tuple[str, ...], str] = field(default_factory=dict)

    def key(self, name: object) -> _Where:
        return replace(self, path=(*self.path, str(name)))

    def __str__(self) -> str:
        dotted = ".".join(self.path)
        variable = self.origins.get(self.path)
        if variable is not None:
            return f"{variable} ({dotted})"
        return f"{self.source} {dotted}" if dotted else self.source


_REPR = reprlib.Repr()
_REPR.maxstring = 140  # room for a namespace/name key: two 63-character labels
_REPR.maxother = 60
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 4
_REPR.maxlevel = 2


def _show(value: object) -> str:
    """A value in a message: short even for a huge or deeply nested YAML node."""
    return _REPR.repr(value)


def _reject(where: _Where | str, allowed: str, value: object) -> NoReturn:
    raise InputError(f"{where}: expected {allowed}, got {_show(value)}")


# --- value parsers: (value, where) -> the attribute's value, or InputError ------------------------

_Parser = Callable[[Any, _Where], Any]


def _integer(low: int, high: int | None = None, note: str = "") -> _Parser:
    allowed = (
        f"an integer in {low}..{high}" if high is not None else f"an integer >= {low}"
    ) + note

    def parse(value: Any, where: _Where) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            _reject(where, allowed, value)
        if value < low or (high is not None and value > high):
            _reject(where, allowed, value)
        return value

    return parse


def _interval(
    low: float,
    high: float | None,
    low_open: bool,
    high_open: bool,
    show: Callable[[float], str] = "{:g}".format,
) -> str:
    if high is None:
        return f"> {show(low)}" if low_open else f">= {show(low)}"
    return f"in {'(' if low_open else '['}{show(low)}, {show(high)}{')' if high_open else ']'}"


def _inside(x: float, low: float, high: float | None, low_open: bool, high_open: bool) -> bool:
    above = x > low if low_open else x >= low
    below = high is None or (x < high if high_open else x <= high)
    return math.isfinite(x) and above and below


def _number(
    low: float,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    note: str = "",
) -> _Parser:
    allowed = f"a number {_interval(low, high, low_open, high_open)}{note}"

    def parse(value: Any, where: _Where) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            _reject(where, allowed, value)
        try:
            number = float(value)
        except OverflowError:
            _reject(where, allowed, value)
        if not _inside(number, low, high, low_open, high_open):
            _reject(where, allowed, value)
        return number

    return parse


def _duration(
    low: float = 0.0, high: float | None = None, *, low_open: bool = False, whole: bool = False
) -> _Parser:
    unit = ", whole seconds" if whole else ""
    allowed = (
        f"a duration {_interval(low, high, low_open, False, format_duration)}{unit} "
        "(30s, 5m, 1h, 1h30m or a number of seconds)"
    )

    def parse(value: Any, where: _Where) -> float:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            _reject(where, allowed, value)
        try:
            seconds = parse_duration(value, field=str(where))
        except (InputError, OverflowError):
            _reject(where, allowed, value)
        if not _inside(seconds, low, high, low_open, False) or (whole and seconds % 1):
            _reject(where, allowed, value)
        return seconds

    return parse


def _one_of(choices: Callable[[], Sequence[str]]) -> _Parser:
    """`choices` is called when a value is checked, so listing them costs nothing at import."""

    def parse(value: Any, where: _Where) -> str:
        allowed = list(choices())
        if not isinstance(value, str) or value not in allowed:
            _reject(where, f"one of {', '.join(map(repr, allowed))}", value)
        return value

    return parse


def _text(allowed: str = "a non-empty string without spaces") -> _Parser:
    def parse(value: Any, where: _Where) -> str:
        if not isinstance(value, str) or not value or any(c.isspace() for c in value):
            _reject(where, allowed, value)
        if not value.isprintable():
            _reject(where, allowed, value)
        return value

    return parse


def _optional(parser: _Parser) -> _Parser:
    def parse(value: Any, where: _Where) -> Any:
        return None if value is None else parser(value, where)

    return parse


def _promql(value: Any, where: _Where) -> str:
    if not isinstance(value, str) or not value.strip():
        _reject(where, "a PromQL expression (a non-empty string)", value)
    return value.strip()


def _boolean(value: Any, where: _Where) -> bool:
    if not isinstance(value, bool):
        _reject(where, "true or false", value)
    return value


def _url(value: Any, where: _Where) -> str:
    allowed = "an http(s) URL such as http://prometheus:9090, or null (embedded simulator)"
    if not isinstance(value, str) or any(c.isspace() for c in value):
        _reject(where, allowed, value)
    try:
        parts = urlsplit(value)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        _ = parts.port  # raises ValueError when the port is not a number in range
    except ValueError:
        valid = False
    if not valid:
        _reject(where, allowed, value)
    return value


def _names(item: _Parser, allowed: str) -> _Parser:
    """A list of names, in YAML as a list or (as in the environment) comma-separated."""

    def parse(value: Any, where: _Where) -> tuple[str, ...]:
        if value is None:
            return ()
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, (list, tuple)):
            _reject(where, allowed, value)
        return tuple(item(name, where) for name in value)

    return parse


WORKLOAD_NAMES: list[str] = []
"""The built-in workloads `simulator.workloads` may name, as the simulator registers them
(`register_workloads`): the core imports no adapter, so it learns the names from it."""


def register_workloads(names: Iterable[str]) -> None:
    """Let `simulator.workloads` name these (the simulator calls this as it is imported)."""
    WORKLOAD_NAMES.extend(name for name in names if name not in WORKLOAD_NAMES)


def _workload_names() -> Sequence[str]:
    return WORKLOAD_NAMES


def _seconds_text(seconds: float) -> str | float:
    """`60s`, `1h`…, or the plain number when the short form would round it."""
    text = format_duration(seconds)
    return text if parse_duration(text) == seconds else seconds


def _whole_seconds(seconds: float, label: str) -> int:
    if not (math.isfinite(seconds) and float(seconds).is_integer()):
        raise InputError(f"{label}: must be whole seconds, got {seconds!r}")
    return int(seconds)


# --- the schema: YAML key -> attribute, parser ----------------------------------------------------


def _same(value: Any) -> Any:
    return value


@dataclass(frozen=True, slots=True)
class _Key:
    attr: str
    parse: _Parser
    text: bool = False
    """From the environment, a non-string YAML scalar is kept as the raw text (a token `0123`
    stays `0123`)."""
    dump: Callable[[Any], Any] = _same


def _seconds(attr: str, parse: _Parser) -> _Key:
    return _Key(attr, parse, dump=_seconds_text)


def _list(attr: str, parse: _Parser) -> _Key:
    return _Key(attr, parse, text=True, dump=list)


_TOP: dict[str, _Key] = {
    "mode": _Key("mode", _one_of(lambda: (LIVE, DRY_RUN)), text=True),
    "tick": _seconds("tick_s", _duration(0.1, 60)),
}

_HTTP_KEYS: dict[str, _Key] = {
    "host": _Key("host", _text(), text=True),
    "port": _Key("port", _integer(1, 65535)),
    "token": _Key(
        "token",
        _optional(_text("a non-empty string without spaces, or null (pause/resume disabled)")),
        text=True,
    ),
    "token_file": _Key("token_file", _optional(_text("a file path, or null")), text=True),
    "max_body_bytes": _Key("max_body_bytes", _integer(1, MAX_BODY_BYTES_LIMIT, " (10 MiB)")),
}

_FORECASTING_KEYS: dict[str, _Key] = {
    "model": _Key("model", _one_of(model_names), text=True),
    "step": _seconds("step_s", _duration(1, 3600)),
    "refit_every": _seconds("refit_every_s", _duration(1)),
    "min_history": _seconds("min_history_s", _duration(0)),
    "workers": _Key("workers", _integer(1, 64)),
}

_POLICY_KEYS: dict[str, _Key] = {
    "slo_ttft": _seconds("slo_ttft_s", _duration(0, 600, low_open=True)),
    "slo_target": _Key("slo_target", _number(0.5, 1, high_open=True)),
    "horizon": _seconds("horizon_s", _duration(0, low_open=True)),
    "cold_start_prior": _seconds("cold_start_prior_s", _duration(0, low_open=True)),
    "scale_down_delay": _seconds("scale_down_delay_s", _duration(0)),
    "hold_leads": _Key("hold_leads", _number(0)),
    "metric": _Key("metric", _one_of(lambda: (CONCURRENCY, RPS)), text=True),
    "container_concurrency": _Key(
        "container_concurrency", _integer(0, 1000, " (0 = unset, Knative's meaning)")
    ),
    "target": _Key("target", _optional(_number(0.01, note=", or null (from the metric)"))),
    "target_utilization": _Key("target_utilization", _number(0.01, 1)),
    "min_scale": _Key("min_scale", _integer(0)),
    "max_scale": _Key("max_scale", _integer(0, note=" (0 = unbounded)")),
    "stable_window": _seconds("stable_window_s", _duration(6, 3600, whole=True)),
    "initial_scale": _Key("initial_scale", _integer(0)),
    "paused": _Key("paused", _boolean),
}

_SIMULATOR_KEYS: dict[str, _Key] = {
    "speed": _Key("speed", _number(0, 10000, low_open=True)),
    "workloads": _list(
        "workloads",
        _names(_one_of(_workload_names), "a list of built-in workload names"),
    ),
    "traces": _list("traces", _names(_text("a trace file path"), "a list of trace file paths")),
    "rate_scale": _Key("rate_scale", _number(0, 1000, low_open=True)),
    "cold_start": _seconds("cold_start_s", _duration(0, low_open=True)),
    "max_concurrency": _Key("max_concurrency", _integer(1)),
    "gpu_pool": _Key("gpu_pool", _optional(_integer(1, note=", or null (unbounded)"))),
    "seed": _Key("seed", _integer(0)),
}

_PROMETHEUS_KEYS: dict[str, _Key] = {
    "url": _Key("url", _optional(_url), text=True),
    "signals": _Key(
        "signals", _one_of(lambda: ("knative", "knative-otel", "vllm", "custom")), text=True
    ),
    "query_arrivals": _Key("query_arrivals", _optional(_promql), text=True),
    "query_concurrency": _Key("query_concurrency", _optional(_promql), text=True),
    "query_queue": _Key("query_queue", _optional(_promql), text=True),
    "namespace_label": _Key("namespace_label", _text("a Prometheus label name"), text=True),
    "service_label": _Key("service_label", _text("a Prometheus label name"), text=True),
    "rate_window": _seconds("rate_window_s", _duration(1, 3600)),
    "stale_after": _seconds("stale_after_s", _duration(1, 3600)),
    "timeout": _seconds("timeout_s", _duration(0.1, 300)),
    "token_file": _Key("token_file", _optional(_text("a file path, or null")), text=True),
    "tenant": _Key("tenant", _optional(_text("a tenant id, or null")), text=True),
    "verify_tls": _Key("verify_tls", _boolean),
}

_KNATIVE_KEYS: dict[str, _Key] = {
    "enabled": _Key("enabled", _boolean),
    "class": _Key("class_name", _text("a class name such as leadtime.dev"), text=True),
    "kubeconfig": _Key(
        "kubeconfig", _optional(_text("a file path, or null (in-cluster)")), text=True
    ),
    "scale_to_zero_grace_period": _seconds("scale_to_zero_grace_period_s", _duration(0, 3600)),
    "activator_probe_url": _Key(
        "activator_probe_url",
        _text("a URL template with {service}, {namespace} and {port}"),
        text=True,
    ),
    "probe_timeout": _seconds("probe_timeout_s", _duration(0.1, 60)),
    "resync": _seconds("resync_s", _duration(1, 3600)),
    "query_namespaces": _list(
        "query_namespaces",
        _names(_text("a namespace name, or *"), "a list of namespace names, or [*]"),
    ),
    "query_namespace_label": _Key(
        "query_namespace_label", _text("a Prometheus label name"), text=True
    ),
    "query_budget": _seconds("query_budget_s", _duration(0.1, 60)),
}

_FILE = _optional(_text("a file path, or null"))

_HPA_KEYS: dict[str, _Key] = {
    "enabled": _Key("enabled", _boolean),
    "kubeconfig": _Key(
        "kubeconfig", _optional(_text("a file path, or null (in-cluster)")), text=True
    ),
    "metrics_api_port": _Key("metrics_api_port", _integer(0, 65535, " (0 = not served)")),
    "metrics_api_host": _Key("metrics_api_host", _text(), text=True),
    "client_names": _list(
        "client_names",
        _names(_text("a certificate common name"), "a list of certificate common names"),
    ),
    "tls_cert_file": _Key("tls_cert_file", _FILE, text=True),
    "tls_key_file": _Key("tls_key_file", _FILE, text=True),
    "client_ca_file": _Key("client_ca_file", _FILE, text=True),
}


def _subdomain(value: Any, where: _Where) -> str:
    allowed = (
        "a DNS-1123 subdomain (lowercase letters, digits, '-' and '.', starting and "
        "ending with a letter or digit, at most 253 characters)"
    )
    if not isinstance(value, str) or not is_subdomain(value):
        _reject(where, allowed, value)
    return value


def _label(longest: int) -> _Parser:
    allowed = (
        f"a DNS-1123 label of at most {longest} characters (lowercase letters, digits "
        "and '-', starting and ending with a letter or digit)"
    )

    def parse(value: Any, where: _Where) -> str:
        if not isinstance(value, str) or len(value) > longest or not _DNS_LABEL.fullmatch(value):
            _reject(where, allowed, value)
        return value

    return parse


_LEADER_ELECTION_KEYS: dict[str, _Key] = {
    "enabled": _Key("enabled", _boolean),
    "namespace": _Key("namespace", _optional(_label(63)), text=True),
    "name_prefix": _Key("name_prefix", _label(40), text=True),
    "buckets": _Key("buckets", _integer(1, 100)),
    "lease_duration": _seconds("lease_duration_s", _duration(1, 3600, whole=True)),
    "renew_deadline": _seconds("renew_deadline_s", _duration(0, 3600, low_open=True)),
    "retry_period": _seconds("retry_period_s", _duration(0, 3600, low_open=True)),
    "identity": _Key("identity", _optional(_subdomain), text=True),
}

_SECTIONS: dict[str, dict[str, _Key]] = {
    "http": _HTTP_KEYS,
    "forecasting": _FORECASTING_KEYS,
    "policy": _POLICY_KEYS,
    "simulator": _SIMULATOR_KEYS,
    "prometheus": _PROMETHEUS_KEYS,
    "knative": _KNATIVE_KEYS,
    "hpa": _HPA_KEYS,
    "leader_election": _LEADER_ELECTION_KEYS,
}
"""Sections the environment can set (`services` is read from the file only)."""

_TOP_LEVEL = (
    *_TOP,
    "http",
    "forecasting",
    "policy",
    "services",
    "simulator",
    "prometheus",
    "knative",
    "hpa",
    "leader_election",
)

_POLICY_ATTR_KEYS = {key.attr: name for name, key in _POLICY_KEYS.items()}
"""LeadtimeConfig / KpaConfig attribute → config key, for their re-raised errors."""


def _under(path: str, message: str) -> str:
    """`kpa.max_scale: must be ...` from the policy's constructors as `<path>.max_scale: ...`."""
    head, _, rest = message.partition(": ")
    attr = head.partition(".")[2]
    key = _POLICY_ATTR_KEYS.get(attr)
    return f"{path}.{key}: {rest}" if key and rest else f"{path}: {message}"


# --- building the config --------------------------------------------------------------------------

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def _build(data: object, source: str, env: Mapping[str, str]) -> Config:
    where = _Where(source)
    top = _mapping(data, where, "a mapping of sections at the top level")
    _check_known(top, _TOP_LEVEL, where)
    overrides = _env_overrides(env)
    merged = _merge(top, overrides)
    where = _Where(source, origins={path: variable for variable, (path, _) in overrides})
    policy = _policy(merged.get("policy"), where.key("policy"), PolicyConfig())
    return _sourced(
        source,
        Config,
        dict(
            **_values({k: v for k, v in merged.items() if k in _TOP}, _TOP, where),
            http=_http(merged.get("http"), where.key("http")),
            forecasting=ForecastingConfig(
                **_values(merged.get("forecasting"), _FORECASTING_KEYS, where.key("forecasting"))
            ),
            policy=policy,
            services=_services(merged.get("services"), policy, where.key("services")),
            simulator=_simulator(merged.get("simulator"), where.key("simulator")),
            prometheus=_sourced(
                source,
                PrometheusConfig,
                _values(merged.get("prometheus"), _PROMETHEUS_KEYS, where.key("prometheus")),
            ),
            knative=_sourced(
                source,
                KnativeConfig,
                _values(merged.get("knative"), _KNATIVE_KEYS, where.key("knative")),
            ),
            hpa=_sourced(
                source, HpaConfig, _values(merged.get("hpa"), _HPA_KEYS, where.key("hpa"))
            ),
            leader_election=_sourced(
                source,
                LeaderElectionConfig,
                _values(
                    merged.get("leader_election"),
                    _LEADER_ELECTION_KEYS,
                    where.key("leader_election"),
                ),
            ),
        ),
    )


def _sourced(source: str, section: Callable[..., Any], values: dict[str, Any]) -> Any:
    """A section built from its values; its own cross-key checks say `config <section>...`,
    so their message is made to start with the real source (the file) like every other."""
    try:
        return section(**values)
    except InputError as error:
        raise InputError(f"{source} {str(error).removeprefix('config ')}") from None


def _mapping(raw: object, where: _Where, allowed: str = "a mapping") -> Mapping[Any, Any]:
    """A section; an empty one (every key commented out) reads as YAML null."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        _reject(where, allowed, raw)
    return raw


def _check_known(section: Mapping[Any, Any], allowed: Iterable[str], where: _Where) -> None:
    names = list(allowed)
    for name in section:
        if name not in names:
            close = difflib.get_close_matches(str(name).lower(), names, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise InputError(
                f"{where}: unknown key {_show(name)} ({hint}allowed: {', '.join(names)})"
            )


def _values(raw: object, keys: Mapping[str, _Key], where: _Where) -> dict[str, Any]:
    """A section's keys parsed into its dataclass's attributes; unknown keys refused."""
    section = _mapping(raw, where)
    _check_known(section, keys, where)
    return {keys[name].attr: keys[name].parse(v, where.key(name)) for name, v in section.items()}


def _http(raw: object, where: _Where) -> HttpConfig:
    values = _values(raw, _HTTP_KEYS, where)
    token_file = values.get("token_file")
    if token_file is not None:
        if values.get("token") is not None:
            raise InputError(f"{where}: token and token_file are exclusive; set one of them")
        values["token"] = _read_token(token_file, where.key("token_file"))
    return HttpConfig(**values)


def _read_token(path: str, where: _Where) -> str:
    """The token file's content, stripped (a mounted Secret often ends with a newline)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{where}: token file {path!r} does not exist") from None
    except IsADirectoryError:
        raise InputError(f"{where}: token file {path!r} is a directory, not a file") from None
    except OSError as error:
        raise InputError(f"{where}: token file {path!r} cannot be read: {error.strerror}") from None
    except (UnicodeDecodeError, ValueError):
        raise InputError(f"{where}: token file {path!r} is not readable UTF-8 text") from None
    token = text.strip()
    if not token:
        raise InputError(f"{where}: token file {path!r} is empty")
    if any(c.isspace() for c in token) or not token.isprintable():
        raise InputError(f"{where}: token file {path!r} must hold one token without spaces")
    return token


def _policy(raw: object, where: _Where, defaults: PolicyConfig) -> PolicyConfig:
    policy = replace(defaults, **_values(raw, _POLICY_KEYS, where))
    policy.leadtime_config(path=str(where))
    return policy


def _services(raw: object, defaults: PolicyConfig, where: _Where) -> Mapping[str, PolicyConfig]:
    section = _mapping(raw, where, "a mapping of namespace/name to policy overrides")
    services: dict[str, PolicyConfig] = {}
    for key, overrides in section.items():
        if not _is_service_key(key):
            _reject(
                where,
                "keys namespace/name, both DNS-1123 labels (lowercase letters, digits and '-', "
                "starting and ending with a letter or digit, at most 63 characters)",
                key,
            )
        services[key] = _policy(overrides, where.key(key), defaults)
    return MappingProxyType(services)


def _is_service_key(key: object) -> bool:
    if not isinstance(key, str) or key.count("/") != 1:
        return False
    return all(_DNS_LABEL.fullmatch(part) for part in key.split("/"))


def _simulator(raw: object, where: _Where) -> SimulatorConfig:
    simulator = SimulatorConfig(**_values(raw, _SIMULATOR_KEYS, where))
    if not simulator.workloads and not simulator.traces:
        raise InputError(
            f"{where}: needs at least one of workloads ({', '.join(_workload_names())}) "
            "or traces (file paths)"
        )
    return simulator


def _section_mapping(
    section: object, keys: Mapping[str, _Key], unlike: object | None = None
) -> dict[str, Any]:
    return {
        name: key.dump(getattr(section, key.attr))
        for name, key in keys.items()
        if unlike is None or getattr(section, key.attr) != getattr(unlike, key.attr)
    }


# --- the environment ------------------------------------------------------------------------------

_ENV_HELP = (
    f"expected {ENV_PREFIX}MODE, {ENV_PREFIX}TICK or {ENV_PREFIX}<SECTION>__<KEY> with SECTION "
    f"one of {', '.join(s.upper() for s in _SECTIONS)} ({CONFIG_FILE_VARIABLE} names the file)"
)
_SERVICE_LINK_SUFFIX = re.compile(
    r"SERVICE_HOST|SERVICE_PORT(_\w+)?|PORT(_\d+_(TCP|UDP|SCTP)(_(PROTO|PORT|ADDR))?)?"
)

_PLAIN_NAME = re.compile(r"[\w./-]+")
"""A variable named as is in messages; any other name is quoted (it may hold a newline)."""
_Override = tuple[str, tuple[tuple[str, ...], Any]]
"""(variable, (key path, value))."""


def _env_overrides(env: Mapping[str, str]) -> list[_Override]:
    """Every `LEADTIME_*` variable (its name for messages) with its key path and value;
    unknown ones are errors."""
    found: dict[tuple[str, ...], str] = {}
    overrides: list[_Override] = []
    for variable in sorted(env):
        if not variable.startswith(ENV_PREFIX) or variable == CONFIG_FILE_VARIABLE:
            continue
        if _is_service_link(variable, env):
            continue
        name = variable if _PLAIN_NAME.fullmatch(variable) else repr(variable)
        path = tuple(variable[len(ENV_PREFIX) :].lower().split("__"))
        key = _env_key(name, path)
        if path in found:
            raise InputError(f"{found[path]} and {name} both set {'.'.join(path)}")
        found[path] = name
        overrides.append((name, (path, _env_value(env[variable], key))))
    return overrides


def _is_service_link(variable: str, env: Mapping[str, str]) -> bool:
    """Kubernetes gives every pod `<SERVICE>_SERVICE_HOST`, `<SERVICE>_PORT`, ... for each
    Service of its namespace, so a Service named `leadtime` (or `leadtime-api`) puts variables
    under our prefix that are not config; they are known by their `_SERVICE_HOST` sibling."""
    for index, char in enumerate(variable):
        if char == "_" and _SERVICE_LINK_SUFFIX.fullmatch(variable, index + 1):
            if f"{variable[:index]}_SERVICE_HOST" in env:
                return True
    return False


def _env_key(variable: str, path: tuple[str, ...]) -> _Key:
    if len(path) == 1 and path[0] in _TOP:
        return _TOP[path[0]]
    if len(path) == 2 and path[0] == "services":
        raise InputError(f"{variable}: per-service overrides are read from the config file only")
    if len(path) == 2 and path[0] in _SECTIONS:
        keys = _SECTIONS[path[0]]
        if path[1] in keys:
            return keys[path[1]]
        raise InputError(
            f"{variable}: unknown key {path[1]!r} in {path[0]} (allowed: {', '.join(keys)})"
        )
    raise InputError(f"unknown environment variable {variable}: {_ENV_HELP}")


def _env_value(text: str, key: _Key) -> Any:
    """The variable read as a YAML scalar (`0.95`, `true`, `null`, `30s`)."""
    try:
        value = yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError, ValueError):  # ValueError: int('9' * 5000)
        return text
    if key.text and value is not None and not isinstance(value, str):
        return text
    return value


def _merge(top: Mapping[Any, Any], overrides: list[_Override]) -> dict[Any, Any]:
    """The file's sections with the environment's values put over them."""
    merged = dict(top)
    for _, (path, value) in overrides:
        if len(path) == 1:
            merged[path[0]] = value
            continue
        section, key = path
        current = merged.get(section)
        if current is None:
            merged[section] = {key: value}
        elif isinstance(current, Mapping):
            merged[section] = {**current, key: value}
        # else: the section is not a mapping, which its own check reports
    return merged


# --- the file -------------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """`yaml.safe_load` that refuses duplicate keys: PyYAML keeps the last one silently, so a
    second `policy:` section would erase the first without a word."""


def _construct_mapping(loader: _StrictLoader, node: Any) -> Any:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            first = seen.setdefault(key, key_node.start_mark.line + 1)
        except TypeError:
            continue  # unhashable: construct_yaml_map reports it
        if first != key_node.start_mark.line + 1:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {_show(key)} (first on line {first})",
                key_node.start_mark,
            )
    return loader.construct_yaml_map(node)


_StrictLoader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)


def _read_yaml(path: str) -> object:
    try:
        with open(path, "rb") as stream:
            return yaml.load(stream, Loader=_StrictLoader)
    except FileNotFoundError:
        raise InputError(f"config file {path!r} does not exist") from None
    except IsADirectoryError:
        raise InputError(f"config file {path!r} is a directory, not a file") from None
    except OSError as error:
        raise InputError(f"config file {path!r} cannot be read: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise InputError(_yaml_problem(path, error)) from None
    except RecursionError:
        raise InputError(f"{path}: invalid YAML: nested too deeply") from None
    except ValueError as error:
        raise InputError(f"config file {path!r} cannot be read: {error}") from None


def _yaml_problem(path: str, error: yaml.YAMLError) -> str:
    """`FILE line L, column C: invalid YAML: problem`, on one line."""
    if isinstance(error, yaml.reader.ReaderError):
        return f"{path}: not UTF-8 text (byte {error.position})"
    mark = getattr(error, "problem_mark", None)
    problem = " ".join(str(getattr(error, "problem", None) or error).split())
    if mark is None:
        return f"{path}: invalid YAML: {problem}"
    return f"{path} line {mark.line + 1}, column {mark.column + 1}: invalid YAML: {problem}"
