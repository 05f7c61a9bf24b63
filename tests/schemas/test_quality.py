"""The rules that set a bad value aside, one by one, on Arrow columns."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa

from totesys_cli.config.settings import Bounds
from totesys_cli.schemas import quality

T = dt.datetime(2026, 11, 30, 10, 0, 0)


def _findings(n: int) -> quality.Findings:
    stamps = pa.array([T] * n, pa.timestamp("ms"))
    return quality.Findings("sales_order", pa.array(range(1, n + 1), pa.int32()), stamps, 4)


def _kinds(findings: quality.Findings) -> list[tuple[int, str, str]]:
    return [(e["key"], e["column"], e["kind"]) for e in findings.entries().to_pylist()]


def test_text_dates_must_be_real_iso_calendar_dates_in_range():
    values = ["2026-12-05", "2026-13-45", "20261205", "05/12/2026", "2026-02-30", "2999-12-31"]
    rows = pa.table({"d": pa.array(values)})
    findings = _findings(len(values))
    dates = quality.text_dates(findings, rows, "d", Bounds())
    assert _kinds(findings) == [
        (2, "d", "not_a_date"),
        (3, "d", "not_a_date"),
        (4, "d", "not_a_date"),
        (5, "d", "not_a_date"),  # February has no 30th, whatever strptime says
        (6, "d", "implausible"),
    ]
    assert dates.to_pylist()[0] == dt.date(2026, 12, 5)
    assert findings.good(rows).column("d").to_pylist() == ["2026-12-05"]


def test_values_read_as_text_fit_their_types_without_loss_or_are_set_aside():
    schema = pa.schema(
        [
            ("price", pa.decimal128(10, 2)),
            ("units", pa.int32()),
            ("at", pa.timestamp("ms")),
            ("paid", pa.bool_()),
        ]
    )
    text = pa.table(
        {
            "price": ["2.5000", "1.2345", "1234567890.12", "12345678.90", None],
            "units": ["3", "3000000000", "-2147483648", "1", "2"],
            "at": [
                "2026-11-30 10:00:00.12",
                "2026-11-30 10:00:00.123456",
                "infinity",
                "-infinity",
                "2026-11-30 10:00:00",
            ],
            "paid": ["t", "f", "t", "x", "f"],
        }
    )
    findings = _findings(5)
    converted, blanked = quality.convert(findings, text, schema, set(schema.names))
    assert blanked == {}
    assert sorted(_kinds(findings)) == [
        (2, "at", "does_not_fit"),
        (2, "price", "does_not_fit"),
        (2, "units", "does_not_fit"),
        (3, "at", "in_the_future"),
        (3, "price", "does_not_fit"),
        (4, "at", "implausible"),
        (4, "paid", "does_not_fit"),
    ]
    good = findings.good(converted).to_pylist()
    assert [r["price"] for r in good] == [Decimal("2.50"), None]
    assert [r["units"] for r in good] == [3, 2]
    assert good[0]["at"] == dt.datetime(2026, 11, 30, 10, 0, 0, 120000)


def test_nulls_dates_out_of_range_and_the_future_are_found_once_per_value():
    rows = pa.table(
        {
            "name": pa.array(["a", None, "c"]),
            "created_at": pa.array([T, dt.datetime(1850, 1, 1), T], pa.timestamp("ms")),
            "last_updated": pa.array([T, T, dt.datetime(2099, 1, 1)], pa.timestamp("ms")),
        }
    )
    findings = quality.Findings("design", pa.array([1, 2, 3]), rows.column("last_updated"), 1)
    quality.check_missing(findings, rows, ["name"])
    quality.check_plausible(findings, rows, ["created_at", "last_updated"], Bounds())
    quality.check_not_after(findings, rows, "last_updated", T + dt.timedelta(minutes=5))
    assert _kinds(findings) == [
        (2, "name", "missing"),
        (2, "created_at", "implausible"),
        (3, "last_updated", "in_the_future"),
    ]
    assert findings.good(rows).column("name").to_pylist() == ["a"]
    # the version names the row as it stands, the 2099 one included
    versions = {e["key"]: e["version"] for e in findings.entries().to_pylist()}
    assert versions[3] == "2099-01-01 00:00:00.000"


def test_a_column_the_warehouse_does_not_hold_sets_nothing_aside():
    """Its value that does not fit is left empty and counted; the version goes through."""
    schema = pa.schema([("units", pa.int32()), ("account", pa.int32())])
    text = pa.table({"units": ["1", "2"], "account": ["5000000000", "7"]})
    findings = _findings(2)
    converted, blanked = quality.convert(findings, text, schema, {"units"})
    assert _kinds(findings) == [] and blanked == {"account": 1}
    assert findings.good(converted).to_pylist() == [
        {"units": 1, "account": None},
        {"units": 2, "account": 7},
    ]


def test_bytes_that_are_not_utf8_are_escaped_and_pointed_out():
    raw = pa.table(
        {
            "name": pa.array([b"Jos\xe9 M\xfcller", b"plain", None], pa.binary()),
            "city": pa.array([b"Leeds", b"York", b"Hull"], pa.binary()),
        }
    )
    strings, invalid = quality.texts(raw)
    assert strings.column("name").to_pylist() == ["Jos\\xe9 M\\xfcller", "plain", None]
    assert strings.column("city").to_pylist() == ["Leeds", "York", "Hull"]
    assert list(invalid) == ["name"] and invalid["name"].to_pylist() == [True, False, False]
