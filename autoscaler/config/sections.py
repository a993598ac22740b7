"""The service's settings, each declared once: its YAML key, type, default, kind (the range and
what is allowed), doc, and — for a policy setting a revision may set itself — its Knative
annotation.

Everything else is generated from these declarations: the loader (`loading.py`: the YAML file,
the `LEADTIME_*` environment, per-service overrides, annotations), `leadtime config show`, the
README's settings table and the chart's `values.schema.json` (`reference.py`). A setting is an
attribute `Annotated[type, Kind, Field(alias=<YAML key>, description=<doc>)] = default`;
durations are float seconds in `*_s` attributes and written `30s`, `5m` in YAML.

Checks that involve several settings are each section's `__post_init__`, which raises a
`SettingError` naming the attributes; the loader reports it under the user's key path.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Annotated, Any

from pydantic import AfterValidator, ConfigDict, Field, with_config

from autoscaler.config.kinds import (
    Boolean,
    Duration,
    Integer,
    JsonSchema,
    Kind,
    Label,
    Names,
    Number,
    OneOf,
    Optional,
    PromQL,
    Refused,
    Subdomain,
    Text,
    Url,
)
from autoscaler.durations import format_duration
from autoscaler.errors import SettingError
from autoscaler.forecast_shell import REFIT_EVERY_S
from autoscaler.policies.kpa import (
    CONCURRENCY,
    RPS,
    TARGET_MIN,
    TARGET_UTILIZATION_DEFAULT,
    WINDOW_MAX_S,
    WINDOW_MIN_S,
    KpaConfig,
)
from autoscaler.policies.leadtime_config import LeadtimeConfig
from autoscaler.sharding import (
    DNS_LABEL,
    LEASE_DURATION_S,
    RENEW_DEADLINE_S,
    RETRY_PERIOD_S,
    default_identity,
)
from autoscaler.slo import SLO_TARGET_DEFAULT, SLO_TTFT_DEFAULT_S
from forecasting.registry import model_names

LIVE, DRY_RUN = "live", "dry-run"
"""Modes: scale for real, or decide and report without touching any replica count."""
MAX_BODY_BYTES_LIMIT = 10 * 1024 * 1024
AUTOSCALING = "autoscaling.knative.dev/"
LEADTIME = "leadtime.dev/"
ANNOTATION_PREFIXES = (AUTOSCALING, LEADTIME)
"""Knative's own annotations and Leadtime's, as a revision sets policy settings with them."""
SECTION = ConfigDict(extra="forbid")
"""Every section refuses unknown keys: a misspelt key is a setting silently not applied."""


@dataclass(frozen=True)
class Annotation:
    """The Knative annotation through which a revision sets this policy setting for itself."""

    name: str


def setting(doc: str, key: str | None = None) -> Any:
    """A setting's YAML key (default: the attribute's name) and doc."""
    return Field(alias=key, description=doc)


WORKLOAD_NAMES: list[str] = []
"""The built-in workloads `simulator.workloads` may name, as the simulator registers them
(`register_workloads`): the core imports no adapter, so it learns the names from it."""


def register_workloads(names: Iterable[str]) -> None:
    """Let `simulator.workloads` name these (the simulator calls this as it is imported)."""
    WORKLOAD_NAMES.extend(name for name in names if name not in WORKLOAD_NAMES)


_FILE = Optional(Text("a file path, or null"))
_IN_CLUSTER = Optional(Text("a file path, or null (in-cluster)"))
_PROMETHEUS_LABEL = Text("a Prometheus label name")


@with_config(SECTION)
@dataclass(frozen=True, slots=True)
class HttpConfig:
    """The service's HTTP listener."""

    host: Annotated[
        str,
        Text(),
        setting("Address of the API and status page; loopback by default, 0.0.0.0 exposes it."),
    ] = "127.0.0.1"
    port: Annotated[int, Integer(1, 65535), setting("Port of the API and status page.")] = 8080
    token: Annotated[
        str | None,
        Optional(Text("a non-empty string without spaces, or null (pause/resume disabled)")),
        setting("Bearer token for pause/resume; null disables them. Prefer token_file."),
    ] = field(default=None, repr=False)
    token_file: Annotated[
        str | None,
        _FILE,
        setting(
            "File holding the token (a mounted Secret), read at start and stripped; "
            "exclusive with token."
        ),
    ] = None
    max_body_bytes: Annotated[
        int,
        Integer(1, MAX_BODY_BYTES_LIMIT, " (10 MiB)"),
        setting("Largest request body accepted."),
    ] = 65536


@with_config(SECTION)
@dataclass(frozen=True, slots=True)
class ForecastingConfig:
    """Background forecasting: which model, on what grid, refitted how often, by how many
    processes."""

    model: Annotated[
        str,
        OneOf(model_names),
        setting("Model for every service; auto chooses per service by backtest."),
    ] = "auto"
    step_s: Annotated[float, Duration(1, 3600), setting("Forecast resolution.", "step")] = 10.0
    refit_every_s: Annotated[
        float,
        Duration(1),
        setting("Models are refitted in the background this often.", "refit_every"),
    ] = REFIT_EVERY_S
    min_history_s: Annotated[
        float,
        Duration(0),
        setting(
            "No forecast (the safety net decides alone) before this much history.", "min_history"
        ),
    ] = 60.0
    workers: Annotated[int, Integer(1, 64), setting("Processes fitting models.")] = 2


@with_config(SECTION)
@dataclass(frozen=True, slots=True)
class PolicyConfig:
    """The Leadtime policy's settings: `policy` holds every service's defaults, and
    `services.<namespace>/<name>` may override any of them for one service; a Knative revision
    may set those with an annotation. KPA settings keep Knative's names and meanings."""

    slo_ttft_s: Annotated[
        float,
        Duration(0, 600, low_open=True),
        setting("The objective: time to first token within this…", "slo_ttft"),
        Annotation(LEADTIME + "slo-ttft"),
    ] = SLO_TTFT_DEFAULT_S
    slo_target: Annotated[
        float,
        Number(0.5, 1, high_open=True),
        setting("…for this share of requests; Leadtime buys the fewest GPUs that meet it."),
        Annotation(LEADTIME + "slo-target"),
    ] = SLO_TARGET_DEFAULT
    horizon_s: Annotated[
        float,
        Duration(0, low_open=True),
        setting("How far past the lead time capacity is planned.", "horizon"),
        Annotation(LEADTIME + "horizon"),
    ] = 60.0
    cold_start_prior_s: Annotated[
        float,
        Duration(0, low_open=True),
        setting("Lead time assumed until a cold start has been measured.", "cold_start_prior"),
        Annotation(LEADTIME + "cold-start-prior"),
    ] = 60.0
    scale_down_delay_s: Annotated[
        float,
        Duration(0),
        setting("An unneeded replica is kept at least this long…", "scale_down_delay"),
        Annotation(AUTOSCALING + "scale-down-delay"),
    ] = 0.0
    hold_leads: Annotated[
        float,
        Number(0),
        setting("…ski-rental's break-even, in lead times, while the service's own gaps are few."),
        Annotation(LEADTIME + "hold-leads"),
    ] = 2.0
    metric: Annotated[
        str,
        OneOf((CONCURRENCY, RPS)),
        setting("Knative's metric: requests in flight (concurrency) or arrivals/s (rps)."),
        Annotation(AUTOSCALING + "metric"),
    ] = CONCURRENCY
    container_concurrency: Annotated[
        int,
        Integer(0, 1000, " (0 = unset, Knative's meaning)"),
        setting("Slots of one replica; 0 = unset (target 100, or learned)."),
    ] = 0
    target: Annotated[
        float | None,
        Optional(Number(TARGET_MIN, note=", or null (from the metric)")),
        setting("Per-replica target; null = the metric's default."),
        Annotation(AUTOSCALING + "target"),
    ] = None
    target_utilization: Annotated[
        float,
        Number(0.01, 1),
        setting("Accepted as Knative has it; Leadtime sizes by the SLO."),
    ] = TARGET_UTILIZATION_DEFAULT
    min_scale: Annotated[
        int,
        Integer(0),
        setting("Never fewer replicas."),
        Annotation(AUTOSCALING + "min-scale"),
    ] = 0
    max_scale: Annotated[
        int,
        Integer(0, note=" (0 = unbounded)"),
        setting("Never more replicas; 0 = unbounded, else >= min_scale."),
        Annotation(AUTOSCALING + "max-scale"),
    ] = 0
    stable_window_s: Annotated[
        float,
        Duration(WINDOW_MIN_S, WINDOW_MAX_S, whole=True),
        setting("The KPA's averaging window.", "stable_window"),
        Annotation(AUTOSCALING + "window"),
    ] = 60.0
    initial_scale: Annotated[
        int,
        Integer(0),
        setting("Replicas for a new service; 0 = start scaled to zero."),
        Annotation(AUTOSCALING + "initial-scale"),
    ] = 1
    paused: Annotated[
        bool,
        Boolean(),
        setting("Decide and report, but keep the replica count."),
        Annotation(LEADTIME + "paused"),
    ] = False

    def __post_init__(self) -> None:
        self.leadtime_config()

    def leadtime_config(self) -> LeadtimeConfig:
        """The policy's own config. Its constructors' refusals (min above max) come back as a
        `SettingError` naming this section's attributes."""
        if not float(self.stable_window_s).is_integer():
            raise SettingError("", ("stable_window_s",), "must be whole seconds")
        try:
            kpa = KpaConfig(
                metric=self.metric,
                container_concurrency=self.container_concurrency,
                target=self.target,
                target_utilization=self.target_utilization,
                stable_window_s=int(self.stable_window_s),
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
        except SettingError as error:
            raise SettingError("", error.keys, error.reason) from None


@with_config(SECTION)
@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """The embedded simulator the service runs when no Prometheus is configured. Every workload
    and every trace is one simulated service."""

    speed: Annotated[
        float, Number(0, 10000, low_open=True), setting("Virtual seconds per wall-clock second.")
    ] = 10.0
    workloads: Annotated[
        tuple[str, ...],
        Names(OneOf(WORKLOAD_NAMES), "a list of built-in workload names"),
        setting("Built-in synthetic workloads, one service each."),
    ] = ("llm-bursty", "web-diurnal")
    traces: Annotated[
        tuple[str, ...],
        Names(Text("a trace file path"), "a list of trace file paths"),
        setting("Trace files, one service each; opened by the simulator, not at load."),
    ] = ()
    rate_scale: Annotated[
        float,
        Number(0, 1000, low_open=True),
        setting("Multiplies every workload's request rate."),
    ] = 1.0
    cold_start_s: Annotated[
        float,
        Duration(0, low_open=True),
        setting("A simulated replica's cold start.", "cold_start"),
    ] = 60.0
    max_concurrency: Annotated[int, Integer(1), setting("Slots of a simulated replica.")] = 8
    gpu_pool: Annotated[
        int | None,
        Optional(Integer(1, note=", or null (unbounded)")),
        setting("GPUs available without provisioning; null = unbounded."),
    ] = None
    seed: Annotated[int, Integer(0), setting("Seed of the simulated traffic.")] = 0

    def __post_init__(self) -> None:
        if not self.workloads and not self.traces:
            raise SettingError(
                "simulator",
                (),
                f"needs at least one of workloads ({', '.join(WORKLOAD_NAMES)}) "
                "or traces (file paths)",
            )


@with_config(SECTION)
@dataclass(frozen=True, slots=True)
class PrometheusConfig:
    """Where live metrics come from; no URL means the embedded simulator."""

    url: Annotated[
        str | None,
        Optional(Url()),
        setting("Prometheus (or Thanos, Cortex, Mimir) base URL; null runs the simulator."),
    ] = None
    signals: Annotated[
        str,
        OneOf(("knative", "knative-otel", "vllm", "custom")),
        setting(
            "Built-in PromQL for the demand signals: knative (<= 1.18 names), knative-otel, "
            "vllm; or custom, with the query_* keys."
        ),
    ] = "knative"
    query_arrivals: Annotated[
        str | None,
        Optional(PromQL()),
        setting(
            "Custom PromQL for arrivals/s, by the two labels below; {window} is the rate window."
        ),
    ] = None
    query_concurrency: Annotated[
        str | None, Optional(PromQL()), setting("Custom PromQL for requests in flight.")
    ] = None
    query_queue: Annotated[
        str | None, Optional(PromQL()), setting("Custom PromQL for queued requests (optional).")
    ] = None
    namespace_label: Annotated[
        str, _PROMETHEUS_LABEL, setting("The label naming a series' namespace.")
    ] = "namespace"
    service_label: Annotated[
        str, _PROMETHEUS_LABEL, setting("The label naming a series' service.")
    ] = "service"
    rate_window_s: Annotated[
        float,
        Duration(1, 3600),
        setting("Window of the request-rate rate(): a few scrape intervals.", "rate_window"),
    ] = 30.0
    stale_after_s: Annotated[
        float,
        Duration(1, 3600),
        setting("A service whose newest sample is older is held, not scaled.", "stale_after"),
    ] = 60.0
    timeout_s: Annotated[
        float, Duration(0.1, 300), setting("Deadline of one query.", "timeout")
    ] = 5.0
    token_file: Annotated[
        str | None, _FILE, setting("File with a bearer token for Prometheus.")
    ] = None
    tenant: Annotated[
        str | None,
        Optional(Text("a tenant id, or null")),
        setting("X-Scope-OrgID header for Thanos, Cortex or Mimir."),
    ] = None
    verify_tls: Annotated[bool, Boolean(), setting("Check the server's certificate.")] = True

    def __post_init__(self) -> None:
        custom = (self.query_arrivals, self.query_concurrency, self.query_queue)
        if self.signals == "custom" and not (self.query_arrivals and self.query_concurrency):
            raise SettingError(
                "prometheus",
                ("query_arrivals", "query_concurrency"),
                "both needed with signals: custom",
            )
        if self.signals != "custom" and any(custom):
            raise SettingError(
                "prometheus",
                ("signals",),
                f"must be custom when query_* are given (it is {self.signals!r})",
            )


@with_config(SECTION)
@dataclass(frozen=True, slots=True)
class KnativeConfig:
    """Leadtime as a Knative PodAutoscaler class (needs `prometheus.url` for demand)."""

    enabled: Annotated[bool, Boolean(), setting("Reconcile PodAutoscalers of this class.")] = False
    class_name: Annotated[
        str,
        Text("a class name such as leadtime.dev"),
        setting(
            "The autoscaling.knative.dev/class value Leadtime reconciles; never *.knative.dev.",
            "class",
        ),
    ] = "leadtime.dev"
    kubeconfig: Annotated[
        str | None, _IN_CLUSTER, setting("null: the in-cluster service account.")
    ] = None
    scale_to_zero_grace_period_s: Annotated[
        float,
        Duration(0, 3600),
        setting("Knative's scale-to-zero grace period.", "scale_to_zero_grace_period"),
    ] = 30.0
    activator_probe_url: Annotated[
        str,
        Text("a URL template with {service}, {namespace} and {port}"),
        setting("Where a revision is probed before it is scaled from zero."),
    ] = "http://{service}.{namespace}.svc.cluster.local:{port}/healthz"
    probe_timeout_s: Annotated[
        float, Duration(0.1, 60), setting("Deadline of one probe.", "probe_timeout")
    ] = 2.0
    resync_s: Annotated[
        float, Duration(1, 3600), setting("Full re-list of PodAutoscalers.", "resync")
    ] = 30.0
    query_namespaces: Annotated[
        tuple[str, ...],
        Names(Text("a namespace name, or *"), "a list of namespace names, or [*]"),
        setting(
            "Namespaces whose revisions may bring their own PromQL (leadtime.dev/query*); "
            "empty: none, *: every namespace."
        ),
    ] = ()
    query_namespace_label: Annotated[
        str, _PROMETHEUS_LABEL, setting("The label naming a series' namespace in those queries.")
    ] = "namespace"
    query_budget_s: Annotated[
        float,
        Duration(0.1, 60),
        setting(
            "How long one revision's own queries may take; past it the revision keeps its "
            "last answer and nothing else waits.",
            "query_budget",
        ),
    ] = 2.0

    def __post_init__(self) -> None:
        if self.class_name.endswith(".knative.dev"):
            raise SettingError(
                "knative",
                ("class",),
                "must not end in .knative.dev (Knative's webhook rejects such classes but its "
                f"own), got {self.class_name!r}",
            )


@with_config(SECTION)
@dataclass(frozen=True, slots=True)
class HpaConfig:
    """Leadtime without Knative: floors on opted-in HPAs, plain workloads through /scale, and
    the external metrics API an HPA can scale on."""

    enabled: Annotated[bool, Boolean(), setting("Scale opted-in HPAs and workloads.")] = False
    kubeconfig: Annotated[
        str | None, _IN_CLUSTER, setting("null: the in-cluster service account.")
    ] = None
    metrics_api_port: Annotated[
        int,
        Integer(0, 65535, " (0 = not served)"),
        setting("TLS port of external.metrics.k8s.io for the aggregation layer; 0 = not served."),
    ] = 0
    metrics_api_host: Annotated[
        str,
        Text(),
        setting(
            "The API server must reach it, so not loopback by default (TLS, client certificates)."
        ),
    ] = "0.0.0.0"
    client_names: Annotated[
        tuple[str, ...],
        Names(Text("a certificate common name"), "a list of certificate common names"),
        setting(
            "With client_ca_file: the common names the front proxy's certificate may carry; "
            "empty: any certificate the CA signed."
        ),
    ] = ("front-proxy-client",)
    tls_cert_file: Annotated[str | None, _FILE, setting("The metrics API's certificate.")] = None
    tls_key_file: Annotated[str | None, _FILE, setting("Its private key.")] = None
    client_ca_file: Annotated[
        str | None,
        _FILE,
        setting(
            "The aggregation layer's client CA; null: read it, and the allowed names, from "
            "kube-system/extension-apiserver-authentication at start."
        ),
    ] = None

    def __post_init__(self) -> None:
        if self.metrics_api_port and not (self.tls_cert_file and self.tls_key_file):
            raise SettingError(
                "hpa",
                ("tls_cert_file", "tls_key_file"),
                "both needed when hpa.metrics_api_port is set (the aggregation layer speaks "
                "TLS only)",
            )


@with_config(SECTION)
@dataclass(frozen=True, slots=True)
class LeaderElectionConfig:
    """Several replicas sharing the services: each service's bucket is a Kubernetes Lease in
    `namespace`, and a replica acts only on the services of the buckets it holds (as Knative's
    bucket leases; `autoscaler/sharding.py` has the rules)."""

    enabled: Annotated[bool, Boolean(), setting("Share the services among replicas.")] = False
    namespace: Annotated[
        str | None,
        Optional(Label(63)),
        setting("Where the Leases live; null: the POD_NAMESPACE variable, else leadtime."),
    ] = None
    name_prefix: Annotated[
        str,
        Label(40),
        setting(
            "Lease names: <prefix>.00-of-04 per bucket, <prefix>.member.<identity> per replica."
        ),
    ] = "leadtime"
    buckets: Annotated[
        int,
        Integer(1, 100),
        setting(
            "1: one active replica, the others on standby; at least the number of replicas "
            "for them to share the work."
        ),
    ] = 1
    lease_duration_s: Annotated[
        float,
        Duration(1, 3600, whole=True),
        setting("client-go's and Knative's lease duration.", "lease_duration"),
    ] = LEASE_DURATION_S
    renew_deadline_s: Annotated[
        float,
        Duration(0, 3600, low_open=True),
        setting("A holder that cannot renew within this lets go.", "renew_deadline"),
    ] = RENEW_DEADLINE_S
    retry_period_s: Annotated[
        float,
        Duration(0, 3600, low_open=True),
        setting("How often Leases are tried and renewed.", "retry_period"),
    ] = RETRY_PERIOD_S
    identity: Annotated[
        str | None,
        Optional(Subdomain()),
        setting("This replica's holder identity; null: the POD_NAME variable, else the host name."),
    ] = None

    def __post_init__(self) -> None:
        if not self.retry_period_s < self.renew_deadline_s < self.lease_duration_s:
            raise SettingError(
                "leader_election",
                ("renew_deadline",),
                "needs retry_period < renew_deadline < lease_duration, got "
                f"{format_duration(self.retry_period_s)}, "
                f"{format_duration(self.renew_deadline_s)}, "
                f"{format_duration(self.lease_duration_s)}",
            )

    def resolved_namespace(self, env: Mapping[str, str]) -> str:
        return self.namespace or env.get("POD_NAMESPACE", "").strip() or "leadtime"

    def resolved_identity(self, env: Mapping[str, str]) -> str:
        return self.identity or default_identity(env)


@dataclass(frozen=True)
class ServiceKey(Kind):
    """`namespace/name`, both DNS-1123 labels: the key of a per-service override."""

    text = True

    @property
    def allowed(self) -> str:
        return (
            "keys namespace/name, both DNS-1123 labels (lowercase letters, digits and '-', "
            "starting and ending with a letter or digit, at most 63 characters)"
        )

    def check(self, value: Any) -> str:
        if not isinstance(value, str) or value.count("/") != 1:
            raise Refused
        for part in value.split("/"):
            Label(63).check(part)
        return value

    def schema(self) -> JsonSchema:
        return {"type": "string", "pattern": f"^{DNS_LABEL}/{DNS_LABEL}$"}


def _no_services() -> Mapping[str, PolicyConfig]:
    return MappingProxyType({})


def _read_only(services: Mapping[str, PolicyConfig]) -> Mapping[str, PolicyConfig]:
    return MappingProxyType(dict(services))


@with_config(SECTION)
@dataclass(frozen=True, slots=True)
class Config:
    """Everything the service reads at start."""

    mode: Annotated[
        str,
        OneOf((LIVE, DRY_RUN)),
        setting("live: scale for real. dry-run: decide and report, change no replica count."),
    ] = LIVE
    tick_s: Annotated[
        float,
        Duration(0.1, 60),
        setting("How often the control loop decides, for every service.", "tick"),
    ] = 2.0
    http: HttpConfig = field(default_factory=HttpConfig)
    forecasting: ForecastingConfig = field(default_factory=ForecastingConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    services: Annotated[
        Mapping[Annotated[str, ServiceKey()], PolicyConfig],
        AfterValidator(_read_only),
        setting("namespace/name: that service's policy overrides (the file only)."),
    ] = field(default_factory=_no_services)
    """`namespace/name` → that service's full policy (the defaults with its overrides)."""
    simulator: SimulatorConfig = field(default_factory=SimulatorConfig)
    prometheus: PrometheusConfig = field(default_factory=PrometheusConfig)
    knative: KnativeConfig = field(default_factory=KnativeConfig)
    hpa: HpaConfig = field(default_factory=HpaConfig)
    leader_election: LeaderElectionConfig = field(default_factory=LeaderElectionConfig)

    def __post_init__(self) -> None:
        if self.leader_election.enabled and self.hpa.metrics_api_port:
            raise SettingError(
                "",
                ("leader_election.enabled",),
                "cannot be true while hpa.metrics_api_port is set — the API server sends each "
                "external-metrics request to any replica, and a replica knows only the services "
                "of its own buckets",
            )

    def policy_for(self, namespace: str, name: str) -> PolicyConfig:
        """The service's override if it has one, else the defaults."""
        return self.services.get(f"{namespace}/{name}", self.policy)

    @property
    def embedded(self) -> bool:
        """True when no Prometheus is configured: the service then runs the simulator."""
        return self.prometheus.url is None
