"""The keys deleted in the source, as the warehouse recorded them (see `load.deletions`)."""

from __future__ import annotations

from sqlalchemy import Connection, func, select, text

from totesys_cli.schemas import DELETIONS


def _recorded(conn: Connection) -> bool:
    """Whether the warehouse records deletions yet (a warehouse of an earlier release
    gains the table on `init` or its next load)."""
    return conn.execute(text(f"SELECT to_regclass('{DELETIONS.fullname}')")).scalar() is not None


def open_keys(conn: Connection) -> dict[str, list[int]]:
    """Per source table, the keys deleted in the source (and not inserted again)."""
    if not _recorded(conn):
        return {}
    d = DELETIONS
    rows = conn.execute(
        select(d.c.source_table, d.c.key).where(d.c.ended_in.is_(None)).order_by(d.c.key)
    ).all()
    found: dict[str, list[int]] = {}
    for table, key in rows:
        found.setdefault(table, []).append(key)
    return dict(sorted(found.items()))


def counts(conn: Connection) -> dict[str, int]:
    """Per source table, how many of its keys are deleted (open deletions)."""
    if not _recorded(conn):
        return {}
    d = DELETIONS
    rows = conn.execute(
        select(d.c.source_table, func.count())
        .where(d.c.ended_in.is_(None))
        .group_by(d.c.source_table)
        .order_by(d.c.source_table)
    ).all()
    return {table: n for table, n in rows}
