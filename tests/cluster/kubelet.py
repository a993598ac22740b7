"""A kubelet stand-in for the test control plane: fake GPU nodes whose pods "start" after a
cold-start delay.

What it emulates, through the real API server only (as a kubelet would):
- Node objects with `nvidia.com/gpu` (and CPU, memory, pods) capacity and a Ready condition whose
  heartbeat it keeps fresh, so the real node lifecycle controller keeps them Ready and untainted
  and the real scheduler binds pods to them within their GPU capacity.
- For every pod the real scheduler binds to one of its nodes: after the cold-start delay
  (`cold_start_s`, or the pod's annotation `leadtime.test/cold-start-seconds`) the pod's status
  becomes Running and Ready (conditions, container statuses, a pod IP), as when a model server
  finishes loading and its readiness probe passes.
- Deletion: a pod marked for deletion on one of its nodes is removed at once (grace period 0),
  as a kubelet does once the containers have stopped — so scale-downs and preemptions finish.

- Pods annotated `leadtime.test/run-process: "true"` whose image it is given (`images`) are run
  for real instead: their container as a local process, with its environment, volumes, probes
  and restart policy (`tests/cluster/pod_process.py` says what that does and does not emulate).

What it does not emulate for the other pods: containers, images, probes (readiness is the
delay), resource limits and eviction, restarts and crash loops, logs/exec, volumes, networking
(pod IPs are made up and nothing listens on them). For every pod: node leases and the kubelet's
own API. Pods on nodes it does not own are left alone.

It runs on its own event loop in a daemon thread, so tests on any event loop (or none) can share
one session-wide instance; the public methods are synchronous.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from collections.abc import Coroutine
from typing import Any

from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.rest import ApiException

from adapters.kubernetes.api import rfc3339
from tests.cluster.pod_process import (
    RUN_PROCESS_ANNOTATION,
    Image,
    PodProcess,
    address_of,
    machine_address,
    patch_pod_status,
)

log = logging.getLogger(__name__)

COLD_START_ANNOTATION = "leadtime.test/cold-start-seconds"
GPU = "nvidia.com/gpu"


def _ready_condition(status: str = "True") -> dict[str, str]:
    now = rfc3339()
    return {
        "type": "Ready",
        "status": status,
        "reason": "KubeletReady",
        "message": "leadtime test kubelet stand-in",
        "lastHeartbeatTime": now,
        "lastTransitionTime": now,
    }


class FakeKubelet:
    """Start with `start()`; add nodes with `add_node()`; stop with `stop()`."""

    def __init__(
        self,
        configuration: client.Configuration,
        cold_start_s: float = 1.0,
        heartbeat_s: float = 10.0,
        images: dict[str, Image] | None = None,
    ) -> None:
        self.configuration = configuration
        self.cold_start_s = cold_start_s
        self.heartbeat_s = heartbeat_s
        self.images = images or {}
        """Images (by repository) whose opted-in pods run as processes."""
        self.nodes: set[str] = set()
        self.processes: dict[str, PodProcess] = {}
        """Running process pods, by "namespace/name"."""
        self._process_tasks: dict[str, asyncio.Task] = {}
        """Their supervising tasks, by pod UID."""
        self._starting: set[str] = set()
        self._ips = (f"10.244.{i // 250}.{i % 250 + 2}" for i in itertools.count())
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, daemon=True, name="fake-kubelet"
        )
        self._tasks: list[asyncio.Task] = []
        self._api: client.ApiClient | None = None

    # -- public, synchronous ---------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()
        self._call(self._start())

    def stop(self) -> None:
        self._call(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def add_node(
        self,
        name: str,
        gpus: int = 8,
        labels: dict[str, str] | None = None,
        taints: list[dict[str, str]] | None = None,
    ) -> None:
        """Register a Ready node with `gpus` GPUs (and ample CPU, memory and pod slots)."""
        self._call(self._add_node(name, gpus, labels or {}, taints or []))

    def remove_node(self, name: str) -> None:
        self._call(self._remove_node(name))

    def kill(self, namespace: str, name: str) -> None:
        """SIGKILL a process pod's process, as when it crashes: its restart policy follows."""
        self._loop.call_soon_threadsafe(self.processes[f"{namespace}/{name}"].kill)

    def log_of(self, namespace: str, name: str) -> str:
        """What a process pod's process has printed so far."""
        process = self.processes.get(f"{namespace}/{name}")
        return process.log_file.read_text(errors="replace") if process else ""

    # -- inside the loop -------------------------------------------------------------------------

    def _call(self, coroutine: Coroutine[Any, Any, Any], timeout: float = 60.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    @property
    def _core(self) -> client.CoreV1Api:
        assert self._api is not None
        return client.CoreV1Api(self._api)

    async def _start(self) -> None:
        self._api = client.ApiClient(self.configuration)
        self._tasks = [asyncio.create_task(self._heartbeats()), asyncio.create_task(self._pods())]

    async def _stop(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for process in self.processes.values():
            process.cleanup()
        if self._api is not None:
            await self._api.close()

    async def _add_node(
        self, name: str, gpus: int, labels: dict[str, str], taints: list[dict[str, str]]
    ) -> None:
        capacity = {"cpu": "64", "memory": "512Gi", "pods": "110", GPU: str(gpus)}
        body = {
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **labels}},
            "spec": {"taints": taints} if taints else {},
        }
        try:
            await self._core.create_node(body)
        except ApiException as error:
            if error.status != 409:
                raise
        self.nodes.add(name)
        await self._core.patch_node_status(
            name,
            {
                "status": {
                    "capacity": capacity,
                    "allocatable": capacity,
                    "conditions": [_ready_condition()],
                    "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                }
            },
        )

    async def _remove_node(self, name: str) -> None:
        self.nodes.discard(name)
        try:
            await self._core.delete_node(name)
        except ApiException as error:
            if error.status != 404:
                raise

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            for name in list(self.nodes):
                try:
                    await self._core.patch_node_status(
                        name, {"status": {"conditions": [_ready_condition()]}}
                    )
                except Exception as error:  # API server restarting: next beat
                    log.debug("heartbeat for %s failed: %s", name, error)

    async def _pods(self) -> None:
        """List and watch every pod, forever, surviving API server restarts."""
        while True:
            try:
                listing = await self._core.list_pod_for_all_namespaces()
                for pod in listing.items:
                    await self._handle(pod)
                stream = watch.Watch().stream(
                    self._core.list_pod_for_all_namespaces,
                    resource_version=listing.metadata.resource_version,
                    timeout_seconds=60,
                )
                async with stream as events:
                    async for event in events:
                        if event["type"] in ("ADDED", "MODIFIED"):
                            await self._handle(event["object"])
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.debug("pod watch broke (%s); relisting", error)
                await asyncio.sleep(0.5)

    async def _handle(self, pod: client.V1Pod) -> None:
        if pod.spec.node_name not in self.nodes:
            return
        key = pod.metadata.uid
        if pod.metadata.deletion_timestamp is not None:
            await self._finish_deletion(pod)
        elif pod.status.phase == "Pending" and key not in self._starting:
            self._starting.add(key)
            # Kept until done, so the event loop cannot drop the task and stop() can cancel it.
            if self._runs(pod):
                task = asyncio.create_task(self._run_process(pod))
                self._process_tasks[key] = task
            else:
                task = asyncio.create_task(self._run(pod))
            self._tasks.append(task)
            task.add_done_callback(self._tasks.remove)

    def _runs(self, pod: client.V1Pod) -> bool:
        """Whether the pod opted in to run as a process (an unknown image then fails it)."""
        annotations = pod.metadata.annotations or {}
        return annotations.get(RUN_PROCESS_ANNOTATION) == "true"

    async def _run_process(self, pod: client.V1Pod) -> None:
        """Run the pod as a process; whatever stops that (an unknown image, no address, no
        `unshare`) fails the pod with the reason, where the test waiting on it will read it."""
        image = pod.spec.containers[0].image
        path, _, last = image.split("@")[0].rpartition("/")
        repository = f"{path}/{last.split(':')[0]}" if path else last.split(":")[0]
        known = self.images.get(repository)
        process = PodProcess(
            self._core, pod, known or Image((), (), {}), address_of(self.configuration), ""
        )
        self.processes[f"{pod.metadata.namespace}/{pod.metadata.name}"] = process
        try:
            if known is None:
                raise RuntimeError(f"image {image} is not one the kubelet stand-in runs")
            process.pod_ip = await asyncio.to_thread(machine_address)
            await process.run()
        except Exception as error:
            await process.fail(f"the kubelet stand-in cannot run it: {error}")
        finally:
            await process.stop()

    async def _finish_deletion(self, pod: client.V1Pod) -> None:
        process = self.processes.pop(f"{pod.metadata.namespace}/{pod.metadata.name}", None)
        running = self._process_tasks.pop(pod.metadata.uid, None)
        if process is not None and running is not None:
            process.pod = pod  # its grace period
            running.cancel()  # stops the process (SIGTERM, then SIGKILL after the grace)
            await asyncio.gather(running, return_exceptions=True)
            process.cleanup()
        try:
            await self._core.delete_namespaced_pod(
                pod.metadata.name,
                pod.metadata.namespace,
                grace_period_seconds=0,
                body=client.V1DeleteOptions(
                    grace_period_seconds=0,
                    preconditions=client.V1Preconditions(uid=pod.metadata.uid),
                ),
            )
        except ApiException as error:
            if error.status not in (404, 409):
                log.warning("deleting %s failed: %s", pod.metadata.name, error.reason)
        self._starting.discard(pod.metadata.uid)

    async def _run(self, pod: client.V1Pod) -> None:
        annotations = pod.metadata.annotations or {}
        try:
            delay = float(annotations.get(COLD_START_ANNOTATION, self.cold_start_s))
        except ValueError:
            delay = self.cold_start_s
        started = rfc3339()
        await asyncio.sleep(delay)
        now = rfc3339()
        containers = [
            {
                "name": c.name,
                "image": c.image,
                "imageID": f"docker-pullable://{c.image}",
                "containerID": f"containerd://{pod.metadata.uid}-{c.name}",
                "ready": True,
                "started": True,
                "restartCount": 0,
                "state": {"running": {"startedAt": now}},
            }
            for c in pod.spec.containers
        ]
        ip = next(self._ips)
        status = {
            "phase": "Running",
            "hostIP": "127.0.0.1",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "startTime": started,
            "containerStatuses": containers,
            "conditions": [
                {"type": kind, "status": "True", "lastTransitionTime": now}
                for kind in ("Initialized", "ContainersReady", "Ready", "PodScheduled")
            ],
        }
        await patch_pod_status(self._core, pod, status)  # `stop()` cancels the task
