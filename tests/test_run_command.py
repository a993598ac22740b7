"""`leadtime run` as a real process: it serves, stops cleanly on a signal, and summarises."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import free_port, get_json


def start(*extra: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [sys.executable, "-m", "autoscaler", "run", "--port", str(port), *extra]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return process, f"http://127.0.0.1:{port}/"


def wait_ready(process: subprocess.Popen, base: str, limit_s: float = 60.0) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"exited early:\n{process.stdout.read() if process.stdout else ''}")
        try:
            if get_json(base + "readyz")["status"] == "ready":
                return
        except OSError:
            pass
        time.sleep(0.2)
    pytest.fail("never became ready")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_finishes_the_tick_stops_and_exits_zero_with_a_summary(signum):
    process, base = start("--speed", "100", "--duration", "2h", "--workload", "llm-bursty")
    try:
        wait_ready(process, base)
        time.sleep(1.0)
        process.send_signal(signum)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    assert "serving http://127.0.0.1:" in output
    assert "1 llm-bursty" not in output  # one service: a plain table, no service column
    assert "SLO met" in output and "leadtime" in output


def test_it_stops_by_itself_at_the_end_of_the_virtual_duration():
    process, _ = start("--speed", "1000", "--duration", "10m", "--workload", "web-diurnal")
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert "desired" in output  # a decision-change log line
    assert "SLO met" in output


def test_a_bad_config_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "leadtime.yaml"
    bad.write_text("policy:\n  quantil: 0.9\n")
    result = subprocess.run(
        [sys.executable, "-m", "autoscaler", "run", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown key 'quantil'" in lines[0]
