"""Prometheus as the loop's `MetricsSource`: one batched query per signal per tick.

Each snapshot asks the signal set's queries at once (concurrently), every service in each
answer, and turns each service's instant values into the per-second samples the loop keeps:
the value stands for every whole second since the previous snapshot. Nothing that goes wrong
reaches the loop as an exception. Prometheus down or answering garbage → every service gets
`NoData("prometheus: …")`; a service missing from an answer, or whose newest sample is older
than `stale_after_s`, or NaN / infinite → `NoData` saying so. The loop then holds those
services at their scale, and they recover by themselves on the next good answer.
`history` pulls per-second arrivals in chunks of range queries, for forecasters' warm starts.

With the signals, the same snapshot asks one more batched query: every service's latency buckets
over the last `ATTAINMENT_WINDOW_S` (the signal set's TTFT histogram, else its request-latency
one), from which each chunk gets its `attainment` against the service's `slo_ttft`
(`attainment.py`). It is optional: when it fails, or a service's histogram is missing or garbled,
that chunk has `attainment=None` and `attainment_notes` says why (logged when it changes).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from adapters.prometheus import attainment
from adapters.prometheus.client import PrometheusClient, PrometheusError, Sample
from adapters.prometheus.fence import fill_template, narrowed
from adapters.prometheus.history import pull_rate_series
from adapters.prometheus.signals import SignalSet, signal_set
from autoscaler.config import PrometheusConfig
from autoscaler.errors import InputError
from autoscaler.ports import MetricsChunk, NoData, ServiceKey
from autoscaler.slo import ATTAINMENT_WINDOW_S, SLO_TTFT_DEFAULT_S, Attainment

log = logging.getLogger(__name__)

SloTtft = Callable[[ServiceKey], float] | Mapping[ServiceKey, float]
"""Each service's TTFT objective in seconds: a function of its key, or a mapping (a service not
in it has `SLO_TTFT_DEFAULT_S`)."""


class PrometheusSource:
    """A `MetricsSource` (and a `Catalog` of the services it sees) over one Prometheus."""

    def __init__(
        self,
        client: PrometheusClient,
        signals: SignalSet,
        *,
        rate_window_s: float = 30.0,
        stale_after_s: float = 60.0,
        service_query_budget_s: float = 2.0,
        slo_ttft_s: SloTtft | None = None,
        attainment_window_s: float = ATTAINMENT_WINDOW_S,
    ) -> None:
        self.client, self.signals = client, signals
        self.rate_window_s, self.stale_after_s = rate_window_s, stale_after_s
        self._next_second: dict[ServiceKey, int] = {}
        self.seen: set[ServiceKey] = set()
        """The services the answers named within `stale_after_s` (or with queries of their
        own): the ones a snapshot reports on."""
        self._named_at: dict[ServiceKey, float] = {}
        self.service_queries: dict[ServiceKey, dict[str, str]] = {}
        """Per-service PromQL templates replacing the shared ones (`arrivals`, `concurrency`,
        `queue`), for services with metrics of their own (an annotation's `leadtime.dev/query`).
        `{namespace}`, `{service}` and `{window}` are filled in; each is one more query per
        tick, so the batched signal sets stay the rule. They run beside the snapshot, never in
        it: a service's round has `service_query_budget_s`, and the snapshot uses the last
        answer each service has (a slow or failing query delays nobody else)."""
        self.service_query_budget_s = service_query_budget_s
        self._own_rounds: dict[ServiceKey, asyncio.Task] = {}
        self._own_answers: dict[ServiceKey, dict[str, Sample]] = {}
        self._own_problems: dict[ServiceKey, NoData] = {}
        self.slo_ttft_s: SloTtft | None = slo_ttft_s
        """Each service's TTFT objective (None: `SLO_TTFT_DEFAULT_S` for all); read every
        snapshot, so it may be set after construction."""
        self.attainment_window_s = attainment_window_s
        self.attainment_notes: dict[ServiceKey, str] = {}
        """Why a service's last chunk had no attainment (or what was odd in its histogram)."""

    def slo_of(self, key: ServiceKey) -> float:
        """The TTFT objective (seconds) `key`'s attainment is judged against."""
        slo = self.slo_ttft_s
        if slo is None:
            return SLO_TTFT_DEFAULT_S
        if isinstance(slo, Mapping):
            return float(slo.get(key, SLO_TTFT_DEFAULT_S))
        return float(slo(key))

    async def services(self) -> list[ServiceKey]:
        """The services the last answers named (a catalog for clusters without one)."""
        if not self.seen:
            await self.snapshot(time.time())
        return sorted(self.seen)

    async def snapshot(self, now: float) -> Mapping[ServiceKey, MetricsChunk | NoData]:
        queries = self.signals.render(self.rate_window_s)
        names = list(queries)
        histograms = self.signals.render_attainment(self.attainment_window_s)
        asked = [self.client.query(queries[name], at=now) for name in names]
        if histograms is not None:
            asked.append(self.client.query(histograms, at=now))
        answers = await asyncio.gather(*asked, return_exceptions=True)
        buckets = answers.pop() if histograms is not None else None
        extras = {name for name, _ in self.signals.extras}
        by_signal: dict[str, dict[ServiceKey, Sample]] = {}
        for name, answer in zip(names, answers, strict=True):
            if isinstance(answer, BaseException):
                if name in extras:  # optional: left out, the demand signals still count
                    continue
                if isinstance(answer, PrometheusError):
                    return dict.fromkeys(self.seen, NoData(f"prometheus: {answer}"))
                raise answer
            by_signal[name] = self._by_service(answer)
        problems = self._own_queries(by_signal, now)
        # the queue too: a revision at zero has only the activator's waiting requests
        named = set(by_signal["arrivals"]) | set(by_signal["concurrency"])
        self._remember(named | set(by_signal.get("queue", {})), now)
        served = self._attainments(buckets, [key for key in self.seen if key not in problems])
        return {
            key: problems[key] if key in problems else self._chunk(key, by_signal, now, served)
            for key in self.seen
        }

    def _attainments(
        self, answer: list[Sample] | BaseException | None, keys: list[ServiceKey]
    ) -> dict[ServiceKey, Attainment]:
        """The attainment of each of `keys` that has one; why not for the others (in
        `attainment_notes`, logged when a service's note changes)."""
        found: dict[ServiceKey, Attainment] = {}
        notes: dict[ServiceKey, str] = {}
        if answer is None:
            notes = dict.fromkeys(
                keys, f"signal set {self.signals.name} names no latency histogram"
            )
        elif isinstance(answer, BaseException):
            if not isinstance(answer, PrometheusError):
                raise answer
            notes = dict.fromkeys(keys, f"prometheus: {answer}")
        else:
            histograms, problems = attainment.group(answer, self.signals)
            for key in keys:
                if key in problems:
                    notes[key] = problems[key]
                    continue
                if key not in histograms:
                    names = " or ".join(h.metric for h in self.signals.latency_histograms)
                    notes[key] = f"no {names} series for this service"
                    continue
                try:
                    slo = self.slo_of(key)
                except Exception as error:  # a settings lookup is no reason to drop a chunk
                    notes[key] = f"no SLO for this service ({type(error).__name__}: {error})"
                    continue
                result = attainment.estimate(*histograms[key], slo)
                if isinstance(result, str):
                    notes[key] = result
                else:
                    found[key] = result
        changed = [(k, n) for k, n in notes.items() if self.attainment_notes.get(k) != n]
        self.attainment_notes = notes
        if changed:  # one line however many services changed
            shown = "; ".join(f"{key}: {note}" for key, note in changed[:3])
            more = f" (and {len(changed) - 3} more)" if len(changed) > 3 else ""
            log.info("no SLO attainment for %d service(s): %s%s", len(changed), shown, more)
        return found

    def _remember(self, named: set[ServiceKey], now: float) -> None:
        """Note who the answers named now, and forget who they have not named for longer than
        `stale_after_s` (a service that is gone; its absence was reported as stale until then)."""
        for key in named:
            self._named_at[key] = now
        gone = [k for k, at in self._named_at.items() if now - at > self.stale_after_s]
        for key in gone:
            del self._named_at[key]
            self._next_second.pop(key, None)
        self.seen = set(self._named_at) | set(self.service_queries)

    def _own_queries(
        self, by_signal: dict[str, dict[ServiceKey, Sample]], now: float
    ) -> dict[ServiceKey, NoData]:
        """Start a round of each service's own queries (one at a time per service) and put the
        last answers in place of the shared ones for that service (whatever labels they
        carry). Returns the services that have no answer to use."""
        for key in [k for k in self._own_rounds if k not in self.service_queries]:
            self._own_rounds.pop(key).cancel()
            self._own_answers.pop(key, None)
            self._own_problems.pop(key, None)
        for key, templates in self.service_queries.items():
            running = self._own_rounds.get(key)
            if running is None or running.done():
                round_ = self._own_round(key, dict(templates), now)
                self._own_rounds[key] = asyncio.create_task(round_, name=f"own-queries {key}")
        problems: dict[ServiceKey, NoData] = {}
        for key in self.service_queries:
            answers = self._own_answers.get(key)
            if answers is None:
                problems[key] = self._own_problems.get(key, NoData("its own queries are running"))
                continue
            for signal, sample in answers.items():  # the last answer; old ones go stale
                by_signal.setdefault(signal, {})[key] = sample
        return problems

    async def _own_round(self, key: ServiceKey, templates: dict[str, str], now: float) -> None:
        """One round of `key`'s own queries within the budget; the answers, or why none."""
        window = f"{max(1, round(self.rate_window_s))}s"
        signals = list(templates)
        try:
            async with asyncio.timeout(self.service_query_budget_s):
                answers = await asyncio.gather(
                    *(
                        self.client.query(
                            fill_template(templates[s], key.namespace, key.name, window), at=now
                        )
                        for s in signals
                    ),
                    return_exceptions=True,
                )
        except TimeoutError:
            budget = self.service_query_budget_s
            self._own_problems[key] = NoData(f"its own queries took over {budget:g}s")
            return
        result: dict[str, Sample] = {}
        for signal, answer in zip(signals, answers, strict=True):
            if isinstance(answer, BaseException):
                why = answer if isinstance(answer, PrometheusError) else type(answer).__name__
                self._own_problems[key] = NoData(f"prometheus ({signal} of {key}): {why}")
                return
            if len(answer) != 1:
                self._own_problems[key] = NoData(
                    f"its own {signal} query gave {len(answer)} series, not 1"
                )
                return
            result[signal] = answer[0]
        self._own_answers[key] = result
        self._own_problems.pop(key, None)

    async def close(self) -> None:
        """Cancel the services' own query rounds still running (then close the client)."""
        rounds = list(self._own_rounds.values())
        for round_ in rounds:
            round_.cancel()
        await asyncio.gather(*rounds, return_exceptions=True)
        self._own_rounds.clear()

    def _by_service(self, samples: list[Sample]) -> dict[ServiceKey, Sample]:
        out = {}
        for sample in samples:
            namespace = sample.labels.get(self.signals.namespace_label)
            name = sample.labels.get(self.signals.service_label)
            if namespace and name:
                out[ServiceKey(namespace, name)] = sample
        return out

    def _chunk(
        self,
        key: ServiceKey,
        by_signal: dict[str, dict[ServiceKey, Sample]],
        now: float,
        attainments: Mapping[ServiceKey, Attainment],
    ) -> MetricsChunk | NoData:
        values = {}
        for signal in ("arrivals", "concurrency", "queue"):
            sample = by_signal.get(signal, {}).get(key)
            if sample is None:
                if signal == "queue":
                    values[signal] = 0.0  # a service that queues nowhere visible
                    continue
                if signal == "arrivals" and key in by_signal.get("queue", {}):
                    # At zero no queue-proxy counts requests: the requests waiting at the
                    # activator are the whole signal (and poke the revision awake below).
                    values[signal] = 0.0
                    continue
                return NoData(f"no {signal} series for this service")
            if not math.isfinite(sample.value) or sample.value < 0:
                return NoData(f"{signal} is {sample.value} (not a finite count)")
            if now - sample.time > self.stale_after_s:
                return NoData(f"{signal} stale: newest sample {now - sample.time:.0f}s old")
            values[signal] = sample.value
        end = math.floor(now)
        start = self._next_second.get(key, end - 1)
        seconds = max(1, end - start)
        self._next_second[key] = start + seconds
        queue = min(values["queue"], values["concurrency"])
        extras = {
            name: by_signal[name][key].value
            for name, _ in self.signals.extras
            if key in by_signal.get(name, {}) and math.isfinite(by_signal[name][key].value)
        }
        return MetricsChunk(
            start,
            np.full(seconds, values["concurrency"]),
            np.full(seconds, values["arrivals"]),
            np.full(seconds, queue),
            # every request is waiting (at the activator) and none in service: the revision is
            # at zero and needs waking now, as the activator's poke does
            poke=queue > 0 and queue >= values["concurrency"],
            extras=extras or None,
            attainment=attainments.get(key),
        )

    async def history(self, key: ServiceKey, start: float, end: float) -> np.ndarray:
        """Per-second arrivals of one service over [start, end), in chunks of range queries;
        seconds Prometheus has nothing for are NaN (the forecasters treat them as missing)."""
        wanted = {self.signals.namespace_label: key.namespace, self.signals.service_label: key.name}
        promql = self.signals.render(self.rate_window_s)["arrivals"]
        # Prometheus answers for this service alone (the whole fleet's history, filtered here,
        # was 545 MB for one warm start among 300 series); the filter below stays for a query
        # that cannot be narrowed.
        promql = narrowed(promql, wanted) or promql
        return await pull_rate_series(
            self.client,
            promql,
            math.floor(start),
            math.floor(end),
            1.0,
            keep=lambda labels: all(labels.get(k) == v for k, v in wanted.items()),
        )


def source_from_config(settings: PrometheusConfig) -> PrometheusSource:
    """The source `leadtime run` uses for `prometheus:` in the configuration."""
    if settings.url is None:
        raise InputError("config prometheus.url: needed for the Prometheus metrics source")
    token = None
    if settings.token_file:
        try:
            token = Path(settings.token_file).read_text(encoding="utf-8").strip()
        except OSError as error:
            raise InputError(f"config prometheus.token_file: cannot read it ({error})") from None
    client = PrometheusClient(
        settings.url,
        timeout_s=settings.timeout_s,
        bearer_token=token or None,
        headers={"X-Scope-OrgID": settings.tenant} if settings.tenant else {},
        verify_tls=settings.verify_tls,
    )
    signals = (
        SignalSet(
            name="custom",
            arrivals=settings.query_arrivals or "",
            concurrency=settings.query_concurrency or "",
            queue=settings.query_queue,
            namespace_label=settings.namespace_label,
            service_label=settings.service_label,
        )
        if settings.signals == "custom"
        else signal_set(settings.signals)
    )
    return PrometheusSource(
        client,
        signals,
        rate_window_s=settings.rate_window_s,
        stale_after_s=settings.stale_after_s,
    )
