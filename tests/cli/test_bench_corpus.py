"""`bench --slo-target` (cost at equal SLO) and `bench --corpus` (tune and report halves)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adapters.simulator.config import SimConfig
from autoscaler.errors import InputError
from autoscaler.policies.knobs import KNOBS, TUNING_SHARES
from leadtime import main
from leadtime.corpus import REPORT, TUNE, Case, compare, corpus_cases, select_cases
from leadtime.runs import BenchRun, Source
from leadtime.tuning import grid_runs, pick

TRACES = Path(__file__).resolve().parents[3] / "shared" / "data" / "traces"


def test_the_grid_is_ten_shares_of_the_slots_and_each_knob_reads_as_upstream_writes_it():
    assert TUNING_SHARES == (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    assert KNOBS["kpa"].describe(0.6, 8) == "target-utilization-percentage=60%"
    assert KNOBS["ray-serve"].describe(0.5, 8) == "target_ongoing_requests=4"
    assert KNOBS["dynamo-planner"].describe(0.1, 8) == "max_num_seqs=1"
    assert KNOBS["dynamo-planner"].describe(0.7, 8) == "max_num_seqs=6"


def _run(policy: str) -> BenchRun:
    return BenchRun((Source(None, "sparse", 1),), SimConfig(), policy, 8)


def test_a_baseline_is_replayed_at_every_setting_and_leadtime_once():
    assert [run.share for run in grid_runs(_run("keda"))] == list(TUNING_SHARES)
    assert grid_runs(_run("leadtime")) == [_run("leadtime")]
    assert grid_runs(_run("oracle")) == [_run("oracle")]


def _row(attainment: float, gpu: float) -> list[dict]:
    return [{"trace": "t", "policy": "kpa", "slo_attainment": attainment, "gpu_seconds": gpu}]


def test_the_cheapest_setting_that_meets_the_target_wins():
    run = _run("kpa")
    settings = grid_runs(run)[:3]
    outcomes = [_row(0.995, 300.0), _row(0.991, 200.0), _row(0.97, 100.0)]
    chosen = pick(run, settings, outcomes, 0.99)[0]
    assert chosen["gpu_seconds"] == 200.0
    assert chosen["tuned_setting"] == "target-utilization-percentage=20%"
    assert chosen["target_met"] is True


def test_no_setting_meets_the_target_then_the_best_attainment_is_reported_not_met():
    run = _run("hpa")
    settings = grid_runs(run)[:2]
    chosen = pick(run, settings, [_row(0.90, 100.0), _row(0.95, 300.0)], 0.99)[0]
    assert chosen["slo_attainment"] == 0.95
    assert chosen["target_met"] is False
    assert chosen["tuned_setting"] == "averageValue=1.6"


def test_an_untuned_policy_is_judged_against_the_target_as_given():
    run = _run("leadtime")
    chosen = pick(run, [run], [_row(0.985, 100.0)], 0.99)[0]
    assert chosen["tuned_setting"] is None
    assert chosen["target_met"] is False


def test_the_corpus_has_both_halves_every_shared_trace_at_three_cold_starts_and_three_seeds():
    cases = corpus_cases(TRACES)
    names = [case.name for case in cases]
    assert len(names) == len(set(names))
    halves = {case.family: case.half for case in cases}
    # a family lives in one half only
    for case in cases:
        assert case.half == halves[case.family]
    assert {TUNE, REPORT} == set(halves.values())
    for trace in ("azure-code", "nasa-monday", "mooncake"):
        colds = sorted(c.overrides["cold_start_s"] for c in cases if c.name.startswith(trace + "/"))
        assert colds == [30.0, 60.0, 180.0]
    for family in ("flash-crowd", "step-change", "slow-ramp", "diurnal-bursts", "long-context"):
        assert sum(case.name.startswith(family + "/seed-") for case in cases) == 3
    for source in (source for case in cases for source in case.sources):
        assert source.trace is None or Path(source.trace).is_file()


def test_cases_are_chosen_by_glob_and_a_pattern_matching_none_lists_them():
    cases = corpus_cases(TRACES)
    assert [c.name for c in select_cases(cases, "sparse/*")] == [
        "sparse/seed-1",
        "sparse/seed-2",
        "sparse/seed-3",
    ]
    with pytest.raises(InputError, match="--cases: 'nothing' matches no case; the cases are"):
        select_cases(cases, "nothing")


def _total(case: str, half: str, policy: str, attainment: float, gpu: float) -> dict:
    return {
        "case": case,
        "half": half,
        "policy": policy,
        "slo_attainment": attainment,
        "gpu_seconds": gpu,
    }


def test_the_summary_counts_cheaper_at_equal_or_better_slo_per_half_and_names_the_worst_cases():
    rows = [
        _total("a", TUNE, "leadtime", 0.99, 90.0),
        _total("a", TUNE, "kpa", 0.99, 100.0),  # cheaper at equal SLO: a win
        _total("b", TUNE, "leadtime", 0.98, 90.0),
        _total("b", TUNE, "kpa", 0.99, 100.0),  # cheaper but worse SLO: no win
        _total("c", REPORT, "leadtime", 0.999, 150.0),
        _total("c", REPORT, "kpa", 0.99, 100.0),  # better SLO, dearer: no win, the worst
    ]
    tune, report = compare(rows, "leadtime")
    assert (tune["half"], tune["versus"], tune["wins"], tune["cases"]) == (TUNE, "kpa", 1, 2)
    assert report["dearest_case"] == "c"
    assert report["dearest_gpu_ratio"] == pytest.approx(1.5)
    assert report["dearest_slo_points"] == pytest.approx(0.9)
    # in the tune half, b is where leadtime is furthest behind on SLO (cheaper there)
    assert (tune["behind_case"], tune["behind_slo_points"]) == ("b", pytest.approx(-1.0))
    assert tune["behind_gpu_ratio"] == pytest.approx(0.9)


def test_bench_slo_target_reports_a_tuned_setting_for_each_baseline(capsys):
    argv = ["bench", "--workload", "sparse", "--duration", "30m", "--policies", "kpa,oracle"]
    assert main([*argv, "--slo-target", "0.99", "--json", "--jobs", "1"]) == 0
    rows = json.loads(capsys.readouterr().out)
    by_policy = {row["policy"]: row for row in rows}
    assert by_policy["kpa"]["tuned_setting"].startswith("target-utilization-percentage=")
    assert by_policy["oracle"]["tuned_setting"] is None
    for row in rows:
        assert row["target_met"] == (row["slo_attainment"] >= 0.99)


def test_bench_corpus_runs_the_chosen_cases_on_two_processes(capsys):
    argv = ["bench", "--corpus", "--cases", "sparse/seed-1", "--traces-dir", str(TRACES)]
    assert main([*argv, "--policies", "kpa,leadtime", "--jobs", "2", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert {row["policy"] for row in payload["cases"]} == {"kpa", "leadtime"}
    assert all(row["case"] == "sparse/seed-1" and row["half"] == REPORT for row in payload["cases"])
    (summary,) = payload["summary"]
    assert (summary["half"], summary["versus"], summary["cases"]) == (REPORT, "kpa", 1)


def test_corpus_flags_are_refused_without_the_corpus_and_a_missing_trace_is_named(capsys):
    assert main(["bench", "--workload", "sparse", "--cases", "x"]) == 2
    assert "--cases: only with --corpus" in capsys.readouterr().err
    argv = ["bench", "--corpus", "--cases", "azure-code/cold-30s", "--traces-dir", "/nonexistent"]
    assert main(argv) == 2
    assert "--traces-dir: case azure-code/cold-30s needs" in capsys.readouterr().err


def test_a_case_applies_its_overrides_to_the_base_configuration():
    case = Case("x/cold-30s", "x", TUNE, (Source(None, "sparse", 1),), {"cold_start_s": 30.0})
    config = case.config(SimConfig(max_concurrency=4))
    assert (config.cold_start_s, config.max_concurrency) == (30.0, 4)


def test_one_corpus_case_is_plotted_as_the_corpus_runs_it(tmp_path, capsys):
    path = tmp_path / "case.png"
    argv = ["bench", "--corpus", "--cases", "sparse/seed-2", "--traces-dir", str(TRACES)]
    assert main([*argv, "--policies", "kpa,oracle", "--plot", str(path), "--json"]) == 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = json.loads(capsys.readouterr().out)["cases"]
    assert [row["policy"] for row in rows] == ["kpa", "oracle"]
    # several cases cannot share one plot
    assert main(["bench", "--corpus", "--cases", "sparse/*", "--plot", str(path)]) == 2
    assert "--plot: with --corpus, pick one case" in capsys.readouterr().err
