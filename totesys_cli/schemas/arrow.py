"""How tables travel through the lake, as Arrow.

The raw zone holds source rows with their source types (decimals stay decimals,
timestamps keep their milliseconds, text dates stay text). The processed zone holds
star rows without a fact's serial record id, and for a dimension the source version it
reflects (`VERSION`), which the load uses so that an older run never overwrites a newer
value. This is the contract between transform and load.

The processed zone is also read by Athena and Spark (see deploy/totesys.yaml), so it
holds only types they map: the warehouse's types, except a time of day, which neither
reads as Parquet TIME; it is written as the milliseconds since midnight, an int32
(`portable_type`). The load reads the files back with the warehouse's exact types
(`warehouse_schema`), which also reads the TIME columns of processed runs written
before (manifest format 1).
"""

from __future__ import annotations

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
    Time,
)
from sqlalchemy.dialects.postgresql import ENUM, TIMESTAMP

from totesys_cli.schemas.model import star
from totesys_cli.schemas.source import kept, source_key
from totesys_cli.schemas.warehouse import data_columns

VERSION = "source_last_updated"


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
    if isinstance(kind, BigInteger):
        return pa.int64()
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


def portable_type(column: Column):
    """The Arrow type a star column is written as in the processed zone: its exact type,
    but a time of day as int32 milliseconds since midnight."""
    import pyarrow as pa

    return pa.int32() if isinstance(column.type, Time) else arrow_type(column)


def arrow_schema(table: Table, columns: list[str] | None = None, kind=arrow_type):
    import pyarrow as pa

    names = columns if columns is not None else [c.name for c in table.columns]
    # a source column the warehouse does not hold may travel empty (see `source.kept`)
    return pa.schema(
        [
            pa.field(n, kind(table.c[n]), nullable=table.c[n].nullable or not kept(table.c[n]))
            for n in names
        ]
    )


def _star_schema(name: str, kind):
    import pyarrow as pa

    table = star(name).table
    schema = arrow_schema(table, data_columns(table), kind)
    if star(name).is_dimension:
        schema = schema.append(pa.field(VERSION, pa.timestamp("ms"), nullable=False))
    return schema


def output_schema(name: str):
    """The processed-zone schema of a star table: its warehouse columns (no serial id),
    in portable types, plus the source version for dimensions."""
    return _star_schema(name, portable_type)


def warehouse_schema(name: str):
    """A processed file of a star table as the load reads it: with the warehouse's exact
    types (milliseconds since midnight back to a time of day)."""
    return _star_schema(name, arrow_type)


def version_schema(source: str):
    """A source table's versions: its key and last_updated."""
    import pyarrow as pa

    return pa.schema(
        [pa.field(source_key(source), pa.int32()), pa.field("last_updated", pa.timestamp("ms"))]
    )


def tombstone_schema(processed: bool = False):
    """A key deleted in the source, found gone by the raw run `raw_seq` whose snapshot
    was at `deleted_at` (the source's clock). In the processed zone, with the star table
    built from that source table (None: none is), and the time split as the facts split
    theirs (a date, and an int32 of milliseconds since midnight), so that a query
    compares it with a version's `last_updated_date` and `last_updated_time` as they are."""
    import pyarrow as pa

    head = [
        pa.field("source_table", pa.string(), nullable=False),
        pa.field("key", pa.int64(), nullable=False),
    ]
    seq = pa.field("raw_seq", pa.int32(), nullable=False)
    if not processed:
        return pa.schema([*head, pa.field("deleted_at", pa.timestamp("ms"), nullable=False), seq])
    when = [
        pa.field("deleted_date", pa.date32(), nullable=False),
        pa.field("deleted_time", pa.int32(), nullable=False),
    ]
    return pa.schema([pa.field("star_table", pa.string()), *head, *when, seq])
