"""What the kubelet stand-in does for a pod that opts in (`RUN_PROCESS_ANNOTATION`): run its
container as a local process of the installed package, as a kubelet runs it from its image.

What it emulates:
- **Command.** The container's `command` and `args`, or the image's ENTRYPOINT and CMD where the
  pod leaves them out (`Image`, read from the project's Dockerfile by `image_from_dockerfile`:
  the image's programs are the installed package's), with Kubernetes' `$(VAR)` expansion.
- **Environment.** The image's ENV, then the container's `env`: values, the downward API
  (`fieldRef`: the pod's name, namespace, UID, node, ServiceAccount, pod and host IP) and
  ConfigMap and Secret keys; and `KUBERNETES_SERVICE_HOST`/`_PORT`, as a kubelet sets them, but
  naming the API server itself (there is no Service network).
- **Volumes.** ConfigMap and Secret volumes (keys or `items`) and emptyDirs are materialised in
  the pod's folder and mounted at the container's absolute paths in a private mount namespace
  (`tests/cluster/mount_exec.py`), read-only where the mount says so. The ServiceAccount token
  volume that admission adds is a Secret volume on Kubernetes 1.20, so the process reaches the
  API server as that ServiceAccount through the in-cluster configuration, as in production.
- **Probes.** httpGet and tcpSocket readiness and liveness probes against the process, at the
  pod's IP, with their delays, periods, timeouts and thresholds; the pod's Ready condition
  follows readiness; a failed liveness probe kills the process.
- **Restarts.** The pod's `restartPolicy` when the process exits or is killed: the first restart
  at once, then after 10 s, 20 s, ... up to 5 minutes (the kubelet's CrashLoopBackOff), with
  `restartCount` and the last state in the container status.
- **Termination.** A pod marked for deletion gets SIGTERM, then SIGKILL after its grace period.

What it does not emulate: images (the package must be installed here), init and sidecar
containers (a pod of more than one container fails), the container's user, capabilities,
seccomp and read-only root filesystem (the process runs as the test's user), resource limits,
exec probes, startup probes, projected and other volume kinds, subPath, and networking: the
pod's IP is this machine's own address (Endpoints refuse loopback ones), so two such pods with
the same ports cannot run at once, and the process can reach whatever this machine can.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import itertools
import json
import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from kubernetes_asyncio import client
from kubernetes_asyncio.client.rest import ApiException

from adapters.kubernetes.api import rfc3339

log = logging.getLogger(__name__)

RUN_PROCESS_ANNOTATION = "leadtime.test/run-process"
"""A pod whose annotation is "true" runs as a process (module docstring)."""
MOUNT_EXEC = Path(__file__).with_name("mount_exec.py")
BACKOFF_S = (0.0, 10.0, 20.0, 40.0, 80.0, 160.0, 300.0)
"""Delay before the n-th restart (the last repeats): the kubelet's CrashLoopBackOff."""
MAX_GRACE_S = 30.0


class NotEmulated(Exception):
    """The pod asks for something the stand-in does not do; its status says what."""


@dataclass(frozen=True)
class Image:
    """What a container image contributes when the pod spec leaves it out."""

    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]
    env: dict[str, str]
    working_dir: str = "/"
    files: tuple[str, ...] = ()
    """This machine's folders that stand for the image's own files (the interpreter, the
    installed package): kept in sight above the pod's volumes, as an image's files are, so an
    emptyDir on /tmp cannot hide a package that lives under /tmp here."""


def image_from_dockerfile(dockerfile: Path, programs: Path, files: tuple[str, ...] = ()) -> Image:
    """The final stage's ENTRYPOINT, CMD, ENV and WORKDIR of `dockerfile` (exec-form JSON arrays,
    `KEY=value` ENV pairs), with the image's own virtualenv on PATH replaced by `programs`, the
    folder where the installed package's programs are here; `files` as `Image.files`."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    stage = re.split(r"(?m)^FROM\s", text)[-1]
    found: dict[str, str] = {}
    env: dict[str, str] = {}
    for line in stage.splitlines():
        keyword, _, rest = line.strip().partition(" ")
        if keyword in ("ENTRYPOINT", "CMD", "WORKDIR"):
            found[keyword] = rest.strip()
        elif keyword == "ENV":
            for pair in shlex.split(rest):
                key, _, value = pair.partition("=")
                env[key] = _expand_dockerfile(value, env)
    venv = "/opt/leadtime/bin"
    if "PATH" in env:
        env["PATH"] = env["PATH"].replace(venv, str(programs))
    return Image(
        entrypoint=tuple(json.loads(found.get("ENTRYPOINT", "[]"))),
        cmd=tuple(json.loads(found.get("CMD", "[]"))),
        env=env,
        working_dir=found.get("WORKDIR", "/"),
        files=files,
    )


def _expand_dockerfile(value: str, env: dict[str, str]) -> str:
    """`$VAR` in an ENV value: as set before it, PATH the base image's where not."""
    base = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", **env}
    return re.sub(r"\$(\w+)", lambda m: base.get(m.group(1), ""), value)


@functools.cache
def machine_address() -> str:
    """This machine's first global IPv4 address: a pod IP the API server accepts in Endpoints
    and can reach (loopback addresses are refused there). Read once: it does not change."""
    output = subprocess.run(
        ["ip", "-4", "-o", "addr", "show", "scope", "global"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"inet (\d+\.\d+\.\d+\.\d+)/", output)
    if match is None:
        raise RuntimeError("no global IPv4 address on this machine: a process pod needs one")
    return match.group(1)


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' `$(VAR)` references: known ones replaced, `$$` escapes, unknown ones kept."""
    return re.sub(
        r"\$\$|\$\((\w+)\)",
        lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)),
        text,
    )


@dataclass
class ContainerState:
    """What the pod's status says of its one container."""

    ready: bool = False
    restarts: int = 0
    running_since: str | None = None
    waiting: str | None = None
    last_exit: dict[str, Any] | None = None


@dataclass
class PodProcess:
    """One opted-in pod: its volumes, its process, its probes and restarts, its status."""

    core: client.CoreV1Api
    pod: client.V1Pod
    image: Image
    apiserver: tuple[str, int]
    pod_ip: str
    state: ContainerState = field(default_factory=ContainerState)
    process: asyncio.subprocess.Process | None = None
    folder: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="pod-")))
    spec_file: Path | None = None

    @property
    def name(self) -> str:
        return f"{self.pod.metadata.namespace}/{self.pod.metadata.name}"

    @property
    def container(self) -> client.V1Container:
        containers = self.pod.spec.containers
        if len(containers) != 1 or self.pod.spec.init_containers:
            raise NotEmulated("a pod of more than one container")
        return containers[0]

    @property
    def log_file(self) -> Path:
        return self.folder / "container.log"

    # -- the pod's life ------------------------------------------------------------------------

    async def run(self) -> None:
        """Start, supervise and restart the process until cancelled (the pod's deletion)."""
        try:
            self.spec_file = await self._prepare()
        except NotEmulated as error:
            await self.fail(f"not emulated by the kubelet stand-in: {error}")
            return
        policy = self.pod.spec.restart_policy or "Always"
        while True:
            code = await self._run_once()
            if policy == "Never" or (policy == "OnFailure" and code == 0):
                await self._write_status("Succeeded" if code == 0 else "Failed")
                return
            delay = BACKOFF_S[min(self.state.restarts, len(BACKOFF_S) - 1)]
            self.state.restarts += 1
            if delay:
                self.state.waiting = "CrashLoopBackOff"
                await self._write_status()
                await asyncio.sleep(delay)

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL after the pod's grace period (at most `MAX_GRACE_S`)."""
        process = self.process
        if process is not None and process.returncode is None:
            grace = self.pod.metadata.deletion_grace_period_seconds
            grace_s = min(float(30 if grace is None else grace), MAX_GRACE_S)
            _signal(process, signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), grace_s)
            except TimeoutError:
                _signal(process, signal.SIGKILL)
                await process.wait()

    def kill(self) -> None:
        """SIGKILL the process, as when it crashes (for tests of restarts)."""
        if self.process is not None and self.process.returncode is None:
            _signal(self.process, signal.SIGKILL)

    def cleanup(self) -> None:
        """Remove the pod's folder: its volumes, scratch overlays and log."""
        shutil.rmtree(self.folder, ignore_errors=True)

    async def _run_once(self) -> int:
        assert self.spec_file is not None
        with self.log_file.open("ab") as output:
            self.process = await asyncio.create_subprocess_exec(
                "unshare",
                "--mount",
                "--propagation",
                "private",
                sys.executable,
                str(MOUNT_EXEC),
                str(self.spec_file),
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.state.running_since, self.state.waiting, self.state.ready = rfc3339(), None, False
        await self._write_status()
        probes = [
            asyncio.create_task(self._readiness()),
            asyncio.create_task(self._liveness()),
        ]
        exited = asyncio.create_task(self.process.wait())
        try:
            await asyncio.wait([exited, probes[1]], return_when=asyncio.FIRST_COMPLETED)
            if not exited.done():  # liveness failed: the kubelet kills the container
                _signal(self.process, signal.SIGKILL)
            code = await exited
        finally:
            for task in probes:
                task.cancel()
            await asyncio.gather(*probes, return_exceptions=True)
            if not exited.done():
                await self.stop()
        self.state.last_exit = {
            "exitCode": code,
            "reason": "Completed" if code == 0 else "Error",
            "startedAt": self.state.running_since,
            "finishedAt": rfc3339(),
        }
        self.state.running_since, self.state.ready = None, False
        await self._write_status()
        return code

    # -- probes --------------------------------------------------------------------------------

    async def _readiness(self) -> None:
        probe = self.container.readiness_probe
        if probe is None:
            await self._set_ready(True)
            return
        await self._probing(probe, self._set_ready)

    async def _liveness(self) -> None:
        """Returns when the liveness probe has failed `failureThreshold` times in a row."""
        probe = self.container.liveness_probe
        if probe is None:
            await asyncio.Future()  # never fails
        done = asyncio.Event()

        async def alive(ok: bool) -> None:
            if not ok:
                log.warning("%s: liveness probe failed; killing the container", self.name)
                done.set()

        prober = asyncio.create_task(self._probing(probe, alive))
        try:
            await done.wait()
        finally:
            prober.cancel()

    async def _probing(self, probe: client.V1Probe, result: Callable[[bool], Any]) -> None:
        """Probe on the probe's schedule; `result` gets each change of verdict after the
        success or failure threshold (starting from failing)."""
        await asyncio.sleep(probe.initial_delay_seconds or 0)
        passing, run = False, 0
        needed = {True: probe.success_threshold or 1, False: probe.failure_threshold or 3}
        while True:
            started = time.monotonic()
            ok = await self._probe_once(probe)
            run = run + 1 if ok != passing else 0
            if run >= needed[ok]:
                passing, run = ok, 0
                await result(ok)
            elapsed = time.monotonic() - started
            await asyncio.sleep(max(0.0, (probe.period_seconds or 10) - elapsed))

    async def _probe_once(self, probe: client.V1Probe) -> bool:
        timeout = probe.timeout_seconds or 1
        try:
            if probe.http_get is not None:
                get = probe.http_get
                port = self._port(get.port)
                scheme = (get.scheme or "HTTP").lower()
                url = f"{scheme}://{self.pod_ip}:{port}{get.path or '/'}"
                deadline = aiohttp.ClientTimeout(total=timeout)
                async with aiohttp.ClientSession(timeout=deadline) as session:
                    async with session.get(url, ssl=False) as response:
                        return 200 <= response.status < 400
            if probe.tcp_socket is not None:
                port = self._port(probe.tcp_socket.port)
                connect = asyncio.open_connection(self.pod_ip, port)
                _, writer = await asyncio.wait_for(connect, timeout)
                writer.close()
                return True
        except (aiohttp.ClientError, OSError, TimeoutError):
            return False
        return False  # not reached: `_prepare` refuses other kinds of probe

    def _check_probe(self, probe: client.V1Probe) -> None:
        if probe.http_get is not None:
            self._port(probe.http_get.port)
        elif probe.tcp_socket is not None:
            self._port(probe.tcp_socket.port)
        else:
            raise NotEmulated("exec probes")

    def _port(self, port: int | str) -> int:
        """A probe's port: a number, or the name of one of the container's ports."""
        if isinstance(port, int) or str(port).isdigit():
            return int(port)
        for declared in self.container.ports or []:
            if declared.name == port:
                return int(declared.container_port)
        raise NotEmulated(f"probe port {port!r} names no container port")

    async def _set_ready(self, ready: bool) -> None:
        if ready != self.state.ready:
            self.state.ready = ready
            await self._write_status()

    # -- the container's volumes, environment and command --------------------------------------

    async def _prepare(self) -> Path:
        """Materialise the volumes and write the spec `mount_exec.py` follows."""
        container = self.container
        volumes = {volume.name: volume for volume in self.pod.spec.volumes or []}
        mounts = []
        for mount in container.volume_mounts or []:
            if mount.sub_path:
                raise NotEmulated(f"subPath on volume {mount.name}")
            source = await self._materialise(volumes[mount.name])
            mounts.append(
                {
                    "source": str(source),
                    "target": mount.mount_path,
                    "read_only": bool(mount.read_only),
                }
            )
        for probe in (container.readiness_probe, container.liveness_probe):
            if probe is not None:
                self._check_probe(probe)
        if container.startup_probe is not None:
            raise NotEmulated("startup probes")
        env = await self._environment()
        command = container.command or list(self.image.entrypoint)
        args = container.args if container.command or container.args else list(self.image.cmd)
        argv = [expand(part, env) for part in [*command, *args]]
        if not argv:
            raise NotEmulated("a container with no command and an image with no entrypoint")
        spec = {
            "scratch": str(self.folder / "scratch"),
            "mounts": mounts,
            "env": env,
            "argv": argv,
            "working_dir": container.working_dir or self.image.working_dir,
            "image_files": list(self.image.files),
        }
        (self.folder / "scratch").mkdir()
        path = self.folder / "spec.json"
        path.write_text(json.dumps(spec))
        return path

    async def _materialise(self, volume: client.V1Volume) -> Path:
        folder = self.folder / "volumes" / volume.name
        folder.mkdir(parents=True, exist_ok=True)
        if volume.empty_dir is not None:
            return folder
        data: dict[str, bytes]
        if volume.config_map is not None:
            source = volume.config_map
            config_map = await self._read(self.core.read_namespaced_config_map, source.name)
            data = {k: v.encode() for k, v in (config_map.data or {}).items()}
        elif volume.secret is not None:
            source = volume.secret
            secret = await self._read(self.core.read_namespaced_secret, source.secret_name)
            data = {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}
        else:
            raise NotEmulated(f"the kind of volume {volume.name}")
        items = source.items or [client.V1KeyToPath(key=key, path=key) for key in data]
        for item in items:
            path = folder / item.path
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data[item.key])
        return folder

    async def _read(self, read: Callable[..., Any], name: str) -> Any:
        """A ConfigMap or Secret, waited for as a kubelet waits (the pod stays creating)."""
        while True:
            try:
                return await read(name, self.pod.metadata.namespace)
            except ApiException as error:
                if error.status != 404:
                    raise
            self.state.waiting = "ContainerCreating"
            await asyncio.sleep(1.0)

    async def _environment(self) -> dict[str, str]:
        host, port = self.apiserver
        env = {
            "HOSTNAME": self.pod.metadata.name,
            "HOME": "/",  # what runtimes give a user the image has no home for
            **self.image.env,
            "KUBERNETES_SERVICE_HOST": host,
            "KUBERNETES_SERVICE_PORT": str(port),
        }
        for variable in self.container.env or []:
            if variable.value_from is None:
                env[variable.name] = expand(variable.value or "", env)
            else:
                env[variable.name] = await self._value_from(variable.value_from)
        return env

    async def _value_from(self, source: client.V1EnvVarSource) -> str:
        if source.field_ref is not None:
            fields = {
                "metadata.name": self.pod.metadata.name,
                "metadata.namespace": self.pod.metadata.namespace,
                "metadata.uid": self.pod.metadata.uid,
                "spec.nodeName": self.pod.spec.node_name,
                "spec.serviceAccountName": self.pod.spec.service_account_name,
                "status.podIP": self.pod_ip,
                "status.hostIP": self.pod_ip,
            }
            path = source.field_ref.field_path
            if path not in fields:
                raise NotEmulated(f"fieldRef {path}")
            return str(fields[path] or "")
        if source.config_map_key_ref is not None:
            ref = source.config_map_key_ref
            return (await self._read(self.core.read_namespaced_config_map, ref.name)).data[ref.key]
        if source.secret_key_ref is not None:
            ref = source.secret_key_ref
            secret = await self._read(self.core.read_namespaced_secret, ref.name)
            return base64.b64decode(secret.data[ref.key]).decode()
        raise NotEmulated("resourceFieldRef environment variables")

    # -- status --------------------------------------------------------------------------------

    async def fail(self, message: str) -> None:
        """Mark the pod Failed with `message`, as a kubelet does for a pod it cannot run."""
        log.warning("%s: %s", self.name, message)
        await self._write_status("Failed", message)

    async def _write_status(self, phase: str = "Running", message: str | None = None) -> None:
        state = self.state
        if state.running_since is not None:
            current: dict[str, Any] = {"running": {"startedAt": state.running_since}}
        elif state.waiting is not None or state.last_exit is None:
            current = {"waiting": {"reason": state.waiting or "ContainerCreating"}}
        else:
            current = {"terminated": state.last_exit}
        container = self.pod.spec.containers[0]
        status = {
            "name": container.name,
            "image": container.image,
            "imageID": f"leadtime-test://{container.image}",
            "containerID": f"process://{self.pod.metadata.uid}",
            "ready": state.ready,
            "started": state.running_since is not None,
            "restartCount": state.restarts,
            "state": current,
            "lastState": {"terminated": state.last_exit} if state.last_exit else {},
        }
        ready = "True" if state.ready else "False"
        now = rfc3339()
        body: dict[str, Any] = {
            "phase": phase,
            "containerStatuses": [status],
            "conditions": [
                {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                {"type": "ContainersReady", "status": ready, "lastTransitionTime": now},
                {"type": "Ready", "status": ready, "lastTransitionTime": now},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
            ],
        }
        if self.pod_ip:  # none when the pod failed before it had one
            body.update(hostIP=self.pod_ip, podIP=self.pod_ip, podIPs=[{"ip": self.pod_ip}])
        if message:
            body["message"] = message
        await patch_pod_status(self.core, self.pod, body)


async def patch_pod_status(core: client.CoreV1Api, pod: client.V1Pod, status: dict) -> None:
    """Write a pod's status until it lands, as a kubelet keeps syncing: an API server restart can
    outlast a fixed 20 tries of 0.5 s (it did in CI, and the pod never became ready). A pod
    deleted meanwhile needs none; the caller's cancellation stops the retries."""
    for attempt in itertools.count():
        try:
            await core.patch_namespaced_pod_status(
                pod.metadata.name, pod.metadata.namespace, {"status": status}
            )
            return
        except ApiException as error:
            if error.status == 404:
                return
        except Exception as error:  # API server restarting
            log.debug("%s: status not written (%s); retrying", pod.metadata.name, error)
        if attempt == 20:
            log.warning("still cannot write the status of %s; retrying", pod.metadata.name)
        await asyncio.sleep(min(0.5 * 1.5**attempt, 5.0))


def _signal(process: asyncio.subprocess.Process, signum: int) -> None:
    """Signal the process's whole group (unshare, then the container's command it became)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)


def address_of(configuration: client.Configuration) -> tuple[str, int]:
    """The API server's host and port, from a client configuration."""
    url = urlsplit(configuration.host)
    return url.hostname or "127.0.0.1", url.port or 443
