"""`--plot`: load, replicas per policy and SLO misses over time, in one PNG (matplotlib)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from adapters.simulator.results import SimResult
from autoscaler.errors import InputError

FORESIGHT_REASONS = ("predictive", "headroom", "holding", "keepalive", "prewarm")
"""Decisions that came from foresight rather than the reactive floor."""


def plot_results(results: Sequence[SimResult], path: str) -> None:
    """Three stacked panels sharing the time axis (minutes)."""
    plt = _pyplot()
    fig, (load_ax, replica_ax, miss_ax) = plt.subplots(3, 1, sharex=True, figsize=(11, 8))
    first = results[0].series
    minutes = np.arange(first["arrivals"].size) / 60.0
    arrivals = first["arrivals"]
    load_ax.plot(minutes, arrivals, lw=0.4, color="0.7", label="arrivals / s")
    per_minute = _per_minute(arrivals) / 60.0
    load_ax.step(
        np.arange(per_minute.size),
        per_minute,
        where="post",
        lw=1.0,
        color="C0",
        label="mean over each minute",
    )
    for result in results:
        ticks = result.ticks
        if ticks.forecast_for:
            load_ax.fill_between(
                np.asarray(ticks.forecast_for) / 60.0,
                ticks.forecast_p50,
                ticks.forecast_p90,
                step="post",
                color="C3",
                alpha=0.3,
                label=f"{result.policy} forecast p50–p90, one lead time ahead",
            )
            break
    load_ax.set_ylabel("requests / s")
    load_ax.legend(loc="upper right", fontsize="small")
    for index, result in enumerate(results):
        ticks = result.ticks
        color = f"C{index + 1}"
        minutes = np.asarray(ticks.time) / 60.0
        replica_ax.step(
            minutes, ticks.ready, where="post", lw=0.9, color=color, label=f"{result.policy} ready"
        )
        foresight = np.isin(ticks.reason, FORESIGHT_REASONS)
        if foresight.any():
            replica_ax.scatter(
                minutes[foresight],
                np.asarray(ticks.desired)[foresight],
                s=4,
                color=color,
                marker="^",
                label=f"{result.policy} desired by forecast or idle history",
            )
        per_minute = _per_minute(result.series["slo_misses"])
        miss_ax.plot(
            np.arange(per_minute.size), per_minute, lw=0.9, color=color, label=result.policy
        )
    warmup_min = results[0].summary.get("warmup_s", 0.0) / 60.0
    if warmup_min > 0:
        for ax in (load_ax, replica_ax, miss_ax):
            ax.axvspan(0.0, warmup_min, color="0.92", zorder=0)
        load_ax.text(
            warmup_min,
            0.98,
            " warm-up, not scored ",
            transform=load_ax.get_xaxis_transform(),
            ha="right",
            va="top",
            fontsize="small",
            color="0.4",
        )
    replica_ax.set_ylabel("ready replicas")
    replica_ax.legend(loc="upper right", fontsize="small")
    miss_ax.set_ylabel("SLO misses / min")
    miss_ax.set_xlabel("minutes")
    miss_ax.legend(loc="upper right", fontsize="small")
    fig.suptitle(f"{results[0].trace}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _pyplot():
    """matplotlib's pyplot on the file-only backend, or a clear error when it is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise InputError("--plot needs matplotlib: pip install 'leadtime[plot]'") from error
    return plt


def _per_minute(per_second: np.ndarray) -> np.ndarray:
    minutes = int(np.ceil(per_second.size / 60))
    padded = np.zeros(minutes * 60)
    padded[: per_second.size] = per_second
    return padded.reshape(minutes, 60).sum(axis=1)


def plot_backtest(y, plan, runs, step_s: float, path: str) -> None:
    """Actual rate and each model's median and 90 % band at the last step of the horizon."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(11, 5))
    target = plan.origins + plan.horizon - 1
    hours = target * step_s / 3600.0
    ax.plot(hours, y[target], color="0.3", lw=0.8, label="actual")
    for index, (name, run) in enumerate(runs.items()):
        color = f"C{index}"
        ax.plot(hours, run.quantiles[0.5][:, -1], lw=0.8, color=color, label=f"{name} median")
        ax.fill_between(
            hours, run.quantiles[0.05][:, -1], run.quantiles[0.95][:, -1], color=color, alpha=0.15
        )
    ax.set_xlabel("hours from the start of the series")
    ax.set_ylabel("requests / s")
    ax.set_title(f"forecasts {plan.horizon} steps ahead, 90 % bands")
    ax.legend(loc="upper right", fontsize="small", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
