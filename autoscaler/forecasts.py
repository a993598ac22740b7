"""The forecasting shell of the simulator: what the service will do for every service, live.

It turns the per-second arrivals a policy can see into a rate series at `step_s`, fits a
forecaster on it (again every `refit_every_s` of virtual time, and whenever the history has
doubled since the last fit, so a model fitted on the first minutes is not kept for an hour),
`update`s it as steps complete,
scores its one-step forecasts with `LiveQuality`, and hands the policy a forecast that starts at
the policy's `now` — or no forecast and the reason (too little history, quality bad).
Fits take wall time, not virtual time: in the service they run in a process pool meanwhile.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from adapters.simulator.config import SimConfig
from forecasting.base import Forecaster
from forecasting.forecast import Forecast
from forecasting.quality import LiveQuality
from forecasting.registry import make_forecaster

LEVELS = (0.05, 0.5, 0.9, 0.95, 0.99)
MAX_SELECTION_HORIZON = 30
"""`auto` selects models for at most this many steps ahead (5 minutes at 10 s): longer
validation horizons need more history before selection can start."""


@dataclass
class ForecastShell:
    """Per-service forecaster lifecycle in virtual time (see the module docstring)."""

    horizon_s: float
    """How far past `now` the policy reads the forecast."""
    model: str = "auto"
    step_s: float = 10.0
    refit_every_s: float = 3600.0
    min_history_s: float = 60.0
    max_history_s: float = 86_400.0
    quality: LiveQuality = field(default_factory=lambda: LiveQuality(window=360))
    _rates: list[float] = field(default_factory=list)
    _forecaster: Forecaster | None = None
    _fitted_at: float = -math.inf
    _fitted_steps: int = 0
    _steps_seen: int = 0
    _last: Forecast | None = None
    _pending: tuple[int, float, float, float, float] | None = None

    def at(self, arrivals_ps: np.ndarray, now: float) -> tuple[Forecast | None, str]:
        """The forecast for [now, now + horizon_s), from the visible per-second arrivals."""
        step = self.step_s
        steps = int(arrivals_ps.size // step)
        if steps * step < self.min_history_s:
            return (
                None,
                f"{steps * step:.0f}s of history, forecasting needs {self.min_history_s:.0f}s",
            )
        if steps != self._steps_seen or self._forecaster is None:
            width = int(step)
            fresh = arrivals_ps[len(self._rates) * width : steps * width]
            self._rates.extend((fresh.reshape(-1, width).sum(axis=1) / step).tolist())
            self._advance(now)
        usable, why = self.quality.verdict()
        if not usable:
            return None, f"quality: {why}"
        assert self._last is not None
        past_steps = math.ceil((now - self._steps_seen * step) / step)
        return _shift(self._last, past_steps), ""

    @property
    def _horizon_steps(self) -> int:
        return max(1, math.ceil(self.horizon_s / self.step_s))

    def _advance(self, now: float) -> None:
        rates = self._rates
        self._score(rates)
        keep = int(self.max_history_s // self.step_s)
        if (
            self._forecaster is None
            or now - self._fitted_at >= self.refit_every_s
            or len(rates) >= 2 * self._fitted_steps
        ):
            selection_horizon = min(self._horizon_steps, MAX_SELECTION_HORIZON)
            self._forecaster = make_forecaster(self.model, horizon_steps=selection_horizon)
            self._forecaster.fit(np.asarray(rates[-keep:]), step_s=self.step_s)
            self._fitted_at, self._fitted_steps = now, len(rates)
        else:
            self._forecaster.update(np.asarray(rates[self._steps_seen :]))
        self._steps_seen = len(rates)
        self._last = self._forecaster.predict(self._horizon_steps + 2, LEVELS)
        first = self._last
        self._pending = (
            len(rates),
            float(first.quantile(0.5)[0]),
            float(first.quantile(0.05)[0]),
            float(first.quantile(0.95)[0]),
            float(rates[-1]),
        )

    def _score(self, rates: list[float]) -> None:
        """Record how the last one-step forecast did, against the naive reference."""
        if self._pending is None or self._pending[0] >= len(rates):
            return
        index, median, low, high, reference = self._pending
        self.quality.record(float(rates[index]), median, low, high, reference)
        self._pending = None


def shell_for(policy: object, config: SimConfig) -> ForecastShell | None:
    """A shell for a policy that reads forecasts (it has `forecast_reach_s`), else None.

    The shell forecasts far enough for the longest cold start the simulator can draw plus
    the policy's own reach and the metrics delay — and, with a bounded GPU pool, one node
    provisioning further, which is how far the placeholder pool looks."""
    reach = getattr(policy, "forecast_reach_s", None)
    if reach is None:
        return None
    pool = config.node_provisioning_s if config.gpu_pool is not None else 0.0
    return ForecastShell(
        horizon_s=config.cold_start_bounds[1] + reach + config.metrics_delay_s + pool
    )


def _shift(forecast: Forecast, steps: int) -> Forecast:
    """The same forecast without its first `steps` steps (they are already in the past)."""
    if steps <= 0:
        return forecast
    return Forecast(
        forecast.mean[steps:],
        {q: values[steps:] for q, values in forecast.quantiles.items()},
        forecast.step_s,
        forecast.model,
    )
