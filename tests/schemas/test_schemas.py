"""The declarations that DDL, Arrow schemas and COPY column lists all read."""

from __future__ import annotations

import pyarrow as pa

from totesys_cli.schemas import (
    DIMENSIONS,
    FACTS,
    SOURCE_TABLES,
    data_columns,
    source_table,
    star_table,
)
from totesys_cli.schemas.arrow import arrow_schema


def test_source_types_travel_as_arrow_without_loss():
    schema = arrow_schema(source_table("payment"))
    assert schema.field("payment_amount").type == pa.decimal128(10, 2)
    assert schema.field("created_at").type == pa.timestamp("ms")
    assert schema.field("payment_date").type == pa.string()
    assert schema.field("paid").type == pa.bool_()
    assert not schema.field("payment_id").nullable
    transaction = arrow_schema(source_table("transaction"))
    assert transaction.field("sales_order_id").type == pa.int32()
    assert transaction.field("sales_order_id").nullable
    assert transaction.field("transaction_type").type == pa.string()
    assert arrow_schema(source_table("currency")).field("currency_code").type == pa.string()


def test_star_types_travel_as_arrow():
    schema = arrow_schema(
        star_table("fact_sales_order"), data_columns(star_table("fact_sales_order"))
    )
    assert schema.names[0] == "sales_order_id"  # the serial record id is the warehouse's own
    assert schema.field("created_time").type == pa.time32("ms")
    assert schema.field("created_date").type == pa.date32()
    assert schema.field("unit_price").type == pa.decimal128(10, 2)
    assert arrow_schema(star_table("dim_staff")).field("location").nullable


def test_every_table_is_declared_once():
    assert len(SOURCE_TABLES) == 11
    assert len(DIMENSIONS) == 8 and len(FACTS) == 3
    assert data_columns(star_table("dim_date"))[0] == "date_id"
