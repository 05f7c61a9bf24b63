"""Transform: committed raw runs -> one processed run of star rows, incrementally.

A run reads the raw runs committed since the last processed run, keeps only versions
it has not emitted (see `batch`), and writes star rows for exactly what changed, plus
the dependents of changed parents (a department's staff, an address's
counterparties). Its state (see `state`) travels in the processed manifest and is read
once per run, so a run costs what its change costs. Every processed run is
referentially closed (see `closure`).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from totesys_cli import faults, logs
from totesys_cli.lake import Lake
from totesys_cli.lake import manifest as manifests
from totesys_cli.lake.files import FileSet
from totesys_cli.lake.manifest import ProcessedManifest, RawManifest, TableFiles
from totesys_cli.runtime import Deadline
from totesys_cli.schemas import FACTS, STARS, WHOLE_SOURCES, Star, source_key, star
from totesys_cli.schemas.arrow import VERSION
from totesys_cli.schemas.model import CALENDAR, kept_sources
from totesys_cli.transform import stars
from totesys_cli.transform.batch import Batch, RawRun, horizons, next_horizons
from totesys_cli.transform.closure import Closure
from totesys_cli.transform.state import State

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TransformOptions:
    since: dt.datetime | None = None


@dataclass
class TransformResult:
    seq: int | None
    raw_runs: list[int]
    tables: dict[str, TableFiles]
    seconds: float

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables.values())


def _raw_runs(raw: Lake, state: State, since: dt.datetime | None) -> list[RawRun]:
    new = [RawRun(m, replay=False) for m in manifests.runs_after(raw, state.raw_seq, RawManifest)]
    if since is None:
        return new
    # a reprocess also reads the runs consumed before whose data reaches back to T
    replays = []
    for seq, key in manifests.manifests_after(raw, 0):
        if seq > state.raw_seq:
            break
        manifest = manifests.read(raw, key, RawManifest)
        newest = [t.max_last_updated for t in manifest.tables.values()]
        if any(n and n >= since for n in newest):
            replays.append(RawRun(manifest, replay=True))
    return replays + new


def _source_versions(name: str, rows: pa.Table) -> pa.Array | None:
    """The source versions star rows reflect, for the manifest's range of versions."""
    if star(name).is_dimension:
        return rows.column(VERSION)
    if not star(name).is_fact:
        return None
    days = pc.cast(pc.cast(rows.column("last_updated_date"), pa.int32()), pa.int64())
    millis = pc.cast(pc.cast(rows.column("last_updated_time"), pa.int32()), pa.int64())
    return pc.add(pc.multiply(days, 86_400_000), millis).cast(pa.timestamp("ms"))


class Output:
    """Star rows into the run's files, their keys into the closure."""

    def __init__(self, files: FileSet, closure: Closure):
        self.files = files
        self.closure = closure

    def write(self, name: str, rows: pa.Table | None) -> None:
        if rows is None or rows.num_rows == 0:
            return
        if star(name).is_fact:
            self.closure.check(name, rows)
        self.files.write(name, rows, _source_versions(name, rows))
        if star(name).is_dimension:
            self.closure.add(name, rows)


def transform(
    raw: Lake, processed: Lake, options: TransformOptions, deadline: Deadline
) -> TransformResult:
    started = time.perf_counter()
    raw.check()
    processed.check()
    last = manifests.latest(processed, ProcessedManifest)
    seq = (last.seq if last else 0) + 1
    state = State.load(last)
    runs = _raw_runs(raw, state, options.since)
    new_runs = [r for r in runs if not r.replay]
    if not runs or (not new_runs and options.since is None):
        log.info("no new raw runs to transform")
        return TransformResult(None, [], {}, time.perf_counter() - started)
    newest = (
        new_runs[-1].manifest
        if new_runs
        else manifests.read(raw, manifests.manifest_key(state.raw_seq), RawManifest)
    )
    batch = Batch(raw, runs, state, options.since, horizons(runs, newest))
    today = dt.datetime.now(dt.UTC).date()
    with FileSet(processed, "processed_date", seq, today, "transform.file_written") as files:
        out = Output(files, Closure(state.keys))
        parents = _dimensions(batch, state, out, deadline)
        dates = _facts(batch, out, deadline)
        calendar = _calendar(state.dates, dates, out)
        deadline.check("committing the transform")
    next_state = State(
        raw_seq=max([state.raw_seq, *(r.seq for r in runs)]),
        parents=parents,
        keys=out.closure.keys,
        dates=calendar,
        seen=batch.next_seen(next_horizons(newest)),
    )
    manifest = ProcessedManifest(
        seq=seq,
        run_id=logs.run_id(),
        tables=files.tables,
        raw_runs=[r.seq for r in runs],
        raw_seq=next_state.raw_seq,
        since=options.since,
        snapshot_time=newest.snapshot_time,
        transformed_at=dt.datetime.now(dt.UTC).replace(tzinfo=None),
        state=next_state.dump(),
    )
    faults.point("transform.before_manifest")
    manifests.commit(processed, manifest, files.written, "transform")
    faults.point("transform.after_manifest")
    result = TransformResult(seq, manifest.raw_runs, files.tables, time.perf_counter() - started)
    files.log("transformed")
    log.info(
        "processed run %d committed",
        result.seq,
        extra={"rows": result.rows, "seconds": round(result.seconds, 3)},
    )
    return result


# ---------------------------------------------------------------- the star tables


def _latest_per_key(rows: pa.Table, key: str) -> pa.Table:
    """The newest version of each key (rows of small tables only)."""
    newest: dict[int, dict] = {}
    for row in rows.to_pylist():
        current = newest.get(row[key])
        if current is None or row["last_updated"] >= current["last_updated"]:
            newest[row[key]] = row
    return pa.Table.from_pylist(list(newest.values()), schema=rows.schema)


def _member(table: pa.Table, column: str, values: pa.Table) -> pa.Table:
    return table.filter(pc.is_in(table.column(column), value_set=values.column(column)))


def _touched(dim: Star, new: dict[str, pa.Table], current: dict[str, pa.Table]) -> pa.Table:
    """The current rows of a joined dimension's source that changed, or whose parent
    changed: a department change reaches all its staff."""
    key = source_key(dim.source)
    rows = current[dim.source]
    parts = [_member(rows, key, new[dim.source].select([key]))]
    for parent in dim.parents:
        link = dim.link(parent)
        changed = new[parent].select([source_key(parent)]).rename_columns([link])
        parts.append(_member(rows, link, changed))
    return _latest_per_key(pa.concat_tables(parts), key)


def _dimensions(batch: Batch, state: State, out: Output, deadline: Deadline) -> dict[str, pa.Table]:
    """Changed dimension rows, plus the dependents of changed parents; returns the kept
    tables' new current rows."""
    new = {table: batch.all(table) for table in WHOLE_SOURCES}
    current = {
        table: _latest_per_key(
            pa.concat_tables([state.parent(table), new[table].cast(state.parent(table).schema)]),
            source_key(table),
        )
        for table in kept_sources()
    }
    deadline.check("transforming dimensions")
    for dim in STARS.values():
        if not dim.is_dimension:
            continue
        build = stars.BUILD[dim.name]
        if dim.streamed:
            for chunk in batch.chunks(dim.source):
                deadline.check(f"transforming {dim.name}")
                out.write(dim.name, build(chunk))
        elif dim.parents:
            touched = _touched(dim, new, current)
            if touched.num_rows:
                out.write(dim.name, build(touched, *(current[p] for p in dim.parents)))
        elif new[dim.source].num_rows:
            out.write(dim.name, build(_latest_per_key(new[dim.source], source_key(dim.source))))
    return current


def _facts(batch: Batch, out: Output, deadline: Deadline) -> tuple[dt.date, dt.date] | None:
    """Fact versions chunk by chunk; returns the span of dates they reference."""
    span: tuple[dt.date, dt.date] | None = None
    for name in FACTS:
        for chunk in batch.chunks(star(name).source):
            deadline.check(f"transforming {name}")
            rows = stars.BUILD[name](chunk)
            out.write(name, rows)
            for column in star(name).date_columns:
                low, high = pc.min_max(rows.column(column)).as_py().values()
                if low is not None:
                    span = (min(low, span[0]), max(high, span[1])) if span else (low, high)
    return span


def _calendar(
    known: tuple[dt.date, dt.date] | None, needed: tuple[dt.date, dt.date] | None, out: Output
) -> tuple[dt.date, dt.date] | None:
    """Extend the continuous calendar to cover every referenced date, emitting only the
    dates not emitted before."""
    if needed is None:
        return known
    if known is None:
        out.write(CALENDAR, stars.dim_date(*needed))
        return needed
    first, last = min(known[0], needed[0]), max(known[1], needed[1])
    if first < known[0]:
        out.write(CALENDAR, stars.dim_date(first, known[0] - dt.timedelta(days=1)))
    if last > known[1]:
        out.write(CALENDAR, stars.dim_date(known[1] + dt.timedelta(days=1), last))
    return first, last
