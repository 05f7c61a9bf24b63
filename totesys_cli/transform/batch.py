"""The raw runs one transform consumes, read file by file, keeping only versions to emit.

The extract's overlap re-reads the last minutes of every table, so the same version
can arrive in several raw runs. A version is emitted once: the batch drops versions
emitted by this run or remembered from earlier runs. It remembers only what a later
extract can still read again (newer than that extract's lower bound), so a busy
source does not grow the state. Remembering is an economy, not the guarantee: a
version emitted twice is a no-op in the load. A version set aside is never remembered:
fixed in place (its `last_updated` untouched), it must go through when read again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from totesys_cli.lake import Lake
from totesys_cli.lake.files import read_parquet
from totesys_cli.lake.manifest import RawManifest
from totesys_cli.schemas import SOURCE_TABLES, source_key, source_table
from totesys_cli.schemas.arrow import arrow_schema, version_schema
from totesys_cli.schemas.quality import MISSING_PARENT
from totesys_cli.transform.state import State

# The lower bounds are exact (the extract computes them with the same function); the
# margin only absorbs rounding. A wide margin would make a busy source's state hold
# a day of changes, read and written by every run.
MARGIN = dt.timedelta(minutes=1)


@dataclass
class RawRun:
    manifest: RawManifest
    replay: bool  # consumed before: only its rows inside the --since window count

    @property
    def seq(self) -> int:
        return self.manifest.seq


def _horizon(bounds: list[dt.datetime | None]) -> dt.datetime:
    """Versions at or before this cannot be read again by extracts with these lower bounds
    (None: a table read in full, so anything can)."""
    if not bounds or any(b is None for b in bounds):
        return dt.datetime.min
    return min(bounds) - MARGIN


def horizons(runs: list[RawRun], newest: RawManifest) -> dict[str, dt.datetime]:
    """Per table, what a later extract in this batch, or the next one, can read again:
    only newer versions must be remembered while the batch runs."""
    return {
        table: _horizon(
            [
                *(
                    r.manifest.tables[table].lower_bound
                    for r in runs[1:]
                    if table in r.manifest.tables
                ),
                newest.next_lower_bound(table),
            ]
        )
        for table in SOURCE_TABLES
    }


def next_horizons(newest: RawManifest) -> dict[str, dt.datetime]:
    """What only the next extract can read again: all the next run must remember."""
    return {table: _horizon([newest.next_lower_bound(table)]) for table in SOURCE_TABLES}


class Batch:
    """Reads raw rows run by run and keeps only the versions this run must emit."""

    def __init__(
        self,
        raw: Lake,
        runs: list[RawRun],
        state: State,
        since: dt.datetime | None,
        horizons: dict[str, dt.datetime],
    ):
        self.raw = raw
        self.runs = runs
        self.since = since
        self.horizons = horizons
        self.seen = {t: state.seen.get(t, version_schema(t).empty_table()) for t in SOURCE_TABLES}
        self.emitted: dict[str, list[pa.Table]] = {t: [] for t in self.seen}
        self.forget(state.open.filter(pc.not_equal(state.open.column("kind"), MISSING_PARENT)))

    def chunks(self, table: str) -> Iterator[tuple[int, pa.Table]]:
        """New versions of `table`, one raw file at a time, with the raw run they are from."""
        schema = arrow_schema(source_table(table))
        for run in self.runs:
            for key in run.manifest.files(table):
                rows = read_parquet(self.raw, [key], schema)
                fresh = self._fresh(table, rows, run.replay)
                if fresh.num_rows:
                    yield run.seq, fresh

    def set_aside(self) -> list[str]:
        """The quarantine files of the new raw runs: the versions their extracts set aside."""
        return [k for r in self.runs if not r.replay for k in r.manifest.quarantine.keys]

    def _fresh(self, table: str, rows: pa.Table, replay: bool) -> pa.Table:
        known = pa.concat_tables(self.emitted[table]) if self.emitted[table] else None
        everything = _concat(self.seen[table], known)
        if self.since is None:
            fresh = _anti(rows, everything)
        else:
            # inside the --since window versions are emitted again, once per run; a run
            # consumed before contributes only its rows inside the window
            since = pa.scalar(self.since, pa.timestamp("ms"))
            inside = pc.greater_equal(rows.column("last_updated"), since)
            parts = [_anti(rows.filter(inside), known)]
            if not replay:
                parts.append(_anti(rows.filter(pc.invert(inside)), everything))
            fresh = pa.concat_tables(parts)
        remember = fresh.select([source_key(table), "last_updated"])
        if self.since is None:
            horizon = pa.scalar(self.horizons[table], pa.timestamp("ms"))
            remember = remember.filter(pc.greater(remember.column("last_updated"), horizon))
        self.emitted[table].append(remember.cast(version_schema(table)))
        return fresh

    def forget(self, entries: pa.Table, every_version: bool = False) -> None:
        """The versions of these quarantine entries were not emitted: read again (fixed
        in place, or no longer ahead of the clock), they are new. (A version waiting on a
        parent is retried from the waiting rows instead.) With `every_version`, the
        entries are tombstones: any version of their keys read again is new (a row put
        back as it was, from a backup)."""
        for table in pc.unique(entries.column("source_table")).to_pylist():
            mine = entries.filter(pc.equal(entries.column("source_table"), table))
            if not every_version:
                mine = mine.filter(pc.is_valid(mine.column("last_updated")))
            if table not in self.seen or mine.num_rows == 0:
                continue
            schema = pa.schema(list(version_schema(table))[: 1 if every_version else 2])
            columns = [mine.column(name) for name in ("key", "last_updated")[: len(schema)]]
            known = pa.table(columns, names=schema.names).cast(schema)
            self.seen[table] = _anti(self.seen[table], known)
            self.emitted[table] = [_anti(part, known) for part in self.emitted[table]]

    def next_seen(self, horizons: dict[str, dt.datetime]) -> dict[str, pa.Table]:
        """Recently emitted versions the next run must not emit again."""
        result = {}
        for table, known in self.seen.items():
            merged = _concat(
                known, pa.concat_tables(self.emitted[table]) if self.emitted[table] else None
            )
            horizon = pa.scalar(horizons[table], pa.timestamp("ms"))
            kept = merged.filter(pc.greater(merged.column("last_updated"), horizon))
            if kept.num_rows:
                result[table] = kept
        return result


def _concat(a: pa.Table, b: pa.Table | None) -> pa.Table:
    return a if b is None else pa.concat_tables([a.cast(b.schema), b])


def _anti(rows: pa.Table, known: pa.Table | None) -> pa.Table:
    """The rows whose version (key, last_updated) is not among the known ones."""
    if known is None or known.num_rows == 0 or rows.num_rows == 0:
        return rows
    versions = rows.select(known.column_names)
    marked = versions.append_column("_row", pa.array(range(rows.num_rows), pa.int64()))
    keep = marked.join(known, keys=known.column_names, join_type="left anti")
    return rows.take(keep.sort_by("_row").column("_row"))
