"""COPY into a table from Arrow, a slice at a time: every row once, in order, exact."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
from sqlalchemy import text

from totesys_cli.db import copy


def test_a_table_bigger_than_a_slice_arrives_whole(pg, monkeypatch):
    """Slices of 3 rows over 10 rows in two chunks, with text that needs quoting,
    NULLs, decimals and times; and an empty table sends nothing."""
    monkeypatch.setattr(copy, "COPY_IN_ROWS", 3)
    names = ["plain", 'quoted, "with" a comma', "two\nlines", None, "é"]
    values = pa.table(
        {
            "n": pa.array(range(10), pa.int32()),
            "name": pa.array([names[i % 5] for i in range(10)]),
            "amount": pa.array([Decimal(i) / 4 for i in range(10)], pa.decimal128(10, 2)),
            "at": pa.array([dt.time(12, i) for i in range(10)], pa.time32("ms")),
        }
    )
    values = pa.Table.from_batches(values.to_batches(max_chunksize=4))
    with pg.engine().connect() as conn:
        conn.execute(
            text("CREATE TEMPORARY TABLE copied (n int, name text, amount numeric(10, 2), at time)")
        )
        copy.copy_in(conn, "copied", values)
        copy.copy_in(conn, "copied", values.slice(0, 0))
        got = conn.execute(text("SELECT n, name, amount, at FROM copied ORDER BY n")).all()
        conn.rollback()
    assert [tuple(r) for r in got] == [
        (i, names[i % 5], Decimal(i) / 4, dt.time(12, i)) for i in range(10)
    ]
