"""Invariants of the pure policies (KPA, HPA, Leadtime) over random loads, configs and histories.

Why property tests: the hand-computed cases in test_kpa.py, test_hpa.py and
test_leadtime_policy.py pin the formulas; these pin what must hold whatever the formulas
compute — the promises an operator relies on when handing a GPU fleet to the autoscaler:
bounds, rate limits, Leadtime's own safety net, monotonicity in load, no oscillation under constant
load, and no scale to zero while requests wait. Configs are built through the real config
parser (`config_from_mapping` → `PolicyConfig.leadtime_config`), so every config drawn is one a
user can write. Histories carry the policy's state from tick to tick over a small cluster model
in which replicas come up a fixed number of ticks after they are asked for and go at once.

A service decided alone and inside a fleet getting the same decision is
tests/core/policies/test_leadtime_rows.py's, so it is not repeated here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.config import config_from_mapping
from autoscaler.policies.hpa import (
    PERCENT,
    PODS,
    SELECT_DISABLED,
    SELECT_MAX,
    Hpa,
    HpaConfig,
    HpaPolicy,
    HpaRules,
)
from autoscaler.policies.kpa import Kpa, KpaConfig
from autoscaler.policies.leadtime import Leadtime
from autoscaler.policies.leadtime_config import LeadtimeConfig
from autoscaler.policy import Decision, Observation
from forecasting.forecast import Forecast

# --- strategies: configs, loads, forecasts -----------------------------------------------------


def _duration(low: int, high: int) -> st.SearchStrategy[Any]:
    """A duration as a user writes it: plain seconds, `Ns` or (when whole) `Nm`."""
    seconds = st.integers(low, high)
    return st.one_of(
        seconds,
        seconds.map(lambda s: f"{s}s"),
        st.integers(max(1, math.ceil(low / 60)), max(1, high // 60)).map(lambda m: f"{m}m"),
    )


@st.composite
def policy_mappings(draw: st.DrawFn, *, stable_max: int = 120) -> dict[str, Any]:
    """The `policy:` section of a valid config file, every key optional."""
    min_scale = draw(st.integers(0, 3))
    keys: dict[str, Any] = {
        "slo_target": draw(st.sampled_from([0.5, 0.8, 0.9, 0.95, 0.99, 0.999])),
        "slo_ttft": draw(st.sampled_from([0.5, 1.0, 2.0, 10.0])),
        "horizon": draw(_duration(10, 300)),
        "cold_start_prior": draw(_duration(5, 120)),
        "scale_down_delay": draw(_duration(0, 300)),
        "hold_leads": draw(st.sampled_from([0, 0.5, 1, 2, 3])),
        "metric": draw(st.sampled_from(["concurrency", "rps"])),
        "container_concurrency": draw(st.sampled_from([0, 1, 4, 8, 32])),
        "target": draw(st.one_of(st.none(), st.sampled_from([0.5, 1, 2.5, 5, 10, 50]))),
        "target_utilization": draw(st.sampled_from([0.1, 0.5, 0.7, 1.0])),
        "min_scale": min_scale,
        "max_scale": draw(st.sampled_from([0, min_scale + 1, min_scale + 3, min_scale + 20])),
        "stable_window": draw(st.integers(6, stable_max).map(lambda s: f"{s}s")),
        "initial_scale": draw(st.integers(0, 3)),
    }
    if keys["max_scale"]:
        keys["initial_scale"] = min(keys["initial_scale"], keys["max_scale"])
    chosen = draw(st.sets(st.sampled_from(sorted(keys))))
    return {key: value for key, value in keys.items() if key in chosen}


@st.composite
def leadtime_configs(draw: st.DrawFn, *, stable_max: int = 120) -> LeadtimeConfig:
    """A config file's policy, parsed, plus the KPA knobs the file leaves at Knative's defaults
    (rate limits, panic, delay, burst capacity), re-validated by `replace`."""
    mapping = {"policy": draw(policy_mappings(stable_max=stable_max))}
    config = config_from_mapping(mapping, source="hypothesis").policy.leadtime_config()
    kpa = replace(
        config.kpa,
        max_scale_up_rate=draw(st.sampled_from([1.5, 2.0, 10.0, 1000.0])),
        max_scale_down_rate=draw(st.sampled_from([1.5, 2.0, 4.0])),
        panic_window_percentage=draw(st.sampled_from([5.0, 10.0, 50.0, 100.0])),
        panic_threshold_percentage=draw(st.sampled_from([110.0, 200.0, 1000.0])),
        scale_down_delay_s=draw(st.sampled_from([0.0, 0.0, 10.0, 30.0])),
        target_burst_capacity=draw(st.sampled_from([-1.0, 0.0, 211.0])),
        enable_scale_to_zero=draw(st.booleans()),
    )
    return replace(config, kpa=kpa)


@dataclass(frozen=True)
class Load:
    """Per-second series of one service, from second 0 on."""

    concurrency: np.ndarray
    arrivals: np.ndarray
    queue: np.ndarray

    def scaled(self, factor: float) -> Load:
        """The same traffic shape with `factor` times the requests (same time in service)."""
        return Load(self.concurrency * factor, self.arrivals * factor, self.queue)


@st.composite
def loads(draw: st.DrawFn, *, max_segments: int = 5, max_len: int = 90) -> Load:
    """Piecewise-constant traffic: bursts, lulls and idle stretches, some of it queued."""
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for _ in range(draw(st.integers(1, max_segments))):
        length = draw(st.integers(1, max_len))
        level = draw(st.sampled_from([0.0, 0.0, 0.3, 1.0, 3.0, 12.0, 60.0, 400.0]))
        level *= draw(st.sampled_from([0.5, 1.0, 1.7]))
        service = draw(st.sampled_from([0.2, 1.0, 4.0]))
        waiting = draw(st.sampled_from([0.0, 0.0, 0.1, 0.5, 0.9]))
        concurrency = np.full(length, level)
        parts.append((concurrency, concurrency / service, concurrency * waiting))
    return Load(*(np.concatenate(series) for series in zip(*parts, strict=True)))


@st.composite
def forecasts(draw: st.DrawFn) -> Forecast | None:
    """A forecast of the arrival rate with ordered quantiles, or None (the KPA decides alone)."""
    if not draw(st.integers(0, 3)):
        return None
    steps = draw(st.integers(1, 40))
    base = np.array(draw(st.lists(st.sampled_from([0, 0.5, 2, 10, 80]), min_size=1, max_size=4)))
    p50 = np.resize(base, steps).astype(float)
    spread = draw(st.sampled_from([0.0, 0.2, 1.0]))
    quantiles = {0.5: p50, 0.9: p50 * (1 + spread), 0.99: p50 * (1 + 2 * spread)}
    return Forecast(p50, quantiles, float(draw(st.sampled_from([1, 10, 30]))))


# --- driving a policy through a history --------------------------------------------------------


@dataclass(frozen=True)
class Tick:
    """One evaluation: what the policy saw, the state it had, and what it decided."""

    observation: Observation
    before: Any
    decision: Decision
    after: Any
    previous: int
    """The count applied before this tick (`observation.desired`)."""


def observe(
    load: Load, now: float, history_s: float, ready: int, desired: int, **extra: Any
) -> Observation:
    """The observation at `now`: the last `history_s` whole seconds before it."""
    end = min(int(now), load.concurrency.size)
    start = max(0, end - int(history_s))
    return Observation(
        now=now,
        concurrency=load.concurrency[start:end],
        arrivals=load.arrivals[start:end],
        queue=load.queue[start:end],
        ready=ready,
        pending=max(0, desired - ready),
        desired=desired,
        **extra,
    )


def history(
    policy: Any,
    load: Load,
    *,
    lag: int,
    ticks: int | None = None,
    start: int | None = None,
    **extra: Any,
) -> list[Tick]:
    """Drive `policy` tick by tick over `load` (the last second repeats past its end).

    The service starts with `start` replicas (default: the policy's initial scale, a new
    service; another count is the policy restarted over a running one). A replica asked for
    is ready `lag` ticks later; one released goes at once, so `ready` is the lowest count
    applied over the last `lag + 1` ticks. `extra` goes into every Observation (forecast,
    cold start)."""
    step = policy.tick_s
    count = ticks if ticks is not None else max(1, math.ceil(load.concurrency.size / step))
    padded = _extended(load, int(count * step + step))
    applied = [policy.initial_replicas() if start is None else start]
    state = policy.initial_state(0.0, applied[0])
    out = []
    for i in range(1, count + 1):
        ready = min(applied[-(lag + 1) :])
        obs = observe(padded, i * step, policy.history_s, ready, applied[-1], **extra)
        decision, after = policy.decide(obs, state)
        out.append(Tick(obs, state, decision, after, applied[-1]))
        applied.append(decision.desired)
        state = after
    return out


def _extended(load: Load, seconds: int) -> Load:
    """`load` with its last second repeated up to `seconds` long."""
    missing = max(0, seconds - load.concurrency.size)

    def pad(series: np.ndarray) -> np.ndarray:
        return np.concatenate([series, np.full(missing, series[-1])])

    return Load(pad(load.concurrency), pad(load.arrivals), pad(load.queue))


def bounds(kpa: KpaConfig) -> tuple[int, float]:
    return kpa.min_scale, kpa.max_scale or math.inf


def kpa_up_limit(kpa: KpaConfig, tick: Tick, initialized: bool) -> int:
    """The most the KPA may ask for when it scales up: the scale-up rate over the ready pods,
    or a floor the config sets (min, activation and, until first reached, initial scale; 1
    when idle but kept warm)."""
    ready = max(1, tick.observation.ready)
    floors = [kpa.min_scale, kpa.activation_scale, 1]
    if not initialized:
        floors.append(kpa.initial_scale)
    return max(math.ceil(kpa.max_scale_up_rate * ready), *floors)


def kpa_down_limit(kpa: KpaConfig, tick: Tick) -> float:
    """The least the KPA may ask for when it scales down: the scale-down rate over the ready
    pods, unless max-scale is lower."""
    low = math.floor(tick.observation.ready / kpa.max_scale_down_rate)
    return min(low, kpa.max_scale or math.inf)


# --- 1. min <= desired <= max -----------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(config=leadtime_configs(), load=loads(), forecast=forecasts(), lag=st.integers(0, 5))
def test_leadtime_and_kpa_stay_within_min_and_max_scale(config, load, forecast, lag):
    low, high = bounds(config.kpa)
    for policy, extra in ((Leadtime(config), {"forecast": forecast}), (Kpa(config.kpa), {})):
        for tick in history(policy, load, lag=lag, **extra):
            assert low <= tick.decision.desired <= high, (policy.name, tick.decision)


@st.composite
def hpa_rules(draw: st.DrawFn, period: int, *, stabilization_max: int) -> HpaRules:
    """One policy per direction with a period of one sync (so the limit is tick to tick)."""
    kind = draw(st.sampled_from([PODS, PERCENT]))
    value = draw(st.integers(1, 4)) if kind == PODS else draw(st.sampled_from([10, 50, 100, 200]))
    select = draw(st.sampled_from([SELECT_MAX, SELECT_MAX, SELECT_DISABLED]))
    stabilization = draw(st.integers(0, stabilization_max))
    return HpaRules((HpaPolicy(kind, value, period),), select, stabilization)


@st.composite
def hpa_configs(draw: st.DrawFn) -> HpaConfig:
    sync = draw(st.sampled_from([5, 15, 30]))
    low = draw(st.integers(1, 3))
    return HpaConfig(
        target_per_pod=draw(st.sampled_from([0.5, 2.0, 10.0, 70.0])),
        min_replicas=low,
        max_replicas=draw(st.sampled_from([low, low + 2, low + 30])),
        sync_period_s=float(sync),
        tolerance=draw(st.sampled_from([0.0, 0.1, 0.5])),
        scale_up=draw(hpa_rules(sync, stabilization_max=60)),
        scale_down=draw(hpa_rules(sync, stabilization_max=300)),
    )


def hpa_up_limit(rules: HpaRules, current: int) -> int:
    if rules.select_policy == SELECT_DISABLED:
        return current
    (policy,) = rules.policies
    if policy.type == PODS:
        return current + policy.value
    return math.ceil(current * (1 + policy.value / 100))


def hpa_down_limit(rules: HpaRules, current: int) -> int:
    if rules.select_policy == SELECT_DISABLED:
        return current
    (policy,) = rules.policies
    if policy.type == PODS:
        return current - policy.value
    return int(current * (1 - policy.value / 100))


@settings(max_examples=60, deadline=None)
@given(config=hpa_configs(), load=loads(max_len=200), lag=st.integers(0, 3))
def test_hpa_stays_within_bounds_and_its_rate_limits(config, load, lag):
    """The HPA's behaviour policies, each over one sync period here, bound every change."""
    for tick in history(Hpa(config), load, lag=lag):
        desired, current = tick.decision.desired, tick.previous
        assert config.min_replicas <= desired <= config.max_replicas
        if desired > current:
            assert desired <= hpa_up_limit(config.scale_up, current), tick.decision
        if desired < current:
            assert desired >= hpa_down_limit(config.scale_down, current), tick.decision


# --- 2. rate limits, tick to tick --------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(config=leadtime_configs(), load=loads(), lag=st.integers(0, 5))
def test_kpa_scale_up_and_down_rates_hold_tick_to_tick(config, load, lag):
    """Knative's max-scale-up-rate and max-scale-down-rate, relative to the ready pods."""
    kpa = config.kpa
    for tick in history(Kpa(kpa), load, lag=lag):
        desired, previous = tick.decision.desired, tick.previous
        if desired > previous:
            assert desired <= kpa_up_limit(kpa, tick, tick.before.scale_target_initialized)
        if desired < previous:
            assert desired >= kpa_down_limit(kpa, tick), tick.decision


# --- 3. Leadtime is no longer floored by the KPA: its own safety net ---------------------------


@settings(max_examples=60, deadline=None)
@given(config=leadtime_configs(), load=loads(), forecast=forecasts(), lag=st.integers(0, 5))
def test_leadtime_never_releases_what_the_observed_load_needs(config, load, forecast, lag):
    """Whatever the forecast says, a tick that lowers the count keeps at least what the rule's
    own safety net asks for the arrivals of the stable window (max-scale permitting). Keep-alive
    and pre-warm act only where the rule asked for none: their one replica is not the rule's."""
    _, high = bounds(config.kpa)
    for tick in history(Leadtime(config), load, lag=lag, forecast=forecast):
        idle_plan = tick.decision.reason in ("prewarm", "keepalive")
        if tick.decision.desired < tick.previous and not idle_plan:
            reactive = int(tick.decision.detail.split("reactive ")[1].split(" ")[0])
            assert tick.decision.desired >= min(reactive, high), tick.decision


# --- 4. more load never lowers the decision ----------------------------------------------------


def _saturated(observation: Observation) -> bool:
    """Whether the capacity learner reads this observation (requests queued in its window)."""
    return bool((observation.queue[-4:] > 0.5).any())


@settings(max_examples=60, deadline=None)
@given(
    config=leadtime_configs(),
    load=loads(),
    forecast=forecasts(),
    lag=st.integers(0, 5),
    factor=st.sampled_from([1.01, 1.5, 2.0, 10.0]),
    at=st.integers(0, 10**6),
)
def test_more_load_never_lowers_the_decision(config, load, forecast, lag, factor, at):
    """At a random tick of a history, the same state and config with `factor` times the
    requests (same time in service, a forecast `factor` times higher) never decide fewer
    replicas — for Leadtime and for the KPA.

    Excluded: ticks whose window holds queued seconds. There Leadtime learns the replica's
    real capacity from requests in service per replica, and more requests in service *is*
    evidence of more capacity: fewer replicas for the same forecast is the intended answer.
    """
    more_forecast = forecast and Forecast(
        forecast.mean * factor,
        {q: v * factor for q, v in forecast.quantiles.items()},
        forecast.step_s,
    )
    for policy, base_extra, more_extra in (
        (Leadtime(config), {"forecast": forecast}, {"forecast": more_forecast}),
        (Kpa(config.kpa), {}, {}),
    ):
        ticks = history(policy, load, lag=lag, **base_extra)
        tick = ticks[at % len(ticks)]
        base = tick.observation
        heavier = load.scaled(factor)
        more = observe(
            _extended(heavier, int(base.now) + 1),
            base.now,
            policy.history_s,
            base.ready,
            base.desired,
            **more_extra,
        )
        if isinstance(policy, Leadtime) and _saturated(base):
            continue
        decision, _ = policy.decide(more, tick.before)
        assert decision.desired >= tick.decision.desired, (policy.name, tick.decision, decision)


@settings(max_examples=60, deadline=None)
@given(
    config=hpa_configs(),
    load=loads(max_len=200),
    lag=st.integers(0, 3),
    factor=st.sampled_from([1.01, 1.5, 2.0, 10.0]),
    at=st.integers(0, 10**6),
)
def test_more_load_never_lowers_the_hpa_decision(config, load, lag, factor, at):
    policy = Hpa(config)
    ticks = history(policy, load, lag=lag)
    tick = ticks[at % len(ticks)]
    base = tick.observation
    heavier = _extended(load.scaled(factor), int(base.now) + 1)
    more = observe(heavier, base.now, policy.history_s, base.ready, base.desired)
    decision, _ = policy.decide(more, tick.before)
    assert decision.desired >= tick.decision.desired, (tick.decision, decision)


# --- 5. constant load does not oscillate -------------------------------------------------------

SETTLE_S = 1500
"""Long enough for every memory a drawn config holds: a 120 s stable window and the panic that
outlasts it by one more, the halving scale-down steps, a hold of up to 3 x (120 s + 2 s) lead
times, the 10-minute fixed keep-alive of an idle service and Knative's scale-to-zero grace."""
WATCH_S = 300


@st.composite
def constant_loads(draw: st.DrawFn) -> Load:
    seconds = SETTLE_S + WATCH_S + 4
    level = draw(st.sampled_from([0.0, 0.2, 1.0, 7.0, 45.0, 300.0]))
    service = draw(st.sampled_from([0.2, 1.0, 4.0]))
    waiting = draw(st.sampled_from([0.0, 0.3]))
    concurrency = np.full(seconds, level)
    return Load(concurrency, concurrency / service, concurrency * waiting)


@st.composite
def constant_forecasts(draw: st.DrawFn) -> Forecast | None:
    if not draw(st.booleans()):
        return None
    rate = float(draw(st.sampled_from([0.0, 0.5, 5.0, 50.0])))
    steps = np.full(30, rate)
    return Forecast(steps, {0.5: steps, 0.9: steps * 1.3}, 10.0)


def _settled_decisions(policy: Any, load: Load, lag: int, **extra: Any) -> set[int]:
    ticks = history(policy, load, lag=lag, ticks=int((SETTLE_S + WATCH_S) / policy.tick_s), **extra)
    return {t.decision.desired for t in ticks if t.observation.now > SETTLE_S}


@settings(max_examples=25, deadline=None)
@given(
    config=leadtime_configs(),
    load=constant_loads(),
    forecast=constant_forecasts(),
    lag=st.integers(0, 5),
)
def test_constant_load_settles_and_stays(config, load, forecast, lag):
    """Under constant traffic and a constant forecast the decision stops moving: one value
    for the last five minutes, for Leadtime and the KPA."""
    assert len(_settled_decisions(Leadtime(config), load, lag, forecast=forecast)) == 1
    assert len(_settled_decisions(Kpa(config.kpa), load, lag)) == 1


@settings(max_examples=25, deadline=None)
@given(config=hpa_configs(), load=constant_loads(), lag=st.integers(0, 3))
def test_constant_load_settles_the_hpa(config, load, lag):
    assert len(_settled_decisions(Hpa(config), load, lag)) == 1


# --- 6. no scale to zero while requests wait ---------------------------------------------------


@st.composite
def after_idle(draw: st.DrawFn) -> Load:
    """Traffic after a lull long enough (up to 15 minutes) for both policies to reach zero."""
    load = draw(loads())
    quiet = np.zeros(draw(st.sampled_from([0, 120, 400, 900])))
    return Load(*(np.concatenate([quiet, series]) for series in vars(load).values()))


@settings(max_examples=60, deadline=None)
@given(
    config=leadtime_configs(),
    load=after_idle(),
    forecast=forecasts(),
    lag=st.integers(0, 5),
    start=st.sampled_from([None, 0]),
)
def test_no_scale_to_zero_while_requests_are_queued(config, load, forecast, lag, start):
    """Whenever the newest second had requests waiting, at least one replica is wanted —
    also for a service at zero (started there, or scaled there during a lull) whose first
    requests wait at the activator."""
    for policy, extra in ((Leadtime(config), {"forecast": forecast}), (Kpa(config.kpa), {})):
        for tick in history(policy, load, lag=lag, start=start, **extra):
            queue = tick.observation.queue
            if queue.size and queue[-1] > 0:
                assert tick.decision.desired >= 1, (policy.name, tick.decision)


@st.composite
def silent_loads(draw: st.DrawFn) -> Load:
    """No request at all, for up to half an hour."""
    zeros = np.zeros(draw(st.integers(1, 1800)))
    return Load(zeros, zeros, zeros)


@settings(max_examples=40, deadline=None)
@given(
    config=leadtime_configs(),
    load=silent_loads(),
    forecast=constant_forecasts(),
    lag=st.integers(0, 5),
    new=st.booleans(),
)
def test_no_scale_up_from_zero_without_a_request(config, load, forecast, lag, new):
    """A service at zero that has seen no request keeps zero replicas: a new one deployed at
    zero (Knative's initial-scale 0), or one found at zero when the autoscaler (re)starts.
    A forecast of zero traffic changes nothing; nor does min-scale 0's keep-alive, which is
    for the idle time after requests, not before the first one."""
    kpa = config.kpa
    if kpa.min_scale or kpa.initial_scale > 1 or not kpa.enable_scale_to_zero:
        return  # these ask for replicas without requests, by their definition
    if new:
        zero = replace(config.kpa, initial_scale=0, allow_zero_initial_scale=True)
        config = replace(config, kpa=zero)
    quiet = None
    if forecast is not None:
        zeros = {q: v * 0 for q, v in forecast.quantiles.items()}
        quiet = Forecast(forecast.mean * 0, zeros, forecast.step_s)
    for policy, extra in ((Leadtime(config), {"forecast": quiet}), (Kpa(config.kpa), {})):
        for tick in history(policy, load, lag=lag, start=0, **extra):
            assert tick.decision.desired == 0, (policy.name, tick.observation.now, tick.decision)
