"""Extract: source -> raw zone, incrementally, from one consistent snapshot.

Every table is read inside one read-only REPEATABLE READ transaction with
`COPY (SELECT ...) TO STDOUT`. A table is read from `last_updated > min(W, S - overlap)`,
where W is the largest `last_updated` read before and S the previous snapshot's
database time, and a quiet source is not re-read at all. Each run also records its
snapshot's transactions (`pg_current_snapshot()`, with the subtransactions it does not
list, and the ones then in progress); a later one also reads every version whose
transaction that snapshot did not see when that can matter (`extract.window`), so a row
committed late, however late, is caught whatever its `last_updated`. The run becomes
visible only when its manifest is created, after all its files.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime as dt
import logging
import time
from dataclasses import dataclass, replace

import pyarrow as pa
from sqlalchemy import Connection

from totesys_cli import faults
from totesys_cli.config.settings import Bounds
from totesys_cli.config.urls import Database
from totesys_cli.db import engine, translate_errors
from totesys_cli.db.copy import copy_out
from totesys_cli.extract import deletes
from totesys_cli.extract.options import ExtractOptions, ExtractResult
from totesys_cli.extract.source import (
    Snapshot,
    check_columns,
    committed,
    copy_query,
    open_snapshot,
    set_window,
    typed_chunk,
)
from totesys_cli.extract.window import SourceNow, Window, indexed, window_of
from totesys_cli.lake import Lake
from totesys_cli.lake import manifest as manifests
from totesys_cli.lake.files import PARTITIONS, FileSet, TableFiles
from totesys_cli.lake.manifest import RawManifest
from totesys_cli.lake.state import Pass, TableState
from totesys_cli.observe import logs, progress
from totesys_cli.runtime import Deadline
from totesys_cli.schemas import SOURCE_TABLES, quality, source_table

log = logging.getLogger(__name__)


class _ChunkWriter:
    """Parses and writes chunks on one thread beside the next COPY, across tables.

    At most one chunk waits, so memory stays bounded by the batch size.
    """

    def __init__(self, files: FileSet, seq: int, snapshot: dt.datetime, bounds: Bounds):
        self.files = files
        self.checks = (seq, snapshot, bounds)
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        self.pending: concurrent.futures.Future | None = None
        self.written_at: dict[str, float] = {}
        self.set_aside: list[pa.Table] = []

    def submit(self, name: str, data: bytearray) -> None:
        self.wait()
        self.pending = self.pool.submit(self._write, name, data)

    def _write(self, name: str, data: bytearray) -> None:
        rows, entries = typed_chunk(data, source_table(name), *self.checks)
        self.files.write(name, rows, rows.column("last_updated"))
        if entries.num_rows:
            self.set_aside.append(entries)
        self.written_at[name] = time.perf_counter()

    def entries(self) -> pa.Table:
        return pa.concat_tables(self.set_aside) if self.set_aside else quality.ENTRY.empty_table()

    def wait(self) -> None:
        pending, self.pending = self.pending, None
        if pending is not None:
            pending.result()

    def drain(self) -> None:
        try:
            self.wait()
        finally:
            self.pool.shutdown()


def _copy(
    conn: Connection,
    writer: _ChunkWriter,
    name: str,
    window: Window,
    keys: tuple[int, int] | None,
    options: ExtractOptions,
    deadline: Deadline,
) -> bool:
    """One COPY of the window (or of its keys in `keys`), cut into files of at most
    batch_rows rows as it streams (closed at once on failure, so a connection left
    mid-COPY is discarded at once); whether it read any row."""
    late = window.lower is not None and window.late is not None
    query = copy_query(
        source_table(name), lower=window.lower, since=window.since, late=late, keys=keys
    )
    read = False
    with contextlib.closing(copy_out(conn, query, options.batch_rows)) as chunks:
        for data in chunks:
            read = True
            writer.submit(name, data)
            deadline.check(f"extracting {name}")
    return read


class _Budget:
    """What is left of the run's seconds, and of its room for rows (rows count once
    written)."""

    def __init__(self, options: ExtractOptions, writer: _ChunkWriter):
        self.options, self.writer = options, writer
        self.began = time.perf_counter()

    def room_left(self) -> float | None:
        room = self.options.room
        if room is None:
            return None
        self.writer.wait()
        tables = self.writer.files.tables
        return room.seconds - sum(t.rows * room.pace[name] for name, t in tables.items())

    def spent(self) -> bool:
        seconds = self.options.budget
        if seconds is not None and time.perf_counter() - self.began >= seconds:
            return True
        left = self.room_left()
        return left is not None and left <= 0

    def range_keys(self, name: str) -> int:
        """Key values of the next range of `name`: range_rows, or fewer when the room
        has fewer of its rows left (never below one in a hundred of range_rows: a sparse
        window would otherwise be read in ever smaller ranges)."""
        left, whole = self.room_left(), self.options.range_rows
        if left is None or self.options.room is None:
            return whole
        rows = int(max(left, 0.0) / self.options.room.pace[name])
        return min(whole, max(rows, whole // 100, 1))


@dataclass
class _Read:
    """What one run read of a table: its window, its keys' span, and the last key it
    read up to (None: the window's end)."""

    window: Window
    span: tuple[int, int]
    after: int | None = None
    rows: bool = False  # whether it read any row


def _read_table(
    conn: Connection,
    writer: _ChunkWriter,
    name: str,
    window: Window,
    options: ExtractOptions,
    deadline: Deadline,
    budget: _Budget,
    progressed: bool,
) -> _Read:
    """The table's window: whole, in one COPY, without a budget; with one, in ranges of
    range_rows key values in key order (a table with fewer keys is one range; fewer
    when fewer rows are left), stopping after the range that spends the budget once
    the run has read a row (`progressed`, or in this table). Ranges of key values take
    no sort and no extra query: the primary-key index bounds each scan."""
    writer.files.table(name).lower_bound = window.lower
    late = window.late if window.lower is not None else None
    span = set_window(conn, source_table(name), late)
    if not options.bounded:  # in one COPY: the whole window, or what a pass has left of it
        keys = None if window.after is None else (window.after, span[1])
        return _Read(window, span, None, _copy(conn, writer, name, window, keys, options, deadline))
    read = _Read(window, span)
    after = span[0] - 1 if window.after is None else window.after
    ranged = span[1] - after > options.range_rows  # more than one range: worth a bar
    with progress.bar(f"extract {name}", span[1] - after if ranged else 0, "keys") as moved:
        while after < span[1]:
            upto = min(after + budget.range_keys(name), span[1])
            read.rows |= _copy(conn, writer, name, window, (after, upto), options, deadline)
            moved(upto - after)
            after = upto
            if after < span[1] and budget.spent() and (progressed or read.rows):
                read.after = after
                break
    return read


def _state(
    previous: TableState | None, read: _Read, extracted: TableFiles, now: Snapshot
) -> TableState:
    """The table's state after this run. Watermarks only ever move forward, whatever
    --since re-read; while a pass goes on they stay, and when it ends the table stands
    as of the snapshot the pass began in (swept as of it, if its window swept)."""
    ongoing = previous.passing if previous else None
    newest = [m for m in (ongoing and ongoing.newest, extracted.max_last_updated) if m]
    window = read.window
    if read.after is None:  # the window is read to its end
        marks = [m for m in (previous and previous.watermark, *newest) if m]
        mark = max(marks) if marks else None
        began = Snapshot(ongoing.snapshot, ongoing.xids, ongoing.running) if ongoing else now
        swept = (began.time, began.xids) if window.sweep else (previous.swept, previous.swept_xids)
        return TableState(mark, began.time, began.xids, None, began.running, *swept)
    if ongoing is None:
        ongoing = Pass(
            now.time,
            now.xids,
            window.lower,
            window.late,
            window.since,
            after=0,
            first=0,
            last=0,
            rows=0,
            runs=0,
            running=now.running,
            sweep=window.sweep,
        )
    passing = replace(
        ongoing,
        after=read.after,
        first=read.span[0] if ongoing.runs == 0 else ongoing.first,
        last=read.span[1],
        rows=ongoing.rows + extracted.rows,
        runs=ongoing.runs + 1,
        newest=max(newest) if newest else None,
    )
    if previous is None:
        return TableState(None, now.time, None, passing)
    return replace(previous, passing=passing)


def _copy_tables(
    conn: Connection,
    files: FileSet,
    last: RawManifest | None,
    options: ExtractOptions,
    deadline: Deadline,
    snapshot: Snapshot,
) -> tuple[dict[str, float], pa.Table, dict[str, TableState]]:
    """Every table's window into the file set, until the budget is spent; returns
    seconds per table (its COPY and the writing of its last chunk), the quarantine
    entries of the versions set aside, and the tables' states for the manifest (a
    table the budget left unread keeps its state)."""
    seq = (last.seq if last else 0) + 1
    writer = _ChunkWriter(files, seq, snapshot.time, options.bounds)
    budget = _Budget(options, writer)
    state = dict(last.state) if last else {}
    asked = {x for name in options.tables for x in (_running(state.get(name)) or ())}
    source = SourceNow(snapshot, indexed(conn, options.tables), committed(conn, asked))
    started: dict[str, float] = {}
    copied: dict[str, float] = {}
    reads: dict[str, _Read] = {}
    try:
        for name in options.tables:
            # a run goes on until it has read a row: every run progresses
            progressed = any(r.rows for r in reads.values())
            if progressed and budget.spent():
                break
            started[name] = time.perf_counter()
            window = window_of(state.get(name), options, source, name)
            reads[name] = _read_table(
                conn, writer, name, window, options, deadline, budget, progressed
            )
            copied[name] = time.perf_counter()
    finally:
        writer.drain()
    for name, read in reads.items():
        state[name] = _state(state.get(name), read, files.table(name), snapshot)
    seconds = {
        name: max(copied[name], writer.written_at.get(name, 0.0)) - started[name] for name in copied
    }
    return seconds, writer.entries(), state


def _running(state: TableState | None) -> tuple[int, ...] | None:
    """The transactions in progress at the table's last snapshot, when the next window
    depends on whether they committed."""
    return None if state is None or state.passing else state.running


def unfinished(raw: Lake) -> list[str]:
    """The tables the latest extract left unfinished: a pass goes on, or never read."""
    last = manifests.latest(raw, RawManifest)
    return last.unfinished() if last else list(SOURCE_TABLES)


def extract(
    source: Database, raw: Lake, options: ExtractOptions, deadline: Deadline
) -> ExtractResult:
    started = time.perf_counter()
    raw.check()
    last = manifests.latest(raw, RawManifest)
    seq = (last.seq if last else 0) + 1
    source = deadline.bound(source)
    with translate_errors(source), engine(source).connect() as conn:
        snapshot = open_snapshot(conn, options.since)
        check_columns(conn, options.tables)
        with FileSet(
            raw, PARTITIONS["raw"], seq, snapshot.time.date(), "extract.file_written"
        ) as files:
            seconds, entries, state = _copy_tables(conn, files, last, options, deadline, snapshot)
            census = last.census.carried() if last and last.census else None
            if deletes.due(last, snapshot.time, options.deletes.every):
                found, census = deletes.compare(
                    conn, raw, last, options.deletes, seq, snapshot.time, deadline
                )
                files.tombstones(found, "raw")
            files.set_aside(entries)
            conn.rollback()  # read-only: nothing to commit in the source
            deadline.check("committing the extract")
    manifest = RawManifest(
        seq=seq,
        run_id=logs.run_id(),
        tables=files.tables,
        quarantine=files.quarantine,
        snapshot_time=snapshot.time,
        extracted_at=dt.datetime.now(dt.UTC).replace(tzinfo=None),
        since=options.since,
        overlap=options.overlap,
        state=state,
        deleted=files.deleted,
        census=census,
    )
    faults.point("extract.before_manifest")
    manifests.commit(raw, manifest, files.written, "extract")
    faults.point("extract.after_manifest")
    unread = tuple(name for name in options.tables if name not in seconds)
    result = ExtractResult(manifest, seconds, time.perf_counter() - started, unread)
    files.log("extracted", seconds)
    quality.warn(entries, "raw")
    log.info(
        "extract run %d committed%s",
        result.seq,
        f"; the next run goes on with {', '.join(result.left)}" if result.left else "",
        extra={
            "rows": result.rows,
            "quarantined": result.quarantined,
            "deleted": result.deleted,
            "seconds": round(result.seconds, 3),
        },
    )
    return result
