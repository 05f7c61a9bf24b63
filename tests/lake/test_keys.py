"""Key sets as intervals: what the lake keeps of every key a table has shown."""

from __future__ import annotations

import numpy as np

from totesys_cli.lake import keys


def test_keys_become_merged_intervals_and_back():
    held = keys.from_keys(np.array([5, 1, 2, 3, 9, 10, 2]))
    assert held == [[1, 3], [5, 5], [9, 10]]
    assert keys.count(held) == 6
    assert keys.spelled_out(held).tolist() == [1, 2, 3, 5, 9, 10]
    assert keys.from_keys(np.array([], dtype=np.int64)) == []


def test_adding_keys_merges_what_touches():
    assert keys.add([[1, 3], [9, 10]], [4, 5, 8]) == [[1, 5], [8, 10]]
    assert keys.add([], [7]) == [[7, 7]]


def test_missing_keys_are_those_no_interval_holds():
    assert keys.missing([[1, 3], [9, 10]], [0, 1, 4, 9, 11, 4]).tolist() == [0, 4, 11]
    assert keys.missing([], [2, 1]).tolist() == [1, 2]


def test_subtracting_intervals_leaves_the_rest_as_intervals():
    held = [[1, 10], [20, 30]]
    assert keys.subtract(held, [[3, 4], [8, 22], [30, 40]]) == [[1, 2], [5, 7], [23, 29]]
    assert keys.subtract(held, []) == held
    assert keys.subtract([], held) == []
    rng = np.random.default_rng(7)
    a = keys.from_keys(rng.integers(0, 500, 300))
    b = keys.from_keys(rng.integers(0, 500, 300))
    expected = np.setdiff1d(keys.spelled_out(a), keys.spelled_out(b))
    assert keys.spelled_out(keys.subtract(a, b)).tolist() == expected.tolist()


def test_unique_keys_are_sorted_once_each_as_numpy_would_give_them():
    rng = np.random.default_rng(7)
    drawn = rng.integers(-50, 50, 1_000)
    assert keys.unique(drawn).tolist() == sorted(set(drawn.tolist()))
    assert keys.unique(np.array([3])).tolist() == [3]
    assert keys.unique([]).tolist() == []


def test_millions_of_distinct_keys_take_a_sort_not_a_hash():
    """A first run's census and closure see every key of the big tables: numpy's own
    unique takes seconds on 4 million distinct keys (it hashes them), a sort a tenth of
    a second."""
    import time

    shuffled = np.random.default_rng(7).permutation(4_000_000)
    started = time.perf_counter()
    assert keys.from_keys(shuffled) == [[0, 3_999_999]]
    assert keys.missing([[0, 1_999_999]], shuffled).size == 2_000_000
    assert time.perf_counter() - started < 1.0
