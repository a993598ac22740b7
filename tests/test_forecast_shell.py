"""The simulator's forecasting shell: forecasts reach the policy as the service will send them."""

from __future__ import annotations

import numpy as np

from adapters.simulator.config import SimConfig
from adapters.simulator.engine import simulate
from adapters.simulator.forecasts import ForecastShell, shell_for
from adapters.simulator.synthetic import generate
from autoscaler.forecast_pool import ShellSettings
from autoscaler.policies import PolicyContext, make_policy
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
        "from adapters.simulator.forecasts import shell_for\n"
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

    from autoscaler.cli import main

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
