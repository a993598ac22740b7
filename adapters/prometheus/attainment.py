"""A service's SLO attainment from a latency histogram's buckets (pure: samples in, an
`Attainment` or the reason there is none out).

The objective is a time to first token `slo_ttft` (seconds); a histogram only knows how many
requests fell at or below each of its bucket edges `le`, and the objective rarely falls on one.
So a request counts as met only when it is in a bucket whose edge is at or below the SLO (the
largest such edge): the share is a lower bound of the true one, and `Attainment.source` names the
histogram and the edge, e.g. `vllm:time_to_first_token_seconds le=1 (SLO 2s)`. When that edge is
under half the SLO the bound is loose, and the source says so; with no edge at or below the SLO
there is no estimate. The total is the `+Inf` bucket.

What Prometheus answers is checked here: an `le` that is not a number, a NaN, infinite or
negative count, or no `+Inf` bucket leaves the service without attainment, with the reason. A
bucket counting more requests than `+Inf` (each bucket series' `increase` is extrapolated on its
own, and a reset hits them apart) is clamped to the total; by more than `CLAMP_SLACK` requests
the source says so.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from adapters.prometheus.client import Sample
from adapters.prometheus.signals import HISTOGRAM_LABEL, LatencyHistogram, SignalSet
from autoscaler.ports import ServiceKey
from autoscaler.slo import Attainment

FAR_BELOW_SHARE = 0.5
"""An edge under this share of the SLO makes a loose lower bound (said in the source)."""
CLAMP_SLACK = 0.5
"""Requests a bucket may count over the total before the source says it was clamped (less is
`increase`'s extrapolation, not a reset)."""

Buckets = dict[float, float]
"""Requests in the window at or below each edge (in the histogram's unit; `inf` for +Inf)."""


def group(
    samples: Iterable[Sample], signals: SignalSet
) -> tuple[dict[ServiceKey, tuple[LatencyHistogram, Buckets]], dict[ServiceKey, str]]:
    """The attainment query's answer by service: each service's histogram and its buckets, and
    for the services whose answer is unusable, why. Buckets whose `le` is written differently
    but means the same edge (`1` and `1.0` from two pods) are added up."""
    found: dict[ServiceKey, tuple[LatencyHistogram, Buckets]] = {}
    problems: dict[ServiceKey, str] = {}
    for sample in samples:
        namespace = sample.labels.get(signals.namespace_label)
        name = sample.labels.get(signals.service_label)
        if not (namespace and name):
            continue
        key = ServiceKey(namespace, name)
        if key in problems:
            continue
        histogram = signals.histogram(sample.labels.get(HISTOGRAM_LABEL, ""))
        if histogram is None:
            problems[key] = (
                f"answer from an unknown histogram {sample.labels.get(HISTOGRAM_LABEL)!r}"
            )
            continue
        if key in found and found[key][0] != histogram:  # `or on` keeps one; never mix two
            continue
        why = _refused(sample)
        if why:
            problems[key] = f"{histogram.metric}: {why}"
            found.pop(key, None)
            continue
        buckets = found.setdefault(key, (histogram, {}))[1]
        edge = float(sample.labels["le"])
        buckets[edge] = buckets.get(edge, 0.0) + sample.value
    return found, problems


def _refused(sample: Sample) -> str | None:
    """Why a bucket sample cannot be counted, or None."""
    le = sample.labels.get("le")
    try:
        edge = float(le) if le is not None else math.nan
    except ValueError:
        edge = math.nan
    if math.isnan(edge) or edge == -math.inf:
        return f"bucket edge le={le!r} is not a number"
    if not math.isfinite(sample.value) or sample.value < 0:
        return f"bucket le={le} counts {sample.value} (not a finite count)"
    return None


def estimate(
    histogram: LatencyHistogram, buckets: Mapping[float, float], slo_ttft_s: float
) -> Attainment | str:
    """Requests at or below the SLO's nearest edge out of all (a lower bound), or why none."""
    if not (math.isfinite(slo_ttft_s) and slo_ttft_s > 0):
        return f"SLO {slo_ttft_s} s is not a positive duration"
    total = buckets.get(math.inf)
    if total is None:
        return f"{histogram.metric}: no +Inf bucket (not a histogram?)"
    slack = 1e-9 * slo_ttft_s  # 2000 ms is 2 s, whatever the float rounding
    below = [e for e in buckets if math.isfinite(e) and e * histogram.unit_s <= slo_ttft_s + slack]
    if not below:
        lowest = min((e for e in buckets if math.isfinite(e)), default=None)
        edges = (
            f"its lowest edge is {lowest:g}{histogram.unit}" if lowest is not None else "no edges"
        )
        return f"{histogram.metric}: no bucket edge at or below the SLO {slo_ttft_s:g}s ({edges})"
    edge = max(below)
    met = buckets[edge]
    notes = [] if histogram.ttft else ["whole-request latency, at least the TTFT: a lower bound"]
    if edge * histogram.unit_s < FAR_BELOW_SHARE * slo_ttft_s:
        notes.append("nearest edge under half the SLO: a loose lower bound")
    if met > total:
        if met - total > CLAMP_SLACK:
            notes.append(f"le bucket {met - total:.1f} over +Inf, clamped")
        met = total
    unit = "" if histogram.unit_s == 1.0 else histogram.unit
    detail = "".join(f"; {note}" for note in notes)
    source = f"{histogram.metric} le={edge:g}{unit} (SLO {slo_ttft_s:g}s{detail})"
    return Attainment(met, total, source)
