"""PromQL that a namespace owner wrote, held to that namespace; and our own queries narrowed to
one service.

Why: a revision's `leadtime.dev/query*` annotations are PromQL that Leadtime runs with its own
Prometheus credentials, and a revision's owner can read the answer back through the scale it
drives. So, as prom-label-proxy does for tenants, every series selector of such a query must
match the revision's own namespace, `<label>="<namespace>"`; a query with a selector that does
not is refused and never sent. The parse is `promql-parser`'s (Prometheus' grammar, in Rust).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import promql_parser

from autoscaler.errors import InputError

_PLAIN = re.compile(r"[A-Za-z0-9._:-]+")
"""Label values `narrowed` adds: Kubernetes names are of these characters."""
MAX_DEPTH = 64
"""Deepest nesting of brackets read: the parser recurses, and 10,000 nested parentheses
overflowed its stack (a crash of the whole process, not an error)."""


def fill_template(template: str, namespace: str, service: str, window: str) -> str:
    """A per-service PromQL template (`{namespace}`, `{service}`, `{window}`) filled in."""
    return (
        template.replace("{namespace}", namespace)
        .replace("{service}", service)
        .replace("{window}", window)
    )


def confined(promql: str, namespace_label: str, namespace: str) -> str:
    """`promql` itself, if every series selector in it matches `namespace_label="namespace"`
    exactly; else an InputError that names the first selector that does not."""
    wanted = f'{namespace_label}="{namespace}"'
    for selector in _selectors(_parse(promql)):
        if selector.matchers.or_matchers:
            raise InputError(f"selector {_short(selector)}: `or` between label matchers is refused")
        if not any(
            matcher.name == namespace_label
            and matcher.op == promql_parser.MatchOp.Equal
            and matcher.value == namespace
            for matcher in selector.matchers.matchers
        ):
            raise InputError(
                f"selector {_short(selector)} must match {wanted}: a revision's query reads "
                "only its own namespace"
            )
    return promql


def narrowed(promql: str, labels: Mapping[str, str]) -> str | None:
    """`promql` with every series selector also matching `labels` exactly (a matcher on the same
    label is replaced), so Prometheus answers for one service instead of all of them; None when
    a selector carries `offset` or `@`, which the rewrite would drop, or a value is not a plain
    name."""
    if not all(_PLAIN.fullmatch(value) for value in labels.values()):
        return None  # the parser prints values back unescaped
    expr = _parse(promql)
    if any(s.offset is not None or s.at is not None for s in _selectors(expr)):
        return None
    added = [f'{name}="{value}"' for name, value in labels.items()]

    def rewrite(node: promql_parser.Expr) -> promql_parser.Expr | None:
        if not isinstance(node, promql_parser.VectorSelector):
            return None
        kept = [str(m) for m in node.matchers.matchers if m.name not in labels]
        return promql_parser.parse(f"{node.name or ''}{{{','.join(kept + added)}}}")

    return str(promql_parser.transform(expr, pre_visit=rewrite))


def _parse(promql: str) -> promql_parser.Expr:
    depth = _depth(promql)
    if depth > MAX_DEPTH:
        raise InputError(f"nested {depth} levels deep; at most {MAX_DEPTH} are read")
    try:
        return promql_parser.parse(promql)
    except ValueError as error:
        raise InputError(f"not valid PromQL ({error})") from None


def _selectors(expr: promql_parser.Expr) -> list[promql_parser.VectorSelector]:
    found: list[promql_parser.VectorSelector] = []

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)

    promql_parser.walk(expr, pre_visit=visit)
    return found


def _depth(text: str) -> int:
    """The deepest nesting of (), [] and {} outside string literals, in one pass."""
    depth = deepest = 0
    quote: str | None = None
    escaped = False
    for char in text:
        if quote is not None:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = None
        elif char in "\"'`":
            quote = char
        elif char in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in ")]}":
            depth -= 1
    return deepest


def _short(selector: promql_parser.VectorSelector) -> str:
    text = str(selector)
    return text if len(text) <= 120 else text[:119] + "…"
