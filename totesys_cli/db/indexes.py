"""A table's indexes built once after a bulk fill, instead of grown row by row."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sqlalchemy import Connection, text


@contextlib.contextmanager
def built_after(conn: Connection, table: str) -> Iterator[None]:
    """Around filling an empty table: its indexes (those of its primary key and unique
    constraints included) dropped, then each built once from the rows, several times
    faster than growing it row by row. A unique index the rows break fails where it is
    built, as the COPY would have. Inside the caller's transaction, so no other session
    sees the table without them; an index a foreign key relies on is left in place (it
    cannot be dropped while the key stands)."""
    quote = conn.dialect.identifier_preparer.quote
    # names and definitions come from the catalog itself
    constraints = conn.execute(
        text(
            "SELECT c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint c "
            "WHERE c.conrelid = to_regclass(:t) AND c.contype IN ('p', 'u') "
            "AND NOT EXISTS (SELECT FROM pg_constraint f "
            "WHERE f.contype = 'f' AND f.conindid = c.conindid)"
        ),
        {"t": table},
    ).all()
    indexes = conn.execute(
        text(
            "SELECT x.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i "
            "JOIN pg_class x ON x.oid = i.indexrelid WHERE i.indrelid = to_regclass(:t) "
            "AND NOT EXISTS (SELECT FROM pg_constraint c WHERE c.conindid = i.indexrelid)"
        ),
        {"t": table},
    ).all()
    schema = f"{quote(table.split('.')[0])}." if "." in table else ""
    for name, _ in constraints:
        conn.execute(text(f"ALTER TABLE {table} DROP CONSTRAINT {quote(name)}"))
    for name, _ in indexes:
        conn.execute(text(f"DROP INDEX {schema}{quote(name)}"))
    yield
    for name, definition in constraints:
        conn.execute(text(f"ALTER TABLE {table} ADD CONSTRAINT {quote(name)} {definition}"))
    for _, definition in indexes:
        conn.execute(text(definition))
