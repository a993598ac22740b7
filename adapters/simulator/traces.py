"""Read real request traces into a `Workload`, whatever their format and compression.

Why detection by content: traces travel renamed, recompressed and re-archived (the NASA file is a
`.tbz2` holding `workload.txt`), so the bytes say more reliably than the name what a file is.

Accepted (each optionally gzip- or bzip2-compressed, and/or inside a tar holding one file):

1. Azure LLM inference CSV: header `TIMESTAMP,ContextTokens,GeneratedTokens`, one request a row.
2. Mooncake-style JSON Lines: `{"timestamp": <ms>, "input_length": n, "output_length": n, ...}`.
3. CSV of per-interval counts: a header, one datetime column (ISO 8601 or epoch seconds) and one
   count column.
4. Whitespace-separated per-second counts (the NASA-HTTP 1995 derived file).

Request traces (1, 2) become a `Workload`. Count traces (3, 4) are read as a stream, block by
block, into a `CountSeries`: a window and a rate scale apply to the counts, and only then are
arrivals drawn (uniformly inside each interval, seeded), so a trace of a billion requests costs
what the part of it that is wanted costs.

Every problem is one `InputError` naming the file, the 1-based line (header included) and what
is wrong, because a trace is user input.
"""

from __future__ import annotations

import bz2
import codecs
import contextlib
import csv
import gzip
import io
import itertools
import json
import math
import os
import re
import tarfile
import warnings
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, NoReturn, Protocol, cast

import numpy as np

from adapters.simulator.counts import CountSeries
from adapters.simulator.workload import Workload
from autoscaler.errors import InputError

ACCEPTED = (
    "Azure LLM inference CSV (header TIMESTAMP,ContextTokens,GeneratedTokens); "
    "JSON Lines with timestamp (ms), input_length, output_length (Mooncake); "
    "CSV of per-interval counts (a header, a datetime column and a count column); "
    "whitespace-separated per-second counts; "
    "each optionally gzip/bzip2-compressed or inside a tar holding one file"
)
AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
JSONL_KEYS = ("timestamp", "input_length", "output_length")
TIME_NAMES = frozenset(
    {"time", "timestamp", "date", "datetime", "ts", "interval", "start", "period"}
)
COUNT_NAMES = frozenset(
    {"count", "counts", "requests", "request", "value", "n", "rate", "num", "arrivals", "hits"}
)
_EXTENSIONS = frozenset(
    {".gz", ".bz2", ".tgz", ".tbz", ".tbz2", ".tar", ".csv", ".jsonl", ".ndjson", ".json", ".txt"}
)
_NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
_COUNT_TOKEN = re.compile(r"\+?[0-9]+")
MAX_INTERVALS = 50_000_000
"""Count traces may span at most this many intervals (400 MB of counts); how many arrivals may
be drawn from them is `counts.MAX_ARRIVALS`, after the window and the rate scale."""
_BLOCK = 1 << 22
"""Bytes read at a time from a count trace (4 MiB)."""
_ROWS_PER_BLOCK = 1 << 16
"""CSV rows of a count trace parsed at a time."""
_NS_FIRST = np.datetime64("1677-09-22", "us")
_NS_END = np.datetime64("2262-04-11", "us")
"""Datetimes numpy holds in int64 nanoseconds (a little inside the exact limits)."""
_MAX_MS = 1e15
"""JSON Lines timestamps beyond ±this many milliseconds are refused: their differences would
overflow a float, and no trace spans 31,700 years."""
_TINY_SPAN = 1e-6
"""Duration of a request trace whose arrivals all share one instant: positive, never zero."""


@dataclass(frozen=True)
class _Arrivals:
    """What a request-trace parser yields: the Workload fields that depend on the format."""

    times: np.ndarray
    duration: float
    prompt_tokens: np.ndarray | None = None
    output_tokens: np.ndarray | None = None


def read_trace(path: str | os.PathLike, *, name: str | None = None) -> Workload | CountSeries:
    """A trace file of any accepted format (see the module docstring): a Workload of its
    requests, or, for a trace of counts, a CountSeries to window and scale before any arrival
    is drawn. Count traces are parsed as a stream, a block of rows at a time."""
    file = os.fspath(path)
    name = name or base_name(file)
    with _opened(file) as (stream, label):
        fmt = _detect(_head(stream, label), label)
        stream.seek(0)
        if fmt in _COUNT_PARSERS:
            counts, interval, meta = _COUNT_PARSERS[fmt](stream, label, file)
            meta = {"format": fmt, "interval": interval, **meta}
            return CountSeries.whole(name, counts, interval, source=file, meta=meta)
        arrivals = _REQUEST_PARSERS[fmt](_decode(stream.read(), label), label)
    return Workload(
        name=name,
        times=arrivals.times,
        duration=arrivals.duration,
        prompt_tokens=arrivals.prompt_tokens,
        output_tokens=arrivals.output_tokens,
        source=file,
        meta={"format": fmt},
    )


def load_trace(path: str | os.PathLike, *, seed: int = 0, name: str | None = None) -> Workload:
    """The whole trace as arrivals. `seed` drives the uniform placement of arrivals for count
    traces; request traces are read exactly. `name` defaults to the file's base name without
    its extensions."""
    trace = read_trace(path, name=name)
    return trace.arrivals(seed) if isinstance(trace, CountSeries) else trace


def base_name(file: str) -> str:
    """`dir/trace.csv.gz` -> `trace`: the file name without the extensions we understand."""
    path = Path(file)
    while path.suffix.lower() in _EXTENSIONS:
        path = path.with_suffix("")
    return path.name or Path(file).name


# --- bytes: reading, decompression, archives, all as streams -------------------------------


@contextlib.contextmanager
def _opened(file: str) -> Iterator[tuple[IO[bytes], str]]:
    """The file's bytes as a seekable stream, decompressed and taken out of a one-file tar on
    the fly, with the label that names it in messages (`file` or `file:member`). Corrupt
    compressed data found while reading, anywhere in the body, becomes an InputError."""
    kinds: list[str] = []
    label = file
    try:
        with contextlib.ExitStack() as stack:
            stream = stack.enter_context(_open_file(file))
            stream = _decompressing(stack, stream, kinds)
            head = stream.read(512)
            stream.seek(0)
            if len(head) >= 262 and head[257:262] == b"ustar":
                member, stream = _single_member(stack, stream, file)
                label = f"{file}:{member}"
                stream = _decompressing(stack, stream, kinds)
            yield stream, label
    except (OSError, EOFError, zlib.error, tarfile.TarError) as exc:
        kind = kinds[-1] if kinds else "tar"
        raise InputError(f"{label}: corrupt {kind} data ({exc})") from None


def _open_file(file: str) -> IO[bytes]:
    try:
        return open(file, "rb")
    except FileNotFoundError:
        raise InputError(f"trace file {file!r} does not exist") from None
    except IsADirectoryError:
        raise InputError(f"trace file {file!r} is a directory, not a file") from None
    except OSError as exc:
        raise InputError(f"trace file {file!r} cannot be read: {exc.strerror}") from None


def _decompressing(stack: contextlib.ExitStack, stream: IO[bytes], kinds: list[str]) -> IO[bytes]:
    """`stream`, or a decompressing reader over it (closed with `stack`) when it starts with
    gzip or bzip2 magic."""
    magic = stream.read(3)
    stream.seek(0)
    if magic[:2] == b"\x1f\x8b":
        kinds.append("gzip")
        opened = cast(IO[bytes], gzip.GzipFile(fileobj=stream, mode="rb"))
    elif magic == b"BZh":
        kinds.append("bzip2")
        opened = cast(IO[bytes], bz2.BZ2File(stream, mode="rb"))
    else:
        return stream
    stack.callback(opened.close)
    return opened


def _single_member(
    stack: contextlib.ExitStack, stream: IO[bytes], file: str
) -> tuple[str, IO[bytes]]:
    archive = stack.enter_context(tarfile.open(fileobj=stream, mode="r:"))
    files = [m for m in archive.getmembers() if m.isfile()]
    if len(files) != 1:
        names = ", ".join(m.name for m in files) or "none"
        raise InputError(
            f"{file}: a tar archive must hold exactly one regular file, "
            f"found {len(files)} ({names})"
        )
    reader = archive.extractfile(files[0])
    assert reader is not None  # regular files always have a reader
    return files[0].name, reader


def _decode(data: bytes, label: str, first_line: int = 1, encoding: str = "utf-8-sig") -> str:
    """`data` as text; a byte that is not UTF-8 is an error naming its line (counted from
    `first_line`, for a block taken from the middle of a file)."""
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = first_line + data[: exc.start].count(b"\n")
        raise InputError(
            f"{label} line {line}: not UTF-8 text; accepted formats: {ACCEPTED}"
        ) from None


def _head(stream: IO[bytes], label: str) -> str:
    """The start of the text, up to 1024 characters past its first non-blank one (what format
    detection reads), without reading a large file whole."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    text, lines = "", 1
    while True:
        block = stream.read(_BLOCK)
        try:
            text += decoder.decode(block, final=not block)
        except UnicodeDecodeError as exc:
            line = lines + text.count("\n") + block[: max(exc.start, 0)].count(b"\n")
            raise InputError(
                f"{label} line {line}: not UTF-8 text; accepted formats: {ACCEPTED}"
            ) from None
        match = re.search(r"\S", text)
        if not block or (match is not None and len(text) - match.start() > 1024):
            return text


# --- format detection ----------------------------------------------------------------------


def _first_line(text: str) -> tuple[int, str]:
    """Line number and text of the first non-blank line (0, "" when there is none)."""
    match = re.search(r"\S", text)
    if match is None:
        return 0, ""
    start = text.rfind("\n", 0, match.start()) + 1
    end = text.find("\n", match.start())
    line = text[start : len(text) if end < 0 else end]
    return text.count("\n", 0, start) + 1, line.strip()


def _detect(text: str, label: str) -> str:
    number, first = _first_line(text)
    if not first:
        raise InputError(f"{label}: the file is empty; accepted formats: {ACCEPTED}")
    if first.startswith("{"):
        return "jsonl"
    if "," in first:
        names = {_norm(cell) for cell in next(csv.reader([first]))}
        return "azure" if names & {"contexttokens", "generatedtokens"} else "counts-csv"
    if all(_NUMBER.fullmatch(token) for token in _leading_tokens(first)):
        return "whitespace"
    raise InputError(
        f"{label} line {number}: unknown trace format (it starts {first[:40]!r}); "
        f"accepted formats: {ACCEPTED}"
    )


def _leading_tokens(line: str, limit: int = 1024) -> list[str]:
    """The whole tokens among the first `limit` characters: enough to recognise a format
    whose first line may be the entire 10 MB file."""
    tokens = line[:limit].split()
    return tokens[:-1] if len(line) > limit and len(tokens) > 1 else tokens


def _norm(header: str) -> str:
    return re.sub(r"[^a-z0-9]", "", header.lower())


# --- shared column parsing -----------------------------------------------------------------


class _Rows(Protocol):
    """What a whole-column check needs of the rows: a header, a message naming a row's line,
    and the text of one cell (for the message)."""

    @property
    def label(self) -> str: ...

    @property
    def header(self) -> list[str]: ...

    def fail(self, row: int, problem: str) -> InputError: ...

    def value(self, row: int, index: int) -> str: ...


@dataclass(frozen=True)
class _Table:
    """CSV rows as stripped strings, with the file line of each row for messages: a whole
    request trace, or one block of a count trace's rows."""

    label: str
    header: list[str]
    header_line: int
    rows: list[list[str]]
    lines: list[int]

    def column(self, index: int) -> list[str]:
        return [row[index] for row in self.rows]

    def fail(self, row: int, problem: str) -> InputError:
        return InputError(f"{self.label} line {self.lines[row]}: {problem}")

    def value(self, row: int, index: int) -> str:
        return self.rows[row][index]


@dataclass(frozen=True)
class _StreamedRows:
    """All the rows of a count trace read block by block, of which only the line numbers are
    kept: a message's cell text is read again from the file (errors are rare, rows many)."""

    label: str
    header: list[str]
    lines: np.ndarray
    file: str

    def fail(self, row: int, problem: str) -> InputError:
        return InputError(f"{self.label} line {int(self.lines[row])}: {problem}")

    def value(self, row: int, index: int) -> str:
        with _opened(self.file) as (stream, label):
            reader = csv.reader(_text_lines(stream, label))
            for cells in reader:
                if reader.line_num >= self.lines[row]:
                    return cells[index].strip()
        raise AssertionError(f"line {int(self.lines[row])} vanished from {self.label}")


def _text_lines(stream: IO[bytes], label: str) -> Iterator[str]:
    """The stream's lines as text, decoded one at a time so an error names its exact line."""
    for number, raw in enumerate(stream, start=1):
        yield _decode(raw, label, number, "utf-8-sig" if number == 1 else "utf-8")


def _read_table(text: str, label: str) -> _Table:
    """A whole CSV text as one table."""
    return next(_table_blocks(io.StringIO(text), label, rows_per_block=None))


def _table_blocks(lines: Iterable[str], label: str, rows_per_block: int | None) -> Iterator[_Table]:
    """The CSV's data rows in tables of `rows_per_block` (all in one when None), each with the
    header; blank rows are skipped, a row of the wrong width is an error naming its line."""
    reader = csv.reader(lines)
    header: list[str] | None = None
    header_line, rows, numbers, yielded = 0, [], [], False
    try:
        for row in reader:
            cells = [cell.strip() for cell in row]
            if not any(cells):
                continue
            if header is None:
                header, header_line = cells, reader.line_num
                continue
            if len(cells) != len(header):
                raise InputError(
                    f"{label} line {reader.line_num}: expected {len(header)} fields "
                    f"({','.join(header)}), got {len(cells)}"
                )
            rows.append(cells)
            numbers.append(reader.line_num)
            if rows_per_block is not None and len(rows) == rows_per_block:
                yield _Table(label, header, header_line, rows, numbers)
                rows, numbers, yielded = [], [], True
    except csv.Error as exc:
        raise InputError(f"{label} line {reader.line_num}: not valid CSV ({exc})") from None
    if header is None:  # non-blank lines of empty fields only, such as ","
        raise InputError(f"{label}: no CSV header, only empty fields; accepted formats: {ACCEPTED}")
    if rows or not yielded:
        if not rows:
            raise InputError(f"{label} line {header_line}: a header but no data rows after it")
        yield _Table(label, header, header_line, rows, numbers)


def _datetimes_ns(table: _Table, index: int) -> np.ndarray:
    """int64 nanoseconds of an ISO 8601 column: numpy's vectorised parser, else row by row.

    The row-by-row pass finds the bad line for the message, and also reads what numpy refuses
    but Python accepts (UTC offsets, `Z`), converting aware times to UTC.
    """
    values = table.column(index)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            parsed = np.array(values, dtype="datetime64[ns]")
            # numpy wraps years outside 1678-2262 around silently in nanoseconds
            coarse = np.array(values, dtype="datetime64[us]")
        if not np.isnat(parsed).any() and ((coarse >= _NS_FIRST) & (coarse < _NS_END)).all():
            return parsed.view(np.int64)
    except (ValueError, TypeError, Warning):
        pass
    return np.array([_one_datetime_ns(table, index, row) for row in range(len(values))], np.int64)


def _one_datetime_ns(table: _Table, index: int, row: int) -> int:
    value = table.rows[row][index]
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise table.fail(row, f"{table.header[index]} {value!r} is not a datetime") from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    delta = moment - datetime(1970, 1, 1)
    ns = (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
    if not -(2**63) < ns < 2**63:
        raise table.fail(
            row, f"{table.header[index]} {value!r} is outside the years 1678-2262 (nanoseconds)"
        )
    return ns


def _integers(table: _Table, index: int) -> np.ndarray:
    """A column of non-negative integers (int64); the first bad row is the error."""
    values = table.column(index)
    try:
        parsed = np.array(values, dtype=np.int64)
        if (parsed >= 0).all():
            return parsed
    except (ValueError, OverflowError):
        pass
    for row, value in enumerate(values):
        if not _COUNT_TOKEN.fullmatch(value) or int(value) >= 2**63:
            problem = "is negative" if value.startswith("-") else "is not a non-negative integer"
            raise table.fail(row, f"{table.header[index]} {value!r} {problem}")
    raise AssertionError("unreachable: numpy refused a column of valid integers")


def _span_checked(table: _Rows, index: int, ns: np.ndarray) -> np.ndarray:
    """`ns`, if its span fits int64 nanoseconds (292 years): beyond, differences wrap around."""
    since = ns - ns.min()
    if (since < 0).any():
        row = int(np.flatnonzero(since < 0)[0])
        value = table.value(row, index)
        raise table.fail(
            row, f"{table.header[index]} {value!r} is over 292 years after the earliest time"
        )
    return ns


def _relative_seconds(ns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stable time order and float seconds since the first instant, from int64 nanoseconds."""
    order = np.argsort(ns, kind="stable")
    ordered = ns[order]
    return order, (ordered - ordered[0]).astype(np.float64) / 1e9


def _request_span(times: np.ndarray) -> float:
    return max(float(times[-1]), _TINY_SPAN)


# --- 1. Azure LLM inference CSV ------------------------------------------------------------


def _parse_azure(text: str, label: str) -> _Arrivals:
    table = _read_table(text, label)
    found = {_norm(name): i for i, name in enumerate(table.header)}
    missing = [name for name in AZURE_COLUMNS if _norm(name) not in found]
    if missing:
        raise InputError(
            f"{label} line {table.header_line}: missing column(s) {', '.join(missing)}; "
            f"an Azure LLM trace needs {','.join(AZURE_COLUMNS)}"
        )
    stamp, prompt, output = (found[_norm(name)] for name in AZURE_COLUMNS)
    order, times = _relative_seconds(_span_checked(table, stamp, _datetimes_ns(table, stamp)))
    return _Arrivals(
        times=times,
        duration=_request_span(times),
        prompt_tokens=_integers(table, prompt)[order],
        output_tokens=_integers(table, output)[order],
    )


# --- 2. Mooncake-style JSON Lines ----------------------------------------------------------


def _parse_jsonl(text: str, label: str) -> _Arrivals:
    stamps: list[float] = []
    prompt: list[int] = []
    output: list[int] = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        record = _json_record(line, f"{label} line {number}")
        stamps.append(record[0])
        prompt.append(record[1])
        output.append(record[2])
    ms = np.array(stamps, dtype=np.float64)
    order = np.argsort(ms, kind="stable")
    times = (ms[order] - ms[order[0]]) / 1000.0
    return _Arrivals(
        times=times,
        duration=_request_span(times),
        prompt_tokens=np.array(prompt, dtype=np.int64)[order],
        output_tokens=np.array(output, dtype=np.int64)[order],
    )


def _json_record(line: str, where: str) -> tuple[float, int, int]:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    except RecursionError:
        raise InputError(f"{where}: not valid JSON (nested too deeply)") from None
    if not isinstance(obj, dict):
        raise InputError(f"{where}: expected a JSON object with keys {', '.join(JSONL_KEYS)}")
    missing = [key for key in JSONL_KEYS if key not in obj]
    if missing:
        raise InputError(f"{where}: missing key(s) {', '.join(missing)}")
    stamp = obj["timestamp"]
    if isinstance(stamp, bool) or not isinstance(stamp, (int, float)) or not math.isfinite(stamp):
        raise InputError(f"{where}: timestamp {stamp!r} is not a number of milliseconds")
    if abs(stamp) > _MAX_MS:
        raise InputError(
            f"{where}: timestamp {stamp!r} is outside ±{_MAX_MS:.0e} ms (about 31,700 years)"
        )
    for key in ("input_length", "output_length"):
        value = obj[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InputError(f"{where}: {key} {value!r} is not a non-negative integer")
        if value >= 2**63:
            raise InputError(f"{where}: {key} {value!r} is too large (at most 2^63 - 1)")
    return float(stamp), obj["input_length"], obj["output_length"]


# --- 3. CSV of per-interval counts ---------------------------------------------------------


def _parse_counts_csv(stream: IO[bytes], label: str, file: str) -> _Counts:
    """Read block by block: each block's times and counts become arrays at once, so memory
    grows with the rows as numbers (16 bytes a row), not as Python strings."""
    blocks = _table_blocks(_text_lines(stream, label), label, _ROWS_PER_BLOCK)
    first = next(blocks)
    if all(_NUMBER.fullmatch(cell) for cell in first.header):
        raise InputError(
            f"{label} line {first.header_line}: expected a header row naming the time and "
            f"count columns, got {','.join(first.header)!r}"
        )
    time_col, count_col = _pick_columns(first)
    kind = _time_kind(first, time_col)
    times, counts, lines = [], [], []
    for table in itertools.chain([first], blocks):
        times.append(_absolute_times(table, time_col, kind))
        counts.append(_integers(table, count_col))
        lines.append(np.array(table.lines, dtype=np.int64))
    rows = _StreamedRows(label, first.header, np.concatenate(lines), file)
    seconds = _since_earliest(rows, time_col, kind, np.concatenate(times))
    per_interval, interval = _grid(rows, time_col, seconds, np.concatenate(counts))
    meta = {"time_column": first.header[time_col], "count_column": first.header[count_col]}
    return per_interval, interval, meta


def _pick_columns(table: _Table) -> tuple[int, int]:
    """The time and count columns: by an obvious header name, else by what parses."""
    names = [_norm(name) for name in table.header]
    time_col = next((i for i, n in enumerate(names) if n in TIME_NAMES), None)
    if time_col is None:
        time_col = next((i for i in range(len(names)) if _parses(_time_seconds, table, i)), None)
    if time_col is None:
        raise InputError(
            f"{table.label} line {table.header_line}: missing time column: name it one of "
            f"{', '.join(sorted(TIME_NAMES))}, or give ISO 8601 datetimes or epoch seconds"
        )
    others = [i for i in range(len(names)) if i != time_col]
    count_col = next((i for i in others if names[i] in COUNT_NAMES), None)
    if count_col is None:
        count_col = next((i for i in others if _parses(_integers, table, i)), None)
    if count_col is None:
        raise InputError(
            f"{table.label} line {table.header_line}: missing count column: name it one of "
            f"{', '.join(sorted(COUNT_NAMES))}, holding non-negative integers"
        )
    return time_col, count_col


def _parses(parser: Callable[[_Table, int], np.ndarray], table: _Table, index: int) -> bool:
    try:
        parser(table, index)
    except InputError:
        return False
    return True


def _time_seconds(table: _Table, index: int) -> np.ndarray:
    """float64 seconds since the column's earliest time, from epoch seconds or ISO 8601."""
    kind = _time_kind(table, index)
    return _since_earliest(table, index, kind, _absolute_times(table, index, kind))


def _time_kind(table: _Table, index: int) -> str:
    """ "epoch" when every cell is a number (seconds since 1970), else "iso" (datetimes)."""
    try:
        np.array(table.column(index), dtype=np.float64)
    except ValueError:
        return "iso"
    return "epoch"


def _absolute_times(table: _Table, index: int, kind: str) -> np.ndarray:
    """A block's times: float64 epoch seconds, or int64 nanoseconds of ISO 8601 datetimes."""
    if kind == "iso":
        return _datetimes_ns(table, index)
    values = table.column(index)
    try:
        epoch = np.array(values, dtype=np.float64)
    except ValueError:
        row = next(i for i, value in enumerate(values) if not _is_float(value))
        raise table.fail(
            row, f"{table.header[index]} {values[row]!r} is not a time in epoch seconds"
        ) from None
    if not np.isfinite(epoch).all():
        row = int(np.flatnonzero(~np.isfinite(epoch))[0])
        raise table.fail(row, f"{table.header[index]} {values[row]!r} is not a time")
    return epoch


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _since_earliest(table: _Rows, index: int, kind: str, values: np.ndarray) -> np.ndarray:
    """float64 seconds since the earliest of `values` (as `_absolute_times` gives them)."""
    if kind == "iso":
        ns = _span_checked(table, index, values)
        return (ns - ns.min()).astype(np.float64) / 1e9
    with np.errstate(over="ignore"):  # checked just below
        seconds = values - values.min()
    if not np.isfinite(seconds).all():
        row = int(np.argmax(values))
        value = table.value(row, index)
        raise table.fail(row, f"{table.header[index]} {value!r} is too far after the earliest time")
    return seconds


def _grid(
    table: _Rows, time_col: int, seconds: np.ndarray, counts: np.ndarray
) -> tuple[np.ndarray, float]:
    """Counts on a regular grid whose step is the smallest gap; absent intervals count 0."""
    if seconds.shape[0] < 2:
        raise table.fail(0, "need at least two rows to infer the interval length")
    order = np.argsort(seconds, kind="stable")
    gaps = np.diff(seconds[order])
    if (gaps == 0).any():
        row = int(order[np.flatnonzero(gaps == 0)[0] + 1])
        raise table.fail(row, f"duplicate time {table.value(row, time_col)!r}")
    interval = float(gaps.min())
    length = float(seconds.max()) / interval
    if not length < MAX_INTERVALS:
        row = int(np.argmax(seconds))
        raise table.fail(
            row,
            f"the times span {length:.3g} intervals of {interval:g} s; at most "
            f"{MAX_INTERVALS:,} are supported",
        )
    if not math.isfinite((length + 1) * interval):
        row = int(np.argmax(seconds))
        value = table.value(row, time_col)
        raise table.fail(row, f"time {value!r} is too far after the earliest time")
    steps = seconds / interval
    slots = np.rint(steps)
    off_grid = np.abs(steps - slots) > 1e-6
    if off_grid.any():
        row = int(np.flatnonzero(off_grid)[0])
        raise table.fail(row, f"time is not on the {interval:g} s grid set by the smallest gap")
    per_interval = np.zeros(int(slots.max()) + 1, dtype=np.int64)
    per_interval[slots.astype(np.int64)] = counts
    return per_interval, interval


# --- 4. whitespace-separated per-second counts ---------------------------------------------


def _parse_whitespace(stream: IO[bytes], label: str, file: str) -> _Counts:
    """Read in blocks of bytes cut after their last whitespace, each parsed by numpy's C text
    reader (the NASA file has 5 million values)."""
    parts: list[np.ndarray] = []
    line, values, carry = 1, 0, b""
    while True:
        block = stream.read(_BLOCK)
        data = carry + block
        if line == 1 and values == 0 and data.startswith(codecs.BOM_UTF8):
            data = data[len(codecs.BOM_UTF8) :]
        cut = max(data.rfind(space) for space in (b" ", b"\n", b"\t", b"\r")) + 1
        if block and cut == 0:
            carry = data  # one token longer than a block so far
            continue
        data, carry = (data[:cut], data[cut:]) if block else (data, b"")
        text = _decode(data, label, line, "utf-8")
        if text.strip():
            counts = _whitespace_counts(text, label, line, values)
            parts.append(counts)
            values += counts.shape[0]
        line += text.count("\n")
        if not block:
            return np.concatenate(parts or [np.zeros(0, np.int64)]), 1.0, {}


def _whitespace_counts(text: str, label: str, line: int, values: int) -> np.ndarray:
    """One block of counts; `line` and `values` (those before it) place an error in the file.

    `np.fromstring` in text mode stops at the first non-number (a ValueError in numpy 2, a
    DeprecationWarning in 1.x, made an error here); on any doubt the slow scan names the line.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", DeprecationWarning)
            counts = np.fromstring(text, dtype=np.int64, sep=" ")
    except (ValueError, DeprecationWarning):
        _raise_bad_count(text, label, line, values)
    if (counts < 0).any() or (counts == np.iinfo(np.int64).max).any():
        _raise_bad_count(text, label, line, values)
    return counts


def _raise_bad_count(text: str, label: str, line: int, values: int) -> NoReturn:
    position = values
    for number, text_line in enumerate(text.split("\n"), start=line):
        for token in text_line.split():
            position += 1
            if _COUNT_TOKEN.fullmatch(token) and int(token) < 2**63 - 1:
                continue
            problem = "is negative" if token.startswith("-") else "is not a non-negative integer"
            where = f"{label} line {number}: count {token!r} (value #{position} in the file)"
            raise InputError(f"{where} {problem}")
    raise InputError(f"{label}: cannot read the per-second counts")


_Counts = tuple[np.ndarray, float, dict]
"""What a count-trace parser yields: counts per interval, the interval in seconds, meta."""
_REQUEST_PARSERS: dict[str, Callable[[str, str], _Arrivals]] = {
    "azure": _parse_azure,
    "jsonl": _parse_jsonl,
}
_COUNT_PARSERS: dict[str, Callable[[IO[bytes], str, str], _Counts]] = {
    "counts-csv": _parse_counts_csv,
    "whitespace": _parse_whitespace,
}
