"""One pure function per star table: Arrow tables of source rows in, the star rows out.

No I/O here. Types stay Arrow types the whole way (decimals stay decimal128, nullable
integers stay integers), so nothing passes through floats. Dimension rows carry
`source_last_updated`, the source version they reflect (the newest of the rows they
were built from), which the load uses so that an older run never overwrites a newer
value.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.compute as pc

from totesys_cli.schemas.arrow import VERSION, output_schema


def _shape(name: str, columns: dict[str, pa.Array]) -> pa.Table:
    schema = output_schema(name)
    return pa.table({f.name: columns[f.name] for f in schema}).cast(schema)


def _date(column: pa.Array) -> pa.Array:
    return pc.cast(column, pa.date32())


def _time(column: pa.Array) -> pa.Array:
    """A timestamp's time of day, as the processed zone holds it: milliseconds since
    midnight (see `schemas.arrow`)."""
    return pc.cast(pc.cast(column, pa.time32("ms")), pa.int32())


def _text_date(source: pa.Table, column: str) -> pa.Array:
    """The source keeps some dates as YYYY-MM-DD text (checked before: see `checks`)."""
    return pc.cast(source.column(column), pa.date32())


def _stamps(source: pa.Table) -> dict[str, pa.Array]:
    created, updated = source.column("created_at"), source.column("last_updated")
    return {
        "created_date": _date(created),
        "created_time": _time(created),
        "last_updated_date": _date(updated),
        "last_updated_time": _time(updated),
    }


def _latest(*columns: pa.Array) -> pa.Array:
    return pc.max_element_wise(*columns, skip_nulls=True)


# ---------------------------------------------------------------- dimensions


def dim_location(address: pa.Table) -> pa.Table:
    columns = {c: address.column(c) for c in address.column_names}
    return _shape(
        "dim_location",
        {**columns, "location_id": address.column("address_id"), VERSION: columns["last_updated"]},
    )


def dim_counterparty(counterparty: pa.Table, address: pa.Table) -> pa.Table:
    """Counterparty joined to its legal address; the contacts are dropped."""
    legal = address.select(
        [
            "address_id",
            "address_line_1",
            "address_line_2",
            "district",
            "city",
            "postal_code",
            "country",
            "phone",
            "last_updated",
        ]
    ).rename_columns(
        [
            "legal_address_id",
            "counterparty_legal_address_line_1",
            "counterparty_legal_address_line_2",
            "counterparty_legal_district",
            "counterparty_legal_city",
            "counterparty_legal_postal_code",
            "counterparty_legal_country",
            "counterparty_legal_phone_number",
            "address_updated",
        ]
    )
    joined = counterparty.join(legal, "legal_address_id", join_type="left outer")
    columns = {c: joined.column(c) for c in joined.column_names}
    columns[VERSION] = _latest(columns["last_updated"], columns["address_updated"])
    return _shape("dim_counterparty", columns)


def dim_staff(staff: pa.Table, department: pa.Table) -> pa.Table:
    """Staff joined to their department's name and location."""
    joined = staff.join(
        department.select(
            ["department_id", "department_name", "location", "last_updated"]
        ).rename_columns(["department_id", "department_name", "location", "department_updated"]),
        "department_id",
        join_type="left outer",
    )
    columns = {c: joined.column(c) for c in joined.column_names}
    columns[VERSION] = _latest(columns["last_updated"], columns["department_updated"])
    return _shape("dim_staff", columns)


def currency_name(code: str) -> str:
    """The ISO 4217 name (codes without one are set aside before: see `checks`)."""
    import pycountry

    return pycountry.currencies.get(alpha_3=code).name


def dim_currency(currency: pa.Table) -> pa.Table:
    codes = currency.column("currency_code").to_pylist()
    names = pa.array([currency_name(code) for code in codes], pa.string())
    return _shape(
        "dim_currency",
        {
            "currency_id": currency.column("currency_id"),
            "currency_code": currency.column("currency_code"),
            "currency_name": names,
            VERSION: currency.column("last_updated"),
        },
    )


def dim_design(design: pa.Table) -> pa.Table:
    columns = {c: design.column(c) for c in design.column_names}
    return _shape("dim_design", {**columns, VERSION: columns["last_updated"]})


def dim_payment_type(payment_type: pa.Table) -> pa.Table:
    columns = {c: payment_type.column(c) for c in payment_type.column_names}
    return _shape("dim_payment_type", {**columns, VERSION: columns["last_updated"]})


def dim_transaction(transaction: pa.Table) -> pa.Table:
    columns = {c: transaction.column(c) for c in transaction.column_names}
    return _shape("dim_transaction", {**columns, VERSION: columns["last_updated"]})


def dim_date(first: dt.date, last: dt.date) -> pa.Table:
    """A continuous calendar; ISO day of week (Monday = 1), English names."""
    days = (last - first).days + 1
    dates = pa.array([first + dt.timedelta(days=n) for n in range(max(days, 0))], pa.date32())
    return _shape(
        "dim_date",
        {
            "date_id": dates,
            "year": pc.year(dates),
            "month": pc.month(dates),
            "day": pc.day(dates),
            "day_of_week": pc.day_of_week(dates, count_from_zero=False, week_start=1),
            "day_name": pc.strftime(dates, format="%A"),
            "month_name": pc.strftime(dates, format="%B"),
            "quarter": pc.quarter(dates),
        },
    )


# ---------------------------------------------------------------- facts


def fact_sales_order(sales_order: pa.Table) -> pa.Table:
    columns = {c: sales_order.column(c) for c in sales_order.column_names}
    return _shape(
        "fact_sales_order",
        {
            **columns,
            **_stamps(sales_order),
            "sales_staff_id": columns["staff_id"],
            "agreed_payment_date": _text_date(sales_order, "agreed_payment_date"),
            "agreed_delivery_date": _text_date(sales_order, "agreed_delivery_date"),
        },
    )


def fact_purchase_orders(purchase_order: pa.Table) -> pa.Table:
    columns = {c: purchase_order.column(c) for c in purchase_order.column_names}
    return _shape(
        "fact_purchase_orders",
        {
            **columns,
            **_stamps(purchase_order),
            "agreed_payment_date": _text_date(purchase_order, "agreed_payment_date"),
            "agreed_delivery_date": _text_date(purchase_order, "agreed_delivery_date"),
        },
    )


def fact_payment(payment: pa.Table) -> pa.Table:
    """Account numbers are dropped."""
    columns = {c: payment.column(c) for c in payment.column_names}
    return _shape(
        "fact_payment",
        {
            **columns,
            **_stamps(payment),
            "payment_date": _text_date(payment, "payment_date"),
        },
    )


# the function that builds each star table: dimensions from their source rows (and the
# parents' rows, joined in), facts from their source rows, the calendar from a span
BUILD = {
    "dim_date": dim_date,
    "dim_staff": dim_staff,
    "dim_location": dim_location,
    "dim_currency": dim_currency,
    "dim_design": dim_design,
    "dim_counterparty": dim_counterparty,
    "dim_payment_type": dim_payment_type,
    "dim_transaction": dim_transaction,
    "fact_sales_order": fact_sales_order,
    "fact_purchase_orders": fact_purchase_orders,
    "fact_payment": fact_payment,
}
