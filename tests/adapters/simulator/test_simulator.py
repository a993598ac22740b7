"""The simulator: exact small cases worked by hand, and invariants on random workloads."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.simulator.config import SimConfig
from adapters.simulator.engine import ServiceSpec, simulate, simulate_services
from adapters.simulator.workload import Workload
from autoscaler.errors import InputError
from autoscaler.policies.placeholders import ScaleUpNeed
from autoscaler.policies.static import Static
from autoscaler.policy import Decision, Observation

# One token of prefill costs 0.1 s and one output token 1 s, so service times are easy to read.
EXACT = {
    "prefill_s_per_token": 0.1,
    "decode_s_per_token": 1.0,
    "cold_start_sigma": 0.0,
    "warmup_s": 0.0,
}
"""Hand-worked runs: whole-second services, exact cold starts, scored from the first request."""


def workload(times, prompt=None, output=None, duration=None) -> Workload:
    times = np.asarray(times, dtype=float)
    n = times.size
    return Workload(
        name="test",
        times=times,
        duration=float(duration if duration is not None else (times.max(initial=0.0) + 1.0)),
        prompt_tokens=np.asarray(prompt if prompt is not None else [1] * n, dtype=np.int64),
        output_tokens=np.asarray(output if output is not None else [1] * n, dtype=np.int64),
    )


@dataclass(frozen=True)
class Scripted:
    """Desired replicas by time: the last step at or before `now` wins; records what it saw."""

    steps: tuple[tuple[float, int], ...]
    tick_s: float = 1.0
    history_s: float = 30.0
    pokeable: bool = False
    poke_to: int = 1
    name: str = "scripted"
    seen: list = field(default_factory=list, compare=False)

    def initial_replicas(self) -> int:
        return self.steps[0][1] if self.steps[0][0] <= 0 else 0

    def initial_state(self, now: float, ready: int) -> None:
        return None

    def decide(self, observation: Observation, state: None) -> tuple[Decision, None]:
        self.seen.append(observation)
        desired = 0
        for at, count in self.steps:
            if at <= observation.now:
                desired = count
        if observation.poke:
            desired = max(desired, self.poke_to)
        return Decision(desired, "scripted"), None


def test_fifo_queue_on_one_slot_is_worked_by_hand():
    # one replica, one slot; services: 0.1 + 2 = 2.1 s, 0.1 + 1 = 1.1 s, 0.1 + 1 = 1.1 s
    config = SimConfig(max_concurrency=1, slo_ttft_s=1.0, **EXACT)
    result = simulate(workload([0.0, 0.5, 1.0], output=[2, 1, 1]), Static(1), config)
    start, end = result.outcomes["start"], result.outcomes["end"]
    np.testing.assert_allclose(start, [0.0, 2.1, 3.2])
    np.testing.assert_allclose(end, [2.1, 3.2, 4.3])
    # TTFT = wait + prefill: 0.1, 1.7, 2.3 → only the first meets a 1 s SLO
    np.testing.assert_allclose(result.outcomes["ttft"], [0.1, 1.7, 2.3])
    assert result.summary["slo_attainment"] == pytest.approx(1 / 3)
    assert result.summary["served_requests"] == 3
    # the run lasts until the last request finishes: one warm replica for 4.3 s
    assert result.summary["gpu_seconds"] == pytest.approx(4.3)


def test_per_second_concurrency_and_queue_are_exact_time_averages():
    config = SimConfig(max_concurrency=1, **EXACT)
    result = simulate(workload([0.0, 0.5, 1.0], output=[2, 1, 1]), Static(1), config)
    # in system: [0, 2.1), [0.5, 3.2), [1.0, 4.3); queued: [0.5, 2.1), [1.0, 3.2)
    np.testing.assert_allclose(result.series["concurrency"], [1.5, 3.0, 2.1, 1.2, 0.3])
    np.testing.assert_allclose(result.series["queue"], [0.5, 2.0, 1.1, 0.2, 0.0])


def test_a_request_that_waits_longer_than_the_timeout_is_dropped():
    config = SimConfig(max_concurrency=1, request_timeout_s=5.0, **EXACT)
    result = simulate(workload([0.0, 1.0], output=[10, 1]), Static(1), config)
    assert result.outcomes["dropped"].tolist() == [False, True]
    assert result.outcomes["end"][1] == pytest.approx(6.0)  # dropped at arrival + timeout
    assert result.summary["dropped_requests"] == 1
    assert result.summary["served_requests"] == 1


def test_scale_from_zero_waits_one_cold_start_and_counts_as_cold_start():
    config = SimConfig(cold_start_s=60.0, **EXACT)
    policy = Scripted(steps=((0.0, 0), (10.0, 1)), pokeable=True, tick_s=7.0)
    result = simulate(workload([10.0, 10.5, 200.0]), policy, config)
    # the first request pokes the policy at 10.0 (ticks are at 7 and 14), which requests a
    # replica, ready at 70.0; both early requests wait for it, the late one finds it warm
    np.testing.assert_allclose(result.outcomes["start"][:2], [70.0, 70.0])
    assert result.outcomes["cold_start"].tolist() == [True, True, False]
    assert result.summary["cold_start_requests"] == 2
    assert any(seen.poke for seen in policy.seen)


def test_policy_sees_series_delayed_by_the_metrics_delay():
    config = SimConfig(metrics_delay_s=15.0, **EXACT)
    policy = Scripted(steps=((0.0, 1),), history_s=1000.0)
    simulate(workload(np.arange(0.0, 60.0, 0.5), duration=60.0), policy, config)
    at_40 = next(seen for seen in policy.seen if seen.now == 40.0)
    assert at_40.concurrency.size == 25  # whole seconds 0..24 are visible at 40 s
    assert at_40.arrivals.tolist() == [2.0] * 25


def test_scale_down_drains_in_flight_work_before_the_replica_is_gone():
    # two warm replicas, each with one request; at t=1 the policy wants one replica
    config = SimConfig(max_concurrency=1, **EXACT)
    policy = Scripted(steps=((0.0, 2), (1.0, 1)))
    result = simulate(workload([0.0, 0.2], output=[5, 1], duration=1.0), policy, config)
    # request 0 runs [0, 5.1), request 1 [0.2, 1.3): equally loaded, so the replica whose work
    # ends first (1.3) drains and is gone at 1.3; the other serves until 5.1
    assert result.summary["served_requests"] == 2
    assert result.summary["gpu_seconds"] == pytest.approx(1.3 + 5.1)


def test_draining_replica_costs_until_its_last_request_finishes():
    config = SimConfig(max_concurrency=1, **EXACT)
    policy = Scripted(steps=((0.0, 1), (1.0, 0)))
    result = simulate(workload([0.0], output=[5], duration=1.0), policy, config)
    assert result.outcomes["end"][0] == pytest.approx(5.1)
    assert result.summary["gpu_seconds"] == pytest.approx(5.1)


def test_bounded_gpu_pool_makes_replicas_wait_and_provisioning_adds_nodes():
    base = dict(cold_start_s=10.0, gpu_pool=1, gpus_per_node=1, **EXACT)
    policy = Scripted(steps=((0.0, 1), (5.0, 2)))
    waiting = simulate(
        workload([0.0], duration=40.0), policy, SimConfig(node_provisioning_s=0.0, **base)
    )
    assert waiting.summary["replicas_started"] == 1  # the second replica never got a GPU
    provisioned = simulate(
        workload([0.0], duration=40.0), policy, SimConfig(node_provisioning_s=20.0, **base)
    )
    assert provisioned.summary["replicas_started"] == 2
    ticks = provisioned.ticks
    ready_at_36 = [r for t, r in zip(ticks.time, ticks.ready, strict=True) if t == 36.0]
    assert ready_at_36 == [2]  # node up at 25 s, cold start 10 s → ready at 35 s


@dataclass(frozen=True)
class Pooling(Scripted):
    """A scripted policy that also asks the cluster to hold `hold` placeholder replicas."""

    hold: int = 1

    def scale_up_need(self, observation, state, *, current, within_s, gpu_class, gpus_per_replica):
        return ScaleUpNeed(gpu_class, gpus_per_replica, self.hold, self.hold)


def ready_at(result, time):
    return [r for t, r in zip(result.ticks.time, result.ticks.ready, strict=True) if t == time]


def test_a_placeholder_brings_the_node_in_ahead_and_a_replica_preempts_it_at_once():
    config = SimConfig(
        cold_start_s=10.0, gpu_pool=1, gpus_per_node=1, node_provisioning_s=100.0, **EXACT
    )
    steps = ((0.0, 1), (120.0, 2))
    plain = simulate(workload([0.0], duration=300.0), Scripted(steps=steps), config)
    pooled = simulate(workload([0.0], duration=300.0), Pooling(steps=steps), config)
    # without placeholders the second replica waits for a node ordered at 120: 220 + 10
    assert ready_at(plain, 229.0) == [1] and ready_at(plain, 231.0) == [2]
    # the placeholder, pending from the first tick, had a node ordered at 0 (up at 100); the
    # replica preempts it at 120 and is ready one cold start later
    assert ready_at(pooled, 131.0) == [2]
    summary = pooled.summary
    assert summary["placeholder_preemptions"] == 1
    assert summary["nodes_added"] == 2  # the preempted placeholder orders its own node
    # held 100 → 120, then again from 220 (its new node) to the end at 300
    assert summary["placeholder_gpu_seconds"] == pytest.approx(20.0 + 80.0)
    # replicas: the first 0 → 300, the second from its GPU grant (220 plain, 120 pooled)
    assert plain.summary["gpu_seconds"] == pytest.approx(300.0 + 80.0)
    assert summary["gpu_seconds"] == pytest.approx(300.0 + 180.0)
    # GPUs up: the pool's one all along, plus a node from 220 (plain) or from 100 and 220
    assert plain.summary["cluster_gpu_seconds"] == pytest.approx(300.0 + 80.0)
    assert summary["cluster_gpu_seconds"] == pytest.approx(300.0 + 200.0 + 80.0)


def test_services_share_the_gpu_pool_and_the_total_adds_them_up():
    config = SimConfig(gpu_pool=3, node_provisioning_s=0.0, **EXACT)
    specs = [
        ServiceSpec(workload([0.0, 1.0], duration=20.0), Static(2)),
        ServiceSpec(workload([0.5], duration=20.0), Static(2)),
    ]
    first, second, total = simulate_services(specs, config)
    assert (first.summary["replicas_started"], second.summary["replicas_started"]) == (2, 1)
    assert total.trace == "total"
    assert total.summary["requests"] == 3
    assert total.summary["gpu_seconds"] == pytest.approx(
        first.summary["gpu_seconds"] + second.summary["gpu_seconds"]
    )
    assert total.summary["slo_attainment"] == 1.0


def test_each_service_draws_its_own_tokens():
    trace = Workload(name="same", times=np.arange(50.0), duration=50.0)
    specs = [ServiceSpec(trace, Static(1)), ServiceSpec(trace, Static(1))]
    first, second, _ = simulate_services(specs, SimConfig())
    assert not np.array_equal(first.outcomes["latency"], second.outcomes["latency"])


def test_a_provisioned_node_left_empty_is_removed_after_the_idle_time():
    config = SimConfig(
        cold_start_s=10.0,
        gpu_pool=1,
        gpus_per_node=1,
        node_provisioning_s=10.0,
        node_idle_s=50.0,
        **EXACT,
    )
    steps = ((0.0, 1), (5.0, 2), (40.0, 1), (100.0, 2))
    result = simulate(workload([0.0], duration=150.0), Scripted(steps=steps), config)
    # node ordered at 5 (up at 15), freed at 40, removed 50 s later; the scale-up at 100 needs
    # a new node: up at 110, ready at 120
    assert result.summary["nodes_added"] == 2
    assert ready_at(result, 119.0) == [1] and ready_at(result, 121.0) == [2]


def test_until_stops_early_and_leaves_requests_in_flight():
    config = SimConfig(max_concurrency=1, **EXACT)
    result = simulate(workload([0.0, 0.1, 0.2], output=[10, 10, 10]), Static(1), config, until=12.0)
    summary = result.summary
    assert summary["served_requests"] == 1
    assert summary["in_flight_requests"] == 2
    assert (
        summary["served_requests"] + summary["dropped_requests"] + summary["in_flight_requests"]
        == summary["requests"]
    )


def test_bad_simulator_config_names_the_field_and_flag():
    with pytest.raises(InputError, match=r"max_concurrency \(--max-concurrency\).*>= 1"):
        SimConfig(max_concurrency=0)
    with pytest.raises(InputError, match=r"cold_start_s \(--cold-start\)"):
        SimConfig(cold_start_s=-1)


# ---------------------------------------------------------------------------- invariants


@st.composite
def scenarios(draw):
    n = draw(st.integers(0, 60))
    times = sorted(draw(st.lists(st.floats(0, 300), min_size=n, max_size=n)))
    prompt = draw(st.lists(st.integers(1, 40), min_size=n, max_size=n))
    output = draw(st.lists(st.integers(1, 30), min_size=n, max_size=n))
    steps = draw(st.lists(st.tuples(st.floats(0, 400), st.integers(0, 4)), min_size=1, max_size=8))
    config = SimConfig(
        max_concurrency=draw(st.integers(1, 3)),
        cold_start_s=draw(st.floats(1, 60)),
        cold_start_sigma=draw(st.sampled_from([0.0, 0.2])),
        request_timeout_s=draw(st.floats(1, 100)),
        slo_ttft_s=draw(st.floats(0.5, 10)),
        prefill_s_per_token=0.05,
        decode_s_per_token=0.5,
        metrics_delay_s=draw(st.sampled_from([0.0, 15.0])),
        gpu_pool=draw(st.sampled_from([None, 2, 3])),
        node_provisioning_s=draw(st.sampled_from([0.0, 30.0])),
        gpus_per_node=1,
        seed=draw(st.integers(0, 5)),
    )
    policy = Scripted(steps=tuple(sorted(steps)), pokeable=draw(st.booleans()))
    until = draw(st.one_of(st.none(), st.floats(1, 400)))
    return workload(times, prompt, output, duration=310.0), policy, config, until


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_invariants_hold_on_random_scenarios(scenario):
    work, policy, config, until = scenario
    result = simulate(work, policy, config, until=until)
    s = result.summary
    # conservation: every arrival is served, dropped or still in the system
    assert s["served_requests"] + s["dropped_requests"] + s["in_flight_requests"] == s["requests"]
    assert s["in_flight_requests"] >= 0
    # the oracle bound holds whatever the policy did
    assert s["gpu_seconds"] >= s["oracle_gpu_seconds"] - 1e-6
    # nothing starts before it arrives; each started request runs for its full service
    started = result.outcomes["start"] >= 0
    assert np.all(result.outcomes["start"][started] >= work.times[started] - 1e-9)
    assert 0.0 <= s["slo_attainment"] <= 1.0
    # the same seed gives the same run
    again = simulate(
        work, Scripted(steps=policy.steps, pokeable=policy.pokeable), config, until=until
    )
    assert {k: v for k, v in again.summary.items() if k != "sim_wall_s"} == {
        k: v for k, v in s.items() if k != "sim_wall_s"
    }


@settings(max_examples=60, deadline=None)
@given(scenarios())
def test_concurrency_series_matches_a_brute_force_integral(scenario):
    work, policy, config, _ = scenario
    result = simulate(work, policy, config)
    start, end = work.times, result.outcomes["end"]
    seconds = result.series["concurrency"].size
    expected = np.zeros(seconds)
    for a, e in zip(start, end, strict=True):
        for second in range(int(a), min(int(np.ceil(e)), seconds)):
            expected[second] += max(0.0, min(e, second + 1) - max(a, second))
    np.testing.assert_allclose(result.series["concurrency"], expected, atol=1e-6)
