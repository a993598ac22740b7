"""The soak's machinery (`load_tests/soak.py`) on a small fleet: the report's structure, and that
catalog churn leaves nothing of the removed services behind. Counts entries, never times: the
soak's timing bars are for the benchmark run by hand, not for pytest."""

from __future__ import annotations

import gc
import sys
import weakref
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "load_tests"))

import soak


async def test_soak_reports_hours_and_forgets_removed_services() -> None:
    # 50 services, "hours" of 60 virtual seconds, one service replaced every 10 s
    result = await soak.soak(50, 4, churn_per_hour=6, hour_s=60.0, warmup_hours=1)
    hours, summary = result["hours"], result["summary"]
    assert [row["hour"] for row in hours] == [1, 2, 3, 4]
    assert all(row["ticks"] == 30 and row["services"] == 50 for row in hours)
    assert all(row["tick_p99_ms"] >= row["tick_p50_ms"] > 0 and row["rss_mib"] > 0 for row in hours)
    for key in (
        "rss_after_warmup_mib",
        "rss_end_mib",
        "rss_growth_pct",
        "p99_first_after_warmup_ms",
        "p99_last_ms",
        "p99_last_over_first",
        "p99_max_over_min",
        "cpu_p99_first_after_warmup_ms",
        "cpu_p99_last_over_first",
    ):
        assert summary[key] > 0 or key == "rss_growth_pct"
    assert summary["rss_after_warmup_mib"] == hours[0]["rss_mib"]
    assert summary["rss_end_mib"] == hours[-1]["rss_mib"]
    assert isinstance(summary["rss_pass"], bool) and isinstance(summary["p99_pass"], bool)
    assert len(soak.report(summary)) == 7

    loop, fleet = result["loop"], result["fleet"]
    removed = set(fleet.removed)
    assert len(removed) >= 20  # every 10 s for 240 s
    current = set(fleet.keys)
    # the catalog is synced every 30 s: what the loop manages is the catalog of then, at most
    # three replacements behind, and nothing else
    assert len(loop.states) == 50
    assert len(set(loop.states) - current) <= 3
    assert len(loop.fleet.ring) == 50 and loop.fleet.ring.n_rows <= 53
    assert hours[-1]["ring_rows"] == 50
    gone = removed - set(loop.states)
    assert len(gone) >= len(removed) - 3
    assert all(key not in loop.fleet.ring for key in gone)
    labels = {
        (sample.labels["namespace"], sample.labels["service"])
        for metric in loop.telemetry.registry.collect()
        if metric.name.startswith("leadtime_forecast")
        for sample in metric.samples
    }
    assert labels and not labels & {(key.namespace, key.name) for key in gone}
    assert hours[-1]["gauge_series"] == 3 * 50


async def test_removed_service_state_is_freed() -> None:
    """A removed service's state is garbage once the loop has forgotten it (the loop freezes
    live objects out of the collector's sight when services are added: a cycle among them
    would never be collected)."""
    fleet = soak.ChurningFleet(20, churn_per_hour=0)
    loop, clock = soak.make_loop(fleet)
    await soak.drive(loop, fleet, clock, 60, lambda tick, wall, cpu: None, quality=True)
    victim = fleet.keys[3]
    state = weakref.ref(loop.states[victim])
    alive = state()
    assert alive is not None and alive.forecast is not None
    del alive
    fleet.replace(3)
    assert fleet.removed == [victim]
    await soak.drive(loop, fleet, clock, 20, lambda tick, wall, cpu: None, quality=True)
    assert victim not in loop.states
    gc.collect()
    assert state() is None
