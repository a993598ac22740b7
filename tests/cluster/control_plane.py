"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager and
kube-scheduler, as controller-runtime's envtest runs them, plus the two controllers envtest
leaves out (so Deployments get ReplicaSets and Pods, and Pods get bound to nodes).

Binaries: etcd from Debian's `etcd-server`; the other three built from Debian's `kubernetes`
source package (v1.20.2) by `tests/cluster/build.sh`, which caches them under
`~/.cache/leadtime/kubernetes/<version>/bin`. Everything listens on free 127.0.0.1 ports and
keeps its state in a temporary directory (etcd's on /dev/shm when it exists, for speed).

Identities are static bearer tokens (`--token-auth-file`): an `admin` in `system:masters` for the
tests, and the controller manager and scheduler (also `system:masters`: they run with one shared
identity rather than per-controller service accounts). Authorization is RBAC, so a client with
any other token (a ServiceAccount's, say) gets exactly what its roles grant.
"""

from __future__ import annotations

import glob
import os
import shutil
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from load_tests.local.replicas import free_port
from tests.cluster.certificates import FRONT_PROXY_CLIENT, Certificates, make_certificates

BUILD_COMMAND = "scripts/setup"
"""Sets up the test machine, the control plane included (tests/cluster/build.sh)."""
SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/16"


def find_binaries() -> Path | None:
    """The newest cached build, or LEADTIME_KUBERNETES_BIN when set."""
    explicit = os.environ.get("LEADTIME_KUBERNETES_BIN")
    if explicit:
        return Path(explicit)
    cache = Path(os.environ.get("LEADTIME_CACHE", Path.home() / ".cache" / "leadtime"))
    found = sorted(glob.glob(str(cache / "kubernetes" / "*" / "bin" / "kube-apiserver")))
    return Path(found[-1]).parent if found else None


class ControlPlaneError(RuntimeError):
    """A component did not start; the message carries the tail of its log."""


@dataclass
class Component:
    """One process of the control plane, restartable (tests restart the API server)."""

    name: str
    argv: list[str]
    log: Path
    process: subprocess.Popen | None = None

    def start(self) -> None:
        handle = open(self.log, "ab")
        self.process = subprocess.Popen(self.argv, stdout=handle, stderr=subprocess.STDOUT)
        handle.close()

    def stop(self, timeout: float = 20.0) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@dataclass
class ControlPlane:
    """Start with `start()`, stop with `stop()`; `restart_apiserver()` for outage tests."""

    binaries: Path
    folder: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="leadtime-k8s-")))
    hpa_sync_period_s: float = 2.0
    admin_token: str = "leadtime-admin-token"
    components: dict[str, Component] = field(default_factory=dict)
    apiserver_port: int = 0
    certificates: Certificates | None = None
    started_in_s: float = 0.0

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    @property
    def ca_file(self) -> Path:
        assert self.certificates is not None
        return self.certificates.ca

    @property
    def kubeconfig(self) -> Path:
        return self.folder / "admin.kubeconfig"

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        began = time.monotonic()
        self.certificates = make_certificates(self.folder / "pki")
        self.apiserver_port = free_port()
        self._write_tokens()
        self._write_kubeconfig(self.kubeconfig, self.admin_token)
        self._start_etcd()
        self.components["kube-apiserver"] = Component(
            "kube-apiserver", self._apiserver_argv(), self.folder / "kube-apiserver.log"
        )
        self.components["kube-apiserver"].start()
        self.wait_ready()
        self._start_controllers()
        self.started_in_s = time.monotonic() - began

    def stop(self) -> None:
        for name in ("kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"):
            if name in self.components:
                self.components[name].stop()
        shutil.rmtree(self.folder, ignore_errors=True)
        shutil.rmtree(self._etcd_dir, ignore_errors=True)

    def restart_apiserver(self, down_for_s: float = 0.0) -> None:
        """Stop the API server (dropping every watch and connection), wait, start it again on the
        same port, and return once it is ready."""
        server = self.components["kube-apiserver"]
        server.stop()
        time.sleep(down_for_s)
        server.start()
        self.wait_ready()

    def wait_ready(self, timeout_s: float = 90.0) -> None:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        request = urllib.request.Request(
            self.url + "/readyz", headers={"Authorization": f"Bearer {self.admin_token}"}
        )
        deadline = time.monotonic() + timeout_s
        server = self.components["kube-apiserver"]
        while time.monotonic() < deadline:
            if not server.running():
                raise ControlPlaneError(f"kube-apiserver exited:\n{server.log_tail()}")
            try:
                with urllib.request.urlopen(request, context=context, timeout=2) as response:
                    if response.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.3)
        raise ControlPlaneError(
            f"kube-apiserver not ready after {timeout_s} s:\n{server.log_tail()}"
        )

    def check_running(self) -> None:
        for component in self.components.values():
            if not component.running():
                raise ControlPlaneError(f"{component.name} exited:\n{component.log_tail()}")

    # -- pieces ----------------------------------------------------------------------------------

    def _write_tokens(self) -> None:
        # token,user,uid,"groups"
        rows = [
            f'{self.admin_token},admin,admin,"system:masters"',
            'leadtime-controller-manager-token,system:kube-controller-manager,kcm,"system:masters"',
            'leadtime-scheduler-token,system:kube-scheduler,ksched,"system:masters"',
        ]
        (self.folder / "tokens.csv").write_text("\n".join(rows) + "\n")

    def _write_kubeconfig(self, path: Path, token: str) -> None:
        server = self.url
        path.write_text(
            "apiVersion: v1\nkind: Config\n"
            f"clusters:\n- name: test\n  cluster:\n    server: {server}\n"
            f"    certificate-authority: {self.ca_file}\n"
            f"users:\n- name: user\n  user:\n    token: {token}\n"
            "contexts:\n- name: test\n  context:\n    cluster: test\n    user: user\n"
            "current-context: test\n"
        )

    @property
    def _etcd_dir(self) -> Path:
        base = Path("/dev/shm") if Path("/dev/shm").is_dir() else self.folder
        return base / f"{self.folder.name}-etcd"

    def _start_etcd(self) -> None:
        etcd = shutil.which("etcd")
        if etcd is None:
            raise ControlPlaneError(f"etcd not found: {BUILD_COMMAND} installs etcd-server")
        client, peer = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{client}"
        component = Component(
            "etcd",
            [
                etcd,
                "--name=test",
                f"--data-dir={self._etcd_dir}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=test=http://127.0.0.1:{peer}",
                "--log-level=warn",
            ],
            self.folder / "etcd.log",
        )
        self.components["etcd"] = component
        component.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if not component.running():
                raise ControlPlaneError(f"etcd exited:\n{component.log_tail()}")
            try:
                with urllib.request.urlopen(self.etcd_url + "/health", timeout=1) as response:
                    if b"true" in response.read():
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise ControlPlaneError(f"etcd not healthy after 30 s:\n{component.log_tail()}")

    def _apiserver_argv(self) -> list[str]:
        pki = self.certificates
        assert pki is not None
        return [
            str(self.binaries / "kube-apiserver"),
            f"--etcd-servers={self.etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.apiserver_port}",
            "--insecure-port=0",
            f"--tls-cert-file={pki.serving_cert}",
            f"--tls-private-key-file={pki.serving_key}",
            f"--client-ca-file={pki.ca}",
            f"--token-auth-file={self.folder / 'tokens.csv'}",
            "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki.service_account_public_key}",
            f"--service-account-signing-key-file={pki.service_account_key}",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            "--endpoint-reconciler-type=none",
            "--allow-privileged=true",
            # The aggregation layer, as kubeadm configures it, so an APIService reaches its server.
            f"--requestheader-client-ca-file={pki.front_proxy_ca}",
            f"--proxy-client-cert-file={pki.front_proxy_client_cert}",
            f"--proxy-client-key-file={pki.front_proxy_client_key}",
            f"--requestheader-allowed-names={FRONT_PROXY_CLIENT}",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            # Aggregated APIs are reached through their Service's Endpoints (there is no
            # Service network to reach a cluster IP): a pod the kubelet stand-in runs as a
            # process, or a server a test registers (tests/cluster/aggregation.py), is at this
            # machine's address.
            "--enable-aggregator-routing=true",
            "--v=1",
        ]

    def _start_controllers(self) -> None:
        pki = self.certificates
        assert pki is not None
        manager_config = self.folder / "controller-manager.kubeconfig"
        scheduler_config = self.folder / "scheduler.kubeconfig"
        self._write_kubeconfig(manager_config, "leadtime-controller-manager-token")
        self._write_kubeconfig(scheduler_config, "leadtime-scheduler-token")
        self.components["kube-controller-manager"] = Component(
            "kube-controller-manager",
            [
                str(self.binaries / "kube-controller-manager"),
                f"--kubeconfig={manager_config}",
                "--controllers=*",
                "--leader-elect=false",
                "--port=0",
                "--secure-port=0",
                f"--service-account-private-key-file={pki.service_account_key}",
                f"--root-ca-file={pki.ca}",
                "--use-service-account-credentials=false",
                # Notice new nodes (and lift their not-ready taint) within a second.
                "--node-monitor-period=1s",
                f"--horizontal-pod-autoscaler-sync-period={self.hpa_sync_period_s}s",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                "--v=1",
            ],
            self.folder / "kube-controller-manager.log",
        )
        self.components["kube-scheduler"] = Component(
            "kube-scheduler",
            [
                str(self.binaries / "kube-scheduler"),
                f"--kubeconfig={scheduler_config}",
                "--leader-elect=false",
                "--port=0",
                "--secure-port=0",
                "--v=1",
            ],
            self.folder / "kube-scheduler.log",
        )
        for name in ("kube-controller-manager", "kube-scheduler"):
            self.components[name].start()
        time.sleep(0.5)
        self.check_running()
