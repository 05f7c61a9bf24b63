"""The warehouse, declared once: the star schemas and the bookkeeping schema.

Each star table's declaration also says how the pipeline builds and checks it: its
kind, the source table it is built from (key for key) and the source tables joined
into it, and for a fact the measures `verify` sums. `model` reads these; `totesys
init` creates exactly these tables (plus the indexes and views that `warehouse.shape`
adds).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    VARCHAR,
    BigInteger,
    Boolean,
    Column,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    Time,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP

from totesys_cli.schemas.source import Money, source_key

WAREHOUSE = MetaData()
META_SCHEMA = "totesys_meta"


@dataclass(frozen=True)
class Measure:
    """A sum `verify` reconciles per currency: the product of these columns, which have
    the same names in the source table and in the fact."""

    label: str
    columns: tuple[str, ...]


def _id(name: str) -> Column:
    return Column(name, Integer, primary_key=True, autoincrement=False)


def _ref(name: str, target: str, nullable: bool = False) -> Column:
    return Column(name, ForeignKey(target), nullable=nullable)


def _str(name: str, nullable: bool = False) -> Column:
    return Column(name, VARCHAR, nullable=nullable)


Table(
    "dim_date",
    WAREHOUSE,
    Column("date_id", Date, primary_key=True),
    Column("year", Integer, nullable=False),
    Column("month", Integer, nullable=False),
    Column("day", Integer, nullable=False),
    Column("day_of_week", Integer, nullable=False),
    _str("day_name"),
    _str("month_name"),
    Column("quarter", Integer, nullable=False),
    info={"kind": "calendar"},
)
Table(
    "dim_staff",
    WAREHOUSE,
    _id("staff_id"),
    _str("first_name"),
    _str("last_name"),
    _str("department_name"),
    _str("location", nullable=True),
    _str("email_address"),
    info={"kind": "dimension", "source": "staff", "parents": ("department",)},
)
Table(
    "dim_location",
    WAREHOUSE,
    _id("location_id"),
    _str("address_line_1"),
    _str("address_line_2", nullable=True),
    _str("district", nullable=True),
    _str("city"),
    _str("postal_code"),
    _str("country"),
    _str("phone"),
    info={"kind": "dimension", "source": "address"},
)
Table(
    "dim_currency",
    WAREHOUSE,
    _id("currency_id"),
    _str("currency_code"),
    _str("currency_name"),
    info={"kind": "dimension", "source": "currency"},
)
Table(
    "dim_design",
    WAREHOUSE,
    _id("design_id"),
    _str("design_name"),
    _str("file_location"),
    _str("file_name"),
    info={"kind": "dimension", "source": "design"},
)
Table(
    "dim_counterparty",
    WAREHOUSE,
    _id("counterparty_id"),
    _str("counterparty_legal_name"),
    _str("counterparty_legal_address_line_1"),
    _str("counterparty_legal_address_line_2", nullable=True),
    _str("counterparty_legal_district", nullable=True),
    _str("counterparty_legal_city"),
    _str("counterparty_legal_postal_code"),
    _str("counterparty_legal_country"),
    _str("counterparty_legal_phone_number"),
    info={"kind": "dimension", "source": "counterparty", "parents": ("address",)},
)
Table(
    "dim_payment_type",
    WAREHOUSE,
    _id("payment_type_id"),
    _str("payment_type_name"),
    info={"kind": "dimension", "source": "payment_type"},
)
Table(
    "dim_transaction",
    WAREHOUSE,
    _id("transaction_id"),
    _str("transaction_type"),
    Column("sales_order_id", Integer),
    Column("purchase_order_id", Integer),
    info={"kind": "dimension", "source": "transaction"},
)


def _fact(name: str, source: str, record_id: str, *columns: Column, measures=()) -> Table:
    """A fact table keeps one row per source version: (source key, last_updated)."""
    key = source_key(source)
    table = Table(
        name,
        WAREHOUSE,
        Column(record_id, Integer, primary_key=True, autoincrement=True),
        Column(key, Integer, nullable=False),
        _ref("created_date", "dim_date.date_id"),
        Column("created_time", Time, nullable=False),
        _ref("last_updated_date", "dim_date.date_id"),
        Column("last_updated_time", Time, nullable=False),
        *columns,
        info={"kind": "fact", "source": source, "record_id": record_id, "measures": measures},
    )
    Index(
        f"{name}_version_key",
        table.c[key],
        table.c.last_updated_date,
        table.c.last_updated_time,
        unique=True,
    )
    return table


_fact(
    "fact_sales_order",
    "sales_order",
    "sales_record_id",
    _ref("sales_staff_id", "dim_staff.staff_id"),
    _ref("counterparty_id", "dim_counterparty.counterparty_id"),
    Column("units_sold", Integer, nullable=False),
    Column("unit_price", Money, nullable=False),
    _ref("currency_id", "dim_currency.currency_id"),
    _ref("design_id", "dim_design.design_id"),
    _ref("agreed_payment_date", "dim_date.date_id"),
    _ref("agreed_delivery_date", "dim_date.date_id"),
    _ref("agreed_delivery_location_id", "dim_location.location_id"),
    measures=(
        Measure("units_sold", ("units_sold",)),
        Measure("value", ("units_sold", "unit_price")),
    ),
)
_fact(
    "fact_purchase_orders",
    "purchase_order",
    "purchase_record_id",
    _ref("staff_id", "dim_staff.staff_id"),
    _ref("counterparty_id", "dim_counterparty.counterparty_id"),
    _str("item_code"),
    Column("item_quantity", Integer, nullable=False),
    Column("item_unit_price", Money, nullable=False),
    _ref("currency_id", "dim_currency.currency_id"),
    _ref("agreed_delivery_date", "dim_date.date_id"),
    _ref("agreed_payment_date", "dim_date.date_id"),
    _ref("agreed_delivery_location_id", "dim_location.location_id"),
    measures=(
        Measure("item_quantity", ("item_quantity",)),
        Measure("value", ("item_quantity", "item_unit_price")),
    ),
)
_fact(
    "fact_payment",
    "payment",
    "payment_record_id",
    _ref("transaction_id", "dim_transaction.transaction_id"),
    _ref("counterparty_id", "dim_counterparty.counterparty_id"),
    Column("payment_amount", Money, nullable=False),
    _ref("currency_id", "dim_currency.currency_id"),
    _ref("payment_type_id", "dim_payment_type.payment_type_id"),
    Column("paid", Boolean, nullable=False),
    _ref("payment_date", "dim_date.date_id"),
    measures=(Measure("payment_amount", ("payment_amount",)),),
)

STAR_TABLES: tuple[str, ...] = tuple(WAREHOUSE.tables)


def star_table(name: str) -> Table:
    return WAREHOUSE.tables[name]


def latest_view_name(fact: str) -> str:
    return f"{fact}_latest"


def data_columns(table: Table) -> list[str]:
    """The columns a pipeline writes: all but a fact's serial record id."""
    record_id = table.info.get("record_id")
    return [c.name for c in table.columns if c.name != record_id]


# ---------------------------------------------------------------- bookkeeping (totesys_meta)

META = MetaData(schema=META_SCHEMA)
LOADED_RUNS = Table(
    "loaded_runs",
    META,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("run_id", Text, nullable=False),
    Column("snapshot_time", TIMESTAMP(precision=6)),
    Column("min_last_updated", TIMESTAMP(precision=3)),
    Column("max_last_updated", TIMESTAMP(precision=3)),
    Column("rows", Integer, nullable=False),
    Column("loaded_at", TIMESTAMP(timezone=True), nullable=False, server_default=text("now()")),
    Column("reloaded_at", TIMESTAMP(timezone=True)),
)
DIMENSION_VERSIONS = Table(
    "dimension_versions",
    META,
    Column("dimension", Text, primary_key=True),
    Column("key", Integer, primary_key=True, autoincrement=False),
    Column("source_last_updated", TIMESTAMP(precision=3), nullable=False),
)
LINEAGE = Table(  # the processed zone this warehouse is loaded from: one row
    "lineage",
    META,
    Column("processed_zone", Text, primary_key=True),
    Column("processed_url", Text, nullable=False),
    Column("since", TIMESTAMP(timezone=True), nullable=False, server_default=text("now()")),
)
RUNS = Table(  # every run of every writing command, written apart from the run's own work
    "runs",
    META,
    Column("run_id", Text, primary_key=True),
    Column("command", Text, nullable=False),
    Column("started_at", TIMESTAMP(timezone=True), nullable=False),
    Column("max_runtime", Float),  # seconds, the run's --max-runtime
    Column("ended_at", TIMESTAMP(timezone=True)),
    Column("outcome", Text),  # succeeded, failed, locked
    Column("exit_code", Integer),
    Column("error", Text),
    Column("rows", JSONB),  # step -> table -> rows
    Column("seconds", JSONB),  # step -> seconds
    Column("lake_runs", JSONB),  # step -> the runs it committed (loaded, for the load)
)
# the newest runs, read by every run's pace and every page view: a year of ten-minute
# runs is 52,560 rows, which they would otherwise sort in full
Index("runs_started_at", RUNS.c.started_at)
QUARANTINE = Table(
    "quarantine",
    META,
    Column("source_table", Text, primary_key=True),
    Column("key", BigInteger, primary_key=True, autoincrement=False),
    Column("version", Text, primary_key=True),  # last_updated as text: a bad one may not be one
    Column("column_name", Text, primary_key=True),
    Column("kind", Text, primary_key=True),
    Column("last_updated", TIMESTAMP(precision=3)),
    Column("value", Text),
    Column("reason", Text, nullable=False),
    Column("raw_seq", Integer, nullable=False),  # the raw run the version was read in
    Column("found_in", Integer, nullable=False),  # the processed run that carried it
    Column("found_at", TIMESTAMP(timezone=True), nullable=False, server_default=text("now()")),
    Column("resolved_in", Integer),
    Column("resolved_at", TIMESTAMP(timezone=True)),
)
DELETIONS = Table(  # keys deleted in the source, as the load recorded them
    "deletions",
    META,
    Column("source_table", Text, primary_key=True),
    Column("key", BigInteger, primary_key=True, autoincrement=False),
    Column("deleted_in", Integer, primary_key=True, autoincrement=False),  # the processed run
    Column("star_table", Text),  # the star table built from the source table (None: none)
    Column("deleted_at", TIMESTAMP(precision=3), nullable=False),  # the source's clock, found gone
    Column("raw_seq", Integer, nullable=False),  # the raw run that found it gone
    Column("last_version", TIMESTAMP(precision=3)),  # the newest version the warehouse held
    Column("kept", Boolean, nullable=False),  # a dimension row kept: facts reference it
    Column("recorded_at", TIMESTAMP(timezone=True), nullable=False, server_default=text("now()")),
    # the processed run that brought a newer version of the key: the deletion ended
    Column("ended_in", Integer),
    Column("ended_at", TIMESTAMP(timezone=True)),
)
# one open deletion per key: what the *_latest views and verify leave out
Index(
    "deletions_open",
    DELETIONS.c.source_table,
    DELETIONS.c.key,
    unique=True,
    postgresql_where=DELETIONS.c.ended_in.is_(None),
)
