"""The queueing rule of the Leadtime policy (`autoscaler/policies/queueing.py`) against figures
computed by hand: Erlang's C for M/M/1, M/M/2 and the textbook M/M/10, the M/M/1 waiting-time
tail, the fewest replicas on hand cases, and the properties the policy relies on (more replicas
never miss more, peaked arrivals never need fewer, the forecast's Poisson noise is not counted
twice)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.policies import queueing

ONE = np.ones(1)


def erlang_c_reference(servers: int, offered: float) -> float:
    """Erlang's C by the textbook recursion on Erlang's B (independent of the module's pdtr):
    B(0) = 1, B(k) = a·B(k−1) / (k + a·B(k−1)), C = c·B / (c − a·(1 − B))."""
    if offered >= servers:
        return 1.0
    blocking = 1.0
    for k in range(1, servers + 1):
        blocking = offered * blocking / (k + offered * blocking)
    return servers * blocking / (servers - offered * (1 - blocking))


def one_rate(rate: float) -> np.ndarray:
    """A window of one step at one rate level: shape (rows=1, steps=1, levels=1)."""
    return np.array([[[rate]]])


def row(value: float) -> np.ndarray:
    return np.array([value], dtype=float)


# --- Erlang's C ------------------------------------------------------------------------------


def test_erlang_c_of_one_server_is_its_utilisation():
    # M/M/1: a request waits at all exactly when the server is busy, P = ρ = a.
    assert queueing.erlang_c(np.array(1.0), np.array(0.5)) == pytest.approx(0.5, abs=1e-12)
    assert queueing.erlang_c(np.array(1.0), np.array(0.9)) == pytest.approx(0.9, abs=1e-12)


def test_erlang_c_of_two_servers_at_one_erlang_is_a_third():
    # C(2, 1) = (a²/2!·c/(c−a)) / (1 + a + a²/2!·c/(c−a)) = (1/2·2) / (1 + 1 + 1) = 1/3
    assert queueing.erlang_c(np.array(2.0), np.array(1.0)) == pytest.approx(1 / 3, abs=1e-12)


def test_erlang_c_of_ten_servers_at_eight_erlangs_is_the_textbook_value():
    assert queueing.erlang_c(np.array(10.0), np.array(8.0)) == pytest.approx(0.4092, abs=5e-5)


def test_erlang_c_is_one_without_a_steady_state_and_zero_without_load():
    servers = np.array([1.0, 3.0, 3.0, 40.0, 5.0, 1.0])
    offered = np.array([1.0, 3.0, 5.0, 400.0, 0.0, 0.0])
    np.testing.assert_array_equal(queueing.erlang_c(servers, offered), [1, 1, 1, 1, 0, 0])


@given(servers=st.integers(1, 300), utilisation=st.floats(0.01, 0.999))
def test_erlang_c_agrees_with_the_textbook_recursion(servers, utilisation):
    offered = servers * utilisation
    got = float(queueing.erlang_c(np.array(float(servers)), np.array(offered)))
    assert got == pytest.approx(erlang_c_reference(servers, offered), rel=1e-7, abs=1e-12)


# --- the waiting-time tail -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "service_s", "wait_s"), [(0.5, 1.0, 1.0), (0.6, 1.0, 2.0), (0.09, 10.0, 3.0)]
)
def test_the_mm1_tail_is_rho_times_an_exponential(rate, service_s, wait_s):
    # M/M/1: P(W > t) = ρ·exp(−(μ − λ)·t) with μ = 1 / s and ρ = λ / μ
    mu = 1 / service_s
    rho = rate / mu
    expected = rho * math.exp(-(mu - rate) * wait_s)
    got = queueing.wait_exceeds(
        np.array(1.0), np.array(rate * service_s), np.array(service_s), np.array(wait_s)
    )
    assert float(got) == pytest.approx(expected, rel=1e-12)


@given(rate=st.floats(0.001, 0.99), service_s=st.floats(0.1, 30.0), wait_s=st.floats(0.0, 60.0))
def test_the_mm1_tail_holds_for_any_stable_queue(rate, service_s, wait_s):
    offered = rate  # rate in units of the service rate: a = ρ
    expected = offered * math.exp(-(1 - offered) * wait_s / service_s)
    got = queueing.wait_exceeds(
        np.array(1.0), np.array(offered), np.array(service_s), np.array(wait_s)
    )
    assert float(got) == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_an_overloaded_queue_misses_everything_whatever_the_budget():
    got = queueing.wait_exceeds(np.array(4.0), np.array(6.0), np.array(1.0), np.array(100.0))
    assert float(got) == 1.0


# --- the fewest replicas ---------------------------------------------------------------------


def fewest(rate, slots, service_s, wait_s, budget, peakedness=None):
    z = None if peakedness is None else row(peakedness)
    return int(
        queueing.fewest_replicas(
            one_rate(rate), ONE, row(slots), row(service_s), row(wait_s), row(budget), z
        )[0]
    )


def miss(replicas, rate, slots, service_s, wait_s, peakedness=1.0):
    return float(
        queueing.miss_share(
            np.array([replicas]),
            one_rate(rate),
            ONE,
            row(slots),
            row(service_s),
            row(wait_s),
            row(peakedness),
        )[0]
    )


def test_one_replica_of_one_slot_is_an_mm1_queue():
    # 0.5 req/s, 1 s in service, a 1 s wait budget: one replica misses ρ·e^(−(μ−λ)·1) = 0.303;
    # two (M/M/2, a = 0.5) miss C(2, 0.5)·e^(−1.5) = 0.1 × 0.223 = 0.0223.
    one = 0.5 * math.exp(-0.5)
    two = 0.1 * math.exp(-1.5)
    assert miss(1, 0.5, 1, 1.0, 1.0) == pytest.approx(one, rel=1e-9)
    assert miss(2, 0.5, 1, 1.0, 1.0) == pytest.approx(two, rel=1e-9)
    assert fewest(0.5, 1, 1.0, 1.0, budget=0.31) == 1
    assert fewest(0.5, 1, 1.0, 1.0, budget=0.30) == 2
    assert fewest(0.5, 1, 1.0, 1.0, budget=0.02) == 3


def test_several_replicas_of_eight_slots():
    # 4 req/s × 10 s in service = 40 erlangs on 8-slot replicas, 1 s wait budget, 1 % to miss:
    # 6 replicas (48 slots) leave 8 erlangs of room and miss 7 %, 7 (56 slots) miss 0.22 %.
    assert miss(6, 4.0, 8, 10.0, 1.0) == pytest.approx(0.0701, abs=5e-4)
    assert miss(6, 4.0, 8, 10.0, 1.0) > 0.01
    assert miss(7, 4.0, 8, 10.0, 1.0) <= 0.01
    assert fewest(4.0, 8, 10.0, 1.0, budget=0.01) == 7
    # five replicas (40 slots for 40 erlangs) have no steady state: every request is late
    assert miss(5, 4.0, 8, 10.0, 1.0) == 1.0


def test_no_arrivals_need_no_replica_and_any_arrival_needs_one():
    assert fewest(0.0, 8, 10.0, 1.0, budget=0.01) == 0
    assert miss(0, 0.0, 8, 10.0, 1.0) == 0.0
    assert fewest(1e-6, 8, 10.0, 1.0, budget=0.01) == 1


def test_rows_are_sized_independently():
    rates = np.array([[[4.0]], [[0.0]], [[0.5]]])
    got = queueing.fewest_replicas(
        rates,
        ONE,
        np.array([8.0, 8.0, 1.0]),
        np.array([10.0, 10.0, 1.0]),
        np.array([1.0, 1.0, 1.0]),
        np.array([0.01, 0.01, 0.30]),
    )
    np.testing.assert_array_equal(got, [7, 0, 2])


MODELS = st.fixed_dictionaries(
    {
        "rate": st.floats(0.0, 60.0),
        "slots": st.sampled_from([1.0, 2.0, 5.6, 8.0, 16.0]),
        "service_s": st.floats(0.1, 30.0),
        "wait_s": st.floats(0.05, 5.0),
        "peakedness": st.floats(1.0, 6.0),
    }
)


@settings(max_examples=200, deadline=None)
@given(model=MODELS, replicas=st.integers(0, 400))
def test_more_replicas_never_miss_more(model, replicas):
    fewer = miss(replicas, **model)
    more = miss(replicas + 1, **model)
    assert 0.0 <= more <= fewer <= 1.0


@settings(max_examples=200, deadline=None)
@given(model=MODELS, budget=st.floats(0.001, 0.25))
def test_the_fewest_replicas_meet_the_budget_and_one_fewer_does_not(model, budget):
    got = fewest(budget=budget, **model)
    assert miss(got, **model) <= budget
    if got > 0:
        assert miss(got - 1, **model) > budget


@settings(max_examples=200, deadline=None)
@given(model=MODELS, budget=st.floats(0.001, 0.25))
def test_peaked_arrivals_never_need_fewer_replicas_than_poisson_ones(model, budget):
    peaked = fewest(budget=budget, **model)
    poisson = fewest(budget=budget, **{**model, "peakedness": 1.0})
    assert peaked >= poisson


WINDOWS = st.fixed_dictionaries(
    {
        "rates": st.lists(st.floats(0.0, 200.0), min_size=1, max_size=8),
        "slots": st.sampled_from([0.3, 1.0, 2.5, 8.0, 16.0]),
        "service_s": st.floats(0.05, 30.0),
        "wait_s": st.floats(0.05, 5.0),
        "peakedness": st.floats(1.0, 30.0),
    }
)


def window_model(window: dict) -> tuple[np.ndarray, ...]:
    """One row of `queueing`'s model: a window of steps at four rate levels around each rate."""
    rates = np.array(window["rates"])[None, :, None] * np.array([0.6, 1.0, 1.4, 2.5])
    return (rates, queueing.LEVEL_WEIGHTS) + tuple(
        row(window[name]) for name in ("slots", "service_s", "wait_s", "peakedness")
    )


@settings(max_examples=300, deadline=None)
@given(window=WINDOWS, replicas=st.integers(0, 300))
def test_the_cheap_bounds_hold_the_exact_miss_share_between_them(window, replicas):
    model = window_model(window)
    low, high = queueing._share_bounds(model, np.array([[float(replicas)]]))
    exact = queueing.miss_share(np.array([float(replicas)]), *model)
    # within the rounding `fewest_replicas` leaves to the exact share (and single precision's
    # floor, far below any budget)
    assert low[0, 0] <= exact[0] * (1 + queueing.MARGIN)
    assert exact[0] <= high[0, 0] * (1 + queueing.MARGIN) + 1e-37


@settings(max_examples=200, deadline=None)
@given(window=WINDOWS, budget=st.floats(0.0005, 0.3), offset=st.integers(-40, 40))
def test_a_hint_changes_the_work_never_the_answer(window, budget, offset):
    rates, weights, slots, service, wait, z = window_model(window)
    args = (rates, weights, slots, service, wait, row(budget), z)
    searched = queueing.fewest_replicas(*args)
    hint = np.maximum(searched + offset, 0)
    assert queueing.fewest_replicas(*args, hint=hint)[0] == searched[0]
    assert queueing.fewest_replicas(*args, hint=searched)[0] == searched[0]


def test_peakedness_costs_replicas_on_a_real_case():
    # the 40-erlang case above: arrivals twice as bursty as Poisson need an 8th replica
    assert fewest(4.0, 8, 10.0, 1.0, budget=0.01, peakedness=1.0) == 7
    assert fewest(4.0, 8, 10.0, 1.0, budget=0.01, peakedness=2.0) == 8


# --- rate levels from the forecast -----------------------------------------------------------


def test_a_forecast_spread_that_is_only_poisson_noise_gives_equal_levels():
    # The variance of a 10-s count at rate m is 10·m, so its rate has sd √(m / 10): a forecast
    # whose p90 is that far above the median knows the rate exactly.
    median = np.array([[0.5, 3.0, 12.0, 40.0]])
    upper = median + queueing.UPPER_Z * np.sqrt(median / 10.0)
    levels, weights = queueing.rate_levels(median, upper, step_s=10.0)
    assert levels.shape == (1, 4, len(weights))
    np.testing.assert_allclose(
        levels, np.repeat(median[..., None], len(weights), axis=2), atol=1e-6
    )
    assert weights.sum() == pytest.approx(1.0)


def test_peaked_arrivals_have_more_count_noise_to_remove():
    # with peakedness 2 a count's variance is twice its mean: twice the spread is noise
    median = np.array([[3.0, 12.0]])
    upper = median + queueing.UPPER_Z * np.sqrt(2 * median / 10.0)
    levels, _ = queueing.rate_levels(median, upper, step_s=10.0, peakedness=np.array([2.0]))
    np.testing.assert_allclose(levels, np.repeat(median[..., None], 4, axis=2), atol=1e-6)
    # the same forecast read as Poisson keeps a spread
    poisson, _ = queueing.rate_levels(median, upper, step_s=10.0)
    assert (poisson[..., 2] > poisson[..., 1] + 0.1).all()


@given(
    median=st.floats(0.0, 200.0),
    rate_sd=st.floats(0.0, 50.0),
    step_s=st.sampled_from([1.0, 10.0, 60.0]),
)
def test_a_wider_forecast_keeps_its_mean_and_spreads_by_the_rate_uncertainty(
    median, rate_sd, step_s
):
    # p90 = median + z₀.₉ · √(Poisson variance of the rate + the rate's own variance)
    upper = median + queueing.UPPER_Z * math.sqrt(median / step_s + rate_sd**2)
    levels, weights = queueing.rate_levels(np.array([[median]]), np.array([[upper]]), step_s)
    got = levels[0, 0]
    assert got[1] == pytest.approx(median, abs=1e-9)
    if median >= math.sqrt(3) * rate_sd:  # no level cut at zero: mean and sd are kept exactly
        assert float(weights @ got) == pytest.approx(median, rel=1e-9, abs=1e-6)
        spread = math.sqrt(float(weights @ (got - median) ** 2))
        assert spread == pytest.approx(rate_sd, rel=1e-6, abs=1e-5)
    assert got[0] <= got[1] <= got[2] == got[3]  # without surprises the top splits the upper point
    assert got.min() >= 0.0


def test_a_p90_below_the_median_is_no_spread():
    levels, _ = queueing.rate_levels(np.array([[5.0]]), np.array([[3.0]]), step_s=10.0)
    np.testing.assert_array_equal(levels, [[[5.0, 5.0, 5.0, 5.0]]])
