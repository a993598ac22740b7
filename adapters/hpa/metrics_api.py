"""The `external.metrics.k8s.io/v1beta1` API as plain data: discovery, metric values, label
selectors and Status errors, in the shapes the HPA controller and the aggregation layer expect
(as KEDA's metrics server and the Kubernetes `metrics` library serve them).

An HPA with an `External` metric names a metric and a label selector; the HPA controller asks
`GET /apis/external.metrics.k8s.io/v1beta1/namespaces/<ns>/<metric>?labelSelector=...` and
sums the values it gets (`Value` target) or divides them by the current replicas
(`AverageValue`). Leadtime's metrics carry the labels `service` (the Leadtime service's name)
and `namespace`, so `selector: {matchLabels: {service: chat}}` picks one service.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

GROUP, VERSION = "external.metrics.k8s.io", "v1beta1"
GROUP_VERSION = f"{GROUP}/{VERSION}"
DESIRED_REPLICAS = "leadtime_desired_replicas"
FORECAST_LOAD = "leadtime_forecast_load"
METRICS = (DESIRED_REPLICAS, FORECAST_LOAD)
"""desired replicas: Leadtime's decision (an HPA on it with `Value` target 1 per replica
follows it); forecast load: the forecast arrivals per second one lead time ahead."""


@dataclass(frozen=True)
class Sample:
    metric: str
    labels: Mapping[str, str]
    value: float
    timestamp: str


class SelectorError(ValueError):
    """A label selector this API cannot read (the message says what is allowed)."""


MAX_SELECTOR_CHARS = 1024
"""Longest label selector read: an HPA's selector names a service in a few dozen characters."""
_TERM = re.compile(r"^\s*([A-Za-z0-9._/-]+)\s*(==|=|!=)\s*([A-Za-z0-9._-]*)\s*$")
_SET = re.compile(r"^\s*([A-Za-z0-9._/-]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")
_EXISTS = re.compile(r"^\s*(!?)([A-Za-z0-9._/-]+)\s*$")


def parse_selector(text: str) -> list[tuple[str, str, frozenset[str]]]:
    """`a=b,c!=d,e in (f,g),h,!i` → [(key, op, values)] with op in =, !=, in, notin, exists,
    !exists — the Kubernetes label selector syntax the HPA controller sends. Longer than
    `MAX_SELECTOR_CHARS` is refused before anything reads it."""
    if len(text) > MAX_SELECTOR_CHARS:
        raise SelectorError(
            f"labelSelector: {len(text):,} characters; at most {MAX_SELECTOR_CHARS:,} are read"
        )
    terms = []
    for part in _split(text):
        if match := _SET.match(part):
            values = frozenset(v.strip() for v in match[3].split(",") if v.strip())
            terms.append((match[1], match[2], values))
        elif match := _TERM.match(part):
            terms.append((match[1], "!=" if match[2] == "!=" else "=", frozenset([match[3]])))
        elif match := _EXISTS.match(part):
            terms.append((match[2], "!exists" if match[1] else "exists", frozenset()))
        else:
            raise SelectorError(
                f"labelSelector: cannot read {part!r} (allowed: key=value, "
                "key!=value, key in (a,b), key notin (a,b), key, !key)"
            )
    return terms


def _split(text: str) -> list[str]:
    """Split on commas outside parentheses."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    if current.strip():
        parts.append(current)
    return [p for p in parts if p.strip()]


def matches(terms: Iterable[tuple[str, str, frozenset[str]]], labels: Mapping[str, str]) -> bool:
    for key, op, values in terms:
        present = key in labels
        if op == "=" and labels.get(key) not in values:
            return False
        if op == "!=" and present and labels[key] in values:
            return False
        if op == "in" and labels.get(key) not in values:
            return False
        if op == "notin" and present and labels[key] in values:
            return False
        if op == "exists" and not present:
            return False
        if op == "!exists" and present:
            return False
    return True


def quantity(value: float) -> str:
    """A Kubernetes quantity: whole numbers plainly, others in thousandths (`1500m`)."""
    if not math.isfinite(value):
        raise ValueError(f"not a quantity: {value}")
    if float(value).is_integer():
        return str(int(value))
    return f"{round(value * 1000)}m"


def discovery() -> dict:
    """The APIResourceList the aggregation layer and `kubectl api-resources` read."""
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": GROUP_VERSION,
        "resources": [
            {
                "name": name,
                "singularName": "",
                "namespaced": True,
                "kind": "ExternalMetricValueList",
                "verbs": ["get"],
            }
            for name in METRICS
        ],
    }


def value_list(samples: Iterable[Sample]) -> dict:
    return {
        "kind": "ExternalMetricValueList",
        "apiVersion": GROUP_VERSION,
        "metadata": {},
        "items": [
            {
                "metricName": s.metric,
                "metricLabels": dict(s.labels),
                "timestamp": s.timestamp,
                "value": quantity(s.value),
            }
            for s in samples
        ],
    }


def status(code: int, reason: str, message: str) -> dict:
    """A `Status` object, as every Kubernetes API answers errors."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
