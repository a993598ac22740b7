"""The fleet KPA takes the scalar KPA's decisions, and reaches its states, in the steady regime."""

from __future__ import annotations

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from autoscaler.policies import kpa_fleet
from autoscaler.policies.kpa import ACTIVE, PROXY, SERVE, Kpa, KpaConfig, KpaState
from autoscaler.policy import Observation, window_mean

NOW = 1000.0


@st.composite
def scenarios(draw):
    min_scale = draw(st.integers(0, 3))
    cfg = KpaConfig(
        container_concurrency=draw(st.integers(1, 16)),
        target_utilization=draw(st.sampled_from([0.5, 0.7, 1.0])),
        stable_window_s=draw(st.sampled_from([6, 60])),
        target_burst_capacity=draw(st.sampled_from([0.0, -1.0, 10.0, 211.0])),
        max_scale_down_rate=draw(st.sampled_from([2.0, 4.0])),
        min_scale=min_scale,
        max_scale=draw(st.sampled_from([0, max(min_scale, 1), 10])),
    )
    ready = draw(st.integers(max(min_scale, 1), 20))
    panic_time = draw(st.one_of(st.none(), st.floats(NOW - 120, NOW - 2)))
    proxy = draw(st.booleans())
    state = KpaState(
        active=ACTIVE,
        active_since=draw(st.floats(0, NOW - 2)),
        scale_target_initialized=True,
        sks_mode=PROXY if proxy else SERVE,
        proxy_since=draw(st.floats(0, NOW - 2)) if proxy else None,
        panic_time=panic_time,
        max_panic_pods=draw(st.integers(0, 25)) if panic_time is not None else 0,
    )
    # quarter steps: every window sum is exact in binary, so both paths see the same means
    length = draw(st.integers(1, 120))
    series = np.array(draw(st.lists(st.integers(0, 400), min_size=length, max_size=length))) / 4
    return cfg, state, ready, series


def scalar(cfg, state, ready, series):
    zeros = np.zeros_like(series)
    observation = Observation(
        now=NOW,
        concurrency=series,
        arrivals=zeros,
        queue=zeros,
        ready=ready,
        pending=0,
        desired=ready,
    )
    return Kpa(cfg).decide(observation, state)


def fleet(cfg, states, readies, serieses):
    stable = np.array([window_mean(s, cfg.stable_window) for s in serieses], dtype=float)
    panic = np.array([window_mean(s, cfg.panic_window) for s in serieses], dtype=float)
    return kpa_fleet.decide(cfg, stable, panic, np.array(readies), NOW, kpa_fleet.pack(states))


@settings(max_examples=400, deadline=None)
@given(scenarios())
def test_the_fleet_path_decides_and_remembers_as_the_scalar_kpa(scenario):
    cfg, state, ready, series = scenario
    assert kpa_fleet.config_supported(cfg) and kpa_fleet.state_supported(cfg, state, ready)
    decision, after = scalar(cfg, state, ready, series)
    result = fleet(cfg, [state], [ready], [series])
    if result.leaves_regime[0]:
        # going to zero: the scalar KPA's scale-to-zero rules take over
        assert decision.reason not in kpa_fleet.REASONS or decision.desired == 0
        return
    assert int(result.desired[0]) == decision.desired
    assert kpa_fleet.REASONS[int(result.reason[0])] == decision.reason
    assert kpa_fleet.unpack(result.state, 0) == after
    if decision.reason != "bounds":
        assert kpa_fleet.detail(result, cfg, 0, ready) == decision.detail


@settings(max_examples=50, deadline=None)
@given(st.lists(scenarios(), min_size=2, max_size=8))
def test_rows_are_independent(batch):
    cfg = batch[0][0]
    rows = [(state, ready, series) for _, state, ready, series in batch]
    assume(all(kpa_fleet.state_supported(cfg, s, r) for s, r, _ in rows))
    together = fleet(cfg, *map(list, zip(*rows, strict=True)))
    for index, (state, ready, series) in enumerate(rows):
        alone = fleet(cfg, [state], [ready], [series])
        assert together.desired[index] == alone.desired[0]
        assert kpa_fleet.unpack(together.state, index) == kpa_fleet.unpack(alone.state, 0)


def test_unsupported_configurations_and_states_are_refused():
    assert not kpa_fleet.config_supported(KpaConfig(activation_scale=3))
    assert not kpa_fleet.config_supported(KpaConfig(scale_down_delay_s=30))
    cfg = KpaConfig(min_scale=2)
    state = Kpa(cfg).initial_state(0.0, 0)  # a new PA: activating, not initialised
    assert not kpa_fleet.state_supported(cfg, state, 5)


def test_no_data_sends_the_row_back_to_the_scalar_path():
    cfg = KpaConfig(container_concurrency=8)
    state = KpaState(ACTIVE, 0.0, True, SERVE, None)
    result = kpa_fleet.decide(
        cfg,
        np.array([np.nan, 4.0]),
        np.array([np.nan, 4.0]),
        np.array([2, 2]),
        NOW,
        kpa_fleet.pack([state, state]),
    )
    assert result.leaves_regime.tolist() == [True, False]
