"""Traces of per-interval request counts, kept as counts until single arrivals are needed.

Why a type of its own: a count trace can describe far more requests than fit in memory as
arrival times (a busy site's per-minute counts over three months add up to a billion). Windows
and rate scaling are cheap and exact on counts, so they happen here first; only what is left is
drawn as arrivals (`arrivals`), and a forecast backtest never draws at all (`rate_series`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from adapters.simulator.workload import RATE_SCALE_SEED, Workload, check_rate_scale, check_window
from autoscaler.errors import InputError

MAX_ARRIVALS = 50_000_000
"""At most this many arrivals are drawn: the simulator keeps every one in memory (5e9 asked numpy
for 37 GiB). The limit applies after the window and the rate scale."""


def spread_counts(
    counts: np.ndarray, width: float, rng: np.random.Generator, first: int = 0
) -> np.ndarray:
    """Sorted arrival times: `counts[i]` arrivals uniform in `[(first+i)*width, (first+i+1)*width)`.

    Conditional on the count, a Poisson process places its points uniformly, so this turns
    per-interval counts into plausible arrival instants without inventing extra burstiness.
    Times are capped just below their interval's end: at 5 million seconds, start + 0.9999999999
    would otherwise round up into the next interval.
    """
    index = np.repeat(np.arange(first, first + counts.shape[0], dtype=np.float64), counts)
    low, high = index * width, (index + 1) * width
    times = np.minimum(low + rng.random(index.shape[0]) * width, np.nextafter(high, low))
    return np.sort(times)


@dataclass(frozen=True, eq=False)
class CountSeries:
    """Requests per interval of a trace, with the part of it that is wanted.

    `counts[i]` requests arrived in the trace's interval `first + i`, of `interval` seconds.
    `begin` and `end` (trace seconds) are the wanted span; the first and last kept intervals may
    stick out of it, and their arrivals outside it are dropped once drawn.
    """

    name: str
    counts: np.ndarray
    interval: float
    begin: float
    end: float
    first: int = 0
    skipped: int = 0
    """Requests in the trace's intervals before `first`: placement draws skip as many numbers,
    so a window's arrivals are exactly those of the whole trace in that window."""
    source: str = ""
    meta: dict = field(default_factory=dict)

    @classmethod
    def whole(
        cls,
        name: str,
        counts: np.ndarray,
        interval: float,
        source: str = "",
        meta: dict | None = None,
    ) -> CountSeries:
        """The whole trace: every interval, from its start to the end of its last interval."""
        span = counts.shape[0] * interval
        return cls(name, counts, interval, 0.0, span, source=source, meta=dict(meta or {}))

    @property
    def duration(self) -> float:
        return self.end - self.begin

    @property
    def total(self) -> float:
        """Requests in the kept intervals (a float: the sum may exceed int64's range)."""
        return float(self.counts.sum(dtype=np.float64))

    def window(self, offset: float = 0.0, duration: float | None = None) -> CountSeries:
        """The span [offset, offset + duration) of this one, as `Workload.window` cuts it."""
        check_window(offset, duration, self.duration, self.source or self.name)
        begin = self.begin + offset
        end = self.end if duration is None else min(self.end, begin + duration)
        lo = max(int(math.floor(begin / self.interval)), self.first)
        hi = min(int(math.ceil(end / self.interval)), self.first + self.counts.shape[0])
        lo = min(lo, hi)
        cut = slice(lo - self.first, hi - self.first)
        skipped = self.skipped + float(self.counts[: cut.start].sum(dtype=np.float64))
        return replace(
            self, counts=self.counts[cut], begin=begin, end=end, first=lo, skipped=int(skipped)
        )

    def scale(self, factor: float, seed: int) -> CountSeries:
        """Thin (factor < 1) or replicate (factor > 1) the requests of every interval.

        Each request is kept `floor(factor)` times plus once more with probability
        `factor - floor(factor)`: a binomial draw per interval, the count-level twin of
        `Workload.scale_rate`.
        """
        check_rate_scale(factor)
        if factor == 1:
            return self
        most = float(self.counts.max(initial=0)) * factor
        if most >= 2**62:
            raise InputError(
                f"--rate-scale {factor:g} makes {most:.3g} requests in one interval of "
                f"{self.source or self.name}; at most {MAX_ARRIVALS:,} can be simulated"
            )
        rng = np.random.default_rng([seed, RATE_SCALE_SEED])
        whole = int(math.floor(factor))
        scaled = self.counts * whole + rng.binomial(self.counts, factor - whole)
        return replace(self, counts=scaled.astype(np.int64))

    def rate_series(self, step_s: float) -> np.ndarray:
        """Requests per second in each whole step of `step_s` seconds of the wanted span, with
        no arrival drawn: a step's requests are its intervals' counts, shared in proportion to
        the overlap where a step holds part of an interval (a partial last step is left out,
        as `Workload.rate_series` leaves it)."""
        steps = int(self.duration // step_s)
        edges = self.begin + step_s * np.arange(steps + 1)
        starts = (self.first + np.arange(self.counts.shape[0] + 1)) * self.interval
        cumulative = np.concatenate([[0.0], np.cumsum(self.counts, dtype=np.float64)])
        at_edges = np.interp(edges, starts, cumulative)
        return np.diff(at_edges) / step_s

    def arrivals(self, seed: int) -> Workload:
        """Draw the arrivals of the wanted span (uniform within each interval, seeded), re-based
        so the span starts at 0."""
        total = self.total
        if total > MAX_ARRIVALS:
            raise InputError(
                f"{self.source or self.name}: the window holds {total:.3g} requests; at most "
                f"{MAX_ARRIVALS:,} are supported (the simulator keeps every arrival): choose a "
                "shorter --duration or a smaller --rate-scale"
            )
        bits = np.random.PCG64(seed)  # default_rng(seed)'s generator, which can skip ahead
        bits.advance(self.skipped)
        rng = np.random.Generator(bits)
        times = spread_counts(self.counts, self.interval, rng, self.first)
        lo, hi = np.searchsorted(times, [self.begin, self.end], side="left")
        return Workload(
            name=self.name,
            times=times[lo:hi] - self.begin,
            duration=self.duration,
            source=self.source,
            meta=dict(self.meta),
        )
