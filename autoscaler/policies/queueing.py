"""How many replicas keep the expected SLO misses within budget: a queueing model of the replicas.

Each replica has `slots` request slots; a request holds one for its time in service `s` (both
learned online, `capacity.py` and Little's law). Arrivals come at rate λ. Taken as an M/M/c queue
with c = replicas × slots servers and offered load a = λ·s (Erlang's C formula), a request waits
at all with probability C(c, a), and waits longer than w with

    P(W > w) = C(c, a) · exp(−(c − a) · w / s),      1 when a ≥ c (the queue grows without end).

A request misses the SLO when it waits longer than its budget (`autoscaler/slo.py`), so over a
window of forecast steps t and rate levels k (the forecast's uncertainty about the rate, with
weights p_k) the expected share of requests that miss is

    Σ_t Σ_k p_k λ_tk P(W > w | c, λ_tk) / Σ_t Σ_k p_k λ_tk,

and the replicas to hold are the fewest for which it stays within the budget. Poisson noise at the
scale of seconds is part of the queueing model already: a burst of arrivals that the queue and the
slots absorb within the budget needs no replica, a rise in the rate that lasts does.

The forecast's quantiles at its step (10 s) include that same Poisson noise of a 10-second count;
`rate_levels` removes it (the variance of a count over a step is its mean), so the levels carry
only the uncertainty about the rate itself and the noise is not paid for twice.

Requests rarely arrive as a Poisson process: LLM traffic comes in bursts of seconds. The
*peakedness* z of the arrivals (variance over mean of the per-second counts; 1 for Poisson) enters
by Hayward's approximation, which treats peaked traffic on c servers as Poisson traffic of a / z
on c / z servers: the same load in fewer, larger lumps.

Everything is on arrays, one service per row: the same function sizes one service or ten thousand.
Erlang's B is computed from the Poisson distribution, B(c, a) = pmf(c; a) / cdf(c; a), which is
exact, vectorised and stable for hundreds of servers, and continuous in c (scipy's `gammaincc`).
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammaincc, gammaln

LEVEL_Z = np.array([-np.sqrt(3.0), 0.0, np.sqrt(3.0)])
LEVEL_WEIGHTS = np.array([1 / 6, 2 / 3, 1 / 6])
"""Three-point Gauss–Hermite rule: exact for the mean and variance of a normal rate."""
UPPER_Z = 1.2815515655446004
"""The standard normal's 0.9 quantile: the forecast's p90 row gives its spread."""
SEARCH_STEPS = 12
"""Bisection steps of `fewest_replicas`: exact up to 4,096 replicas above the fluid bound."""


def erlang_c(servers: np.ndarray, offered: np.ndarray) -> np.ndarray:
    """P(a request waits at all) in an M/M/c queue with `servers` c and offered load a = λ·s.

    1 where a ≥ c (no steady state: the queue grows), 0 where nothing is offered."""
    c = np.asarray(servers, dtype=float)
    a = np.asarray(offered, dtype=float)
    c, a = np.broadcast_arrays(c, a)
    out = np.where(a >= c, 1.0, 0.0)
    out[a <= 0] = 0.0
    stable = (a < c) & (a > 0)
    cs, as_ = c[stable], a[stable]  # the special functions only where they are needed
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        log_pmf = cs * np.log(as_) - as_ - gammaln(cs + 1)
        # P(Poisson(a) <= c) as the regularised upper incomplete gamma, continuous in c (Hayward's
        # c / z and learned slots are rarely whole)
        blocking = np.exp(log_pmf) / np.maximum(gammaincc(cs + 1, as_), 1e-300)
        waits = blocking / (1 - (as_ / cs) * (1 - blocking))
    out[stable] = np.clip(waits, 0.0, 1.0)
    return out


def wait_exceeds(
    servers: np.ndarray,
    offered: np.ndarray,
    service_s: np.ndarray,
    wait_s: np.ndarray,
    peakedness: np.ndarray | float = 1.0,
) -> np.ndarray:
    """P(W > wait_s) in the M/M/c queue (see the module docstring), for arrivals of the given
    peakedness by Hayward's approximation: C(c / z, a / z)."""
    c = np.asarray(servers, dtype=float)
    a = np.asarray(offered, dtype=float)
    tail = np.exp(-np.maximum(c - a, 0.0) * np.asarray(wait_s) / np.asarray(service_s))
    z = np.asarray(peakedness, dtype=float)
    return erlang_c(c / z, a / z) * np.where(a >= c, 1.0, tail)


def rate_levels(
    median: np.ndarray, upper: np.ndarray, step_s: float, peakedness: np.ndarray | float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Rate levels (rows, steps, 3) and their weights (3,) from the forecast's median and p90
    rows (rows, steps), without the noise of a count over one step, which the queueing model
    has already (a Poisson count's variance is its mean, times the peakedness z for burstier
    arrivals; see the module docstring)."""
    median = np.maximum(np.asarray(median, dtype=float), 0.0)
    spread = np.maximum(np.asarray(upper, dtype=float) - median, 0.0) / UPPER_Z
    z = np.asarray(peakedness, dtype=float)
    z = z[:, None] if z.ndim == 1 else z
    rate_sd = np.sqrt(np.maximum(spread**2 - z * median / step_s, 0.0))
    levels = np.maximum(median[..., None] + rate_sd[..., None] * LEVEL_Z, 0.0)
    return levels, LEVEL_WEIGHTS


def miss_share(
    replicas: np.ndarray,
    rates: np.ndarray,
    weights: np.ndarray,
    slots: np.ndarray,
    service_s: np.ndarray,
    wait_s: np.ndarray,
    peakedness: np.ndarray,
) -> np.ndarray:
    """Expected share of requests over the window that wait longer than `wait_s`, per row.

    `rates` (rows, steps, levels) in requests/s, `weights` (levels,); the other arguments are
    per row. A row with no expected arrivals misses nothing."""
    rates = np.asarray(rates, dtype=float)
    servers = (np.asarray(replicas, dtype=float) * slots)[:, None, None]
    service = np.asarray(service_s, dtype=float)[:, None, None]
    wait = np.asarray(wait_s, dtype=float)[:, None, None]
    z = np.asarray(peakedness, dtype=float)[:, None, None]
    late = wait_exceeds(servers, rates * service, service, wait, z)
    weighted = rates * weights
    arriving = weighted.sum(axis=(1, 2))
    missed = (weighted * late).sum(axis=(1, 2))
    return np.where(arriving > 0, missed / np.where(arriving > 0, arriving, 1.0), 0.0)


def fewest_replicas(
    rates: np.ndarray,
    weights: np.ndarray,
    slots: np.ndarray,
    service_s: np.ndarray,
    wait_s: np.ndarray,
    budget: np.ndarray,
    peakedness: np.ndarray | None = None,
) -> np.ndarray:
    """The fewest replicas per row whose expected miss share over the window is within `budget`.

    The miss share falls as replicas are added, so the answer is where it first meets the
    budget. Most rows find it in one vectorised probe of `PROBE` counts around the load the
    arrivals meet on average, with square-root headroom; the others by bisection between a
    count that does not meet it and one that surely does (the peak level's load with
    square-root headroom, doubled until it does)."""
    rates = np.asarray(rates, dtype=float)
    n = rates.shape[0]
    slots = np.broadcast_to(np.maximum(np.asarray(slots, dtype=float), 1e-9), (n,))
    service = np.broadcast_to(np.asarray(service_s, dtype=float), (n,))
    wait = np.broadcast_to(np.asarray(wait_s, dtype=float), (n,))
    limit = np.broadcast_to(np.asarray(budget, dtype=float), (n,))
    z = np.ones(n) if peakedness is None else np.broadcast_to(np.asarray(peakedness, float), (n,))
    model = (rates, weights, slots, service, wait, z)
    low, high, done, answer = _probe(model, limit)
    todo = np.flatnonzero(~done)
    if todo.size:
        part = (rates[todo], weights, slots[todo], service[todo], wait[todo], z[todo])
        answer[todo] = _bisect(part, limit[todo], low[todo], high[todo])
    return answer.astype(np.int64)


PROBE = 16
"""Counts tried at once around the average load before bisecting."""

_Model = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _probe(
    model: _Model, limit: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Try PROBE counts around the arrivals-weighted average load with square-root headroom for
    its peakedness. Returns per row a
    count known not to meet the budget (-1: none), one that meets it (NaN: unknown), whether the
    answer is known, and the answer where it is."""
    rates, weights, slots, service, wait, z = model
    n = len(slots)
    weighted = rates * weights
    arriving = weighted.sum(axis=(1, 2))
    offered = (weighted * rates).sum(axis=(1, 2)) / np.where(arriving > 0, arriving, 1.0)
    load = offered * service
    # square-root staffing (Halfin and Whitt) for peaked traffic centres the probe
    guess = np.maximum(np.floor((load + 1.5 * np.sqrt(z * load)) / slots) - PROBE // 4, 0)
    counts = guess[:, None] + np.arange(PROBE)[None, :]
    k = PROBE
    share = miss_share(
        counts.ravel(),
        np.repeat(rates, k, axis=0),
        weights,
        np.repeat(slots, k),
        np.repeat(service, k),
        np.repeat(wait, k),
        np.repeat(z, k),
    ).reshape(n, k)
    meets = share <= limit[:, None]
    some = meets.any(axis=1)
    first = np.argmax(meets, axis=1)
    found = counts[np.arange(n), first]
    done = some & ((first > 0) | (found == 0))
    low = np.where(some, -1.0, counts[:, -1])
    high = np.where(some, found, np.nan)
    return low, high, done, np.where(done, found, 0.0)


def _bisect(model: _Model, limit: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """The first count meeting the budget between `low` (does not) and `high` (does; NaN: find
    one by growing from the peak level's load with square-root headroom)."""
    rates, weights, slots, service, wait, z = model
    peak = rates.reshape(rates.shape[0], -1).max(axis=1, initial=0.0) * service
    sure = np.maximum(np.ceil((peak + 4 * np.sqrt(peak * z) + z) / slots), low + 1)
    high = np.where(np.isnan(high), sure, high)
    for _ in range(8):
        short = miss_share(high, rates, weights, slots, service, wait, z) > limit
        if not short.any():
            break
        low = np.where(short, high, low)
        high = np.where(short, 2 * high + 1, high)
    for _ in range(SEARCH_STEPS):
        if not (high - low > 1).any():
            break
        middle = np.floor((low + high) / 2)
        meets = miss_share(np.maximum(middle, 0), rates, weights, slots, service, wait, z)
        ok = (meets <= limit) & (high - low > 1)
        high = np.where(ok, middle, high)
        low = np.where(~ok & (high - low > 1), middle, low)
    return np.maximum(high, 0)
