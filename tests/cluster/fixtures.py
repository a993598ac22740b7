"""pytest fixtures for the real control plane (registered by tests/conftest.py).

`control_plane` (session): etcd + kube-apiserver + controller manager + scheduler, with Knative's
CRDs from ../shared/reference/knative-crds/ installed. A missing build or a failed start is a
test failure naming the command that sets it up (`scripts/setup`, which `scripts/test` runs).
`kubelet` (session): the stand-in that runs pods on fake GPU nodes.
`kube_configuration`: a kubernetes_asyncio Configuration for the admin; `kube`: an ApiClient
on the test's own event loop; `namespace`: a fresh namespace per test.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import subprocess
import sys
import sysconfig
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client

from tests.cluster.control_plane import (
    BUILD_COMMAND,
    ControlPlane,
    ControlPlaneError,
    find_binaries,
)
from tests.cluster.knative import Activator, serve_sks_status
from tests.cluster.kubelet import FakeKubelet
from tests.cluster.objects import eventually
from tests.cluster.pod_process import Image, image_from_dockerfile

ROOT = Path(__file__).resolve().parents[2]
KNATIVE_CRDS = ROOT.parent / "shared" / "reference" / "knative-crds"
KNATIVE_CRD_FILES = (
    "podautoscaler.yaml",
    "serverlessservice.yaml",
    "metric.yaml",
    "revision.yaml",
    "service.yaml",
)


def client_configuration(plane: ControlPlane, token: str | None = None) -> client.Configuration:
    """How kubernetes_asyncio talks to the test API server with a bearer token."""
    configuration = client.Configuration(
        host=plane.url,
        api_key={"BearerToken": token or plane.admin_token},
        api_key_prefix={"BearerToken": "Bearer"},
    )
    configuration.ssl_ca_cert = str(plane.ca_file)
    return configuration


def without_empty_string_defaults(node: object) -> object:
    """The schema minus `default: ""` on strings. Kubernetes 1.20 reads an empty-string default
    as null and rejects the CRD ("in body must be of type string: \"null\""); later versions
    accept it. Only the Revision and Service CRDs have such defaults (on core/v1 name fields);
    the PodAutoscaler, ServerlessService and Metric CRDs go in byte for byte unchanged. A list-map
    key must then be required instead (1.20 insists on one or the other)."""
    if isinstance(node, dict):
        out = {
            k: without_empty_string_defaults(v)
            for k, v in node.items()
            if not (k == "default" and v == "" and node.get("type") == "string")
        }
        keys = out.get("x-kubernetes-list-map-keys")
        items = out.get("items")
        if isinstance(keys, list) and isinstance(items, dict):
            items["required"] = sorted(set(items.get("required", [])) | set(keys))
        return out
    if isinstance(node, list):
        return [without_empty_string_defaults(v) for v in node]
    return node


async def install_crds(
    configuration: client.Configuration, folder: Path = KNATIVE_CRDS
) -> list[str]:
    """Create Knative's CRDs and wait until the API server serves them."""
    documents: list[Any] = []
    for name in KNATIVE_CRD_FILES:
        documents += [
            without_empty_string_defaults(d)
            for d in yaml.safe_load_all((folder / name).read_text())
            if d
        ]
    async with client.ApiClient(configuration) as api:
        extensions = client.ApiextensionsV1Api(api)
        for document in documents:
            try:
                await extensions.create_custom_resource_definition(document)
            except client.ApiException as error:
                if error.status != 409:
                    raise
        names = [d["metadata"]["name"] for d in documents]
        for name in names:
            for _ in range(100):
                crd = await extensions.read_custom_resource_definition(name)
                if any(
                    c.type == "Established" and c.status == "True"
                    for c in crd.status.conditions or []
                ):
                    break
                await asyncio.sleep(0.1)
            else:
                raise ControlPlaneError(f"CRD {name} not established")
    return names


async def service_account_token(api: client.ApiClient, namespace: str, name: str) -> str | None:
    """The token Kubernetes 1.20's token controller put in the ServiceAccount's secret (None
    until it has)."""
    core = client.CoreV1Api(api)
    account = await core.read_namespaced_service_account(name, namespace)
    if not account.secrets:
        return None
    secret = await core.read_namespaced_secret(account.secrets[0].name, namespace)
    return base64.b64decode(secret.data["token"]).decode()


@contextlib.asynccontextmanager
async def bound_service_account(
    api: client.ApiClient, plane: ControlPlane, namespace: str, rules: list[dict]
) -> AsyncIterator[client.ApiClient]:
    """A client authenticated as a new ServiceAccount bound to exactly `rules` (a ClusterRole),
    for proving a component needs no more; the role and binding go afterwards."""
    name = f"leadtime-{namespace}"
    rbac = client.RbacAuthorizationV1Api(api)
    await client.CoreV1Api(api).create_namespaced_service_account(
        namespace, {"metadata": {"name": "leadtime"}}
    )
    await rbac.create_cluster_role({"metadata": {"name": name}, "rules": rules})
    await rbac.create_cluster_role_binding(
        {
            "metadata": {"name": name},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": name,
            },
            "subjects": [{"kind": "ServiceAccount", "name": "leadtime", "namespace": namespace}],
        }
    )
    try:
        token = await eventually(
            lambda: service_account_token(api, namespace, "leadtime"),
            what="the ServiceAccount's token",
        )
        async with client.ApiClient(client_configuration(plane, token)) as limited:
            yield limited
    finally:
        await rbac.delete_cluster_role_binding(name)
        await rbac.delete_cluster_role(name)


def _unavailable(reason: str) -> None:
    """A missing control plane fails the test, never skips it: the test command sets it up."""
    pytest.fail(f"{reason}; {BUILD_COMMAND} builds it (scripts/test runs it first)")


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    binaries = find_binaries()
    if binaries is None or not (binaries / "kube-apiserver").exists():
        _unavailable("the Kubernetes control plane is not built")
    assert binaries is not None
    if not KNATIVE_CRDS.is_dir():
        pytest.fail(f"{KNATIVE_CRDS} is missing: the Knative CRDs come from ../shared")
    plane = ControlPlane(binaries)
    try:
        plane.start()
        asyncio.run(install_crds(client_configuration(plane)))
    except Exception as error:  # whatever went wrong, leave no process behind
        plane.stop()
        pytest.fail(f"the control plane did not start: {error}")
    try:
        yield plane
    finally:
        plane.stop()


def installed_package() -> str:
    """Where the installed package's code is, as its programs find it (an editable install's
    checkout, or site-packages): asked of an isolated interpreter, not of this process, whose
    own checkout may be another."""
    where = subprocess.run(
        [sys.executable, "-I", "-c", "import autoscaler; print(autoscaler.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
    )
    return str(Path(where.stdout.strip()).parents[1])


PYTHON_IMAGE = "leadtime.test/python"
"""An image whose entrypoint is this Python, for tests of the stand-in itself."""


def stand_in_images() -> dict[str, Image]:
    """The images process pods may use. Leadtime's, as the chart names it, runs from the
    installed package: its ENTRYPOINT, CMD and ENV from the Dockerfile, its programs from this
    interpreter's scripts folder."""
    values = yaml.safe_load((ROOT / "charts" / "leadtime" / "values.yaml").read_text())
    programs = Path(sysconfig.get_path("scripts"))
    python = tuple(dict.fromkeys((sys.base_prefix, sys.prefix)))
    return {
        values["image"]["repository"]: image_from_dockerfile(
            ROOT / "Dockerfile", programs, (*python, installed_package())
        ),
        PYTHON_IMAGE: Image(
            (sys.executable,), (), {"PATH": f"{programs}:/usr/bin:/bin"}, files=python
        ),
    }


@pytest.fixture(scope="session")
def kubelet(control_plane: ControlPlane) -> Iterator[FakeKubelet]:
    stand_in = FakeKubelet(client_configuration(control_plane), images=stand_in_images())
    stand_in.start()
    yield stand_in
    stand_in.stop()


@pytest.fixture
def kube_configuration(control_plane: ControlPlane) -> client.Configuration:
    control_plane.check_running()
    return client_configuration(control_plane)


@pytest.fixture
async def kube(kube_configuration: client.Configuration) -> AsyncIterator[client.ApiClient]:
    async with client.ApiClient(kube_configuration) as api:
        yield api


@pytest.fixture
async def namespace(kube: client.ApiClient) -> AsyncIterator[str]:
    name = f"test-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(kube)
    await core.create_namespace({"metadata": {"name": name}})
    yield name
    await core.delete_namespace(name)


@pytest.fixture
def gpu_pool(kubelet: FakeKubelet, namespace: str) -> Iterator[Callable[..., str]]:
    """Make fake GPU nodes of this test's own: `gpu_pool(gpus, nodes=1)` returns the pool name to
    pin pods to (`gpu_deployment(..., pool=...)`); the nodes go when the test ends."""
    made: list[str] = []

    def make(gpus: int = 8, nodes: int = 1) -> str:
        pool = f"{namespace}-{len(made)}"
        for i in range(nodes):
            name = f"{pool}-node-{i}"
            kubelet.add_node(name, gpus=gpus, labels={"leadtime.test/pool": pool})
            made.append(name)
        return pool

    yield make
    for name in made:
        kubelet.remove_node(name)


@pytest.fixture
async def activator() -> AsyncIterator[Activator]:
    """Knative's activator answering the scale-to-zero probe, on loopback."""
    stand_in = Activator()
    await stand_in.start()
    yield stand_in
    await stand_in.stop()


@pytest.fixture
async def sks_status(kube: client.ApiClient, namespace: str) -> AsyncIterator[None]:
    """Knative's SKS reconciler writing the status of the namespace's ServerlessServices."""
    task = asyncio.create_task(serve_sks_status(kube, namespace))
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
