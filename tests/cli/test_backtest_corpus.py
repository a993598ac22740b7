"""`backtest --corpus`: the forecasting corpus, its halves, and the summary per half."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from leadtime import main
from leadtime.backtest_corpus import (
    PICKED_ON_FIRST_HALF,
    PICKED_ON_OTHER_TENTHS,
    SCALES,
    YARDSTICKS,
    ForecastCase,
    forecast_cases,
    run_case,
    selection_yardsticks,
    summarise,
)
from leadtime.corpus import REPORT, TUNE, corpus_cases
from leadtime.runs import Source


def test_every_series_runs_at_every_scale_in_the_bench_corpus_half_of_its_family(shared_traces):
    cases = forecast_cases(shared_traces)
    assert len({case.name for case in cases}) == len(cases)
    halves = {case.family: case.half for case in corpus_cases(shared_traces)}
    assert all(halves[case.family] == case.half for case in cases)
    assert {case.half for case in cases} == {TUNE, REPORT}
    per_series: dict[Source, set[tuple[float, float]]] = {}
    for case in cases:
        per_series.setdefault(case.source, set()).add((case.step_s, case.horizon_s))
    assert all(scales == set(SCALES) for scales in per_series.values())
    names = {case.name.split("/")[0] for case in cases}
    assert {"azure-code", "mooncake", "nasa-monday", "nasa-week", "sparse"} <= names


def test_a_case_too_short_for_its_scale_is_left_out_and_says_why(shared_traces):
    azure = next(c for c in forecast_cases(shared_traces) if c.name == "azure-code/10m-30m")
    (row,) = run_case(azure, ("naive", "auto"))
    assert row["case"] == "azure-code/10m-30m" and row["half"] == TUNE
    assert "too short" in row["skipped"]


def test_a_case_scores_every_model_on_the_same_origins():
    case = ForecastCase("sparse/seed-1/1m-5m", "sparse", REPORT, Source(None, "sparse", 1), 60, 300)
    rows = run_case(case, ("naive", "ets", "auto"))
    assert [row["model"] for row in rows] == ["naive", "ets", "auto", *YARDSTICKS]
    models, yardsticks = rows[:3], rows[3:]
    assert all(row["pinball_90"] >= 0 and 0 <= row["coverage_90"] <= 1 for row in models)
    assert all(row["ratio"] >= 1 for row in yardsticks)  # never better than the best


def test_the_first_half_selector_pays_for_a_change_of_regime_the_interleaved_one_does_not():
    origins = 40
    steady = np.full((origins, 3), 1.0)
    changing = np.full((origins, 3), 0.5)
    changing[origins // 2 :] = 4.0  # best, then worst from the middle on
    ratios = selection_yardsticks({"steady": steady, "changing": changing})
    assert ratios[PICKED_ON_FIRST_HALF] == pytest.approx(4.0)
    # the other tenths hold both regimes, as the tenths scored do: `steady` (1.0 against 2.25)
    # is picked and is the best where it is scored
    assert ratios[PICKED_ON_OTHER_TENTHS] == 1.0


def test_a_yardstick_skips_unscored_points_and_is_undefined_where_nothing_is_lost():
    lossy = np.full((20, 2), 2.0)
    lossy[:, 1] = np.nan  # the second step ahead never scored
    ratios = selection_yardsticks({"a": lossy, "b": np.full((20, 2), 1.0)})
    assert ratios[PICKED_ON_FIRST_HALF] == 1.0
    perfect = selection_yardsticks({"a": np.zeros((20, 2)), "b": np.zeros((20, 2))})
    assert all(math.isnan(ratio) for ratio in perfect.values())


def _row(case: str, half: str, model: str, loss: float, coverage: float) -> dict:
    return {"case": case, "half": half, "model": model, "pinball_90": loss, "coverage_90": coverage}


def test_the_summary_compares_each_model_with_each_case_s_best_single_model():
    rows = [
        _row("a", TUNE, "naive", 2.0, 0.80),
        _row("a", TUNE, "ets", 1.0, 0.90),
        _row("a", TUNE, "auto", 0.5, 0.95),  # better than the best single: a ratio below 1
        _row("b", TUNE, "naive", 3.0, 0.85),
        _row("b", TUNE, "ets", 6.0, 0.99),
        _row("b", TUNE, "auto", 4.5, 0.88),
        _row("c", TUNE, "naive", 0.0, 1.0),  # nothing to forecast: no ratio
        _row("c", TUNE, "ets", 0.0, 1.0),
        {"case": "d", "half": TUNE, "skipped": "too short"},
        _row("e", REPORT, "naive", 1.0, 0.9),
        {"case": "a", "half": TUNE, "model": PICKED_ON_FIRST_HALF, "ratio": 1.25},
        {"case": "b", "half": TUNE, "model": PICKED_ON_FIRST_HALF, "ratio": 1.0},
    ]
    summary = {(row["half"], row["model"]): row for row in summarise(rows)}
    auto = summary[(TUNE, "auto")]
    assert auto["cases"] == 2
    assert auto["mean_ratio"] == pytest.approx((0.5 + 1.5) / 2)
    assert (auto["worst_ratio"], auto["worst_case"]) == (pytest.approx(1.5), "b")
    assert (auto["coverage_min"], auto["coverage_max"]) == (0.88, 0.95)
    assert (auto["within_ratio_target"], auto["within_coverage_target"]) == (1, 2)
    picked = summary[(TUNE, PICKED_ON_FIRST_HALF)]
    assert (picked["cases"], picked["mean_ratio"], picked["worst_case"]) == (2, 1.125, "a")
    assert picked["within_ratio_target"] == 1 and math.isnan(picked["coverage_min"])
    ets = summary[(TUNE, "ets")]
    assert ets["mean_ratio"] == pytest.approx((1.0 + 2.0) / 2)
    assert (ets["coverage_min"], ets["coverage_max"]) == (0.90, 1.0)
    assert summary[(REPORT, "naive")]["mean_ratio"] == 1.0
    assert (REPORT, "auto") not in summary


def test_backtest_corpus_runs_the_chosen_cases_and_prints_the_summary(shared_traces, capsys):
    argv = ["backtest", "--corpus", "--cases", "azure-code/*", "--traces-dir", str(shared_traces)]
    assert main([*argv, "--models", "naive,tsb,auto", "--jobs", "2", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    ran = [row for row in payload["cases"] if "skipped" not in row]
    assert {row["case"] for row in ran} == {"azure-code/10s-1m", "azure-code/1m-5m"}
    assert {row["model"] for row in ran} == {"naive", "tsb", "auto", *YARDSTICKS}
    skipped = {row["case"] for row in payload["cases"] if "skipped" in row}
    assert skipped == {"azure-code/5m-15m", "azure-code/10m-30m"}
    (auto,) = [row for row in payload["summary"] if row["model"] == "auto"]
    assert auto["half"] == TUNE and auto["cases"] == 2 and math.isfinite(auto["mean_ratio"])
    yardsticks = [row for row in payload["summary"] if row["model"] in YARDSTICKS]
    assert [row["model"] for row in yardsticks] == [PICKED_ON_FIRST_HALF, PICKED_ON_OTHER_TENTHS]
    assert all(row["cases"] == 2 and row["mean_ratio"] >= 1 for row in yardsticks)
    assert main([*argv, "--models", "naive,auto", "--jobs", "1"]) == 0
    text = capsys.readouterr().out
    assert "azure-code/10s-1m" in text and "left out: azure-code/10m-30m" in text
    assert "mean / best" in text


def test_corpus_flags_without_the_corpus_and_a_missing_trace_are_named(capsys):
    assert main(["backtest", "--workload", "sparse", "--cases", "x"]) == 2
    assert "only with --corpus" in capsys.readouterr().err
    argv = ["backtest", "--corpus", "--cases", "azure-code/1m-5m", "--traces-dir", "/nonexistent"]
    assert main(argv) == 2
    assert "--traces-dir: case azure-code/1m-5m needs" in capsys.readouterr().err
