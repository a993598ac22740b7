"""Release by ski-rental, replica by replica: keep a replica while keeping it is cheaper than
bringing it back.

A replica that is not needed now may be needed again soon. Keeping it idle costs its GPU time;
releasing it and bringing it back costs a cold start's GPU-seconds plus the requests that miss
their SLO while it starts: the *break-even* B, in seconds of one replica's time (`hold_leads`
lead times). This is the ski-rental problem. Keeping a replica for T seconds after its last use
costs, for a gap G until it is needed again,

    G            if G ≤ T  (kept idle through the gap),
    T + B        if G > T and it comes back (kept, released, brought back),
    T            if it never comes back (within `GAP_HORIZON_S`),

and the best T minimises the expected cost over the service's own gaps. Without enough gaps the
rule is the deterministic one, T = B, which never costs more than twice the best in hindsight.

The gaps are learned per level: level k (the k-th replica) is *needed* while the policy's count to
keep is at least k. For each level the time it was last needed is kept; when a level is needed
again after a gap, the gap goes into the service's histogram (log-spaced bins, decaying so the
histogram follows a changing service); a level unused for `GAP_HORIZON_S` counts as never coming
back. The count held is then the number of levels needed within the last T seconds: the running
maximum of the need over T. The last replica is level 1; at zero the idle-time histogram of
`keepalive.py` (pre-warm) takes over, as the whole service is then idle.

All on arrays, one service per row; pure.
"""

from __future__ import annotations

import numpy as np

LEVELS = 128
"""Replica levels tracked per service; the replicas above are released as soon as the count to
keep no longer reaches them (a service that large moves by a few per cent at a time)."""
GAP_EDGES_S = np.array([15.0, 30.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 3600.0])
"""Upper edges of the gap bins; one more bin past the last counts gaps that never closed."""
GAP_HORIZON_S = float(GAP_EDGES_S[-1])
GAP_VALUES_S = np.sqrt(np.concatenate([[GAP_EDGES_S[0] / 4], GAP_EDGES_S[:-1]]) * GAP_EDGES_S)
"""A gap's representative length per bin (the geometric middle of its edges)."""
BINS = GAP_EDGES_S.size + 1
MIN_GAPS = 3.0
"""Below this many (decayed) gaps the deterministic rule (T = B) applies."""
DECAY = 0.9
"""The histogram's weight left after each tick that records gaps: it follows the last ~10 dips."""


def empty(rows: int) -> tuple[np.ndarray, np.ndarray]:
    """(last needed per level, NaN = not since the horizon; gap histogram) for `rows` services."""
    return np.full((rows, LEVELS), np.nan), np.zeros((rows, BINS))


def observe(
    last_needed: np.ndarray,
    gaps: np.ndarray,
    keep: np.ndarray,
    now: float,
    dip_s: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Record this tick's count to keep: levels needed again after a dip longer than `dip_s` add
    their gap to the histogram, levels unused past the horizon add a gap that never closed.
    Only the levels some row needs or remembers are looked at (most services use a few)."""
    width = _levels_in_use(last_needed, int(min(keep.max(initial=0), LEVELS)))
    known = last_needed[:, :width]
    needed = np.arange(1, width + 1)[None, :] <= keep[:, None]
    age = now - known
    with np.errstate(invalid="ignore"):
        returned = needed & (age > dip_s)
        expired = ~needed & (age > GAP_HORIZON_S)
    gaps = gaps.copy()
    row, level = np.nonzero(returned | expired)
    if row.size:
        gaps[np.unique(row)] *= DECAY
        closed = np.searchsorted(GAP_EDGES_S, age[row, level])
        bins = np.where(expired[row, level], BINS - 1, closed)
        np.add.at(gaps, (row, bins), 1.0)
    last_needed = last_needed.copy()
    last_needed[:, :width] = np.where(needed, now, np.where(expired, np.nan, known))
    return last_needed, gaps


def _levels_in_use(last_needed: np.ndarray, needed: int = 0) -> int:
    """How many levels (from the first) some row has a time for, or `needed` if more."""
    remembered = np.flatnonzero(~np.isnan(last_needed).all(axis=0))
    return max(int(remembered[-1]) + 1 if remembered.size else 0, needed)


def keep_for(gaps: np.ndarray, breakeven_s: np.ndarray) -> np.ndarray:
    """How long an unneeded replica is kept (seconds), per row: the threshold of least expected
    cost over the row's gap histogram, or the break-even itself with too few gaps."""
    candidates = np.concatenate([[0.0], GAP_EDGES_S])
    total = gaps.sum(axis=1)
    share = gaps / np.where(total > 0, total, 1.0)[:, None]
    returning, never = share[:, :-1], share[:, -1]
    value = GAP_VALUES_S[None, :, None]
    threshold = candidates[None, None, :]
    breakeven = breakeven_s[:, None, None]
    each = np.where(value <= threshold, value, threshold + breakeven)
    cost = (returning[:, :, None] * each).sum(axis=1) + never[:, None] * candidates[None, :]
    best = candidates[np.argmin(cost, axis=1)]
    return np.where(total >= MIN_GAPS, best, breakeven_s)


def held(last_needed: np.ndarray, now: float, keep_s: np.ndarray) -> np.ndarray:
    """Levels needed within the last `keep_s` seconds per row: the count the hold keeps."""
    width = _levels_in_use(last_needed)
    with np.errstate(invalid="ignore"):
        recent = (now - last_needed[:, :width]) < keep_s[:, None]
    counts: np.ndarray = recent.sum(axis=1).astype(np.int64)
    return counts
