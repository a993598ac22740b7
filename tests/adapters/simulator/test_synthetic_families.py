"""The shape families of built-in workloads: determinism, bounds, and each documented shape.

The shape checks are the ones the module docstring promises, with margins measured over 40
seeds, so they fail if a shape is lost rather than on an unlucky seed.
"""

from __future__ import annotations

import numpy as np
import pytest

from adapters.simulator.synthetic import WORKLOADS, describe, generate
from adapters.simulator.workload import Workload

FAMILIES = ("flash-crowd", "step-change", "slow-ramp", "diurnal-bursts", "long-context", "sparse")
DEFAULTS = {
    "flash-crowd": 3600.0,
    "step-change": 3600.0,
    "slow-ramp": 7200.0,
    "diurnal-bursts": 6 * 3600.0,
    "long-context": 3600.0,
    "sparse": 4 * 3600.0,
}
SEEDS = (0, 1, 2, 3, 4)


def per_minute(workload: Workload) -> np.ndarray:
    """Arrivals in each whole minute of the workload."""
    minutes = int(workload.duration // 60)
    counts = np.bincount((workload.times // 60).astype(np.int64), minlength=minutes)
    return counts[:minutes]


def test_catalogue_order_and_defaults() -> None:
    assert list(WORKLOADS) == ["llm-bursty", "web-diurnal", *FAMILIES]
    for name, duration in DEFAULTS.items():
        assert WORKLOADS[name].default_duration == duration
        assert generate(name, seed=0).duration == duration


@pytest.mark.parametrize("name", FAMILIES)
def test_seeded(name: str) -> None:
    a, b = (generate(name, seed=5) for _ in range(2))
    np.testing.assert_array_equal(a.times, b.times)
    np.testing.assert_array_equal(a.prompt_tokens, b.prompt_tokens)
    np.testing.assert_array_equal(a.output_tokens, b.output_tokens)
    assert not np.array_equal(a.times, generate(name, seed=6).times)


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("duration", [None, 600.0, 1234.5])
def test_sorted_and_bounded(name: str, duration: float | None) -> None:
    w = generate(name, seed=3, duration=duration)
    assert len(w) > 0 and np.all(np.diff(w.times) >= 0)
    assert w.times[0] >= 0 and w.times[-1] < w.duration
    assert w.prompt_tokens is not None and w.output_tokens is not None
    assert w.prompt_tokens.size == w.output_tokens.size == len(w)
    assert w.prompt_tokens.min() >= 1 and w.prompt_tokens.max() <= 131_072
    assert w.output_tokens.min() >= 1 and w.output_tokens.max() <= 4096
    assert None not in describe(w).values()


@pytest.mark.parametrize("seed", SEEDS)
def test_flash_crowd_peaks_then_decays(seed: int) -> None:
    minutes = per_minute(generate("flash-crowd", seed=seed))
    peak = int(minutes.argmax())
    assert 20 <= peak <= 42  # the onset is in the middle third, the peak a minute later
    baseline = np.median(minutes[: peak - 1])
    assert baseline == pytest.approx(120, rel=0.15)  # 2 rps
    assert minutes[peak] >= 6 * baseline
    assert minutes[peak + 15] < 2 * baseline


def test_step_change_triples_the_rate() -> None:
    ratios = []
    for seed in SEEDS:
        w = generate("step-change", seed=seed)
        before = np.sum(w.times < 0.25 * w.duration)
        after = np.sum((w.times >= 0.5 * w.duration) & (w.times < 0.75 * w.duration))
        ratios.append(after / before)
    assert min(ratios) >= 2.6 and max(ratios) <= 3.4
    assert np.mean(ratios) == pytest.approx(3.0, rel=0.07)


@pytest.mark.parametrize("seed", SEEDS)
def test_slow_ramp_rises(seed: int) -> None:
    w = generate("slow-ramp", seed=seed)
    first = np.sum(w.times < 0.25 * w.duration)
    last = np.sum(w.times >= 0.75 * w.duration)
    assert last >= 3 * first
    assert np.all(np.diff(w.times) >= 0)


@pytest.mark.parametrize("seed", SEEDS)
def test_diurnal_bursts_show_over_the_morning_rise(seed: int) -> None:
    minutes = per_minute(generate("diurnal-bursts", seed=seed)).astype(float)
    smoothed = np.convolve(minutes, np.ones(31) / 31, mode="valid")  # centred 31-min mean
    assert (minutes[15:-15] / smoothed).max() > 2
    assert minutes[-60:].mean() > 1.5 * minutes[:60].mean()  # 10:00-11:00 vs 05:00-06:00


@pytest.mark.parametrize("seed", SEEDS)
def test_long_context_tokens_follow_the_mooncake_trace(seed: int) -> None:
    w = generate("long-context", seed=seed)
    assert w.prompt_tokens is not None and w.output_tokens is not None
    over = np.mean(w.prompt_tokens > 13_000)
    assert 0.40 <= over <= 0.58  # the trace: 49.1 %
    assert np.median(w.prompt_tokens) == pytest.approx(11_587, rel=0.15)
    assert w.prompt_tokens.max() <= 131_072
    assert np.median(w.output_tokens) == pytest.approx(69, rel=0.3)
    assert np.corrcoef(np.log(w.prompt_tokens), np.log(w.output_tokens))[0, 1] < -0.3
    assert 0.5 <= len(w) / w.duration <= 1.6  # 1 rps with slow log-normal swings


@pytest.mark.parametrize("seed", SEEDS)
def test_sparse_has_long_silences(seed: int) -> None:
    w = generate("sparse", seed=seed)
    assert np.diff(w.times).max() >= 600
    assert np.mean(per_minute(w) == 0) > 0.5
