"""The oracle: the lower bound worked by hand, and the clairvoyant policy that sits above it."""

from __future__ import annotations

import numpy as np
import pytest

from adapters.simulator.config import SimConfig
from adapters.simulator.engine import simulate
from adapters.simulator.oracle import (
    forward_max,
    level_cover_cost,
    lower_bound_gpu_seconds,
    occupancy,
    oracle_need_ahead,
    zero_wait_need,
)
from adapters.simulator.requests import build_requests
from adapters.simulator.workload import Workload
from autoscaler.policies.oracle import Oracle


def test_occupancy_frees_a_slot_before_taking_it_at_the_same_instant():
    times, counts = occupancy(np.array([0.0, 2.0]), np.array([2.0, 3.0]))
    assert times.tolist() == [0.0, 2.0, 3.0]
    assert counts.tolist() == [1.0, 1.0, 0.0]  # never 2: the second starts as the first ends


def test_level_cost_bridges_short_gaps_and_restarts_after_long_ones():
    # level 1 is needed on [100, 110) and [200, 210); level 2 on [105, 110)
    times = np.array([100.0, 105.0, 110.0, 200.0, 210.0])
    levels = np.array([1, 2, 0, 1, 0])
    # level 1: 10 + 10 needed, first start min(100, 30) = 30, gap 90 → min(90, 30) = 30
    # level 2: 5 needed, first start min(105, 30) = 30
    assert level_cover_cost(times, levels, cold_start=30.0) == pytest.approx(20 + 30 + 30 + 5 + 30)
    # with a cold start longer than the gap, keeping the replica (90 s) is cheaper
    assert level_cover_cost(times, levels, cold_start=120.0) == pytest.approx(
        20 + 100 + 90 + 5 + 105
    )


def test_lower_bound_uses_only_the_mandatory_part_of_each_request():
    # one request: arrives 10, prefill 1 s, service 10 s, SLO 3 s → it must hold a slot on
    # [10 + 3 − 1, 10 + 10) = [12, 20): 8 s, plus a cold start of at most min(12, 5) = 5
    bound = lower_bound_gpu_seconds(
        np.array([10.0]),
        np.array([1.0]),
        np.array([10.0]),
        np.array([True]),
        slo_ttft_s=3.0,
        slots=1,
        shortest_cold_start=5.0,
        gpus_per_replica=2,
    )
    assert bound == pytest.approx(2 * (8 + 5))
    none = lower_bound_gpu_seconds(
        np.array([10.0]),
        np.array([1.0]),
        np.array([10.0]),
        np.array([False]),
        slo_ttft_s=3.0,
        slots=1,
        shortest_cold_start=5.0,
        gpus_per_replica=1,
    )
    assert none == 0.0


def test_zero_wait_need_is_the_peak_within_each_second():
    # three requests overlap within second 1 on two slots per replica
    need = zero_wait_need(np.array([1.0, 1.2, 1.4]), np.array([0.5, 0.5, 3.0]), 2, 6)
    assert need.tolist() == [0, 2, 1, 1, 1, 0]


def test_forward_max_looks_ahead_over_the_window():
    values = np.array([0, 0, 3, 0, 0, 0, 1])
    assert forward_max(values, 3).tolist() == [3, 3, 3, 0, 1, 1, 1]


def test_oracle_policy_serves_every_request_without_waiting_and_above_the_bound():
    rng = np.random.default_rng(7)
    times = np.sort(rng.uniform(0, 1800, 2000))
    prompt = rng.integers(100, 2000, times.size)
    output = rng.integers(5, 200, times.size)
    work = Workload("burst", times, 1800.0, prompt, output)
    config = SimConfig(cold_start_s=60.0)
    requests = build_requests(work, config)
    need = oracle_need_ahead(
        requests.arrival,
        requests.service,
        slots=config.max_concurrency,
        longest_cold_start=config.cold_start_bounds[1],
        tick_s=2.0,
        seconds=4000,
    )
    result = simulate(work, Oracle(need), config)
    # no request ever waits: TTFT is exactly the prefill
    np.testing.assert_allclose(result.outcomes["ttft"], requests.prefill, atol=1e-9)
    assert result.summary["cold_start_requests"] == 0
    assert result.summary["gpu_seconds"] >= result.summary["oracle_gpu_seconds"]
