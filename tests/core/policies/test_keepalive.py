"""The hybrid histogram keep-alive policy (Shahrad et al., ATC 2020, §4.2) with lead time.

Synthetic idle-time distributions with hand-worked windows. With the defaults (1-minute bins,
4 h range, 10 % histogram margins): idle times ~ N(20 min, 1 min) put the 5th percentile
(~18.4 min) in bin [18, 19) min and the 99th (~22.3 min) in bin [22, 23) min, so the head
rounds down to 18 min and the tail up to 23 min; pre-warm = 0.9 * 18 = 16.2 min and
keep-alive = 1.1 * 23 = 25.3 min.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.errors import InputError
from autoscaler.policies.keepalive import (
    FIXED,
    HISTOGRAM,
    HOLD,
    PREWARM,
    REASON_FEW_SAMPLES,
    REASON_FLAT,
    REASON_HISTOGRAM,
    REASON_OUT_OF_RANGE,
    RELEASE,
    TIMESERIES,
    HistogramConfig,
    HistogramState,
    IdlePlan,
    idle_plan,
    idle_windows,
    initial_state,
    observe_idle,
)

MINUTE = 60.0
HOUR = 3600.0
T0 = 10_000.0  # when the idle period starts


def learned(idle_times, config: HistogramConfig | None = None) -> HistogramState:
    state = initial_state(config)
    for idle in idle_times:
        state = observe_idle(state, idle)
    return state


def tight(n: int = 500, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(20 * MINUTE, 1 * MINUTE, n)


# --- a tight distribution: histogram windows -------------------------------------------------


def test_tight_distribution_without_margins_brackets_the_percentiles():
    state = learned(tight(), HistogramConfig(histogram_margin=0.0))
    windows = idle_windows(state)
    assert (windows.mode, windows.reason) == (HISTOGRAM, REASON_HISTOGRAM)
    assert 18 * MINUTE <= windows.prewarm_s <= 19 * MINUTE
    assert 22 * MINUTE <= windows.keepalive_s <= 24 * MINUTE
    assert windows.cv > 2.0


def test_tight_distribution_with_the_papers_margins():
    windows = idle_windows(learned(tight()))
    assert windows.mode == HISTOGRAM
    assert windows.prewarm_s == pytest.approx(0.9 * 18 * MINUTE)  # 16.2 min
    assert windows.keepalive_s == pytest.approx(1.1 * 23 * MINUTE)  # 25.3 min
    assert "16.2m" in windows.detail and "25.3m" in windows.detail


def test_tight_distribution_plan_over_an_idle_period():
    state = learned(tight())
    windows = idle_windows(state)
    lead = 90.0
    warm_from, warm_until = T0 + windows.prewarm_s, T0 + windows.keepalive_s
    request_at = warm_from - lead

    first = idle_plan(state, T0, T0, lead)  # the busy period just ended
    assert first.action == PREWARM
    assert first.prewarm_at == pytest.approx(request_at)  # one lead time before the window
    assert first.hold_until is None
    assert (first.warm_from, first.warm_until) == (pytest.approx(warm_from), warm_until)
    assert first.reason == REASON_HISTOGRAM

    assert idle_plan(state, T0, request_at - 1, lead).action == PREWARM
    at_request = idle_plan(state, T0, request_at, lead)
    assert at_request.action == HOLD
    assert at_request.hold_until == pytest.approx(warm_until)
    assert idle_plan(state, T0, warm_until - 1, lead).action == HOLD
    release = idle_plan(state, T0, warm_until, lead)  # after keep-alive
    assert release.action == RELEASE
    assert release.hold_until is None and release.prewarm_at is None
    assert idle_plan(state, T0, warm_until + HOUR, lead).action == RELEASE


def test_a_longer_lead_time_requests_earlier_and_never_shifts_the_window():
    state = learned(tight())
    short = idle_plan(state, T0, T0, 30.0)
    long = idle_plan(state, T0, T0, 300.0)
    assert short.prewarm_at - long.prewarm_at == pytest.approx(270.0)
    assert (short.warm_from, short.warm_until) == (long.warm_from, long.warm_until)


def test_window_opening_within_the_lead_time_holds_from_the_start():
    # Uniform over 0-30 min: 30 of 240 bins used, CV = sqrt(240/30 - 1) ~ 2.6 >= 2 (histogram).
    # The 5th percentile lies in minute 1, pre-warm = 0.9 * 60 s = 54 s: within a 60 s lead time,
    # releasing and re-requesting would not save anything.
    idle = np.random.default_rng(3).uniform(0, 30 * MINUTE, 3000)
    state = learned(idle)
    windows = idle_windows(state)
    assert windows.mode == HISTOGRAM
    assert windows.prewarm_s == pytest.approx(54.0)
    assert windows.keepalive_s == pytest.approx(1.1 * 30 * MINUTE)
    plan = idle_plan(state, T0, T0, 60.0)
    assert plan.action == HOLD
    assert plan.hold_until == pytest.approx(T0 + 33 * MINUTE)
    assert "releasing would save nothing" in plan.detail
    # With a 10 s cold start the replica may go for 44 s.
    assert idle_plan(state, T0, T0, 10.0).prewarm_at == pytest.approx(T0 + 44.0)


def test_head_in_the_first_bin_means_keep_the_replica():
    state = learned(np.random.default_rng(4).uniform(0, 50, 200))  # all in [0, 1) min
    windows = idle_windows(state)
    assert windows.mode == HISTOGRAM
    assert windows.prewarm_s == 0.0
    assert windows.keepalive_s == pytest.approx(1.1 * MINUTE)
    plan = idle_plan(state, T0, T0, 0.0)
    assert plan.action == HOLD and plan.hold_until == pytest.approx(T0 + 66.0)


# --- fixed keep-alive fallback ---------------------------------------------------------------


def test_wide_uniform_distribution_falls_back_to_the_fixed_keepalive():
    # Uniform over the whole 4 h range: every bin about equally full, CV ~ 0.3 < 2.
    state = learned(np.random.default_rng(5).uniform(0, 4 * HOUR - 1, 2000))
    windows = idle_windows(state)
    assert (windows.mode, windows.reason) == (FIXED, REASON_FLAT)
    assert windows.cv < 2.0
    assert (windows.prewarm_s, windows.keepalive_s) == (0.0, 600.0)
    assert "CV" in windows.detail
    plan = idle_plan(state, T0, T0, 60.0)
    assert plan.action == HOLD and plan.hold_until == T0 + 600.0
    assert plan.reason == REASON_FLAT
    assert idle_plan(state, T0, T0 + 599.9, 60.0).action == HOLD
    assert idle_plan(state, T0, T0 + 600.0, 60.0).action == RELEASE


def test_too_few_samples_falls_back_with_the_reason():
    state = learned([20 * MINUTE] * 5)
    plan = idle_plan(state, T0, T0 + 30, 60.0)
    assert (plan.mode, plan.reason) == (FIXED, REASON_FEW_SAMPLES)
    assert plan.action == HOLD and plan.hold_until == T0 + 600.0
    assert "5 idle times, fewer than min_samples=10" in plan.detail
    assert idle_plan(state, T0, T0 + 600, 60.0).action == RELEASE
    # Ten of them are enough, and the histogram takes over (one full bin: CV = sqrt(239)).
    state = learned([20 * MINUTE] * 10)
    assert idle_windows(state).mode == HISTOGRAM


def test_empty_state_uses_the_configured_fixed_keepalive():
    config = HistogramConfig(fixed_keepalive_s=4 * HOUR)  # the paper's hybrid fallback
    plan = idle_plan(initial_state(config), T0, T0, 60.0)
    assert plan.reason == REASON_FEW_SAMPLES and plan.hold_until == T0 + 4 * HOUR
    zero = HistogramConfig(fixed_keepalive_s=0.0)  # plain scale to zero
    assert idle_plan(initial_state(zero), T0, T0, 60.0).action == RELEASE


# --- time-series fallback --------------------------------------------------------------------


def test_mostly_out_of_range_idle_times_use_the_time_series_prediction():
    rng = np.random.default_rng(6)
    idle = list(rng.normal(6 * HOUR, 5 * MINUTE, 20)) + [5 * MINUTE, 7 * MINUTE, 9 * MINUTE]
    state = learned(rng.permutation(idle))
    windows = idle_windows(state)
    assert (windows.mode, windows.reason) == (TIMESERIES, REASON_OUT_OF_RANGE)
    assert windows.out_of_range_share == pytest.approx(20 / 23)
    assert windows.predicted_idle_s == pytest.approx(6 * HOUR, rel=0.03)
    assert windows.prewarm_s == pytest.approx(0.85 * windows.predicted_idle_s)
    assert windows.keepalive_s == pytest.approx(1.15 * windows.predicted_idle_s)
    lead = 120.0
    plan = idle_plan(state, T0, T0, lead)
    assert plan.action == PREWARM
    assert plan.prewarm_at == pytest.approx(T0 + 0.85 * windows.predicted_idle_s - lead)
    assert idle_plan(state, T0, plan.prewarm_at, lead).action == HOLD
    assert idle_plan(state, T0, plan.warm_until, lead).action == RELEASE


def test_time_series_prediction_follows_recent_idle_times_and_shrugs_off_one_outlier():
    config = HistogramConfig(timeseries_history=5)
    state = learned([6 * HOUR] * 20 + [24 * HOUR] * 5, config)
    assert idle_windows(state).predicted_idle_s == 24 * HOUR  # only the last five count
    state = observe_idle(state, 72 * HOUR)  # one long weekend
    assert idle_windows(state).predicted_idle_s == 24 * HOUR
    assert len(state.recent_out_of_range) == 5


def test_out_of_range_share_at_the_threshold_keeps_the_histogram():
    # Exactly half out of range is not "above" the 0.5 threshold.
    state = learned([20 * MINUTE] * 10 + [6 * HOUR] * 10)
    assert idle_windows(state).mode == HISTOGRAM
    assert idle_windows(observe_idle(state, 6 * HOUR)).mode == TIMESERIES


# --- the histogram itself --------------------------------------------------------------------


def test_counts_sum_to_the_observations_and_bins_clip_at_the_range():
    rng = np.random.default_rng(7)
    idle = rng.exponential(2 * HOUR, 1000)
    state = learned(idle)
    assert state.counts.shape == (240,) and state.counts.dtype == np.int64
    assert state.in_range + state.out_of_range == state.samples == 1000
    assert state.out_of_range == int((idle >= 4 * HOUR).sum())
    expected = np.bincount((idle[idle < 4 * HOUR] // MINUTE).astype(int), minlength=240)
    np.testing.assert_array_equal(state.counts, expected)


@pytest.mark.parametrize(
    ("idle", "bin_index"),
    [(0.0, 0), (59.999, 0), (60.0, 1), (4 * HOUR - 60, 239), (4 * HOUR - 1e-9, 239)],
)
def test_bin_edges(idle, bin_index):
    state = observe_idle(initial_state(), idle)
    assert state.counts[bin_index] == 1 and state.in_range == 1 and state.out_of_range == 0


@pytest.mark.parametrize("idle", [4 * HOUR, 4 * HOUR + 1, 30 * 24 * HOUR])
def test_at_or_beyond_the_range_is_out_of_range_not_the_last_bin(idle):
    state = observe_idle(initial_state(), idle)
    assert state.in_range == 0 and state.out_of_range == 1
    assert state.recent_out_of_range == (idle,)


def test_range_and_bin_width_are_configurable():
    config = HistogramConfig(range_s=HOUR, bin_s=30.0)
    state = learned([45.0, 3599.0, 3600.0], config)
    assert config.n_bins == 120 and state.counts.shape == (120,)
    assert state.counts[1] == 1 and state.counts[119] == 1 and state.out_of_range == 1


def test_observe_idle_is_pure_and_the_state_pickles():
    before = learned(tight(50))
    snapshot = before.counts.copy()
    after = observe_idle(before, 20 * MINUTE)
    np.testing.assert_array_equal(before.counts, snapshot)
    assert after.samples == before.samples + 1
    with pytest.raises(ValueError):
        before.counts[0] = 5  # the counts are read-only
    clone = pickle.loads(pickle.dumps(after))
    np.testing.assert_array_equal(clone.counts, after.counts)
    assert (clone.config, clone.out_of_range) == (after.config, after.out_of_range)
    assert idle_windows(clone) == idle_windows(after)
    assert len(pickle.dumps(after)) < 4096  # compact: 240 int64 bins plus a few scalars


@pytest.mark.parametrize("idle", [-1.0, float("nan"), float("inf")])
def test_observe_idle_refuses_impossible_idle_times(idle):
    with pytest.raises(ValueError, match="idle_seconds"):
        observe_idle(initial_state(), idle)


@pytest.mark.parametrize(
    ("idle_since", "now", "lead", "message"),
    [(T0, T0 - 1, 0.0, "before idle_since"), (T0, T0, -1.0, "lead_time_s"),
     (T0, float("nan"), 0.0, "now"), (T0, T0, float("inf"), "lead_time_s")],
)  # fmt: skip
def test_idle_plan_refuses_impossible_times(idle_since, now, lead, message):
    with pytest.raises(ValueError, match=message):
        idle_plan(initial_state(), idle_since, now, lead)


def test_idle_plan_checks_its_own_consistency():
    with pytest.raises(ValueError, match="hold_until"):
        IdlePlan(HOLD, "histogram", HISTOGRAM, 0.0, 1.0)
    with pytest.raises(ValueError, match="action"):
        IdlePlan("nap", "histogram", HISTOGRAM, 0.0, 1.0)


# --- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("range_s", 0.0, "finite number of seconds > 0"),
        ("range_s", float("inf"), "finite number of seconds > 0"),
        ("range_s", 90.0, "whole multiple of bin_s=60"),
        ("bin_s", -60.0, "finite number of seconds > 0"),
        ("bin_s", 0.01, "at most 100000 bins"),
        ("bin_s", "1m", "finite number of seconds > 0"),
        ("head_percentile", -1.0, "[0, 100)"),
        ("tail_percentile", 101.0, "(0, 100]"),
        ("tail_percentile", 5.0, "greater than head_percentile=5"),
        ("histogram_margin", 1.0, "[0, 1)"),
        ("timeseries_margin", -0.1, "[0, 1)"),
        ("min_samples", 0, "whole number >= 1"),
        ("min_samples", 2.5, "whole number >= 1"),
        ("cv_threshold", float("nan"), "finite number >= 0"),
        ("oob_threshold", 1.5, "[0, 1]"),
        ("fixed_keepalive_s", -1.0, "seconds >= 0"),
        ("timeseries_history", 0, "[1, 1000]"),
        ("timeseries_history", True, "[1, 1000]"),
    ],
)
def test_config_validation_names_the_field(field, value, fragment):
    with pytest.raises(InputError) as caught:
        HistogramConfig(**{field: value})
    message = str(caught.value)
    assert message.startswith(f"keepalive.{field}: must be ")
    assert fragment in message and repr(value) in message


def test_default_config_is_the_papers():
    config = HistogramConfig()
    assert (config.range_s, config.bin_s, config.n_bins) == (4 * HOUR, 60.0, 240)
    assert (config.head_percentile, config.tail_percentile) == (5.0, 99.0)
    assert (config.histogram_margin, config.timeseries_margin) == (0.10, 0.15)
    assert (config.cv_threshold, config.fixed_keepalive_s) == (2.0, 600.0)


# --- properties ------------------------------------------------------------------------------

idle_times = st.one_of(
    st.floats(0, 4 * HOUR * 2, allow_nan=False),
    st.floats(19 * MINUTE, 21 * MINUTE),  # a tight cluster, so the histogram tier occurs
    st.floats(5 * HOUR, 7 * HOUR),  # out of range, so the time-series tier occurs
)
configs = st.builds(
    HistogramConfig,
    min_samples=st.integers(1, 20),
    histogram_margin=st.sampled_from([0.0, 0.1, 0.5]),
    cv_threshold=st.sampled_from([0.0, 1.0, 2.0, 5.0]),
    oob_threshold=st.sampled_from([0.0, 0.3, 0.5, 1.0]),
    fixed_keepalive_s=st.sampled_from([0.0, 600.0, 4 * HOUR]),
)


@settings(max_examples=200, deadline=None)
@given(
    config=configs,
    idles=st.lists(idle_times, max_size=60),
    lead=st.floats(0, 900),
    offsets=st.lists(st.floats(0, 10 * HOUR), min_size=1, max_size=12),
)
def test_plans_are_consistent_for_any_idle_history(config, idles, lead, offsets):
    state = learned(idles, config)
    assert state.samples == len(idles)
    assert state.in_range + state.out_of_range == len(idles)
    windows = idle_windows(state)
    assert 0 <= windows.prewarm_s <= windows.keepalive_s
    order = {PREWARM: 0, HOLD: 1, RELEASE: 2}
    last = -1
    for offset in sorted(offsets):
        now = T0 + offset
        plan = idle_plan(state, T0, now, lead)
        assert plan.warm_from <= plan.warm_until
        assert plan.reason == windows.reason and plan.mode == windows.mode
        if plan.action == PREWARM:
            assert now < plan.prewarm_at <= plan.warm_until
            assert plan.prewarm_at == pytest.approx(plan.warm_from - lead)
        if plan.action == HOLD:
            assert plan.hold_until == plan.warm_until > now
            assert now >= plan.warm_from - lead
        if plan.action in (PREWARM, RELEASE):
            # At zero now: no predicted arrival window overlaps the next lead time.
            assert plan.warm_until <= now or plan.warm_from > now + lead - 1e-6
        # Over one idle period the plan only moves forward: prewarm_at -> hold -> release.
        assert order[plan.action] >= last
        last = order[plan.action]
