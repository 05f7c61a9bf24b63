"""A table filled with its indexes built after the rows ends with exactly the indexes
it had, and a unique one the rows break fails where it is built."""

from __future__ import annotations

import pytest
import sqlalchemy.exc
from sqlalchemy import text

from totesys_cli.db import indexes

_SHAPE = """
CREATE SCHEMA filled;
CREATE TABLE filled.parent (id int PRIMARY KEY);
CREATE TABLE filled.child (
    id serial PRIMARY KEY,
    parent int REFERENCES filled.parent (id),
    code text,
    at date,
    CONSTRAINT child_code UNIQUE (code)
);
CREATE UNIQUE INDEX child_version ON filled.child (parent, at);
CREATE INDEX child_at ON filled.child (at) WHERE at IS NOT NULL;
"""

_HELD = text(
    "SELECT c.relname, x.relname, pg_get_indexdef(i.indexrelid), "
    "coalesce(pg_get_constraintdef(k.oid), '') FROM pg_index i "
    "JOIN pg_class c ON c.oid = i.indrelid JOIN pg_class x ON x.oid = i.indexrelid "
    "LEFT JOIN pg_constraint k ON k.conindid = i.indexrelid AND k.conrelid = c.oid "
    "WHERE c.relnamespace = 'filled'::regnamespace ORDER BY 1, 2"
)


def _dropped_inside(conn) -> list:
    return conn.execute(
        text(
            "SELECT x.relname FROM pg_index i JOIN pg_class x ON x.oid = i.indexrelid "
            "WHERE i.indrelid = 'filled.child'::regclass ORDER BY 1"
        )
    ).all()


def test_the_indexes_are_built_again_as_they_were(pg):
    with pg.engine().connect() as conn:
        conn.execute(text(_SHAPE))
        before = conn.execute(_HELD).all()
        with indexes.built_after(conn, "filled.child"):
            assert _dropped_inside(conn) == []
            conn.execute(text("INSERT INTO filled.parent VALUES (1), (2)"))
            conn.execute(
                text(
                    "INSERT INTO filled.child (parent, code, at) VALUES "
                    "(1, 'a', '2024-01-01'), (2, 'b', '2024-01-01'), (1, 'c', NULL)"
                )
            )
        assert conn.execute(_HELD).all() == before
        # the parent's key stays throughout: a foreign key relies on it
        with indexes.built_after(conn, "filled.parent"):
            assert conn.execute(_HELD).all() == before
        conn.rollback()


@pytest.mark.parametrize(
    ("rows", "broken"),
    [
        ("(1, 'a', '2024-01-01'), (1, 'a', '2024-01-02')", "child_code"),
        ("(1, 'a', '2024-01-01'), (1, 'b', '2024-01-01')", "child_version"),
    ],
)
def test_rows_that_break_a_unique_index_fail_where_it_is_built(pg, rows, broken):
    with pg.engine().connect() as conn:
        conn.execute(text(_SHAPE))
        conn.execute(text("INSERT INTO filled.parent VALUES (1)"))
        with (
            pytest.raises(sqlalchemy.exc.DatabaseError, match=f"23505.*{broken}"),
            indexes.built_after(conn, "filled.child"),
        ):
            conn.execute(text(f"INSERT INTO filled.child (parent, code, at) VALUES {rows}"))  # nosec B608
        conn.rollback()
