"""COPY in PostgreSQL's binary format brings every value exactly as the text format does.

The oracle is the server itself: the same Arrow table is copied once in binary and once
as CSV (which the server parses), into two tables of the same shape, and they must hold
the same rows; the values are also compared with what they were in Python. A column the
binary format cannot take without loss sends the whole COPY as CSV, and arrives too.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pytest
from sqlalchemy import text

from totesys_cli.db import binary, catalog, copy

_COLUMNS = """
    tiny smallint, small smallint, whole int, big bigint, flag boolean, day date,
    clock time, fine time, at timestamp, at_ms timestamp(3), at_s timestamp,
    money numeric(10, 2), wide numeric(38, 2), odd numeric(12, 6), small_fraction numeric(5, 5),
    count numeric, name text, code varchar(8)
"""

_DAYS = [dt.date(2000, 1, 1), dt.date(1999, 12, 31), dt.date(1, 1, 1), dt.date(9999, 12, 31)]
_TIMES = [dt.datetime(2000, 1, 1), dt.datetime(1999, 12, 31, 23, 59, 59, 999000)]
_TIMES += [dt.datetime(1, 1, 1, 0, 0, 0, 1000), dt.datetime(9999, 12, 31, 23, 59, 59, 999000)]
_MONEY = [Decimal("0"), Decimal("-0.01"), Decimal("99999999.99"), Decimal("-12345.67")]
_NAMES = ["plain", "", 'é, "quoted"\nand\ttabbed\\', None]


def _values(rows: int) -> dict[str, pa.Array]:
    """Every kind of value the load sends, the edges of each type, and NULLs here and
    there (each column has one in a different place, or none)."""

    def pick(choices, i, null_at=None):
        return None if null_at is not None and i % 7 == null_at else choices[i % len(choices)]

    r = range(rows)
    return {
        "tiny": pa.array([pick([-128, 127, 0], i) for i in r], pa.int8()),
        "small": pa.array([pick([-32768, 32767, 1], i, 2) for i in r], pa.int16()),
        "whole": pa.array([pick([-(2**31), 2**31 - 1, i], i) for i in r], pa.int32()),
        "big": pa.array([pick([-(2**63), 2**63 - 1, i], i, 3) for i in r], pa.int64()),
        "flag": pa.array([pick([True, False], i, 4) for i in r], pa.bool_()),
        "day": pa.array([pick(_DAYS, i, 5) for i in r], pa.date32()),
        "clock": pa.array(
            [pick([dt.time(0), dt.time(23, 59, 59, 999000), dt.time(12, 30)], i) for i in r],
            pa.time32("ms"),
        ),
        "fine": pa.array(
            [pick([dt.time(0, 0, 0, 1), dt.time(23, 59, 59, 999999)], i, 6) for i in r],
            pa.time64("us"),
        ),
        "at": pa.array([pick(_TIMES, i, 1) for i in r], pa.timestamp("us")),
        "at_ms": pa.array([pick(_TIMES, i) for i in r], pa.timestamp("ms")),
        "at_s": pa.array(
            [pick([_TIMES[0], dt.datetime(1950, 6, 1)], i) for i in r], pa.timestamp("s")
        ),
        "money": pa.array([pick(_MONEY, i, 0) for i in r], pa.decimal128(10, 2)),
        "wide": pa.array(
            [pick([Decimal("-999999999999999.99"), Decimal("0.5")], i) for i in r],
            pa.decimal128(38, 2),
        ),
        "odd": pa.array(
            [pick([Decimal("123456.123456"), Decimal("-0.000001")], i) for i in r],
            pa.decimal128(12, 6),
        ),
        "small_fraction": pa.array(
            [pick([Decimal("0.12345"), Decimal("-0.99999")], i) for i in r], pa.decimal128(5, 5)
        ),
        "count": pa.array(
            [pick([Decimal(10**17), Decimal(-1)], i) for i in r], pa.decimal128(18, 0)
        ),
        "name": pa.array([pick(_NAMES, i) for i in r], pa.string()),
        "code": pa.array([pick(["A-1", "ÅÄÖ"], i, 5) for i in r], pa.string()),
    }


def _copied_both_ways(pg, monkeypatch, table: pa.Table, columns: str) -> tuple[list, list]:
    """The rows as the binary COPY left them, and as the CSV COPY did."""
    held = []
    with pg.engine().connect() as conn:
        for form in ("binary", "csv"):
            conn.execute(text(f"CREATE TEMPORARY TABLE {form}_copy (n serial, {columns})"))
            if form == "csv":
                monkeypatch.setattr(binary, "encoders", lambda table, targets: None)
            copy.copy_in(conn, f"{form}_copy", table)
            names = ", ".join(table.column_names)
            held.append(conn.execute(text(f"SELECT {names} FROM {form}_copy ORDER BY n")).all())
        conn.rollback()
    return [tuple(r) for r in held[0]], [tuple(r) for r in held[1]]


def test_every_type_arrives_as_the_text_format_brings_it(pg, monkeypatch):
    """Slices of 5 rows over 40 rows in chunks of 9, so that each slice starts part-way
    through an Arrow buffer."""
    monkeypatch.setattr(copy, "COPY_IN_ROWS", 5)
    table = pa.table(_values(40))
    table = pa.Table.from_batches(table.to_batches(max_chunksize=9))
    with pg.engine().connect() as conn:
        conn.execute(text(f"CREATE TEMPORARY TABLE probe ({_COLUMNS})"))
        kinds = catalog.column_types(conn, "probe")
        conn.rollback()
    assert binary.encoders(table, [kinds[n] for n in table.column_names]) is not None
    sent, parsed = _copied_both_ways(pg, monkeypatch, table, _COLUMNS)
    assert sent == parsed
    assert sent == list(
        zip(*(table.column(n).to_pylist() for n in table.column_names), strict=True)
    )


def test_a_column_binary_cannot_take_exactly_sends_the_copy_as_text(pg, monkeypatch):
    """A bigint into an int column, a decimal bigger than 18 digits, a timestamp with a
    zone, a timestamp beyond the server's years: the whole COPY goes as CSV and arrives."""
    cases = [
        ("n int", pa.array([1, 2], pa.int64())),
        (
            "n numeric(38, 2)",
            pa.array([Decimal("12345678901234567890.12"), None], pa.decimal128(38, 2)),
        ),
        (
            "n timestamptz",
            pa.array([dt.datetime(2024, 1, 1, tzinfo=dt.UTC)], pa.timestamp("ms", "UTC")),
        ),
        ("n numeric(38, 0)", pa.array([Decimal(2**70)], pa.decimal128(38, 0))),
        ("n double precision", pa.array([1.5], pa.float64())),
    ]
    for column, values in cases:
        table = pa.table({"n": values})
        with pg.engine().connect() as conn:
            conn.execute(text(f"CREATE TEMPORARY TABLE probe ({column})"))
            kind = catalog.column_types(conn, "probe")["n"]
            assert binary.encoders(table, [kind]) is None, column
            copy.copy_in(conn, "probe", table)
            got = conn.execute(text("SELECT n FROM probe")).scalars().all()
            conn.rollback()
        assert got == values.to_pylist(), column


def test_values_the_server_refuses_are_not_wrapped_around(pg):
    """A timestamp past the server's last year would wrap around in 64 bits: it goes as
    text, and the server refuses it in one clear error instead of storing another date."""
    import pg8000.dbapi

    beyond = pa.array([0, 9_300_000_000_000_000], pa.int64()).cast(pa.timestamp("ms"))
    table = pa.table({"n": beyond})
    assert binary.encoders(table, ["timestamp without time zone"]) is None
    with pg.engine().connect() as conn:
        conn.execute(text("CREATE TEMPORARY TABLE probe (n timestamp)"))
        with pytest.raises(pg8000.dbapi.DatabaseError, match="out of range"):
            copy.copy_in(conn, "probe", table)
        conn.rollback()


def test_an_empty_table_copies_nothing(pg):
    table = pa.table({"n": pa.array([], pa.int32())})
    with pg.engine().connect() as conn:
        conn.execute(text("CREATE TEMPORARY TABLE probe (n int)"))
        copy.copy_in(conn, "probe", table)
        assert conn.execute(text("SELECT count(*) FROM probe")).scalar_one() == 0
        conn.rollback()
