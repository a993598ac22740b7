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

The six families below are not fitted to a trace (except `long-context`'s tokens): each isolates
one shape an autoscaler must handle, with figures chosen by order of magnitude, and says which are
assumptions. All draw Poisson counts per second, placed uniformly within the second; all but
`long-context` use the chat-like tokens of `web-diurnal`.

`flash-crowd` — a steady chat service (2 rps, an assumption: a small deployment of one or two
replicas) that, at a uniform random time in the middle third of the window, goes to ×10 in 60 s (a
linear rise) and then decays back exponentially with a 5 min time constant, so it is back under ×2
about 11 min after the peak (ln 9 × 5 min). Why: the rise is shorter than a GPU replica's cold
start (a minute or more to pull and load a model), so a purely reactive scaler must lag it, and the
slow decay tests scale-down hysteresis. The ×10, 60 s and 5 min are assumptions (a link on a busy
front page or a viral post), not measured. Default 1 h.

`step-change` — a steady chat service at 2 rps that steps to ×3 at a uniform random time in 25–50 %
of the window (a new tenant or a product launch) and stays there; with probability 0.5 it steps
back to ×1 at a uniform time in 75–95 % of the window (the tenant moves away). Why: a level shift,
not a transient, is where a forecaster trained on the past is wrong until it adapts; the windows
keep a quarter before the step and a quarter after it for the comparison. ×3 and the step-down
probability are assumptions. Default 1 h.

`slow-ramp` — a morning ramp: 1 rps for the first 10 % of the window, then a smoothstep (3p² − 2p³,
no kink at either end) up to ×5 by 90 % of the window, then flat. Why: `web-diurnal`'s weekday
profile rises ×3.4 from 04:00 to 10:00 (NASA-HTTP); ×5 over ~1.6 h of the default 2 h is that rise
compressed, where a predictive scaler gains most from its lead time and a reactive one lags by its
window. No noise beyond Poisson: the ramp is the test. Default 2 h.

`diurnal-bursts` — `web-diurnal`'s weekday profile and slow noise (mean 6 rps) in real time, with
t = 0 at Monday 05:00, so the default 6 h (a full day is too long for a corpus of runs) covers the
morning rise from just after the 04:00 trough to 11:00 (profile 0.375 → 1.455, ×3.9). On top,
bursts arrive as a Poisson process (one per 10 min on average), each multiplying the rate by a
uniform ×3–×6 for a uniform 30–120 s (overlapping bursts add their excess). On average the bursts
add ~44 % to the rate (75 s × 3.5 per 600 s); over 40 seeds the 6 h mean is 7.2 rps (median). Why:
bursts shorter than a cold start on top of a trend that a forecaster can learn; the burst rate,
size and length are assumptions (a batch job, a retry storm, a campaign email).

`long-context` — an LLM service with long prompts, its tokens calibrated on Mooncake's synthetic
trace (`mooncake_synthetic_trace.jsonl`; Qin et al., FAST 2025; Apache-2.0). Computed here from its
3,993 rows: input_length median 11,587, quartiles 277 / 23,175, p10 30, p90 38,611, p99 66,456,
mean 15,325, max 191,378, 49.1 % over 13,000 (0.25 % over 131,072); output_length median 69,
quartiles 11 / 250, p90 389, mean 149, max 893; log input and log output correlate at −0.49;
17.0 min at 3.91 rps, Poisson (inter-arrival CV 1.01, 1-min CV 0.07). Prompts are bimodal (a mode
at ~20–50 tokens, one at ~10–40k), so a single log-normal cannot fit them (its quartiles would give
σ 3.3): they are a mixture, 40 % short (median 150, σ 2.3) and 60 % long (median 20,000, σ 0.6),
fitted by hand to those quantiles, clipped to 1..131,072 (a 128k context window; the simulator's
MAX_PROMPT_TOKENS). Each component has its own output log-normal, which reproduces the negative
correlation: short prompts median 220, σ 1.0 (the trace's rows under 4,750 tokens: median 197);
long prompts median 20, σ 2.0 (the trace's: 23); outputs clipped to 1..1,024. Over 400,000 draws
the model gives prompts median 11,716, quartiles 313 / 23,037, p90 36,255, mean 15,089, 46.9 % over
13,000; outputs median 73, quartiles 13 / 239, p90 554, mean 186 (heavier than the trace's upper
tail, which stops at 893), correlation −0.49. The rate is not the trace's: its arrivals are
Poisson-generated by its authors, so they say nothing about a real service. Mean 1 rps (an
assumption, modest because each request costs ~2 s of prefill at the simulator's default;
`--rate-scale 3.9` gives the trace's rate) with moderate burstiness: a mean-one log-AR(1) at 1 min
steps (σ 0.5, correlation time 5 min; assumptions): over 40 seeded 1 h samples the mean is 0.99 rps
(10th–90th percentile 0.74–1.30) and the 1-min CV 0.48 (0.39–0.61). Default 1 h.

`sparse` — sparse traffic where scale to zero matters: sessions of a uniform 2–6 min at ~1 rps (a
mean-one log-normal level per session, σ 0.3) separated by idle gaps of a uniform 10–40 min with no
request at all; the first session starts within the first 5 min so that a short window still has
traffic. About 83 % of minutes are empty (40 seeds: 81–85 %, 10th–90th percentile). Why: an
internal tool or a dev endpoint used in short sessions; every gap is far longer than a
scale-to-zero grace period (Knative's default is 30 s after a 60 s stable window), so a scaler that
goes to zero pays a cold start at each session and one that does not pays for idle GPUs. All
figures are assumptions. Default 4 h.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from adapters.simulator.counts import spread_counts
from adapters.simulator.requests import MAX_PROMPT_TOKENS
from adapters.simulator.workload import Workload
from autoscaler.config import register_workloads
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

# --- the shape families: figures from the module docstring ----------------------------------

FLASH_BASE_RPS = 2.0
FLASH_FACTOR = 10.0
FLASH_RISE_S = 60.0
FLASH_DECAY_S = 300.0
STEP_BASE_RPS = 2.0
STEP_FACTOR = 3.0
STEP_UP_WINDOW = (0.25, 0.5)
STEP_DOWN_WINDOW = (0.75, 0.95)
STEP_DOWN_PROBABILITY = 0.5
RAMP_LOW_RPS = 1.0
RAMP_FACTOR = 5.0
RAMP_SPAN = (0.1, 0.9)
BURSTS_START_S = 5 * 3600.0
BURSTS_EVERY_S = 600.0
BURSTS_FACTOR = (3.0, 6.0)
BURSTS_LENGTH_S = (30, 120)
LONG_MEAN_RPS = 1.0
LONG_NOISE_CORRELATION_STEPS = 5.0
LONG_NOISE_SIGMA = 0.5
LONG_SHORT_SHARE = 0.4
LONG_SHORT_PROMPT = TokenModel(median=150, sigma=2.3, high=MAX_PROMPT_TOKENS)
LONG_LONG_PROMPT = TokenModel(median=20_000, sigma=0.6, high=MAX_PROMPT_TOKENS)
LONG_SHORT_OUTPUT = TokenModel(median=220, sigma=1.0, high=1024)
LONG_LONG_OUTPUT = TokenModel(median=20, sigma=2.0, high=1024)
SPARSE_RPS = 1.0
SPARSE_LEVEL_SIGMA = 0.3
SPARSE_SESSION_S = (120, 360)
SPARSE_GAP_S = (600, 2400)
SPARSE_FIRST_S = 300


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


# --- the shape families ---------------------------------------------------------------------


def _chat(rng: np.random.Generator, rate: np.ndarray, duration: float) -> Draw:
    """Poisson arrivals from a per-second rate, with `web-diurnal`'s chat-like tokens."""
    times = _arrivals(rng, rate, duration)
    return times, CHAT_PROMPT.sample(rng, times.size), CHAT_OUTPUT.sample(rng, times.size)


def _midpoints(seconds: int) -> np.ndarray:
    """The middle of each whole second, where a per-second rate is evaluated."""
    return np.arange(seconds) + 0.5


def _draw_flash_crowd(rng: np.random.Generator, duration: float) -> Draw:
    seconds = math.ceil(duration)
    onset = rng.uniform(duration / 3, 2 * duration / 3)
    rate = FLASH_BASE_RPS * _flash_multiplier(_midpoints(seconds) - onset)
    return _chat(rng, rate, duration)


def _flash_multiplier(since: np.ndarray) -> np.ndarray:
    """1 before the onset, a linear rise to FLASH_FACTOR, then an exponential decay back to 1."""
    rise = np.clip(since / FLASH_RISE_S, 0.0, 1.0)
    decay = np.exp(-np.maximum(since - FLASH_RISE_S, 0.0) / FLASH_DECAY_S)
    return 1.0 + (FLASH_FACTOR - 1.0) * rise * decay


def _draw_step_change(rng: np.random.Generator, duration: float) -> Draw:
    """Both step times are always drawn, so the step up is the same with or without a step down."""
    t = _midpoints(math.ceil(duration))
    up = rng.uniform(*STEP_UP_WINDOW) * duration
    down = rng.uniform(*STEP_DOWN_WINDOW) * duration
    if rng.random() >= STEP_DOWN_PROBABILITY:
        down = math.inf
    rate = STEP_BASE_RPS * np.where((t >= up) & (t < down), STEP_FACTOR, 1.0)
    return _chat(rng, rate, duration)


def _draw_slow_ramp(rng: np.random.Generator, duration: float) -> Draw:
    start, end = RAMP_SPAN
    progress = np.clip((_midpoints(math.ceil(duration)) / duration - start) / (end - start), 0, 1)
    smooth = progress**2 * (3 - 2 * progress)  # smoothstep: no kink where the ramp starts or ends
    rate = RAMP_LOW_RPS * (1.0 + (RAMP_FACTOR - 1.0) * smooth)
    return _chat(rng, rate, duration)


def _draw_diurnal_bursts(rng: np.random.Generator, duration: float) -> Draw:
    seconds = math.ceil(duration)
    profile = diurnal_profile(BURSTS_START_S + _midpoints(seconds))
    rate = DIURNAL_MEAN_RPS * profile * _slow_noise(rng, seconds) * _bursts(rng, seconds)
    return _chat(rng, rate, duration)


def _bursts(rng: np.random.Generator, seconds: int) -> np.ndarray:
    """Per-second multiplier of Poisson-timed bursts; overlapping bursts add their excess.

    Each burst adds its excess at its first second and removes it after its last, so one
    cumulative sum builds the multiplier without a loop over bursts.
    """
    n = rng.poisson(seconds / BURSTS_EVERY_S)
    start = rng.integers(0, seconds, n)
    length = rng.integers(*BURSTS_LENGTH_S, n, endpoint=True)
    excess = rng.uniform(*BURSTS_FACTOR, n) - 1.0
    edges = np.zeros(seconds + 1)
    np.add.at(edges, start, excess)
    np.add.at(edges, np.minimum(start + length, seconds), -excess)
    return 1.0 + np.maximum(np.cumsum(edges[:-1]), 0.0)  # the max drops rounding below zero


def _draw_long_context(rng: np.random.Generator, duration: float) -> Draw:
    seconds = math.ceil(duration)
    phi = math.exp(-1.0 / LONG_NOISE_CORRELATION_STEPS)
    steps = math.ceil(seconds / NOISE_STEP_S)
    noise = np.exp(_ar1(rng, steps, phi, LONG_NOISE_SIGMA) - LONG_NOISE_SIGMA**2 / 2)
    times = _arrivals(rng, LONG_MEAN_RPS * np.repeat(noise, NOISE_STEP_S)[:seconds], duration)
    prompt, output = _long_context_tokens(rng, times.size)
    return times, prompt, output


def _long_context_tokens(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Prompt and output tokens from the two-component mixture; a request's component sets both."""
    short = rng.random(n) < LONG_SHORT_SHARE
    prompt = np.where(short, LONG_SHORT_PROMPT.sample(rng, n), LONG_LONG_PROMPT.sample(rng, n))
    output = np.where(short, LONG_SHORT_OUTPUT.sample(rng, n), LONG_LONG_OUTPUT.sample(rng, n))
    return prompt, output


def _draw_sparse(rng: np.random.Generator, duration: float) -> Draw:
    seconds = math.ceil(duration)
    lead = np.zeros(rng.integers(0, SPARSE_FIRST_S))
    rate = np.concatenate((lead, _sparse_sessions(rng, seconds)))[:seconds]
    return _chat(rng, rate, duration)


def _sparse_sessions(rng: np.random.Generator, seconds: int) -> np.ndarray:
    """Per-second rate of alternating sessions and silent gaps, at least `seconds` long.

    Every cycle holds a gap of at least SPARSE_GAP_S[0], so this many cycles always suffice.
    """
    cycles = seconds // SPARSE_GAP_S[0] + 1
    session = rng.integers(*SPARSE_SESSION_S, cycles, endpoint=True)
    gap = rng.integers(*SPARSE_GAP_S, cycles, endpoint=True)
    level = SPARSE_RPS * rng.lognormal(-(SPARSE_LEVEL_SIGMA**2) / 2, SPARSE_LEVEL_SIGMA, cycles)
    lengths = np.column_stack((session, gap)).ravel()
    rates = np.column_stack((level, np.zeros(cycles))).ravel()
    return np.repeat(rates, lengths)


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
        WorkloadSpec(
            "flash-crowd",
            "chat service at 2 rps that jumps x10 within a minute mid-window, decaying over ~5 min",
            3600.0,
            _draw_flash_crowd,
        ),
        WorkloadSpec(
            "step-change",
            "chat service at 2 rps that steps up x3 at a random time (new tenant), maybe back down",
            3600.0,
            _draw_step_change,
        ),
        WorkloadSpec(
            "slow-ramp",
            "morning ramp: chat service rising smoothly from 1 to 5 rps over most of the window",
            7200.0,
            _draw_slow_ramp,
        ),
        WorkloadSpec(
            "diurnal-bursts",
            "web-diurnal's morning rise (Mon 05:00-11:00) with short x3-x6 bursts, ~1 per 10 min",
            6 * 3600.0,
            _draw_diurnal_bursts,
        ),
        WorkloadSpec(
            "long-context",
            "long-prompt LLM service (Mooncake trace tokens: median ~11.6k, up to 128k), ~1 rps",
            3600.0,
            _draw_long_context,
        ),
        WorkloadSpec(
            "sparse",
            "2-6 min sessions at ~1 rps between 10-40 min silent gaps, for scale to zero",
            4 * 3600.0,
            _draw_sparse,
        ),
    )
}
register_workloads(WORKLOADS)  # `simulator.workloads` in the config may name them


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
