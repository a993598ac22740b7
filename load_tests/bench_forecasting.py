"""Forecasting at fleet scale: fit time for many series, and predict time per call; with
`--services N`, the service's own forecasting path at N services instead (see `fleet`).

Per model (the default):

1. Builds N synthetic request-rate series (default 1,000) of 7 days at 1-minute resolution:
   the NASA-calibrated diurnal/weekly profile of the `web-diurnal` workload, a per-series
   scale (log-uniform, 0.05–50 requests/s), slow multiplicative noise and Poisson counts.
2. For each model, fits every series through a process pool (`forecasting.batch_fit.fit_many`,
   2 workers on this 2-core machine) and reports the wall time; the global gradient-boosted
   model is trained once across all series instead.
3. Reports the median and p99 time of `predict(60)` and of `update(one value)` per model on
   fitted models, in this process.

    python load_tests/bench_forecasting.py [--series 1000] [--days 7] [--models ets,sarimax]
    python load_tests/bench_forecasting.py --services 10000 [--history-h 24] [--ready-s 600]
        [--steady-services 200] [--steady-h H] [--refit-h 6]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from adapters.simulator.synthetic import diurnal_profile
from forecasting.batch_fit import fit_many
from forecasting.registry import model_names

STEP_S = 60.0


def make_series(count: int, days: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    minutes = int(days * 86_400 / STEP_S)
    t = np.arange(minutes) * STEP_S
    profile = diurnal_profile(t)
    series = []
    for _ in range(count):
        scale = 10 ** rng.uniform(np.log10(0.05), np.log10(50))
        noise = np.exp(np.cumsum(rng.normal(0, 0.02, minutes)) * 0.5)
        noise /= noise.mean()
        counts = rng.poisson(scale * STEP_S * profile * noise)
        series.append(counts / STEP_S)
    return series


def timed_calls(models, call) -> tuple[float, float]:
    samples = []
    for model in models:
        started = time.perf_counter()
        call(model)
        samples.append(time.perf_counter() - started)
    return float(np.median(samples) * 1000), float(np.percentile(samples, 99) * 1000)


def build_parser() -> argparse.ArgumentParser:
    """The command line (the fleet test parses its own arguments with it)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--models", default=",".join(name for name in model_names() if name != "auto")
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--services", type=int, help="the fleet path at this many services (see fleet.py)"
    )
    parser.add_argument("--history-h", type=float, default=24.0)
    parser.add_argument("--ready-s", type=float, default=600.0)
    parser.add_argument("--steady-services", type=int, default=200)
    parser.add_argument("--steady-h", type=float, default=None)
    parser.add_argument("--refit-h", type=float, default=None, help="refit interval (6 h)")
    return parser


def main() -> None:
    args = build_parser().parse_args()
    if args.services:
        from fleet import run_fleet

        run_fleet(args)
        return
    series = make_series(args.series, args.days, args.seed)
    print(
        f"{args.series} series x {args.days} days at 1-minute resolution "
        f"({series[0].size} points each), {args.workers} worker processes"
    )
    print(
        f"{'model':<16} {'fit all s':>10} {'per series ms':>14} "
        f"{'predict p50 ms':>15} {'predict p99 ms':>15} {'update p50 ms':>14}"
    )
    for name in [part.strip() for part in args.models.split(",") if part.strip()]:
        started = time.perf_counter()
        models = fit_many(name, series, step_s=STEP_S, workers=args.workers)
        wall = time.perf_counter() - started
        sample = models[:200]
        p50, p99 = timed_calls(sample, lambda m: m.predict(60))
        u50, _ = timed_calls(sample, lambda m: m.update(1.0))
        print(
            f"{name:<16} {wall:>10.1f} {1000 * wall / len(series):>14.1f} "
            f"{p50:>15.3f} {p99:>15.3f} {u50:>14.3f}",
            flush=True,
        )
    _global(series)


def _global(series: list[np.ndarray]) -> None:
    try:
        from forecasting.models.global_gbm import GlobalGradientBoosting
    except ImportError:
        return
    started = time.perf_counter()
    shared = GlobalGradientBoosting().fit_many(series, step_s=STEP_S)
    wall = time.perf_counter() - started
    members = [shared.for_series(y) for y in series[:200]]
    p50, p99 = timed_calls(members, lambda m: m.predict(60))
    print(
        f"{'global_gbm':<16} {wall:>10.1f} {1000 * wall / len(series):>14.1f} "
        f"{p50:>15.3f} {p99:>15.3f} {'(one model)':>14}"
    )


if __name__ == "__main__":
    main()
