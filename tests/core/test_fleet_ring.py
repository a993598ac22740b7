"""FleetRing: hand-worked cases, and a property test against the scalar path it replaces."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

from autoscaler.fleet_ring import FleetRing
from autoscaler.policy import window_mean


def block(*rows: list[float]) -> np.ndarray:
    """A (3, len(rows), k) block whose three signals are `v`, `10 v` and `100 v` per row."""
    values = np.array(rows, dtype=float)
    return np.stack([values, 10 * values, 100 * values])


def arrivals(ring: FleetRing[str], key: str, seconds: int = 100) -> list[float]:
    return ring.tail(key, seconds)[1].tolist()


def test_wraparound_keeps_the_newest_seconds_contiguous() -> None:
    ring: FleetRing[str] = FleetRing(size=4)
    ring.add("a")
    ring.write(10, block([1, 2, 3]), np.array([0]))
    ring.write(13, block([4, 5, 6]), np.array([0]))  # wraps: seconds 13..15 go to columns 1..3
    assert ring.end == 16
    assert arrivals(ring, "a") == [30, 40, 50, 60]
    assert_array_equal(ring.tail("a", 2), [[5, 6], [50, 60], [500, 600]])
    sums, count = ring.window_sums(3)
    assert_array_equal(sums[:, 0], [15, 150, 1500])
    assert count.tolist() == [3]
    sums, count = ring.window_sums(60)  # capped at the size
    assert_array_equal(sums[:, 0], [18, 180, 1800])
    assert count.tolist() == [4]


def test_recent_is_a_read_only_view_of_every_row() -> None:
    ring: FleetRing[str] = FleetRing(size=4)
    ring.add("a")
    ring.add("b")
    assert ring.recent(3).shape == (3, 2, 3)
    ring.write(0, block([1, 2, 3]), np.array([0]))
    ring.write(3, block([4, 5], [6, 7]), np.array([0, 1]))
    recent = ring.recent(60)
    assert recent.tolist()[1] == [[20, 30, 40, 50], [0, 0, 60, 70]]
    assert not recent.flags.writeable
    assert np.shares_memory(recent, ring.recent(2))


def test_one_write_longer_than_the_ring_keeps_its_newest_seconds() -> None:
    ring: FleetRing[str] = FleetRing(size=3)
    ring.add("a")
    ring.write(0, block([1, 2, 3, 4, 5]), np.array([0]))
    assert arrivals(ring, "a") == [30, 40, 50]
    assert ring.observed().tolist() == [3]


def test_a_row_not_written_repeats_its_last_value() -> None:
    ring: FleetRing[str] = FleetRing(size=8)
    ring.add("a")
    ring.add("b")
    ring.write(0, block([1, 2], [7, 8]), np.array([0, 1]))
    ring.write(2, block([3, 4]), np.array([0]))  # b sends nothing: its 8 repeats
    assert arrivals(ring, "b") == [70, 80, 80, 80]
    ring.write(6, block([5], [9]), np.array([0, 1]))  # a gap for both: each repeats its own
    assert arrivals(ring, "a") == [10, 20, 30, 40, 40, 40, 50]
    assert arrivals(ring, "b") == [70, 80, 80, 80, 80, 80, 90]
    assert ring.observed().tolist() == [7, 7]


def test_advancing_past_the_whole_ring_repeats_the_last_value_everywhere() -> None:
    ring: FleetRing[str] = FleetRing(size=3)
    ring.add("a")
    ring.add("b")
    ring.write(0, block([1, 2], [5, 6]), np.array([0, 1]))
    ring.write(50, block([3]), np.array([0]))
    assert arrivals(ring, "a") == [20, 20, 30]
    assert arrivals(ring, "b") == [60, 60, 60]


def test_a_row_added_late_observes_only_what_it_was_written() -> None:
    ring: FleetRing[str] = FleetRing(size=10)
    ring.add("a")
    ring.write(0, block([1, 1, 1, 1]), np.array([0]))
    ring.add("b")
    assert ring.observed().tolist() == [4, 0]
    ring.write(4, block([1, 1]), np.array([0]))  # b still has nothing: it stays 0, observed 0
    sums, count = ring.window_sums(60)
    assert count.tolist() == [6, 0]
    assert_array_equal(sums[:, 1], 0)
    assert ring.tail("b", 60).shape == (3, 0)
    ring.write(6, block([2, 2], [4, 6]), np.array([0, 1]))
    sums, count = ring.window_sums(60)
    assert count.tolist() == [8, 2]
    assert sums[1, 1] / count[1] == window_mean(np.array([40.0, 60.0]), 60) == 50.0
    assert arrivals(ring, "b") == [40, 60]


def test_a_late_first_write_is_stored_and_counted_from_its_start() -> None:
    ring: FleetRing[str] = FleetRing(size=10)
    ring.add("a")
    ring.write(0, block([1, 2, 3, 4, 5]), np.array([0]))
    ring.add("b")
    ring.write(2, block([7, 8]), np.array([1]))  # seconds 2, 3 of b; 4 repeats its 8
    assert ring.end == 5
    assert arrivals(ring, "b") == [70, 80, 80]
    assert ring.observed().tolist() == [5, 3]
    assert arrivals(ring, "a") == [10, 20, 30, 40, 50]


def test_seconds_already_written_are_kept_and_repeats_are_replaced() -> None:
    ring: FleetRing[str] = FleetRing(size=10)
    ring.add("a")
    ring.add("b")
    ring.write(0, block([1, 2], [1, 2]), np.array([0, 1]))
    ring.write(2, block([3, 4, 5]), np.array([0]))  # b repeats 2 over seconds 2..4
    # b's seconds 1..3 arrive late: 1 is already stored (kept), 2..3 replace the repeats, and
    # second 4 now repeats the block's last value; a's seconds 1..2 are ignored entirely.
    ring.write(1, block([9, 9, 9], [6, 7, 8]), np.array([0, 1]))
    assert ring.end == 5
    assert arrivals(ring, "a") == [10, 20, 30, 40, 50]
    assert arrivals(ring, "b") == [10, 20, 70, 80, 80]
    assert ring.observed().tolist() == [5, 5]


def test_a_late_block_reaching_before_a_rows_first_second_does_not_extend_it() -> None:
    ring: FleetRing[str] = FleetRing(size=10)
    ring.add("a")
    ring.write(0, block([1] * 10), np.array([0]))
    ring.add("b")
    ring.write(10, block([1], [1]), np.array([0, 1]))
    # b's first second is 10: its seconds 8 and 9 are older than what it has written, so kept
    ring.write(8, block([2, 2, 2, 2], [2, 2, 2, 2]), np.array([0, 1]))
    assert ring.observed().tolist() == [10, 2]
    assert arrivals(ring, "b") == [10, 20]
    assert arrivals(ring, "a") == [10] * 9 + [20]


def test_removal_frees_a_row_that_is_reused_empty() -> None:
    ring: FleetRing[str] = FleetRing(size=5)
    for key in "abc":
        ring.add(key)
    ring.write(0, block([1], [2], [3]), np.array([0, 1, 2]))
    ring.remove("b")
    assert "b" not in ring
    assert sorted(ring.keys) == ["a", "c"]
    sums, count = ring.window_sums(5)
    assert count.tolist() == [1, 0, 1]
    assert_array_equal(sums[:, 1], 0)
    with pytest.raises(ValueError, match="not live"):
        ring.write(1, block([1]), np.array([1]))
    ring.write(1, block([1], [3]), np.array([0, 2]))  # the free row stays 0 as the axis moves
    assert ring.add("d") == 1
    assert ring.n_rows == 3
    assert ring.observed().tolist() == [2, 0, 2]
    assert ring.tail("d", 5).shape == (3, 0)
    ring.write(2, block([4], [5], [6]), np.array([0, 1, 2]))
    assert arrivals(ring, "d") == [50]
    assert ring.window_sums(5)[1].tolist() == [3, 1, 3]


def test_growth_doubles_the_capacity_and_keeps_the_data() -> None:
    ring: FleetRing[str] = FleetRing(size=4, capacity=2)
    ring.add("a")
    ring.add("b")
    ring.write(0, block([1, 2], [3, 4]), np.array([0, 1]))
    assert ring.add("c") == 2
    assert ring.capacity == 4
    ring.add("d")
    ring.add("e")
    assert ring.capacity == 8
    assert arrivals(ring, "a") == [10, 20]
    assert arrivals(ring, "b") == [30, 40]
    assert ring.observed().tolist() == [2, 2, 0, 0, 0]
    ring.write(2, block([5], [6]), np.array([4, 0]))
    assert arrivals(ring, "e") == [50]
    assert arrivals(ring, "b") == [30, 40, 40]


def test_invalid_use_is_refused() -> None:
    ring: FleetRing[str] = FleetRing(size=4)
    ring.add("a")
    with pytest.raises(ValueError, match="already has row"):
        ring.add("a")
    with pytest.raises(ValueError, match="block shape"):
        ring.write(0, np.zeros((3, 2, 1)), np.array([0]))
    with pytest.raises(ValueError, match="not live"):
        ring.write(0, np.zeros((3, 1, 1)), np.array([1]))
    with pytest.raises(KeyError):
        ring.remove("b")
    with pytest.raises(ValueError, match=">= 1"):
        FleetRing(size=0)


def test_reads_before_any_write_are_empty() -> None:
    ring: FleetRing[str] = FleetRing(size=4)
    ring.add("a")
    assert ring.end is None
    sums, count = ring.window_sums(60)
    assert sums.shape == (3, 1) and count.tolist() == [0]
    assert ring.tail("a", 10).shape == (3, 0)


# ---------------------------------------------------------------------- against the scalar path
class NaiveFleet:
    """Per-key history as Python lists of (3,) rows, as the scalar `SecondsRing` keeps it, plus
    the repeat over seconds a key was not written for. Aligned writes only (start >= end)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.history: dict[int, list[np.ndarray]] = {}
        self.end: int | None = None

    def add(self, key: int) -> None:
        self.history[key] = []

    def remove(self, key: int) -> None:
        del self.history[key]

    def write(self, start: int, k: int, values: dict[int, np.ndarray]) -> None:
        """Seconds [start, start + k) of the keys given."""
        assert self.end is None or start >= self.end
        new_end = start + k if self.end is None else max(self.end, start + k)
        for key, history in self.history.items():
            if history and self.end is not None:
                gap = (start if key in values else new_end) - self.end
                history.extend([history[-1]] * gap)
            if key in values:
                history.extend(values[key].T)
            del history[: -self.size]
        self.end = new_end

    def series(self, key: int) -> np.ndarray:
        """The (3, n) history the scalar ring would hold."""
        rows = self.history[key]
        return np.array(rows, dtype=np.float64).T if rows else np.zeros((3, 0))


class LateFleet:
    """The documented rules for writes at any start, second by second: per key the seconds
    really written (a second is taken when not older than the key's newest written one, nor
    than the window); every other second repeats the newest written second before it."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.written: dict[int, dict[int, np.ndarray]] = {}
        self.end: int | None = None

    def add(self, key: int) -> None:
        self.written[key] = {}

    def remove(self, key: int) -> None:
        del self.written[key]

    def write(self, start: int, k: int, values: dict[int, np.ndarray]) -> None:
        self.end = start + k if self.end is None else max(self.end, start + k)
        for key, block in values.items():
            seen = self.written[key]
            floor = max([self.end - self.size, *(second + 1 for second in seen)])
            seen.update({s: block[:, s - start] for s in range(max(start, floor), start + k)})

    def series(self, key: int) -> np.ndarray:
        seen = self.written[key]
        if not seen or self.end is None:
            return np.zeros((3, 0))
        seconds = range(max(min(seen), self.end - self.size), self.end)
        latest = [seen[max(s2 for s2 in seen if s2 <= s)] for s in seconds]
        return np.array(latest, dtype=np.float64).T


@st.composite
def operations(draw: st.DrawFn, late: bool) -> tuple[int, list[tuple]]:
    """A ring size and adds, removes and writes of random rows; a write starts `offset` seconds
    after the ring's end (negative: late data, only when `late`)."""
    size = draw(st.integers(1, 12))
    offsets = st.integers(-size - 3, 3) if late else st.sampled_from([0, 0, 0, 1, 3, size + 2])
    ops: list[tuple] = []
    for _ in range(draw(st.integers(1, 25))):
        kind = draw(st.sampled_from(["add", "remove", "write", "write", "write"]))
        if kind == "write":
            offset, k = draw(offsets), draw(st.integers(1, size + 3))
            pick = draw(st.lists(st.booleans(), min_size=12, max_size=12))
            rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
            values = rng.uniform(-50, 1000, (3, 12, k)).astype(np.float32)
            ops.append(("write", offset, k, pick, values))
        else:
            ops.append((kind, draw(st.integers(0, 11))))
    return size, ops


def replay(case: tuple[int, list[tuple]], model: NaiveFleet | LateFleet) -> None:
    """Run the operations on a ring (starting at capacity 1, so it grows) and on the model,
    comparing after each one."""
    size, ops = case
    ring: FleetRing[int] = FleetRing(size, capacity=1)
    next_key = 0
    for op in ops:
        if op[0] == "add":
            ring.add(next_key)
            model.add(next_key)
            next_key += 1
        elif op[0] == "remove" and len(ring):
            key = sorted(ring.keys)[op[1] % len(ring)]
            ring.remove(key)
            model.remove(key)
        elif op[0] == "write":
            _, offset, k, pick, values = op
            start = 0 if ring.end is None else ring.end + offset
            keys = [key for i, key in enumerate(sorted(ring.keys)[:12]) if pick[i]]
            rows = np.array([ring.row(key) for key in keys], dtype=np.intp)
            ring.write(start, values[:, : len(keys)], rows)
            model.write(start, k, {key: values[:, i] for i, key in enumerate(keys)})
        check(ring, model)


@settings(max_examples=200, deadline=None)
@given(operations(late=False))
def test_matches_the_scalar_path(case: tuple[int, list[tuple]]) -> None:
    replay(case, NaiveFleet(case[0]))


@settings(max_examples=200, deadline=None)
@given(operations(late=True))
def test_late_and_overlapping_writes_follow_the_documented_rules(
    case: tuple[int, list[tuple]],
) -> None:
    replay(case, LateFleet(case[0]))


def check(ring: FleetRing[int], naive: NaiveFleet | LateFleet) -> None:
    """Every window read of the ring against the scalar computation on the naive history."""
    assert ring.end == naive.end
    observed = ring.observed()
    for seconds in [1, 2, 5, ring.size, ring.size + 7]:
        sums, count = ring.window_sums(seconds)
        recent = ring.recent(seconds)
        means, expected = [], []
        for key in ring.keys:
            row, series = ring.row(key), naive.series(key)
            assert observed[row] == series.shape[1]
            assert np.array_equal(
                ring.tail(key, seconds), series[:, series.shape[1] - count[row] :]
            )
            padded = np.zeros((3, recent.shape[2]))  # zeros before the row's first second
            padded[:, padded.shape[1] - count[row] :] = series[:, series.shape[1] - count[row] :]
            assert np.array_equal(recent[:, row], padded)
            scalar = [window_mean(signal, seconds) for signal in series]
            if scalar[0] is None:
                assert count[row] == 0
                continue
            means.append(sums[:, row] / count[row])
            expected.append(scalar)
        # The ring sums float32 in float32: a mean of n <= 19 values up to 1000 may be off by
        # about n ulp(n * 1000) / 2 / n, i.e. at most ~1e-3.
        assert_allclose(np.array(means), np.array(expected, dtype=float), rtol=1e-6, atol=2e-3)
