"""`leadtime run` as a real process: it serves, stops cleanly on a signal, and summarises."""

from __future__ import annotations

import contextlib
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import free_port, get_json


def start(*extra: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [sys.executable, "-m", "leadtime", "run", "--port", str(port), *extra]
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
        [sys.executable, "-m", "leadtime", "run", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown key 'quantil'" in lines[0]


def test_ctrl_c_on_a_terminal_prints_the_results_table_and_nothing_else():
    """Ctrl-C in a terminal signals the whole foreground process group, the forecasting
    workers included: they leave it to the parent, so no traceback lands on the table."""
    port = free_port()
    pid, terminal = pty.fork()
    if pid == 0:  # the child: `leadtime run` with the pseudo-terminal as its controlling tty
        os.execv(
            sys.executable,
            [
                sys.executable,
                "-m",
                "leadtime",
                "run",
                "--port",
                str(port),
                "--speed",
                "50",
                "--duration",
                "12h",
            ],
        )
    screen = Screen(terminal)
    try:
        base = f"http://127.0.0.1:{port}/"
        screen.read_until("serving http://", limit_s=60)
        wait_for_forecasts(base, limit_s=120)  # the workers have started and fitted
        assert len(forecasting_workers(pid)) >= 1
        os.write(terminal, b"\x03")  # the terminal's interrupt character
        screen.read_to_end(limit_s=60)
        _, status = os.waitpid(pid, 0)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        os.close(terminal)
    assert os.waitstatus_to_exitcode(status) == 0, screen.text
    # What came after the terminal echoed ^C (and flushed the output not yet shown, as a
    # terminal does on an interrupt, so the line it cut stays cut).
    echoed = screen.text.rfind("^C")
    assert echoed >= 0, screen.text
    after = screen.text[echoed + 2 :].strip().splitlines()
    header = next((i for i, line in enumerate(after) if line.startswith("policy ")), None)
    assert header is not None, after
    # the last tick may still log its decisions; then the table, and nothing after it
    assert all(line.startswith("INFO leadtime: t=") for line in after[:header]), after
    table = [line.split() for line in after[header:]]
    assert table[0][:3] == ["policy", "service", "requests"], after
    rows = [row[:3] for row in table[1:]]
    assert rows == [["leadtime", "1", "llm-bursty"], ["leadtime", "2", "web-diurnal"]], after
    assert "Traceback" not in screen.text and "KeyboardInterrupt" not in screen.text


class Screen:
    """What a pseudo-terminal's program has printed, read as it comes."""

    def __init__(self, fd: int) -> None:
        self.fd, self.text = fd, ""

    def _read(self, timeout_s: float) -> bool:
        """One read; False at the end (the program closed the terminal)."""
        ready, _, _ = select.select([self.fd], [], [], timeout_s)
        if not ready:
            return True
        try:
            chunk = os.read(self.fd, 65536)
        except OSError:  # EIO: every process holding the terminal has exited
            return False
        self.text += chunk.decode(errors="replace")
        return bool(chunk)

    def read_until(self, marker: str, limit_s: float) -> None:
        deadline = time.monotonic() + limit_s
        while marker not in self.text:
            if time.monotonic() > deadline or not self._read(0.2):
                pytest.fail(f"no {marker!r} on the terminal:\n{self.text[-3000:]}")

    def read_to_end(self, limit_s: float) -> None:
        deadline = time.monotonic() + limit_s
        while self._read(0.2):
            if time.monotonic() > deadline:
                pytest.fail(f"still running {limit_s:.0f}s after Ctrl-C:\n{self.text[-3000:]}")


def wait_for_forecasts(base: str, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            services = get_json(base + "api/v1/services")["services"]
            keys = [f"{s['namespace']}/{s['name']}" for s in services]
            if keys and all(get_json(f"{base}api/v1/services/{k}")["forecast"] for k in keys):
                return
        time.sleep(0.5)
    pytest.fail(f"no forecasts at {base} after {limit_s:.0f}s")


def forecasting_workers(pid: int) -> list[int]:
    """The child processes of `pid` (the spawned forecasting workers and their helpers)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in children]
