"""The command line: JSON shapes, tables, plots and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from adapters.simulator.results import RESULT_KEYS
from leadtime import main


def run_json(capsys, *argv: str):
    assert main(list(argv)) == 0
    out = capsys.readouterr().out
    return json.loads(out)


def test_simulate_json_is_one_object_with_every_result_key(capsys):
    result = run_json(
        capsys,
        "simulate",
        "--workload",
        "llm-bursty",
        "--duration",
        "10m",
        "--policy",
        "kpa",
        "--json",
    )
    assert isinstance(result, dict)
    assert set(RESULT_KEYS) | {"trace", "policy"} <= set(result)
    assert result["policy"] == "kpa"
    assert result["trace"] == "workload:llm-bursty"
    assert result["requests"] > 0
    assert result["gpu_seconds"] >= result["oracle_gpu_seconds"]


def test_bench_json_is_a_list_in_the_order_asked_on_the_same_arrivals(capsys, shared_traces):
    trace = str(shared_traces / "AzureLLMInferenceTrace_code.csv")
    results = run_json(
        capsys,
        "bench",
        "--trace",
        trace,
        "--duration",
        "10m",
        "--policies",
        "kpa,hpa,static:3,oracle",
        "--json",
    )
    assert [r["policy"] for r in results] == ["kpa", "hpa", "static:3", "oracle"]
    assert len({r["requests"] for r in results}) == 1
    for result in results:
        assert set(RESULT_KEYS) <= set(result)
        assert result["gpu_seconds"] >= result["oracle_gpu_seconds"]
    oracle = results[-1]
    assert oracle["cold_start_requests"] == 0
    assert oracle["dropped_requests"] == 0


def test_same_seed_same_json(capsys):
    argv = ["simulate", "--workload", "web-diurnal", "--duration", "30m", "--seed", "3", "--json"]
    first = run_json(capsys, *argv)
    second = run_json(capsys, *argv)
    first.pop("sim_wall_s"), second.pop("sim_wall_s")
    assert first == second


def test_table_names_the_workload_and_every_policy(capsys):
    assert (
        main(
            ["bench", "--workload", "llm-bursty", "--duration", "5m", "--policies", "kpa,static:2"]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "workload:llm-bursty" in out
    assert "\nkpa " in out and "\nstatic:2 " in out
    assert "SLO met" in out and "GPU/oracle" in out


def test_plot_writes_a_png(tmp_path, capsys):
    path = tmp_path / "run.png"
    assert (
        main(["simulate", "--workload", "llm-bursty", "--duration", "5m", "--plot", str(path)]) == 0
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["simulate", "--policy", "knative"], "policy 'knative': expected one of kpa, hpa"),
        (["simulate", "--duration", "5 minutes"], "--duration: expected"),
        (["simulate", "--cold-start=-5"], "--cold-start: must be a finite, non-negative"),
        (["simulate", "--max-concurrency", "0"], "max_concurrency (--max-concurrency)"),
        (["simulate", "--rate-scale", "0"], "--rate-scale: expected a positive number"),
        (["simulate", "--trace", "/nonexistent/trace.csv"], "/nonexistent/trace.csv"),
        (["simulate", "--workload", "nope"], "nope"),
        (["bench", "--policies", "kpa,kpa"], "kpa named more than once"),
        (["simulate", "--policy", "static:-1"], "static:N needs a whole number"),
        (
            ["bench", "--workload", "llm-bursty", "--workload", "web-diurnal"]
            + ["--rate-scale", "1", "--rate-scale", "2", "--rate-scale", "3"],
            "--rate-scale: give it once for every service or once per --trace (2 services)",
        ),
        (
            ["trace-info", "--workload", "llm-bursty", "--workload", "web-diurnal"],
            "trace-info: give one --trace or --workload, not several",
        ),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_2(capsys, argv, message):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("leadtime: error: ")
    assert message in lines[0]


def test_trace_info_reports_the_statistics_of_a_real_trace(capsys, shared_traces):
    stats = run_json(
        capsys,
        "trace-info",
        "--trace",
        str(shared_traces / "AzureLLMInferenceTrace_code.csv"),
        "--json",
    )
    assert stats["requests"] == 8819
    assert stats["peak_rps_1s"] == 67


def test_python_dash_m_runs_the_same_cli():
    completed = subprocess.run(
        [sys.executable, "-m", "leadtime", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert completed.stdout.startswith("leadtime ")


def _run_on_terminal(*argv: str) -> tuple[str, str]:
    """Run the CLI with stderr on a 100-column pseudo-terminal; return (stdout, terminal)."""
    import fcntl
    import os
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    process = subprocess.Popen(
        [sys.executable, "-m", "leadtime", *argv],
        stdout=subprocess.PIPE,
        stderr=follower,
        text=True,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closes when the process exits
            break
        if not chunk:
            break
        chunks.append(chunk)
    stdout = process.communicate()[0]
    os.close(leader)
    return stdout, b"".join(chunks).decode(errors="replace")


def test_long_runs_show_a_progress_bar_on_a_terminal_but_never_with_json():
    long_run = ("simulate", "--workload", "web-diurnal", "--rate-scale", "3", "--policy", "kpa")
    stdout, terminal = _run_on_terminal(*long_run)
    assert "kpa: " in terminal and "%|" in terminal
    assert "%|" not in stdout
    stdout, terminal = _run_on_terminal(*long_run, "--json")
    assert terminal == ""
    assert json.loads(stdout)["policy"] == "kpa"


BACKTEST_KEYS = {
    "model",
    "mase",
    "smape",
    "pinball_50",
    "pinball_90",
    "coverage_90",
    "fit_s",
    "predict_ms",
}


def test_backtest_json_has_one_row_per_model_with_auto_last(capsys, shared_traces):
    rows = run_json(
        capsys,
        "backtest",
        "--trace",
        str(shared_traces / "AzureLLMInferenceTrace_code.csv"),
        "--resolution",
        "10s",
        "--horizon",
        "1m",
        "--models",
        "naive,tsb,auto",
        "--origins",
        "40",
        "--json",
    )
    assert [row["model"] for row in rows] == ["naive", "tsb", "auto"]
    for row in rows:
        assert set(row) == BACKTEST_KEYS
        assert 0.0 <= row["coverage_90"] <= 1.0
        assert row["pinball_90"] > 0 and row["predict_ms"] > 0
    assert rows[0]["mase"] == 1.0  # naive is the seasonal naive of a series without a season


def test_backtest_refuses_a_series_too_short_for_the_horizon(capsys):
    assert (
        main(
            [
                "backtest",
                "--workload",
                "llm-bursty",
                "--duration",
                "10m",
                "--resolution",
                "1m",
                "--horizon",
                "20m",
            ]
        )
        == 2
    )
    assert "too short" in capsys.readouterr().err


def test_backtest_masks_long_idle_runs_as_outages():
    from leadtime.backtest import idle_mask

    y = np.array([1.0, 0, 0, 0, 2, 0, 3])
    assert idle_mask(y, 2 * 60, 60).tolist() == [False, True, True, True, False, False, False]
    assert idle_mask(y, 0, 60) is None


def test_several_traces_are_services_of_one_cluster_with_a_total_row(capsys, shared_traces):
    azure = str(shared_traces / "AzureLLMInferenceTrace_code.csv")
    nasa = str(shared_traces / "nasa_http_1995_per_second_workload.tbz2")
    argv = ["bench", "--trace", azure, "--trace", nasa, "--offset", "0", "--offset", "2d"]
    argv += ["--duration", "10m", "--rate-scale", "1", "--rate-scale", "10", "--gpu-pool", "8"]
    results = run_json(capsys, *argv, "--policies", "hpa,leadtime", "--json")
    assert [(r["policy"], r["trace"]) for r in results] == [
        ("hpa", azure),
        ("hpa", nasa),
        ("hpa", "total"),
        ("leadtime", azure),
        ("leadtime", nasa),
        ("leadtime", "total"),
    ]
    for first, second, total in (results[:3], results[3:]):
        assert total["requests"] == first["requests"] + second["requests"]
        assert total["gpu_seconds"] == pytest.approx(first["gpu_seconds"] + second["gpu_seconds"])
        # the cluster's GPUs: at least the pool all along, and never less than the replicas use
        assert total["cluster_gpu_seconds"] >= max(8 * 600, total["gpu_seconds"])
        assert "cluster_gpu_seconds" not in first
    # the NASA service, scaled x10, is a different service from the Azure one
    assert results[1]["requests"] != results[0]["requests"]
    # the table has a service column with the file names
    assert main([*argv, "--policies", "hpa"]) == 0
    table = capsys.readouterr().out
    assert "service" in table.splitlines()[0]
    assert "nasa_http_1995_per_second_workload.tbz2" in table and "total" in table


def test_simulate_gives_leadtime_the_objective_s_target(capsys):
    """`--slo-target` is Leadtime's input: a stricter objective buys more GPU-seconds, a looser
    one fewer, on the same arrivals; a target outside [0.5, 1) is refused by name."""

    def gpu_seconds(target: str) -> float:
        argv = ["simulate", "--workload", "web-diurnal", "--duration", "30m", "--json"]
        return run_json(capsys, *argv, "--slo-target", target)["gpu_seconds"]

    assert gpu_seconds("0.5") < gpu_seconds("0.999")
    with pytest.raises(SystemExit):
        main(["simulate", "--slo-target", "1"])
    assert "--slo-target: expected a share of requests in [0.5, 1)" in capsys.readouterr().err
