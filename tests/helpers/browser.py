"""A tiny headless-Chromium harness for the status page tests.

Runs Debian's `chromium` once per call with `--dump-dom` (or `--screenshot`) under a virtual-time
budget: timers and the page's fetch polling run on virtual time, which waits for pending network
requests, so a budget of 8 s sees about four polls in a second or two of wall time. (`--timeout`
does not help here: it dumps the DOM as soon as the load event fires, before any fetch returns.)

Console messages are read from Chromium's stderr lines `...:INFO:CONSOLE:<line>] "<message>",
source: <url> (<line>)`. Chromium logs every console message of a web page at INFO, whatever
its level, so `console.error` cannot be told from `console.log` there: `errors` holds what can be
recognised as an error (uncaught exceptions and rejections, blocked or failed loads); the page
logs nothing at all when things go as expected, so tests should also expect `console` empty.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

_CANDIDATES = ("chromium", "chromium-browser")
_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--no-first-run",
    "--enable-logging=stderr",
    "--v=0",
)
_CONSOLE = re.compile(r':CONSOLE[:(]\d*\)?\] "(?P<msg>.*)", source: (?P<src>.*?)(?: \(\d+\))?$')
_ERROR_MARKERS = (
    "Uncaught",
    "Failed to load resource",
    "blocked by CORS policy",
    "Refused to ",
    "net::ERR_",
)


@dataclass(frozen=True)
class Rendered:
    """What a page looked like after its time budget: the serialised DOM and its console."""

    dom: str
    console: list[str]
    errors: list[str]


def chromium() -> str:
    """The path of the Chromium binary; a clear error (never a skip) when it is not installed."""
    for name in _CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    raise RuntimeError(
        "headless Chromium not found (looked for: "
        + ", ".join(_CANDIDATES)
        + "); install it with `apt-get install chromium`"
    )


def _run(url: str, extra: list[str], budget_ms: int) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="leadtime-chromium-") as profile:
        cmd = [
            chromium(),
            *_FLAGS,
            f"--user-data-dir={profile}",
            f"--virtual-time-budget={budget_ms}",
            *extra,
            url,
        ]
        # Virtual time runs far faster than the budget; the wall-clock limit only catches hangs.
        timeout_s = 30 + budget_ms / 1000
        try:
            proc = subprocess.run(
                cmd,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=timeout_s,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except subprocess.TimeoutExpired as e:
            raise RuntimeError(f"chromium did not finish within {timeout_s:.0f} s on {url}") from e
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.splitlines()[-20:])
        raise RuntimeError(f"chromium exited with {proc.returncode} on {url}:\n{tail}")
    return proc


def console_messages(stderr: str) -> tuple[list[str], list[str]]:
    """(all console messages, those that are errors) from Chromium's stderr log."""
    console: list[str] = []
    errors: list[str] = []
    for line in stderr.splitlines():
        m = _CONSOLE.search(line)
        if not m:
            continue
        text = f"{m['msg']} ({m['src']})"
        console.append(text)
        if any(marker in m["msg"] for marker in _ERROR_MARKERS):
            errors.append(text)
    return console, errors


def render(url: str, *, budget_ms: int = 8000) -> Rendered:
    """Load `url`, let it run for `budget_ms` of virtual time, and return its DOM and console."""
    proc = _run(url, ["--dump-dom"], budget_ms)
    console, errors = console_messages(proc.stderr)
    return Rendered(dom=proc.stdout, console=console, errors=errors)


def screenshot(url: str, path: str | Path, *, budget_ms: int = 8000) -> Path:
    """Save a 1200×900 PNG of `url` after `budget_ms` of virtual time; returns the path."""
    out = Path(path).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    _run(url, [f"--screenshot={out}", "--window-size=1200,900"], budget_ms)
    if not out.is_file():
        raise RuntimeError(f"chromium wrote no screenshot to {out}")
    return out
