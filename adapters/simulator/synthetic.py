"""Built-in synthetic workloads: seeded, vectorised stand-ins for the real traces.

Why: the demos and the embedded default must run with no trace files, yet behave like real
services, so each generator is calibrated on a real public trace (see
`../shared/data/traces/SOURCES.md` beside the repository) and says below which figures it
used and where they are from.

`llm-bursty` — an LLM coding assistant, modelled on the Azure LLM inference trace 2023, code
service (`AzureLLMInferenceTrace_code.csv`; Patel et al., "Splitwise", ISCA 2024; CC-BY 4.0).
Targets, from SOURCES.md: mean 2.57 rps at 1 s, peak 67 requests in one second, 73% of seconds
empty, inter-arrival CV 13.2, 1-min CV 1.04, whole minutes with zero requests, then bursts of
400–630 requests per minute. Arrivals are a discrete-time (1 s) Markov-modulated Poisson process
with three states: ON bursts (geometric, mean 7 s), short GAPs (mean 8 s, 0.05 rps) and IDLE
spells (mean 90 s, 0.003 rps, which makes whole minutes empty); after a burst the chain goes IDLE
with probability 0.15, else to a GAP. Each burst's rate is 8.8 rps × a session level (log-normal,
σ 0.3, redrawn after every IDLE spell, so bursts of one session are alike and minutes of 400+
requests happen) × a per-burst factor (log-normal, σ 0.4); each ON second is further jittered
(log-normal, σ 0.4, mean 1) for the within-burst spikes. Those parameters were tuned by hand;
over 100 seeded 1 h samples (`describe`) they give, as mean (10th–90th percentile): 2.55 rps
(2.02–3.25), 73.4% empty seconds (68.6–78.1%), 1-min CV 1.03 (0.91–1.20), peak 62 requests in a
second (44–81), 12.6 empty minutes (7–18), busiest minute 663 requests (466–889), inter-arrival
CV 13.0 (11.0–15.4). The trace: 2.57, 73.4%, 1.04, 67, 12 of 57, 632, 13.2.
Tokens are log-normal, fitted by median and inter-quartile range to that trace's 8,819 rows
(computed here): ContextTokens median 1,469, quartiles 578 / 2,744.5 → σ = ln(Q3/Q1)/1.349 = 1.15;
GeneratedTokens median 13, quartiles 9 / 24 → σ = 0.73. Prompts are clipped to 1..8,192 (the trace
never exceeds 7,437, presumably an 8k context window) and outputs to 1..4,096. The fit is
robust rather than exact in the tails: the trace's output mean is 27.9 (a heavy tail, p99
251), the model's ~17.

`web-diurnal` — a diurnal web-like service modelled on NASA-HTTP 1995 (Arlitt & Williamson,
SIGMETRICS 1996; per-second counts from `nasa_http_1995_per_second_workload.tbz2`) at rates fit
for a GPU service. SOURCES.md gives hour-of-day max/min ≈ 4×, peak 12:00–16:00 local, weekends
about half of weekdays, 1-min ACF at 1 day 0.48. The hourly profiles below were computed here
from the trace's July part (indices 0..2,381,544, before the splice; index 0 = Sat 1995-07-01
00:00:01 −0400): the mean rate of each local hour over 20 weekdays and 8 weekend days, divided by
the weekday mean (0.905 rps). Weekday max/min is 4.46 (peak 14:00–16:00, trough 04:00); the
weekend mean is 0.587 of the weekday mean. rate(t) = mean_rps × profile(hour, weekday/weekend) ×
day(t) × exp(x(t) − σ²/2). day(t) is a mean-one log-normal level drawn for each noon (σ 0.3) and
interpolated linearly in between: NASA's weekday daily totals have a log-sd of 0.21 (0.16
without the STS-70 launch day). x is a log-AR(1) at 1 min resolution (correlation time 30 min,
σ 0.15) for the short swings. The two σ were chosen so that the 1-min ACF at 1 day of 2-week
samples is ~0.50 (NASA: 0.48) while a 2-day sample keeps the hour-of-day shape (over 40 seeds:
max/min 3.9–6.0, median 4.8; the peak hour between 10:00 and 17:00, mostly 14:00–16:00).
Counts per second are Poisson, placed uniformly within the second. t = 0 is a Monday 00:00;
the mean rate (6 rps) is the weekday mean, so the default 1-day sample averages 6 rps in
expectation (one day's level varies: 3.2–10.9 rps over 40 seeds), a full week 5.3 rps.
Tokens are chat-like log-normals with medians of 1,020 prompt and 129 output
tokens: the conversation-trace medians that the Splitwise paper (Patel et al., ISCA 2024) reports
(approximate: not re-checked against the paper here; its coding-trace medians, ~1,500 and 13,
agree with what we computed above). Their spreads (σ 1.0 and 0.9) are assumptions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from adapters.simulator.counts import spread_counts
from adapters.simulator.workload import Workload
from autoscaler.errors import InputError

Draw = tuple[np.ndarray, np.ndarray, np.ndarray]
"""Sorted arrival times, prompt tokens and output tokens of one generated sample."""


@dataclass(frozen=True)
class WorkloadSpec:
    """A built-in workload: what `--workload NAME` means and how long it runs by default."""

    name: str
    description: str
    default_duration: float
    draw: Callable[[np.random.Generator, float], Draw]


@dataclass(frozen=True)
class TokenModel:
    """Log-normal token counts given by their median and log-space σ, rounded and clipped."""

    median: float
    sigma: float
    high: int
    low: int = 1

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        values = np.rint(rng.lognormal(math.log(self.median), self.sigma, n))
        return np.clip(values, self.low, self.high).astype(np.int64)


# --- llm-bursty: figures from the module docstring ------------------------------------------

BURST_MEAN_S = 7.0
GAP_MEAN_S = 8.0
IDLE_MEAN_S = 90.0
IDLE_PROBABILITY = 0.15
BURST_RATE_RPS = 8.8
GAP_RATE_RPS = 0.05
IDLE_RATE_RPS = 0.003
SESSION_SIGMA = 0.3
BURST_SIGMA = 0.4
SECOND_SIGMA = 0.4
CODE_PROMPT = TokenModel(median=1469, sigma=1.15, high=8192)
CODE_OUTPUT = TokenModel(median=13, sigma=0.73, high=4096)

# --- web-diurnal: figures from the module docstring -----------------------------------------

DIURNAL_MEAN_RPS = 6.0
WEEKDAY_PROFILE = np.array(
    [0.69, 0.57, 0.51, 0.43, 0.37, 0.38, 0.43, 0.72, 1.13, 1.35, 1.39, 1.52,
     1.60, 1.61, 1.65, 1.65, 1.58, 1.24, 0.99, 0.88, 0.83, 0.84, 0.82, 0.81]
)  # fmt: skip
WEEKEND_PROFILE = np.array(
    [0.68, 0.62, 0.46, 0.35, 0.30, 0.27, 0.27, 0.28, 0.39, 0.45, 0.56, 0.63,
     0.67, 0.70, 0.78, 0.74, 0.79, 0.79, 0.70, 0.67, 0.71, 0.75, 0.77, 0.75]
)  # fmt: skip
DAY_SIGMA = 0.3
NOISE_STEP_S = 60
NOISE_CORRELATION_STEPS = 30.0
NOISE_SIGMA = 0.15
CHAT_PROMPT = TokenModel(median=1020, sigma=1.0, high=32768)
CHAT_OUTPUT = TokenModel(median=129, sigma=0.9, high=4096)


def generate(name: str, *, seed: int, duration: float | None = None) -> Workload:
    """A seeded sample of built-in workload `name`, `duration` s long (default: its spec's)."""
    spec = WORKLOADS.get(name)
    if spec is None:
        raise InputError(f"unknown workload {name!r}; built-in workloads: {', '.join(WORKLOADS)}")
    span = spec.default_duration if duration is None else duration
    if not (isinstance(span, (int, float)) and math.isfinite(span) and span > 0):
        raise InputError(f"--duration must be a positive number of seconds, got {duration!r}")
    times, prompt, output = spec.draw(np.random.default_rng(seed), float(span))
    return Workload(
        name=name,
        times=times,
        duration=float(span),
        prompt_tokens=prompt,
        output_tokens=output,
        source=f"workload:{name}",
        meta={"seed": seed, "generator": name},
    )


def _arrivals(rng: np.random.Generator, rate: np.ndarray, duration: float) -> np.ndarray:
    """Poisson counts per second from a per-second rate, placed uniformly, cut at `duration`."""
    times = spread_counts(rng.poisson(rate), 1.0, rng)
    return times[times < duration]


# --- llm-bursty -----------------------------------------------------------------------------


def _draw_llm_bursty(rng: np.random.Generator, duration: float) -> Draw:
    rate = _bursty_rate(rng, math.ceil(duration))
    times = _arrivals(rng, rate, duration)
    return times, CODE_PROMPT.sample(rng, times.size), CODE_OUTPUT.sample(rng, times.size)


def _bursty_rate(rng: np.random.Generator, seconds: int) -> np.ndarray:
    """Per-second rate of the ON / GAP / IDLE chain, as cycles of one burst and one pause.

    Cycles are drawn in bulk (twice the expected number) rather than stepped one by one, and
    drawn again, doubled, in the rare case they fall short of `seconds`.
    """
    mean_cycle = BURST_MEAN_S + (1 - IDLE_PROBABILITY) * GAP_MEAN_S + IDLE_PROBABILITY * IDLE_MEAN_S
    cycles = 2 * math.ceil(seconds / mean_cycle) + 16
    while True:
        lengths, rates, bursting = _bursty_cycles(rng, cycles)
        if lengths.sum() >= seconds:
            break
        cycles *= 2
    on = np.repeat(bursting, lengths)[:seconds]
    jitter = rng.lognormal(-(SECOND_SIGMA**2) / 2, SECOND_SIGMA, seconds)
    return np.repeat(rates, lengths)[:seconds] * np.where(on, jitter, 1.0)


def _bursty_cycles(rng: np.random.Generator, cycles: int) -> tuple[np.ndarray, ...]:
    """Interleaved (burst, pause) segment lengths in seconds, their rates and an ON flag."""
    burst = rng.geometric(1 / BURST_MEAN_S, cycles)
    idle = rng.random(cycles) < IDLE_PROBABILITY
    pause = np.where(
        idle, rng.geometric(1 / IDLE_MEAN_S, cycles), rng.geometric(1 / GAP_MEAN_S, cycles)
    )
    session = np.concatenate(([0], np.cumsum(idle)[:-1]))
    level = rng.lognormal(0.0, SESSION_SIGMA, int(session[-1]) + 1)[session]
    burst_rate = BURST_RATE_RPS * level * rng.lognormal(0.0, BURST_SIGMA, cycles)
    pause_rate = np.where(idle, IDLE_RATE_RPS, GAP_RATE_RPS)
    lengths = np.column_stack((burst, pause)).ravel()
    rates = np.column_stack((burst_rate, pause_rate)).ravel()
    bursting = np.tile([True, False], cycles)
    return lengths, rates, bursting


# --- web-diurnal ----------------------------------------------------------------------------


def _draw_web_diurnal(rng: np.random.Generator, duration: float) -> Draw:
    seconds = math.ceil(duration)
    rate = DIURNAL_MEAN_RPS * diurnal_profile(np.arange(seconds) + 0.5) * _slow_noise(rng, seconds)
    times = _arrivals(rng, rate, duration)
    return times, CHAT_PROMPT.sample(rng, times.size), CHAT_OUTPUT.sample(rng, times.size)


def diurnal_profile(t: np.ndarray) -> np.ndarray:
    """Relative rate at `t` seconds after Monday 00:00, interpolated between hour centres."""
    hour = (t % 86_400.0) / 3600.0
    weekend = (t // 86_400.0) % 7 >= 5
    centres = np.arange(24) + 0.5
    weekday_rate = np.interp(hour, centres, WEEKDAY_PROFILE, period=24)
    weekend_rate = np.interp(hour, centres, WEEKEND_PROFILE, period=24)
    return np.where(weekend, weekend_rate, weekday_rate)


def _slow_noise(rng: np.random.Generator, seconds: int) -> np.ndarray:
    """Mean-one multiplicative noise per second: a day level times a fast log-AR(1).

    Day levels are drawn for each noon and interpolated linearly in between, so busy and quiet
    days blend at night instead of jumping at midnight.
    """
    steps = math.ceil(seconds / NOISE_STEP_S)
    middles = (np.arange(steps) + 0.5) * NOISE_STEP_S
    noons = (np.arange(math.ceil(seconds / 86_400.0)) + 0.5) * 86_400.0
    levels = rng.lognormal(-(DAY_SIGMA**2) / 2, DAY_SIGMA, noons.size)
    phi = math.exp(-1.0 / NOISE_CORRELATION_STEPS)
    fast = np.exp(_ar1(rng, steps, phi, NOISE_SIGMA) - NOISE_SIGMA**2 / 2)
    return np.repeat(np.interp(middles, noons, levels) * fast, NOISE_STEP_S)[:seconds]


def _ar1(
    rng: np.random.Generator, n: int, phi: float, sigma: float, block: int = 512
) -> np.ndarray:
    """A stationary AR(1) with marginal sd `sigma`, vectorised within blocks.

    Within a block x[k] = phi**(k+1) * carry + phi**k * cumsum(e[j] / phi**j); blocks keep
    phi**-j far from overflow for any series length, so only n / block steps run in Python.
    """
    shocks = rng.standard_normal(n) * sigma * math.sqrt(1 - phi**2)
    shocks[0] = rng.standard_normal() * sigma  # start in the stationary distribution
    out = np.empty(n)
    carry = 0.0
    powers = phi ** np.arange(block)
    for start in range(0, n, block):
        e = shocks[start : start + block]
        p = powers[: e.size]
        out[start : start + e.size] = phi * p * carry + p * np.cumsum(e / p)
        carry = out[start + e.size - 1]
    return out


WORKLOADS: dict[str, WorkloadSpec] = {
    spec.name: spec
    for spec in (
        WorkloadSpec(
            "llm-bursty",
            "ON/OFF bursty LLM coding assistant (Azure LLM code trace 2023), ~2.6 rps, 73% idle s",
            3600.0,
            _draw_llm_bursty,
        ),
        WorkloadSpec(
            "web-diurnal",
            "diurnal + weekly web-like chat service (NASA-HTTP 1995 shape), ~6 rps on weekdays",
            86_400.0,
            _draw_web_diurnal,
        ),
    )
}


def describe(workload: Workload) -> dict[str, int | float | None]:
    """The statistics the generators are calibrated on, for any workload (real traces too).

    Seconds and minutes are counted from the workload's start; the 1-min CV uses whole minutes
    only (as SOURCES.md does), and is None when there is no whole minute or no request.
    """
    seconds = max(1, math.ceil(workload.duration))
    index = np.minimum(workload.times.astype(np.int64), seconds - 1)
    per_second = np.bincount(index, minlength=seconds)
    per_minute = per_second[: seconds // 60 * 60].reshape(-1, 60).sum(axis=1)
    has_minutes = per_minute.size > 0 and per_minute.sum() > 0
    stats: dict[str, int | float | None] = {
        "requests": len(workload),
        "duration_s": float(workload.duration),
        "mean_rps": len(workload) / workload.duration,
        "peak_rps_1s": int(per_second.max()),
        "empty_seconds_fraction": float(np.mean(per_second == 0)),
        "cv_1min": float(per_minute.std() / per_minute.mean()) if has_minutes else None,
        "peak_requests_1min": int(per_minute.max()) if per_minute.size else None,
        "empty_minutes": int(np.sum(per_minute == 0)),
        "interarrival_cv": _interarrival_cv(workload.times),
    }
    for key, tokens in (("prompt", workload.prompt_tokens), ("output", workload.output_tokens)):
        if tokens is not None and tokens.size:
            stats[f"{key}_tokens_median"] = float(np.median(tokens))
    return stats


def _interarrival_cv(times: np.ndarray) -> float | None:
    """Coefficient of variation of the gaps between arrivals (1 for a Poisson process)."""
    gaps = np.diff(times)
    if gaps.size < 2 or gaps.mean() == 0:
        return None
    return float(gaps.std() / gaps.mean())
