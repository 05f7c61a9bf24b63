"""The source database (`totesys`, managed by Prisma), declared once.

The extract's COPY column lists and Arrow types, the generator's DDL and the tests all
read these declarations. Tables marked `grows` hold a row per order (and its
transaction and payment): they are read chunk by chunk, never whole. Columns marked
`kept: False` reach no star table (contacts, account numbers, a dimension's
`created_at`): the raw zone carries them, but a bad value there never sets a version
aside (see `kept`).
"""

from __future__ import annotations

from sqlalchemy import (
    VARCHAR,
    Boolean,
    Column,
    ForeignKey,
    Integer,
    MetaData,
    Numeric,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import ENUM, TIMESTAMP

SOURCE = MetaData()

PAYMENT_TYPE_NAMES = ("SALES_RECEIPT", "SALES_REFUND", "PURCHASE_PAYMENT", "PURCHASE_REFUND")
TRANSACTION_TYPES = ("SALE", "PURCHASE")
PaymentTypeName = ENUM(*PAYMENT_TYPE_NAMES, name="PaymentTypeName", metadata=SOURCE)
TransactionType = ENUM(*TRANSACTION_TYPES, name="TransactionType", metadata=SOURCE)

Money = Numeric(10, 2)


_NOT_KEPT = {"kept": False}


def _stamp(name: str, kept: bool = True) -> Column:
    """Prisma's timestamp(3) columns: naive UTC with millisecond precision."""
    if name == "created_at":
        return Column(
            name,
            TIMESTAMP(precision=3),
            nullable=False,
            server_default=text("CURRENT_TIMESTAMP"),
            info={} if kept else _NOT_KEPT,
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
    _stamp("created_at", kept=False),
    _stamp("last_updated"),
)
Table(
    "counterparty",
    SOURCE,
    _pk("counterparty_id"),
    Column("counterparty_legal_name", Text, nullable=False),
    Column("legal_address_id", Integer, ForeignKey("address.address_id"), nullable=False),
    Column("commercial_contact", Text, info=_NOT_KEPT),
    Column("delivery_contact", Text, info=_NOT_KEPT),
    _stamp("created_at", kept=False),
    _stamp("last_updated"),
)
Table(
    "currency",
    SOURCE,
    _pk("currency_id"),
    Column("currency_code", VARCHAR(3), nullable=False),
    _stamp("created_at", kept=False),
    _stamp("last_updated"),
)
Table(
    "department",
    SOURCE,
    _pk("department_id"),
    Column("department_name", Text, nullable=False),
    Column("location", Text),
    Column("manager", Text, info=_NOT_KEPT),
    _stamp("created_at", kept=False),
    _stamp("last_updated"),
)
Table(
    "design",
    SOURCE,
    _pk("design_id"),
    _stamp("created_at", kept=False),
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
    _stamp("created_at", kept=False),
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
    info={"grows": True},
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
    info={"grows": True},
)
Table(
    "payment_type",
    SOURCE,
    _pk("payment_type_id"),
    Column("payment_type_name", PaymentTypeName, nullable=False),
    _stamp("created_at", kept=False),
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
    _stamp("created_at", kept=False),
    _stamp("last_updated"),
    info={"grows": True},
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
    Column("company_ac_number", Integer, nullable=False, info=_NOT_KEPT),
    Column("counterparty_ac_number", Integer, nullable=False, info=_NOT_KEPT),
    info={"grows": True},
)

SOURCE_TABLES: tuple[str, ...] = tuple(SOURCE.tables)


def source_table(name: str) -> Table:
    return SOURCE.tables[name]


def source_key(name: str) -> str:
    """The table's primary key column (every source table has one integer key)."""
    return source_table(name).primary_key.columns[0].name


def kept(column: Column) -> bool:
    """Whether the warehouse holds the column (or derives from it): only such a column's
    value can set a version aside; the others travel as they come, or empty."""
    return bool(column.info.get("kept", True))


def grows(name: str) -> bool:
    """Whether the table holds a row per order, so that it is only ever read in chunks."""
    return bool(source_table(name).info.get("grows"))
