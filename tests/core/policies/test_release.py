"""Release by ski-rental per replica level (`autoscaler/policies/release.py`), on synthetic needs
that alternate between a high and a low level with a fixed gap: a replica is kept through gaps
shorter than the break-even, released at once when they are longer or never close, kept for the
break-even itself while too few gaps are known; the count held is the running maximum of the need
over the threshold."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.policies import release

TICK_S = 2.0
DIP_S = 1.5 * TICK_S  # as the rule calls it: a dip of one tick is not a gap
BREAKEVEN_S = 124.0  # hold_leads 2 × (60 s cold start + 2 s actuation)
HIGH, LOW = 3, 1


def alternating(high_s: float, low_s: float) -> Callable[[float], int]:
    """HIGH replicas needed for `high_s`, then LOW for `low_s`, over and over."""

    def need(now: float) -> int:
        return HIGH if now % (high_s + low_s) < high_s else LOW

    return need


def learn(need: Callable[[float], int], seconds: float, tick_s: float = TICK_S):
    """Observe `need` every tick from 0 to `seconds` (a dip shorter than 1.5 ticks is no gap, as
    in the rule): (last needed, gap histogram, now)."""
    last_needed, gaps = release.empty(1)
    now = 0.0
    while now <= seconds:
        keep = np.array([need(now)])
        last_needed, gaps = release.observe(last_needed, gaps, keep, now, 1.5 * tick_s)
        now += tick_s
    return last_needed, gaps, now - tick_s


def keep_for(gaps: np.ndarray) -> float:
    return float(release.keep_for(gaps, np.array([BREAKEVEN_S]))[0])


@pytest.mark.parametrize("low_s", [20.0, 40.0, 100.0])
def test_gaps_shorter_than_the_break_even_keep_the_replica_through_them(low_s):
    last_needed, gaps, _ = learn(alternating(60.0, low_s), seconds=8 * (60.0 + low_s))
    assert gaps.sum() >= release.MIN_GAPS  # the service's own gaps decide, not the default
    gap = low_s + TICK_S  # from the last tick a level was needed to the next one
    threshold = keep_for(gaps)
    assert threshold >= gap
    # and the hold keeps the high level through a whole low stretch
    period = 60.0 + low_s
    start_of_low = 10 * period + 60.0
    last_needed, gaps, now = learn(alternating(60.0, low_s), seconds=start_of_low + low_s - TICK_S)
    assert alternating(60.0, low_s)(now) == LOW
    assert int(release.held(last_needed, now, np.array([keep_for(gaps)]))[0]) == HIGH


@pytest.mark.parametrize("low_s", [300.0, 600.0, 1500.0])
def test_gaps_longer_than_the_break_even_release_at_once(low_s):
    last_needed, gaps, _ = learn(alternating(60.0, low_s), seconds=6 * (60.0 + low_s))
    assert gaps.sum() >= release.MIN_GAPS
    assert gaps[0, -1] == 0  # every gap closed: none counted as never coming back
    assert keep_for(gaps) == 0.0
    # right after the need falls, only what is needed now is held (the rule adds `keep` itself)
    start_of_low = 5 * (60.0 + low_s) + 60.0
    last_needed, gaps, now = learn(alternating(60.0, low_s), seconds=start_of_low)
    assert alternating(60.0, low_s)(now) == LOW
    assert int(release.held(last_needed, now, np.array([keep_for(gaps)]))[0]) <= LOW


def test_gaps_that_never_close_release_at_once():
    # high for a minute, then low for longer than the horizon: the upper levels expire unused
    low_s = release.GAP_HORIZON_S + 400.0
    after_third = 2 * (60.0 + low_s) + 60.0 + release.GAP_HORIZON_S + 100.0
    last_needed, gaps, _ = learn(alternating(60.0, low_s), seconds=after_third, tick_s=10)
    assert gaps[0, -1] >= release.MIN_GAPS * 0.9  # the "never came back" bin
    assert gaps[0, :-1].sum() == 0  # no level came back within the horizon
    assert keep_for(gaps) == 0.0
    # expired levels are forgotten: they are not held, and not counted again when they return
    assert np.isnan(last_needed[0, HIGH - 1])


def test_too_few_gaps_keep_for_the_break_even():
    empty = release.empty(1)[1]
    assert keep_for(empty) == BREAKEVEN_S
    # one dip of two levels: two long gaps (below MIN_GAPS) that alone would say "release"
    long_gaps = alternating(60.0, 600.0)
    _, gaps, _ = learn(long_gaps, seconds=60.0 + 600.0 + 10.0)
    assert 0 < gaps.sum() < release.MIN_GAPS
    assert keep_for(gaps) == BREAKEVEN_S
    # a few more dips and the service's own gaps take over
    _, gaps, _ = learn(long_gaps, seconds=3 * (60.0 + 600.0) + 10.0)
    assert gaps.sum() >= release.MIN_GAPS
    assert keep_for(gaps) == 0.0


@given(
    counts=st.lists(st.floats(0.0, 10.0), min_size=release.BINS, max_size=release.BINS),
    breakeven=st.floats(0.0, 5000.0),
)
def test_below_min_gaps_the_rule_is_the_deterministic_one(counts, breakeven):
    gaps = np.array([counts])
    threshold = float(release.keep_for(gaps, np.array([breakeven]))[0])
    if gaps.sum() < release.MIN_GAPS:
        assert threshold == breakeven
    else:
        assert threshold in {0.0, *release.GAP_EDGES_S.tolist()}


def test_rows_keep_their_own_thresholds():
    _, short, _ = learn(alternating(60.0, 40.0), seconds=1000.0)
    _, long, _ = learn(alternating(60.0, 600.0), seconds=4000.0)
    both = np.concatenate([short, long, release.empty(1)[1]])
    got = release.keep_for(both, np.array([BREAKEVEN_S, BREAKEVEN_S, 77.0]))
    assert got[0] >= 42.0
    assert got[1] == 0.0
    assert got[2] == 77.0


@settings(max_examples=150, deadline=None)
@given(
    needs=st.lists(st.lists(st.integers(0, 12), min_size=3, max_size=3), min_size=1, max_size=80),
    keep_s=st.lists(st.floats(0.0, 200.0), min_size=3, max_size=3),
)
def test_held_is_the_running_max_of_the_need_over_the_threshold(needs, keep_s):
    """Three services at once; each tick's need is recorded, then the count held at the last
    tick must be the largest need of the ticks less than `keep_s` old (0 if none)."""
    table = np.array(needs)  # (ticks, rows)
    times = np.arange(len(table)) * TICK_S
    last_needed, gaps = release.empty(3)
    for now, keep in zip(times, table, strict=True):
        last_needed, gaps = release.observe(last_needed, gaps, keep, float(now), DIP_S)
    now = float(times[-1])
    thresholds = np.array(keep_s)
    got = release.held(last_needed, now, thresholds)
    for row in range(3):
        recent = table[(now - times) < thresholds[row], row]
        assert got[row] == (recent.max() if recent.size else 0)
