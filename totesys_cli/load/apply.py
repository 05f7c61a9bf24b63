"""Applying a staged star table to the warehouse, set-based, inside the run's transaction.

The calendar only grows. A dimension takes the newest staged version of each key,
and only if it is not older than the version the warehouse already reflects (kept in
`totesys_meta.dimension_versions`), so replaying an older run never overwrites a newer
value. A fact keeps one row per version: new versions are inserted, existing ones
corrected where a value differs. Values are written only where they differ, so a
reload of a correct run changes nothing.
"""

from __future__ import annotations

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
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import TIMESTAMP, distinct_on
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.schema import CreateTable, DropTable

from totesys_cli.db.catalog import has_unique_index
from totesys_cli.schemas import DELETIONS, DIMENSION_VERSIONS, data_columns, star
from totesys_cli.schemas.arrow import VERSION, output_schema


def stage_table(name: str, table: str) -> Table:
    """A temporary table shaped like the processed files of `table`; dropped at commit."""
    target = star(table).table
    columns = [
        Column(f.name, TIMESTAMP(precision=3) if f.name == VERSION else target.c[f.name].type)
        for f in output_schema(table)
    ]
    return Table(name, MetaData(), *columns, prefixes=["TEMPORARY"], postgresql_on_commit="DROP")


def _differs(target, source, columns: list[str]):
    """Rows whose values differ, given two column collections."""
    return tuple_(*(target[c] for c in columns)).is_distinct_from(
        tuple_(*(source[c] for c in columns))
    )


def apply_calendar(conn: Connection, stage: Table) -> int:
    dim = star("dim_date").table
    cols = data_columns(dim)
    fresh = select(*(stage.c[c] for c in cols)).where(
        ~exists().where(dim.c.date_id == stage.c.date_id)
    )
    return conn.execute(insert(dim).from_select(cols, fresh)).rowcount


def apply_dimension(conn: Connection, stage: Table, table: str, replayed: bool = False) -> int:
    """Newest staged version per key, applied only if not older than the version the
    warehouse already reflects; values are written only where they differ. A reprocess
    (`replayed`) brings no key deleted in the source back."""
    dim = star(table).table
    key = star(table).key
    cols = data_columns(dim)
    values = [c for c in cols if c != key]
    versions = DIMENSION_VERSIONS
    fresh = stage_table("fresh", table)
    conn.execute(CreateTable(fresh))
    # one index probe per staged key (a join would scan the versions of every key, so a
    # small run would cost what the whole dimension costs)
    applied = (
        select(versions.c.source_last_updated)
        .where(versions.c.dimension == table, versions.c.key == stage.c[key])
        .scalar_subquery()
    )
    gone = DELETIONS
    # a reprocess brings a deleted key back only with a version newer than the one the
    # warehouse held when it was deleted (a run reading the source anew brings back any:
    # the key is there again)
    still_deleted = exists().where(
        gone.c.source_table == star(table).source,
        gone.c.key == stage.c[key],
        gone.c.ended_in.is_(None),
        stage.c[VERSION] <= gone.c.last_version,
    )
    newest = (
        select(stage)
        .ext(distinct_on(stage.c[key]))
        .where(stage.c[VERSION] >= func.coalesce(applied, cast(literal("-infinity"), TIMESTAMP)))
        .where(~still_deleted if replayed else literal(True))
        .order_by(stage.c[key], stage.c[VERSION].desc())
    )
    conn.execute(insert(fresh).from_select([c.name for c in stage.columns], newest))
    upsert = pg_insert(dim).from_select(cols, select(*(fresh.c[c] for c in cols)))
    changed = conn.execute(
        upsert.on_conflict_do_update(
            index_elements=list(star(table).version_key),  # a dimension's key is its primary key
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


def has_version_index(conn: Connection, table: str) -> bool:
    """Whether the fact has the unique index on its version key that init creates."""
    return has_unique_index(conn, table, star(table).version_key)


def apply_fact(conn: Connection, stage: Table, table: str) -> int:
    """Each version is one row: new versions inserted, existing ones corrected only where
    a value differs. With the unique version index that is one INSERT ... ON CONFLICT;
    without it, an UPDATE then an INSERT of the versions not present, which is safe
    because the run holds the lock."""
    fact = star(table).table
    cols = data_columns(fact)
    version = list(star(table).version_key)
    values = [c for c in cols if c not in version]
    staged = select(*(stage.c[c] for c in cols)).ext(distinct_on(*(stage.c[c] for c in version)))
    if has_version_index(conn, table):
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
