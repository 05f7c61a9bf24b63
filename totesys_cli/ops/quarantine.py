"""The quarantine as the warehouse records it: what was set aside, why, and whether a
later valid version has resolved it. Read by `status`, `verify` and `totesys quarantine`."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass

from sqlalchemy import Connection, func, select

from totesys_cli.config.settings import Settings
from totesys_cli.db import engine, translate_errors
from totesys_cli.runtime.endpoints import WAREHOUSE, open_endpoints
from totesys_cli.schemas import META_SCHEMA, QUARANTINE


@dataclass(frozen=True)
class Entry:
    source_table: str
    key: int
    version: str
    column: str
    value: str | None
    kind: str
    reason: str
    found_in: int
    found_at: dt.datetime
    resolved_in: int | None
    resolved_at: dt.datetime | None

    def as_dict(self) -> dict:
        data = asdict(self)
        for name in ("found_at", "resolved_at"):
            if data[name] is not None:
                data[name] = data[name].astimezone(dt.UTC).isoformat(timespec="seconds")
        return data


def has_quarantine(conn: Connection) -> bool:
    return conn.dialect.has_table(conn, QUARANTINE.name, schema=META_SCHEMA)


def entries(conn: Connection, everything: bool = False, limit: int | None = None) -> list[Entry]:
    """Open entries (all, with `everything`), newest first."""
    if not has_quarantine(conn):
        return []
    q = QUARANTINE
    query = select(
        q.c.source_table,
        q.c.key,
        q.c.version,
        q.c.column_name,
        q.c.value,
        q.c.kind,
        q.c.reason,
        q.c.found_in,
        q.c.found_at,
        q.c.resolved_in,
        q.c.resolved_at,
    ).order_by(q.c.found_at.desc(), q.c.source_table, q.c.key)
    if not everything:
        query = query.where(q.c.resolved_in.is_(None))
    if limit is not None:
        query = query.limit(limit)
    return [Entry(*row) for row in conn.execute(query)]


def open_count(conn: Connection) -> int:
    if not has_quarantine(conn):
        return 0
    query = select(func.count()).select_from(QUARANTINE).where(QUARANTINE.c.resolved_in.is_(None))
    return conn.execute(query).scalar_one()


def open_keys(conn: Connection) -> dict[str, list[int]]:
    """Per source table, the keys with an open entry."""
    if not has_quarantine(conn):
        return {}
    q = QUARANTINE
    rows = conn.execute(
        select(q.c.source_table, q.c.key).where(q.c.resolved_in.is_(None)).distinct()
    ).all()
    found: dict[str, list[int]] = {}
    for table, key in rows:
        found.setdefault(table, []).append(key)
    return {table: sorted(keys) for table, keys in found.items()}


def listing(settings: Settings, everything: bool = False) -> list[Entry]:
    """`totesys quarantine`: the open entries (`everything`: resolved ones too)."""
    db = open_endpoints(settings, (WAREHOUSE,)).warehouse
    with translate_errors(db), engine(db).connect() as conn:
        return entries(conn, everything)
