"""The source and warehouse schemas, declared once.

DDL, Arrow schemas, COPY column lists, the sample generator and the tests all read
these declarations, so a column changes in exactly one place.
"""

from __future__ import annotations

from sqlalchemy import (
    VARCHAR,
    Boolean,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    Table,
    Text,
    Time,
    text,
)
from sqlalchemy.dialects.postgresql import ENUM, TIMESTAMP

# ---------------------------------------------------------------- source (totesys)

SOURCE = MetaData()

PAYMENT_TYPE_NAMES = ("SALES_RECEIPT", "SALES_REFUND", "PURCHASE_PAYMENT", "PURCHASE_REFUND")
TRANSACTION_TYPES = ("SALE", "PURCHASE")
PaymentTypeName = ENUM(*PAYMENT_TYPE_NAMES, name="PaymentTypeName", metadata=SOURCE)
TransactionType = ENUM(*TRANSACTION_TYPES, name="TransactionType", metadata=SOURCE)

Money = Numeric(10, 2)


def _stamp(name: str) -> Column:
    """Prisma's timestamp(3) columns: naive UTC with millisecond precision."""
    if name == "created_at":
        return Column(
            name, TIMESTAMP(precision=3), nullable=False, server_default=text("CURRENT_TIMESTAMP")
        )
    return Column(name, TIMESTAMP(precision=3), nullable=False)


def _pk(name: str) -> Column:
    return Column(name, Integer, primary_key=True, autoincrement=True)


Table(
    "address",
    SOURCE,
    _pk("address_id"),
    Column("address_line_1", Text, nullable=False),
    Column("address_line_2", Text),
    Column("district", Text),
    Column("city", Text, nullable=False),
    Column("postal_code", Text, nullable=False),
    Column("country", Text, nullable=False),
    Column("phone", Text, nullable=False),
    _stamp("created_at"),
    _stamp("last_updated"),
)
Table(
    "counterparty",
    SOURCE,
    _pk("counterparty_id"),
    Column("counterparty_legal_name", Text, nullable=False),
    Column("legal_address_id", Integer, ForeignKey("address.address_id"), nullable=False),
    Column("commercial_contact", Text),
    Column("delivery_contact", Text),
    _stamp("created_at"),
    _stamp("last_updated"),
)
Table(
    "currency",
    SOURCE,
    _pk("currency_id"),
    Column("currency_code", VARCHAR(3), nullable=False),
    _stamp("created_at"),
    _stamp("last_updated"),
)
Table(
    "department",
    SOURCE,
    _pk("department_id"),
    Column("department_name", Text, nullable=False),
    Column("location", Text),
    Column("manager", Text),
    _stamp("created_at"),
    _stamp("last_updated"),
)
Table(
    "design",
    SOURCE,
    _pk("design_id"),
    _stamp("created_at"),
    Column("design_name", Text, nullable=False),
    Column("file_location", Text, nullable=False),
    Column("file_name", Text, nullable=False),
    _stamp("last_updated"),
)
Table(
    "staff",
    SOURCE,
    _pk("staff_id"),
    Column("first_name", Text, nullable=False),
    Column("last_name", Text, nullable=False),
    Column("department_id", Integer, ForeignKey("department.department_id"), nullable=False),
    Column("email_address", Text, nullable=False),
    _stamp("created_at"),
    _stamp("last_updated"),
)
Table(
    "sales_order",
    SOURCE,
    _pk("sales_order_id"),
    _stamp("created_at"),
    _stamp("last_updated"),
    Column("design_id", Integer, ForeignKey("design.design_id"), nullable=False),
    Column("staff_id", Integer, ForeignKey("staff.staff_id"), nullable=False),
    Column("counterparty_id", Integer, ForeignKey("counterparty.counterparty_id"), nullable=False),
    Column("units_sold", Integer, nullable=False),
    Column("unit_price", Money, nullable=False),
    Column("currency_id", Integer, ForeignKey("currency.currency_id"), nullable=False),
    Column("agreed_delivery_date", Text, nullable=False),
    Column("agreed_payment_date", Text, nullable=False),
    Column(
        "agreed_delivery_location_id", Integer, ForeignKey("address.address_id"), nullable=False
    ),
)
Table(
    "purchase_order",
    SOURCE,
    _pk("purchase_order_id"),
    _stamp("created_at"),
    _stamp("last_updated"),
    Column("staff_id", Integer, ForeignKey("staff.staff_id"), nullable=False),
    Column("counterparty_id", Integer, ForeignKey("counterparty.counterparty_id"), nullable=False),
    Column("item_code", Text, nullable=False),
    Column("item_quantity", Integer, nullable=False),
    Column("item_unit_price", Money, nullable=False),
    Column("currency_id", Integer, ForeignKey("currency.currency_id"), nullable=False),
    Column("agreed_delivery_date", Text, nullable=False),
    Column("agreed_payment_date", Text, nullable=False),
    Column(
        "agreed_delivery_location_id", Integer, ForeignKey("address.address_id"), nullable=False
    ),
)
Table(
    "payment_type",
    SOURCE,
    _pk("payment_type_id"),
    Column("payment_type_name", PaymentTypeName, nullable=False),
    _stamp("created_at"),
    _stamp("last_updated"),
)
Table(
    "transaction",
    SOURCE,
    _pk("transaction_id"),
    Column("transaction_type", TransactionType, nullable=False),
    Column("sales_order_id", Integer, ForeignKey("sales_order.sales_order_id"), unique=True),
    Column(
        "purchase_order_id", Integer, ForeignKey("purchase_order.purchase_order_id"), unique=True
    ),
    _stamp("created_at"),
    _stamp("last_updated"),
)
Table(
    "payment",
    SOURCE,
    _pk("payment_id"),
    _stamp("created_at"),
    _stamp("last_updated"),
    Column(
        "transaction_id",
        Integer,
        ForeignKey("transaction.transaction_id"),
        nullable=False,
        unique=True,
    ),
    Column("counterparty_id", Integer, ForeignKey("counterparty.counterparty_id"), nullable=False),
    Column("payment_amount", Money, nullable=False),
    Column("currency_id", Integer, ForeignKey("currency.currency_id"), nullable=False),
    Column("payment_type_id", Integer, ForeignKey("payment_type.payment_type_id"), nullable=False),
    Column("paid", Boolean, nullable=False),
    Column("payment_date", Text, nullable=False),
    Column("company_ac_number", Integer, nullable=False),
    Column("counterparty_ac_number", Integer, nullable=False),
)

SOURCE_TABLES: tuple[str, ...] = tuple(SOURCE.tables)


def source_table(name: str) -> Table:
    return SOURCE.tables[name]


# ---------------------------------------------------------------- warehouse (star schemas)

WAREHOUSE = MetaData()
META_SCHEMA = "totesys_meta"


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
)
Table(
    "dim_currency",
    WAREHOUSE,
    _id("currency_id"),
    _str("currency_code"),
    _str("currency_name"),
)
Table(
    "dim_design",
    WAREHOUSE,
    _id("design_id"),
    _str("design_name"),
    _str("file_location"),
    _str("file_name"),
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
)
Table(
    "dim_payment_type",
    WAREHOUSE,
    _id("payment_type_id"),
    _str("payment_type_name"),
)
Table(
    "dim_transaction",
    WAREHOUSE,
    _id("transaction_id"),
    _str("transaction_type"),
    Column("sales_order_id", Integer),
    Column("purchase_order_id", Integer),
)


def _fact(name: str, record_id: str, source_key: str, *columns: Column) -> Table:
    """A fact table keeps one row per source version: (source key, last_updated)."""
    table = Table(
        name,
        WAREHOUSE,
        Column(record_id, Integer, primary_key=True, autoincrement=True),
        Column(source_key, Integer, nullable=False),
        _ref("created_date", "dim_date.date_id"),
        Column("created_time", Time, nullable=False),
        _ref("last_updated_date", "dim_date.date_id"),
        Column("last_updated_time", Time, nullable=False),
        *columns,
        info={"source_key": source_key, "record_id": record_id},
    )
    Index(
        f"{name}_version_key",
        table.c[source_key],
        table.c.last_updated_date,
        table.c.last_updated_time,
        unique=True,
    )
    return table


_fact(
    "fact_sales_order",
    "sales_record_id",
    "sales_order_id",
    _ref("sales_staff_id", "dim_staff.staff_id"),
    _ref("counterparty_id", "dim_counterparty.counterparty_id"),
    Column("units_sold", Integer, nullable=False),
    Column("unit_price", Money, nullable=False),
    _ref("currency_id", "dim_currency.currency_id"),
    _ref("design_id", "dim_design.design_id"),
    _ref("agreed_payment_date", "dim_date.date_id"),
    _ref("agreed_delivery_date", "dim_date.date_id"),
    _ref("agreed_delivery_location_id", "dim_location.location_id"),
)
_fact(
    "fact_purchase_orders",
    "purchase_record_id",
    "purchase_order_id",
    _ref("staff_id", "dim_staff.staff_id"),
    _ref("counterparty_id", "dim_counterparty.counterparty_id"),
    _str("item_code"),
    Column("item_quantity", Integer, nullable=False),
    Column("item_unit_price", Money, nullable=False),
    _ref("currency_id", "dim_currency.currency_id"),
    _ref("agreed_delivery_date", "dim_date.date_id"),
    _ref("agreed_payment_date", "dim_date.date_id"),
    _ref("agreed_delivery_location_id", "dim_location.location_id"),
)
_fact(
    "fact_payment",
    "payment_record_id",
    "payment_id",
    _ref("transaction_id", "dim_transaction.transaction_id"),
    _ref("counterparty_id", "dim_counterparty.counterparty_id"),
    Column("payment_amount", Money, nullable=False),
    _ref("currency_id", "dim_currency.currency_id"),
    _ref("payment_type_id", "dim_payment_type.payment_type_id"),
    Column("paid", Boolean, nullable=False),
    _ref("payment_date", "dim_date.date_id"),
)

STAR_TABLES: tuple[str, ...] = tuple(WAREHOUSE.tables)

# the source table each dimension is keyed by (dim_staff by staff, dim_location by address)
DIMENSION_SOURCES = {
    "dim_staff": "staff",
    "dim_location": "address",
    "dim_counterparty": "counterparty",
    "dim_currency": "currency",
    "dim_design": "design",
    "dim_payment_type": "payment_type",
    "dim_transaction": "transaction",
}

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
DIMENSIONS: tuple[str, ...] = tuple(t for t in STAR_TABLES if t.startswith("dim_"))
FACTS: tuple[str, ...] = tuple(t for t in STAR_TABLES if t.startswith("fact_"))


def star_table(name: str) -> Table:
    return WAREHOUSE.tables[name]


def latest_view_name(fact: str) -> str:
    return f"{fact}_latest"


def data_columns(table: Table) -> list[str]:
    """The columns a pipeline writes: all but a fact's serial record id."""
    record_id = table.info.get("record_id")
    return [c.name for c in table.columns if c.name != record_id]


# ---------------------------------------------------------------- Arrow


def arrow_type(column: Column):
    """The Arrow type a column travels as through the lake (decimals stay decimals)."""
    import pyarrow as pa

    kind = column.type
    if isinstance(kind, ENUM):
        return pa.string()
    if isinstance(kind, Numeric):
        return pa.decimal128(kind.precision, kind.scale)
    if isinstance(kind, Boolean):
        return pa.bool_()
    if isinstance(kind, Integer):
        return pa.int32()
    if isinstance(kind, TIMESTAMP):
        return pa.timestamp("ms")
    if isinstance(kind, Date):
        return pa.date32()
    if isinstance(kind, Time):
        return pa.time32("ms")
    if isinstance(kind, Text | VARCHAR):
        return pa.string()
    raise TypeError(f"no Arrow type for {column.table.name}.{column.name}: {kind!r}")


def arrow_schema(table: Table, columns: list[str] | None = None):
    import pyarrow as pa

    names = columns if columns is not None else [c.name for c in table.columns]
    return pa.schema(
        [pa.field(n, arrow_type(table.c[n]), nullable=table.c[n].nullable) for n in names]
    )
