"""The warehouse's shape: what `init` creates and what every load checks first.

The star tables, the unique index on each fact's version key, the `*_latest` views
and the `totesys_meta` bookkeeping schema. What exists is never altered: a team
warehouse whose tables someone else created gets only what it lacks.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, func, insert, inspect, select, text
from sqlalchemy.schema import CreateIndex, CreateSchema, CreateTable

from totesys_cli.db.catalog import present_columns
from totesys_cli.errors import RuntimeFailure
from totesys_cli.schemas import (
    DELETIONS,
    FACTS,
    LINEAGE,
    LOADED_RUNS,
    META,
    META_SCHEMA,
    STAR_TABLES,
    WAREHOUSE,
    star,
)
from totesys_cli.schemas.model import latest_versions
from totesys_cli.schemas.summaries import SUMMARIES
from totesys_cli.warehouse import upkeep


def ensure_meta(conn: Connection) -> list[str]:
    """The bookkeeping schema and its tables; load calls this too, so it works on a
    warehouse whose star tables someone else created."""
    created = []
    inspector = inspect(conn)
    if not inspector.has_schema(META_SCHEMA):
        conn.execute(CreateSchema(META_SCHEMA, if_not_exists=True))
        created.append(f"schema {META_SCHEMA}")
    existing = set(inspect(conn).get_table_names(schema=META_SCHEMA))
    for table in META.sorted_tables:
        present: set[str | None] = set()
        if table.name not in existing:
            conn.execute(CreateTable(table, if_not_exists=True))
            created.append(f"table {table.fullname}")
        elif table.indexes:
            present = {i["name"] for i in inspector.get_indexes(table.name, schema=META_SCHEMA)}
        for index in table.indexes:
            if index.name not in present:
                conn.execute(CreateIndex(index))
                created.append(f"index {index.name}")
    if set(FACTS) <= set(inspector.get_table_names()):
        created += _latest_views(conn)
    new = tuple(s for s in SUMMARIES if s.name not in existing)
    if new:  # a warehouse from before the summaries: they start from the facts it holds
        present = set(inspect(conn).get_table_names())
        for fact in dict.fromkeys(s.fact for s in new):
            if fact in present:
                upkeep.sum_whole(conn, fact, tuple(s for s in new if s.fact == fact))
    return created


def create_missing(conn: Connection) -> list[str]:
    """Create whatever of the warehouse is missing; returns what was created."""
    created = []
    inspector = inspect(conn)
    existing = set(inspector.get_table_names())
    for table in WAREHOUSE.sorted_tables:
        if table.name not in existing:
            conn.execute(CreateTable(table))
            created.append(f"table {table.name}")
        present = (
            {ix["name"] for ix in inspector.get_indexes(table.name)}
            if (table.name in existing)
            else set()
        )
        for index in table.indexes:
            if index.name not in present:
                conn.execute(CreateIndex(index))
                created.append(f"index {index.name}")
    return created + ensure_meta(conn)


def _latest_views(conn: Connection) -> list[str]:
    """The facts' *_latest views: created where missing, and replaced where they were
    created before deletions were recorded (they must leave deleted keys out)."""
    done = []
    views = set(inspect(conn).get_view_names())
    for fact in FACTS:
        name = star(fact).relation
        if name in views:
            shown = conn.execute(text("SELECT pg_get_viewdef(to_regclass(:v))"), {"v": name})
            if DELETIONS.name in (shown.scalar() or ""):
                continue
        query = latest_versions(fact).compile(conn, compile_kwargs={"literal_binds": True})
        view = conn.dialect.identifier_preparer.quote(name)
        conn.execute(text(f"CREATE OR REPLACE VIEW {view} AS {query}"))
        done.append(f"view {name}" + (" (leaving deleted keys out)" if name in views else ""))
    return done


def check_tables(conn: Connection) -> dict[str, set[str]]:
    """Every star table, before anything is written; their columns, as they are."""
    present = present_columns(conn, list(STAR_TABLES))
    missing_tables = [t for t in STAR_TABLES if t not in present]
    if len(missing_tables) == len(STAR_TABLES):
        raise RuntimeFailure(
            "the warehouse is not initialised: it has none of the star tables; nothing was loaded",
            "Run totesys init first",
        )
    if missing_tables:
        raise RuntimeFailure(
            f"the warehouse has no table {', '.join(missing_tables)}; nothing was loaded",
            "Run totesys init first",
        )
    return present


def check_warehouse(conn: Connection) -> None:
    """Every star table with every column, before anything is written."""
    present = check_tables(conn)
    for table in STAR_TABLES:
        missing = [c.name for c in star(table).table.columns if c.name not in present[table]]
        if missing:
            raise RuntimeFailure(
                f"the warehouse table {table} has no column {', '.join(missing)}; nothing was "
                "loaded",
                "Add it as totesys init creates it",
            )


# ---------------------------------------------------------------- lineage


@dataclass(frozen=True)
class Lineage:
    """The processed zone the warehouse is loaded from."""

    zone: str | None  # None: an older warehouse that loaded runs before zones had one
    url: str | None
    newest_run: tuple[int, str] | None  # (seq, run id) of the newest loaded run


def lineage(conn: Connection) -> Lineage | None:
    """None for a warehouse that has loaded nothing (or has no bookkeeping yet)."""
    if conn.execute(text("SELECT to_regclass('totesys_meta.loaded_runs')")).scalar() is None:
        return None
    newest = conn.execute(
        select(LOADED_RUNS.c.seq, LOADED_RUNS.c.run_id).order_by(LOADED_RUNS.c.seq.desc()).limit(1)
    ).first()
    row = None
    if conn.execute(text("SELECT to_regclass('totesys_meta.lineage')")).scalar() is not None:
        row = conn.execute(select(LINEAGE.c.processed_zone, LINEAGE.c.processed_url)).first()
    if row is None and newest is None:
        return None
    return Lineage(
        row[0] if row else None, row[1] if row else None, tuple(newest) if newest else None
    )


def record_lineage(conn: Connection, zone: str, url: str) -> None:
    """In the load's transaction: the first load names the zone; later ones keep it."""
    if conn.execute(select(func.count()).select_from(LINEAGE)).scalar_one() == 0:
        conn.execute(insert(LINEAGE).values(processed_zone=zone, processed_url=url))
