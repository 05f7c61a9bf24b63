"""Load: processed runs -> the warehouse, each exactly once, each in one transaction.

A run's rows are copied into temporary staging tables (`COPY ... FROM STDIN`, file by
file), then applied with set-based SQL: the calendar, the dimensions (guarded by the
source version kept in totesys_meta, so an older run never overwrites a newer value),
the facts (upserted by version key: a retry adds nothing, a reprocess corrects
values), and the record that the run was loaded, all in one transaction. The loaded
runs recorded in the warehouse alone decide what is pending.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pg8000.dbapi
from sqlalchemy import (
    Column,
    Connection,
    MetaData,
    Table,
    and_,
    cast,
    exists,
    func,
    insert,
    literal,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import TIMESTAMP, distinct_on
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.schema import CreateTable, DropTable

from totesys_cli import faults
from totesys_cli import lake as lakes
from totesys_cli.db import engine, present_columns, translate_errors
from totesys_cli.errors import RuntimeFailure
from totesys_cli.runtime import Deadline
from totesys_cli.schemas import (
    DIMENSION_VERSIONS,
    DIMENSIONS,
    FACTS,
    LOADED_RUNS,
    STAR_TABLES,
    data_columns,
    star_table,
)
from totesys_cli.settings import Database
from totesys_cli.transform.stars import VERSION, output_schema
from totesys_cli.warehouse import ensure_meta

log = logging.getLogger(__name__)

# A fact's foreign keys are checked once, set-based, at the end of the transaction
# instead of by a trigger per row (several times the cost of the COPY) when the run
# brings more than BULK_ROWS rows and more than 1/BULK_SHARE of the rows the table
# holds: the set-based check reads the whole table, so for a small share of a big
# table the triggers cost less.
BULK_ROWS = 50_000
BULK_SHARE = 10
ORDER = ("dim_date", *(d for d in DIMENSIONS if d != "dim_date"), *FACTS)


@dataclass(frozen=True)
class LoadOptions:
    since: dt.datetime | None = None


@dataclass
class RunLoad:
    seq: int
    rows: dict[str, int] = field(default_factory=dict)
    changed: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    reload: bool = False


@dataclass
class LoadResult:
    runs: list[RunLoad]
    seconds: float

    @property
    def rows(self) -> int:
        return sum(sum(r.changed.values()) for r in self.runs)


# ---------------------------------------------------------------- checks


def check_warehouse(conn: Connection) -> None:
    """Every star table with every column, before anything is written."""
    present = present_columns(conn, list(STAR_TABLES))
    missing_tables = [t for t in STAR_TABLES if t not in present]
    if missing_tables:
        raise RuntimeFailure(
            f"the warehouse has no table {', '.join(missing_tables)}; nothing was loaded",
            "Run totesys init first",
        )
    for table in STAR_TABLES:
        missing = [c.name for c in star_table(table).columns if c.name not in present[table]]
        if missing:
            raise RuntimeFailure(
                f"the warehouse table {table} has no column {', '.join(missing)}; nothing was "
                "loaded",
                "Fix the table to match SPEC section 3 (totesys init creates it so)",
            )


# ---------------------------------------------------------------- staging


def _stage(name: str, table: str) -> Table:
    """A temporary table shaped like the processed files of `table`; dropped at commit."""
    star = star_table(table)
    columns = [
        Column(f.name, TIMESTAMP(precision=3) if f.name == VERSION else star.c[f.name].type)
        for f in output_schema(table)
    ]
    return Table(name, MetaData(), *columns, prefixes=["TEMPORARY"], postgresql_on_commit="DROP")


def _copy_in(conn: Connection, target: str, arrow_table) -> None:
    import pyarrow.csv as pcsv

    sink = io.BytesIO()
    pcsv.write_csv(
        arrow_table, sink, pcsv.WriteOptions(include_header=False, quoting_style="needed")
    )
    sink.seek(0)
    quote = conn.dialect.identifier_preparer.quote
    columns = ", ".join(quote(n) for n in arrow_table.column_names)
    cursor = conn.connection.driver_connection.cursor()
    name = ".".join(quote(part) for part in target.split("."))
    cursor.execute(f"COPY {name} ({columns}) FROM STDIN WITH (FORMAT csv)", stream=sink)


# ---------------------------------------------------------------- applying a run


def _differs(target, source, columns: list[str]):
    """Rows whose values differ, given two column collections."""
    return tuple_(*(target[c] for c in columns)).is_distinct_from(
        tuple_(*(source[c] for c in columns))
    )


def _apply_calendar(conn: Connection, stage: Table) -> int:
    dim = star_table("dim_date")
    cols = data_columns(dim)
    fresh = select(*(stage.c[c] for c in cols)).where(
        ~exists().where(dim.c.date_id == stage.c.date_id)
    )
    return conn.execute(insert(dim).from_select(cols, fresh)).rowcount


def _apply_dimension(conn: Connection, stage: Table, table: str) -> int:
    """Newest staged version per key, applied only if not older than the version the
    warehouse already reflects; values are written only where they differ."""
    dim = star_table(table)
    key = dim.primary_key.columns[0].name
    cols = data_columns(dim)
    values = [c for c in cols if c != key]
    versions = DIMENSION_VERSIONS
    fresh = _stage("fresh", table)
    conn.execute(CreateTable(fresh))
    # one index probe per staged key (a join would scan the versions of every key, so a
    # small run would cost what the whole dimension costs)
    applied = (
        select(versions.c.source_last_updated)
        .where(versions.c.dimension == table, versions.c.key == stage.c[key])
        .scalar_subquery()
    )
    newest = (
        select(stage)
        .ext(distinct_on(stage.c[key]))
        .where(stage.c[VERSION] >= func.coalesce(applied, cast(literal("-infinity"), TIMESTAMP)))
        .order_by(stage.c[key], stage.c[VERSION].desc())
    )
    conn.execute(insert(fresh).from_select([c.name for c in stage.columns], newest))
    upsert = pg_insert(dim).from_select(cols, select(*(fresh.c[c] for c in cols)))
    changed = conn.execute(
        upsert.on_conflict_do_update(
            index_elements=[key],  # every dimension has its key as primary key (SPEC 3)
            set_={c: upsert.excluded[c] for c in values},
            where=_differs(dim.c, upsert.excluded, values),
        )
    ).rowcount
    record = pg_insert(versions).from_select(
        ["dimension", "key", "source_last_updated"],
        select(literal(table), fresh.c[key], fresh.c[VERSION]),
    )
    conn.execute(
        record.on_conflict_do_update(
            index_elements=["dimension", "key"],
            set_={"source_last_updated": record.excluded.source_last_updated},
            where=versions.c.source_last_updated < record.excluded.source_last_updated,
        )
    )
    conn.execute(DropTable(fresh))
    return changed


def _has_version_index(conn: Connection, table: str) -> bool:
    """Whether the fact has the unique index on its version key that init creates."""
    fact = star_table(table)
    version = [fact.info["source_key"], "last_updated_date", "last_updated_time"]
    found = (
        conn.execute(
            text(
                "SELECT array_agg(a.attname::text ORDER BY k.n) FROM pg_index i "
                "CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) "
                "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
                "WHERE i.indrelid = CAST(:t AS regclass) AND i.indisunique AND i.indpred IS NULL "
                "GROUP BY i.indexrelid"
            ),
            {"t": table},
        )
        .scalars()
        .all()
    )
    return any(sorted(columns) == sorted(version) for columns in found)


def _apply_fact(conn: Connection, stage: Table, table: str) -> int:
    """Each version is one row: new versions inserted, existing ones corrected only where
    a value differs. With the unique version index that is one INSERT ... ON CONFLICT;
    without it, an UPDATE then an INSERT of the versions not present, which is safe
    because the run holds the lock."""
    fact = star_table(table)
    cols = data_columns(fact)
    version = [fact.info["source_key"], "last_updated_date", "last_updated_time"]
    values = [c for c in cols if c not in version]
    staged = select(*(stage.c[c] for c in cols)).ext(distinct_on(*(stage.c[c] for c in version)))
    if _has_version_index(conn, table):
        upsert = pg_insert(fact).from_select(cols, staged)
        return conn.execute(
            upsert.on_conflict_do_update(
                index_elements=version,
                set_={c: upsert.excluded[c] for c in values},
                where=_differs(fact.c, upsert.excluded, values),
            )
        ).rowcount
    match = and_(*(fact.c[c] == stage.c[c] for c in version))
    updated = conn.execute(
        update(fact)
        .where(match, _differs(fact.c, stage.c, values))
        .values({c: stage.c[c] for c in values})
    ).rowcount
    inserted = conn.execute(
        insert(fact).from_select(cols, staged.where(~exists().where(match)))
    ).rowcount
    return updated + inserted


@contextlib.contextmanager
def _foreign_keys_checked_at_the_end(conn: Connection, tables: list[str]) -> Iterator[None]:
    """Drop the tables' foreign keys and add them back before commit: PostgreSQL then
    validates each with one set-based query instead of a trigger per row. Inside the
    transaction, so no other session ever sees them missing."""
    found = conn.execute(
        text(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
            "FROM pg_constraint WHERE contype = 'f' AND conrelid = ANY("
            "SELECT oid FROM pg_class WHERE relname = ANY(:t) "
            "AND relnamespace = current_schema()::regnamespace)"
        ),
        {"t": tables},
    ).all()
    quote = conn.dialect.identifier_preparer.quote
    for table, name, _ in found:  # names and definitions come from the catalog itself
        conn.execute(text(f"ALTER TABLE {table} DROP CONSTRAINT {quote(name)}"))
    yield
    for table, name, definition in found:
        conn.execute(text(f"ALTER TABLE {table} ADD CONSTRAINT {quote(name)} {definition}"))
    for table in tables:  # fresh statistics after a big change: for the planner and BULK_SHARE
        conn.execute(text(f"ANALYZE {quote(table)}"))


def _bulk_facts(conn: Connection, rows: dict[str, int]) -> list[str]:
    """The facts whose foreign keys this run checks once at the end (see BULK_SHARE)."""
    big = [f for f, n in rows.items() if n > BULK_ROWS]
    if not big:
        return []
    held = dict(
        conn.execute(
            text(
                "SELECT relname, reltuples FROM pg_class WHERE relname = ANY(:t) "
                "AND relnamespace = current_schema()::regnamespace"
            ),
            {"t": big},
        ).all()
    )
    # reltuples is -1 until the table is first analyzed; the bulk path analyzes it
    return [f for f in big if rows[f] * BULK_SHARE > max(held.get(f, 0), 0)]


class _NotStraight(Exception):
    """The run repeats a key, so it cannot go straight into an empty table."""


def _version_columns(table: str) -> list[str]:
    star = star_table(table)
    if table in FACTS:
        return [star.info["source_key"], "last_updated_date", "last_updated_time"]
    return [star.primary_key.columns[0].name]


def _is_empty(conn: Connection, table: str) -> bool:
    star = star_table(table)
    if conn.execute(select(exists().select_from(star))).scalar_one():
        return False
    versions = DIMENSION_VERSIONS
    return not conn.execute(select(exists().where(versions.c.dimension == table))).scalar_one()


def _straight_in(
    conn: Connection, processed: lakes.Lake, table: str, files: list[str], deadline: Deadline
) -> int:
    """COPY the run's files straight into an empty table: nothing to merge with, so no
    staging (the bulk of a first load). A repeated key fails the caller's savepoint:
    dimensions by their primary key, facts by the version index or, without one, by a
    set-based check after the COPY, so memory never holds the run's keys."""
    import pyarrow as pa

    schema = output_schema(table)
    total = 0
    for key in files:
        deadline.check(f"loading {table}")
        rows = lakes.read_parquet(processed, [key], schema)
        if VERSION in schema.names:
            _copy_in(conn, table, rows.drop_columns([VERSION]))
            versions = pa.table(
                {
                    "dimension": pa.array([table] * rows.num_rows, pa.string()),
                    "key": rows.column(_version_columns(table)[0]),
                    "source_last_updated": rows.column(VERSION),
                }
            )
            _copy_in(conn, DIMENSION_VERSIONS.fullname, versions)
        else:
            _copy_in(conn, table, rows)
        total += rows.num_rows
    if table in FACTS and not _has_version_index(conn, table):
        star = star_table(table)
        version = [star.c[c] for c in _version_columns(table)]
        repeated = select(*version).group_by(*version).having(func.count() > 1).limit(1)
        if conn.execute(repeated).first() is not None:
            raise _NotStraight(table)
    return total


def _staged(
    conn: Connection, processed: lakes.Lake, table: str, files: list[str], deadline: Deadline
) -> tuple[int, int]:
    """Stage the run's rows, then merge them with what the table holds."""
    stage = _stage(f"stage_{table}", table)
    conn.execute(CreateTable(stage))
    schema = output_schema(table)
    total = 0
    for key in files:
        deadline.check(f"loading {table}")
        rows = lakes.read_parquet(processed, [key], schema)
        _copy_in(conn, stage.name, rows)
        total += rows.num_rows
    # a fresh temporary table has no statistics: without them the merge below plans for
    # a big stage and scans the whole warehouse table instead of probing its index
    conn.execute(text(f"ANALYZE {conn.dialect.identifier_preparer.quote(stage.name)}"))
    if table == "dim_date":
        changed = _apply_calendar(conn, stage)
    elif table in FACTS:
        changed = _apply_fact(conn, stage, table)
    else:
        changed = _apply_dimension(conn, stage, table)
    conn.execute(DropTable(stage))
    return total, changed


def _load_table(
    conn: Connection, processed: lakes.Lake, table: str, files: list[str], deadline: Deadline
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


def _load_run(
    conn: Connection,
    processed: lakes.Lake,
    seq: int,
    manifest: dict[str, Any],
    reload: bool,
    deadline: Deadline,
) -> RunLoad:
    result = RunLoad(seq, reload=reload)
    started = time.perf_counter()
    tables = manifest["tables"]
    bulk = _bulk_facts(conn, {f: tables.get(f, {}).get("rows", 0) for f in FACTS})
    with _foreign_keys_checked_at_the_end(conn, bulk):
        for table in ORDER:
            files = [f["key"] for f in tables.get(table, {}).get("files", [])]
            if files:
                rows, changed = _load_table(conn, processed, table, files, deadline)
                result.rows[table], result.changed[table] = rows, changed
    _record(conn, seq, manifest, sum(result.rows.values()), reload)
    faults.point("load.before_commit")
    result.seconds = time.perf_counter() - started
    return result


def _record(conn: Connection, seq: int, manifest: dict[str, Any], rows: int, reload: bool) -> None:
    def stamp(name: str) -> dt.datetime | None:
        value = manifest.get(name)
        return dt.datetime.fromisoformat(value) if value else None

    if reload:
        conn.execute(
            update(LOADED_RUNS).where(LOADED_RUNS.c.seq == seq).values(reloaded_at=func.now())
        )
        return
    conn.execute(
        insert(LOADED_RUNS).values(
            seq=seq,
            run_id=manifest.get("run_id", ""),
            snapshot_time=stamp("snapshot_time"),
            min_last_updated=stamp("min_last_updated"),
            max_last_updated=stamp("max_last_updated"),
            rows=rows,
        )
    )


# ---------------------------------------------------------------- the step


def _pending(
    conn: Connection, processed: lakes.Lake, since: dt.datetime | None
) -> list[tuple[int, str, bool]]:
    """(seq, manifest key, reload) in load order."""
    loaded = conn.execute(select(func.coalesce(func.max(LOADED_RUNS.c.seq), 0))).scalar_one()
    runs = []
    if since is not None:
        # reload the loaded runs whose data reaches back to T
        reaching = set(
            conn.execute(
                select(LOADED_RUNS.c.seq).where(LOADED_RUNS.c.max_last_updated >= since)
            ).scalars()
        )
        runs += [
            (seq, key, True) for seq, key in lakes.manifests_after(processed, 0) if seq in reaching
        ]
    runs += [(seq, key, False) for seq, key in lakes.manifests_after(processed, loaded)]
    return runs


def load(
    warehouse: Database,
    processed: lakes.Lake,
    options: LoadOptions,
    deadline: Deadline | None = None,
) -> LoadResult:
    deadline = deadline or Deadline(None)
    started = time.perf_counter()
    processed.check()
    warehouse = deadline.bound(warehouse)
    done: list[RunLoad] = []
    with translate_errors(warehouse), engine(warehouse).connect() as conn:
        check_warehouse(conn)
        ensure_meta(conn)
        pending = _pending(conn, processed, options.since)
        conn.commit()
        for seq, key, reload in pending:
            manifest = lakes.decode_manifest(processed, key)
            with conn.begin():
                result = _load_run(conn, processed, seq, manifest, reload, deadline)
            faults.point("load.after_commit")
            done.append(result)
            log.info(
                "%s processed run %d",
                "reloaded" if reload else "loaded",
                seq,
                extra={"rows": sum(result.changed.values()), "seconds": round(result.seconds, 3)},
            )
    return LoadResult(done, time.perf_counter() - started)
