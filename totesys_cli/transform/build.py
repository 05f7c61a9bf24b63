"""The star tables of one transform run, from the new source versions of its batch.

Every source chunk is checked first (see `checks`); what cannot be mapped is set aside.
Dimensions are rebuilt for exactly what changed, plus the dependents of changed parents
(a department's staff, an address's counterparties); a row whose parent is not known
waits, and is rebuilt when the parent arrives. Fact versions are written chunk by chunk;
a version referencing a dimension key no run has emitted waits (see `quarantine`) and
is retried by every run. The calendar grows to cover every referenced date.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from totesys_cli.config.settings import Bounds
from totesys_cli.lake.files import FileSet
from totesys_cli.runtime import Deadline
from totesys_cli.schemas import FACTS, STARS, WHOLE_SOURCES, Star, quality, source_key, star
from totesys_cli.schemas.arrow import VERSION, arrow_schema
from totesys_cli.schemas.model import CALENDAR, kept_sources
from totesys_cli.schemas.source import source_table
from totesys_cli.transform import checks, stars
from totesys_cli.transform.batch import Batch
from totesys_cli.transform.closure import Closure
from totesys_cli.transform.quarantine import Ledger
from totesys_cli.transform.state import State


def source_versions(name: str, rows: pa.Table) -> pa.Array | None:
    """The source versions star rows reflect (a fact's: its last_updated again)."""
    if star(name).is_dimension:
        return rows.column(VERSION)
    if not star(name).is_fact:
        return None
    days = pc.cast(pc.cast(rows.column("last_updated_date"), pa.int32()), pa.int64())
    millis = pc.cast(rows.column("last_updated_time"), pa.int64())  # since midnight
    return pc.add(pc.multiply(days, 86_400_000), millis).cast(pa.timestamp("ms"))


@dataclass
class Run:
    """What one transform run writes to, and keeps track of."""

    files: FileSet
    closure: Closure
    ledger: Ledger
    bounds: Bounds
    deadline: Deadline
    newest_raw: int  # the newest raw run of the batch
    span: tuple[dt.date, dt.date] | None = None  # the dates the written facts reference

    def write(self, name: str, rows: pa.Table) -> None:
        if rows.num_rows == 0:
            return
        self.files.write(name, rows, source_versions(name, rows))
        if star(name).is_dimension:
            self.closure.add(name, rows)

    def valid_chunks(self, batch: Batch, table: str) -> Iterator[tuple[int, pa.Table]]:
        """The batch's new versions of a source table that can be mapped."""
        for seq, rows in batch.chunks(table):
            self.deadline.check(f"transforming {table}")
            good, entries = checks.validate(table, rows, seq, self.bounds)
            self.ledger.add(entries)
            batch.forget(entries)
            self.ledger.valid(
                table, good.column(source_key(table)), good.column("last_updated"), seq
            )
            if good.num_rows:
                yield seq, good

    def fact(self, name: str, rows: pa.Table, seq: int | None) -> None:
        """Fact versions whose dimension keys were all emitted go to the fact; the others
        wait (`seq` is the raw run of new versions; None for versions retried)."""
        source, key = star(name).source, star(name).key
        versions = source_versions(name, rows)
        findings = quality.Findings(source, rows.column(key), versions, seq or self.newest_raw)
        self.closure.dangling(name, rows, findings)
        flowing = findings.good(rows)
        self.write(name, flowing)
        self.ledger.emitted(source, flowing.column(key), source_versions(name, flowing))
        if findings.bad is not None:
            waiting = rows.filter(findings.bad)
            self.ledger.waiting[name] = pa.concat_tables(
                [*([self.ledger.waiting[name]] if name in self.ledger.waiting else []), waiting]
            )
            if seq is not None:
                self.ledger.add(findings.entries())
        for column in star(name).date_columns:
            low, high = pc.min_max(flowing.column(column)).as_py().values()
            if low is not None:
                span = self.span
                self.span = (min(low, span[0]), max(high, span[1])) if span else (low, high)


# ---------------------------------------------------------------- dimensions


def _latest_per_key(rows: pa.Table, key: str) -> pa.Table:
    """The newest version of each key (rows of small tables only)."""
    newest: dict[int, dict] = {}
    for row in rows.to_pylist():
        current = newest.get(row[key])
        if current is None or row["last_updated"] >= current["last_updated"]:
            newest[row[key]] = row
    return pa.Table.from_pylist(list(newest.values()), schema=rows.schema)


def _member(table: pa.Table, column: str, values: pa.Array) -> pa.Array:
    return pc.is_in(table.column(column), value_set=values)


def _touched(dim: Star, new: dict[str, pa.Table], current: dict[str, pa.Table]) -> pa.Table:
    """The current rows of a joined dimension's source that changed, or whose parent
    changed: a department change reaches all its staff."""
    key = source_key(dim.source)
    rows = current[dim.source]
    hit = _member(rows, key, new[dim.source].column(key))
    for parent in dim.parents:
        hit = pc.or_(hit, _member(rows, dim.link(parent), new[parent].column(source_key(parent))))
    return rows.filter(hit)


def _joined(run: Run, dim: Star, new: dict[str, pa.Table], current: dict[str, pa.Table]) -> None:
    """Rebuild the touched rows whose parents are all known; the others wait in the
    current rows, to be rebuilt when their parent arrives."""
    touched = _touched(dim, new, current)
    if touched.num_rows == 0:
        return
    key = source_key(dim.source)
    findings = quality.Findings(
        dim.source, touched.column(key), touched.column("last_updated"), run.newest_raw
    )
    for parent in dim.parents:
        link = dim.link(parent)
        known = _member(touched, link, current[parent].column(source_key(parent)))
        findings.add(
            pc.invert(known),
            link,
            touched.column(link),
            quality.MISSING_PARENT,
            f"references a {parent} row no run has read",
        )
    run.ledger.add(findings.entries())
    ready = findings.good(touched)
    run.write(dim.name, stars.BUILD[dim.name](ready, *(current[p] for p in dim.parents)))
    run.ledger.emitted(dim.source, ready.column(key), ready.column("last_updated"))


def dimensions(run: Run, batch: Batch, state: State) -> dict[str, pa.Table]:
    """Changed dimension rows, plus the dependents of changed parents; returns the kept
    tables' new current rows."""
    new = {}
    for table in WHOLE_SOURCES:
        parts = [rows for _, rows in run.valid_chunks(batch, table)]
        new[table] = (
            pa.concat_tables(parts) if parts else arrow_schema(source_table(table)).empty_table()
        )
    current = {
        table: _latest_per_key(
            pa.concat_tables([state.parent(table), new[table].cast(state.parent(table).schema)]),
            source_key(table),
        )
        for table in kept_sources()
    }
    run.deadline.check("transforming dimensions")
    for dim in STARS.values():
        if not dim.is_dimension:
            continue
        build = stars.BUILD[dim.name]
        if dim.streamed:
            for _, chunk in run.valid_chunks(batch, dim.source):
                run.write(dim.name, build(chunk))
        elif dim.parents:
            _joined(run, dim, new, current)
        elif new[dim.source].num_rows:
            run.write(dim.name, build(_latest_per_key(new[dim.source], source_key(dim.source))))
    return current


def facts(run: Run, batch: Batch) -> None:
    """The versions that waited on a parent are retried first, then the batch's."""
    for name in FACTS:
        waiting = run.ledger.waiting.pop(name, None)
        if waiting is not None and waiting.num_rows:
            run.fact(name, waiting, None)
        for seq, chunk in run.valid_chunks(batch, star(name).source):
            run.fact(name, stars.BUILD[name](chunk), seq)


def calendar(run: Run, known: tuple[dt.date, dt.date] | None) -> tuple[dt.date, dt.date] | None:
    """Extend the continuous calendar to cover every referenced date, emitting only the
    dates not emitted before."""
    needed = run.span
    if needed is None:
        return known
    if known is None:
        run.write(CALENDAR, stars.dim_date(*needed))
        return needed
    first, last = min(known[0], needed[0]), max(known[1], needed[1])
    if first < known[0]:
        run.write(CALENDAR, stars.dim_date(first, known[0] - dt.timedelta(days=1)))
    if last > known[1]:
        run.write(CALENDAR, stars.dim_date(known[1] + dt.timedelta(days=1), last))
    return first, last
