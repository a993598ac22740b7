"""The soak: a simulated day of the control loop at fleet scale, for leaks and tick-time drift.

    python load_tests/soak.py [--services 1000] [--hours 24] [--churn 10] [--json]

The real `ControlLoop` with the real Leadtime policy and telemetry over `--hours` of virtual time,
on the cheap simulated services of `bench_loop.py` (same `Fleet`, forecasts and tick driver), with
the churn of a production day on top:

- the daily wave of every service's rate (`Fleet`: ±50 %, a phase per service);
- services that go to zero and come back: a fifth of them are ON/OFF, off for half of a cycle of
  20 minutes to 3 hours (their own), so replicas go to zero, idle periods enter the keep-alive
  histograms and the scalar and fleet paths trade services all day;
- catalog churn: `--churn` services an hour (spread over the hour) are removed from the catalog
  and as many new ones added, with new names, rates and cycles; the loop must forget the
  removed services' state (rows, forecasts, gauges) — the per-hour figures count it;
- a forecast for every service every 10 s, delivered in fifths each tick as the workers deliver
  them, with a live MASE and coverage (per-service gauges).

Reported per virtual hour: tick p50/p99 (wall, ms), tick CPU-time p99, resident memory (RSS,
MiB) at the end of the hour, and what the loop holds (services, metrics-ring rows, per-service
gauge series, kept decisions, objects the garbage collector tracks). Then the summary against
these bars:

- **Warm-up = the first hour** (`--warmup-hours`). The longest history the loop keeps is 15
  minutes: the metrics ring (`DISPLAY_S`, 900 s, longer than the policy's windows: the KPA's
  60 s, the service-time window), the replica history (`HISTORY_TICKS`, 450 ticks of 2 s) and the
  forecasts (64 steps of 10 s). The keep-alive histograms are fixed arrays from the start, the
  out-of-range idle list holds at most 8 values, the hold rings a fixed number of slots. An hour
  fills all of them four times over and lets the ring grow to its final capacity and the
  allocator reach its working set. Bounded but slow to fill: each service keeps its last 50
  decision *changes* (`ServiceState.decisions`), which a steady service may take hours to fill;
  the "decisions kept" column shows how full they are and what they take (an estimate from
  `sys.getsizeof` of the records and their details; at most 50 × services records of ~230
  bytes, ~11 MiB at 1,000 services), and the summary says how much of the growth they are.
- **RSS**: PASS when the RSS at the end grows at most 5 % over the RSS after warm-up (all of
  it, the filling decision logs included).
- **Tick p99 flat**: PASS when the last hour's p99 of the tick's *CPU time* is at most 1.5 ×
  the first post-warm-up hour's. Also reported: the max/min ratio of the hourly p99s after
  warm-up, and the same for wall time. Wall times are at the mercy of whatever else the machine
  runs (another process's burst makes an hour's p99 jump without any drift in the loop); the
  CPU time the process spent in the tick does not grow when others take the cores, so it is the
  verdict's measure, and the object and entry counts are the noise-free evidence for memory.

Exit status 1 when a bar is missed (for hand or scheduled runs; not a timed unit test: the team
measures performance with benchmarks and never enforces it in pytest).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_loop import Fleet, drive, make_loop, p99, rss_mib

from autoscaler.loop import ControlLoop
from autoscaler.ports import ServiceKey

RSS_BAR = 0.05
"""Issue 12: resident memory grows at most 5 % after warm-up."""
P99_BAR = 1.5
"""Flat: the last hour's tick p99 at most this times the first post-warm-up hour's."""
ON_OFF_SHARE = 0.2


class ChurningFleet(Fleet):
    """`bench_loop.Fleet` with services that go to zero and come back and a changing catalog:
    `churn(now)` replaces services by new ones in the same slots (new key, rate and cycle)."""

    def __init__(self, count: int, seed: int = 0, churn_per_hour: float = 10.0) -> None:
        super().__init__(count, seed)
        self.cycle_s = np.zeros(count)
        self.offset = np.zeros(count)
        self._draw_cycles(np.arange(count))
        self.churn_every_s = math.inf if churn_per_hour <= 0 else 3600.0 / churn_per_hour
        self.next_churn_at = self.churn_every_s
        self.generation = 0
        self.removed: list[ServiceKey] = []

    def _draw_cycles(self, slots: np.ndarray) -> None:
        on_off = self.rng.random(slots.size) < ON_OFF_SHARE
        cycle = self.rng.uniform(1200.0, 10_800.0, slots.size)
        self.cycle_s[slots] = np.where(on_off, cycle, 0.0)
        self.offset[slots] = self.rng.uniform(0.0, 1.0, slots.size)

    def rates_at(self, second: float) -> np.ndarray:
        rates = super().rates_at(second)
        cycling = self.cycle_s > 0
        position = (second / np.where(cycling, self.cycle_s, 1.0) + self.offset) % 1.0
        return np.where(cycling & (position >= 0.5), 0.0, rates)

    def churn(self, now: float) -> None:
        """Every `churn_every_s`: one service leaves the catalog and a new one takes its slot."""
        while now >= self.next_churn_at:
            self.next_churn_at += self.churn_every_s
            self.replace(int(self.rng.integers(len(self.keys))))

    def replace(self, i: int) -> None:
        """Remove the service in slot `i` from the catalog and add a new one in its place."""
        self.generation += 1
        old = self.keys[i]
        new = ServiceKey(old.namespace, f"svc-{i}-g{self.generation}")
        del self.index[old]
        self.keys[i], self.index[new] = new, i
        self.removed.append(old)
        self.rate[i] = np.exp(self.rng.uniform(np.log(0.05), np.log(50.0)))
        self.phase[i] = self.rng.uniform(0, 2 * np.pi)
        self._draw_cycles(np.array([i]))
        self.desired[i] = self.ready[i] = 1
        self.ready_at[i] = []


@dataclass
class Hour:
    hour: int
    ticks: int
    tick_p50_ms: float
    tick_p99_ms: float
    tick_cpu_p99_ms: float
    """The tick's CPU time (process time): what the loop itself costs, whatever else runs."""
    rss_mib: float
    services: int
    ring_rows: int
    gauge_series: int
    decisions_kept: int
    decisions_mib: float
    gc_objects: int
    catalog_removed: int


def holdings(loop: ControlLoop) -> dict[str, int]:
    """What the loop holds that must not grow with time or churn (entries, not bytes)."""
    return {
        "services": len(loop.states),
        "ring_rows": len(loop.fleet.ring),
        "gauge_series": sum(
            len(gauge._metrics)  # prometheus_client keeps one child per label set here
            for gauge in (
                loop.telemetry.forecast_mase,
                loop.telemetry.forecast_coverage,
                loop.telemetry.forecast_load,
            )
        ),
        "decisions_kept": sum(len(state.decisions) for state in loop.states.values()),
    }


def decisions_mib(loop: ControlLoop) -> float:
    """An estimate of the memory the kept decisions take (records and their details)."""
    size = sys.getsizeof
    return sum(size(d) + size(d.detail) for s in loop.states.values() for d in s.decisions) / 2**20


async def soak(
    services: int,
    hours: float,
    *,
    churn_per_hour: float = 10.0,
    hour_s: float = 3600.0,
    warmup_hours: int = 1,
    seed: int = 0,
    progress=None,
) -> dict:
    """Run the soak; `hour_s` shortens the reporting period (tests). Returns the per-hour rows
    and the summary, plus `loop` and `fleet` (not JSON) for inspection."""
    fleet = ChurningFleet(services, seed, churn_per_hour * 3600.0 / hour_s)
    loop, clock = make_loop(fleet)
    tick_s = loop.config.tick_s
    per_hour = max(1, round(hour_s / tick_s))
    ticks = max(per_hour, round(hours * hour_s / tick_s))
    rows: list[Hour] = []
    walls: list[float] = []
    cpus: list[float] = []

    def after(tick: int, wall: float, cpu: float) -> None:
        walls.append(wall)
        cpus.append(cpu)
        if len(walls) == per_hour or tick == ticks - 1:
            ordered = sorted(walls)
            hour = Hour(
                hour=len(rows) + 1,
                ticks=len(ordered),
                tick_p50_ms=1000 * statistics.median(ordered),
                tick_p99_ms=1000 * p99(ordered),
                tick_cpu_p99_ms=1000 * p99(sorted(cpus)),
                rss_mib=rss_mib(),
                decisions_mib=decisions_mib(loop),
                gc_objects=len(gc.get_objects()) + gc.get_freeze_count(),
                catalog_removed=len(fleet.removed),
                **holdings(loop),
            )
            rows.append(hour)
            walls.clear()
            cpus.clear()
            if progress is not None:
                progress(hour)

    started = time.perf_counter()
    await drive(loop, fleet, clock, ticks, after, before=fleet.churn, quality=True)
    summary = summarise(rows, warmup_hours)
    summary["wall_s"] = time.perf_counter() - started
    summary["services"] = services
    summary["virtual_hours"] = ticks * tick_s / hour_s
    summary["churned_services"] = len(fleet.removed)
    return {
        "hours": [asdict(row) for row in rows],
        "summary": summary,
        "loop": loop,
        "fleet": fleet,
    }


def summarise(rows: list[Hour], warmup_hours: int) -> dict:
    """The figures against the bars (see the module docstring)."""
    warm = min(max(1, warmup_hours), len(rows))
    after = rows[warm:] or rows[-1:]
    rss_warm, rss_end = rows[warm - 1].rss_mib, rows[-1].rss_mib
    growth = (rss_end - rss_warm) / rss_warm
    p99s = [row.tick_p99_ms for row in after]
    cpu_p99s = [row.tick_cpu_p99_ms for row in after]
    first, last = cpu_p99s[0], cpu_p99s[-1]
    return {
        "warmup_hours": warm,
        "rss_after_warmup_mib": rss_warm,
        "rss_end_mib": rss_end,
        "rss_growth_pct": 100 * growth,
        "rss_pass": growth <= RSS_BAR,
        "decisions_growth_mib": rows[-1].decisions_mib - rows[warm - 1].decisions_mib,
        "rss_growth_without_decisions_pct": 100
        * (rss_end - rss_warm - (rows[-1].decisions_mib - rows[warm - 1].decisions_mib))
        / rss_warm,
        "cpu_p99_first_after_warmup_ms": first,
        "cpu_p99_last_ms": last,
        "cpu_p99_last_over_first": last / first,
        "cpu_p99_max_over_min": max(cpu_p99s) / min(cpu_p99s),
        "p99_first_after_warmup_ms": p99s[0],
        "p99_last_ms": p99s[-1],
        "p99_last_over_first": p99s[-1] / p99s[0],
        "p99_max_ms": max(p99s),
        "p99_min_ms": min(p99s),
        "p99_max_over_min": max(p99s) / min(p99s),
        "p99_pass": last <= P99_BAR * first,
    }


def _row(hour: Hour) -> str:
    return (
        f"{hour.hour:>4} {hour.ticks:>6} {hour.tick_p50_ms:>8.1f} {hour.tick_p99_ms:>8.1f} "
        f"{hour.tick_cpu_p99_ms:>8.1f} "
        f"{hour.rss_mib:>8.1f} {hour.services:>8} {hour.ring_rows:>6} {hour.gauge_series:>7} "
        f"{hour.decisions_kept:>9} {hour.decisions_mib:>6.1f} {hour.gc_objects:>10} "
        f"{hour.catalog_removed:>8}"
    )


HEADER = (
    "hour  ticks  p50 ms   p99 ms  CPU p99  RSS MiB services  rows  gauges decisions    MiB"
    " gc objects  removed"
)


def report(summary: dict) -> list[str]:
    s = summary
    verdict = {True: "PASS", False: "FAIL"}
    return [
        f"services {s['services']}, {s['virtual_hours']:.1f} virtual hours, "
        f"{s['churned_services']} replaced in the catalog, wall {s['wall_s']:.0f} s",
        f"RSS after warm-up ({s['warmup_hours']} h) {s['rss_after_warmup_mib']:.1f} MiB, "
        f"at end {s['rss_end_mib']:.1f} MiB, growth {s['rss_growth_pct']:+.2f} %",
        f"  of which the bounded decision logs filling (50 per service): "
        f"{s['decisions_growth_mib']:+.1f} MiB; "
        f"the rest {s['rss_growth_without_decisions_pct']:+.2f} %",
        f"tick CPU p99 first hour after warm-up {s['cpu_p99_first_after_warmup_ms']:.1f} ms, "
        f"last hour {s['cpu_p99_last_ms']:.1f} ms (ratio {s['cpu_p99_last_over_first']:.2f}; "
        f"hourly max / min {s['cpu_p99_max_over_min']:.2f})",
        f"tick wall p99 first hour after warm-up {s['p99_first_after_warmup_ms']:.1f} ms, "
        f"last hour "
        f"{s['p99_last_ms']:.1f} ms (ratio {s['p99_last_over_first']:.2f}); hourly max "
        f"{s['p99_max_ms']:.1f} / min {s['p99_min_ms']:.1f} ms (ratio {s['p99_max_over_min']:.2f})",
        f"{verdict[s['rss_pass']]}: RSS growth after warm-up <= {100 * RSS_BAR:.0f} %",
        f"{verdict[s['p99_pass']]}: tick CPU p99 flat (last hour <= {P99_BAR} x first after "
        "warm-up)",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--hours", type=float, default=24.0, help="virtual hours to run")
    parser.add_argument("--churn", type=float, default=10.0, help="services replaced per hour")
    parser.add_argument("--warmup-hours", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args()
    if not args.json:
        print(HEADER, flush=True)

    def progress(hour: Hour) -> None:
        if not args.json:
            print(_row(hour), flush=True)

    result = asyncio.run(
        soak(
            args.services,
            args.hours,
            churn_per_hour=args.churn,
            warmup_hours=args.warmup_hours,
            seed=args.seed,
            progress=progress,
        )
    )
    summary = result["summary"]
    if args.json:
        print(json.dumps({"hours": result["hours"], "summary": summary}))
    else:
        print("\n".join(report(summary)))
    return 0 if summary["rss_pass"] and summary["p99_pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
