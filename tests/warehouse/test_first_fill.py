"""The first fill's own arithmetic, against Arrow's: each fact row finds its dimension
row by its key (a map of a byte per key, or a binary search), and a key given twice
is found."""

from __future__ import annotations

import random
from datetime import date, time
from decimal import Decimal

import pyarrow as pa
import pytest
from sqlalchemy import create_engine, text

from tests.support import run_here
from totesys_cli.schemas import SUMMARIES
from totesys_cli.schemas.arrow import warehouse_schema
from totesys_cli.schemas.summaries import of_fact
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
    """A dimension read in chunks, its labels coded per chunk, out of key order, some
    labels NULL: mapped while all its labels fit a byte's codes (100 and 100 make 200
    in all, more than fit; so do 300 in one), and each row finds its label as a left
    join of the plain rows does."""
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


def _purchases(n: int) -> pa.Table:
    """`n` purchase order rows, each of its own item (a group per row by item)."""
    chance = random.Random(11)
    values = {
        "purchase_order_id": range(1, n + 1),
        "created_date": [date(2024, 1, 1 + i % 28) for i in range(n)],
        "created_time": [time(12)] * n,
        "last_updated_date": [date(2024, 2, 1)] * n,
        "last_updated_time": [time(12)] * n,
        "staff_id": [1] * n,
        "counterparty_id": [1 + i % 3 for i in range(n)],
        "item_code": [f"ITEM{i:07d}" for i in range(n)],
        "item_quantity": [chance.randrange(1, 100) for _ in range(n)],
        "item_unit_price": [Decimal(chance.randrange(1, 10**6)) / 100 for _ in range(n)],
        "currency_id": [1 + i % 2 for i in range(n)],
        "agreed_delivery_date": [date(2024, 3, 1)] * n,
        "agreed_payment_date": [date(2024, 3, 2)] * n,
        "agreed_delivery_location_id": [1] * n,
    }
    return pa.table(values, warehouse_schema("fact_purchase_orders"))


def test_a_file_is_summed_a_slice_at_a_time(monkeypatch):
    """Grouping a whole file by a key of about a group per row (purchases by item)
    holds hash tables of several times the file: a file is grouped HELD_ROWS rows at a
    time, and its parts add up to what grouping it whole gives."""
    monkeypatch.setattr(first_fill, "HELD_ROWS", 1_000)
    sum_by, grouped, parts = first_fill._sum_by, [], {}

    def counted(table, summary):
        grouped.append(table.num_rows)
        return sum_by(table, summary)

    class Held:  # the parts as the sums are given them, without a database
        def __init__(self, conn, summary):
            self.held = parts.setdefault(summary.name, [])

        def add(self, part):
            self.held.append(part)

    monkeypatch.setattr(first_fill, "_sum_by", counted)
    monkeypatch.setattr(first_fill, "_Sums", Held)
    rows = _purchases(2_500)
    first_fill.FirstFill(None, "fact_purchase_orders").add(rows)
    assert len(grouped) == 2 * 3 and max(grouped) <= 1_000  # two summaries, three slices
    for summary in of_fact("fact_purchase_orders"):
        keys = [(k, "ascending") for k in summary.keys]
        whole = first_fill.FirstFill._summed(summary, rows).sort_by(keys)
        added = sum_by(pa.concat_tables(parts[summary.name]), summary).sort_by(keys)
        assert added.equals(whole)
        assert whole.num_rows > (2_000 if summary.name == "purchases_by_item" else 50)


def test_a_dimension_far_from_zero_is_mapped_over_its_span_only():
    """A backlog's file names transactions far from the first: the map covers the span
    of the dimension's keys, not every key from 0 (keys below 0 too), and each row still
    finds its label as a left join gives it."""
    for low in (10**8, 5_000_000, -2_000):
        keys = list(range(low, low + 3_000, 3))
        held = lookup.combined([lookup.labels_encoded(_dimension(keys))])
        found = Lookup(held, "transaction_id")
        assert len(found.maps.codes["transaction_type"]) == keys[-1] - low + 1
        rows = pa.table({"transaction_id": pa.array(range(low - 50, low + 3_050, 7), pa.int32())})
        expected = rows.join(_dimension(keys), "transaction_id", join_type="left outer")
        assert _pairs(found.join(rows)) == _pairs(expected)


@pytest.mark.parametrize("labels", [5, 200])
def test_a_dimension_read_in_chunks_is_mapped_as_they_arrive(labels):
    """Chunks in no key order (a later one reaching lower keys and higher), each with
    labels coded its own way, some NULL: each row finds its label as a left join of the
    plain rows gives it. More labels than a byte codes read the chunks again, whole,
    and every read goes to its end (a COPY left half-read loses its connection)."""
    chance = random.Random(9)
    spans = [(5_000, 6_000), (1_000, 2_500), (9_000, 9_400), (3_000, 4_000)]
    plain = []
    for low, high in spans:
        keys = chance.sample(range(low, high), (high - low) // 2)
        types = [f"t{chance.randrange(labels)}" if k % 13 else None for k in keys]
        plain.append(pa.table({"transaction_id": pa.array(keys, pa.int32()), "type": types}))
    reads, ends = [], []

    def chunks():
        reads.append(0)
        for table in plain:
            yield lookup.labels_encoded(table)
            reads[-1] += 1
        ends.append(len(reads))

    found = Lookup.read(chunks, "transaction_id")
    assert (found.maps is not None) == (labels == 5) and len(reads) == len(ends)
    assert reads == [len(spans)] * (1 if labels == 5 else 2)
    rows = pa.table({"transaction_id": pa.array(range(900, 9_500, 3), pa.int32())})
    expected = rows.join(pa.concat_tables(plain), "transaction_id", join_type="left outer")
    got = _pairs(found.join(rows))
    assert got == _pairs(expected)
    assert sum(v is not None for v in got.values()) > 500


@pytest.mark.parametrize("adding", [False, True])
def test_a_fact_file_finds_no_labels_in_an_empty_dimension(warehouse_url, adding):
    """The joined dimension read from the warehouse holds none of the file's keys (the
    COPY sends no rows): each row's label is null, for a first fill and an append."""
    assert run_here("init", "--warehouse-url", warehouse_url).returncode == 0
    summary = next(s for s in SUMMARIES if s.joined is not None)
    engine = create_engine(warehouse_url.replace("postgresql://", "postgresql+pg8000://"))
    rows = pa.table({summary.joined[1]: pa.array([4, 9], pa.int32())})
    with engine.connect() as conn:
        joined = first_fill.FirstFill(conn, summary.fact, adding)._joined(summary, rows)
        assert conn.execute(text("SELECT 1")).scalar_one() == 1  # the COPY was read through
    labels = [g.name for g in summary.groups if g.joined]
    assert labels and all(joined.column(n).to_pylist() == [None, None] for n in labels)
