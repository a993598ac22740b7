"""The forecasting shell: one service's forecaster lifecycle, for the simulator and the service.

It turns the per-second arrivals a policy can see into a rate series at `step_s`, fits a
forecaster on it (again whenever the history has doubled since the last fit, so a model fitted
on the first minutes is not kept for hours, and at the latest `refit_every_s` of virtual time
after it: `REFIT_EVERY_S`), `update`s it as steps complete,
scores its one-step forecasts with `LiveQuality`, and hands the policy a forecast that starts at
the policy's `now` — or no forecast and the reason (too little history, quality bad).
Arrivals come in incrementally (`feed`), so the shell keeps no per-second history of its own.
Fits take wall time, not virtual time: the simulator runs them inline, the service in worker
processes (`autoscaler/forecast_workers.py`) that hold one shell per service; `allow_fit=False`
lets a worker keep serving a stale model while fits are rationed, and a service whose first fit
is rationed away is served by `STARTER` meanwhile. A warm start hands the shell its history at
`step_s` (`seed`), a tenth of the seconds it would otherwise carry at 10 s, and makes its first
fit a quick one (`QUICK_SERVES_S`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from forecasting.base import Forecaster
from forecasting.forecast import Forecast
from forecasting.quality import LiveQuality
from forecasting.registry import make_forecaster

LEVELS = (0.05, 0.5, 0.9, 0.95, 0.99)
MAX_SELECTION_HORIZON = 30
"""`auto` selects models for at most this many steps ahead (5 minutes at 10 s): longer
validation horizons need more history before selection can start."""
STARTER = "naive"
"""The model that serves a service until its own model's first fit: the last value with the
empirical spread of its k-step changes (a hundredth of `auto`'s fit time on a day of 10 s
steps). A thousand services joining at once wait for their `auto` fits in turn (seconds of CPU
each); without a starter they would have no forecast, and the policy only its safety net, for
as long as the queue of fits takes."""
QUICK_SERVES_S = 3600.0
"""How long a warm-started service's first model, `auto` among its quick candidates
(`selection.QUICK_CANDIDATES`), serves before the full selection replaces it. Why a quick
first fit: 10,000 services starting at once from Prometheus history each need a fit on a day
of steps; among every candidate that is ~0.18 s of CPU each, and the last service waited ~40
minutes behind the others on the starter's naive forecast. The quick fits take a third of
that, and the full ones follow an hour later, spread as the first ones were. A shell that
grew its own history (the simulator's) fits the full selection from the first minute, when
a fit is cheap."""
REFIT_EVERY_S = 6 * 3600.0
"""How long a model serves at most before it is fitted again, `auto` re-selecting among all
its candidates (the history doubling refits it sooner while it is young): the default of the
simulator's shells and of `forecast_workers.ShellSettings`; the service's workers take
`forecasting.refit_every` from its config (`ForecastingConfig.refit_every_s`). Between fits
every model is `update`d with each new step, so a fit renews parameters and the choice.

Why six hours and not one: when this was chosen a fit of `auto` took 2-3 s of CPU on a day of
10 s steps (the per-series gradient boosting, since dropped from its candidates, was two thirds
of it), and its validation window is the last 40 % of the history, so an hourly fit re-scores
mostly the data the previous one did. On the simulator's NASA Monday (x10), hourly fits took
44 of the shell's 56 s; six-hourly, 8 fits instead of 25 (12 s), and the forecasts the policy
reads 2-2.5 minutes ahead had a p90 pinball loss 0.5-1.5 % higher (Thursday 1.4-1.5 %,
web-diurnal none). A fit now takes ~0.17 s, and hourly refits are affordable where that
half-percent matters: 0.72-0.85 cores at 10,000 services against 0.43 at six hours
(`load_tests/bench_forecasting.py --services N --refit-h 1` measures the fleet's cost either
way). What they are worth to the policy: run once on the bench corpus with this constant at
one hour, the tune half was no better (the HPA and `hpa-behavior` each beaten in one case
fewer; NASA Monday 0.2-0.4 points lower, Thursday and Sunday 0.1-0.3 higher), so six hours
stays."""


@dataclass
class ForecastShell:
    """Per-service forecaster lifecycle in virtual time (see the module docstring)."""

    horizon_s: float
    """How far past `now` the policy reads the forecast."""
    model: str = "auto"
    step_s: float = 10.0
    refit_every_s: float = REFIT_EVERY_S
    min_history_s: float = 60.0
    max_history_s: float = 86_400.0
    quality: LiveQuality = field(default_factory=lambda: LiveQuality(window=360))
    _rates: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """Rates at `step_s`, up to two days of them: an array, 8 bytes a value where a list of
    floats takes 32 (a day of 10 s steps is 69 kB a service, 5,000 services a worker)."""
    _forecaster: Forecaster | None = None
    _fitted_at: float = -math.inf
    _fitted_steps: int = 0
    _steps_seen: int = 0
    _last: Forecast | None = None
    _pending: tuple[int, float, float, float, float] | None = None
    _carry: list[float] = field(default_factory=list)
    _seconds_fed: int = 0
    _origin_s: float = 0.0
    _anchored: bool = False
    """The clock time of the first second is set (by the first `feed` given one, or `seed`)."""
    _starter: bool = False
    _quick_next: bool = False
    """The next fit is the first on a warm start's history: quick (`QUICK_SERVES_S`)."""
    _quick: bool = False
    """The model serving is that quick one."""
    last_fit_s: float | None = None
    """Wall time the most recent fit of `model` took (for telemetry; not the starter's)."""

    def at(self, arrivals_ps: np.ndarray, now: float) -> tuple[Forecast | None, str]:
        """The forecast for [now, now + horizon_s), from the visible per-second arrivals since
        the start of the run (only the seconds not yet seen are read)."""
        self.feed(arrivals_ps[self._seconds_fed :])
        return self.forecast(now)

    def seed(self, rates: np.ndarray, *, end_s: float) -> None:
        """Take a warm start's history as rates at `step_s`, the last step ending at `end_s`
        (clock time); later `feed`s continue from there. Only a shell that was never fed takes
        it; leading NaN steps are not history (the service was not there yet)."""
        if self._anchored or self._seconds_fed:
            return
        values = np.asarray(rates, dtype=float).ravel()
        self._seconds_fed = int(values.size * self.step_s)
        observed = np.flatnonzero(~np.isnan(values))
        values = values[observed[0] :] if observed.size else values[:0]
        self._rates = values.copy()
        self._origin_s = float(end_s) - values.size * self.step_s
        self._anchored = True
        self._quick_next = True

    @property
    def serving_starter(self) -> bool:
        """Whether the forecasts come from `STARTER` while the shell's own model waits."""
        return self._starter

    @property
    def serving_quick(self) -> bool:
        """Whether the forecasts come from the quick first model (`QUICK_SERVES_S`)."""
        return self._quick

    def feed(self, seconds: np.ndarray, *, origin_s: float | None = None) -> None:
        """Append the arrivals of the next whole seconds. `origin_s` (first call only) is the
        clock time of the first second, when it is not 0 (the service's wall clock)."""
        values = np.asarray(seconds, dtype=float)
        if origin_s is not None and not self._anchored:
            self._origin_s = float(origin_s)
            self._anchored = True
        self._seconds_fed += int(values.size)
        if not self._carry and not self._rates.size:
            # Seconds before the first observed one are not history: the service was not
            # there (or not scraped) yet. A warm start pulls hours of them from Prometheus for
            # a new service; counted, they let the first fit happen on nothing, and that
            # model would be kept until the "history" doubled — an hour later.
            observed = np.flatnonzero(~np.isnan(values))
            skip = int(observed[0]) if observed.size else int(values.size)
            self._origin_s += skip
            values = values[skip:]
        self._carry.extend(values.tolist())

    def forecast(self, now: float, *, allow_fit: bool = True) -> tuple[Forecast | None, str]:
        """The forecast for [now, now + horizon_s) from what was fed; None and why without one.
        With `allow_fit=False` a due fit waits and the current model keeps serving."""
        step = self.step_s
        rates = step_rates(np.asarray(self._carry), step)
        if rates.size:
            self._rates = np.concatenate([self._rates, rates])
            del self._carry[: rates.size * int(step)]
        steps = self._rates.size
        if steps * step < self.min_history_s:
            return (
                None,
                f"{steps * step:.0f}s of history, forecasting needs {self.min_history_s:.0f}s",
            )
        if steps != self._steps_seen or self._forecaster is None or (self._starter and allow_fit):
            self._advance(now, allow_fit)  # a starter is replaced as soon as fits are allowed
        usable, why = self.quality.verdict()
        if not usable:
            return None, f"quality: {why}"
        assert self._last is not None
        past_steps = math.ceil((now - self._origin_s - self._steps_seen * step) / step)
        return shift_forecast(self._last, past_steps), ""

    @property
    def _horizon_steps(self) -> int:
        return max(1, math.ceil(self.horizon_s / self.step_s))

    def _advance(self, now: float, allow_fit: bool = True) -> None:
        rates = self._rates
        self._score(rates)
        keep = int(self.max_history_s // self.step_s)
        if rates.size > 2 * keep:  # bounded memory: the model never reads further back
            drop = rates.size - keep
            self._rates = rates = rates[drop:].copy()
            self._fitted_steps = max(0, self._fitted_steps - drop)
            self._steps_seen -= drop
            self._origin_s += drop * self.step_s
            self._fitted_at -= drop * self.step_s
            if self._pending is not None:
                self._pending = (self._pending[0] - drop, *self._pending[1:])
        serves = min(self.refit_every_s, QUICK_SERVES_S) if self._quick else self.refit_every_s
        if allow_fit and (
            self._forecaster is None
            or self._starter
            or now - self._origin_s - self._fitted_at >= serves
            or len(rates) >= 2 * self._fitted_steps
        ):
            selection_horizon = min(self._horizon_steps, MAX_SELECTION_HORIZON)
            self._forecaster = make_forecaster(
                self.model, horizon_steps=selection_horizon, quick=self._quick_next
            )
            started = time.perf_counter()
            self._forecaster.fit(rates[-keep:], step_s=self.step_s)
            self.last_fit_s = time.perf_counter() - started
            self._fitted_at, self._fitted_steps = now - self._origin_s, len(rates)
            self._starter = False
            self._quick, self._quick_next = self._quick_next, False
        elif self._forecaster is None:  # the first fit is rationed away: the starter serves
            self._forecaster = make_forecaster(STARTER)
            self._forecaster.fit(rates[-keep:], step_s=self.step_s)
            self._starter = True
        else:
            assert self._forecaster is not None
            self._forecaster.update(rates[self._steps_seen :])
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

    def _score(self, rates: np.ndarray) -> None:
        """Record how the last one-step forecast did, against the naive reference."""
        if self._pending is None or self._pending[0] >= len(rates):
            return
        index, median, low, high, reference = self._pending
        self.quality.record(float(rates[index]), median, low, high, reference)
        self._pending = None


def step_rates(seconds: np.ndarray, step_s: float) -> np.ndarray:
    """The rate (per second) of each whole step of `step_s` seconds of per-second arrivals,
    from the first second on; a partial step at the end is left out. A second without a sample
    (NaN) makes its step NaN: missing, not zero."""
    width = int(step_s)
    whole = seconds.size // width
    per_step: np.ndarray = seconds[: whole * width].reshape(whole, width).sum(axis=1) / step_s
    return per_step


def shift_forecast(forecast: Forecast, steps: int) -> Forecast:
    """The same forecast without its first `steps` steps (they are already in the past)."""
    if steps <= 0:
        return forecast
    return Forecast(
        forecast.mean[steps:],
        {q: values[steps:] for q, values in forecast.quantiles.items()},
        forecast.step_s,
        forecast.model,
    )
