"""The star tables as the pipeline sees them, derived from their declarations.

What each star table is built from, which source tables feed it, the dimensions and
dates it references, how its versions are keyed and what `verify` sums: every step
asks here instead of keeping its own list, so a new star table is declared once (in
`warehouse`) and its function written once (in `transform.stars`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from sqlalchemy import Table, exists, literal, select
from sqlalchemy.dialects.postgresql import distinct_on

from totesys_cli.schemas.source import SOURCE_TABLES, grows, source_key, source_table
from totesys_cli.schemas.summaries import SUMMARIES
from totesys_cli.schemas.warehouse import (
    DELETIONS,
    LOADED_RUNS,
    STAR_TABLES,
    Measure,
    latest_view_name,
    star_table,
)

CALENDAR = "dim_date"


@dataclass(frozen=True)
class Star:
    name: str

    @cached_property
    def table(self) -> Table:
        return star_table(self.name)

    @property
    def kind(self) -> str:
        """ "fact", "dimension" or "calendar" (dim_date, built from the facts' dates)."""
        return self.table.info["kind"]

    @property
    def is_fact(self) -> bool:
        return self.kind == "fact"

    @property
    def is_dimension(self) -> bool:
        """A dimension built from a source table: it holds the latest version of each key."""
        return self.kind == "dimension"

    @property
    def source(self) -> str | None:
        """The source table it is built from, key for key."""
        return self.table.info.get("source")

    @property
    def parents(self) -> tuple[str, ...]:
        """Source tables joined in: a change to one of their rows rewrites its dependents."""
        return tuple(self.table.info.get("parents", ()))

    @property
    def key(self) -> str:
        """The source key: a dimension's primary key, a fact's source row key."""
        if self.is_fact:
            return source_key(self.source)
        return self.table.primary_key.columns[0].name

    @property
    def record_id(self) -> str | None:
        return self.table.info.get("record_id")

    @property
    def version_key(self) -> tuple[str, ...]:
        """What identifies one version: a fact keeps one row per (key, last_updated)."""
        if self.is_fact:
            return (self.key, "last_updated_date", "last_updated_time")
        return (self.key,)

    @property
    def references(self) -> dict[str, str]:
        """Column -> the dimension it references (the calendar apart)."""
        return {
            c.name: fk.column.table.name
            for c in self.table.columns
            for fk in c.foreign_keys
            if fk.column.table.name != CALENDAR
        }

    @property
    def date_columns(self) -> tuple[str, ...]:
        """The columns referencing the calendar, which must cover all their dates."""
        return tuple(
            c.name
            for c in self.table.columns
            if any(fk.column.table.name == CALENDAR for fk in c.foreign_keys)
        )

    @property
    def measures(self) -> tuple[Measure, ...]:
        return tuple(self.table.info.get("measures", ()))

    @property
    def streamed(self) -> bool:
        """Built chunk by chunk: its source holds a row per order."""
        return self.source is not None and grows(self.source)

    def link(self, parent: str) -> str:
        """The column of the source table that references the parent table."""
        (column,) = (
            c.name
            for c in source_table(self.source).columns
            for fk in c.foreign_keys
            if fk.column.table.name == parent
        )
        return column

    @property
    def referenced_by(self) -> list[tuple[str, str]]:
        """(fact, column) for each fact column that references this dimension."""
        return [
            (fact.name, column)
            for fact in STARS.values()
            if fact.is_fact
            for column, target in fact.references.items()
            if target == self.name
        ]

    @property
    def relation(self) -> str:
        """Where reports read it: a fact's latest versions, or the table itself."""
        return latest_view_name(self.name) if self.is_fact else self.name


STARS: dict[str, Star] = {name: Star(name) for name in STAR_TABLES}
FACTS: tuple[str, ...] = tuple(n for n, s in STARS.items() if s.is_fact)
DIMENSIONS: tuple[str, ...] = tuple(n for n, s in STARS.items() if not s.is_fact)
# the source tables read whole (a few hundred rows) and those read chunk by chunk
WHOLE_SOURCES: tuple[str, ...] = tuple(t for t in SOURCE_TABLES if not grows(t))
STREAMED_SOURCES: tuple[str, ...] = tuple(t for t in SOURCE_TABLES if grows(t))


def star(name: str) -> Star:
    return STARS[name]


def joined_dimensions() -> tuple[Star, ...]:
    """The dimensions that join parent tables in (dim_staff, dim_counterparty)."""
    return tuple(s for s in STARS.values() if s.parents)


def kept_sources() -> tuple[str, ...]:
    """Source tables whose current rows the transform keeps between runs: the sources
    and parents of the joined dimensions, to rebuild dependents when a parent changes."""
    kept = [t for s in joined_dimensions() for t in (*s.parents, s.source)]
    return tuple(dict.fromkeys(kept))


def relations() -> tuple[str, ...]:
    """Everything reports read: the dimensions, the facts' latest views, the summaries,
    the load record."""
    return (
        *(s.relation for s in STARS.values()),
        *(s.fullname for s in SUMMARIES),
        LOADED_RUNS.fullname,
    )


def deleted(star_name: str, key) -> object:
    """Whether the key (a column) of the star table has an open deletion."""
    source = star(star_name).source
    return exists().where(
        DELETIONS.c.source_table == literal(source),
        DELETIONS.c.key == key,
        DELETIONS.c.ended_in.is_(None),
    )


def latest_versions(fact: str, with_deleted: bool = False):
    """The latest version of each source row: what reports sum (the `*_latest` views),
    leaving out keys deleted in the source (unless `with_deleted`)."""
    table = star(fact).table
    key = table.c[star(fact).key]
    query = (
        select(table)
        .ext(distinct_on(key))
        .order_by(
            key,
            table.c.last_updated_date.desc(),
            table.c.last_updated_time.desc(),
            table.c[star(fact).record_id].desc(),
        )
    )
    return query if with_deleted else query.where(~deleted(fact, key))
