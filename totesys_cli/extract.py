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
import io
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Table, cast, func, or_, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import TIMESTAMP

from totesys_cli import faults, logs
from totesys_cli import lake as lakes
from totesys_cli.db import copy_out, engine, present_columns, translate_errors
from totesys_cli.errors import ConfigError, RuntimeFailure
from totesys_cli.runtime import Deadline
from totesys_cli.schemas import SOURCE_TABLES, arrow_schema, source_table
from totesys_cli.settings import Database

log = logging.getLogger(__name__)

DEFAULT_OVERLAP = dt.timedelta(minutes=15)
DEFAULT_BATCH_ROWS = 250_000
_DIALECT = postgresql.dialect()


@dataclass(frozen=True)
class ExtractOptions:
    tables: tuple[str, ...] = SOURCE_TABLES
    since: dt.datetime | None = None
    overlap: dt.timedelta = DEFAULT_OVERLAP
    batch_rows: int = DEFAULT_BATCH_ROWS


@dataclass
class TableExtract:
    table: str
    rows: int = 0
    bytes: int = 0
    seconds: float = 0.0
    files: list[dict[str, Any]] = field(default_factory=list)
    min_last_updated: dt.datetime | None = None
    max_last_updated: dt.datetime | None = None
    lower_bound: dt.datetime | None = None


@dataclass
class ExtractResult:
    seq: int
    snapshot: dt.datetime
    tables: dict[str, TableExtract]
    seconds: float

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables.values())


# ---------------------------------------------------------------- COPY -> Arrow


def _setting(name: str, kind):
    """A set_config value, read once per statement (a bare current_setting is read per row)."""
    return select(cast(func.current_setting(name), kind)).scalar_subquery()


def _changed(table: Table):
    """last_updated > totesys.lower, or >= totesys.since when reprocessing a window."""
    since = _setting("totesys.since", TIMESTAMP)
    lower = _setting("totesys.lower", TIMESTAMP)
    return or_(table.c.last_updated > lower, table.c.last_updated >= since)


def copy_query(table: Table, *, filtered: bool) -> str:
    """COPY of the table's declared columns; every value comes from set_config."""
    query = select(*table.columns)
    if filtered:
        query = query.where(_changed(table))
    sql = query.compile(dialect=_DIALECT, compile_kwargs={"literal_binds": True})
    return f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)"


def csv_to_arrow(data: bytes | bytearray, table: Table):
    """Parse PostgreSQL's CSV with the declared types: NULL is an unquoted empty field."""
    import pyarrow.csv as pcsv

    schema = arrow_schema(table)
    import pyarrow as pa

    return pcsv.read_csv(
        pa.BufferReader(pa.py_buffer(data)),  # no copy of the chunk
        # one thread: the parse already runs beside the COPY, more would only compete
        read_options=pcsv.ReadOptions(
            column_names=schema.names, block_size=8 << 20, use_threads=False
        ),
        parse_options=pcsv.ParseOptions(newlines_in_values=True),
        convert_options=pcsv.ConvertOptions(
            column_types=schema,
            true_values=["t"],
            false_values=["f"],
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        ),
    ).cast(schema)


def parquet_bytes(arrow_table) -> bytes:
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    # dictionary encoding triples the write time of these mostly-unique columns
    pq.write_table(arrow_table, sink, compression="snappy", use_dictionary=False)
    return sink.getvalue()


# ---------------------------------------------------------------- the run


def _set(conn: Connection, name: str, value: object) -> None:
    conn.execute(text("SELECT set_config(:name, :value, true)"), {"name": name, "value": value})


def _stamp(value: dt.datetime | None, default: str) -> str:
    return value.isoformat(sep=" ") if value is not None else default


def _check_columns(conn: Connection, tables: tuple[str, ...]) -> None:
    present = present_columns(conn, list(tables))
    for name in tables:
        declared = [c.name for c in source_table(name).columns]
        if name not in present:
            raise RuntimeFailure(
                f"the source has no table {name}",
                "Check that TOTESYS_SOURCE_URL points at the totesys database",
            )
        missing = [c for c in declared if c not in present[name]]
        if missing:
            raise RuntimeFailure(
                f"the source table {name} has no column {', '.join(missing)}; nothing was "
                "extracted",
                "Check that TOTESYS_SOURCE_URL points at the totesys database",
            )
        extra = sorted(present[name] - set(declared))
        if extra:
            log.warning(
                "the source table %s has columns totesys does not read: %s",
                name,
                ", ".join(extra),
                extra={"table": name},
            )


def _lower_bound(state: dict[str, Any] | None, overlap: dt.timedelta) -> dt.datetime | None:
    """min(W, S - overlap); None for a table never extracted before (read everything)."""
    if not state:
        return None
    watermark = dt.datetime.fromisoformat(state["watermark"]) if state.get("watermark") else None
    snapshot = dt.datetime.fromisoformat(state["snapshot"]) - overlap
    return snapshot if watermark is None else min(watermark, snapshot)


def _write_chunk(
    raw: lakes.Lake, table: Table, data: bytearray, key: str
) -> tuple[dict[str, Any], dt.datetime | None, dt.datetime | None]:
    """Parse one chunk, write it as Parquet; runs beside the next COPY."""
    import pyarrow.compute as pc

    arrow_table = csv_to_arrow(data, table)
    body = parquet_bytes(arrow_table)
    lakes.put_data(raw, key, body)
    faults.point("extract.file_written")
    bounds = pc.min_max(arrow_table.column("last_updated")).as_py()
    return (
        {"key": key, "rows": arrow_table.num_rows, "bytes": len(body)},
        bounds["min"],
        bounds["max"],
    )


class _ChunkWriter:
    """Parses and writes chunks on one thread beside the next COPY, across tables.

    At most one chunk waits, so memory stays bounded by the batch size.
    """

    def __init__(self, raw: lakes.Lake, written: list[str]):
        self.raw = raw
        self.written = written
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        self.pending: list[tuple[concurrent.futures.Future, TableExtract, float]] = []

    def submit(self, result: TableExtract, started: float, data: bytearray, key: str) -> None:
        while self.pending:
            self._collect()
        table = source_table(result.table)
        self.written.append(key)
        future = self.pool.submit(_write_chunk, self.raw, table, data, key)
        self.pending.append((future, result, started))

    def drain(self) -> None:
        try:
            while self.pending:
                self._collect()
        finally:
            self.pool.shutdown()

    def _collect(self) -> None:
        future, result, started = self.pending.pop(0)
        info, low, high = future.result()
        result.files.append(info)
        result.rows += info["rows"]
        result.bytes += info["bytes"]
        if low is not None:
            result.min_last_updated = min(filter(None, (result.min_last_updated, low)))
            result.max_last_updated = max(filter(None, (result.max_last_updated, high)))
        result.seconds = time.perf_counter() - started


def _extract_table(
    conn: Connection,
    writer: _ChunkWriter,
    name: str,
    lower: dt.datetime | None,
    options: ExtractOptions,
    file_prefix: str,
    deadline: Deadline,
) -> TableExtract:
    table = source_table(name)
    result = TableExtract(name, lower_bound=lower)
    started = time.perf_counter()
    filtered = lower is not None or options.since is not None
    if filtered:
        _set(conn, "totesys.lower", _stamp(lower, "-infinity"))
        _set(conn, "totesys.since", _stamp(options.since, "infinity"))
    # one scan per table, cut into files of at most batch_rows rows as it streams
    # (closed at once on failure, so a connection left mid-COPY is discarded at once)
    query = copy_query(table, filtered=filtered)
    with contextlib.closing(copy_out(conn, query, options.batch_rows)) as chunks:
        for number, data in enumerate(chunks):
            writer.submit(result, started, data, f"{name}/{file_prefix}-{number:04d}.parquet")
            deadline.check(f"extracting {name}")
    result.seconds = time.perf_counter() - started
    return result


def _next_state(
    state: dict[str, Any], tables: dict[str, TableExtract], snapshot: dt.datetime
) -> dict[str, Any]:
    """Watermarks only ever move forward, whatever --since re-read."""
    new = {name: dict(value) for name, value in state.items()}
    for name, extracted in tables.items():
        previous = new.get(name, {})
        marks = [
            m for m in (previous.get("watermark"), _stamp(extracted.max_last_updated, "")) if m
        ]
        new[name] = {
            "watermark": max(marks, key=dt.datetime.fromisoformat) if marks else None,
            "snapshot": _stamp(snapshot, ""),
        }
    return new


def extract(
    source: Database,
    raw: lakes.Lake,
    options: ExtractOptions,
    deadline: Deadline | None = None,
) -> ExtractResult:
    deadline = deadline or Deadline(None)
    started = time.perf_counter()
    raw.check()
    seq, last = lakes.latest_manifest(raw)
    state = (last or {}).get("state", {})
    run_id = logs.run_id()
    source = deadline.bound(source)
    with translate_errors(source), engine(source).connect() as conn:
        conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
        snapshot = conn.execute(
            text("SELECT statement_timestamp() AT TIME ZONE 'UTC'")
        ).scalar_one()
        _check_columns(conn, options.tables)
        if options.since is not None and options.since > snapshot:
            raise ConfigError(
                f"--since {options.since.isoformat(sep=' ')} is after the source's clock "
                f"({snapshot.isoformat(sep=' ', timespec='seconds')} UTC)",
                "Give a time in the past, in UTC",
            )
        prefix = f"extracted_date={snapshot.date().isoformat()}/{seq + 1:010d}-{run_id}"
        tables: dict[str, TableExtract] = {}
        with lakes.removed_on_failure(raw) as written:
            writer = _ChunkWriter(raw, written)
            try:
                for name in options.tables:
                    lower = _lower_bound(state.get(name), options.overlap)
                    tables[name] = _extract_table(
                        conn, writer, name, lower, options, prefix, deadline
                    )
            finally:
                writer.drain()
            conn.rollback()  # read-only: nothing to commit in the source
            deadline.check("committing the extract")
    for t in tables.values():
        log.info(
            "extracted %s",
            t.table,
            extra={
                "table": t.table,
                "rows": t.rows,
                "bytes": t.bytes,
                "seconds": round(t.seconds, 3),
            },
        )
    manifest = {
        "kind": "raw",
        "run_id": run_id,
        "snapshot_time": _stamp(snapshot, ""),
        "extracted_at": dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(sep=" "),
        "since": _stamp(options.since, "") or None,
        "overlap_seconds": options.overlap.total_seconds(),
        "tables": {
            name: {
                "rows": t.rows,
                "bytes": t.bytes,
                "files": t.files,
                "min_last_updated": _stamp(t.min_last_updated, "") or None,
                "max_last_updated": _stamp(t.max_last_updated, "") or None,
                "lower_bound": _stamp(t.lower_bound, "") or None,
            }
            for name, t in tables.items()
        },
        "state": _next_state(state, tables, snapshot),
    }
    faults.point("extract.before_manifest")
    lakes.commit_run(raw, seq + 1, manifest, written, "extract")
    faults.point("extract.after_manifest")
    result = ExtractResult(seq + 1, snapshot, tables, time.perf_counter() - started)
    log.info(
        "extract run %d committed",
        result.seq,
        extra={"rows": result.rows, "seconds": round(result.seconds, 3)},
    )
    return result
