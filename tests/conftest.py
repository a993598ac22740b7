"""Shared fixtures.

The real public traces live outside the repository, in `../shared/data/traces/` beside the
checkout (as in CI). A missing folder is a failure, never a skip (docs/architecture.md §9).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from load_tests.local.replicas import free_port

pytest_plugins = ["tests.cluster.fixtures", "tests.helpers.knative"]

SHARED_TRACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "traces"


@pytest.fixture(scope="session")
def shared_traces() -> Path:
    """The folder of real traces; fails the test when it is absent."""
    if not SHARED_TRACES.is_dir():
        pytest.fail(
            f"real traces not found at {SHARED_TRACES}: check out the shared data folder "
            "as ../shared beside the repository (see shared/data/traces/SOURCES.md)"
        )
    return SHARED_TRACES


def get_json(url: str, timeout: float = 5.0):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


@pytest.fixture(scope="session")
def running_service() -> Iterator[str]:
    """`leadtime run` as a real process on the embedded simulator (two built-in workloads at
    50× real time); yields its base URL once it is ready and has forecasts."""
    port = free_port()
    command = [sys.executable, "-m", "leadtime", "run", "--port", str(port)]
    command += ["--speed", "50", "--duration", "12h"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}/"
    try:
        _wait_for_forecasts(base, process)
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def _wait_for_forecasts(base: str, process: subprocess.Popen, limit_s: float = 120.0) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            pytest.fail(f"leadtime run exited with {process.returncode}:\n{output[-3000:]}")
        try:
            services = get_json(base + "api/v1/services")["services"]
            details = [
                get_json(f"{base}api/v1/services/{s['namespace']}/{s['name']}") for s in services
            ]
            if services and all(d["forecast"] is not None for d in details):
                return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"leadtime run at {base} had no forecasts after {limit_s:.0f}s")
