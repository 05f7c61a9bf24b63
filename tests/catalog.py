"""Read a database's shape from information_schema, to compare it with the spec."""

from __future__ import annotations

from sqlalchemy import Connection, text

COLUMNS = text("""
SELECT table_name, ordinal_position, column_name, data_type, is_nullable,
       numeric_precision, numeric_scale, datetime_precision,
       coalesce(column_default LIKE 'nextval(%', false) AS serial
FROM information_schema.columns
WHERE table_schema = 'public' AND table_name = ANY(:tables)
ORDER BY table_name, ordinal_position
""")

KEYS = text("""
SELECT tc.table_name, tc.constraint_type, kcu.column_name,
       ccu.table_name AS ref_table, ccu.column_name AS ref_column
FROM information_schema.table_constraints AS tc
JOIN information_schema.key_column_usage AS kcu
  ON kcu.constraint_name = tc.constraint_name AND kcu.table_schema = tc.table_schema
LEFT JOIN information_schema.constraint_column_usage AS ccu
  ON ccu.constraint_name = tc.constraint_name AND tc.constraint_type = 'FOREIGN KEY'
WHERE tc.table_schema = 'public' AND tc.table_name = ANY(:tables)
  AND tc.constraint_type IN ('PRIMARY KEY', 'FOREIGN KEY', 'UNIQUE')
ORDER BY 1, 2, 3, 4, 5
""")


def columns(conn: Connection, tables: list[str]) -> list[tuple]:
    return [tuple(row) for row in conn.execute(COLUMNS, {"tables": tables})]


def keys(conn: Connection, tables: list[str]) -> list[tuple]:
    return [tuple(row) for row in conn.execute(KEYS, {"tables": tables})]


def snapshot(conn: Connection, tables: list[str]) -> tuple[list[tuple], list[tuple]]:
    return columns(conn, tables), keys(conn, tables)
