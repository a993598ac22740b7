"""The simulator's forecasting shell: forecasts reach the policy as the service will send them."""

from __future__ import annotations

import numpy as np

from adapters.simulator.config import SimConfig
from adapters.simulator.engine import simulate
from adapters.simulator.forecast_shells import ForecastShell, shell_for
from adapters.simulator.synthetic import generate
from autoscaler.forecast_workers import ShellSettings
from autoscaler.policies.catalog import PolicyContext, make_policy
from autoscaler.policies.kpa import Kpa
from autoscaler.policies.leadtime import Leadtime


def test_no_forecast_until_there_is_enough_history():
    shell = ForecastShell(horizon_s=120.0, model="ets", min_history_s=600.0)
    forecast, note = shell.at(np.ones(300), now=300.0)
    assert forecast is None and "needs 600s" in note


def test_seconds_before_the_first_observed_one_are_not_history():
    """A warm start from Prometheus hands a new service hours of NaN (nothing scraped yet):
    they must not count towards the history a fit needs, nor shift the forecast's clock."""
    shell = ForecastShell(horizon_s=60.0, model="naive", min_history_s=60.0)
    shell.feed(np.full(3600, np.nan), origin_s=1000.0)
    shell.feed(np.ones(30))
    forecast, note = shell.forecast(now=4630.0)
    assert forecast is None and note.startswith("30s of history")
    shell.feed(np.full(40, 3.0))  # 70 s observed: the first fit, on observed seconds only
    forecast, note = shell.forecast(now=4670.0)
    assert note == "" and forecast is not None and shell.last_fit_s is not None
    assert abs(forecast.quantile(0.5)[0] - 3.0) < 0.5  # the last full step, not NaN or 0
    assert forecast.horizon_steps * forecast.step_s >= 60.0  # starts at now


def test_fits_while_the_history_doubles_then_every_six_hours():
    """The refit rule the simulator and the service's workers share: the first fit once there
    is `min_history_s`, again each time the history has doubled, and at the latest
    `REFIT_EVERY_S` after the previous fit; in between the model is only updated."""
    shell = ForecastShell(horizon_s=60.0, model="naive", min_history_s=60.0)
    assert ShellSettings(horizon_s=60.0).refit_every_s == shell.refit_every_s == 6 * 3600.0
    fitted_at = []
    for now in range(10, 30 * 3600 + 1, 10):
        shell.feed(np.ones(10))
        shell.last_fit_s = None
        forecast, _ = shell.forecast(float(now))
        if shell.last_fit_s is not None:
            fitted_at.append(now)
    doubling = [60 * 2**k for k in range(10)]  # 60 s ... 30,720 s (8.5 h)
    assert fitted_at == [*doubling, 52_320, 73_920, 95_520]  # then 6 h apart, not hourly
    assert forecast is not None


def test_forecast_starts_at_now_and_reaches_the_horizon():
    shell = ForecastShell(horizon_s=120.0, model="naive", min_history_s=60.0)
    arrivals = np.tile([2.0, 0.0], 600)  # 1 request/s on average
    forecast, note = shell.at(arrivals, now=1200.0)
    assert note == "" and forecast is not None
    assert forecast.horizon_steps * forecast.step_s >= 120.0
    assert abs(forecast.quantile(0.5)[0] - 1.0) < 0.5
    later, _ = shell.at(arrivals, now=1235.0)  # same data, 35 s later: 4 steps already past
    assert later.horizon_steps == forecast.horizon_steps - 4


def test_only_policies_that_read_forecasts_get_a_shell():
    config = SimConfig()
    assert shell_for(Kpa(), config) is None
    shell = shell_for(Leadtime(), config)
    assert shell is not None and shell.horizon_s > config.cold_start_bounds[1]


def test_a_shell_for_the_simulator_imports_its_models_before_the_replay_starts():
    """A replay's wall time is the replay's: statsmodels and scikit-learn's ensembles (a
    second to import) load when the shell is made, not at its first fit."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from adapters.simulator.config import SimConfig\n"
        "from adapters.simulator.forecast_shells import shell_for\n"
        "from autoscaler.policies.leadtime import Leadtime\n"
        "assert 'statsmodels' not in sys.modules\n"
        "shell_for(Leadtime(), SimConfig())\n"
        "from forecasting.registry import MODELS\n"
        "from forecasting.selection import DEFAULT_CANDIDATES\n"
        "assert all(MODELS[name][0] in sys.modules for name in DEFAULT_CANDIDATES)\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)


def test_leadtime_in_the_simulator_sees_forecasts_and_measured_cold_starts():
    work = generate("llm-bursty", seed=1, duration=2400.0)
    config = SimConfig(cold_start_s=30.0)
    policy = make_policy("leadtime", PolicyContext(container_concurrency=8))
    result = simulate(work, policy, config, forecasts=shell_for(policy, config))
    reasons = set(result.ticks.reason)
    assert any(reason.startswith("fallback:") for reason in reasons)  # before enough history
    assert reasons - {r for r in reasons if r.startswith("fallback:")}  # then forecasts
    summary = result.summary
    assert summary["gpu_seconds"] >= summary["oracle_gpu_seconds"]
    assert summary["served_requests"] + summary["dropped_requests"] == summary["requests"]


def test_leadtime_dominates_the_kpa_on_a_window_of_the_azure_trace(capsys, shared_traces):
    """Regression guard for the product claim: more requests within the SLO on fewer
    GPU-seconds than Knative's KPA, on the same arrivals (first 30 minutes, 60 s cold start)."""
    import json

    from leadtime import main

    trace = str(shared_traces / "AzureLLMInferenceTrace_code.csv")
    assert (
        main(
            ["bench", "--trace", trace, "--duration", "30m", "--policies", "kpa,leadtime", "--json"]
        )
        == 0
    )
    kpa, leadtime = json.loads(capsys.readouterr().out)
    assert leadtime["slo_attainment"] >= kpa["slo_attainment"]
    assert leadtime["gpu_seconds"] <= kpa["gpu_seconds"]
    kpa_misses = 1 - kpa["slo_attainment"]
    assert 1 - leadtime["slo_attainment"] <= 0.5 * kpa_misses  # at least half fewer misses


def test_a_warm_start_seeds_the_history_at_the_step_and_new_seconds_follow_it():
    """The service's warm start hands the shell its history as 10 s rates ending at the pull's
    end; seconds fed after it continue the same clock, so forecasts start at `now`."""
    shell = ForecastShell(horizon_s=60.0, model="naive", min_history_s=60.0)
    shell.seed(np.r_[np.full(30, np.nan), np.full(60, 2.0)], end_s=10_000.0)  # 5 min unobserved
    shell.feed(np.full(25, 4.0), origin_s=10_000.0)  # 2 new steps, 5 s carried
    forecast, note = shell.forecast(now=10_025.0)
    assert note == "" and forecast is not None
    assert abs(forecast.quantile(0.5)[0] - 4.0) < 0.5  # the new seconds are the latest steps
    assert forecast.horizon_steps * forecast.step_s >= 60.0
    assert shell.forecast(now=10_055.0)[0].horizon_steps == forecast.horizon_steps - 3


def test_a_history_of_nothing_still_fixes_the_clock():
    """A warm start of a service Prometheus never saw (all NaN) anchors the clock at its end:
    a later `feed` that carries no origin must not move it."""
    shell = ForecastShell(horizon_s=30.0, model="naive", min_history_s=30.0)
    shell.seed(np.full(6, np.nan), end_s=1_000_000.0)
    shell.feed(np.zeros(0), origin_s=1_000_000.0)
    shell.feed(np.full(40, 1.0), origin_s=0.0)  # the pool sends the origin once, then 0
    forecast, note = shell.forecast(now=1_000_040.0)
    assert note == "" and forecast is not None and forecast.horizon_steps >= 3


def test_a_rationed_first_fit_is_served_by_the_starter_until_the_model_fits():
    shell = ForecastShell(horizon_s=60.0, model="ets", min_history_s=60.0)
    shell.seed(np.full(360, 3.0) + np.tile([0.0, 1.0], 180), end_s=3600.0)
    forecast, note = shell.forecast(now=3600.0, allow_fit=False)
    assert note == "" and forecast is not None and forecast.model == "naive"
    assert shell.serving_starter and shell.last_fit_s is None  # the starter is not a fit
    shell.feed(np.full(10, 3.0), origin_s=3600.0)
    forecast, _ = shell.forecast(now=3610.0, allow_fit=True)
    assert forecast is not None and forecast.model == "ets"
    assert not shell.serving_starter and shell.last_fit_s is not None


def test_the_starter_gives_way_at_the_first_allowed_fit_not_at_the_next_step():
    """The pool's batches come every 2 s and steps every 10 s: a starter that waited for a new
    step before its service's own fit held four batches in five without one (at 10,000
    services, a fifth of the fits the budget allows)."""
    shell = ForecastShell(horizon_s=60.0, model="ets", min_history_s=60.0)
    shell.seed(np.full(360, 3.0) + np.tile([0.0, 1.0], 180), end_s=3600.0)
    shell.forecast(now=3600.0, allow_fit=False)
    assert shell.serving_starter
    shell.feed(np.full(2, 3.0), origin_s=3600.0)  # no step completes
    forecast, note = shell.forecast(now=3602.0, allow_fit=True)
    assert note == "" and forecast is not None and forecast.model == "ets"
    assert not shell.serving_starter


def test_a_warm_start_fits_the_quick_selection_first_and_the_full_one_an_hour_later():
    """10,000 services starting from Prometheus history each need a fit on a day of steps:
    the first chooses among `auto`'s quick candidates, and the full selection replaces it
    `QUICK_SERVES_S` later; a shell that grew its own history fits the full one from the
    start (the simulator's)."""
    from autoscaler.forecast_shell import QUICK_SERVES_S
    from forecasting.selection import DEFAULT_CANDIDATES, QUICK_CANDIDATES

    assert set(QUICK_CANDIDATES) < set(DEFAULT_CANDIDATES)
    day = np.tile(np.r_[np.full(30, 1.0), np.full(30, 3.0)], 144)  # 10 s steps, 10 min cycle
    shell = ForecastShell(horizon_s=60.0, model="auto", min_history_s=60.0)
    shell.seed(day, end_s=86_400.0)
    now = 86_400.0
    shell.forecast(now)
    assert shell.serving_quick and shell.last_fit_s is not None
    assert shell._forecaster.candidates == QUICK_CANDIDATES
    refits = []
    while now < 86_400.0 + QUICK_SERVES_S + 60:
        now += 10.0
        shell.feed(np.full(10, 2.0), origin_s=86_400.0)
        shell.last_fit_s = None
        shell.forecast(now)
        if shell.last_fit_s is not None:
            refits.append(now - 86_400.0)
    assert refits == [QUICK_SERVES_S]
    assert not shell.serving_quick and shell._forecaster.candidates == DEFAULT_CANDIDATES
    grown = ForecastShell(horizon_s=60.0, model="auto", min_history_s=60.0)
    grown.feed(day[:100].repeat(10), origin_s=0.0)
    grown.forecast(1000.0)
    assert not grown.serving_quick and grown._forecaster.candidates == DEFAULT_CANDIDATES


async def test_the_pool_seeds_in_steps_and_says_when_the_starter_serves():
    """Through the real worker process: a day of seconds crosses as 10 s rates, and with no
    fitting budget the service gets the starter's forecast at once, marked as such."""
    import asyncio

    from autoscaler.forecast_workers import ForecastPool

    results = []
    pool = ForecastPool(
        ShellSettings(horizon_s=60.0, model="auto"), 1, results.append, fit_budget_s=0.0
    )
    try:
        day = np.tile(np.r_[np.full(300, 1.0), np.full(300, 3.0)], 144)
        pool.seed("ns/svc", day, 86_400.0)
        assert pool._shard("ns/svc").histories["ns/svc"][0].size == 8640  # steps, not seconds
        pool.submit(86_400.0)
        await asyncio.wait_for(pool.drain(), 60)
        await asyncio.sleep(0.05)
        (result,) = results
        assert result.forecast is not None and result.starter and result.fit_s is None
        assert result.forecast.model == "naive"
    finally:
        pool.close()


def test_a_worker_runs_its_thread_pools_on_one_thread():
    """A worker is one core's worth of fits and updates: BLAS threads left spinning after each
    call cost a fit of `auto` 60 % more CPU than its work."""
    from threadpoolctl import threadpool_info

    from autoscaler.forecast_workers import ForecastPool

    pool = ForecastPool(ShellSettings(horizon_s=60.0, model="auto"), 1, lambda _: None)
    try:
        libraries = pool._shards[0].executor.submit(threadpool_info).result(timeout=120)
    finally:
        pool.close()
    assert "blas" in {library["user_api"] for library in libraries}
    assert all(library["num_threads"] == 1 for library in libraries)
