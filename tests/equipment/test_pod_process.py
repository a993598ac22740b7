"""The kubelet stand-in running an opted-in pod as a process (`tests/cluster/pod_process.py`):
its command, environment and volumes as a container sees them, its probes and restarts, and a
clear failure for what it does not emulate (marker `kubernetes`)."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import pytest
from kubernetes_asyncio import client

from tests.cluster.fixtures import PYTHON_IMAGE, ROOT, service_account_token, stand_in_images
from tests.cluster.objects import eventually
from tests.cluster.pod_process import RUN_PROCESS_ANNOTATION, expand, image_from_dockerfile
from tests.conftest import free_port

SHOW = """
import json, os, pathlib, sys
def read(path):
    p = pathlib.Path(path)
    return p.read_text() if p.exists() else None
pathlib.Path("/tmp/scratch").write_text("mine")
print(json.dumps({
    "argv": sys.argv[1:],
    "env": {k: os.environ.get(k) for k in (
        "GREETING", "POD_NAME", "POD_NAMESPACE", "FROM_MAP", "FROM_SECRET", "COMBINED",
        "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "HOME")},
    "config": read("/etc/leadtime-demo/greeting"),
    "nested": read("/etc/leadtime-demo/sub/item"),
    "secret": read("/var/run/leadtime-demo/password"),
    "token": bool(read("/var/run/secrets/kubernetes.io/serviceaccount/token")),
    "namespace": read("/var/run/secrets/kubernetes.io/serviceaccount/namespace"),
    "scratch": read("/tmp/scratch"),
    "cwd": os.getcwd(),
}), flush=True)
from http.server import HTTPServer, SimpleHTTPRequestHandler
HTTPServer(("0.0.0.0", int(os.environ["PORT"])), SimpleHTTPRequestHandler).serve_forever()
"""

FLAKY = """
import http.server, os, time
started = time.monotonic()
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        alive = time.monotonic() - started < 3
        ready = time.monotonic() - started > 1
        ok = {"/healthz": alive, "/readyz": ready}.get(self.path, False)
        self.send_response(200 if ok else 500)
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.HTTPServer(("0.0.0.0", int(os.environ["PORT"])), Handler).serve_forever()
"""


def pod(name: str, pool: str, script: str, port: int, **container: object) -> dict:
    return {
        "metadata": {"name": name, "annotations": {RUN_PROCESS_ANNOTATION: "true"}},
        "spec": {
            "nodeSelector": {"leadtime.test/pool": pool},
            "containers": [
                {
                    "name": "main",
                    "image": PYTHON_IMAGE,
                    "args": ["-c", script],
                    "env": [{"name": "PORT", "value": str(port)}],
                    "ports": [{"name": "http", "containerPort": port}],
                    **container,
                }
            ],
        },
    }


async def create_pod(api: client.ApiClient, namespace: str, manifest: dict) -> None:
    """Create a pod once its namespace's default ServiceAccount has its token: until then
    admission refuses pods (a ReplicaSet would retry; a test creating a pod must wait)."""

    async def token() -> str | None:
        try:
            return await service_account_token(api, namespace, "default")
        except client.ApiException as error:
            if error.status == 404:  # the ServiceAccount itself is not there yet
                return None
            raise

    await eventually(token, what="the default ServiceAccount's token")
    await client.CoreV1Api(api).create_namespaced_pod(namespace, manifest)


async def pod_status(api: client.ApiClient, namespace: str, name: str) -> client.V1PodStatus:
    return (await client.CoreV1Api(api).read_namespaced_pod(name, namespace)).status


def test_the_image_is_the_dockerfiles_with_the_installed_programs():
    image = image_from_dockerfile(ROOT / "Dockerfile", Path("/here/bin"))
    assert (image.entrypoint, image.cmd) == (("leadtime",), ("run",))
    assert image.env["PATH"].startswith("/here/bin:/usr/local/sbin:")
    assert image.env["PYTHONUNBUFFERED"] == "1"
    assert stand_in_images()[PYTHON_IMAGE].entrypoint == (sys.executable,)


def test_variable_references_expand_as_kubernetes_expands_them():
    env = {"A": "1", "B": "two"}
    assert expand("$(A)-$(B)", env) == "1-two"
    assert expand("$(MISSING) $$(A) $$", env) == "$(MISSING) $(A) $"


@pytest.mark.kubernetes
async def test_a_process_pod_sees_its_command_environment_and_volumes_where_a_container_would(
    kube, namespace, kubelet, gpu_pool
):
    core = client.CoreV1Api(kube)
    await core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "demo"}, "data": {"greeting": "hello", "item": "deep"}}
    )
    secret = base64.b64encode(b"p4ss").decode()
    await core.create_namespaced_secret(
        namespace, {"metadata": {"name": "demo"}, "data": {"password": secret}}
    )
    port = free_port()
    env = [
        {"name": "PORT", "value": str(port)},
        {"name": "GREETING", "value": "hi"},
        {"name": "COMBINED", "value": "$(GREETING) there"},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "FROM_MAP", "valueFrom": {"configMapKeyRef": {"name": "demo", "key": "item"}}},
        {"name": "FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": "demo", "key": "password"}}},
    ]
    manifest = pod(
        "show",
        gpu_pool(gpus=0),
        SHOW,
        port,
        args=["-c", SHOW, "$(GREETING)", "$(UNSET)"],
        env=env,
        workingDir="/tmp",
        readinessProbe={"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
        volumeMounts=[
            {"name": "config", "mountPath": "/etc/leadtime-demo", "readOnly": True},
            {"name": "secret", "mountPath": "/var/run/leadtime-demo"},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    )
    manifest["spec"]["volumes"] = [
        {
            "name": "config",
            "configMap": {
                "name": "demo",
                "items": [
                    {"key": "greeting", "path": "greeting"},
                    {"key": "item", "path": "sub/item"},
                ],
            },
        },
        {"name": "secret", "secret": {"secretName": "demo"}},
        {"name": "tmp", "emptyDir": {}},
    ]
    await create_pod(kube, namespace, manifest)

    async def ready():
        status = await pod_status(kube, namespace, "show")
        return any(c.type == "Ready" and c.status == "True" for c in status.conditions or [])

    await eventually(ready, timeout_s=30, what="the process pod Ready through its probe")
    shown = json.loads(kubelet.log_of(namespace, "show").splitlines()[0])
    assert shown["argv"] == ["hi", "$(UNSET)"]
    assert shown["env"]["GREETING"] == "hi" and shown["env"]["COMBINED"] == "hi there"
    assert (shown["env"]["POD_NAME"], shown["env"]["POD_NAMESPACE"]) == ("show", namespace)
    assert (shown["env"]["FROM_MAP"], shown["env"]["FROM_SECRET"]) == ("deep", "p4ss")
    assert shown["env"]["KUBERNETES_SERVICE_PORT"] and shown["env"]["HOME"] == "/"
    assert (shown["config"], shown["nested"], shown["secret"]) == ("hello", "deep", "p4ss")
    assert shown["token"] and shown["namespace"] == namespace  # the ServiceAccount's volume
    assert shown["scratch"] == "mine" and shown["cwd"] == "/tmp"
    # the mounts were the pod's own: nothing of them on this machine
    assert not Path("/etc/leadtime-demo").exists() and not Path("/tmp/scratch").exists()
    status = await pod_status(kube, namespace, "show")
    assert status.pod_ip == status.host_ip and not status.pod_ip.startswith("127.")


@pytest.mark.kubernetes
async def test_readiness_gates_ready_and_a_failing_liveness_probe_restarts_the_container(
    kube, namespace, kubelet, gpu_pool
):
    port = free_port()
    probe = {"periodSeconds": 1, "failureThreshold": 1}
    manifest = pod(
        "flaky",
        gpu_pool(gpus=0),
        FLAKY,
        port,
        readinessProbe={"httpGet": {"path": "/readyz", "port": "http"}, **probe},
        livenessProbe={"httpGet": {"path": "/healthz", "port": port}, **probe},
    )
    await create_pod(kube, namespace, manifest)

    async def restarted_ready():
        status = await pod_status(kube, namespace, "flaky")
        container = (status.container_statuses or [None])[0]
        return container and container.restart_count >= 1 and container.ready and container

    container = await eventually(restarted_ready, timeout_s=30, what="a restart, then Ready")
    assert container.last_state.terminated.exit_code != 0  # killed, not exited
    assert container.state.running is not None


@pytest.mark.kubernetes
async def test_what_the_stand_in_does_not_emulate_fails_the_pod_and_says_what(
    kube, namespace, kubelet, gpu_pool
):
    manifest = pod(
        "unsupported",
        gpu_pool(gpus=0),
        "pass",
        free_port(),
        readinessProbe={"exec": {"command": ["true"]}},
    )
    await create_pod(kube, namespace, manifest)

    async def failed():
        status = await pod_status(kube, namespace, "unsupported")
        return status.phase == "Failed" and status

    status = await eventually(failed, what="the pod Failed")
    assert status.message == "not emulated by the kubelet stand-in: exec probes"

    foreign = pod("foreign", gpu_pool(gpus=0), "pass", free_port())
    foreign["spec"]["containers"][0]["image"] = "example.invalid/other:1"
    await create_pod(kube, namespace, foreign)

    async def refused():
        status = await pod_status(kube, namespace, "foreign")
        return status.phase == "Failed" and status.message

    message = await eventually(refused, what="the pod of an unknown image Failed")
    assert "image example.invalid/other:1 is not one the kubelet stand-in runs" in message
