"""Lease leader election and bucket sharding on the real control plane (coordination.k8s.io/v1
Leases on kube-apiserver 1.20): replicas — each an elector with its own ApiClient, as separate
processes would be — split the buckets, take over a stopped replica's buckets within one retry
period, a crashed or cut-off replica's within one lease duration, and never both own a service
at the same instant (sampled every 50 ms throughout). Then the same with the real HPA adapter
scaling Deployments and the real Knative adapter reconciling PodAutoscalers, and two
`leadtime run` processes, one of them SIGKILLed (markers `kubernetes`; the crash and partition
cases also `faults`; the processes also `slow`).

Short timings keep it quick: lease 3 s, renew deadline 2 s, retry 0.5 s. The takeover times are
printed (`pytest tests/adapters/kubernetes/test_leader_election.py -q -s`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable

import pytest
import yaml
from kubernetes_asyncio import client

from adapters.hpa.adapter import KubernetesWorkloads
from adapters.hpa.workloads import AUTOSCALE
from adapters.knative.adapter import KnativeAdapter
from adapters.kubernetes.lease import RULES, SET_LABEL, LeaseElector, micro_time
from autoscaler.ports import ServiceKey
from autoscaler.sharding import Timing, bucket_lease_name, bucket_of
from tests.cluster.fixtures import bound_service_account
from tests.cluster.knative import create_revision
from tests.cluster.objects import eventually, gpu_deployment
from tests.conftest import free_port
from tests.helpers.exporters import APP_SIGNALS, AppExporter
from tests.helpers.knative import make_adapter, read_pa, read_sks, wait_ready
from tests.helpers.knative import replicas as scale_of
from tests.helpers.prometheus import serve_exporter, start_prometheus

pytest_plugins = ["tests.cluster.fault_proxy"]
pytestmark = [pytest.mark.kubernetes]
TIMING = Timing(lease_duration_s=3.0, renew_deadline_s=2.0, retry_period_s=0.5)
BUCKETS = 4
KEYS = [ServiceKey("team", f"svc-{i}") for i in range(40)]
ALL = set(range(BUCKETS))
IDENTITIES = {"leadtime-0", "leadtime-1"}


class Watch:
    """Samples every elector's `owns()` for every key every 50 ms; a key owned by two at one
    instant is recorded as a violation."""

    def __init__(self, electors: list[LeaseElector]) -> None:
        self.electors = electors
        self.samples = 0
        self.violations: list[str] = []
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            for key in KEYS:
                owners = [e.identity for e in self.electors if e.owns(key)]
                if len(owners) > 1:
                    self.violations.append(f"{key} owned by {owners}")
            self.samples += 1
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        # It really sampled: a test that was over in under a second (a fast run) lets it take
        # its 20 samples first, instead of failing on how quick the machine was.
        await eventually(
            lambda: _true(self.samples > 20),
            timeout_s=10.0,
            interval_s=0.05,
            what="20 ownership samples",
        )
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        assert not self.violations, self.violations[:5]


@contextlib.asynccontextmanager
async def replicas(
    configurations: list[client.Configuration], namespace: str, buckets: int = BUCKETS
) -> AsyncIterator[list[LeaseElector]]:
    """Electors `leadtime-0`, `leadtime-1`, … each on its own ApiClient, started together;
    whatever is still running is stopped (released) at the end."""
    apis = [client.ApiClient(c) for c in configurations]
    electors = [
        LeaseElector(
            api, namespace=namespace, identity=f"leadtime-{i}", buckets=buckets, timing=TIMING
        )
        for i, api in enumerate(apis)
    ]
    try:
        await asyncio.gather(*(e.start() for e in electors))
        yield electors
    finally:
        await asyncio.gather(
            *(e.stop() for e in electors if e._task is not None), return_exceptions=True
        )
        for api in apis:
            await api.close()


async def _true(value: bool) -> bool:
    return value


async def split(electors: list[LeaseElector], counts: list[int]) -> bool:
    held = [e.held() for e in electors]
    return sorted(len(h) for h in held) == sorted(counts) and set().union(*held) == ALL


async def measure(condition: Callable[[], bool], timeout_s: float) -> float:
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout_s:
            raise AssertionError(f"not within {timeout_s} s")
        await asyncio.sleep(0.01)
    return time.monotonic() - start


async def test_replicas_split_the_buckets_and_a_graceful_stop_hands_over_at_once(
    kube, kube_configuration, namespace
):
    async with replicas([kube_configuration] * 2, namespace) as (first, second):
        watch = Watch([first, second])
        started = time.monotonic()
        await eventually(
            lambda: split([first, second], [2, 2]),
            timeout_s=5 * TIMING.retry_period_s,
            interval_s=0.05,
            what="4 buckets split 2 / 2",
        )
        print(f"\n  split 2 / 2 {time.monotonic() - started:.2f} s after both started")
        # The Leases are really there, named as Knative names them, held as the electors say.
        leases = await client.CoordinationV1Api(kube).list_namespaced_lease(
            namespace, label_selector=f"{SET_LABEL}=leadtime"
        )
        holders = {lease.metadata.name: lease.spec.holder_identity for lease in leases.items}
        for bucket in ALL:
            owner = first if bucket in first.held() else second
            assert holders[bucket_lease_name("leadtime", bucket, BUCKETS)] == owner.identity
        assert {"leadtime.member.leadtime-0", "leadtime.member.leadtime-1"} <= set(holders)
        # Every key is owned by exactly the replica that holds its bucket.
        for key in KEYS:
            assert first.owns(key) == (bucket_of(key, BUCKETS) in first.held()) != second.owns(key)

        stopping = time.monotonic()
        await first.stop()
        taken = await measure(lambda: second.held() == ALL, timeout_s=4 * TIMING.retry_period_s)
        print(
            f"  graceful stop: the survivor owns all {BUCKETS} buckets "
            f"{time.monotonic() - stopping:.2f} s after stop() began "
            f"({taken:.2f} s after it returned; retry period {TIMING.retry_period_s} s)"
        )
        assert not first.held() and not any(first.owns(k) for k in KEYS)
        await asyncio.sleep(4 * TIMING.retry_period_s)
        assert second.held() == ALL  # and keeps them
        await watch.stop()


@pytest.mark.faults
async def test_a_crashed_replicas_buckets_are_taken_after_one_lease_duration(
    kube_configuration, namespace
):
    async with replicas([kube_configuration] * 3, namespace, buckets=6) as electors:
        watch = Watch(electors)
        await eventually(
            lambda: _all_held(electors, 6, [2, 2, 2]),
            timeout_s=5.0,
            interval_s=0.05,
            what="6 buckets split 2 / 2 / 2",
        )
        crashed, survivors = electors[0], electors[1:]
        theirs = crashed.held()
        await crashed.stop(release=False)  # the process dies: nothing released, nothing deleted
        crashed_at = time.monotonic()
        await measure(lambda: not crashed.held(), timeout_s=TIMING.renew_deadline_s + 0.1)
        stopped_acting = time.monotonic() - crashed_at
        await measure(
            lambda: set().union(*(s.held() for s in survivors)) == set(range(6)),
            timeout_s=TIMING.lease_duration_s + 4 * TIMING.retry_period_s,
        )
        taken = time.monotonic() - crashed_at
        print(
            f"\n  crash: the crashed replica's {len(theirs)} buckets were taken over "
            f"{taken:.2f} s after it died (it stopped acting after {stopped_acting:.2f} s; "
            f"lease {TIMING.lease_duration_s:g} s, renew deadline {TIMING.renew_deadline_s:g} s, "
            f"retry {TIMING.retry_period_s:g} s)"
        )
        # Not before its last renew (at most one retry period before it died) has expired.
        assert taken >= TIMING.lease_duration_s - TIMING.retry_period_s
        assert stopped_acting <= TIMING.renew_deadline_s + 0.1
        await eventually(
            lambda: _all_held(survivors, 6, [3, 3]),
            timeout_s=5.0,
            interval_s=0.05,
            what="the survivors' fair share of 3 each",
        )
        await watch.stop()


async def _all_held(electors: list[LeaseElector], buckets: int, counts: list[int]) -> bool:
    held = [e.held() for e in electors]
    return sorted(len(h) for h in held) == sorted(counts) and set().union(*held) == set(
        range(buckets)
    )


@pytest.mark.faults
async def test_a_replica_cut_off_from_the_api_server_stops_acting_and_comes_back(
    kube_configuration, proxied, fault_proxy, namespace
):
    """The replica keeps running but every Lease request it makes fails (503): it stops acting
    at its renew deadline, the other takes over after the lease duration, and once the API
    server answers again it is counted again and gets its share back."""
    cut_config = proxied.configuration
    async with replicas([cut_config, kube_configuration], namespace) as (cut, other):
        watch = Watch([cut, other])
        await eventually(
            lambda: split([cut, other], [2, 2]),
            timeout_s=5.0,
            interval_s=0.05,
            what="4 buckets split 2 / 2",
        )
        rule = fault_proxy.add("answer", r"/leases", status=503, times=10**6)
        cut_at = time.monotonic()
        lost = await measure(lambda: not cut.held(), timeout_s=TIMING.renew_deadline_s + 1.0)
        await measure(
            lambda: other.held() == ALL,
            timeout_s=TIMING.lease_duration_s + 4 * TIMING.retry_period_s,
        )
        taken = time.monotonic() - cut_at
        print(
            f"\n  partition: the cut-off replica stopped acting after {lost:.2f} s, the other "
            f"owned all buckets after {taken:.2f} s"
        )
        assert taken >= TIMING.lease_duration_s - TIMING.retry_period_s
        assert rule.hits > 0 and cut._task is not None and not cut._task.done()  # still running
        rule.times = 0  # the network heals
        await eventually(
            lambda: split([cut, other], [2, 2]),
            timeout_s=5.0,
            interval_s=0.05,
            what="the healed replica's share back",
        )
        await watch.stop()


async def test_sharded_hpa_adapters_each_scale_only_their_own_and_a_survivor_scales_all(
    kube_configuration, namespace
):
    """Two replicas of the HPA adapter, each behind its elector: the catalog each one lists is
    its own buckets' Deployments, a decision for another's Deployment is skipped (no failure,
    no write), and after one stops the survivor lists and scales every Deployment."""
    names = [f"llm-{i}" for i in range(8)]
    keys = [ServiceKey(namespace, n) for n in names]
    async with client.ApiClient(kube_configuration) as admin:
        apps = client.AppsV1Api(admin)
        for name in names:
            deployment = gpu_deployment(name, 1)
            deployment["metadata"]["annotations"] = {AUTOSCALE: "true"}
            await apps.create_namespaced_deployment(namespace, deployment)
        assert len({bucket_of(k, BUCKETS) for k in keys}) >= 2  # both replicas get some
        async with replicas([kube_configuration] * 2, namespace) as electors:
            adapters = [KubernetesWorkloads(e.api, owns=e.owns) for e in electors]
            for adapter, elector in zip(adapters, electors, strict=True):
                elector.add_listener(adapter.ownership_changed)
                await adapter.start()
            watch = Watch(electors)
            try:
                await eventually(
                    lambda: split(electors, [2, 2]),
                    timeout_s=5.0,
                    interval_s=0.05,
                    what="4 buckets split 2 / 2",
                )
                listed = [set(await a.services()) & set(keys) for a in adapters]
                assert listed[0] and listed[1] and not listed[0] & listed[1]
                assert listed[0] | listed[1] == set(keys)

                # Each replica is asked to scale every Deployment to its own number: only its
                # own move, and the others are not reported as failures.
                for number, adapter in enumerate(adapters):
                    assert await adapter.apply(dict.fromkeys(keys, 2 + number)) == {}
                for key in keys:
                    replicas_now = (
                        await apps.read_namespaced_deployment(key.name, namespace)
                    ).spec.replicas
                    owner = 0 if key in listed[0] else 1
                    assert replicas_now == 2 + owner, (key, replicas_now)

                await adapters[0].stop()
                await electors[0].stop()
                await measure(lambda: electors[1].held() == ALL, timeout_s=3.0)
                assert set(await adapters[1].services()) >= set(keys)
                assert await adapters[1].apply(dict.fromkeys(keys, 5)) == {}
                for key in keys:
                    assert (
                        await apps.read_namespaced_deployment(key.name, namespace)
                    ).spec.replicas == 5
            finally:
                await watch.stop()
                await asyncio.gather(*(a.stop() for a in adapters), return_exceptions=True)


async def test_a_graceful_stop_releases_buckets_whose_last_renew_it_did_not_see(
    kube, kube_configuration, namespace
):
    """`stop()` cancels the round in progress, whose renews may have landed without their
    answers being read: the Leases' resourceVersions moved past what the elector saw. The
    release must still happen — not meet 409 and leave the buckets held for a lease duration
    (as two `leadtime run` processes' SIGTERM did)."""
    coordination = client.CoordinationV1Api(kube)
    async with client.ApiClient(kube_configuration) as api:
        elector = LeaseElector(
            api, namespace=namespace, identity="leadtime-0", buckets=3, timing=TIMING
        )
        await elector.start()
        assert elector.held() == {0, 1, 2}
        assert elector._task is not None
        elector._task.cancel()  # no more rounds: what it saw last is all it knows
        await asyncio.gather(elector._task, return_exceptions=True)
        elector._task = None
        for bucket in (0, 1):  # its renews whose answers the cancelled round never read
            name = bucket_lease_name("leadtime", bucket, 3)
            lease = api.sanitize_for_serialization(
                await coordination.read_namespaced_lease(name, namespace)
            )
            lease["spec"]["renewTime"] = micro_time(time.time() + 0.5)
            await coordination.replace_namespaced_lease(name, namespace, lease)
        await elector.stop()
    leases = await coordination.list_namespaced_lease(namespace)
    assert {lease.metadata.name: lease.spec.holder_identity for lease in leases.items} == {
        "leadtime.00-of-03": "",
        "leadtime.01-of-03": "",
        "leadtime.02-of-03": "",
    }


async def test_the_shipped_lease_rules_are_enough(kube, control_plane, namespace):
    """An elector running as a ServiceAccount bound to exactly `lease.RULES` acquires,
    renews, releases and deletes its member lease without a 403."""
    async with bound_service_account(kube, control_plane, namespace, RULES) as limited:
        elector = LeaseElector(
            limited, namespace=namespace, identity="leadtime-0", buckets=2, timing=TIMING
        )
        await elector.start()
        await asyncio.sleep(3 * TIMING.retry_period_s)  # renews under the same rules
        assert elector.held() == {0, 1}
        await elector.stop()
    leases = await client.CoordinationV1Api(kube).list_namespaced_lease(namespace)
    assert {lease.metadata.name: lease.spec.holder_identity for lease in leases.items} == {
        "leadtime.00-of-02": "",
        "leadtime.01-of-02": "",
    }  # released; member lease deleted


# ------------------------------------------------------------------------------- Knative
def writers(api: client.ApiClient, obj: object) -> set[str]:
    """Who wrote an object, as the API server recorded it: the field managers of its
    managedFields (a client's manager is its User-Agent)."""
    metadata = api.sanitize_for_serialization(obj)["metadata"]
    return {entry["manager"] for entry in metadata.get("managedFields") or []}


def one_per_bucket(namespace: str, template: str = "rev{}-00001") -> list[str]:
    """Service names, one in each bucket (the namespace is random, so are the buckets)."""
    found: dict[int, str] = {}
    for i in range(1000):
        name = template.format(i)
        found.setdefault(bucket_of(ServiceKey(namespace, name), BUCKETS), name)
        if len(found) == BUCKETS:
            return [found[b] for b in sorted(found)]
    raise AssertionError("no name for some bucket")


class Reconciles:
    """What each replica's reconciler was asked to reconcile: (key, owned then, finished at)."""

    def __init__(self, adapter: KnativeAdapter, elector: LeaseElector) -> None:
        self.done: list[tuple[ServiceKey, bool, float]] = []
        reconciler = adapter._reconciler
        assert reconciler is not None
        inner = reconciler.reconcile

        async def reconcile(pa: dict, *args, **kwargs):
            key = ServiceKey(pa["metadata"]["namespace"], pa["metadata"]["name"])
            owned = elector.owns(key)
            try:
                return await inner(pa, *args, **kwargs)
            finally:
                self.done.append((key, owned, time.monotonic()))

        reconciler.reconcile = reconcile  # type: ignore[method-assign]

    def keys(self, since: float = 0.0) -> set[ServiceKey]:
        return {key for key, _, at in self.done if at >= since}


@pytest.mark.knative
@pytest.mark.parametrize("failure", ["stop", pytest.param("crash", marks=pytest.mark.faults)])
async def test_sharded_knative_adapters_each_reconcile_their_own_and_a_survivor_all(
    kube, kube_configuration, namespace, gpu_pool, activator, sks_status, failure
):
    """Two replicas of the Knative adapter, each behind its elector and writing as its own
    User-Agent. Each PA of Leadtime's class is reconciled and written only by the replica that
    holds its bucket (the API server's managedFields name one writer); a decision for another
    replica's PA is skipped — no failure, no write, and not kept to be applied stale later.
    After one replica stops (released) or crashes (not released), the survivor reconciles every
    PA at once without changing the scale the previous owner set, and its next decision
    reaches every PA's desiredScale and Deployment."""
    pool = gpu_pool(gpus=16)
    names = one_per_bucket(namespace)
    keys = [ServiceKey(namespace, n) for n in names]
    async with replicas([kube_configuration] * 2, namespace) as electors:
        adapters = []
        for elector in electors:
            elector.api.user_agent = elector.identity  # the field manager of its writes
            adapter = make_adapter(elector.api, activator, owns=elector.owns)
            elector.add_listener(adapter.ownership_changed)
            await adapter.start()
            adapters.append(adapter)
        logs = [Reconciles(a, e) for a, e in zip(adapters, electors, strict=True)]
        watch = Watch(electors)
        try:
            await eventually(
                lambda: split(electors, [2, 2]),
                timeout_s=5.0,
                interval_s=0.05,
                what="4 buckets split 2 / 2",
            )
            for name in names:  # created once the split is made: each PA has one owner from birth
                await create_revision(kube, namespace, name, pool=pool)
            for name in names:
                await wait_ready(kube, namespace, name, timeout_s=60)
            mine = [{k for k in keys if e.owns(k)} for e in electors]
            assert mine[0] and mine[1] and not mine[0] & mine[1] and mine[0] | mine[1] == set(keys)
            assert [set(await a.services()) & set(keys) for a in adapters] == mine

            # Each replica is told to scale every revision to its own number: only its own move,
            # the others' are no failure and not remembered.
            for number, adapter in enumerate(adapters):
                assert await adapter.apply(dict.fromkeys(keys, 2 + number)) == {}
                assert set(adapter.desired) & {(k.namespace, k.name) for k in keys} == {
                    (k.namespace, k.name) for k in mine[number]
                }
            for key in keys:
                owner = 0 if key in mine[0] else 1
                pa = await read_pa(kube, namespace, key.name)
                assert pa["status"]["desiredScale"] == 2 + owner, (key, pa["status"])
                assert await scale_of(kube, namespace, key.name) == 2 + owner, key
                # The PA's status and its SKS were written by the owner alone (a Deployment's
                # /scale writes are not in its managedFields on Kubernetes 1.20).
                for written in (pa, await read_sks(kube, namespace, key.name)):
                    assert writers(kube, written) & IDENTITIES == {f"leadtime-{owner}"}, key
            for number, log in enumerate(logs):  # nobody even got to reconcile another's PA
                assert {k for k, owned, _ in log.done if k in keys and not owned} == set()
                assert log.keys() & set(keys) == mine[number]

            # One replica goes; the survivor (the one told 3 for everything) takes over.
            gone, survivor = electors
            await adapters[0].stop()
            await gone.stop(release=failure == "stop")
            gone_at = time.monotonic()
            timeout = (
                4 * TIMING.retry_period_s
                if failure == "stop"
                else TIMING.lease_duration_s + 4 * TIMING.retry_period_s
            )
            await measure(lambda: survivor.held() == ALL, timeout_s=timeout)
            taken_at = time.monotonic()
            print(
                f"\n  Knative, {failure}: the survivor owns every PA "
                f"{taken_at - gone_at:.2f} s after the other went"
            )
            assert [set(await adapters[1].services()) & set(keys)] == [set(keys)]
            # It reconciles the taken-over PAs (at once, by the elector's callback; the resync
            # would too): the scale the previous owner set stays (2), not the 3 it was told
            # while it did not own them.
            await eventually(
                lambda: _true(logs[1].keys(since=taken_at) >= mine[0]),
                timeout_s=5.0,
                interval_s=0.05,
                what="the survivor's reconcile of the taken-over PAs",
            )
            for key in mine[0]:
                assert await scale_of(kube, namespace, key.name) == 2, key
                pa = await read_pa(kube, namespace, key.name)
                assert pa["status"]["desiredScale"] == 2, (key, pa["status"])

            # Its next decision reaches every PA, written by it.
            assert await adapters[1].apply(dict.fromkeys(keys, 1)) == {}
            for key in keys:
                pa = await read_pa(kube, namespace, key.name)
                assert pa["status"]["desiredScale"] == 1, (key, pa["status"])
                assert await scale_of(kube, namespace, key.name) == 1, key
                assert "leadtime-1" in writers(kube, pa), key
        finally:
            await watch.stop()
            await asyncio.gather(*(a.stop() for a in adapters), return_exceptions=True)


# ------------------------------------------------------------------------------- leadtime run
TAKEOVER_SLACK_S = 2.0
"""Beyond lease duration + 2 retry periods (the survivor sees the crashed replica's last renew
up to one round late and acts on its expiry up to one round late): one more round, because the
crashed replica's member Lease was written in the same round as its buckets and may be seen to
change a round later, keeping the survivor's fair share at 2 for that round (0.5 s); its list
and writes on a loaded 2-core machine, each given up after 1 s (the elector's call timeout:
half the renew deadline), one of them slow (1 s); this test's own polling (0.05 s) and
scheduling. 2 s covers that with room; a takeover near it means something waited a lease
duration twice."""


def leadtime_run(config_file, log_file) -> subprocess.Popen:
    """`leadtime run` as a process in a session of its own, so that a crash can kill all of
    it (the forecasting worker included), as a dying container is."""
    with open(log_file, "w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "leadtime", "run", "--config", str(config_file)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def tail(log_file, lines: int = 40) -> str:
    return "\n".join(log_file.read_text(errors="replace").splitlines()[-lines:])


@pytest.mark.slow
@pytest.mark.hpa
@pytest.mark.prometheus
@pytest.mark.faults
async def test_two_leadtime_run_processes_split_the_buckets_and_one_takes_over_a_crash(
    kube, control_plane, namespace, gpu_pool, tmp_path
):
    """Two `leadtime run` processes with leader election (4 buckets, lease 3 s / renew 2 s /
    retry 0.5 s) scaling opted-in Deployments, one per bucket, from a real Prometheus: the
    Leases show both holding buckets; one is SIGKILLed (with its worker: nothing released) and
    the other holds every bucket within lease + 2 retries + slack, then scales every
    Deployment; SIGTERM makes it exit 0 with its buckets released and its member Lease gone."""
    names = one_per_bucket(namespace, "llm-{}")
    exporter = AppExporter({(namespace, n): 1.0 for n in names})
    server, exporter_port = serve_exporter(exporter)
    prometheus = start_prometheus(exporter_port)
    pool = gpu_pool(gpus=16)
    apps = client.AppsV1Api(kube)
    for name in names:
        deployment = gpu_deployment(name, 1, pool=pool)
        deployment["metadata"]["annotations"] = {AUTOSCALE: "true"}
        await apps.create_namespaced_deployment(namespace, deployment)
    identities = ["leadtime-a", "leadtime-b"]
    processes: dict[str, subprocess.Popen] = {}
    logs = {i: tmp_path / f"{i}.log" for i in identities}
    coordination = client.CoordinationV1Api(kube)
    bucket_names = [bucket_lease_name("leadtime", b, BUCKETS) for b in range(BUCKETS)]

    async def leases() -> dict[str, str]:
        listed = await coordination.list_namespaced_lease(
            namespace, label_selector=f"{SET_LABEL}=leadtime"
        )
        return {lease.metadata.name: lease.spec.holder_identity or "" for lease in listed.items}

    async def holders() -> list[str]:
        found = await leases()
        return [found.get(name, "") for name in bucket_names]

    async def all_at(replicas_wanted: int) -> bool:
        for name in names:
            deployment = await apps.read_namespaced_deployment(name, namespace)
            if deployment.spec.replicas != replicas_wanted:
                return False
        return True

    ports = {i: free_port() for i in identities}

    def listed(identity: str) -> set[str]:
        """The services a process's loop has (its catalog), from its HTTP API."""
        url = f"http://127.0.0.1:{ports[identity]}/api/v1/services"
        with urllib.request.urlopen(url, timeout=5) as answer:
            return {s["name"] for s in json.load(answer)["services"] if s["namespace"] == namespace}

    async def catalogs_are(expected: dict[str, set[str]]) -> bool:
        check_running()
        for identity, services in expected.items():
            if await asyncio.to_thread(listed, identity) != services:
                return False
        return True

    def check_running() -> None:
        for identity, process in processes.items():
            assert process.poll() is None, f"{identity} exited:\n{tail(logs[identity])}"

    try:
        for identity in identities:
            config_file = tmp_path / f"{identity}.yaml"
            config_file.write_text(
                yaml.safe_dump(
                    {
                        "tick": "500ms",
                        "http": {"port": ports[identity], "host": "127.0.0.1"},
                        "forecasting": {"workers": 1},
                        # one-slot replicas and a wait budget of 5 minutes: the count is the
                        # fewest with more slots than requests in service (1.5: 2, 2.5: 3)
                        "policy": {"target": 1, "slo_ttft": "600s", "stable_window": "6s"},
                        "prometheus": {
                            "url": prometheus.url,
                            "rate_window": "5s",
                            **APP_SIGNALS,
                        },
                        "hpa": {"enabled": True, "kubeconfig": str(control_plane.kubeconfig)},
                        "leader_election": {
                            "enabled": True,
                            "namespace": namespace,
                            "identity": identity,
                            "buckets": BUCKETS,
                            "lease_duration": f"{TIMING.lease_duration_s:g}s",
                            "renew_deadline": f"{TIMING.renew_deadline_s:g}s",
                            "retry_period": f"{TIMING.retry_period_s * 1000:g}ms",
                        },
                    }
                )
            )
            processes[identity] = leadtime_run(config_file, logs[identity])

        async def split_between_both() -> list[str] | None:
            check_running()
            held = await holders()
            return held if sorted(held) == sorted(identities * 2) else None

        held = await eventually(
            split_between_both,
            timeout_s=120,
            interval_s=0.2,
            what="both processes holding 2 of the 4 bucket Leases",
        )
        found = await leases()
        assert {f"leadtime.member.{i}" for i in identities} <= set(found)
        # Each loop has exactly its own buckets' services (the catalog is refreshed every 5 s).
        own = {i: {n for b, n in enumerate(names) if held[b] == i} for i in identities}
        await eventually(
            lambda: catalogs_are(own),
            timeout_s=30,
            interval_s=0.5,
            what=f"each process listing its own buckets' services {own}",
        )

        # Both scale: each Deployment (one per bucket, so two per process) follows its load.
        for name in names:
            exporter.in_flight[(namespace, name)] = 1.5
        await eventually(
            lambda: all_at(2),
            timeout_s=120,
            interval_s=0.5,
            what="every Deployment at 2 replicas for 1.5 in flight",
        )
        check_running()

        # A crash: the whole process group gets SIGKILL — no release, no member Lease deleted.
        crashed, survivor = identities
        theirs = [bucket_names[b] for b, h in enumerate(held) if h == crashed]
        os.killpg(processes[crashed].pid, signal.SIGKILL)
        killed_at = time.monotonic()
        await asyncio.to_thread(processes.pop(crashed).wait, 10)

        async def survivor_holds_all() -> bool:
            return await holders() == [survivor] * BUCKETS

        await eventually(
            survivor_holds_all,
            timeout_s=30,
            interval_s=0.05,
            what=f"{survivor} holding every bucket",
        )
        taken = time.monotonic() - killed_at
        bound = TIMING.lease_duration_s + 2 * TIMING.retry_period_s + TAKEOVER_SLACK_S
        print(
            f"\n  leadtime run, crash (SIGKILL): {survivor} holds the crashed process's buckets "
            f"{', '.join(theirs)} {taken:.2f} s after the kill (bound {bound:g} s: lease "
            f"{TIMING.lease_duration_s:g} s + 2 x retry {TIMING.retry_period_s:g} s + slack "
            f"{TAKEOVER_SLACK_S:g} s)"
        )
        assert taken <= bound, tail(logs[survivor])
        # Not before the crashed process's lease ran out: its last renew was sent at most about
        # a round (retry period + the round's own calls) before the kill.
        assert taken >= TIMING.lease_duration_s - 3 * TIMING.retry_period_s
        check_running()

        # The survivor's loop takes the crashed process's services on (its catalog is refreshed
        # every 5 s) and scales every Deployment.
        await eventually(
            lambda: catalogs_are({survivor: set(names)}),
            timeout_s=30,
            interval_s=0.5,
            what=f"{survivor} listing every service",
        )
        scaled_from = time.monotonic()
        for name in names:
            exporter.in_flight[(namespace, name)] = 2.5
        await eventually(
            lambda: all_at(3),
            timeout_s=120,
            interval_s=0.5,
            what=f"{survivor} scaling every Deployment to 3",
        )
        print(
            f"  the survivor scaled all {len(names)} Deployments to 3 "
            f"{time.monotonic() - scaled_from:.1f} s after the load rose"
        )

        # A graceful stop: exit 0, every bucket released, its member Lease deleted.
        processes[survivor].send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(processes[survivor].wait, 60)
        assert code == 0, tail(logs[survivor])
        found = await leases()
        assert [found[name] for name in bucket_names] == [""] * BUCKETS, found
        assert f"leadtime.member.{survivor}" not in found
        assert found[f"leadtime.member.{crashed}"] == crashed  # nobody deletes a crashed one's
        output = logs[survivor].read_text(errors="replace")
        assert f"sharded over {BUCKETS} Lease bucket(s)" in output
    finally:
        for process in processes.values():
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await asyncio.to_thread(process.wait, 10)
        prometheus.remove()
        server.shutdown()
