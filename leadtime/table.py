"""Plain-text tables of simulation results, one row per policy."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class ResultRow(Protocol):
    """What a table row reads of a result: a SimResult, or a load test's summary."""

    trace: str
    policy: str
    summary: dict[str, Any]


@dataclass
class SummaryRow:
    """A row from a JSON summary (what a bench worker process returns)."""

    trace: str
    policy: str
    summary: dict[str, Any]

    @classmethod
    def of(cls, row: dict[str, Any]) -> SummaryRow:
        return cls(row["trace"], row["policy"], row)


TUNED_COLUMNS: tuple[tuple[str, str], ...] = (
    ("setting", "tuned_setting"),
    ("target", "target_met"),
)
"""Shown after the policy when a row was tuned to an SLO target (`bench --slo-target`)."""

COLUMNS: tuple[tuple[str, str, str], ...] = (
    # header, summary key, format
    ("requests", "requests", "{:,}"),
    ("SLO met", "slo_attainment", "{:.2%}"),
    ("TTFT p50", "ttft_p50_s", "{:.2f}s"),
    ("TTFT p99", "ttft_p99_s", "{:.2f}s"),
    ("latency p99", "latency_p99_s", "{:.1f}s"),
    ("cold-start reqs", "cold_start_requests", "{:,}"),
    ("dropped", "dropped_requests", "{:,}"),
    ("GPU-s", "gpu_seconds", "{:,.0f}"),
    ("cluster GPU-s", "cluster_gpu_seconds", "{:,.0f}"),
    ("oracle GPU-s", "oracle_gpu_seconds", "{:,.0f}"),
    ("mean ready", "mean_ready_replicas", "{:.2f}"),
    ("scale events", "scale_events", "{:,}"),
    ("wall", "sim_wall_s", "{:.1f}s"),
)


def render_results(results: Sequence[ResultRow]) -> str:
    """A table with a header line naming the workload, then one aligned row per policy; with
    several services, a service column instead of the header line (per service, then total)."""
    if not results:
        return "(no results)"
    several = len({result.trace for result in results}) > 1
    tuned = any("target_met" in result.summary for result in results)
    extra = [title for title, _ in TUNED_COLUMNS] if tuned else []
    header = ["policy", *(["service"] if several else []), *extra, *(t for t, _, _ in COLUMNS)]
    rows = [[*header, "GPU/oracle"]]
    position = 0
    for result in results:
        cells = _row(result, tuned)
        if not several:
            rows.append(cells)
            continue
        # numbered, as one trace may be several services (other windows, other seeds)
        position = 0 if result.trace == "total" else position + 1
        service = f"{position} {os.path.basename(result.trace)}" if position else "total"
        rows.append([cells[0], service, *cells[1:]])
    if several:
        return "\n".join(align(rows))
    return "\n".join([f"workload: {results[0].trace}", *align(rows)])


def align(rows: Sequence[Sequence[str]]) -> list[str]:
    """Rows of cells as aligned lines: the first column left, the others right."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [row[0].ljust(widths[0])]
        cells += [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells))
    return lines


def _row(result: ResultRow, tuned: bool) -> list[str]:
    summary = result.summary
    cells = [result.policy]
    if tuned:
        setting, met = summary.get("tuned_setting"), summary.get("target_met")
        cells += [setting or "as given", "met" if met else "not met"]
    for _, key, fmt in COLUMNS:
        value = summary.get(key)
        cells.append("-" if value is None else fmt.format(value))
    oracle = summary["oracle_gpu_seconds"]
    cells.append(f"{summary['gpu_seconds'] / oracle:.2f}x" if oracle > 0 else "-")
    return cells
