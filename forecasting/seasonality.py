"""Seasonal periods implied by a series' resolution.

Request rates of services used by people follow the day and the week; the periods in steps
follow from the step length. A period is offered only when it is a whole number of steps
of at least 2 and the history holds at least `min_seasons` of it.
"""

from __future__ import annotations

DAY_S = 86_400.0
WEEK_S = 7 * DAY_S


def period_steps(period_s: float, step_s: float) -> int | None:
    """Steps per period, or None when the period is not a whole number (>= 2) of steps."""
    steps = period_s / step_s
    if steps < 2 or abs(steps - round(steps)) > 1e-9:
        return None
    return int(round(steps))


def usable_periods(step_s: float, n_obs: int, min_seasons: int = 2) -> list[int]:
    """Daily then weekly period (in steps) that the history can support, shortest first."""
    periods = []
    for length in (DAY_S, WEEK_S):
        steps = period_steps(length, step_s)
        if steps is not None and n_obs >= min_seasons * steps:
            periods.append(steps)
    return periods


def main_period(step_s: float, n_obs: int, min_seasons: int = 2) -> int | None:
    """The period a seasonal model should use: the daily one when the history supports it."""
    periods = usable_periods(step_s, n_obs, min_seasons)
    return periods[0] if periods else None
