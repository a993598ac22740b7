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

The search is built for ten thousand services every two seconds: it starts from each row's last
answer, brackets a count's miss share without the costly `gammaincc` (`_share_bounds`), and
computes the exact share only where the bracket cannot tell whether the count meets the budget.
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammaincc, gammaln

TOP_WEIGHT = 0.02
"""Weight of the fourth level: the top of the service's surprises (`surprise.py`), on the scale
of the objective's budget (1 %), which a level of a sixth would average away."""
LEVEL_Z = np.array([-np.sqrt(3.0), 0.0, np.sqrt(3.0), np.sqrt(3.0)])
LEVEL_WEIGHTS = np.array([1 / 6, 2 / 3, 1 / 6 - TOP_WEIGHT, TOP_WEIGHT])
"""Three-point Gauss–Hermite rule (exact for the mean and variance of a normal rate), its upper
point split in two so that the surprises' top can raise its own share of it."""
SURPRISE_BANDS = ((1 - LEVEL_WEIGHTS[2] - TOP_WEIGHT, 1 - TOP_WEIGHT), (1 - TOP_WEIGHT, 1.0))
"""The shares of the surprise ratios (from the lowest) that raise the third and fourth levels."""
UPPER_Z = 1.2815515655446004
"""The standard normal's 0.9 quantile: the forecast's p90 row gives its spread."""
NEGLIGIBLE_RATE = 1e-9
"""Requests/s taken as none (one in 30 years): smaller rates would underflow in Hayward's a / z
and read as load with one z and none with another."""
SEARCH_STEPS = 40
"""Bisection steps of `fewest_replicas` at most: it stops once every row is settled (a dozen for
thousands of replicas), so the bound only keeps a malformed input from looping."""


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
    median: np.ndarray,
    upper: np.ndarray,
    step_s: float,
    peakedness: np.ndarray | float = 1.0,
    surprises: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Rate levels (rows, steps, 4) and their weights (4,) from the forecast's median and p90
    rows (rows, steps), without the noise of a count over one step, which the queueing model
    has already (a Poisson count's variance is its mean, times the peakedness z for burstier
    arrivals; see the module docstring). The two upper levels are at least the median times
    each row's `surprises` (rows, 2): the mean ratio of the load to its forecast in the
    `SURPRISE_BANDS` of the service's own record (`surprise.band_ratios`), a tail that a normal
    spread cannot show."""
    median = np.maximum(np.asarray(median, dtype=float), 0.0)
    spread = np.maximum(np.asarray(upper, dtype=float) - median, 0.0) / UPPER_Z
    z = np.asarray(peakedness, dtype=float)
    z = z[:, None] if z.ndim == 1 else z
    rate_sd = np.sqrt(np.maximum(spread**2 - z * median / step_s, 0.0))
    levels = np.maximum(median[..., None] + rate_sd[..., None] * LEVEL_Z, 0.0)
    if surprises is not None:
        ratios = np.asarray(surprises, dtype=float)
        first = LEVEL_WEIGHTS.size - len(SURPRISE_BANDS)  # the bands raise the top levels
        for column in range(len(SURPRISE_BANDS)):
            ratio = ratios[:, column, None] if median.ndim == 2 else ratios[:, column]
            level = first + column
            levels[..., level] = np.maximum(levels[..., level], median * ratio)
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
    rates = np.where(rates < NEGLIGIBLE_RATE, 0.0, rates)
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
    hint: np.ndarray | None = None,
) -> np.ndarray:
    """The fewest replicas per row whose expected miss share over the window is within `budget`.

    The miss share falls as replicas are added, so the answer is where it first meets the
    budget. A row whose `hint` (last tick's answer) meets it while one fewer does not is done
    in two evaluations (`NEAR` around the hint when the rows are few); most of the others in
    one vectorised probe of `PROBE` counts around the load the arrivals meet on average, with
    square-root headroom; the rest by bisection between a count that does not meet it and one
    that surely does (the peak level's load with square-root headroom, doubled until it does).
    The hint changes only the work, never the answer."""
    rates = np.asarray(rates, dtype=float)
    n = rates.shape[0]
    slots = np.broadcast_to(np.maximum(np.asarray(slots, dtype=float), 1e-9), (n,))
    service = np.broadcast_to(np.asarray(service_s, dtype=float), (n,))
    wait = np.broadcast_to(np.asarray(wait_s, dtype=float), (n,))
    limit = np.broadcast_to(np.asarray(budget, dtype=float), (n,))
    z = np.ones(n) if peakedness is None else np.broadcast_to(np.asarray(peakedness, float), (n,))
    model = (rates, weights, slots, service, wait, z)
    answer = np.zeros(n)
    todo = np.arange(n)
    if hint is not None:
        # two counts (the hint and one fewer) when the rows are many; around it when they are
        # few, where more counts cost no more time than two (each call's overhead dominates)
        near = 2 if n * rates[0].size * NEAR > CHUNK_POINTS else NEAR
        offsets = np.arange(near) - near // 2
        counts = np.maximum(np.asarray(hint, dtype=float)[:, None] + offsets, 0.0)
        _, _, done, found = _settle(model, limit, counts)
        answer[done] = found[done]
        todo = np.flatnonzero(~done)
    if todo.size:
        answer[todo] = _search(_rows(model, todo), limit[todo])
    return answer.astype(np.int64)


PROBE = 16
"""Counts tried at once around the average load before bisecting."""
NEAR = 8
"""Counts tried around the hint when the rows are few."""
MARGIN = 1e-4
"""Relative room for rounding (`_rough_exp`) when the bounds settle a comparison with the budget:
closer calls are settled by the exact share."""
SINGLE_TINY = np.finfo(np.float32).tiny
"""The smallest normal single-precision number: `_rough_exp` reads anything below as 0."""
CHUNK_POINTS = 32_768
"""(row, count, step, level) points evaluated together: their temporaries stay in the CPU's
cache (about 3× faster than all rows at once on this project's 2-core machine)."""

_Model = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _rows(model: _Model, rows: np.ndarray | slice) -> _Model:
    rates, weights, slots, service, wait, z = model
    return rates[rows], weights, slots[rows], service[rows], wait[rows], z[rows]


def _meets(model: _Model, limit: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Whether each of `counts` (rows, k) replicas keeps its row's miss share within `limit`,
    a chunk of rows at a time. Bounds (`_share_bounds`) settle most; the exact share is
    computed only for the others."""
    n, k = counts.shape
    meets = np.empty((n, k), dtype=bool)
    step = max(1, CHUNK_POINTS // (k * model[0][0].size if n else 1))
    for start in range(0, n, step):
        rows = slice(start, start + step)
        meets[rows] = _meets_chunk(_rows(model, rows), limit[rows], counts[rows])
    return meets


def _meets_chunk(model: _Model, limit: np.ndarray, counts: np.ndarray) -> np.ndarray:
    low, high = _share_bounds(model, counts)
    limits = limit[:, None]
    meets = high <= limits * (1 - MARGIN)
    row, column = np.nonzero(~meets & (low <= limits * (1 + MARGIN)))
    if row.size:
        rates, weights, slots, service, wait, z = _rows(model, row)
        exact = miss_share(counts[row, column], rates, weights, slots, service, wait, z)
        meets[row, column] = exact <= limit[row]
    return meets


def _share_bounds(model: _Model, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bounds on `miss_share` for `counts` (rows, k) replicas, without Erlang's costly special
    function, from bounds on Erlang's C within a factor of about two.

    Erlang's B is pmf(c; a) / Q(c + 1, a), and Q(c + 1, a) = P(Gamma(c + 1) > a) lies in
    [1/2, 1] where the queue is stable: a < c < c + 2/3 < the median of Gamma(c + 1), which
    exceeds its shape less one third (Chen and Rubin, 1986). The first term of the series of
    1 − Q narrows that interval (see the code). C is increasing in B, and the share in each
    point's P(wait), so the share lies between the shares of B's two ends. The log-gamma term
    depends on the row and the count only, not on the point: it is computed once per count."""
    rates, weights, slots, service, wait, z = model
    rates = np.where(rates < NEGLIGIBLE_RATE, 0.0, rates)
    offered = rates * service[:, None, None]
    scaled = offered / z[:, None, None]  # Hayward: a / z on c / z servers
    with np.errstate(divide="ignore"):
        log_scaled = np.log(scaled)[:, None]
    servers = counts * slots[:, None]
    servers_z = servers / z[:, None]
    log_gamma = gammaln(servers_z + 1)[:, :, None, None]
    a, a_z = offered[:, None], scaled[:, None]
    c, c_z = servers[:, :, None, None], servers_z[:, :, None, None]
    with np.errstate(all="ignore"):
        inverse = [(1 / (servers_z + j))[:, :, None, None] for j in (0, 1, 2)]
        exponent = c_z * log_scaled
        exponent -= log_gamma
        exponent -= a_z
        pmf = _rough_exp(exponent)
        # P(wait > w) = C · tail = pmf · tail / D below: pmf · tail in one exponential
        exponent += (a - c) * (wait / service)[:, None, None, None]
        late = _rough_exp(exponent)
        # 1 − Q = P(c + 1, a) is pmf · Σ_k≥1 Π_j≤k a / (c + j): at least its first term, at most
        # that term over 1 − a / (c + 2) (the later ratios are smaller)
        first = a_z * inverse[1]
        first *= pmf
        bound = a_z * inverse[2]
        np.subtract(1, bound, out=bound)
        np.divide(first, bound, out=bound)
        q_low = np.subtract(1, bound, out=bound)
        np.maximum(q_low, 0.5, out=q_low)
        q_high = np.subtract(1, first, out=first)
        # C = B / (1 − ρ (1 − B)) = pmf / (Q (1 − ρ) + ρ pmf), falling in Q; at most 1, so the
        # denominator is at least pmf
        queued = a_z * inverse[0]
        spare = np.subtract(1, queued)
        queued *= pmf
        q_high *= spare
        q_high += queued
        q_low *= spare
        q_low += queued
        np.maximum(q_low, pmf, out=q_low)
    growing = a >= c  # no steady state (or no load, which weighs nothing)
    weighted = (rates * weights)[:, None]
    arriving = weighted.sum(axis=(2, 3))
    arriving = np.where(arriving > 0, arriving, np.inf)  # no arrivals: no misses
    bounds = []
    with np.errstate(all="ignore"):
        for denominator in (q_high, q_low):
            share = np.divide(late, denominator, out=denominator)
            share[growing] = 1.0
            share *= weighted
            bounds.append(share.sum(axis=(2, 3)) / arriving)
    return bounds[0], bounds[1]


def _rough_exp(exponent: np.ndarray) -> np.ndarray:
    """exp in single precision (3× faster here), within a relative 1e-4 (`MARGIN`) of the
    exact value down to 1e-38; below, 0 (single precision's subnormals are too coarse to bound
    with, and such shares are far below any budget, at least 1e-17)."""
    values = np.exp(exponent.astype(np.float32))
    values[values < SINGLE_TINY] = 0.0
    return values.astype(np.float64)


def _search(model: _Model, limit: np.ndarray) -> np.ndarray:
    low, high, done, answer = _probe(model, limit)
    todo = np.flatnonzero(~done)
    if todo.size:
        answer[todo] = _bisect(_rows(model, todo), limit[todo], low[todo], high[todo])
    return answer


def _probe(
    model: _Model, limit: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Try PROBE counts around the arrivals-weighted average load with square-root headroom for
    its peakedness (`_settle`)."""
    rates, weights, slots, service, _, z = model
    weighted = rates * weights
    arriving = weighted.sum(axis=(1, 2))
    offered = (weighted * rates).sum(axis=(1, 2)) / np.where(arriving > 0, arriving, 1.0)
    load = offered * service
    # square-root staffing (Halfin and Whitt) for peaked traffic centres the probe
    guess = np.maximum(np.floor((load + 1.5 * np.sqrt(z * load)) / slots) - PROBE // 4, 0)
    return _settle(model, limit, guess[:, None] + np.arange(PROBE)[None, :])


def _settle(
    model: _Model, limit: np.ndarray, counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Try `counts` (rows, k), ascending per row. Returns per row a count known not to meet the
    budget (-1: none), one that meets it (NaN: unknown), whether the answer is known (a count
    meets it and the one before it in `counts` does not, or it is 0), and the answer where it
    is."""
    n = len(counts)
    meets = _meets(model, limit, counts)
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
    rates, _, slots, service, _, z = model
    peak = rates.reshape(rates.shape[0], -1).max(axis=1, initial=0.0) * service
    sure = np.maximum(np.ceil((peak + 4 * np.sqrt(peak * z) + z) / slots), low + 1)
    high = np.where(np.isnan(high), sure, high)
    for _ in range(8):
        short = ~_meets(model, limit, high[:, None])[:, 0]
        if not short.any():
            break
        low = np.where(short, high, low)
        high = np.where(short, 2 * high + 1, high)
    for _ in range(SEARCH_STEPS):
        if not (high - low > 1).any():
            break
        middle = np.floor((low + high) / 2)
        ok = _meets(model, limit, np.maximum(middle, 0)[:, None])[:, 0] & (high - low > 1)
        high = np.where(ok, middle, high)
        low = np.where(~ok & (high - low > 1), middle, low)
    fewest: np.ndarray = np.maximum(high, 0)
    return fewest
