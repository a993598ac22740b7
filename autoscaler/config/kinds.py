"""The kinds of value a setting can hold — a duration in a range, an integer in a range, one of
some names — each knowing how to check a value, say what is allowed, describe itself as JSON
Schema and write a value back the way a person would.

Why kinds rather than plain types: the message a user sees names what is allowed ("a duration
in (0s, 10m] (30s, 5m, …)"), the same text the README's table prints and the same range the
chart's JSON Schema enforces; declaring the range once, on the kind, keeps the three equal. A
kind is pydantic metadata (`Annotated[float, Duration(...)]`): pydantic runs its `check` for
the field and asks it for its JSON Schema; the refusal carries the `allowed` text, which the
loader turns into today's one-line message.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic_core import PydanticCustomError, core_schema

from autoscaler.durations import format_duration, parse_duration
from autoscaler.errors import InputError
from autoscaler.sharding import DNS_LABEL, MAX_NAME, SUBDOMAIN, is_subdomain

REFUSED = "leadtime_refused"
"""The pydantic error type of a value a kind refused; its context holds `allowed`."""
JsonSchema = dict[str, Any]

_DNS_LABEL = re.compile(DNS_LABEL)
_DURATION_PATTERN = (
    r"^\s*([0-9]+(\.[0-9]*)?|\.[0-9]+)\s*$"
    r"|^\s*(([0-9]+(\.[0-9]*)?|\.[0-9]+)([mM][sS]|[sSmMhHdDwW]))+\s*$"
)


class Refused(Exception):
    """A value a kind does not accept; the loader says what is allowed. A list's kind names the
    item it refused and what an item may be (`Names`)."""

    def __init__(self, allowed: str | None = None, item: object = None) -> None:
        super().__init__(allowed)
        self.allowed = allowed
        self.item = item


@dataclass(frozen=True)
class Kind:
    """A setting's kind. Subclasses define `check`, `allowed` and `schema`."""

    text = False
    """From the environment, a non-string YAML scalar is kept as the variable's raw text (a
    token `0123` stays `0123`, a host `1.5` stays `1.5`)."""

    @property
    def allowed(self) -> str:
        raise NotImplementedError

    def check(self, value: Any) -> Any:
        raise NotImplementedError

    def schema(self) -> JsonSchema:
        raise NotImplementedError

    def dump(self, value: Any) -> Any:
        """The value as YAML should show it (`leadtime config show`)."""
        return value

    def explain(self, refusal: Refused, value: Any) -> tuple[str, Any]:
        """What is allowed and the value refused: the whole value, or the item of it that
        `check` named."""
        if refusal.allowed is None:
            return self.allowed, value
        return refusal.allowed, refusal.item

    def validate(self, value: Any) -> Any:
        """`check`, its refusal as the pydantic error the loader words."""
        try:
            return self.check(value)
        except Refused as refusal:
            allowed, refused = self.explain(refusal, value)
            raise PydanticCustomError(
                REFUSED, "expected {allowed}", {"allowed": allowed, "refused": refused}
            ) from None

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(self.validate)

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchema:
        return self.schema()


def _bounds(low: float, high: float | None, low_open: bool, high_open: bool) -> JsonSchema:
    bounds: JsonSchema = {"exclusiveMinimum" if low_open else "minimum": low}
    if high is not None:
        bounds["exclusiveMaximum" if high_open else "maximum"] = high
    return bounds


def _interval(
    low: float,
    high: float | None,
    low_open: bool,
    high_open: bool,
    show: Callable[[float], str] = "{:g}".format,
) -> str:
    if high is None:
        return f"> {show(low)}" if low_open else f">= {show(low)}"
    return f"in {'(' if low_open else '['}{show(low)}, {show(high)}{')' if high_open else ']'}"


def _inside(x: float, low: float, high: float | None, low_open: bool, high_open: bool) -> bool:
    above = x > low if low_open else x >= low
    below = high is None or (x < high if high_open else x <= high)
    return math.isfinite(x) and above and below


@dataclass(frozen=True)
class Integer(Kind):
    low: int
    high: int | None = None
    note: str = ""

    @property
    def allowed(self) -> str:
        span = f"in {self.low}..{self.high}" if self.high is not None else f">= {self.low}"
        return f"an integer {span}{self.note}"

    def check(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Refused
        if value < self.low or (self.high is not None and value > self.high):
            raise Refused
        return value

    def schema(self) -> JsonSchema:
        return {"type": "integer", **_bounds(self.low, self.high, False, False)}


@dataclass(frozen=True)
class Number(Kind):
    low: float
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    note: str = ""

    @property
    def allowed(self) -> str:
        span = _interval(self.low, self.high, self.low_open, self.high_open)
        return f"a number {span}{self.note}"

    def check(self, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Refused
        try:
            number = float(value)
        except OverflowError:
            raise Refused from None
        if not _inside(number, self.low, self.high, self.low_open, self.high_open):
            raise Refused
        return number

    def schema(self) -> JsonSchema:
        return {"type": "number", **_bounds(self.low, self.high, self.low_open, self.high_open)}


@dataclass(frozen=True)
class Duration(Kind):
    """Seconds, written `30s`, `5m`, `1h30m`, `250ms` or as a number; kept as float seconds."""

    low: float = 0.0
    high: float | None = None
    low_open: bool = False
    whole: bool = False

    @property
    def allowed(self) -> str:
        span = _interval(self.low, self.high, self.low_open, False, format_duration)
        unit = ", whole seconds" if self.whole else ""
        return f"a duration {span}{unit} (30s, 5m, 1h, 1h30m or a number of seconds)"

    def check(self, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise Refused
        try:
            seconds = parse_duration(value)
        except (InputError, OverflowError):
            raise Refused from None
        if not _inside(seconds, self.low, self.high, self.low_open, False):
            raise Refused
        if self.whole and seconds % 1:
            raise Refused
        return seconds

    def schema(self) -> JsonSchema:
        number = {"type": "number", **_bounds(self.low, self.high, self.low_open, False)}
        return {"anyOf": [number, {"type": "string", "pattern": _DURATION_PATTERN}]}

    def dump(self, value: Any) -> Any:
        """`60s`, `1h`…, or the plain number when the short form would round it."""
        text = format_duration(value)
        return text if parse_duration(text) == value else value


@dataclass(frozen=True)
class OneOf(Kind):
    """One of some names. `choices` is read when a value is checked: a function (the
    forecasting models, listed only then) or a sequence that may still grow (the workloads the
    simulator registers)."""

    choices: Sequence[str] | Callable[[], Sequence[str]]
    text = True

    def names(self) -> Sequence[str]:
        return self.choices() if callable(self.choices) else self.choices

    @property
    def allowed(self) -> str:
        return f"one of {', '.join(map(repr, self.names()))}"

    def check(self, value: Any) -> str:
        if not isinstance(value, str) or value not in self.names():
            raise Refused
        return value

    def schema(self) -> JsonSchema:
        names = list(self.names())
        if not names:  # registered names (the simulator's workloads) not registered yet
            raise RuntimeError("a schema of names asked for before any was registered")
        return {"enum": names}


@dataclass(frozen=True)
class Text(Kind):
    """A non-empty printable string without spaces: a host, a path, a class name."""

    what: str = "a non-empty string without spaces"
    text = True

    @property
    def allowed(self) -> str:
        return self.what

    def check(self, value: Any) -> str:
        if not isinstance(value, str) or not value or any(c.isspace() for c in value):
            raise Refused
        if not value.isprintable():
            raise Refused
        return value

    def schema(self) -> JsonSchema:
        return {"type": "string", "pattern": r"^\S+$"}


@dataclass(frozen=True)
class PromQL(Kind):
    text = True

    @property
    def allowed(self) -> str:
        return "a PromQL expression (a non-empty string)"

    def check(self, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise Refused
        return value.strip()

    def schema(self) -> JsonSchema:
        return {"type": "string", "pattern": r"\S"}


@dataclass(frozen=True)
class Boolean(Kind):
    @property
    def allowed(self) -> str:
        return "true or false"

    def check(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise Refused
        return value

    def schema(self) -> JsonSchema:
        return {"type": "boolean"}


@dataclass(frozen=True)
class Url(Kind):
    text = True

    @property
    def allowed(self) -> str:
        return "an http(s) URL such as http://prometheus:9090, or null (embedded simulator)"

    def check(self, value: Any) -> str:
        if not isinstance(value, str) or any(c.isspace() for c in value):
            raise Refused
        try:
            parts = urlsplit(value)
            valid = parts.scheme in ("http", "https") and bool(parts.hostname)
            _ = parts.port  # raises ValueError when the port is not a number in range
        except ValueError:
            valid = False
        if not valid:
            raise Refused
        return value

    def schema(self) -> JsonSchema:
        return {"type": "string", "pattern": r"^https?://\S+$"}


@dataclass(frozen=True)
class Label(Kind):
    """A DNS-1123 label (a namespace, a Lease name prefix)."""

    longest: int = 63
    text = True

    @property
    def allowed(self) -> str:
        return (
            f"a DNS-1123 label of at most {self.longest} characters (lowercase letters, digits "
            "and '-', starting and ending with a letter or digit)"
        )

    def check(self, value: Any) -> str:
        if not isinstance(value, str) or len(value) > self.longest:
            raise Refused
        if not _DNS_LABEL.fullmatch(value):
            raise Refused
        return value

    def schema(self) -> JsonSchema:
        return {"type": "string", "maxLength": self.longest, "pattern": f"^{DNS_LABEL}$"}


@dataclass(frozen=True)
class Subdomain(Kind):
    """A DNS-1123 subdomain (a Lease holder identity)."""

    text = True

    @property
    def allowed(self) -> str:
        return (
            "a DNS-1123 subdomain (lowercase letters, digits, '-' and '.', starting and "
            f"ending with a letter or digit, at most {MAX_NAME} characters)"
        )

    def check(self, value: Any) -> str:
        if not isinstance(value, str) or not is_subdomain(value):
            raise Refused
        return value

    def schema(self) -> JsonSchema:
        return {"type": "string", "maxLength": MAX_NAME, "pattern": f"^{SUBDOMAIN}$"}


@dataclass(frozen=True)
class Optional(Kind):
    """`inner`, or null; `inner`'s text says what null means."""

    inner: Kind

    @property
    def text(self) -> bool:  # type: ignore[override]
        return self.inner.text

    @property
    def allowed(self) -> str:
        return self.inner.allowed

    def check(self, value: Any) -> Any:
        return None if value is None else self.inner.check(value)

    def schema(self) -> JsonSchema:
        return {"anyOf": [self.inner.schema(), {"type": "null"}]}

    def dump(self, value: Any) -> Any:
        return None if value is None else self.inner.dump(value)


@dataclass(frozen=True)
class Names(Kind):
    """A list of names: in YAML a list, in the environment comma-separated."""

    item: Kind
    what: str
    text = True

    @property
    def allowed(self) -> str:
        return self.what

    def check(self, value: Any) -> tuple[str, ...]:
        if value is None:
            return ()
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, (list, tuple)):
            raise Refused
        return tuple(self._item(name) for name in value)

    def _item(self, name: Any) -> str:
        try:
            return str(self.item.check(name))
        except Refused:
            raise Refused(self.item.allowed, name) from None

    def schema(self) -> JsonSchema:
        listed = {"type": "array", "items": self.item.schema()}
        return {"anyOf": [listed, {"type": "string"}, {"type": "null"}]}

    def dump(self, value: Any) -> Any:
        return list(value)
