"""Extract: source -> raw zone, incrementally, from one consistent snapshot.

Every table is read inside one read-only REPEATABLE READ transaction with
`COPY (SELECT ...) TO STDOUT`. A table is read from `last_updated > min(W, S - overlap)`,
where W is the largest `last_updated` read before and S the previous snapshot's
database time: a row that a transaction shorter than the overlap committed late is
still caught, and a quiet source is not re-read at all. The run becomes visible only
when its manifest is created, after all its files.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime as dt
import logging
import time
from dataclasses import dataclass, field

import pyarrow as pa
from sqlalchemy import Connection, text

from totesys_cli import faults, logs, quality
from totesys_cli.db import engine, translate_errors
from totesys_cli.db.copy import copy_out
from totesys_cli.errors import ConfigError
from totesys_cli.extract.source import check_columns, copy_query, set_window, typed_chunk
from totesys_cli.lake import Lake
from totesys_cli.lake import manifest as manifests
from totesys_cli.lake.files import FileSet
from totesys_cli.lake.manifest import RawManifest, TableFiles, TableState
from totesys_cli.runtime import Deadline
from totesys_cli.schemas import SOURCE_TABLES, source_table
from totesys_cli.settings import DEFAULT_BATCH_ROWS, DEFAULT_OVERLAP_MINUTES, Bounds, Database

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExtractOptions:
    tables: tuple[str, ...] = SOURCE_TABLES
    since: dt.datetime | None = None
    overlap: dt.timedelta = dt.timedelta(minutes=DEFAULT_OVERLAP_MINUTES)
    batch_rows: int = DEFAULT_BATCH_ROWS
    bounds: Bounds = field(default_factory=Bounds)


@dataclass
class ExtractResult:
    manifest: RawManifest
    table_seconds: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def seq(self) -> int:
        return self.manifest.seq

    @property
    def snapshot(self) -> dt.datetime:
        return self.manifest.snapshot_time

    @property
    def tables(self) -> dict[str, TableFiles]:
        return self.manifest.tables

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables.values())

    @property
    def quarantined(self) -> int:
        """Entries set aside by this run (a version may have several bad values)."""
        return self.manifest.quarantine.rows


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


def _copy_table(
    conn: Connection,
    writer: _ChunkWriter,
    name: str,
    lower: dt.datetime | None,
    options: ExtractOptions,
    deadline: Deadline,
) -> None:
    """One scan per table, cut into files of at most batch_rows rows as it streams
    (closed at once on failure, so a connection left mid-COPY is discarded at once)."""
    writer.files.table(name).lower_bound = lower
    filtered = lower is not None or options.since is not None
    if filtered:
        set_window(conn, lower, options.since)
    query = copy_query(source_table(name), filtered=filtered)
    with contextlib.closing(copy_out(conn, query, options.batch_rows)) as chunks:
        for data in chunks:
            writer.submit(name, data)
            deadline.check(f"extracting {name}")


def _next_state(
    state: dict[str, TableState], tables: dict[str, TableFiles], snapshot: dt.datetime
) -> dict[str, TableState]:
    """Watermarks only ever move forward, whatever --since re-read."""
    new = dict(state)
    for name, extracted in tables.items():
        previous = state.get(name)
        marks = [m for m in (previous and previous.watermark, extracted.max_last_updated) if m]
        new[name] = TableState(max(marks) if marks else None, snapshot)
    return new


def _snapshot(conn: Connection, since: dt.datetime | None) -> dt.datetime:
    conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
    snapshot = conn.execute(text("SELECT statement_timestamp() AT TIME ZONE 'UTC'")).scalar_one()
    if since is not None and since > snapshot:
        raise ConfigError(
            f"--since {since.isoformat(sep=' ')} is after the source's clock "
            f"({snapshot.isoformat(sep=' ', timespec='seconds')} UTC)",
            "Give a time in the past, in UTC",
        )
    return snapshot


def _copy_tables(
    conn: Connection,
    files: FileSet,
    last: RawManifest | None,
    options: ExtractOptions,
    deadline: Deadline,
    snapshot: dt.datetime,
) -> tuple[dict[str, float], pa.Table]:
    """Every table's window into the file set; returns seconds per table (its COPY and
    the writing of its last chunk) and the quarantine entries of the versions set aside."""
    seq = (last.seq if last else 0) + 1
    writer = _ChunkWriter(files, seq, snapshot, options.bounds)
    started: dict[str, float] = {}
    copied: dict[str, float] = {}
    try:
        for name in options.tables:
            started[name] = time.perf_counter()
            lower = manifests.lower_bound(last.state.get(name) if last else None, options.overlap)
            _copy_table(conn, writer, name, lower, options, deadline)
            copied[name] = time.perf_counter()
    finally:
        writer.drain()
    seconds = {
        name: max(copied[name], writer.written_at.get(name, 0.0)) - started[name] for name in copied
    }
    return seconds, writer.entries()


def extract(
    source: Database, raw: Lake, options: ExtractOptions, deadline: Deadline
) -> ExtractResult:
    started = time.perf_counter()
    raw.check()
    last = manifests.latest(raw, RawManifest)
    seq = (last.seq if last else 0) + 1
    source = deadline.bound(source)
    with translate_errors(source), engine(source).connect() as conn:
        snapshot = _snapshot(conn, options.since)
        check_columns(conn, options.tables)
        with FileSet(raw, "extracted_date", seq, snapshot.date(), "extract.file_written") as files:
            seconds, entries = _copy_tables(conn, files, last, options, deadline, snapshot)
            files.set_aside(entries)
            conn.rollback()  # read-only: nothing to commit in the source
            deadline.check("committing the extract")
    manifest = RawManifest(
        seq=seq,
        run_id=logs.run_id(),
        tables=files.tables,
        quarantine=files.quarantine,
        snapshot_time=snapshot,
        extracted_at=dt.datetime.now(dt.UTC).replace(tzinfo=None),
        since=options.since,
        overlap=options.overlap,
        state=_next_state(last.state if last else {}, files.tables, snapshot),
    )
    faults.point("extract.before_manifest")
    manifests.commit(raw, manifest, files.written, "extract")
    faults.point("extract.after_manifest")
    result = ExtractResult(manifest, seconds, time.perf_counter() - started)
    files.log("extracted", seconds)
    quality.warn(entries, "raw")
    log.info(
        "extract run %d committed",
        result.seq,
        extra={
            "rows": result.rows,
            "quarantined": result.quarantined,
            "seconds": round(result.seconds, 3),
        },
    )
    return result
