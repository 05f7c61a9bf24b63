"""The warehouse's shape: `init` creates the star schemas, indexes, views and bookkeeping."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import Connection, inspect, select, text
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.schema import CreateIndex, CreateSchema, CreateTable

from totesys_cli.db import engine, translate_errors
from totesys_cli.schemas import (
    FACTS,
    META,
    META_SCHEMA,
    WAREHOUSE,
    latest_view_name,
    star_table,
)
from totesys_cli.settings import Database

log = logging.getLogger(__name__)


@dataclass
class InitResult:
    created: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created)


def latest_view_query(fact: str):
    """The latest version of each source row: what reports sum."""
    table = star_table(fact)
    key = table.c[table.info["source_key"]]
    return (
        select(table)
        .ext(distinct_on(key))
        .order_by(
            key,
            table.c.last_updated_date.desc(),
            table.c.last_updated_time.desc(),
            table.c[table.info["record_id"]].desc(),
        )
    )


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
        if table.name not in existing:
            conn.execute(CreateTable(table, if_not_exists=True))
            created.append(f"table {table.fullname}")
    return created


def create_missing(conn: Connection) -> InitResult:
    """Create whatever of the warehouse is missing; what exists is left exactly as it is."""
    result = InitResult()
    inspector = inspect(conn)
    existing = set(inspector.get_table_names())
    for table in WAREHOUSE.sorted_tables:
        if table.name not in existing:
            conn.execute(CreateTable(table))
            result.created.append(f"table {table.name}")
        present = (
            {ix["name"] for ix in inspector.get_indexes(table.name)}
            if (table.name in existing)
            else set()
        )
        for index in table.indexes:
            if index.name not in present:
                conn.execute(CreateIndex(index))
                result.created.append(f"index {index.name}")
    views = set(inspector.get_view_names())
    for fact in FACTS:
        name = latest_view_name(fact)
        if name not in views:
            query = latest_view_query(fact).compile(conn, compile_kwargs={"literal_binds": True})
            view = conn.dialect.identifier_preparer.quote(name)
            conn.execute(text(f"CREATE VIEW {view} AS {query}"))
            result.created.append(f"view {name}")
    result.created += ensure_meta(conn)
    return result


def init_warehouse(db: Database) -> InitResult:
    with translate_errors(db), engine(db).begin() as conn:
        result = create_missing(conn)
    for item in result.created:
        log.info("created %s", item)
    return result
