"""The first fill's own arithmetic, against Arrow's: each fact row finds its dimension
row by its key (a map of a byte per key, or a binary search), and a key given twice
is found."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest
from sqlalchemy import create_engine, text

from tests.support import run_here
from totesys_cli.schemas import SUMMARIES
from totesys_cli.warehouse import first_fill, lookup
from totesys_cli.warehouse.lookup import Lookup
from totesys_cli.warehouse.upkeep import summed_columns


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
    rows = pa.Table.from_batches(  # `n` numbers the rows across the chunks: a sort's key
        [
            pa.record_batch({"transaction_id": pa.array(wanted[a:b], pa.int32()), "n": range(a, b)})
            for a, b in ((0, 7_000), (7_000, len(wanted)))
        ]
    )
    dimension = _dimension(held)
    joined = Lookup(dimension, "transaction_id").join(rows)
    expected = rows.join(dimension, "transaction_id").sort_by("n")
    assert joined.sort_by("n").select(expected.column_names).equals(expected)


def _pairs(table: pa.Table) -> dict:
    return dict(zip(*(table.column(c).to_pylist() for c in table.column_names), strict=True))


@pytest.mark.parametrize("labels", [(2, 2), (100, 100), (3, 300)])
def test_labels_read_in_chunks_are_joined_as_read(labels):
    """A dimension read in chunks, its labels coded per chunk in a byte while they fit
    (100 and 100 make 200 in all; 300 do not fit one), out of key order, some labels
    NULL: each row finds its label as a left join of the plain rows does."""
    chance = random.Random(5)
    plain = []
    for n, count in enumerate(labels):
        keys = chance.sample(range(n * 1000, n * 1000 + 900), 500)
        plain.append(
            pa.table(
                {
                    "transaction_id": pa.array(keys, pa.int32()),
                    "transaction_type": [
                        f"{n}-{chance.randrange(count)}" if k % 11 else None for k in keys
                    ],
                }
            )
        )
    held = lookup.combined([lookup.labels_encoded(t) for t in plain])
    rows = pa.table({"transaction_id": pa.array(range(0, 2000, 3), pa.int32())})
    found = Lookup(held, "transaction_id")
    # labels that all fit a byte's codes are a map by key; more, found by a binary search
    assert (found.maps is not None) == (labels == (2, 2))
    joined = found.join(rows)
    expected = rows.join(pa.concat_tables(plain), "transaction_id", join_type="left outer")
    got = _pairs(joined)
    assert got == _pairs(expected)
    assert sum(v is not None for v in got.values()) > 250


def test_an_empty_dimension_gives_nulls():
    rows = pa.table({"transaction_id": pa.array([3, 4], pa.int32())})
    joined = Lookup(_dimension([]), "transaction_id").join(rows)
    assert joined.column("transaction_type").to_pylist() == [None, None]


def _repeat(*files: list[list[int]]) -> bool:
    keys = first_fill._Keys()
    for chunks in files:
        keys.add(pa.chunked_array(chunks, pa.int32()))
    return keys.repeat()


def test_a_key_given_twice_is_found_across_files():
    files = [[[5, 1, 9]], [[2], [7, 8]]]
    assert not _repeat(*files)
    assert _repeat(*files, [[8]])  # in an earlier file
    assert _repeat([[3, 4, 3]])  # within one file
    assert _repeat([[40, 2]], [[41, 1]], [[70, 41]])  # spans that overlap
    assert not _repeat([[40, 2]], [[41, 1]], [[70, 42]], [[]])
    assert not _repeat()


def test_keys_beyond_the_map_are_kept_and_compared_with_the_mapped_ones(monkeypatch):
    monkeypatch.setattr(first_fill, "MAPPED_KEYS", 100)
    assert not _repeat([[5, 150]], [[-3, 6]], [[7]])
    assert _repeat([[5, 150]], [[-3, 6]], [[150]])  # both kept
    assert _repeat([[5, 150]], [[-3, 6]], [[7, 5]])  # a mapped key given again
    assert _repeat([[5, 150]], [[-3, 5]])  # a kept file repeating a mapped key


def test_sums_beyond_what_is_held_are_added_up_by_the_database(warehouse_url, monkeypatch):
    """Parts of partial sums, some past HELD_ROWS (moved to the database) and some left
    in memory at the end: every group's sums, once, as adding them up in Python gives."""
    monkeypatch.setattr(first_fill, "HELD_ROWS", 25)
    assert run_here("init", "--warehouse-url", warehouse_url).returncode == 0
    summary = next(s for s in SUMMARIES if s.name == "sales_by_design")
    names = [*summary.keys, *summed_columns(summary)]
    chance = random.Random(3)
    parts = [
        pa.table({n: pa.array([chance.randrange(1, 6) for _ in range(size)]) for n in names})
        for size in (10, 30, 5, 12, 3)  # moved to the database after the second: 20 left
    ]
    expected: dict[tuple, list[int]] = {}
    for part in parts:
        for row in part.to_pylist():
            sums = expected.setdefault(tuple(row[k] for k in summary.keys), [0] * (len(names)))
            for i, n in enumerate(names[len(summary.keys) :]):
                sums[i] += row[n]
    engine = create_engine(warehouse_url.replace("postgresql://", "postgresql+pg8000://"))
    with engine.connect() as conn:
        sums = first_fill._Sums(conn, summary)
        for part in parts:
            sums.add(part)
        assert sums.spilled and sums.rows == 20
        conn.execute(text(f"DELETE FROM {summary.fullname}"))
        sums.into(summary.fullname)
        got = conn.execute(text(f"SELECT {', '.join(names)} FROM {summary.fullname}")).all()
        conn.rollback()
    width = len(summary.keys)
    assert {tuple(r[:width]): [int(v) for v in r[width:]] for r in got} == {
        k: v[: len(names) - width] for k, v in expected.items()
    }
    assert len(got) == len(expected)
