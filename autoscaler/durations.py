"""Durations as people write them: `90`, `90s`, `5m`, `2h`, `1d`, `1m30s`, `250ms`.

Internally every duration is a float number of seconds (docs/architecture.md §5).
"""

from __future__ import annotations

import math
import re

from autoscaler.errors import InputError

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h|d|w)")
ALLOWED = "a number of seconds (90, 1.5) or parts with units ms, s, m, h, d, w (90s, 5m, 1h30m, 1d)"


def parse_duration(value: str | float | int, *, field: str = "duration") -> float:
    """Return `value` in seconds; raise InputError naming `field` when it is not a duration.

    A bare number means seconds. Negative, NaN and infinite values are refused: no caller
    in Leadtime has a use for them, and accepting them would hide typos.
    """
    if isinstance(value, bool):
        raise InputError(f"{field}: expected {ALLOWED}, got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = str(value).strip().lower()
        seconds = _parse_text(text, field)
    if not math.isfinite(seconds) or seconds < 0:
        raise InputError(f"{field}: must be a finite, non-negative duration, got {value!r}")
    return seconds


def _parse_text(text: str, field: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    position, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if position == 0 or position != len(text):
        raise InputError(f"{field}: expected {ALLOWED}, got {text!r}")
    return total


def format_duration(seconds: float) -> str:
    """Short human form used in tables and logs (`60s`, `5m`, `2h`, `1d`)."""
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
