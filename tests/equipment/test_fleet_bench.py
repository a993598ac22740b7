"""The fleet benchmark's machinery (`load_tests/fleet.py`) on a handful of services: its
series, and that both phases run through the real pool and report. Reads no times as bars:
the benchmark's figures are for the run by hand (README)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "load_tests"))

import bench_forecasting
import fleet


def test_the_fleet_is_a_third_each_diurnal_bursty_and_flat():
    day = 86_400
    series = [fleet.fleet_seconds(index, day, seed=0) for index in range(3)]
    assert all(s.size == day and (s >= 0).all() for s in series)
    steps = [s.reshape(-1, 10)[:, 0] for s in series]
    idle = [float(np.mean(s == 0)) for s in steps]
    assert idle[1] > 0.5 > idle[0]  # on/off: mostly off; diurnal: mostly busy
    assert np.array_equal(series[2], fleet.fleet_seconds(2, day, seed=0))  # seeded


@pytest.mark.slow
def test_both_phases_run_through_the_pool_and_report(capsys):
    args = bench_forecasting.build_parser().parse_args(
        [
            "--services=6",
            "--history-h=1",
            "--ready-s=60",
            "--steady-services=2",
            "--steady-h=0.25",
            "--workers=1",
        ]
    )
    fleet.run_fleet(args)
    out = capsys.readouterr().out
    assert re.search(r"every service has a forecast after \d+s", out), out
    assert re.search(r"every service has its own auto after \d+s", out), out
    cores = re.search(r"= ([\d.]+) cores at 6 services", out)
    per_hour = re.search(r"updates and forecasts ([\d.]+) CPU-s per service-hour", out)
    assert cores and per_hour, out
    assert float(per_hour.group(1)) > 0
