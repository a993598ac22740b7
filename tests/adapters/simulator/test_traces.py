"""Trace loading: every format, plain and compressed, malformed input, windows and rate scaling."""

from __future__ import annotations

import bz2
import gzip
import io
import tarfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.simulator import traces
from adapters.simulator.sources import load_rate_series, load_workload
from adapters.simulator.synthetic import generate
from adapters.simulator.traces import load_trace
from autoscaler.errors import InputError

WRAPS = ("plain", "gz", "bz2", "tar.gz", "tar.bz2")

AZURE = """TIMESTAMP,ContextTokens,GeneratedTokens
2023-11-16 18:17:05.5000000,300,30
2023-11-16 18:17:03.9799600,100,10
2023-11-16 18:17:04.0319600,200,20
"""
JSONL = """{"timestamp": 1000, "input_length": 20, "output_length": 2, "hash_ids": [1, 2]}

{"timestamp": 500, "input_length": 10, "output_length": 1}
{"timestamp": 3500, "input_length": 30, "output_length": 3}
"""
COUNTS_CSV = """time,requests
2024-01-01T00:00:00,3
2024-01-01T00:01:00,0
2024-01-01T00:03:00,5
"""
WHITESPACE = "1 0 3\n2 0\n"


def write(tmp_path: Path, name: str, text: str | bytes, wrap: str = "plain") -> Path:
    """Write `text` as `name`, optionally tarred and/or compressed (suffix added to the name)."""
    data = text.encode() if isinstance(text, str) else text
    if wrap.startswith("tar"):
        data = tar_of({name: data})
    if wrap.endswith("gz"):
        data = gzip.compress(data)
    elif wrap.endswith("bz2"):
        data = bz2.compress(data)
    path = tmp_path / (name if wrap == "plain" else f"{name}.{wrap}")
    path.write_bytes(data)
    return path


def tar_of(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for member, data in members.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def per_bin(times: np.ndarray, width: float, bins: int) -> np.ndarray:
    return np.bincount((times // width).astype(np.int64), minlength=bins)


# --- formats --------------------------------------------------------------------------------


@pytest.mark.parametrize("wrap", WRAPS)
def test_azure_csv_sorted_relative_with_tokens(tmp_path: Path, wrap: str) -> None:
    w = load_trace(write(tmp_path, "code.csv", AZURE, wrap))
    assert w.prompt_tokens is not None and w.output_tokens is not None
    np.testing.assert_allclose(w.times, [0.0, 0.052, 1.52004])
    assert w.prompt_tokens.tolist() == [100, 200, 300]
    assert w.output_tokens.tolist() == [10, 20, 30]
    assert w.prompt_tokens.dtype == np.int64 and w.has_tokens
    assert w.duration == pytest.approx(1.52004)
    assert w.name == "code" and w.meta["format"] == "azure"


@pytest.mark.parametrize("wrap", WRAPS)
def test_jsonl_milliseconds_other_keys_and_blank_lines_ignored(tmp_path: Path, wrap: str) -> None:
    w = load_trace(write(tmp_path, "mooncake.jsonl", JSONL, wrap))
    assert w.prompt_tokens is not None and w.output_tokens is not None
    np.testing.assert_allclose(w.times, [0.0, 0.5, 3.0])
    assert w.prompt_tokens.tolist() == [10, 20, 30]
    assert w.output_tokens.tolist() == [1, 2, 3]
    assert w.duration == 3.0 and w.meta["format"] == "jsonl"


@pytest.mark.parametrize("wrap", WRAPS)
def test_counts_csv_infers_interval_and_absent_intervals_count_zero(
    tmp_path: Path, wrap: str
) -> None:
    w = load_trace(write(tmp_path, "counts.csv", COUNTS_CSV, wrap), seed=3)
    assert w.meta["interval"] == 60.0 and w.duration == 240.0
    assert per_bin(w.times, 60.0, 4).tolist() == [3, 0, 0, 5]
    assert not w.has_tokens


@pytest.mark.parametrize("wrap", WRAPS)
def test_whitespace_counts_per_second(tmp_path: Path, wrap: str) -> None:
    w = load_trace(write(tmp_path, "workload.txt", WHITESPACE, wrap))
    assert w.duration == 5.0 and w.meta["format"] == "whitespace"
    assert per_bin(w.times, 1.0, 5).tolist() == [1, 0, 3, 2, 0]
    assert np.all(np.diff(w.times) >= 0)


@pytest.mark.parametrize(
    "text", [AZURE, JSONL, COUNTS_CSV, WHITESPACE], ids=["azure", "jsonl", "counts", "whitespace"]
)
@pytest.mark.parametrize("wrap", WRAPS[1:])
def test_compressed_equals_plain(tmp_path: Path, text: str, wrap: str) -> None:
    plain = load_trace(write(tmp_path, "t.data", text), seed=7)
    packed = load_trace(write(tmp_path, "t.data", text, wrap), seed=7)
    np.testing.assert_array_equal(plain.times, packed.times)
    assert plain.duration == packed.duration


def test_detection_is_by_content_not_name(tmp_path: Path) -> None:
    assert load_trace(write(tmp_path, "a.txt", AZURE)).meta["format"] == "azure"
    assert load_trace(write(tmp_path, "b.csv", JSONL)).meta["format"] == "jsonl"
    assert load_trace(write(tmp_path, "c.json", WHITESPACE)).meta["format"] == "whitespace"
    assert load_trace(write(tmp_path, "d", COUNTS_CSV)).meta["format"] == "counts-csv"


def test_name_source_and_override(tmp_path: Path) -> None:
    path = write(tmp_path, "nasa.txt", WHITESPACE, "tar.bz2")
    w = load_trace(path)
    assert w.name == "nasa" and w.source == str(path)
    assert load_trace(str(path), name="web").name == "web"


def test_azure_columns_by_name_in_any_order(tmp_path: Path) -> None:
    text = "GeneratedTokens,region,TIMESTAMP,ContextTokens\n5,eu,2023-11-16 18:17:03.0,50\n"
    w = load_trace(write(tmp_path, "x.csv", text))
    assert w.prompt_tokens is not None and w.output_tokens is not None
    assert w.prompt_tokens.tolist() == [50] and w.output_tokens.tolist() == [5]
    assert w.duration > 0


def test_counts_csv_epoch_seconds_and_columns_by_name(tmp_path: Path) -> None:
    text = "host,requests,ts\nweb-1,4,1700000010\nweb-1,2,1700000000\nweb-1,1,1700000030\n"
    w = load_trace(write(tmp_path, "epoch.csv", text))
    assert w.meta["interval"] == 10.0 and w.duration == 40.0
    assert per_bin(w.times, 10.0, 4).tolist() == [2, 4, 0, 1]


def test_counts_csv_columns_found_by_content_when_names_are_unclear(tmp_path: Path) -> None:
    text = "label,when,how_many\na,2024-05-01 10:00:00,7\nb,2024-05-01 10:00:05,1\n"
    w = load_trace(write(tmp_path, "odd.csv", text))
    assert (w.meta["time_column"], w.meta["count_column"]) == ("when", "how_many")
    assert per_bin(w.times, 5.0, 2).tolist() == [7, 1]


def test_counts_csv_accepts_utc_offsets(tmp_path: Path) -> None:
    text = "timestamp,count\n2024-01-01T01:00:00+01:00,1\n2024-01-01T00:30:00Z,2\n"
    w = load_trace(write(tmp_path, "tz.csv", text))
    assert w.meta["interval"] == 1800.0
    assert per_bin(w.times, 1800.0, 2).tolist() == [1, 2]


def test_poisson_drawing_is_seeded(tmp_path: Path) -> None:
    path = write(tmp_path, "w.txt", "5 9 2 0 7")
    same = [load_trace(path, seed=1).times for _ in range(2)]
    np.testing.assert_array_equal(same[0], same[1])
    assert not np.array_equal(same[0], load_trace(path, seed=2).times)


# --- malformed input ------------------------------------------------------------------------

BAD_TIMESTAMP = (
    AZURE.splitlines()[0] + "\n" + "2023-11-16 18:17:03.0,1,1\n" * 15 + "yesterday,1,1\n"
)

MALFORMED = {
    "empty": ("e.csv", "", ["e.csv", "empty"]),
    "blank": ("b.txt", " \n\n", ["b.txt", "empty"]),
    "unknown": (
        "m.dat",
        "\nhello world\n",
        ["m.dat line 2", "unknown trace format", "Azure", "JSON Lines", "whitespace"],
    ),
    "negative-count": ("n.txt", "1 2\n3 -4 5\n", ["n.txt line 2", "'-4'", "negative"]),
    "fractional-count": (
        "f.txt",
        "1 2.5\n",
        ["f.txt line 1", "'2.5'", "not a non-negative integer"],
    ),
    "bad-timestamp": (
        "trace.csv",
        BAD_TIMESTAMP,
        ["trace.csv line 17: TIMESTAMP 'yesterday' is not a datetime"],
    ),
    "non-integer-tokens": (
        "t.csv",
        AZURE.replace(",200,", ",12.5,"),
        ["t.csv line 4", "ContextTokens '12.5'", "not a non-negative integer"],
    ),
    "negative-tokens": (
        "t.csv",
        AZURE.replace(",30\n", ",-3\n"),
        ["t.csv line 2", "GeneratedTokens '-3'", "negative"],
    ),
    "missing-column": (
        "t.csv",
        "TIMESTAMP,ContextTokens\n2023-11-16 18:17:03,5\n",
        ["t.csv line 1", "missing column(s) GeneratedTokens"],
    ),
    "field-count": (
        "t.csv",
        AZURE.replace(",100,10", ",100"),
        ["t.csv line 3", "expected 3 fields"],
    ),
    "header-only": (
        "t.csv",
        "TIMESTAMP,ContextTokens,GeneratedTokens\n",
        ["t.csv line 1", "no data rows"],
    ),
    "bad-json": (
        "j.jsonl",
        JSONL.replace('"timestamp": 500,', '"timestamp": 500'),
        ["j.jsonl line 3", "not valid JSON"],
    ),
    "missing-key": (
        "j.jsonl",
        '{"timestamp": 1, "input_length": 2}\n',
        ["j.jsonl line 1", "missing key(s) output_length"],
    ),
    "json-non-integer-tokens": (
        "j.jsonl",
        '{"timestamp": 1, "input_length": 2.5, "output_length": 1}\n',
        ["line 1", "input_length 2.5"],
    ),
    "json-bad-timestamp": (
        "j.jsonl",
        '{"timestamp": "noon", "input_length": 2, "output_length": 1}\n',
        ["line 1", "timestamp 'noon'"],
    ),
    "negative-csv-count": (
        "c.csv",
        COUNTS_CSV.replace(",0\n", ",-2\n"),
        ["c.csv line 3", "requests '-2'", "negative"],
    ),
    "bad-csv-time": (
        "c.csv",
        COUNTS_CSV.replace("2024-01-01T00:03:00", "later"),
        ["c.csv line 4", "time 'later' is not a datetime"],
    ),
    "duplicate-time": (
        "c.csv",
        COUNTS_CSV + "2024-01-01T00:01:00,4\n",
        ["c.csv line 5", "duplicate time"],
    ),
    "single-row": (
        "c.csv",
        "time,count\n2024-01-01T00:00:00,3\n",
        ["c.csv line 2", "at least two rows"],
    ),
    "no-count-column": (
        "c.csv",
        "time,label\n2024-01-01,a\n2024-01-02,b\n",
        ["c.csv line 1", "missing count column"],
    ),
    "no-header": ("c.csv", "1,2\n3,4\n", ["c.csv line 1", "header"]),
}


@pytest.mark.parametrize("case", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_input_gives_one_clear_error(
    tmp_path: Path, case: tuple[str, str, list[str]]
) -> None:
    name, text, expected = case
    with pytest.raises(InputError) as caught:
        load_trace(write(tmp_path, name, text))
    for fragment in expected:
        assert fragment in str(caught.value)


def test_error_in_compressed_file_names_the_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "counts.txt", "0 1\n2 x\n", "tar.gz")
    with pytest.raises(InputError, match=r"counts\.txt\.tar\.gz:counts\.txt line 2: count 'x'"):
        load_trace(path)


def test_tar_with_several_files_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "two.tar.bz2"
    path.write_bytes(bz2.compress(tar_of({"a.txt": b"1 2", "b.txt": b"3"})))
    with pytest.raises(
        InputError,
        match=r"two\.tar\.bz2: a tar archive must hold exactly one regular file, "
        r"found 2 \(a\.txt, b\.txt\)",
    ):
        load_trace(path)


def test_corrupt_gzip_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.csv.gz"
    path.write_bytes(gzip.compress(AZURE.encode())[:30])
    with pytest.raises(InputError, match=r"broken\.csv\.gz: corrupt gzip data"):
        load_trace(path)


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.csv"
    with pytest.raises(InputError, match="does not exist") as caught:
        load_trace(path)
    assert str(path) in str(caught.value)


# --- properties -----------------------------------------------------------------------------

COUNT_VECTORS = st.lists(st.integers(min_value=0, max_value=30), min_size=1, max_size=300)


@settings(max_examples=60, deadline=None)
@given(
    counts=COUNT_VECTORS,
    per_line=st.integers(min_value=1, max_value=50),
    seed=st.integers(0, 2**32),
)
def test_whitespace_counts_round_trip(
    tmp_path_factory: pytest.TempPathFactory, counts: list[int], per_line: int, seed: int
) -> None:
    lines = [" ".join(map(str, counts[i : i + per_line])) for i in range(0, len(counts), per_line)]
    path = tmp_path_factory.mktemp("ws") / "counts.txt"
    path.write_text("\n".join(lines) + "\n")
    w = load_trace(path, seed=seed)
    assert w.duration == len(counts)
    assert per_bin(w.times, 1.0, len(counts)).tolist() == counts


@settings(max_examples=60, deadline=None)
@given(counts=COUNT_VECTORS, data=st.data())
def test_windowing_preserves_counts(
    tmp_path_factory: pytest.TempPathFactory, counts: list[int], data: st.DataObject
) -> None:
    path = tmp_path_factory.mktemp("win") / "counts.txt"
    path.write_text(" ".join(map(str, counts)))
    start = data.draw(st.integers(0, len(counts) - 1), label="start")
    stop = data.draw(st.integers(start + 1, len(counts)), label="stop")
    window = load_trace(path).window(float(start), float(stop - start))
    assert len(window) == sum(counts[start:stop])
    assert window.duration == stop - start
    assert per_bin(window.times, 1.0, stop - start).tolist() == counts[start:stop]


@settings(max_examples=40, deadline=None)
@given(
    counts=st.lists(st.integers(0, 20), min_size=2, max_size=60),
    interval=st.sampled_from([1, 5, 60, 300, 3600]),
    data=st.data(),
)
def test_counts_csv_round_trip_with_absent_rows(
    tmp_path_factory: pytest.TempPathFactory, counts: list[int], interval: int, data: st.DataObject
) -> None:
    keep = [True, True] + data.draw(
        st.lists(st.booleans(), min_size=len(counts) - 2, max_size=len(counts) - 2)
    )
    last = max(i for i, kept in enumerate(keep) if kept)
    rows = [
        f"{1_600_000_000 + i * interval},{c}"
        for i, (c, kept) in enumerate(zip(counts, keep, strict=False))
        if kept
    ]
    path = tmp_path_factory.mktemp("csv") / "counts.csv"
    path.write_text("timestamp,count\n" + "\n".join(rows) + "\n")
    w = load_trace(path)
    expected = [c if kept else 0 for c, kept in zip(counts[: last + 1], keep, strict=False)]
    assert w.duration == (last + 1) * interval
    assert per_bin(w.times, float(interval), last + 1).tolist() == expected


# --- load_workload: windows and rate scaling ------------------------------------------------


@pytest.fixture
def steady(tmp_path: Path) -> Path:
    """10,000 arrivals over 1,000 seconds, 10 a second."""
    return write(tmp_path, "steady.txt", " ".join(["10"] * 1000))


def test_window_rebases_and_counts(steady: Path) -> None:
    w = load_workload(trace=str(steady), workload=None, seed=0, offset=100.0, duration=50.0)
    assert len(w) == 500 and w.duration == 50.0
    assert w.times.min() >= 0 and w.times.max() < 50


def test_window_without_duration_keeps_the_rest(steady: Path) -> None:
    w = load_workload(trace=str(steady), workload=None, seed=0, offset=900.0)
    assert len(w) == 1000 and w.duration == 100.0


def test_rate_scaling(steady: Path) -> None:
    def scaled(factor: float, seed: int = 0) -> int:
        return len(load_workload(trace=str(steady), workload=None, seed=seed, rate_scale=factor))

    assert 4700 <= scaled(0.5) <= 5300
    assert scaled(2.0) == 20_000
    assert 24_500 <= scaled(2.5) <= 25_500
    first, again = (
        load_workload(trace=str(steady), workload=None, seed=4, rate_scale=2.5) for _ in range(2)
    )
    np.testing.assert_array_equal(first.times, again.times)


def test_load_workload_needs_exactly_one_source(steady: Path) -> None:
    with pytest.raises(InputError, match="exactly one of --trace FILE or --workload NAME"):
        load_workload(trace=None, workload=None, seed=0)
    with pytest.raises(InputError, match="exactly one"):
        load_workload(trace=str(steady), workload="llm-bursty", seed=0)


@pytest.mark.parametrize(
    "offset, duration", [(-1.0, None), (float("nan"), None), (0.0, 0.0), (0.0, float("inf"))]
)
def test_load_workload_refuses_bad_windows(offset: float, duration: float | None) -> None:
    with pytest.raises(InputError, match=r"--offset|--duration"):
        load_workload(trace=None, workload="llm-bursty", seed=0, offset=offset, duration=duration)


def test_load_workload_synthetic_window_matches_generator() -> None:
    w = load_workload(trace=None, workload="llm-bursty", seed=5, offset=600.0, duration=300.0)
    expected = generate("llm-bursty", seed=5, duration=900.0).window(600.0, 300.0)
    np.testing.assert_array_equal(w.times, expected.times)
    assert w.duration == 300.0 and w.source == "workload:llm-bursty"


def test_load_workload_synthetic_defaults_to_spec_duration() -> None:
    assert load_workload(trace=None, workload="llm-bursty", seed=0).duration == 3600.0
    assert load_workload(trace=None, workload="llm-bursty", seed=0, offset=60.0).duration == 3600.0


def test_load_workload_unknown_workload() -> None:
    with pytest.raises(
        InputError, match="unknown workload 'nope'; built-in workloads: llm-bursty, web-diurnal"
    ):
        load_workload(trace=None, workload="nope", seed=0)


# --- the real shared traces -----------------------------------------------------------------


def test_real_azure_code_trace(shared_traces: Path) -> None:
    w = load_trace(shared_traces / "AzureLLMInferenceTrace_code.csv")
    assert len(w) == 8819 and w.has_tokens
    assert w.duration == pytest.approx(3436, abs=1)
    assert w.times[0] == 0 and np.all(np.diff(w.times) >= 0)
    assert w.prompt_tokens is not None and w.output_tokens is not None
    assert w.prompt_tokens.min() > 0 and w.output_tokens.min() > 0
    assert w.name == "AzureLLMInferenceTrace_code"


def test_real_nasa_trace_loads_fast(shared_traces: Path) -> None:
    started = time.perf_counter()
    w = load_trace(shared_traces / "nasa_http_1995_per_second_workload.tbz2")
    elapsed = time.perf_counter() - started
    assert len(w) == 3_461_610 and w.duration == 5_059_950.0
    assert not w.has_tokens and w.name == "nasa_http_1995_per_second_workload"
    assert elapsed < 10, f"loading NASA took {elapsed:.1f}s (budget ~5 s)"


# --- count traces larger than memory as arrivals ----------------------------------------------


def per_minute_csv(path: Path, days: int, mean_per_minute: float, seed: int = 0) -> np.ndarray:
    """A per-minute count CSV (ISO datetimes) with a daily wave; returns its counts."""
    minutes = days * 1440
    wave = 1 + 0.5 * np.sin(2 * np.pi * np.arange(minutes) / 1440)
    counts = np.random.default_rng(seed).poisson(mean_per_minute * wave)
    stamps = np.datetime64("2024-01-01T00:00") + np.arange(minutes).astype("timedelta64[m]")
    rows = (f"{stamp},{count}" for stamp, count in zip(stamps.astype(str), counts, strict=True))
    path.write_text("time,requests\n" + "\n".join(rows) + "\n")
    return counts


def test_a_billion_requests_windowed_to_one_day_at_one_percent(tmp_path: Path) -> None:
    """98 days of per-minute counts adding up to ~1e9 requests: one day at 1 % is ~140k
    arrivals, drawn from the counts after the window and the scale, in modest memory."""
    path = tmp_path / "site.csv"
    counts = per_minute_csv(path, days=98, mean_per_minute=1e9 / (98 * 1440))
    assert counts.sum() > 0.99e9
    with pytest.raises(InputError, match=r"site\.csv: the window holds 1e\+09 requests"):
        load_workload(trace=str(path), workload=None, seed=0)
    tracemalloc.start()
    try:
        day = load_workload(
            trace=str(path),
            workload=None,
            seed=1,
            offset=3 * 86400,
            duration=86400,
            rate_scale=0.01,
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    expected = counts[3 * 1440 : 4 * 1440].sum() * 0.01
    assert abs(len(day) - expected) < 5 * np.sqrt(expected)  # binomial thinning, 5 sigma
    assert day.duration == 86400 and day.times.min() >= 0 and day.times.max() < 86400
    assert peak < 150 * 2**20, f"peak {peak / 2**20:.0f} MiB"  # the whole file as arrivals: 8 GB


def test_backtest_bins_count_traces_without_drawing_arrivals(tmp_path: Path) -> None:
    path = tmp_path / "site.csv"
    counts = per_minute_csv(path, days=2, mean_per_minute=1e7)  # 2.9e10: too many to draw
    label, rates = load_rate_series(
        300, trace=str(path), workload=None, seed=0, offset=3600, duration=7200
    )
    expected = counts[60:180].reshape(-1, 5).sum(axis=1) / 300
    assert label == str(path)
    np.testing.assert_allclose(rates, expected)


@settings(max_examples=30, deadline=None)
@given(offset=st.floats(0, 990), duration=st.floats(0.5, 1000) | st.none(), seed=st.integers(0, 9))
def test_a_window_of_counts_draws_the_arrivals_of_the_whole_trace_in_it(
    tmp_path_factory: pytest.TempPathFactory, offset: float, duration: float | None, seed: int
) -> None:
    """Cutting the counts first changes nothing: the same arrivals as cutting after drawing."""
    counts = np.random.default_rng(seed).poisson(3, 1000)
    path = tmp_path_factory.mktemp("w") / "counts.txt"
    path.write_text(" ".join(map(str, counts)))
    whole = load_trace(path, seed=seed).window(offset, duration)
    cut = load_workload(trace=str(path), workload=None, seed=seed, offset=offset, duration=duration)
    np.testing.assert_array_equal(cut.times, whole.times)
    assert cut.duration == whole.duration


def test_counts_split_across_read_blocks_are_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Blocks of a few bytes cut tokens and rows anywhere: the same counts, the same lines."""
    monkeypatch.setattr(traces, "_BLOCK", 5)
    monkeypatch.setattr(traces, "_ROWS_PER_BLOCK", 2)
    text = "12 345 6\n7890 1\n\n23 4 5678\n"
    expected = [12, 345, 6, 7890, 1, 23, 4, 5678]
    assert per_bin(load_trace(write(tmp_path, "w.txt", text, "gz")).times, 1.0, 8).tolist() == (
        expected
    )
    csv_text = "time,count\n" + "".join(f"{t},{t % 7}\n" for t in range(0, 100, 10))
    w = load_trace(write(tmp_path, "c.csv", csv_text, "tar.bz2"))
    assert per_bin(w.times, 10.0, 10).tolist() == [t % 7 for t in range(0, 100, 10)]
    with pytest.raises(InputError, match=r"b\.txt line 3: count 'x' \(value #6 in the file\)"):
        load_trace(write(tmp_path, "b.txt", "1 2 3\n4 5\n x 6\n"))
    with pytest.raises(InputError, match=r"d\.csv line 6: duplicate time '20'"):
        load_trace(write(tmp_path, "d.csv", "time,count\n0,1\n10,1\n20,1\n30,1\n20,1\n"))
