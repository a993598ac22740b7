"""A workload: the request arrivals of one service, from a trace file or a synthetic generator.

Times are float seconds relative to the workload's first instant (0 = the trace's first
timestamp, or the start of a window cut from it). Token counts are optional: traces of plain
request counts have none, and the simulator then draws them (see `SimConfig`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from autoscaler.errors import InputError

RATE_SCALE_SEED = 0x5CA1E
"""Mixed into the seed of rate scaling (of arrivals or of counts), so that thinning and the
placement of arrivals draw from different streams."""


@dataclass(frozen=True, eq=False)
class Workload:
    """Request arrivals of one service, sorted by time."""

    name: str
    times: np.ndarray
    """float64 seconds since the workload's start, sorted ascending, all >= 0."""
    duration: float
    """Length of the observed period in seconds (>= the last arrival time)."""
    prompt_tokens: np.ndarray | None = None
    """int64 prompt (context) tokens per request, or None when the source has none."""
    output_tokens: np.ndarray | None = None
    """int64 generated tokens per request, or None when the source has none."""
    source: str = ""
    """Where the arrivals came from (a file path or `workload:NAME`), for reports."""
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = self.times.shape[0]
        for label, tokens in (
            ("prompt_tokens", self.prompt_tokens),
            ("output_tokens", self.output_tokens),
        ):
            if tokens is not None and tokens.shape[0] != n:
                raise ValueError(f"{label} has {tokens.shape[0]} entries for {n} arrivals")
        if n and (self.times[0] < 0 or self.times[-1] > self.duration + 1e-9):
            raise ValueError("arrival times must lie within [0, duration]")

    def __len__(self) -> int:
        return int(self.times.shape[0])

    @property
    def has_tokens(self) -> bool:
        return self.prompt_tokens is not None and self.output_tokens is not None

    def _take(self, index: np.ndarray, times: np.ndarray, duration: float) -> Workload:
        order = np.argsort(times, kind="stable")
        pick = index[order]
        return Workload(
            name=self.name,
            times=times[order],
            duration=duration,
            prompt_tokens=None if self.prompt_tokens is None else self.prompt_tokens[pick],
            output_tokens=None if self.output_tokens is None else self.output_tokens[pick],
            source=self.source,
            meta=dict(self.meta),
        )

    def rate_series(self, step_s: float) -> np.ndarray:
        """Requests per second in each whole step of `step_s` seconds (a partial last step is
        left out, since its rate would read low)."""
        steps = int(self.duration // step_s)
        counts = np.bincount((self.times // step_s).astype(np.int64), minlength=steps)[:steps]
        return counts / step_s

    def window(self, offset: float = 0.0, duration: float | None = None) -> Workload:
        """The arrivals in [offset, offset + duration), re-based so the window starts at 0.

        `duration=None` keeps everything after `offset`. A window that starts past the end of
        the workload is an error rather than a silently empty run.
        """
        check_window(offset, duration, self.duration, self.source or self.name)
        end = self.duration if duration is None else min(self.duration, offset + duration)
        lo, hi = np.searchsorted(self.times, [offset, end], side="left")
        if duration is None:
            hi = len(self)
        index = np.arange(lo, hi)
        return self._take(index, self.times[lo:hi] - offset, end - offset)

    def scale_rate(self, factor: float, seed: int) -> Workload:
        """Thin (factor < 1) or replicate (factor > 1) arrivals with a seeded RNG.

        Each arrival is kept `floor(factor)` times plus once more with probability
        `factor - floor(factor)`. Extra copies are moved by a uniform offset within the same
        second, so the per-second rate scales by `factor` without piling copies onto one
        instant (which would make the trace burstier than it is).
        """
        check_rate_scale(factor)
        if factor == 1:
            return self
        rng = np.random.default_rng([seed, RATE_SCALE_SEED])
        whole = int(np.floor(factor))
        copies = np.full(len(self), whole, dtype=np.int64)
        copies += rng.random(len(self)) < (factor - whole)
        index = np.repeat(np.arange(len(self)), copies)
        times = self.times[index].copy()
        # the first copy of each arrival stays in place; later copies move within their second
        first = np.ones(index.shape[0], dtype=bool)
        first[1:] = index[1:] != index[:-1]
        extra = ~first
        seconds = np.floor(times[extra])
        times[extra] = np.minimum(seconds + rng.random(int(extra.sum())), self.duration)
        return self._take(index, times, self.duration)


def check_window(offset: float, duration: float | None, span: float, what: str) -> None:
    """Refuse a window of `what` (which spans `span` seconds) that is empty or starts past its
    end, rather than run silently on nothing."""
    if offset < 0 or (duration is not None and duration <= 0):
        raise InputError("--offset must be >= 0 and --duration > 0")
    if offset >= span and offset > 0:
        raise InputError(f"--offset {offset:g}s is past the end of {what} (it spans {span:g}s)")


def check_rate_scale(factor: float) -> None:
    if not factor > 0 or not np.isfinite(factor):
        raise InputError(f"--rate-scale must be a positive number, got {factor!r}")
