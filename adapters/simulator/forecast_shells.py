"""The simulator's forecasting: one `ForecastShell` per service, far enough for its policy."""

from __future__ import annotations

from adapters.simulator.config import SimConfig
from autoscaler.forecast_shell import ForecastShell
from autoscaler.policy import ReadsForecasts
from forecasting.registry import import_models

__all__ = ["ForecastShell", "shell_for"]


def shell_for(policy: object, config: SimConfig) -> ForecastShell | None:
    """A shell for a policy that reads forecasts (`ReadsForecasts`), else None.

    The shell forecasts far enough for the longest cold start the simulator can draw plus
    the policy's own reach and the metrics delay — and, with a bounded GPU pool, one node
    provisioning further, which is how far the placeholder pool looks."""
    if not isinstance(policy, ReadsForecasts):
        return None
    reach = policy.forecast_reach_s
    shell = ForecastShell(
        horizon_s=config.cold_start_bounds[1] + reach + config.metrics_delay_s + config.node_wait_s
    )
    import_models(shell.model)  # before the replay's clock starts, not at its first fit
    return shell
