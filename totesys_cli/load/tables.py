"""One star table of a processed run into the warehouse: straight in, or staged and merged.

A table that is still empty takes the run's rows straight from `COPY` (the bulk of a
first load: nothing to merge with), its indexes built once the rows are in; so does a
table that holds none of the run's keys because they all lie above its largest (a
backlog read in key order: appended), its indexes kept. Otherwise the rows are copied
into a temporary staging table and merged (see `apply`). Either way a fact's foreign
keys are checked over the rows written (see `references`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import numpy as np
import pg8000.dbapi
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection, Subquery, exists, func, select, text
from sqlalchemy.dialects.postgresql import REGCLASS
from sqlalchemy.schema import CreateTable, DropTable

from totesys_cli.db import indexes
from totesys_cli.db.catalog import estimated_rows
from totesys_cli.db.copy import copy_in
from totesys_cli.lake import Lake
from totesys_cli.lake.files import TableFiles, read_parquet
from totesys_cli.load import apply, references
from totesys_cli.runtime import Deadline
from totesys_cli.schemas import DIMENSION_VERSIONS, star
from totesys_cli.schemas.arrow import VERSION, warehouse_schema
from totesys_cli.warehouse import first_fill, upkeep

log = logging.getLogger(__name__)


class _NotStraight(Exception):
    """The run cannot go straight in: it repeats a key, or holds one the table has."""


class _Files:
    """The run's files of a table, read in turn. The first, once read for its lowest key,
    is kept for the pass that follows (not read twice), and not held past it."""

    def __init__(self, processed: Lake, table: str, keys: list[str], rows: int, replayed: bool):
        self.processed, self.table, self.keys, self.rows = processed, table, keys, rows
        self.replayed = replayed  # a reprocess: versions read before, maybe since deleted
        self.first: pa.Table | None = None

    def __iter__(self) -> Iterator[pa.Table]:
        for n, key in enumerate(self.keys):
            if n == 0 and self.first is not None:
                rows, self.first = self.first, None
            else:
                rows = self._read(key)
            yield rows
            del rows  # not held while the next file is read

    def _read(self, key: str) -> pa.Table:
        return read_parquet(self.processed, [key], warehouse_schema(self.table))

    def lowest_key(self) -> int | None:
        """The first file's smallest key."""
        if self.first is None and self.keys:
            self.first = self._read(self.keys[0])
        return None if self.first is None else _lowest(self.first, self.table)


def _lowest(rows: pa.Table, table: str) -> int | None:
    return pc.min(rows.column(star(table).key)).as_py()


def _is_empty(conn: Connection, table: str) -> bool:
    if conn.execute(select(exists().select_from(star(table).table))).scalar_one():
        return False
    versions = DIMENSION_VERSIONS
    return not conn.execute(select(exists().where(versions.c.dimension == table))).scalar_one()


def _straight_in(
    conn: Connection,
    files: _Files,
    keys: references.Checks,
    deadline: Deadline,
    above: int | None = None,
) -> int:
    """COPY the run's files straight into an empty table, or (`above`: its largest key)
    append them to one whose keys all lie below theirs. A repeated key fails the
    caller's savepoint: dimensions by their primary key, facts by the version index or,
    without one, by a set-based check after the COPY, so memory never holds the run's
    keys; so does a key not above `above`, or, appending to a fact, several versions of
    one key."""
    table = files.table
    total = 0
    fill = first_fill.FirstFill(conn, table, above is not None) if star(table).is_fact else None
    # an empty table takes its indexes once its rows are in
    with (
        indexes.built_after(conn, table) if above is None else contextlib.nullcontext(),
        _versions_built_after(conn, table, files.rows),
    ):
        for rows in files:
            deadline.check(f"loading {table}")
            if above is not None and (_lowest(rows, table) or 0) <= above:
                raise _NotStraight(table)
            if fill is not None:
                fill.add(rows)
            if star(table).is_dimension:  # its rows carry the source version they reflect
                copy_in(conn, table, rows.drop_columns([VERSION]))
                versions = pa.table(
                    {
                        "dimension": pa.array([table] * rows.num_rows, pa.string()),
                        "key": rows.column(star(table).key),
                        "source_last_updated": rows.column(VERSION),
                    }
                )
                copy_in(conn, DIMENSION_VERSIONS.fullname, versions)
            else:  # a fact, or the calendar
                with keys.unchecked():
                    copy_in(conn, table, _numbered(conn, table, rows))
            total += rows.num_rows
    if star(table).is_fact and not apply.has_version_index(conn, table):
        version = [star(table).table.c[c] for c in star(table).version_key]
        repeated = select(*version).group_by(*version).having(func.count() > 1).limit(1)
        if conn.execute(repeated).first() is not None:
            raise _NotStraight(table)
    if fill is not None:
        try:
            fill.finish()
        except first_fill.SeveralVersions:
            raise _NotStraight(table) from None
    return total


def _numbered(conn: Connection, table: str, rows: pa.Table) -> pa.Table:
    """A fact's rows with their record ids, drawn from its sequence as one block: left
    to the column's default, the server would draw them one row at a time, which costs
    a bulk COPY a third of its time. The ids are the ones the default would have given."""
    record_id = star(table).record_id
    if record_id is None or not rows.num_rows:  # the calendar has none
        return rows
    sequence = func.pg_get_serial_sequence(
        conn.dialect.identifier_preparer.quote(table), record_id
    ).cast(REGCLASS)
    last = conn.execute(
        select(func.setval(sequence, func.nextval(sequence) + rows.num_rows - 1))
    ).scalar_one()
    if last is None:  # no sequence of its own (a team's own table): left to the column
        return rows
    ids = pa.array(np.arange(last - rows.num_rows + 1, last + 1, dtype=np.int32))
    return rows.add_column(0, record_id, ids)


def _versions_built_after(conn: Connection, table: str, rows: int):
    """Around a dimension's rows going straight in: the key of the versions every
    dimension shares, built once after them when they are most of its rows (a first
    load's big dimension), not grown row by row; then analyzed, so that the next run
    knows its size. Otherwise nothing."""
    versions = DIMENSION_VERSIONS.fullname
    if not star(table).is_dimension or rows <= references.BULK_ROWS:
        return contextlib.nullcontext()
    held = estimated_rows(conn, [versions]).get(versions, 0)
    if rows * references.BULK_SHARE <= max(held, 0):
        return contextlib.nullcontext()
    return _built_and_analyzed(conn, versions)


@contextlib.contextmanager
def _built_and_analyzed(conn: Connection, table: str) -> Iterator[None]:
    with indexes.built_after(conn, table):
        yield
    conn.execute(text(f"ANALYZE {table}"))


def _largest_key(conn: Connection, table: str) -> int | None:
    """The table's largest key, when the run could be appended to it: not the calendar
    (it only grows, by date), and a fact only with its version index (without it, the
    check for a repeated version reads the whole fact)."""
    spec = star(table)
    if not (spec.is_dimension or (spec.is_fact and apply.has_version_index(conn, table))):
        return None
    return conn.execute(select(func.max(spec.table.c[spec.key]))).scalar_one()


def _staged(
    conn: Connection, files: _Files, keys: references.Checks, deadline: Deadline
) -> tuple[int, int]:
    """Stage the run's rows, then merge them with what the table holds."""
    table = files.table
    stage = apply.stage_table(f"stage_{table}", table)
    conn.execute(CreateTable(stage))
    total = 0
    for rows in files:
        deadline.check(f"loading {table}")
        copy_in(conn, stage.name, rows)
        total += rows.num_rows
    # a fresh temporary table has no statistics: without them the merge below plans for
    # a big stage and scans the whole warehouse table instead of probing its index
    conn.execute(text(f"ANALYZE {conn.dialect.identifier_preparer.quote(stage.name)}"))
    if star(table).is_fact:
        upkeep.follow(conn, stage, table, files.replayed)
        with keys.unchecked():
            changed = apply.apply_fact(conn, stage, table)
        keys.check(stage)
    elif star(table).is_dimension:
        changed = apply.apply_dimension(conn, stage, table, files.replayed)
    else:
        changed = apply.apply_calendar(conn, stage)
    conn.execute(DropTable(stage))
    return total, changed


def load_table(
    conn: Connection,
    processed: Lake,
    table: str,
    files: TableFiles,
    deadline: Deadline,
    replayed: bool = False,
) -> tuple[int, int]:
    """(rows read, rows changed) for one star table of a run (`replayed`: a reprocess)."""
    run = _Files(processed, table, files.keys, files.rows, replayed)
    keys = references.Checks(conn, table)
    if _is_empty(conn, table):
        above = None
    elif (above := _largest_key(conn, table)) is None or (run.lowest_key() or 0) <= above:
        return _staged(conn, run, keys, deadline)
    try:
        with conn.begin_nested():
            rows = _straight_in(conn, run, keys, deadline, above)
    except (_NotStraight, pg8000.dbapi.DatabaseError):
        log.debug("%s cannot take this run straight in; merging it instead", table)
        return _staged(conn, run, keys, deadline)
    keys.check(_written(table, above))
    return rows, rows


def _written(table: str, above: int | None) -> Subquery:
    """The rows a run put straight into the table: all of them, or (`above`: the largest
    key it held before) the ones appended above it."""
    spec = star(table)
    rows = select(spec.table)
    if above is not None:
        rows = rows.where(spec.table.c[spec.key] > above)
    return rows.subquery()
