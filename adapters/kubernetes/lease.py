"""The Lease elector: the imperative shell around `autoscaler.sharding`'s rules.

Every retry period it lists the Leases of its set in one namespace (one call, by label), notes
when each record last changed, decides per bucket (renew / acquire / release / wait) and
writes: `replace` carrying the resourceVersion it decided on (409: someone was faster; it
re-observes next period, not an error), `create` for a missing Lease (409 AlreadyExists: someone
else created it). It renews a member Lease of its own so the others count it for the fair share.

`owns(key)` is what the adapters ask before they act on a service: the service's bucket is held
and its last successful renew was sent less than the renew deadline ago — so a replica that
cannot reach the API server stops acting by itself, before anyone may take its buckets over.
API errors are logged and survived; the elector never crashes the service. A graceful `stop()`
releases the held buckets (empty holder) and deletes the member Lease, so another replica takes
over within one retry period instead of one lease duration.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from kubernetes_asyncio import client

from adapters.kubernetes.api import ApiCallFailed, call
from autoscaler.ports import ServiceKey
from autoscaler.sharding import (
    ACQUIRE,
    RELEASE,
    LeaseRecord,
    Observed,
    Timing,
    acquired_record,
    bucket_lease_name,
    bucket_of,
    decide,
    holds,
    member_lease_name,
    observe,
    released_record,
)

log = logging.getLogger(__name__)
SET_LABEL = "leadtime.dev/lease-set"
"""On every Lease of a set (bucket and member leases), valued with the prefix: one list call
reads them all."""
ROLE_LABEL = "leadtime.dev/lease-role"

RULES: list[dict] = [
    {
        "apiGroups": ["coordination.k8s.io"],
        "resources": ["leases"],
        "verbs": ["list", "create", "update", "delete"],
    },
]
"""Exactly what the elector uses, in its own namespace only (the chart makes a Role of it, not
a ClusterRole): list (one call per round), create (a missing Lease), update (renew, acquire,
release), delete (its member Lease on a graceful stop)."""

OnChange = Callable[[set[int], set[int]], None]
CONFLICT = "conflict"


def micro_time(seconds: float) -> str:
    """A Unix time as a Kubernetes MicroTime: `2026-11-29T04:00:00.123456Z`."""
    moment = dt.datetime.fromtimestamp(seconds, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def record_of(lease: dict, default_duration_s: float) -> LeaseRecord:
    """The plain record of a Lease as the API server returned it (sanitized to a dict)."""
    spec = lease.get("spec") or {}
    duration = spec.get("leaseDurationSeconds")
    return LeaseRecord(
        holder=spec.get("holderIdentity") or "",
        lease_duration_s=float(duration) if duration else default_duration_s,
        acquire_time=spec.get("acquireTime"),
        renew_time=spec.get("renewTime"),
        transitions=int(spec.get("leaseTransitions") or 0),
        resource_version=(lease.get("metadata") or {}).get("resourceVersion"),
    )


class LeaseElector:
    """`start()` / `stop(release=True)`; `owns(key)`, `held()`; `add_listener(on_change)`."""

    def __init__(
        self,
        api: client.ApiClient,
        *,
        namespace: str,
        identity: str,
        buckets: int = 1,
        prefix: str = "leadtime",
        timing: Timing | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if buckets < 1:
            raise ValueError(f"buckets must be >= 1, got {buckets}")
        self.api = api
        self.namespace = namespace
        self.identity = identity
        self.buckets = buckets
        self.prefix = prefix
        self.timing = timing or Timing()
        self.clock = clock
        self.wall = wall
        self.coordination = client.CoordinationV1Api(api)
        self.names = [bucket_lease_name(prefix, b, buckets) for b in range(buckets)]
        self._index = {name: b for b, name in enumerate(self.names)}
        self.member_name = member_lease_name(prefix, identity)
        self.observed: dict[int, Observed] = {}
        self.members: dict[str, Observed] = {}
        self.renewed_at: dict[int, float] = {}
        """Bucket → local time the last successful renew/acquire of it was sent."""
        self._member_version: str | None = None
        self._listeners: list[OnChange] = []
        self._acting: set[int] = set()
        self._task: asyncio.Task | None = None
        self.call_timeout_s = max(0.2, self.timing.renew_deadline_s / 2)
        """A renew that takes longer than this is given up (the deadline is what matters)."""

    # ------------------------------------------------------------------------ the adapters' view
    def owns(self, key: ServiceKey) -> bool:
        return self.holds(bucket_of(key, self.buckets))

    def holds(self, bucket: int) -> bool:
        return holds(self.renewed_at.get(bucket), self.timing, self.clock())

    def held(self) -> set[int]:
        """The buckets this replica may act on now."""
        return {b for b in range(self.buckets) if self.holds(b)}

    def add_listener(self, on_change: OnChange) -> None:
        """`on_change(acquired, lost)` runs after each round in which the held set changed."""
        self._listeners.append(on_change)

    # ------------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """One round at once (a replica alone owns its buckets before its adapters start), then
        a round every retry period in the background."""
        await self.round()
        self._task = asyncio.create_task(self._run(), name="lease-elector")

    async def stop(self, release: bool = True) -> None:
        """Stop electing; with `release`, give up the held buckets and the member Lease."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if not release:
            return
        self.renewed_at.clear()
        self._notify()
        # The round just cancelled may have renewed or acquired a bucket without reading the
        # answer: its resourceVersion moved (a release on the old one meets 409 and the bucket
        # stays held for a lease duration) or the bucket is not even known to be ours. Read
        # them all again first, and once more after a 409 (a write of that round landing late).
        released: set[int] = set()
        for _ in range(2):
            await self._reread()
            mine = [b for b, o in self.observed.items() if o.record.holder == self.identity]
            outcomes = await asyncio.gather(*(self._release(b) for b in mine))
            released |= {b for b, outcome in zip(mine, outcomes, strict=True) if outcome is True}
            if CONFLICT not in outcomes:
                break
        try:
            await call(
                f"delete Lease {self.member_name}",
                self.coordination.delete_namespaced_lease(self.member_name, self.namespace),
                self.call_timeout_s,
            )
        except ApiCallFailed as error:
            if error.status != 404:
                log.warning("leader election: member lease not deleted: %s", error)
        log.info("leader election: %s released buckets %s", self.identity, sorted(released))

    async def _list(self) -> Any:
        """Every Lease of the set, in one call."""
        return await call(
            "list Leases",
            self.coordination.list_namespaced_lease(
                self.namespace, label_selector=f"{SET_LABEL}={self.prefix}"
            ),
            self.call_timeout_s,
        )

    async def _reread(self) -> None:
        """The current records (on failure, the last ones seen stand)."""
        try:
            listed = await self._list()
        except ApiCallFailed as error:
            log.warning("leader election: %s (releasing what was last seen)", error)
            return
        self._read(listed.items, self.clock())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.timing.retry_period_s)
            try:
                await self.round()
            except Exception:  # never let the elector die: owns() turns false by itself
                log.exception("leader election round failed")

    # ------------------------------------------------------------------------ one round
    async def round(self) -> None:
        """Read, decide, write once."""
        try:
            listed = await self._list()
        except ApiCallFailed as error:
            log.warning(
                "leader election: %s (acting on buckets %s until the renew deadline)",
                error,
                sorted(self.held()),
            )
            self._notify()
            return
        now = self.clock()
        self._read(listed.items, now)
        decisions = decide(
            self.identity,
            self.buckets,
            {b: self.observed.get(b) for b in range(self.buckets)},
            self.members.values(),
            now,
        )
        for bucket, action in decisions.items():
            if action == RELEASE:  # stop acting before anyone can take it
                self.renewed_at.pop(bucket, None)
        self._notify()
        writes = [
            self._release(b) if a == RELEASE else self._take(b, a)
            for b, a in sorted(decisions.items())
        ]
        await asyncio.gather(self._renew_member(), *writes)
        self._notify()

    def _read(self, items: list, now: float) -> None:
        seen_buckets: set[int] = set()
        seen_members: set[str] = set()
        self._member_version = None
        for item in items:
            lease = self.api.sanitize_for_serialization(item)
            name = lease["metadata"]["name"]
            record = record_of(lease, self.timing.lease_duration_s)
            if name in self._index:
                bucket = self._index[name]
                seen_buckets.add(bucket)
                self.observed[bucket] = observe(self.observed.get(bucket), record, now)
                if record.holder != self.identity and self.renewed_at.pop(bucket, None) is not None:
                    log.warning(
                        "leader election: %s lost bucket %d to %r",
                        self.identity,
                        bucket,
                        record.holder,
                    )
            elif name == self.member_name:
                self._member_version = record.resource_version
            elif (lease["metadata"].get("labels") or {}).get(ROLE_LABEL) == "member":
                seen_members.add(name)
                self.members[name] = observe(self.members.get(name), record, now)
        for bucket in set(self.observed) - seen_buckets:  # deleted by someone
            del self.observed[bucket]
            self.renewed_at.pop(bucket, None)
        for name in set(self.members) - seen_members:
            del self.members[name]

    async def _take(self, bucket: int, action: str) -> None:
        """Renew or acquire (creating the Lease when it does not exist)."""
        current = self.observed.get(bucket)
        sent = self.clock()  # before the request: holds() is measured from here
        record = acquired_record(
            current.record if current else None,
            self.identity,
            math.ceil(self.timing.lease_duration_s),
            micro_time(self.wall()),
        )
        name = self.names[bucket]
        try:
            answer = await self._write(
                name, self._body(name, record, "bucket"), exists=current is not None
            )
        except ApiCallFailed as error:
            if error.status == 409:  # someone else wrote first: re-observe next round
                self.renewed_at.pop(bucket, None)
                log.debug("leader election: %s lost the race for bucket %d", self.identity, bucket)
            else:
                log.warning("leader election: %s of bucket %d failed: %s", action, bucket, error)
            return
        written = record_of(
            self.api.sanitize_for_serialization(answer), self.timing.lease_duration_s
        )
        self.observed[bucket] = Observed(written, self.clock())
        if action == ACQUIRE:
            log.info("leader election: %s acquired bucket %d (%s)", self.identity, bucket, name)
        self.renewed_at[bucket] = max(sent, self.renewed_at.get(bucket, sent))

    async def _release(self, bucket: int) -> bool | str:
        """True: released; CONFLICT: the record changed since it was read; else False."""
        self.renewed_at.pop(bucket, None)
        current = self.observed.get(bucket)
        if current is None or current.record.holder != self.identity:
            return False
        name = self.names[bucket]
        record = released_record(current.record, micro_time(self.wall()))
        try:
            await self._write(name, self._body(name, record, "bucket"), exists=True)
            log.info("leader election: %s released bucket %d (%s)", self.identity, bucket, name)
            return True
        except ApiCallFailed as error:  # it expires by itself after a lease duration
            log.warning("leader election: release of bucket %d failed: %s", bucket, error)
            return CONFLICT if error.status == 409 else False

    async def _renew_member(self) -> None:
        record = acquired_record(
            None, self.identity, math.ceil(self.timing.lease_duration_s), micro_time(self.wall())
        )
        body = self._body(
            self.member_name, replace(record, resource_version=self._member_version), "member"
        )
        try:
            answer = await self._write(
                self.member_name, body, exists=self._member_version is not None
            )
            self._member_version = answer.metadata.resource_version
        except ApiCallFailed as error:
            if error.status != 409:  # 409: changed or created meanwhile; the next list rereads
                log.warning("leader election: member lease not renewed: %s", error)

    async def _write(self, name: str, body: dict[str, Any], *, exists: bool) -> Any:
        """Replace the Lease (conditional on the body's resourceVersion) or create it."""
        if exists:
            return await call(
                f"update Lease {name}",
                self.coordination.replace_namespaced_lease(name, self.namespace, body),
                self.call_timeout_s,
            )
        return await call(
            f"create Lease {name}",
            self.coordination.create_namespaced_lease(self.namespace, body),
            self.call_timeout_s,
        )

    def _body(self, name: str, record: LeaseRecord, role: str) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "name": name,
            "namespace": self.namespace,
            "labels": {SET_LABEL: self.prefix, ROLE_LABEL: role},
        }
        if record.resource_version:
            metadata["resourceVersion"] = record.resource_version
        spec: dict[str, Any] = {
            "holderIdentity": record.holder,
            "leaseDurationSeconds": int(record.lease_duration_s),
            "leaseTransitions": record.transitions,
        }
        if record.acquire_time:
            spec["acquireTime"] = _micro(record.acquire_time)
        if record.renew_time:
            spec["renewTime"] = _micro(record.renew_time)
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": spec,
        }

    def _notify(self) -> None:
        now = self.held()
        acquired, lost = now - self._acting, self._acting - now
        self._acting = now
        if not (acquired or lost):
            return
        if lost:
            log.warning(
                "leader election: %s no longer acts on buckets %s", self.identity, sorted(lost)
            )
        for listener in self._listeners:
            try:
                listener(acquired, lost)
            except Exception:
                log.exception("leader election listener failed")


def _micro(text: str) -> str:
    """A time read back from the API server (sanitized: `2026-11-29T04:00:00.123456+00:00`)
    written again as a MicroTime."""
    if text.endswith("Z"):
        return text
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return text
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
