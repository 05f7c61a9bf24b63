"""The lake's star tables as a catalog (Glue, Athena, Hive) declares them: the columns
and types of the processed zone's files, derived from the declarations so that the
stack's template never states a column of its own (`deploy/columns.py` writes them)."""

from __future__ import annotations

from sqlalchemy import Time

from totesys_cli.schemas.arrow import VERSION, output_schema
from totesys_cli.schemas.model import star

# what a reader of the catalog needs told about a column whose type does not say it
TIME_OF_DAY = "time of day in milliseconds since midnight"
NEWEST = "source version of the row; the newest per key is current"


def hive_type(arrow) -> str:
    """The Hive type that reads a processed file's Arrow type as it is written."""
    import pyarrow as pa

    if pa.types.is_decimal(arrow):
        return f"decimal({arrow.precision},{arrow.scale})"
    for test, name in (
        (pa.types.is_int32, "int"),
        (pa.types.is_int64, "bigint"),
        (pa.types.is_string, "string"),
        (pa.types.is_date32, "date"),
        (pa.types.is_boolean, "boolean"),
        (pa.types.is_timestamp, "timestamp"),
    ):
        if test(arrow):
            return name
    raise TypeError(f"no Hive type for {arrow}")


def columns(star_table: str) -> list[tuple[str, str, str | None]]:
    """(name, Hive type, comment or None) of each column of the star table's processed
    files, in order."""
    declared = star(star_table).table.c
    found = []
    for f in output_schema(star_table):
        comment = NEWEST if f.name == VERSION else None
        if f.name in declared and isinstance(declared[f.name].type, Time):
            comment = TIME_OF_DAY
        found.append((f.name, hive_type(f.type), comment))
    return found
