"""Reading the source: its columns checked, each table's change window as one COPY,
and PostgreSQL's CSV parsed into Arrow with the declared types."""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import Connection, Table, cast, func, or_, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import TIMESTAMP

from totesys_cli.db.catalog import present_columns
from totesys_cli.errors import RuntimeFailure
from totesys_cli.schemas import source_table
from totesys_cli.schemas.arrow import arrow_schema
from totesys_cli.settings import envvar

log = logging.getLogger(__name__)

_DIALECT = postgresql.dialect()


def check_columns(conn: Connection, tables: tuple[str, ...]) -> None:
    """Every declared column is there before anything is read; extra ones are a warning."""
    present = present_columns(conn, list(tables))
    hint = f"Check that {envvar('source_url')} points at the totesys database"
    for name in tables:
        declared = [c.name for c in source_table(name).columns]
        if name not in present:
            raise RuntimeFailure(f"the source has no table {name}", hint)
        missing = [c for c in declared if c not in present[name]]
        if missing:
            raise RuntimeFailure(
                f"the source table {name} has no column {', '.join(missing)}; nothing was "
                "extracted",
                hint,
            )
        extra = sorted(present[name] - set(declared))
        if extra:
            log.warning(
                "the source table %s has columns totesys does not read: %s",
                name,
                ", ".join(extra),
                extra={"table": name},
            )


def set_window(conn: Connection, lower: dt.datetime | None, since: dt.datetime | None) -> None:
    """COPY takes no bind parameters: the window travels through set_config."""
    for name, value, default in (
        ("totesys.lower", lower, "-infinity"),
        ("totesys.since", since, "infinity"),
    ):
        stamp = value.isoformat(sep=" ") if value is not None else default
        conn.execute(text("SELECT set_config(:name, :value, true)"), {"name": name, "value": stamp})


def _setting(name: str, kind):
    """A set_config value, read once per statement (a bare current_setting is read per row)."""
    return select(cast(func.current_setting(name), kind)).scalar_subquery()


def _changed(table: Table):
    """last_updated > totesys.lower, or >= totesys.since when reprocessing a window."""
    since = _setting("totesys.since", TIMESTAMP)
    lower = _setting("totesys.lower", TIMESTAMP)
    return or_(table.c.last_updated > lower, table.c.last_updated >= since)


def copy_query(table: Table, *, filtered: bool) -> str:
    """COPY of the table's declared columns; every value comes from set_config."""
    query = select(*table.columns)
    if filtered:
        query = query.where(_changed(table))
    sql = query.compile(dialect=_DIALECT, compile_kwargs={"literal_binds": True})
    return f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)"


def csv_to_arrow(data: bytes | bytearray, table: Table):
    """Parse PostgreSQL's CSV with the declared types: NULL is an unquoted empty field."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    schema = arrow_schema(table)
    return pcsv.read_csv(
        pa.BufferReader(pa.py_buffer(data)),  # no copy of the chunk
        # one thread: the parse already runs beside the COPY, more would only compete
        read_options=pcsv.ReadOptions(
            column_names=schema.names, block_size=8 << 20, use_threads=False
        ),
        parse_options=pcsv.ParseOptions(newlines_in_values=True),
        convert_options=pcsv.ConvertOptions(
            column_types=schema,
            true_values=["t"],
            false_values=["f"],
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        ),
    ).cast(schema)
