"""`leadtime backtest`: rolling-origin evaluation of every forecaster on a trace.

The composition root for forecasting: it turns a workload into a request-rate series at the
chosen resolution, masks known outages, and hands plain arrays to `forecasting` (which knows
nothing of traces or Kubernetes). One row per model; `auto` is the automatic choice.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial

import numpy as np

from autoscaler.durations import format_duration, parse_duration
from autoscaler.errors import InputError
from forecasting import backtest
from forecasting.registry import make_forecaster, model_names
from forecasting.seasonality import DAY_S
from leadtime.corpus import add_corpus_options, refuse_corpus_flags
from leadtime.options import add_workload_options, rate_series_from_args
from leadtime.progress import progress_bar
from leadtime.table import align

OUTAGE_S = 6 * 3600.0
"""Runs of zeros longer than this are outages, not data (`--mask-idle-over`'s default)."""
EVAL_FRACTION = 0.3
"""Share of the series scored by default, capped at `MAX_EVAL_S`: the rest trains."""
MAX_EVAL_S = 7 * DAY_S
DEFAULT_ORIGINS = 500
COLUMNS = ("mase", "smape", "pinball_50", "pinball_90", "coverage_90", "fit_s", "predict_ms")


def add_backtest_command(
    commands: argparse._SubParsersAction, corpus: Callable[[argparse.Namespace], int]
) -> None:
    """`backtest`; with `--corpus` it runs `corpus` (`backtest_corpus_cmd`, which builds on
    this module's scoring: given here, so that this module does not import it back)."""
    parser = commands.add_parser("backtest", help="rolling-origin evaluation of the forecasters")
    add_workload_options(parser)
    parser.add_argument("--resolution", default="1m", metavar="D", help="step (default 1m)")
    parser.add_argument("--horizon", default="5m", metavar="D", help="forecast horizon (5m)")
    parser.add_argument(
        "--models", default=",".join(model_names()), help="comma-separated (default: all + auto)"
    )
    parser.add_argument(
        "--origins", type=int, default=DEFAULT_ORIGINS, help="forecast origins (default 500)"
    )
    parser.add_argument(
        "--eval",
        metavar="D",
        help="length scored at the end (default 30%% of the series, at most 7d)",
    )
    parser.add_argument(
        "--refit-every",
        default="1d",
        metavar="D",
        help="refit models this often during the evaluation, as the service would (1d)",
    )
    parser.add_argument(
        "--mask-idle-over",
        default=format_duration(OUTAGE_S),
        metavar="D",
        help="treat runs of zeros longer than this as outages, not data (%(default)s; 0 = off)",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON list")
    add_corpus_options(
        parser.add_argument_group("the forecasting corpus"),
        corpus_help="every model on the fixed corpus (shared traces at four time scales, NASA "
        "windows, synthetic families; tune and report halves) instead of one series, and a "
        "summary per half",
        jobs_help="with --corpus: cases",
    )
    parser.add_argument("--plot", metavar="FILE.png", help="draw the forecasts of the models")
    source = parser.add_argument_group("history from Prometheus instead of a trace")
    source.add_argument("--prometheus", metavar="URL", help="a Prometheus HTTP API")
    source.add_argument(
        "--query", metavar="PROMQL", help="one request-rate series (summed if several)"
    )
    source.add_argument(
        "--start", metavar="T", help="Unix seconds or ISO 8601 (default: --end minus 7 days)"
    )
    source.add_argument("--end", metavar="T", help="Unix seconds or ISO 8601 (default: now)")
    parser.set_defaults(handler=partial(run_backtest, corpus=corpus))


def run_backtest(args: argparse.Namespace, corpus: Callable[[argparse.Namespace], int]) -> int:
    if args.corpus:
        return corpus(args)
    refuse_corpus_flags(args)
    step_s = _positive_duration(args.resolution, "--resolution")
    horizon = max(1, math.ceil(_positive_duration(args.horizon, "--horizon") / step_s))
    names = model_list(args.models)
    if args.prometheus:
        label, y = _prometheus_series(args, step_s)
    else:
        label, y = rate_series_from_args(args, step_s)
    mask = outage_mask(y, parse_duration(args.mask_idle_over, field="--mask-idle-over"), step_s)
    plan = _plan(args, y.size, horizon, step_s)
    with progress_bar("backtest", enabled=not args.json and sys.stderr.isatty()) as update:
        rows, runs = score_models(y, step_s, plan, names, mask, update)
    _emit(args, label, rows, plan, step_s)
    if args.plot:
        from leadtime.plot import plot_backtest

        plot_backtest(y, plan, {name: runs[name] for name in names}, step_s, args.plot)
    return 0


BASELINE = "seasonal_naive"
"""MASE's reference forecast."""


def score_models(
    y: np.ndarray,
    step_s: float,
    plan: backtest.Plan,
    names: list[str],
    mask: np.ndarray | None = None,
    progress: Callable[[float], None] | None = None,
) -> tuple[list[dict], dict[str, backtest.Run]]:
    """One row of figures per model of `names` on the series `y` (and each model's run), every
    model forecasting `plan.horizon` steps ahead from the same origins; `progress` gets the
    share done."""
    to_run = [BASELINE] + [name for name in names if name != BASELINE]
    total = len(to_run) * plan.origins.size
    done = [0]

    def tick(count: int) -> None:
        done[0] += count
        if progress is not None:
            progress(done[0] / total)

    runs = {}
    for name in to_run:
        runs[name] = backtest.run(
            y,
            partial(make_forecaster, name, horizon_steps=plan.horizon),
            plan,
            step_s=step_s,
            mask=mask,
            name=name,
            progress=tick,
        )
    actual = backtest.actuals(y, plan)
    keep = backtest.scored_points(plan, mask)
    rows = [
        {"model": name, **backtest.score(actual, runs[name], runs[BASELINE], keep)}
        for name in names
    ]
    return rows, runs


def _prometheus_series(args: argparse.Namespace, step_s: float) -> tuple[str, np.ndarray]:
    """The request-rate history a PromQL query gives, at the backtest's resolution."""
    from adapters.prometheus.client import PrometheusClient, PrometheusError
    from adapters.prometheus.history import pull_rate_series

    if args.trace or args.workload:
        raise InputError("--prometheus: give it instead of --trace / --workload, not with them")
    if not args.query:
        raise InputError("--prometheus: needs --query PROMQL (a request rate, e.g. sum(rate(...)))")
    end = _moment(args.end, "--end") if args.end else time.time()
    start = _moment(args.start, "--start") if args.start else end - 7 * DAY_S
    if not start < end:
        raise InputError(f"--start: must be before --end ({start:.0f} >= {end:.0f})")
    client = PrometheusClient(args.prometheus, timeout_s=30.0)
    try:
        series = asyncio.run(_pull(client, args.query, start, end, step_s, pull_rate_series))
    except PrometheusError as error:
        raise InputError(f"--prometheus {args.prometheus}: {error}") from None
    if not np.isfinite(series).any():
        raise InputError("--query: Prometheus has no samples for it between --start and --end")
    return f"prometheus: {args.query}", series


async def _pull(client, query, start, end, step_s, pull):
    try:
        return await pull(client, query, start, end, step_s)
    finally:
        await client.close()


def _moment(text: str, flag: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InputError(f"{flag}: expected Unix seconds or ISO 8601, got {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def outage_mask(y: np.ndarray, longer_than_s: float, step_s: float) -> np.ndarray | None:
    """The steps not to score: runs of zeros longer than `longer_than_s` (`idle_mask`) and
    steps without a sample (NaN: Prometheus had none; missing, not zero)."""
    mask = idle_mask(y, longer_than_s, step_s)
    if np.isnan(y).any():
        mask = np.isnan(y) if mask is None else mask | np.isnan(y)
    return mask


def idle_mask(y: np.ndarray, longer_than_s: float, step_s: float) -> np.ndarray | None:
    """True inside runs of zeros longer than `longer_than_s` (an outage in a busy series)."""
    if longer_than_s <= 0:
        return None
    zero = np.concatenate([[False], y == 0, [False]])
    edges = np.flatnonzero(np.diff(zero.astype(np.int8)))
    starts, ends = edges[::2], edges[1::2]
    mask = np.zeros(y.size, dtype=bool)
    for start, end in zip(starts, ends, strict=True):
        if (end - start) * step_s > longer_than_s:
            mask[start:end] = True
    return mask if mask.any() else None


def _plan(args: argparse.Namespace, n: int, horizon: int, step_s: float) -> backtest.Plan:
    eval_s = parse_duration(args.eval, field="--eval") if args.eval else None
    refit_s = parse_duration(args.refit_every, field="--refit-every")
    if args.origins < 1:
        raise InputError("--origins: expected a whole number >= 1")
    try:
        return plan_for(n, horizon, step_s, eval_s=eval_s, refit_s=refit_s, origins=args.origins)
    except ValueError as error:
        raise InputError(
            f"backtest: {error}; use a longer window or a finer --resolution"
        ) from None


def plan_for(
    n: int,
    horizon: int,
    step_s: float,
    *,
    eval_s: float | None = None,
    refit_s: float = DAY_S,
    origins: int = DEFAULT_ORIGINS,
) -> backtest.Plan:
    """Origins over the scored tail: `eval_s` (default `EVAL_FRACTION` of the series, at most
    `MAX_EVAL_S`, after at least half of it for training), refits every `refit_s` as the
    service refits. Raises ValueError when the series is too short."""
    default = eval_s is None
    eval_s = min(MAX_EVAL_S, EVAL_FRACTION * n * step_s) if eval_s is None else eval_s
    return backtest.plan_origins(
        n,
        horizon,
        eval_steps=max(1, int(eval_s // step_s)),
        max_origins=origins,
        refit_every=int(refit_s // step_s) or None,
        min_train=max(2, int(0.5 * n) if default else 2),
    )


def model_list(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in names if name not in model_names()]
    if not names or unknown:
        raise InputError(
            f"--models: unknown {', '.join(unknown) or '(empty)'}; "
            f"known: {', '.join(model_names())}"
        )
    return list(dict.fromkeys(names))


def _positive_duration(text: str, flag: str) -> float:
    value = parse_duration(text, field=flag)
    if value <= 0:
        raise InputError(f"{flag}: must be longer than 0s")
    return value


def _emit(
    args: argparse.Namespace,
    label: str,
    rows: list[dict],
    plan: backtest.Plan,
    step_s: float,
) -> None:
    if args.json:
        json.dump([finite(row) for row in rows], sys.stdout)
        sys.stdout.write("\n")
        return
    print(
        f"workload: {label}  resolution {step_s:g}s  "
        f"horizon {plan.horizon} steps  origins {plan.origins.size}"
    )
    header = ("model", *COLUMNS)
    table = [header] + [(row["model"], *(_cell(key, row[key]) for key in COLUMNS)) for row in rows]
    print("\n".join(align(table)))


def _cell(key: str, value: float) -> str:
    if not math.isfinite(value):
        return "-"
    if key == "coverage_90":
        return f"{value:.1%}"
    if key in ("fit_s", "predict_ms"):
        return f"{value:.3g}"
    return f"{value:.4g}"


def finite(row: dict) -> dict:
    """JSON has no NaN: an undefined figure (e.g. MASE when the reference is perfect) is null."""
    return {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()
    }
