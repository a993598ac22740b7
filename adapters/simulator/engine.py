"""The event-driven simulator of a GPU inference service under an autoscaling policy.

Model (every constant in `SimConfig`):
- a shared FIFO queue in front of the replicas, as Knative's activator buffers requests; a
  request that waits longer than the timeout is dropped;
- replicas with `max_concurrency` slots; a request goes to the least-loaded ready replica and
  occupies a slot for prefill + decode;
- replica lifecycle: requested → (waiting for free GPUs, if the pool is bounded) → cold start
  (log-normal jitter) → ready → draining (finishes its in-flight work, takes no new work) → gone;
- the policy is evaluated every `policy.tick_s` on what a metrics pipeline would show it (per-
  second series, delayed by `metrics_delay_s`), plus at once when a request reaches a service
  at zero if the policy is `pokeable` (Knative's activator poke);
- several services can run at once (`simulate_services`), each with its own requests, queue,
  replicas and policy state, sharing only the cluster's GPUs (`cluster.py`): that sharing is
  where placeholder pods pay off. After each tick, policies that size placeholders
  (`scale_up_need`) are asked for their forecast growth, and the pool is set from the sum.

Why event-driven with per-second accumulators: arrivals, slot releases and replica changes are
the only instants at which anything changes, so a run costs O(requests · log slots) and a busy
day replays in seconds. The per-second average concurrency is exact: an arrival or departure at
time t moves the running count by ±1 from the next second on and adds ±(⌊t⌋ + 1 − t) to its own.

Scale-down takes replicas in Kubernetes' ReplicaSet order: those not yet holding a GPU, then those
still starting (newest first), then ready ones, least loaded first (of equally loaded ones,
the one whose work ends soonest).
"""

from __future__ import annotations

import heapq
import math
import time as wallclock
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from adapters.simulator.cluster import EV_READY, GpuCluster
from adapters.simulator.config import SimConfig
from adapters.simulator.forecast_shells import ForecastShell
from adapters.simulator.requests import Requests, build_requests
from adapters.simulator.results import SimResult, TickLog, combine, summarise
from adapters.simulator.workload import Workload
from autoscaler.policies.kpa import TARGET_UTILIZATION_DEFAULT
from autoscaler.policies.placeholders import ScaleUpNeed, SizesPlaceholders, placeholder_pods
from autoscaler.policy import Decision, Observation, Policy
from autoscaler.slo import ATTAINMENT_WINDOW_S, Attainment, wait_budget
from forecasting.forecast import Forecast

INF = math.inf
GPU_CLASS = "gpu"
"""The simulator's one GPU class (placeholders are sized per class)."""

WAITING_GPU, STARTING, READY, DRAINING, GONE = range(5)


@dataclass(frozen=True)
class ServiceSpec:
    """One service of a simulation: where its requests come from and what scales it."""

    workload: Workload
    policy: Policy
    forecasts: ForecastShell | None = None


def simulate(
    workload: Workload,
    policy: Policy,
    config: SimConfig,
    *,
    until: float | None = None,
    progress: Callable[[float], None] | None = None,
    forecasts: ForecastShell | None = None,
) -> SimResult:
    """Replay `workload` through a virtual service scaled by `policy`.

    By default the run lasts until the workload's end and until every request has finished or
    been dropped; `until` stops it earlier (requests still in the system are then in flight).
    `progress` is called now and then with the fraction of the workload's time done.
    `forecasts`, when given, runs a forecaster over the visible arrivals and puts its forecast
    in every Observation (as the service will for policies that use one).
    """
    spec = ServiceSpec(workload, policy, forecasts)
    return simulate_services([spec], config, until=until, progress=progress)[0]


def simulate_services(
    specs: Sequence[ServiceSpec],
    config: SimConfig,
    *,
    until: float | None = None,
    progress: Callable[[float], None] | None = None,
) -> list[SimResult]:
    """Replay several services at once on one cluster; one result per service, then (with
    more than one service) their total, which alone carries the placeholders' GPU-seconds.

    Service i draws its tokens and cold starts with seed `config.seed + i`, so two copies of
    one trace are two services, not one service counted twice.
    """
    if not specs:
        raise ValueError("simulate_services needs at least one service")
    started = wallclock.perf_counter()
    cluster = GpuCluster(config)
    cluster.scored_from = min(config.warmup_for(spec.workload.duration) for spec in specs)
    runs = []
    for index, spec in enumerate(specs):
        own = service_config(config, index)
        requests = build_requests(spec.workload, own)
        run = _Run(requests, spec.workload.duration, spec.policy, own, until, cluster)
        run.forecasts = spec.forecasts
        runs.append(run)
    _drive(runs, cluster, progress)
    wall_s = wallclock.perf_counter() - started
    single = len(runs) == 1
    results = [
        summarise(
            spec.workload,
            spec.policy.name,
            run.config,
            run.requests,
            run,
            cluster if single else None,
            wall_s=wall_s,
        )
        for spec, run in zip(specs, runs, strict=True)
    ]
    if not single:
        results.append(combine(results, cluster, wall_s=wall_s))
    return results


def service_config(config: SimConfig, index: int) -> SimConfig:
    """The configuration service `index` of a run draws with (its own seed)."""
    return replace(config, seed=config.seed + index)


def _drive(runs: list[_Run], cluster: GpuCluster, progress: Callable[[float], None] | None) -> None:
    """The event loop over every service: serve each up to the next instant at which anything
    is decided (a policy tick, a replica ready, GPUs freed, a node up), then decide."""
    for run in runs:
        run.start_warm()
    stop_at = max(run.stop_at for run in runs)
    duration = max(run.duration for run in runs)
    drain = runs[0].drain
    next_tick = [0.0] * len(runs)
    ticks = 0
    report_every = max(1, int(600 / runs[0].policy.tick_s))
    while True:
        tick_at = min(next_tick)
        barrier = min(tick_at, cluster.next_event_at(), stop_at)
        for run in runs:
            run.serve_until(min(barrier, cluster.next_event_at()))
        barrier = min(barrier, cluster.next_event_at())
        if drain and barrier >= duration and all(run.all_done() for run in runs):
            end = max(duration, *(max(run.end, default=0.0) for run in runs))
            return _finish(runs, cluster, end)
        if barrier >= stop_at:
            return _finish(runs, cluster, stop_at)
        if cluster.next_event_at() <= tick_at:
            at, kind, tenant, rid = cluster.pop_event()
            if kind == EV_READY:
                assert isinstance(tenant, _Run)
                tenant.on_ready(rid, at)
            continue
        for index, run in enumerate(runs):
            if next_tick[index] == tick_at:
                run.tick(tick_at, poke=False)
                next_tick[index] += run.policy.tick_s
        _size_placeholders(runs, cluster, tick_at)
        cluster.remove_idle_nodes(tick_at)
        ticks += 1
        if progress is not None and ticks % report_every == 0:
            progress(min(1.0, tick_at / max(duration, 1e-9)))


def _finish(runs: list[_Run], cluster: GpuCluster, end_time: float) -> None:
    for run in runs:
        run.finish(end_time)
    cluster.finish(end_time)


def _size_placeholders(runs: list[_Run], cluster: GpuCluster, now: float) -> None:
    """Set the placeholder pool from the services' forecast growth within one node
    provisioning, when the pool is bounded and some policy sizes it."""
    within = cluster.config.node_provisioning_s
    if not cluster.bounded or within <= 0:
        return
    needs = [need for run in runs if (need := run.scale_up_need(within)) is not None]
    if needs:
        cluster.set_placeholders(placeholder_pods(needs).get(GPU_CLASS, 0), now)


def second_steps(times: np.ndarray, weight: float, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-second accumulators of events of `weight` at `times` (see the module docstring)."""
    seconds = np.floor(times).astype(np.int64)
    steps = np.bincount(seconds, minlength=size)[:size] * weight
    inside = np.bincount(seconds, weights=(seconds + 1 - times) * weight, minlength=size)[:size]
    return steps.astype(np.float64), inside


WARM_UTILIZATION = TARGET_UTILIZATION_DEFAULT
"""The share of its slots a running service's replicas keep busy at the start of a warm run:
Knative's default container-concurrency-target-percentage, the setting most services run with."""
WARM_SIZING_S = 60.0
"""The start of the window whose load sizes a warm run's first replicas."""


def running_replicas(
    requests: Requests, slots: int, start: float = 0.0, span: float = WARM_SIZING_S
) -> int:
    """The replicas a running service holds for the load of [start, start + span): its mean
    concurrency (Little's law: requests × time in service / span) at WARM_UTILIZATION."""
    within = (requests.arrival >= start) & (requests.arrival < start + span)
    concurrency = float(requests.service[within].sum()) / span
    return math.ceil(concurrency / (slots * WARM_UTILIZATION) - 1e-9)


def _count(steps: list[float], inside: list[float], at: float, weight: float) -> None:
    """Add an event of `weight` at time `at` to a pair of per-second accumulators: the running
    count moves from the next second on, and this second gets the share after `at`."""
    second = int(at)
    steps[second] += weight
    inside[second] += weight * (second + 1 - at)


class _Run:
    """The mutable state of one service in a simulation. `_drive` drives it; `summarise`
    reads it."""

    def __init__(
        self,
        requests: Requests,
        duration: float,
        policy: Policy,
        config: SimConfig,
        until: float | None,
        cluster: GpuCluster,
    ) -> None:
        self.policy, self.config, self.cluster = policy, config, cluster
        self.sizer = policy if isinstance(policy, SizesPlaceholders) else None
        """The policy, if it sizes the placeholder pool (checked once: ticks are many)."""
        self.requests = requests
        self.m = config.max_concurrency
        self.duration = duration
        self.n = len(requests)
        self.arr: list[float] = requests.arrival.tolist()
        self.svc: list[float] = requests.service.tolist()
        horizon = (
            duration
            + config.request_timeout_s
            + float(requests.service.max(initial=0.0))
            + config.cold_start_bounds[1]
            + config.node_provisioning_s
            + 2 * policy.tick_s
            + 2.0
        )
        self.drain = until is None
        self.scored_from = config.warmup_for(duration)
        """Arrivals, GPU-seconds and replicas count from here on (the end of the warm-up)."""
        self.stop_at = horizon if until is None else min(until, horizon)
        size = int(math.ceil(horizon)) + 2
        # per-request outcomes
        self.start = [-1.0] * self.n
        self.end = [-1.0] * self.n
        self.dropped = bytearray(self.n)
        self.cold = bytearray(self.n)
        # per-second series and their accumulators
        steps, inside = second_steps(requests.arrival, 1.0, size)
        self.conc_steps, self.conc_inside = steps.tolist(), inside.tolist()
        self.queue_steps, self.queue_inside = [0.0] * size, [0.0] * size
        self.arrivals_ps = np.bincount(np.floor(requests.arrival).astype(np.int64), minlength=size)[
            :size
        ].astype(np.float64)
        self.concurrency_ps = np.zeros(size)
        self.queue_ps = np.zeros(size)
        # requests judged against the SLO when they start (or are dropped), per second: the
        # service's measured attainment, as a model server's TTFT histogram counts it
        self.budget: list[float] = wait_budget(requests.prefill, config.slo_ttft_s).tolist()
        self.met_ps = [0.0] * size
        self.judged_ps = [0.0] * size
        self.seconds_done = 0
        self.conc_level = 0.0
        self.queue_level = 0.0
        # replicas, one entry per replica ever requested
        self.rep_requested: list[float] = []
        self.rep_granted: list[float] = []
        self.rep_ready_at: list[float] = []
        self.rep_gone: list[float] = []
        self.rep_state: list[int] = []
        self.rep_inflight: list[int] = []
        self.rep_busy_until: list[float] = []
        self.by_load: list[set[int]] = [set() for _ in range(self.m + 1)]
        self.starting: set[int] = set()
        self.gpu_wait: deque[int] = deque()
        self.free = 0
        self.n_ready = 0
        self.cold_rng = np.random.default_rng([config.seed, 0xC01D])
        # event queues
        self.completions: list[tuple[float, int]] = []
        self.queue: deque[int] = deque()
        self.next_arrival = 0
        self.end_time = 0.0
        # accounting
        self.ready_area = 0.0
        self.ready_since = 0.0
        self.desired = 0
        self.scale_events = 0
        """Changes of the desired count within the scored window."""
        self.ticks = TickLog()
        self.state: Any = None
        self.forecasts: ForecastShell | None = None
        self.cold_starts: deque[float] = deque(maxlen=5)
        self.measured_cold_start: float | None = None
        """The median of the last cold starts, as the adapters measure it (None before one)."""
        self.last_observation: Observation | None = None

    # ------------------------------------------------------------------------ driver
    def start_warm(self) -> None:
        """Replicas that are ready at time 0 (a service deployed warm), then the first state.

        With a warm-up the service is already running: it starts with the replicas its first
        minute of load keeps at Knative's default utilisation (`running_replicas`), or the
        policy's own start if that is more."""
        initial = self.policy.initial_replicas()
        if self.scored_from > 0:
            initial = max(initial, running_replicas(self.requests, self.m))
        for _ in range(initial):
            rid = self._new_replica(0.0)
            if self.cluster.request(self, rid, 0.0):
                self._grant(rid, 0.0, warm=True)
            else:
                self.gpu_wait.append(rid)
        self.desired = initial
        self.state = self.policy.initial_state(0.0, self.n_ready)

    def all_done(self) -> bool:
        return self.next_arrival >= self.n and not self.completions and not self.queue

    def finish(self, end_time: float) -> None:
        self.end_time = end_time
        self._expire_queue(end_time)
        self._account_ready(end_time)
        self._finalise_seconds(int(math.ceil(end_time)))

    # ---------------------------------------------------------------------- hot path
    def serve_until(self, barrier: float) -> None:
        """Process arrivals and slot releases before `barrier`, in time order.

        At equal times a release comes first, so a slot freed at t serves an arrival at t.
        This loop runs once per request, so the two common cases (an arrival that finds a free
        slot, a release with nobody queued) are written inline on local names; everything else
        goes through the methods below, with `self.free` written back first.
        """
        arr, svc, n = self.arr, self.svc, self.n
        completions, queue, control = self.completions, self.queue, self.cluster.control
        by_load, inflight, busy_until = self.by_load, self.rep_inflight, self.rep_busy_until
        rep_state, start, end = self.rep_state, self.start, self.end
        conc_steps, conc_inside = self.conc_steps, self.conc_inside
        met_ps, judged_ps = self.met_ps, self.judged_ps
        heappop, heappush = heapq.heappop, heapq.heappush
        i, free = self.next_arrival, self.free
        while True:
            ta = arr[i] if i < n else INF
            tc = completions[0][0] if completions else INF
            if tc <= ta:
                if tc >= barrier:
                    break
                rid = heappop(completions)[1]
                k = inflight[rid]
                inflight[rid] = k - 1
                if rep_state[rid] == READY:
                    by_load[k].discard(rid)
                    by_load[k - 1].add(rid)
                    free += 1
                    if queue:
                        self.free = free
                        self._dispatch_queue(tc)
                        free = self.free
            elif ta >= barrier:
                break
            elif free > 0:
                k = 0
                while not by_load[k]:
                    k += 1
                rid = by_load[k].pop()
                by_load[k + 1].add(rid)
                inflight[rid] = k + 1
                free -= 1
                finish = ta + svc[i]
                start[i] = ta
                end[i] = finish
                busy_until[rid] = max(busy_until[rid], finish)
                heappush(completions, (finish, rid))
                second = int(finish)
                conc_steps[second] -= 1.0
                conc_inside[second] -= second + 1 - finish
                second = int(ta)  # started at once: within any wait budget
                met_ps[second] += 1.0
                judged_ps[second] += 1.0
                i += 1
            else:
                self.next_arrival = i + 1
                self.free = free
                self._enqueue(i, ta)
                free = self.free
                i += 1
                if control and control[0][0] < barrier:
                    barrier = control[0][0]
        self.next_arrival, self.free = i, free

    def _start(self, req: int, now: float) -> int:
        """Give request `req` a slot on the least-loaded ready replica; one must be free."""
        by_load = self.by_load
        k = 0
        while not by_load[k]:
            k += 1
        rid = by_load[k].pop()
        by_load[k + 1].add(rid)
        self.rep_inflight[rid] = k + 1
        self.free -= 1
        finish = now + self.svc[req]
        self.start[req] = now
        self.end[req] = finish
        self.rep_busy_until[rid] = max(self.rep_busy_until[rid], finish)
        heapq.heappush(self.completions, (finish, rid))
        _count(self.conc_steps, self.conc_inside, finish, -1.0)
        second = int(now)
        self.judged_ps[second] += 1.0
        self.met_ps[second] += float(now - self.arr[req] <= self.budget[req])
        return rid

    def _enqueue(self, req: int, now: float) -> None:
        self.queue.append(req)
        _count(self.queue_steps, self.queue_inside, now, 1.0)
        if self.policy.pokeable and self.desired == 0:
            self.tick(now, poke=True)

    def _leave_queue(self, now: float) -> None:
        _count(self.queue_steps, self.queue_inside, now, -1.0)

    def _dispatch_queue(self, now: float) -> None:
        """Start queued requests, oldest first, while slots are free; drop the expired."""
        queue, arr = self.queue, self.arr
        timeout = self.config.request_timeout_s
        while queue and self.free > 0:
            req = queue.popleft()
            if arr[req] + timeout <= now:
                self._drop(req, arr[req] + timeout)
                continue
            self._leave_queue(now)
            rid = self._start(req, now)
            if self.rep_ready_at[rid] > arr[req]:
                self.cold[req] = 1

    def _expire_queue(self, now: float) -> None:
        """Drop queued requests whose timeout has passed (the queue is in arrival order)."""
        queue, arr = self.queue, self.arr
        timeout = self.config.request_timeout_s
        while queue and arr[queue[0]] + timeout <= now:
            req = queue.popleft()
            self._drop(req, arr[req] + timeout)

    def _drop(self, req: int, at: float) -> None:
        self.judged_ps[min(int(at), len(self.judged_ps) - 1)] += 1.0
        self.dropped[req] = 1
        self.end[req] = at
        self._leave_queue(at)
        _count(self.conc_steps, self.conc_inside, at, -1.0)

    # --------------------------------------------------------------------- policy ticks
    def tick(self, now: float, *, poke: bool) -> None:
        self._expire_queue(now)
        self._finalise_seconds(int(math.floor(now)))
        observation = self._observe(now, poke)
        self.last_observation = observation
        decision, self.state = self.policy.decide(observation, self.state)
        self._apply(decision, now)
        self.ticks.record(now, self.n_ready, self._pending(), decision)

    def _finalise_seconds(self, upto: int) -> None:
        """Fix the per-second series for every second before `upto` (all its events known)."""
        conc_steps, conc_inside = self.conc_steps, self.conc_inside
        queue_steps, queue_inside = self.queue_steps, self.queue_inside
        conc_level, queue_level = self.conc_level, self.queue_level
        upto = min(upto, self.concurrency_ps.shape[0])
        for second in range(self.seconds_done, upto):
            self.concurrency_ps[second] = conc_level + conc_inside[second]
            self.queue_ps[second] = queue_level + queue_inside[second]
            conc_level += conc_steps[second]
            queue_level += queue_steps[second]
        self.conc_level, self.queue_level = conc_level, queue_level
        self.seconds_done = max(self.seconds_done, upto)

    def _observe(self, now: float, poke: bool) -> Observation:
        visible = min(self.seconds_done, max(0, int(math.floor(now - self.config.metrics_delay_s))))
        first = max(0, visible - int(math.ceil(self.policy.history_s)))
        forecast, note = None, ""
        measured = self.measured_cold_start
        if self.forecasts is not None:
            forecast, note = self.forecasts.at(self.arrivals_ps[:visible], now)
            if forecast is not None:
                self._log_forecast(forecast, now, measured or self.config.cold_start_s)
        return Observation(
            now=now,
            concurrency=self.concurrency_ps[first:visible],
            arrivals=self.arrivals_ps[first:visible],
            queue=self.queue_ps[first:visible],
            ready=self.n_ready,
            pending=self._pending(),
            desired=self.desired,
            poke=poke,
            forecast=forecast,
            forecast_note=note,
            cold_start_s=measured,
            attainment=self.attainment(visible),
        )

    def attainment(self, visible: int) -> Attainment:
        """Requests judged in the attainment window before the newest visible second."""
        first = max(0, visible - int(ATTAINMENT_WINDOW_S))
        met = sum(self.met_ps[first:visible])
        return Attainment(met, max(met, sum(self.judged_ps[first:visible])), "simulator")

    def _log_forecast(self, forecast: Forecast, now: float, lead: float) -> None:
        """Keep, for plots, what the forecast said for the moment a replica requested now
        would be ready."""
        step = min(forecast.horizon_steps - 1, int(lead // forecast.step_s))
        if step >= 0:
            self.ticks.record_forecast(
                now + lead, float(forecast.quantile(0.5)[step]), float(forecast.quantile(0.9)[step])
            )

    def scale_up_need(self, within_s: float) -> ScaleUpNeed | None:
        """This service's forecast growth within `within_s`, if its policy sizes placeholders."""
        if self.sizer is None or self.last_observation is None:
            return None
        return self.sizer.scale_up_need(
            self.last_observation,
            self.state,
            current=self.desired,
            within_s=within_s,
            gpu_class=GPU_CLASS,
            gpus_per_replica=self.config.gpus_per_replica,
        )

    def _pending(self) -> int:
        return len(self.starting) + len(self.gpu_wait)

    def _apply(self, decision: Decision, now: float) -> None:
        current = self.n_ready + self._pending()
        if decision.desired > current:
            for _ in range(decision.desired - current):
                self._request_gpus(self._new_replica(now), now)
        elif decision.desired < current:
            self._scale_down(current - decision.desired, now)
        if decision.desired != self.desired:
            self.scale_events += now >= self.scored_from
            self.desired = decision.desired

    # ------------------------------------------------------------------ replica lifecycle
    def _new_replica(self, now: float) -> int:
        self.rep_requested.append(now)
        self.rep_granted.append(-1.0)
        self.rep_ready_at.append(INF)
        self.rep_gone.append(-1.0)
        self.rep_state.append(WAITING_GPU)
        self.rep_inflight.append(0)
        self.rep_busy_until.append(now)
        return len(self.rep_state) - 1

    def _request_gpus(self, rid: int, now: float) -> None:
        if self.cluster.request(self, rid, now):
            self._grant(rid, now)
        else:
            self.gpu_wait.append(rid)

    def still_waiting(self, rid: int) -> bool:
        return self.rep_state[rid] == WAITING_GPU

    def grant(self, rid: int, now: float) -> None:
        """The cluster gives a waiting replica its GPUs (see `cluster.Tenant`)."""
        self.gpu_wait.remove(rid)
        self._grant(rid, now)

    def _grant(self, rid: int, now: float, *, warm: bool = False) -> None:
        self.rep_granted[rid] = now
        self.rep_state[rid] = STARTING
        self.starting.add(rid)
        if warm:
            self._make_ready(rid, now)
            return
        self.cluster.push(now + self._draw_cold_start(), EV_READY, self, rid)

    def _draw_cold_start(self) -> float:
        sigma = self.config.cold_start_sigma
        z = min(3.0, max(-3.0, float(self.cold_rng.standard_normal())))
        return self.config.cold_start_s * math.exp(sigma * z)

    def _make_ready(self, rid: int, now: float) -> None:
        self._account_ready(now)
        self.starting.discard(rid)
        if self.rep_state[rid] == STARTING and now > self.rep_granted[rid]:
            self.cold_starts.append(now - self.rep_requested[rid])
            self.measured_cold_start = float(np.median(self.cold_starts))
        self.rep_state[rid] = READY
        self.rep_ready_at[rid] = now
        self.by_load[0].add(rid)
        self.free += self.m
        self.n_ready += 1
        if self.queue:
            self._dispatch_queue(now)

    def _scale_down(self, count: int, now: float) -> None:
        while count and self.gpu_wait:
            rid = self.gpu_wait.pop()
            self.rep_state[rid] = GONE
            self.rep_gone[rid] = now
            self.cluster.cancel()
            count -= 1
        for rid in sorted(self.starting, reverse=True)[:count]:
            self.starting.discard(rid)
            self.rep_state[rid] = GONE
            self.rep_gone[rid] = now
            self._release_gpus(now)
            count -= 1
        busy_until = self.rep_busy_until.__getitem__
        for load in range(self.m + 1):
            bucket = self.by_load[load]
            while count and bucket:
                rid = min(bucket, key=busy_until)  # of equals, the one free soonest
                bucket.remove(rid)
                self._drain(rid, load, now)
                count -= 1

    def _drain(self, rid: int, load: int, now: float) -> None:
        self._account_ready(now)
        self.rep_state[rid] = DRAINING
        self.free -= self.m - load
        self.n_ready -= 1
        gone = max(now, self.rep_busy_until[rid])
        self.rep_gone[rid] = gone
        self._release_gpus(gone)

    def _release_gpus(self, at: float) -> None:
        self.cluster.release(at)

    def on_ready(self, rid: int, at: float) -> None:
        """A cold start ended (a control event); the replica may have been scaled away."""
        if self.rep_state[rid] == STARTING:
            self._make_ready(rid, at)

    def _account_ready(self, now: float) -> None:
        """Integrate ready replicas over the scored window up to `now`."""
        since = max(self.ready_since, self.scored_from)
        if now > since:
            self.ready_area += self.n_ready * (now - since)
        self.ready_since = now
