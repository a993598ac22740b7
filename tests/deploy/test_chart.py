"""The Helm chart, linted and rendered by real Helm (helm-python-sdk: Helm's own Go SDK), every
manifest validated against the Kubernetes JSON schemas, and what the chart promises checked:
least-privilege RBAC equal to the adapters' own rules, the restricted security context, a
configuration Leadtime accepts, a dashboard over metrics Leadtime exports; and the image's
Dockerfile and pins (marker `helm`)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from adapters.hpa import rbac as hpa_rbac
from adapters.knative import rbac as knative_rbac
from adapters.kubernetes import lease
from autoscaler.config import config_from_mapping
from tests.helpers.loop import make_loop, two_services

pytestmark = [pytest.mark.helm]

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "leadtime"
KUBERNETES = "1.30.0"
NOT_BUILT_IN = {"ServiceMonitor"}  # the Prometheus operator's CRD; no Kubernetes schema
CLIENT_CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"

COMBINATIONS = {
    "default (Knative)": {},
    "HPA only": {"adapters": {"knative": {"enabled": False}, "hpa": {"enabled": True}}},
    "HPA with the external metrics API": {
        "adapters": {
            "knative": {"enabled": False},
            "hpa": {"enabled": True, "metricsApi": {"enabled": True, "clientCA": CLIENT_CA}},
        }
    },
    "both, token, ServiceMonitor": {
        "adapters": {
            "hpa": {
                "enabled": True,
                "metricsApi": {"enabled": True, "existingSecret": "my-tls", "caBundle": "Y2E="},
            }
        },
        "api": {"tokenSecret": "leadtime-api"},
        "serviceMonitor": {"enabled": True},
        "config": {"policy": {"slo_target": 0.95}},
    },
    "three replicas sharing the services": {
        "replicaCount": 3,
        "leaderElection": {"enabled": True, "buckets": 6},
        "adapters": {"hpa": {"enabled": True}},
    },
}


def render(values: dict) -> list[dict]:
    with helm.Chart.load(str(CHART)) as chart:
        files = chart.render(values, name="leadtime", namespace="ops")
    return [
        doc
        for name, text in sorted(files.items())
        if name.endswith(".yaml")
        for doc in yaml.safe_load_all(text)
        if doc
    ]


def of_kind(documents: list[dict], kind: str) -> list[dict]:
    return [d for d in documents if d["kind"] == kind]


def test_helm_lint_strict_finds_nothing():
    result = helm.lint(str(CHART), strict=True)
    assert result["errors"] == []
    assert [m for m in result["messages"] if m["severity"] >= 2] == []  # no warnings either


@pytest.mark.parametrize("case", list(COMBINATIONS))
def test_every_rendered_manifest_is_valid_kubernetes(case):
    documents = render(COMBINATIONS[case])
    assert of_kind(documents, "Deployment") and of_kind(documents, "ConfigMap")
    for document in documents:
        if document["kind"] in NOT_BUILT_IN:
            continue
        kubernetes_validate.validate(document, KUBERNETES, strict=True)


@pytest.mark.parametrize("case", list(COMBINATIONS))
def test_rbac_is_exactly_what_the_enabled_adapters_use(case):
    values = COMBINATIONS[case]
    adapters = values.get("adapters", {})
    knative = adapters.get("knative", {}).get("enabled", True)
    hpa = adapters.get("hpa", {}).get("enabled", False)
    documents = render(values)
    roles = {d["metadata"]["name"]: d["rules"] for d in of_kind(documents, "ClusterRole")}
    bindings = of_kind(documents, "ClusterRoleBinding")
    ours = {
        b["roleRef"]["name"]
        for b in bindings
        if b["subjects"][0] == {"kind": "ServiceAccount", "name": "leadtime", "namespace": "ops"}
    }
    assert ("leadtime-knative" in ours) == knative and ("leadtime-hpa" in ours) == hpa
    if knative:
        assert roles["leadtime-knative"] == knative_rbac.RULES
    if hpa:
        assert roles["leadtime-hpa"] == hpa_rbac.RULES
    for name in ours:
        for rule in roles[name]:
            assert "*" not in rule["verbs"] and "*" not in rule["resources"], (name, rule)
    if "leadtime-external-metrics-reader" in roles:
        assert roles["leadtime-external-metrics-reader"] == hpa_rbac.EXTERNAL_METRICS_READER
        assert roles["leadtime-metrics-api"] == hpa_rbac.METRICS_API_RULES
    sharded = values.get("leaderElection", {}).get("enabled", False)
    namespaced = {d["metadata"]["name"]: d for d in of_kind(documents, "Role")}
    assert set(namespaced) == ({"leadtime-leader-election"} if sharded else set())
    if sharded:  # the Leases, in the release's namespace only
        role = namespaced["leadtime-leader-election"]
        assert role["metadata"]["namespace"] == "ops" and role["rules"] == lease.RULES
        binding = of_kind(documents, "RoleBinding")[0]
        assert binding["roleRef"]["name"] == "leadtime-leader-election"
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "leadtime", "namespace": "ops"}
        ]


def test_the_pod_meets_the_restricted_pod_security_standard():
    deployment = of_kind(render({}), "Deployment")[0]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert not pod.get("hostNetwork") and not pod.get("hostPID")
    assert all("hostPath" not in volume for volume in pod["volumes"])
    for container in pod["containers"]:
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context["capabilities"] == {"drop": ["ALL"]}
        probes = {
            container["readinessProbe"]["httpGet"]["path"],
            container["livenessProbe"]["httpGet"]["path"],
        }
        assert probes == {"/readyz", "/healthz"}
        assert container["resources"]["requests"] and container["resources"]["limits"]


@pytest.mark.parametrize("case", list(COMBINATIONS))
def test_the_configuration_the_chart_writes_is_one_leadtime_accepts(case, tmp_path):
    documents = render(COMBINATIONS[case])
    configmap = next(
        d for d in of_kind(documents, "ConfigMap") if "leadtime.yaml" in d.get("data", {})
    )
    data = yaml.safe_load(configmap["data"]["leadtime.yaml"])
    token = data.get("http", {}).get("token_file")
    if token:  # the mounted Secret, stood in for by a file here
        (tmp_path / "token").write_text("s3cret\n")
        data["http"]["token_file"] = str(tmp_path / "token")
    config = config_from_mapping(data)
    assert config.http.host == "0.0.0.0" and config.mode == "live"
    assert (config.http.token is not None) == ("tokenSecret" in COMBINATIONS[case].get("api", {}))
    if "config" in COMBINATIONS[case]:
        assert config.policy.slo_target == 0.95  # the user's own settings reach Leadtime
    election = COMBINATIONS[case].get("leaderElection", {})
    assert config.leader_election.enabled == election.get("enabled", False)
    if election:
        assert config.leader_election.buckets == election["buckets"]
        assert (
            config.leader_election.lease_duration_s,
            config.leader_election.renew_deadline_s,
            config.leader_election.retry_period_s,
        ) == (15.0, 10.0, 2.0)
        deployment = of_kind(documents, "Deployment")[0]
        assert deployment["spec"]["replicas"] == COMBINATIONS[case]["replicaCount"]
        env = {
            e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"]
            for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        }
        assert env == {"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace"}
        # Identity and namespace come from the downward API, resolved as Leadtime does.
        pod_env = {"POD_NAME": "leadtime-7d4b9-x2x", "POD_NAMESPACE": "ops"}
        assert config.leader_election.resolved_identity(pod_env) == "leadtime-7d4b9-x2x"
        assert config.leader_election.resolved_namespace(pod_env) == "ops"


def test_pause_and_resume_stay_disabled_without_a_token_secret():
    documents = render({})
    configmap = next(
        d for d in of_kind(documents, "ConfigMap") if d["metadata"]["name"] == "leadtime"
    )
    data = yaml.safe_load(configmap["data"]["leadtime.yaml"])
    assert "token" not in data["http"] and "token_file" not in data["http"]
    assert config_from_mapping(data).http.token is None


def test_the_values_schema_refuses_what_leadtime_would_refuse():
    """`config` is checked against the settings' own generated schema, so a bad value fails
    `helm install` rather than the pod's start."""
    with helm.Chart.load(str(CHART)) as chart:
        for bad, where in (
            ({"adapters": {"knative": {"class": "gpu.knative.dev"}}}, "/adapters/knative/class"),
            ({"replicaCount": 3}, "/replicaCount"),
            ({"prometheus": {"url": "prometheus:9090"}}, "/prometheus/url"),
            ({"replicas": 1}, "additional properties 'replicas'"),
            ({"leaderElection": {"buckets": 0}}, "/leaderElection/buckets"),
            ({"config": {"policy": {"slo_target": 1.5}}}, "/config/policy/slo_target"),
            ({"config": {"services": {"Team/chat": {}}}}, "/config/services"),
            ({"config": {"polcy": {}}}, "additional properties 'polcy'"),
        ):
            with pytest.raises(helm.HelmError) as refused:
                chart.render(bad, name="leadtime", namespace="ops")
            assert where in str(refused.value)


def test_the_dashboard_parses_and_queries_only_metrics_leadtime_exports():
    documents = render({})
    holder = next(
        d for d in of_kind(documents, "ConfigMap") if d["metadata"]["name"] == "leadtime-dashboard"
    )
    board = json.loads(holder["data"]["leadtime.json"])
    loop, _ = make_loop(two_services(), warmup_s=0.0)  # the service's own registry, as scraped
    exported = set()
    for family in loop.telemetry.registry.collect():
        exported.add(family.name)
        exported |= {family.name + "_total"} if family.type == "counter" else set()
        if family.type == "histogram":
            exported |= {family.name + suffix for suffix in ("_bucket", "_sum", "_count")}
    queries = [t["expr"] for panel in board["panels"] for t in panel["targets"]]
    assert len(queries) >= 8
    for query in queries:
        for name in re.findall(r"leadtime_[a-z_]+", query):
            assert name in exported, f"{name} in {query!r} is not a metric Leadtime exports"
    assert holder["metadata"]["labels"]["grafana_dashboard"] == "1"  # the sidecar's label


def test_the_image_is_multi_stage_non_root_and_pinned():
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)", dockerfile, re.M)
    assert len(stages) >= 2
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)", dockerfile, re.M)[1]
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", base)  # an exact version
    final = dockerfile[dockerfile.rindex("\nFROM") :]
    assert re.search(r"^USER\s+\d+:\d+$", final, re.M)  # numeric: runAsNonRoot can check it
    assert "apt-get install" not in final and "gcc" not in final
    assert 'ENTRYPOINT ["leadtime"]' in final and 'CMD ["run"]' in final
    lock = (ROOT / "requirements.lock").read_text().splitlines()
    text = "\n".join(line for line in lock if line.strip() and not line.startswith("#"))
    entries = re.split(r"\n(?=[A-Za-z])", text)
    pins = [entry.split()[0] for entry in entries]
    assert pins and all(re.fullmatch(r"[A-Za-z0-9_.\-]+==[^=\s]+", pin) for pin in pins)
    for entry in entries:  # every pin with the hashes pip checks the download against
        assert re.search(r"--hash=sha256:[0-9a-f]{64}", entry), entry.split()[0]
    pinned = {re.split("==", line)[0].lower().replace("_", "-") for line in pins}
    project = (ROOT / "pyproject.toml").read_text()
    runtime = re.search(r"dependencies = \[(.*?)\]", project, re.S)[1]
    for requirement in re.findall(r'"([A-Za-z0-9_.\-]+)', runtime):
        assert requirement.lower().replace("_", "-") in pinned, requirement


@pytest.mark.security
def test_the_pod_keeps_its_secrets_and_its_resources_bounded():
    documents = render({"api": {"tokenSecret": "leadtime-api"}})
    pod = of_kind(documents, "Deployment")[0]["spec"]["template"]["spec"]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert volumes["api-token"]["secret"]["defaultMode"] == 0o400
    assert volumes["tmp"]["emptyDir"]["sizeLimit"] == "256Mi"
    limits = pod["containers"][0]["resources"]["limits"]
    assert limits["cpu"] and limits["memory"]
    digest = "sha256:" + "ab" * 32
    pinned = of_kind(render({"image": {"digest": digest}}), "Deployment")[0]
    assert pinned["spec"]["template"]["spec"]["containers"][0]["image"].endswith("@" + digest)
    with helm.Chart.load(str(CHART)) as chart, pytest.raises(helm.HelmError) as refused:
        chart.render({"config": {"http": {"token": "s3cret"}}}, name="leadtime", namespace="ops")
    assert "api.tokenSecret" in str(refused.value)


def test_several_replicas_need_leader_election_and_never_serve_the_metrics_api():
    with helm.Chart.load(str(CHART)) as chart:
        for values in (
            {"replicaCount": 2},
            {"replicaCount": 2, "leaderElection": {"enabled": False}},
        ):
            with pytest.raises(helm.HelmError) as refused:
                chart.render(values, name="leadtime", namespace="ops")
            assert "/replicaCount" in str(refused.value)
        metrics_api = {
            "adapters": {"hpa": {"enabled": True, "metricsApi": {"enabled": True}}},
            "leaderElection": {"enabled": True},
        }
        with pytest.raises(helm.HelmError) as refused:
            chart.render(metrics_api, name="leadtime", namespace="ops")
        assert "leaderElection.enabled cannot go with adapters.hpa.metricsApi" in str(refused.value)
    # Leader election with a single replica is allowed (a standby can be added later).
    assert of_kind(render({"leaderElection": {"enabled": True}}), "Role")


def test_a_single_decider_is_replaced_never_doubled():
    """Without leader election a rolling update would run two deciders for a while, both
    scaling every service: the old pod goes first. With it, the Leases keep replicas apart."""
    (single,) = of_kind(render({}), "Deployment")
    assert single["spec"]["strategy"] == {"type": "Recreate"}
    sharded = render({"replicaCount": 2, "leaderElection": {"enabled": True, "buckets": 2}})
    (rolling,) = of_kind(sharded, "Deployment")
    assert "strategy" not in rolling["spec"]  # Kubernetes' RollingUpdate


def test_the_image_holds_every_package_the_project_installs():
    """The Dockerfile copies each top-level package pyproject.toml installs (the command line
    included), so the image's `leadtime` finds what the installed one does."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    project = (ROOT / "pyproject.toml").read_text()
    include = re.search(r"include = \[(.*?)\]", project)[1]
    packages = [name.strip('"* ') for name in include.split(",")]
    assert "leadtime" in packages
    for package in packages:
        assert re.search(rf"^COPY {package} /src/{package}$", dockerfile, re.M), package
