"""Built-in synthetic workloads: determinism, calibration against the real traces, `describe`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.simulator.synthetic import WORKLOADS, describe, diurnal_profile, generate
from adapters.simulator.traces import load_trace
from adapters.simulator.workload import Workload
from autoscaler.errors import InputError

SEEDS = (0, 1, 2)


def hour_of_day_counts(workload: Workload) -> np.ndarray:
    return np.bincount((workload.times // 3600).astype(np.int64) % 24, minlength=24)


def test_catalogue() -> None:
    assert {"llm-bursty", "web-diurnal"} <= set(WORKLOADS)
    assert WORKLOADS["llm-bursty"].default_duration == 3600.0
    assert WORKLOADS["web-diurnal"].default_duration == 86_400.0
    for name, spec in WORKLOADS.items():
        assert spec.name == name and spec.description and "\n" not in spec.description


@pytest.mark.parametrize("name", list(WORKLOADS))
def test_deterministic_for_a_seed(name: str) -> None:
    a, b = (generate(name, seed=11, duration=7200.0) for _ in range(2))
    np.testing.assert_array_equal(a.times, b.times)
    np.testing.assert_array_equal(a.prompt_tokens, b.prompt_tokens)
    np.testing.assert_array_equal(a.output_tokens, b.output_tokens)
    assert not np.array_equal(a.times, generate(name, seed=12, duration=7200.0).times)


@pytest.mark.parametrize("name", list(WORKLOADS))
def test_shape_tokens_and_duration(name: str) -> None:
    w = generate(name, seed=3, duration=1234.5)
    assert w.duration == 1234.5 and w.name == name and w.source == f"workload:{name}"
    assert len(w) > 0 and np.all(np.diff(w.times) >= 0)
    assert w.times[0] >= 0 and w.times[-1] < 1234.5
    assert w.prompt_tokens is not None and w.output_tokens is not None
    assert w.has_tokens and w.prompt_tokens.dtype == np.int64
    assert w.prompt_tokens.min() >= 1 and w.output_tokens.min() >= 1
    prompt_limit = 131_072 if name == "long-context" else 32768  # Mooncake-like prompts
    assert w.prompt_tokens.max() <= prompt_limit and w.output_tokens.max() <= 4096


def test_default_duration() -> None:
    assert generate("llm-bursty", seed=0).duration == 3600.0


def test_unknown_name_lists_the_workloads() -> None:
    with pytest.raises(
        InputError, match="unknown workload 'spiky'; built-in workloads: llm-bursty, web-diurnal"
    ):
        generate("spiky", seed=0)


@pytest.mark.parametrize("duration", [0.0, -5.0, float("nan"), float("inf")])
def test_bad_duration(duration: float) -> None:
    with pytest.raises(InputError, match="--duration"):
        generate("llm-bursty", seed=0, duration=duration)


# --- calibration ----------------------------------------------------------------------------


def measured(workload: Workload) -> dict[str, float]:
    """`describe`'s statistics, every one of them present (they are None only for no arrivals)."""
    stats = describe(workload)
    missing = [name for name, value in stats.items() if value is None]
    assert not missing, missing
    return {name: float(value) for name, value in stats.items() if value is not None}


@pytest.mark.parametrize("seed", SEEDS)
def test_llm_bursty_matches_the_azure_code_trace(seed: int) -> None:
    stats = measured(generate("llm-bursty", seed=seed))
    assert 2.57 * 0.6 <= stats["mean_rps"] <= 2.57 * 1.4
    assert 0.55 <= stats["empty_seconds_fraction"] <= 0.85
    assert stats["empty_minutes"] >= 1
    assert stats["peak_rps_1s"] >= 20
    assert 0.6 <= stats["cv_1min"] <= 1.6
    assert stats["peak_requests_1min"] >= 300


def test_llm_bursty_tokens_follow_the_azure_code_trace() -> None:
    stats = describe(generate("llm-bursty", seed=0, duration=6 * 3600.0))
    assert stats["prompt_tokens_median"] == pytest.approx(1469, rel=0.1)
    assert stats["output_tokens_median"] == pytest.approx(13, rel=0.15)


@pytest.mark.parametrize("seed", SEEDS)
def test_web_diurnal_has_the_nasa_daily_shape(seed: int) -> None:
    per_hour = hour_of_day_counts(generate("web-diurnal", seed=seed, duration=2 * 86_400.0))
    assert 2.5 <= per_hour.max() / per_hour.min() <= 6
    assert 11 <= int(per_hour.argmax()) <= 16


def test_web_diurnal_weekends_are_quieter() -> None:
    w = generate("web-diurnal", seed=0, duration=14 * 86_400.0)
    per_day = np.bincount((w.times // 86_400).astype(np.int64), minlength=14)
    weekend = np.isin(np.arange(14) % 7, [5, 6])
    assert 0.35 <= per_day[weekend].mean() / per_day[~weekend].mean() <= 0.85
    assert describe(w)["mean_rps"] == pytest.approx(6.0 * (5 + 2 * 0.587) / 7, rel=0.25)


def test_web_diurnal_tokens_are_chat_like() -> None:
    stats = describe(generate("web-diurnal", seed=0, duration=3600.0))
    assert stats["prompt_tokens_median"] == pytest.approx(1020, rel=0.1)
    assert stats["output_tokens_median"] == pytest.approx(129, rel=0.1)


def test_diurnal_profile_peaks_in_the_afternoon_and_halves_at_weekends() -> None:
    hours = np.arange(24 * 7) * 3600.0 + 1800.0
    profile = diurnal_profile(hours).reshape(7, 24)
    assert 12 <= int(profile[0].argmax()) <= 16 and 3.5 <= profile[0].max() / profile[0].min() <= 5
    assert profile[5:].mean() / profile[:5].mean() == pytest.approx(0.587, abs=0.02)
    assert profile[:5].mean() == pytest.approx(1.0, abs=0.01)


# --- describe -------------------------------------------------------------------------------


def test_describe_reproduces_the_sources_figures_for_azure(shared_traces: Path) -> None:
    stats = describe(load_trace(shared_traces / "AzureLLMInferenceTrace_code.csv"))
    assert stats["requests"] == 8819
    assert stats["mean_rps"] == pytest.approx(2.57, abs=0.01)
    assert stats["peak_rps_1s"] == 67
    assert stats["empty_seconds_fraction"] == pytest.approx(0.73, abs=0.01)
    assert stats["cv_1min"] == pytest.approx(1.04, abs=0.01)
    assert stats["interarrival_cv"] == pytest.approx(13.2, abs=0.1)
    assert stats["peak_requests_1min"] == 632 and stats["empty_minutes"] == 12
    assert stats["prompt_tokens_median"] == 1469 and stats["output_tokens_median"] == 13


def test_describe_without_tokens_or_requests() -> None:
    empty = Workload(name="none", times=np.array([]), duration=30.0)
    stats = describe(empty)
    assert stats["requests"] == 0 and stats["mean_rps"] == 0 and stats["peak_rps_1s"] == 0
    assert stats["empty_seconds_fraction"] == 1.0
    assert stats["cv_1min"] is None and stats["interarrival_cv"] is None
    assert "prompt_tokens_median" not in stats


@settings(max_examples=50, deadline=None)
@given(counts=st.lists(st.integers(0, 9), min_size=1, max_size=400))
def test_describe_counts_match_per_second_counts(counts: list[int]) -> None:
    times = np.repeat(np.arange(len(counts), dtype=float), counts) + 0.5
    stats = describe(Workload(name="c", times=times, duration=float(len(counts))))
    assert stats["requests"] == sum(counts)
    assert stats["peak_rps_1s"] == max(counts)
    assert stats["empty_seconds_fraction"] == pytest.approx(counts.count(0) / len(counts))
    assert stats["mean_rps"] == pytest.approx(sum(counts) / len(counts))
