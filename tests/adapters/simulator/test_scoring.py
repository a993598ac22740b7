"""How a run is scored: an SLO every request can meet, and a warm-up that is run, not scored."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from adapters.simulator.config import SimConfig
from adapters.simulator.engine import running_replicas, simulate
from adapters.simulator.requests import build_requests
from adapters.simulator.workload import Workload
from autoscaler.errors import InputError
from autoscaler.policies.static import Static
from autoscaler.policy import Decision, Observation
from autoscaler.slo import met_slo, wait_budget

# One prompt token costs 0.1 s of prefill, one output token 1 s of decode.
EXACT = {"prefill_s_per_token": 0.1, "decode_s_per_token": 1.0, "cold_start_sigma": 0.0}


def workload(times, prompt, output, duration) -> Workload:
    return Workload(
        name="test",
        times=np.asarray(times, dtype=float),
        duration=float(duration),
        prompt_tokens=np.asarray(prompt, dtype=np.int64),
        output_tokens=np.asarray(output, dtype=np.int64),
    )


class Hold:
    """Keeps the replicas it has; starts from none of its own."""

    name = "hold"
    tick_s = 1.0
    history_s = 0.0
    pokeable = False

    def initial_replicas(self) -> int:
        return 0

    def initial_state(self, now: float, ready: int) -> None:
        return None

    def decide(self, observation: Observation, state: None) -> tuple[Decision, None]:
        held = observation.ready + observation.pending
        return Decision(held, "hold", ""), None


def test_short_prompts_keep_the_plain_ttft_rule():
    prefill = np.array([0.1, 0.5, 1.0])
    np.testing.assert_allclose(wait_budget(prefill, 2.0), [1.9, 1.5, 1.0])
    # TTFT = wait + prefill: 2.0 exactly meets, a hair more misses
    assert met_slo(np.array([1.9]), np.array([0.1]), 2.0).all()
    assert not met_slo(np.array([1.9001]), np.array([0.1]), 2.0).any()


def test_a_long_prompt_is_judged_on_its_wait_alone():
    # prefill 8 s: TTFT can never be 2 s, so it may wait half the SLO
    prefill = np.array([1.5, 3.0, 8.0])
    np.testing.assert_allclose(wait_budget(prefill, 2.0), [1.0, 1.0, 1.0])
    assert met_slo(np.array([0.0, 1.0, 1.0]), prefill, 2.0).all()
    assert not met_slo(np.array([1.01]), np.array([8.0]), 2.0).any()


def test_the_wait_budget_is_continuous_and_never_below_half_the_slo():
    prefill = np.linspace(0.0, 10.0, 1001)
    budget = wait_budget(prefill, 2.0)
    assert budget.min() == pytest.approx(1.0)
    assert np.abs(np.diff(budget)).max() <= 0.0100001


def test_a_request_that_never_started_misses():
    assert not met_slo(np.array([np.nan]), np.array([0.1]), 2.0).any()


def test_the_simulator_scores_long_prompts_by_their_wait():
    # one replica, one slot: a 30-token prompt (3 s prefill) starts at once and meets the SLO;
    # the second waits 4 s (the first's 3 s prefill + 1 s decode) and misses; a short prompt
    # that finds the slot free meets it
    config = SimConfig(max_concurrency=1, slo_ttft_s=2.0, warmup_s=0.0, **EXACT)
    result = simulate(
        workload([0.0, 0.0, 10.0], prompt=[30, 1, 1], output=[0, 1, 1], duration=12),
        Static(1),
        config,
    )
    np.testing.assert_allclose(result.outcomes["ttft"], [3.0, 4.1, 0.1])
    np.testing.assert_array_equal(result.outcomes["met_slo"], [True, False, True])


def test_warm_up_requests_and_gpu_seconds_are_not_scored():
    # 100 s window, 10 s warm-up: requests at 1 s and 5 s are run but not scored
    config = SimConfig(max_concurrency=1, warmup_s=10.0, **EXACT)
    result = simulate(
        workload([1.0, 5.0, 20.0, 50.0], [1] * 4, [1] * 4, duration=100), Static(2), config
    )
    summary = result.summary
    assert summary["requests"] == 2
    assert summary["warmup_s"] == 10.0
    np.testing.assert_array_equal(result.outcomes["arrived"], [False, False, True, True])
    # two replicas held from 0 to the end, counted from the warm-up's end
    end = summary["duration_s"]
    assert summary["gpu_seconds"] == pytest.approx(2 * (end - 10.0))
    assert summary["mean_ready_replicas"] == pytest.approx(2.0)


def test_without_warm_up_the_run_is_scored_from_its_first_request():
    config = SimConfig(max_concurrency=1, warmup_s=0.0, **EXACT)
    result = simulate(
        workload([1.0, 5.0, 20.0, 50.0], [1] * 4, [1] * 4, duration=100), Static(2), config
    )
    assert result.summary["requests"] == 4
    assert result.summary["gpu_seconds"] == pytest.approx(2 * result.summary["duration_s"])


def test_the_default_warm_up_is_a_tenth_of_the_window_at_most_an_hour():
    assert SimConfig().warmup_for(3600.0) == pytest.approx(360.0)
    assert SimConfig().warmup_for(7 * 86400.0) == pytest.approx(3600.0)
    assert SimConfig(warmup_s=0.0).warmup_for(3600.0) == 0.0


def test_a_warm_up_as_long_as_the_window_is_refused_naming_the_flag():
    with pytest.raises(InputError, match=r"--warmup.*shorter than the window"):
        SimConfig(warmup_s=600.0).warmup_for(600.0)
    with pytest.raises(InputError, match="--warmup"):
        SimConfig(warmup_s=-1.0)


def test_a_warm_run_starts_with_the_replicas_its_first_minute_keeps_busy():
    # 10 rps of 2 s requests: 20 in flight; 8 slots at 70 % → 4 replicas
    times = np.arange(0.0, 600.0, 0.1)
    load = workload(times, [10] * times.size, [1] * times.size, duration=600)
    config = SimConfig(warmup_s=60.0, **EXACT)
    requests = build_requests(load, config)
    assert running_replicas(requests, 8) == 4
    # a policy that holds what it has starts from zero replicas cold, from four warm
    assert simulate(load, Hold(), config).ticks.ready[0] == 4
    assert simulate(load, Hold(), SimConfig(warmup_s=0.0, **EXACT)).ticks.ready[0] == 0


def test_every_policy_costs_at_least_the_oracle_bound_in_the_scored_window():
    rng = np.random.default_rng(7)
    times = np.sort(rng.uniform(0, 1800, 4000))
    load = workload(times, rng.integers(1, 40, times.size), rng.integers(1, 4, times.size), 1800)
    for replicas in (1, 3, 8):
        result = simulate(load, Static(replicas), SimConfig(warmup_s=300.0, **EXACT))
        summary = result.summary
        assert summary["gpu_seconds"] >= summary["oracle_gpu_seconds"] - 1e-6


def test_leadtime_run_takes_over_a_running_service_with_its_warm_up_as_history():
    from adapters.simulator.live import LiveCluster
    from autoscaler.ports import ServiceKey

    key = ServiceKey("default", "steady")
    times = np.arange(0.0, 3600.0, 0.1)
    load = workload(times, [10] * times.size, [1] * times.size, duration=3600)
    cluster = LiveCluster([(key, load)], SimConfig(**EXACT))
    takeover = cluster.warm_up()
    assert takeover == pytest.approx(360.0)
    # 10 rps of 2 s requests keep 20 in flight: 4 replicas at 70 % of 8 slots, all ready
    status = asyncio.run(cluster.status([key]))[key]
    assert (status.ready, status.pending) == (4, 0)
    history = asyncio.run(cluster.history(key, 0.0, takeover))
    assert history.size == 360 and history.sum() == pytest.approx(3600)
    # nothing before the take-over is scored: of 3,601 arrivals so far, only the one at 360 s
    (result,) = cluster.results()
    assert result.summary["requests"] == 1
