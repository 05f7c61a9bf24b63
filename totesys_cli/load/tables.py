"""One star table of a processed run into the warehouse: straight in, or staged and merged.

A table that is still empty takes the run's rows straight from `COPY` (the bulk of a
first load: nothing to merge with). Otherwise the rows are copied into a temporary
staging table and merged (see `apply`).
"""

from __future__ import annotations

import logging

import pg8000.dbapi
import pyarrow as pa
from sqlalchemy import Connection, exists, func, select, text
from sqlalchemy.schema import CreateTable, DropTable

from totesys_cli.db import summaries
from totesys_cli.db.copy import copy_in
from totesys_cli.lake import Lake
from totesys_cli.lake.files import read_parquet
from totesys_cli.load import apply
from totesys_cli.runtime import Deadline
from totesys_cli.schemas import DIMENSION_VERSIONS, star
from totesys_cli.schemas.arrow import VERSION, output_schema

log = logging.getLogger(__name__)


class _NotStraight(Exception):
    """The run repeats a key, so it cannot go straight into an empty table."""


def _is_empty(conn: Connection, table: str) -> bool:
    if conn.execute(select(exists().select_from(star(table).table))).scalar_one():
        return False
    versions = DIMENSION_VERSIONS
    return not conn.execute(select(exists().where(versions.c.dimension == table))).scalar_one()


def _straight_in(
    conn: Connection, processed: Lake, table: str, files: list[str], deadline: Deadline
) -> int:
    """COPY the run's files straight into an empty table. A repeated key fails the
    caller's savepoint: dimensions by their primary key, facts by the version index or,
    without one, by a set-based check after the COPY, so memory never holds the run's
    keys."""
    schema = output_schema(table)
    total = 0
    fill = summaries.FirstFill(conn, table) if star(table).is_fact else None
    for key in files:
        deadline.check(f"loading {table}")
        rows = read_parquet(processed, [key], schema)
        if fill is not None:
            fill.add(rows)
        if VERSION in schema.names:
            copy_in(conn, table, rows.drop_columns([VERSION]))
            versions = pa.table(
                {
                    "dimension": pa.array([table] * rows.num_rows, pa.string()),
                    "key": rows.column(star(table).key),
                    "source_last_updated": rows.column(VERSION),
                }
            )
            copy_in(conn, DIMENSION_VERSIONS.fullname, versions)
        else:
            copy_in(conn, table, rows)
        total += rows.num_rows
    if star(table).is_fact and not apply.has_version_index(conn, table):
        version = [star(table).table.c[c] for c in star(table).version_key]
        repeated = select(*version).group_by(*version).having(func.count() > 1).limit(1)
        if conn.execute(repeated).first() is not None:
            raise _NotStraight(table)
    if fill is not None:
        fill.finish()
    return total


def _staged(
    conn: Connection, processed: Lake, table: str, files: list[str], deadline: Deadline
) -> tuple[int, int]:
    """Stage the run's rows, then merge them with what the table holds."""
    stage = apply.stage_table(f"stage_{table}", table)
    conn.execute(CreateTable(stage))
    schema = output_schema(table)
    total = 0
    for key in files:
        deadline.check(f"loading {table}")
        rows = read_parquet(processed, [key], schema)
        copy_in(conn, stage.name, rows)
        total += rows.num_rows
    # a fresh temporary table has no statistics: without them the merge below plans for
    # a big stage and scans the whole warehouse table instead of probing its index
    conn.execute(text(f"ANALYZE {conn.dialect.identifier_preparer.quote(stage.name)}"))
    if star(table).is_fact:
        summaries.follow(conn, stage, table)
        changed = apply.apply_fact(conn, stage, table)
    elif star(table).is_dimension:
        changed = apply.apply_dimension(conn, stage, table)
    else:
        changed = apply.apply_calendar(conn, stage)
    conn.execute(DropTable(stage))
    return total, changed


def load_table(
    conn: Connection, processed: Lake, table: str, files: list[str], deadline: Deadline
) -> tuple[int, int]:
    """(rows read, rows changed) for one star table of a run."""
    if _is_empty(conn, table):
        try:
            with conn.begin_nested():
                rows = _straight_in(conn, processed, table, files, deadline)
            return rows, rows
        except (_NotStraight, pg8000.dbapi.DatabaseError):
            log.debug("%s repeats a key in this run; merging it instead", table)
    return _staged(conn, processed, table, files, deadline)
