"""Sharding services across Leadtime replicas: which bucket a service is in, and the pure rules
of the Lease elector that decides which replica acts on which bucket (no I/O, no event loop;
`adapters/kubernetes/lease.py` is the shell that reads and writes the Leases).

Services are hashed into `buckets` buckets; each bucket is one Kubernetes Lease, as Knative
does it (`leadtime.00-of-04`). A replica acts on a service only while it holds the service's
bucket. The rules follow client-go's leader election:

- **Observed time, never another machine's clock.** A replica records when *it* last saw a
  Lease record change. Another holder's lease counts as expired only when the record has stayed
  the same for the lease duration of *local* time — so clock skew between machines does not
  matter, only that clocks run at about the same rate.
- **Acting stops before anyone may take over.** A replica acts on a bucket only while its last
  successful renew was *sent* (the local time is taken before the request) less than the renew
  deadline ago. A write lands after it was sent and is seen after it landed, so another replica
  may acquire only after `t_sent + lease_duration`, while the holder stopped acting at
  `t_sent + renew_deadline` — earlier, by the margin `lease_duration − renew_deadline`. Every
  write carries the resourceVersion it was decided on, so a decision on a stale record loses.
- **Fair share.** Every replica also renews a member Lease of its own. With `n` live members
  (member leases not expired by the same rule, plus itself), a replica holds at most
  `ceil(buckets / n)` buckets: it acquires free ones only while below that share and releases
  its excess (highest indexes first) by writing an empty holder, as client-go releases, so
  another replica may take them at once instead of after a lease duration.
"""

from __future__ import annotations

import math
import re
import socket
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from autoscaler.ports import ServiceKey

LEASE_DURATION_S = 15.0
RENEW_DEADLINE_S = 10.0
RETRY_PERIOD_S = 2.0
"""client-go's and Knative's defaults."""

RENEW, ACQUIRE, RELEASE = "renew", "acquire", "release"
"""What to write to a bucket's Lease; a bucket without a decision is left alone (wait)."""

DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
"""A DNS-1123 label's characters (its length, at most 63, is checked apart)."""
SUBDOMAIN = rf"{DNS_LABEL}(\.{DNS_LABEL})*"
"""A DNS-1123 subdomain: labels joined by dots."""
_SUBDOMAIN = re.compile(SUBDOMAIN)
MAX_NAME = 253


# ------------------------------------------------------------------------------- buckets
def bucket_of(key: ServiceKey, buckets: int) -> int:
    """The bucket of a service: CRC-32 of `namespace/name`, the same in every process and on
    every Python version (Python's own `hash()` of a string is salted per process)."""
    if buckets < 1:
        raise ValueError(f"buckets must be >= 1, got {buckets}")
    return zlib.crc32(f"{key.namespace}/{key.name}".encode()) % buckets


def owns_every_service(key: ServiceKey) -> bool:
    """The adapters' `owns` with one replica (no leader election): every service is its own."""
    return True


def bucket_lease_name(prefix: str, index: int, count: int) -> str:
    """Knative's naming: `leadtime.00-of-04`."""
    return f"{prefix}.{index:02d}-of-{count:02d}"


def member_lease_name(prefix: str, identity: str) -> str:
    """The member Lease a replica renews to be counted; long identities are shortened with a
    checksum so the name stays a valid object name."""
    name = f"{prefix}.member.{identity}"
    if len(name) <= MAX_NAME:
        return name
    digest = f"{zlib.crc32(identity.encode()):08x}"
    return f"{name[: MAX_NAME - 9].rstrip('.-')}-{digest}"


def is_subdomain(text: str) -> bool:
    """A DNS-1123 subdomain: what a Lease's holderIdentity and object names must be here."""
    return 0 < len(text) <= MAX_NAME and _SUBDOMAIN.fullmatch(text) is not None


def default_identity(env: Mapping[str, str], hostname: str | None = None) -> str:
    """`POD_NAME` (the chart sets it through the downward API), else the host name made into a
    DNS-1123 subdomain (lowercased; other characters become '-')."""
    pod = env.get("POD_NAME", "").strip()
    if pod:
        return pod
    host = (hostname if hostname is not None else socket.gethostname()).lower()
    host = re.sub(r"[^a-z0-9.-]", "-", host)
    host = re.sub(r"\.{2,}", ".", host)
    host = ".".join(part.strip("-") for part in host.split(".") if part.strip("-"))
    return host[:MAX_NAME].strip(".-") or "leadtime"


# ------------------------------------------------------------------------------- timing
@dataclass(frozen=True, slots=True)
class Timing:
    lease_duration_s: float = LEASE_DURATION_S
    renew_deadline_s: float = RENEW_DEADLINE_S
    retry_period_s: float = RETRY_PERIOD_S

    def __post_init__(self) -> None:
        if not 0 < self.retry_period_s < self.renew_deadline_s < self.lease_duration_s:
            raise ValueError(
                "leader election needs 0 < retry_period < renew_deadline < lease_duration, got "
                f"{self.retry_period_s:g} s, {self.renew_deadline_s:g} s, "
                f"{self.lease_duration_s:g} s"
            )


# ------------------------------------------------------------------------------- records
@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """A Lease's spec as plain data. The times are kept as written (strings): they are for
    people reading the Lease and are only ever compared for change, never trusted."""

    holder: str = ""
    lease_duration_s: float = LEASE_DURATION_S
    acquire_time: str | None = None
    renew_time: str | None = None
    transitions: int = 0
    resource_version: str | None = None

    def content(self) -> tuple[object, ...]:
        """Everything but the resourceVersion: a metadata-only change is no renewal."""
        return (
            self.holder,
            self.lease_duration_s,
            self.acquire_time,
            self.renew_time,
            self.transitions,
        )


@dataclass(frozen=True, slots=True)
class Observed:
    """A record with the local time this replica saw its content change."""

    record: LeaseRecord
    observed_at: float


def observe(previous: Observed | None, record: LeaseRecord, now: float) -> Observed:
    """The new observation: the observed time moves only when the content changed."""
    if previous is not None and previous.record.content() == record.content():
        return Observed(record, previous.observed_at)
    return Observed(record, now)


def expired(observed: Observed, now: float) -> bool:
    """The record has not changed for its lease duration of local time."""
    return now >= observed.observed_at + observed.record.lease_duration_s


def is_free(observed: Observed | None, identity: str, now: float) -> bool:
    """Nobody holds it: missing, released (empty holder), or another holder's lease expired."""
    if observed is None or not observed.record.holder:
        return True
    return observed.record.holder != identity and expired(observed, now)


def acquired_record(
    current: LeaseRecord | None, identity: str, duration_s: float, wall: str
) -> LeaseRecord:
    """What a replica writes to take a lease (or to create it, when `current` is None)."""
    base = current or LeaseRecord()
    changed = base.holder != identity
    return replace(
        base,
        holder=identity,
        lease_duration_s=duration_s,
        acquire_time=wall if changed else base.acquire_time or wall,
        renew_time=wall,
        transitions=base.transitions + (1 if changed and base.holder else 0),
    )


def released_record(current: LeaseRecord, wall: str) -> LeaseRecord:
    """client-go's release: an empty holder, so the next replica need not wait."""
    return replace(current, holder="", renew_time=wall)


# ------------------------------------------------------------------------------- deciding
def live_members(members: Iterable[Observed], identity: str, now: float) -> set[str]:
    """Replicas counted for the fair share: member leases with a holder that have not expired
    by the observed-time rule, and this replica itself."""
    live = {identity}
    for observed in members:
        if observed.record.holder and not expired(observed, now):
            live.add(observed.record.holder)
    return live


def fair_share(buckets: int, members: int) -> int:
    return math.ceil(buckets / max(1, members))


def decide(
    identity: str,
    buckets: int,
    leases: Mapping[int, Observed | None],
    members: Iterable[Observed],
    now: float,
) -> dict[int, str]:
    """Per bucket, what to write now: RENEW the ones this replica holds (by the last record it
    saw), RELEASE its excess over the fair share (highest indexes first), ACQUIRE free ones
    while below the share (a missing lease is created). Buckets left out: wait.

    Free buckets are tried from an offset that depends on the identity, so replicas starting
    together mostly try different buckets instead of all racing for bucket 0."""
    share = fair_share(buckets, len(live_members(members, identity, now)))
    mine = sorted(
        b
        for b in range(buckets)
        if (o := leases.get(b)) is not None and o.record.holder == identity
    )
    decisions: dict[int, str] = {}
    keep, excess = mine[:share], mine[share:]
    for bucket in keep:
        decisions[bucket] = RENEW
    for bucket in excess:
        decisions[bucket] = RELEASE
    room = share - len(keep)
    start = zlib.crc32(identity.encode()) % buckets
    for step in range(buckets):
        if room <= 0:
            break
        bucket = (start + step) % buckets
        if bucket not in decisions and is_free(leases.get(bucket), identity, now):
            decisions[bucket] = ACQUIRE
            room -= 1
    return decisions


def holds(renewed_at: float | None, timing: Timing, now: float) -> bool:
    """Whether a replica may act on a bucket: its last successful renew (or acquire) was sent
    (`renewed_at`, local time taken before the request) less than the renew deadline ago."""
    return renewed_at is not None and now - renewed_at < timing.renew_deadline_s
