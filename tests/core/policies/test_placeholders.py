"""The placeholder pool's sizing: pure arithmetic over the services' forecast growth."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autoscaler.policies.placeholders import ScaleUpNeed, placeholder_pods


def test_expected_growth_adds_up_and_surprises_add_in_quadrature():
    needs = [ScaleUpNeed("gpu", 1, 2, 5), ScaleUpNeed("gpu", 1, 1, 5)]
    # 3 expected + sqrt(3² + 4²) = 8
    assert placeholder_pods(needs) == {"gpu": 8}


def test_pooling_holds_fewer_than_separate_pools():
    needs = [ScaleUpNeed("gpu", 1, 0, 3) for _ in range(4)]
    pooled = placeholder_pods(needs)["gpu"]
    separate = sum(placeholder_pods([need])["gpu"] for need in needs)
    assert (pooled, separate) == (6, 12)


def test_classes_are_sized_apart_and_pods_fit_the_largest_replica():
    needs = [
        ScaleUpNeed("a100", 2, 1, 1),  # 2 GPUs expected
        ScaleUpNeed("a100", 4, 1, 1),  # 4 GPUs expected → 6 GPUs in 4-GPU pods: 2 pods
        ScaleUpNeed("l4", 1, 0, 0),
    ]
    assert placeholder_pods(needs) == {"a100": 2, "l4": 0}


def test_no_services_no_placeholders():
    assert placeholder_pods([]) == {}


@pytest.mark.parametrize(
    ("gpus", "expected", "upper", "message"),
    [(0, 1, 1, "gpus_per_replica"), (1, 2, 1, "expected <= upper"), (1, -1, 1, "expected")],
)
def test_bad_needs_are_refused(gpus, expected, upper, message):
    with pytest.raises(ValueError, match=message):
        ScaleUpNeed("gpu", gpus, expected, upper)


growth = st.tuples(st.integers(0, 20), st.integers(0, 20)).map(sorted)


@given(st.lists(growth, max_size=12))
def test_the_pool_lies_between_the_expected_sum_and_the_sum_of_upper_bounds(pairs):
    needs = [ScaleUpNeed("gpu", 1, low, high) for low, high in pairs]
    pods = placeholder_pods(needs).get("gpu", 0)
    assert sum(low for low, _ in pairs) <= pods <= sum(high for _, high in pairs)
    # and covers any one service's upper bound: one burst never outgrows the pool
    assert pods >= max((high for _, high in pairs), default=0)
