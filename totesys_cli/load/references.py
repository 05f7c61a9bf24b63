"""A run's facts keep their foreign keys, checked at a cost that follows the run.

PostgreSQL checks a foreign key with a trigger per row and key; a 1 % burst of the
benchmark writes 42,600 fact rows with 7 to 9 keys each, and those 322,000 checks are
most of its load. Two set-based ways stand in for them:

- A run big beside its fact (more than `BULK_ROWS` rows and over 1/`BULK_SHARE` of the
  rows the table holds) drops the fact's foreign keys and adds them back before commit:
  PostgreSQL validates each with one query over the whole table.
- Any other run writes the fact's rows with the triggers off
  (`session_replication_role = replica`, for that statement alone), then checks the
  rows it wrote: one query per key finds their distinct values in the referenced table
  and locks those rows FOR KEY SHARE, as the trigger does, so that no other session
  can delete one before the run commits. Only when the warehouse role may set that
  parameter (a superuser, or granted SET on it) and the fact has no trigger but its
  foreign keys' checks, and no rule: a team's own trigger keeps firing.

Otherwise the triggers check each row, as PostgreSQL does by default.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import (
    Connection,
    FromClause,
    and_,
    column,
    exists,
    func,
    literal,
    select,
    table,
    text,
    true,
)

from totesys_cli.db.catalog import estimated_rows, may_set
from totesys_cli.errors import RuntimeFailure
from totesys_cli.runtime import Deadline
from totesys_cli.schemas import star

# a run big beside its table: more than BULK_ROWS rows and more than 1/BULK_SHARE of the
# rows the table holds. Re-checking the whole table then costs little beside the run's
# own rows, and needs no privilege (a first load's big dimension builds the key of its
# versions after them by the same measure, see `tables`)
BULK_ROWS = 50_000
BULK_SHARE = 10

_ROLE = "session_replication_role"  # the parameter that turns triggers off


@contextlib.contextmanager
def checked_at_the_end(conn: Connection, tables: list[str], deadline: Deadline) -> Iterator[None]:
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
    for name, constraint, _ in found:  # names and definitions come from the catalog itself
        conn.execute(text(f"ALTER TABLE {name} DROP CONSTRAINT {quote(constraint)}"))
    yield
    for name, constraint, definition in found:
        deadline.limit(conn)
        conn.execute(text(f"ALTER TABLE {name} ADD CONSTRAINT {quote(constraint)} {definition}"))
    for name in tables:  # fresh statistics after a big change: for the planner and BULK_SHARE
        deadline.limit(conn)
        conn.execute(text(f"ANALYZE {quote(name)}"))


def bulk_facts(conn: Connection, rows: dict[str, int]) -> list[str]:
    """The facts whose foreign keys this run checks once at the end (see BULK_SHARE)."""
    big = [f for f, n in rows.items() if n > BULK_ROWS]
    if not big:
        return []
    held = estimated_rows(conn, big)
    # reltuples is -1 until the table is first analyzed; the bulk path analyzes it
    return [f for f in big if rows[f] * BULK_SHARE > max(held.get(f, 0), 0)]


@dataclass(frozen=True)
class _Key:
    name: str  # the constraint's
    columns: tuple[str, ...]
    target: FromClause  # the referenced table, with its referenced columns
    target_columns: tuple[str, ...]

    @property
    def pairs(self) -> list[tuple[str, str]]:
        """(referenced column, referencing column)."""
        return list(zip(self.target_columns, self.columns, strict=True))


class Checks:
    """A table's foreign keys, for the rows one run writes to it: checked set-based
    after the rows are written with the triggers off (`unchecked`, then `check`) when
    that is allowed, else left to the triggers (both calls then do nothing). Only the
    facts have foreign keys."""

    def __init__(self, conn: Connection, table: str):
        self.conn, self.table = conn, table
        self.keys = _set_based_keys(conn, table) if star(table).is_fact else []

    @contextlib.contextmanager
    def unchecked(self) -> Iterator[None]:
        """Around the statements that write the fact's rows. A failure inside is left to
        the rollback that follows it, which restores the parameter too."""
        if not self.keys:
            yield
            return
        before = self.conn.execute(
            select(func.current_setting(_ROLE), func.set_config(_ROLE, "replica", True))
        ).first()[0]
        yield
        self.conn.execute(select(func.set_config(_ROLE, before, True)))

    def check(self, rows: FromClause) -> None:
        """Every key of `rows` (the rows written: a stage, or a range of the fact) is in
        its table, each referenced row locked FOR KEY SHARE until the run commits. Each
        distinct value is looked up by the referenced key's index: a run costs probes
        for its values, never a scan of a dimension that grows with the years."""
        for key in self.keys:
            values = [rows.c[c] for c in key.columns]
            present = and_(*(v.is_not(None) for v in values))  # MATCH SIMPLE: a NULL passes
            wanted = select(*values).where(present).distinct().subquery("wanted")
            found = (
                select(literal(1).label("found"))
                .where(*(key.target.c[t] == wanted.c[c] for t, c in key.pairs))
                .with_for_update(read=True, key_share=True, of=key.target)
                .lateral("found")
            )
            missing = select(func.count() - func.count(found.c.found)).select_from(
                wanted.outerjoin(found, true())
            )
            if self.conn.execute(missing).scalar_one():
                self._fail(key, rows)

    def _fail(self, key: _Key, rows: FromClause) -> None:
        values = [rows.c[c] for c in key.columns]
        found = and_(*(key.target.c[t] == rows.c[c] for t, c in key.pairs))
        example = self.conn.execute(
            select(*values)
            .where(and_(*(v.is_not(None) for v in values)), ~exists().where(found))
            .limit(1)
        ).first()
        raise RuntimeFailure(
            f'the run\'s rows of {self.table} break its foreign key "{key.name}": '
            f"({', '.join(key.columns)})=({', '.join(map(str, example or ()))}) is not "
            f"in {key.target.name}",
            "A dimension row the facts need is missing from the warehouse; nothing was "
            "loaded. totesys verify compares the warehouse with the source",
        )


def _set_based_keys(conn: Connection, fact: str) -> list[_Key]:
    """The fact's foreign keys, if this run may check them set-based (see the module's
    docstring), else none."""
    found = conn.execute(
        text(
            "SELECT c.contype = 'f' AND c.conrelid = t.tgrelid AND t.tgenabled = 'O' "
            "AND c.confmatchtype = 's' "
            "AND NOT EXISTS (SELECT FROM pg_rewrite w WHERE w.ev_class = t.tgrelid), "
            "c.conname, n.nspname, r.relname, "
            "ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(num, i) "
            "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.num ORDER BY k.i), "
            "ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY k(num, i) "
            "JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.num ORDER BY k.i) "
            "FROM pg_trigger t LEFT JOIN pg_constraint c ON c.oid = t.tgconstraint "
            "LEFT JOIN pg_class r ON r.oid = c.confrelid "
            "LEFT JOIN pg_namespace n ON n.oid = r.relnamespace "
            "WHERE t.tgrelid = to_regclass(:fact)"
        ),
        {"fact": fact},
    ).all()
    if not found or not all(own for own, *_ in found) or not may_turn_triggers_off(conn):
        return []
    keys = {}
    for _, name, schema, target, columns, target_columns in found:
        referenced = table(target, *(column(c) for c in target_columns), schema=schema)
        keys[name] = _Key(name, tuple(columns), referenced, tuple(target_columns))
    return list(keys.values())  # each key has two triggers: on insert and on update


def may_turn_triggers_off(conn: Connection) -> bool:
    """Whether the warehouse role may write rows with the triggers off, so that a run
    checks its facts' foreign keys once (see the module's docstring)."""
    return may_set(conn, _ROLE)
