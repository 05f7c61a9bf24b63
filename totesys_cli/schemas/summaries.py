"""The summaries the load keeps beside the facts, declared once.

Each summary holds, per day (or over all time), currency and the dimensions a chart
groups by, the count and sums of the latest version of each fact row: what the
dashboard reads instead of the facts' million versions. The load keeps them current
in the transaction that changes the facts (`warehouse.upkeep`); `verify` checks them
against the facts.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    VARCHAR,
    BigInteger,
    Boolean,
    Column,
    Date,
    Integer,
    Numeric,
    Table,
    Text,
)

from totesys_cli.schemas.warehouse import META


@dataclass(frozen=True)
class Group:
    name: str  # the summary's column, and the fact's (or its joined dimension's)
    type: type
    joined: bool = False  # a column of the summary's joined dimension, not of the fact

    @property
    def expression(self) -> str:
        """In SQL, over the fact row `f` and the joined dimension `t`."""
        return f"{'t' if self.joined else 'f'}.{self.name}"


@dataclass(frozen=True)
class Summary:
    table: Table
    fact: str
    day: str | None  # the fact's date column the figures filter on; None: all time
    groups: tuple[Group, ...]
    counted: str  # the column counting the latest versions
    measures: dict[str, tuple[str, ...]]  # column -> the fact's columns whose product it sums
    joined: tuple[str, str] | None = None  # (dimension, key): a dimension the groups read, as `t`

    @property
    def name(self) -> str:
        return self.table.name

    @property
    def fullname(self) -> str:
        return self.table.fullname

    @property
    def keys(self) -> list[str]:
        days = [self.day] if self.day else []
        return [*days, "currency_id", *(g.name for g in self.groups)]


def _summary(
    name: str,
    fact: str,
    day: str | None,
    groups: tuple[Group, ...],
    counted: str,
    measures: dict[str, tuple[str, ...]],
    joined: tuple[str, str] | None = None,
) -> Summary:
    table = Table(
        name,
        META,
        *([Column(day, Date, primary_key=True)] if day else []),
        Column("currency_id", Integer, primary_key=True, autoincrement=False),
        *(Column(g.name, g.type, primary_key=True, autoincrement=False) for g in groups),
        Column(counted, BigInteger, nullable=False),
        *(Column(m, Numeric, nullable=False) for m in measures),
    )
    return Summary(table, fact, day, groups, counted, measures, joined)


_SALES = {"units": ("units_sold",), "revenue": ("units_sold", "unit_price")}
_PURCHASES = {"quantity": ("item_quantity",), "spend": ("item_quantity", "item_unit_price")}


def _by(column: str, kind: type = Integer) -> tuple[Group, ...]:
    return (Group(column, kind),)


SUMMARIES: tuple[Summary, ...] = (
    _summary(
        "sales_by_day_location",
        "fact_sales_order",
        "created_date",
        _by("agreed_delivery_location_id"),
        "orders",
        _SALES,
    ),
    _summary(
        "sales_by_day_staff",
        "fact_sales_order",
        "created_date",
        _by("sales_staff_id"),
        "orders",
        _SALES,
    ),
    # the rankings over all time (the first view): a ranking reads one row per label
    # instead of one per label and day
    _summary("sales_by_design", "fact_sales_order", None, _by("design_id"), "orders", _SALES),
    _summary(
        "purchases_by_day_counterparty",
        "fact_purchase_orders",
        "created_date",
        _by("counterparty_id"),
        "orders",
        _PURCHASES,
    ),
    _summary(
        "purchases_by_item",
        "fact_purchase_orders",
        None,
        _by("item_code", VARCHAR),
        "orders",
        _PURCHASES,
    ),
    _summary(
        "payments_by_day",
        "fact_payment",
        "payment_date",
        (Group("transaction_type", Text, joined=True), Group("paid", Boolean)),
        "payments",
        {"amount": ("payment_amount",)},
        joined=("dim_transaction", "transaction_id"),
    ),
)


def summary(name: str) -> Summary:
    return next(s for s in SUMMARIES if s.name == name)


def of_fact(fact: str) -> tuple[Summary, ...]:
    return tuple(s for s in SUMMARIES if s.fact == fact)
