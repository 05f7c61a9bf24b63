"""The first fill's own arithmetic, against Arrow's: each fact row finds its dimension
row by a binary search, and a key given twice is found."""

from __future__ import annotations

import random

import pyarrow as pa

from totesys_cli.warehouse.first_fill import _Lookup, _repeats


def _dimension(keys: list[int]) -> pa.Table:
    return pa.table(
        {
            "transaction_id": pa.array(keys, pa.int32()),
            "transaction_type": [f"type {k % 7}" if k % 5 else None for k in keys],
        }
    )


def test_each_row_finds_its_dimension_row_as_a_left_join_would():
    """Sparse keys in any order, rows naming keys the dimension lacks (null, as a left
    outer join), a key named many times, in several chunks."""
    chance = random.Random(7)
    held = chance.sample(range(1, 10**9), 5_000)
    wanted = [
        chance.choice(held) if chance.random() < 0.8 else chance.randrange(10**9)
        for _ in range(20_000)
    ]
    rows = pa.Table.from_batches(
        [
            pa.record_batch({"transaction_id": pa.array(part, pa.int32()), "n": range(len(part))})
            for part in (wanted[:7_000], wanted[7_000:])
        ]
    )
    dimension = _dimension(held)
    joined = _Lookup(dimension, "transaction_id").join(rows)
    expected = rows.join(dimension, "transaction_id").sort_by("n")
    assert joined.sort_by("n").select(expected.column_names).equals(expected)


def test_an_empty_dimension_gives_nulls():
    rows = pa.table({"transaction_id": pa.array([3, 4], pa.int32())})
    joined = _Lookup(_dimension([]), "transaction_id").join(rows)
    assert joined.column("transaction_type").to_pylist() == [None, None]


def test_a_key_given_twice_is_found_across_files():
    files = [pa.chunked_array([[5, 1, 9]]), pa.chunked_array([[2], [7, 8]])]
    assert not _repeats(files)
    assert _repeats([*files, pa.chunked_array([[8]])])
    assert not _repeats([])
