"""The pure rules of sharding and Lease election (`autoscaler/sharding.py`): stable buckets,
each decision case, the observed-time clock semantics, the renew deadline — and, as a
hypothesis property, that replicas stepping in virtual time against a simulated API server
(compare-and-swap writes, network delays, clock offsets, pauses and partitions) never both hold
a bucket at the same instant, and settle on a fair split once the faults end."""

from __future__ import annotations

import heapq
import itertools
import random
from collections import Counter
from dataclasses import dataclass, field, replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.ports import ServiceKey
from autoscaler.sharding import (
    ACQUIRE,
    RELEASE,
    RENEW,
    LeaseRecord,
    Observed,
    Timing,
    acquired_record,
    bucket_lease_name,
    bucket_of,
    decide,
    default_identity,
    expired,
    fair_share,
    holds,
    is_free,
    is_subdomain,
    live_members,
    member_lease_name,
    observe,
    released_record,
)

TIMING = Timing()  # 15 s / 10 s / 2 s


# ---------------------------------------------------------------------------------- buckets
def test_bucket_of_is_pinned_so_every_process_and_python_version_agrees():
    assert bucket_of(ServiceKey("default", "chat"), 4) == 3
    assert bucket_of(ServiceKey("ml", "llama-70b"), 4) == 2
    assert bucket_of(ServiceKey("team-a", "embed"), 4) == 0
    assert bucket_of(ServiceKey("ml", "llama-70b"), 100) == 42
    assert bucket_of(ServiceKey("default", "chat"), 1) == 0
    with pytest.raises(ValueError):
        bucket_of(ServiceKey("a", "b"), 0)


def test_buckets_are_roughly_uniform():
    counts = Counter(bucket_of(ServiceKey(f"ns-{i % 7}", f"svc-{i}"), 8) for i in range(8000))
    assert set(counts) == set(range(8))
    assert all(850 <= n <= 1150 for n in counts.values()), counts  # 1000 ± 15 %


def test_lease_names():
    assert bucket_lease_name("leadtime", 0, 4) == "leadtime.00-of-04"
    assert bucket_lease_name("leadtime", 11, 100) == "leadtime.11-of-100"
    assert member_lease_name("leadtime", "leadtime-7d9f-abc") == "leadtime.member.leadtime-7d9f-abc"
    long = member_lease_name("leadtime", "a" * 253)
    assert len(long) <= 253 and is_subdomain(long)
    assert long != member_lease_name("leadtime", "a" * 252 + "b")


def test_default_identity_is_the_pod_name_or_a_sanitised_hostname():
    assert default_identity({"POD_NAME": "leadtime-5c9-x2"}) == "leadtime-5c9-x2"
    assert default_identity({}, "My_Host..Example.COM") == "my-host.example.com"
    assert default_identity({}, "--") == "leadtime"
    assert is_subdomain(default_identity({}))
    for bad in ("", "A", "a_b", "-a", "a.", "a" * 254):
        assert not is_subdomain(bad)


def test_timing_must_leave_the_renew_deadline_inside_the_lease():
    Timing(3, 2, 0.5)
    for lease, renew, retry in ((10, 10, 2), (10, 12, 2), (15, 10, 10), (15, 10, 0)):
        with pytest.raises(ValueError, match="retry_period < renew_deadline < lease_duration"):
            Timing(lease, renew, retry)


# ---------------------------------------------------------------------------------- observing
def held_by(holder: str, at: float = 0.0, renew: str = "t0", duration: float = 15.0) -> Observed:
    return Observed(
        LeaseRecord(
            holder=holder, lease_duration_s=duration, renew_time=renew, resource_version="1"
        ),
        at,
    )


def test_observed_time_moves_only_when_the_record_changes():
    first = observe(None, LeaseRecord("b", renew_time="t0", resource_version="1"), 100.0)
    assert first.observed_at == 100.0
    same = observe(first, LeaseRecord("b", renew_time="t0", resource_version="7"), 110.0)
    assert same.observed_at == 100.0  # a label change is no renewal
    assert same.record.resource_version == "7"
    renewed = observe(same, LeaseRecord("b", renew_time="t1", resource_version="8"), 112.0)
    assert renewed.observed_at == 112.0


def test_another_holders_clock_is_never_trusted():
    """The record says it was renewed long ago (or in the future): only local observation
    counts — 15 s after this replica first saw it unchanged."""
    ancient = observe(None, LeaseRecord("b", renew_time="1970-01-01T00:00:00.000000Z"), 50.0)
    assert not expired(ancient, 64.9) and not is_free(ancient, "a", 64.9)
    assert expired(ancient, 65.0) and is_free(ancient, "a", 65.0)
    future = observe(None, LeaseRecord("b", renew_time="2999-01-01T00:00:00.000000Z"), 50.0)
    assert is_free(future, "a", 65.0)


def test_what_is_free():
    assert is_free(None, "a", 0.0)  # no Lease yet
    assert is_free(held_by(""), "a", 0.0)  # released
    assert not is_free(held_by("b", at=0.0), "a", 14.9)
    assert is_free(held_by("b", at=0.0, duration=3.0), "a", 3.0)  # the record's own duration
    assert not is_free(held_by("a", at=0.0), "a", 100.0)  # ours: renewed, never "acquired"


# ---------------------------------------------------------------------------------- deciding
def test_alone_a_replica_takes_every_free_bucket_and_renews_its_own():
    leases = {0: None, 1: held_by(""), 2: held_by("a"), 3: held_by("gone", at=0.0)}
    assert decide("a", 4, leases, [], now=20.0) == {0: ACQUIRE, 1: ACQUIRE, 2: RENEW, 3: ACQUIRE}


def test_a_bucket_held_by_a_live_other_is_left_alone():
    leases = {0: held_by("b", at=10.0), 1: None}
    assert decide("a", 2, leases, [], now=20.0) == {1: ACQUIRE}


def test_members_set_the_fair_share_and_the_excess_is_released_highest_first():
    mine = {b: held_by("a") for b in range(4)}
    member_b = held_by("b", at=10.0)
    assert live_members([member_b], "a", 20.0) == {"a", "b"}
    assert decide("a", 4, mine, [member_b], now=20.0) == {
        0: RENEW,
        1: RENEW,
        2: RELEASE,
        3: RELEASE,
    }
    # A member whose lease stopped changing 15 s ago is not counted: all four are kept.
    assert live_members([member_b], "a", 25.0) == {"a"}
    assert decide("a", 4, mine, [member_b], now=25.0) == dict.fromkeys(range(4), RENEW)
    # A released member lease (empty holder) does not count either.
    assert live_members([held_by("", at=20.0)], "a", 20.0) == {"a"}


def test_a_replica_below_its_share_acquires_only_up_to_it():
    members = [held_by("b", at=19.0), held_by("c", at=19.0)]
    assert fair_share(5, 3) == 2 and fair_share(4, 0) == 4
    decisions = decide("a", 5, dict.fromkeys(range(5)), members, now=20.0)
    assert list(decisions.values()) == [ACQUIRE, ACQUIRE]
    leases = {0: held_by("a"), 1: None, 2: None, 3: held_by("b", at=19.0), 4: None}
    decisions = decide("a", 5, leases, members, now=20.0)
    assert decisions[0] == RENEW and Counter(decisions.values()) == {RENEW: 1, ACQUIRE: 1}


def test_replicas_starting_together_try_different_buckets_first():
    firsts = {
        next(iter(decide(f"leadtime-{i}", 8, {}, [held_by("x", at=0)], now=0.0))) for i in range(8)
    }
    assert len(firsts) > 2


def test_records_written():
    taken = acquired_record(LeaseRecord("b", 15, "t0", "t1", 3, "9"), "a", 15, "t5")
    assert (taken.holder, taken.acquire_time, taken.renew_time, taken.transitions) == (
        "a",
        "t5",
        "t5",
        4,
    )
    assert taken.resource_version == "9"  # the write is conditional on what was read
    renewed = acquired_record(taken, "a", 15, "t7")
    assert (renewed.acquire_time, renewed.renew_time, renewed.transitions) == ("t5", "t7", 4)
    assert acquired_record(None, "a", 15, "t0").transitions == 0
    assert acquired_record(LeaseRecord(""), "a", 15, "t0").transitions == 0
    released = released_record(renewed, "t8")
    assert released.holder == "" and released.transitions == 4


def test_holds_until_the_renew_deadline_after_the_renew_was_sent():
    assert holds(100.0, TIMING, 100.0) and holds(100.0, TIMING, 109.99)
    assert not holds(100.0, TIMING, 110.0)
    assert not holds(None, TIMING, 100.0)


# ---------------------------------------------------------------------------------- simulation
@dataclass
class SimReplica:
    identity: str
    offset: float
    observed: dict[int, Observed] = field(default_factory=dict)
    members: dict[str, Observed] = field(default_factory=dict)
    renewed_at: dict[int, float] = field(default_factory=dict)
    member_rv: str | None = None


@dataclass
class Fault:
    replica: int
    kind: str  # "pause": no steps (a GC pause, SIGSTOP, a crash when it never ends);
    #            "partition": its requests fail, some land with the answer lost
    start: float
    length: float


class Simulation:
    """Replicas running the elector's rules against a compare-and-swap store in virtual time.
    Mirrors `LeaseElector.round()`: read, decide (dropping released buckets first), write all,
    wait for every answer (or the call timeout), sleep one retry period."""

    def __init__(
        self,
        replicas: int,
        buckets: int,
        timing: Timing,
        offsets: list[float],
        faults: list[Fault],
        seed: int,
        max_delay_s: float = 3.0,
    ) -> None:
        self.timing, self.buckets, self.faults = timing, buckets, faults
        self.rng = random.Random(seed)
        self.max_delay_s = max_delay_s
        self.replicas = [SimReplica(f"leadtime-{i}", offsets[i]) for i in range(replicas)]
        self.store: dict[str, LeaseRecord] = {}
        self.version = itertools.count(1)
        self.events: list = []
        self.order = itertools.count()
        self.now = 0.0
        self.max_holders = 0
        self.ever_held: set[int] = set()
        self.timeout_s = timing.renew_deadline_s / 2
        for index in range(replicas):
            self.at(self.rng.uniform(0, 1), "step", index)

    def at(self, when: float, *event) -> None:
        heapq.heappush(self.events, (when, next(self.order), event))

    def local(self, replica: SimReplica) -> float:
        return self.now + replica.offset

    def fault(self, index: int, kind: str) -> Fault | None:
        return next(
            (
                f
                for f in self.faults
                if f.replica == index
                and f.kind == kind
                and f.start <= self.now < f.start + f.length
            ),
            None,
        )

    def run(self, until: float) -> None:
        while self.events and self.events[0][0] <= until:
            self.now, _, event = heapq.heappop(self.events)
            getattr(self, f"on_{event[0]}")(*event[1:])
            self.check()

    def check(self) -> None:
        for bucket in range(self.buckets):
            holders = [
                r
                for r in self.replicas
                if holds(r.renewed_at.get(bucket), self.timing, self.local(r))
            ]
            assert len(holders) <= 1, (
                f"t={self.now:.3f}: bucket {bucket} held by {[r.identity for r in holders]}"
            )
            if holders:
                self.ever_held.add(bucket)

    def names(self) -> list[str]:
        return [bucket_lease_name("leadtime", b, self.buckets) for b in range(self.buckets)]

    def on_step(self, index: int) -> None:
        paused = self.fault(index, "pause")
        if paused is not None:
            self.at(paused.start + paused.length, "step", index)
            return
        if self.fault(index, "partition") is not None:  # the list fails
            self.at(self.now + self.timeout_s + self.timing.retry_period_s, "step", index)
            return
        snapshot = dict(self.store)  # the API server answers the list now...
        self.at(self.now + self.rng.uniform(0, 0.5), "decide", index, snapshot)  # ...seen later

    def on_decide(self, index: int, snapshot: dict[str, LeaseRecord]) -> None:
        replica, now = self.replicas[index], self.local(self.replicas[index])
        for bucket, name in enumerate(self.names()):
            if name in snapshot:
                replica.observed[bucket] = observe(
                    replica.observed.get(bucket), snapshot[name], now
                )
                if snapshot[name].holder != replica.identity:
                    replica.renewed_at.pop(bucket, None)
        replica.members = {
            name: observe(replica.members.get(name), record, now)
            for name, record in snapshot.items()
            if ".member." in name
        }
        own = member_lease_name("leadtime", replica.identity)
        replica.member_rv = snapshot[own].resource_version if own in snapshot else None
        leases = {b: replica.observed.get(b) for b in range(self.buckets)}
        decisions = decide(replica.identity, self.buckets, leases, replica.members.values(), now)
        done = self.now
        member = acquired_record(
            None, replica.identity, self.timing.lease_duration_s, f"{self.now:.6f}"
        )
        done = max(
            done,
            self.send(index, own, replace(member, resource_version=replica.member_rv), None, now),
        )
        for bucket, action in decisions.items():
            current = replica.observed.get(bucket)
            if action == RELEASE:
                replica.renewed_at.pop(bucket, None)
                assert current is not None
                record = released_record(current.record, f"{self.now:.6f}")
            else:
                record = acquired_record(
                    current.record if current else None,
                    replica.identity,
                    self.timing.lease_duration_s,
                    f"{self.now:.6f}",
                )
            done = max(
                done,
                self.send(
                    index, self.names()[bucket], record, None if action == RELEASE else bucket, now
                ),
            )
        self.at(done + self.timing.retry_period_s, "step", index)

    def send(
        self, index: int, name: str, record: LeaseRecord, bucket: int | None, sent: float
    ) -> float:
        """One conditional write: lands after a delay (unless the partition eats it), answered
        after another; the answer counts only within the call timeout. Returns when the
        replica stops waiting for it."""
        there, back = self.rng.uniform(0, self.max_delay_s), self.rng.uniform(0, self.max_delay_s)
        partitioned = self.fault(index, "partition") is not None
        if not partitioned or self.rng.random() < 0.5:
            self.at(
                self.now + there,
                "land",
                index,
                name,
                record,
                bucket,
                sent,
                partitioned or there + back > self.timeout_s,
                back,
            )
        return self.now + min(there + back, self.timeout_s)

    def on_land(
        self,
        index: int,
        name: str,
        record: LeaseRecord,
        bucket: int | None,
        sent: float,
        answer_lost: bool,
        back: float,
    ) -> None:
        current = self.store.get(name)
        expected = current.resource_version if current else None
        ok = record.resource_version == expected  # create needs "no object" (None == None)
        if ok:
            self.store[name] = replace(record, resource_version=str(next(self.version)))
        if ok and bucket is not None and not answer_lost:
            self.at(self.now + back, "answer", index, bucket, sent)

    def on_answer(self, index: int, bucket: int, sent: float) -> None:
        replica = self.replicas[index]
        replica.renewed_at[bucket] = max(sent, replica.renewed_at.get(bucket, sent))

    def holders(self) -> dict[int, list[str]]:
        return {
            b: [
                r.identity
                for r in self.replicas
                if holds(r.renewed_at.get(b), self.timing, self.local(r))
            ]
            for b in range(self.buckets)
        }


def test_simulated_replicas_split_the_buckets_and_a_survivor_takes_all():
    sim = Simulation(2, 4, TIMING, [0.0, 3600.0], [], seed=1, max_delay_s=0.05)
    sim.run(30.0)
    owners = sim.holders()
    assert all(len(h) == 1 for h in owners.values()), owners
    assert Counter(h[0] for h in owners.values()) == {"leadtime-0": 2, "leadtime-1": 2}
    sim.faults.append(Fault(1, "pause", 30.0, 10_000.0))  # replica 1 crashes
    sim.run(70.0)
    assert all(h == ["leadtime-0"] for h in sim.holders().values()), sim.holders()


faults = st.lists(
    st.builds(
        Fault,
        replica=st.integers(0, 2),
        kind=st.sampled_from(["pause", "partition"]),
        start=st.floats(0, 60),
        length=st.floats(0.5, 40),
    ),
    max_size=4,
)


@settings(max_examples=200, deadline=None)
@given(
    replicas=st.integers(2, 3),
    buckets=st.integers(1, 5),
    offsets=st.lists(st.floats(-1e6, 1e6), min_size=3, max_size=3),
    faults=faults,
    seed=st.integers(0, 2**32 - 1),
)
def test_no_bucket_is_ever_held_by_two_replicas_at_once(replicas, buckets, offsets, faults, seed):
    faults = [f for f in faults if f.replica < replicas]
    sim = Simulation(replicas, buckets, TIMING, offsets, faults, seed)
    sim.run(110.0)  # check() runs after every event: a second holder would fail there
    # Faults are over by t = 100 s; with a calm network again, every bucket has exactly one
    # holder and none holds above its share.
    sim.max_delay_s = 0.2
    sim.run(200.0)
    assert sim.ever_held == set(range(buckets))
    owners = sim.holders()
    assert all(len(h) == 1 for h in owners.values()), owners
    share = fair_share(buckets, replicas)
    assert max(Counter(h[0] for h in owners.values()).values()) <= share
