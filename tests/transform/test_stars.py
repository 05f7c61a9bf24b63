"""The pure star functions: source rows in, star rows out, Arrow types throughout."""

from __future__ import annotations

import datetime as dt
import decimal

import pyarrow as pa

from totesys_cli.schemas import source_table
from totesys_cli.schemas.arrow import VERSION, arrow_schema
from totesys_cli.transform import stars

T = dt.datetime(2025, 3, 7, 10, 12, 10, 140000)  # 10:12:10.14, a real value
BULK = dt.datetime(2024, 10, 31, 14, 20, 49, 962000)


def _source(table: str, rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=arrow_schema(source_table(table)))


def _address(n: int, **values) -> dict:
    return {
        "address_id": n,
        "address_line_1": "1 O'Connell Street",
        "address_line_2": None,
        "district": None,
        "city": "Leeds",
        "postal_code": "LS1",
        "country": "Lao People's Democratic Republic",
        "phone": "0113 000",
        "created_at": BULK,
        "last_updated": BULK,
        **values,
    }


def test_dim_location_keeps_nulls_and_apostrophes():
    rows = stars.dim_location(_source("address", [_address(1), _address(2, district="Avon")]))
    assert rows.column_names[:3] == ["location_id", "address_line_1", "address_line_2"]
    first, second = rows.to_pylist()
    assert first["address_line_1"] == "1 O'Connell Street"
    assert first["address_line_2"] is None and first["district"] is None
    assert second["district"] == "Avon"
    assert first[VERSION] == BULK


def test_dim_staff_joins_the_department_and_its_null_location():
    staff = _source(
        "staff",
        [
            {
                "staff_id": 4,
                "first_name": "Jeanette",
                "last_name": "O'Keefe",
                "department_id": 2,
                "email_address": "j@t.com",
                "created_at": BULK,
                "last_updated": BULK,
            }
        ],
    )
    department = _source(
        "department",
        [
            {
                "department_id": 2,
                "department_name": "Finance",
                "location": None,
                "manager": "x",
                "created_at": BULK,
                "last_updated": T,
            }
        ],
    )
    (row,) = stars.dim_staff(staff, department).to_pylist()
    assert row == {
        "staff_id": 4,
        "first_name": "Jeanette",
        "last_name": "O'Keefe",
        "department_name": "Finance",
        "location": None,
        "email_address": "j@t.com",
        VERSION: T,
    }


def test_dim_counterparty_takes_the_legal_address():
    counterparty = _source(
        "counterparty",
        [
            {
                "counterparty_id": 1,
                "counterparty_legal_name": "O'Hara LLC",
                "legal_address_id": 2,
                "commercial_contact": None,
                "delivery_contact": "x",
                "created_at": BULK,
                "last_updated": BULK,
            }
        ],
    )
    (row,) = stars.dim_counterparty(
        counterparty, _source("address", [_address(1), _address(2, last_updated=T, city="Dublin")])
    ).to_pylist()
    assert row["counterparty_legal_name"] == "O'Hara LLC"
    assert row["counterparty_legal_city"] == "Dublin"
    assert row["counterparty_legal_address_line_2"] is None
    assert row[VERSION] == T  # the newer of the two rows it was built from
    assert "commercial_contact" not in row


def test_dim_currency_names_come_from_iso_4217():
    rows = stars.dim_currency(
        _source(
            "currency",
            [
                {"currency_id": n, "currency_code": c, "created_at": BULK, "last_updated": BULK}
                for n, c in enumerate(["GBP", "USD", "EUR"], 1)
            ],
        )
    )
    assert rows.column("currency_name").to_pylist() == ["Pound Sterling", "US Dollar", "Euro"]


def test_dim_transaction_keeps_null_order_ids_as_integers():
    rows = stars.dim_transaction(
        _source(
            "transaction",
            [
                {
                    "transaction_id": 1,
                    "transaction_type": "SALE",
                    "sales_order_id": 5,
                    "purchase_order_id": None,
                    "created_at": BULK,
                    "last_updated": BULK,
                },
                {
                    "transaction_id": 2,
                    "transaction_type": "PURCHASE",
                    "sales_order_id": None,
                    "purchase_order_id": 3,
                    "created_at": BULK,
                    "last_updated": BULK,
                },
            ],
        )
    )
    assert rows.schema.field("sales_order_id").type == pa.int32()
    assert rows.column("sales_order_id").to_pylist() == [5, None]
    assert rows.column("purchase_order_id").to_pylist() == [None, 3]


def test_dim_date_is_iso_with_english_names():
    rows = stars.dim_date(dt.date(2025, 3, 30), dt.date(2025, 4, 1)).to_pylist()
    assert [r["date_id"] for r in rows] == [
        dt.date(2025, 3, 30),
        dt.date(2025, 3, 31),
        dt.date(2025, 4, 1),
    ]
    assert rows[0] == {
        "date_id": dt.date(2025, 3, 30),
        "year": 2025,
        "month": 3,
        "day": 30,
        "day_of_week": 7,
        "day_name": "Sunday",
        "month_name": "March",
        "quarter": 1,
    }
    assert (rows[1]["day_of_week"], rows[2]["quarter"], rows[2]["month_name"]) == (1, 2, "April")


def _sale(n: int, **values) -> dict:
    return {
        "sales_order_id": n,
        "created_at": T,
        "last_updated": BULK,
        "design_id": 1,
        "staff_id": 2,
        "counterparty_id": 3,
        "units_sold": 100,
        "unit_price": decimal.Decimal("2.99"),
        "currency_id": 1,
        "agreed_delivery_date": "2027-01-31",
        "agreed_payment_date": "2025-03-10",
        "agreed_delivery_location_id": 4,
        **values,
    }


def test_fact_sales_order_splits_stamps_keeps_milliseconds_and_decimals():
    rows = stars.fact_sales_order(_source("sales_order", [_sale(1), _sale(2)]))
    first = rows.to_pylist()[0]
    assert first == {
        "sales_order_id": 1,
        "created_date": dt.date(2025, 3, 7),
        "created_time": ((10 * 60 + 12) * 60 + 10) * 1000 + 140,  # milliseconds since midnight
        "last_updated_date": dt.date(2024, 10, 31),
        "last_updated_time": ((14 * 60 + 20) * 60 + 49) * 1000 + 962,
        "sales_staff_id": 2,
        "counterparty_id": 3,
        "units_sold": 100,
        "unit_price": decimal.Decimal("2.99"),
        "currency_id": 1,
        "design_id": 1,
        "agreed_payment_date": dt.date(2025, 3, 10),
        "agreed_delivery_date": dt.date(2027, 1, 31),
        "agreed_delivery_location_id": 4,
    }
    assert rows.schema.field("unit_price").type == pa.decimal128(10, 2)
    assert rows.schema.field("last_updated_time").type == pa.int32()  # Athena and Spark read it
    as_time = rows.column("last_updated_time").cast(pa.time32("ms")).to_pylist()
    assert as_time == [dt.time(14, 20, 49, 962000)] * 2


def test_fact_payment_drops_account_numbers():
    rows = stars.fact_payment(
        _source(
            "payment",
            [
                {
                    "payment_id": 1,
                    "created_at": T,
                    "last_updated": T,
                    "transaction_id": 1,
                    "counterparty_id": 2,
                    "payment_amount": decimal.Decimal("99999999.99"),
                    "currency_id": 1,
                    "payment_type_id": 3,
                    "paid": False,
                    "payment_date": "2025-03-08",
                    "company_ac_number": 12345678,
                    "counterparty_ac_number": 87654321,
                }
            ],
        )
    )
    (row,) = rows.to_pylist()
    assert "company_ac_number" not in row and row["paid"] is False
    assert row["payment_amount"] == decimal.Decimal("99999999.99")
    assert row["payment_date"] == dt.date(2025, 3, 8)


def _changed(value, column: str):
    """Another value of the same type (a date kept as text stays a date; a currency code
    stays one)."""
    if column == "currency_code":
        return "EUR" if value != "EUR" else "USD"
    if column.endswith("_date"):
        return "2030-01-02"
    if column in ("transaction_type", "payment_type_name"):
        return value + "_OTHER"
    if isinstance(value, bool):
        return not value
    if isinstance(value, dt.datetime):
        return value + dt.timedelta(days=1, milliseconds=7)
    if isinstance(value, str):
        return value + " changed"
    return value + 1


def test_the_columns_declared_not_kept_reach_no_star_table_and_the_others_do(source_url, tmp_path):
    """`kept` decides which bad values can set a version aside: it must say exactly
    which source columns some star table reflects."""
    from tests.support import Pipeline
    from totesys_cli.lake.files import read_parquet
    from totesys_cli.schemas import SOURCE_TABLES, STARS
    from totesys_cli.schemas.source import kept

    pipeline = Pipeline(source_url, None, tmp_path / "lake")
    extracted = pipeline.extract()
    rows = {
        name: read_parquet(
            pipeline.raw, extracted.manifest.files(name), arrow_schema(source_table(name))
        )
        for name in SOURCE_TABLES
    }

    def stars_of(inputs: dict[str, pa.Table]) -> dict[str, pa.Table]:
        built = {}
        for name, dim in STARS.items():
            if dim.source is not None:
                built[name] = stars.BUILD[name](
                    inputs[dim.source], *(inputs[p] for p in dim.parents)
                )
        return built

    before = stars_of(rows)
    for table in SOURCE_TABLES:
        for column in source_table(table).columns:
            if column.primary_key:
                continue
            values = rows[table].to_pylist()
            for row in values:
                row[column.name] = (
                    _changed(row[column.name], column.name)
                    if row[column.name] is not None
                    else None
                )
            changed = pa.Table.from_pylist(values, schema=rows[table].schema)
            try:
                after = stars_of({**rows, table: changed})
                reaches = any(not after[n].equals(before[n]) for n in before)
            except (ValueError, pa.ArrowInvalid):  # a link to no row: it reaches the join
                reaches = True
            assert reaches == kept(column), f"{table}.{column.name}"
