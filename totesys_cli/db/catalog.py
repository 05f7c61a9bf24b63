"""What a database holds, read from pg_catalog (a millisecond where information_schema
takes tens): the checks before a step writes anything."""

from __future__ import annotations

from sqlalchemy import Connection, text


def columns(conn: Connection, tables: list[str]) -> dict[str, dict[str, tuple[str, bool]]]:
    """Each of these tables' columns in the current schema: (type as PostgreSQL writes it,
    whether NULL is allowed)."""
    rows = conn.execute(
        text(
            "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), "
            "NOT a.attnotnull FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
            "WHERE c.relnamespace = current_schema()::regnamespace AND c.relname = ANY(:t) "
            "AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND a.attnum > 0 AND NOT a.attisdropped"
        ),
        {"t": tables},
    ).all()
    found: dict[str, dict[str, tuple[str, bool]]] = {}
    for table, column, kind, nullable in rows:
        found.setdefault(table, {})[column] = (kind, nullable)
    return found


def column_types(conn: Connection, name: str) -> dict[str, str]:
    """The columns of one table, named as SQL names it (schema-qualified, or a temporary
    table), and their types as `format_type` names them without a modifier."""
    found = conn.execute(
        text(
            "SELECT attname, format_type(atttypid, NULL) FROM pg_attribute "
            "WHERE attrelid = to_regclass(:t) AND attnum > 0 AND NOT attisdropped"
        ),
        {"t": name},
    )
    return {column: kind for column, kind in found}


def present_columns(conn: Connection, tables: list[str]) -> dict[str, set[str]]:
    """The columns each of these tables has in the current schema."""
    return {table: set(found) for table, found in columns(conn, tables).items()}


def has_unique_index(conn: Connection, table: str, columns: tuple[str, ...]) -> bool:
    """Whether the table has a unique index on exactly these columns (in any order)."""
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
    return any(sorted(index) == sorted(columns) for index in found)


def estimated_rows(conn: Connection, tables: list[str]) -> dict[str, float]:
    """The planner's row estimate per table, by the name given (schema-qualified or
    not); reltuples, -1 until first analyzed."""
    return dict(
        conn.execute(
            text(
                "SELECT t.name, c.reltuples FROM unnest(CAST(:t AS text[])) AS t(name) "
                "JOIN pg_class AS c ON c.oid = to_regclass(t.name)"
            ),
            {"t": tables},
        ).all()
    )


def indexed_by(conn: Connection, tables: list[str], column: str) -> set[str]:
    """Which of these tables (in the current schema) have a valid btree index that
    begins with this column and covers every row (no predicate): one the planner can
    answer a range of it from."""
    return set(
        conn.execute(
            text(
                "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
                "JOIN pg_class x ON x.oid = i.indexrelid JOIN pg_am m ON m.oid = x.relam "
                "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[0] "
                "WHERE c.relnamespace = current_schema()::regnamespace AND c.relname = ANY(:t) "
                "AND a.attname = :c AND m.amname = 'btree' AND i.indisvalid "
                "AND i.indpred IS NULL"
            ),
            {"t": tables, "c": column},
        ).scalars()
    )


def may_set(conn: Connection, parameter: str) -> bool:
    """Whether the role may set this superuser parameter: a superuser may, and from
    PostgreSQL 15 so may a role granted SET on it."""
    if conn.dialect.server_version_info >= (15,):
        return conn.execute(
            text("SELECT has_parameter_privilege(:p, 'SET')"), {"p": parameter}
        ).scalar_one()
    query = text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    return conn.execute(query).scalar_one()
