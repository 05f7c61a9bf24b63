"""Data files: Parquet written whole under names only one run uses, read back checked.

A run's files become visible only through its manifest. Until then they are the run's
own: `FileSet` names them, writes each exclusively, records them for the manifest,
and removes them if the run fails before it commits (a killed run leaves them for
`lake gc`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import logging
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from totesys_cli import faults
from totesys_cli.errors import RuntimeFailure
from totesys_cli.lake import compaction
from totesys_cli.lake.state import stamp, when
from totesys_cli.lake.store import Lake, MissingFile
from totesys_cli.observe import logs

log = logging.getLogger(__name__)

QUARANTINE = "_quarantine"  # the folder of each zone that holds its quarantine entries
WAITING = "_waiting"  # the processed zone's fact rows waiting on a dimension key
# where each zone's tombstones go: keys deleted in the source (the processed zone's are a
# table of their own for Athena, beside the star tables)
TOMBSTONES = {"raw": "_deleted", "processed": "deletions"}
# the Hive partition of each zone's data files: the day a run wrote them
PARTITIONS = {"raw": "extracted_date", "processed": "processed_date"}


def partition(zone: str, day: dt.date) -> str:
    """The partition folder of a day's files in the "raw" or "processed" zone."""
    return f"{PARTITIONS[zone]}={day.isoformat()}"


@dataclass(frozen=True)
class DataFile:
    key: str
    rows: int
    bytes: int


@dataclass
class TableFiles:
    """One table's files in one run, and the range of source versions they hold."""

    files: list[DataFile] = field(default_factory=list)
    min_last_updated: dt.datetime | None = None
    max_last_updated: dt.datetime | None = None
    lower_bound: dt.datetime | None = None  # raw: read from here on (None: everything)

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.files)

    @property
    def keys(self) -> list[str]:
        return [f.key for f in self.files]

    def add(self, file: DataFile, low: dt.datetime | None, high: dt.datetime | None) -> None:
        self.files.append(file)
        if low is not None:
            self.min_last_updated = min(filter(None, (self.min_last_updated, low)))
            self.max_last_updated = max(filter(None, (self.max_last_updated, high)))

    def to_json(self, bounded: bool) -> dict[str, Any]:
        data = {
            "rows": self.rows,
            "bytes": self.bytes,
            "files": [{"key": f.key, "rows": f.rows, "bytes": f.bytes} for f in self.files],
            "min_last_updated": stamp(self.min_last_updated),
            "max_last_updated": stamp(self.max_last_updated),
        }
        if bounded:
            data["lower_bound"] = stamp(self.lower_bound)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TableFiles:
        return cls(
            files=[DataFile(f["key"], int(f["rows"]), int(f["bytes"])) for f in data["files"]],
            min_last_updated=when(data.get("min_last_updated")),
            max_last_updated=when(data.get("max_last_updated")),
            lower_bound=when(data.get("lower_bound")),
        )


def put_data(zone: Lake, key: str, data: bytes) -> None:
    """Data files are never overwritten: their names are unique to a run, and the create
    is exclusive all the same."""
    if not zone.put_new(key, data):
        raise RuntimeFailure(
            f"the lake file {zone.url}/{key} already exists",
            "Another run used this run's id; run again",
        )


def parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    # dictionary encoding triples the write time of these mostly-unique columns
    pq.write_table(table, sink, compression="snappy", use_dictionary=False)
    return sink.getvalue()


class FileSet:
    """The data files one run writes into a zone, by table:
    `<table>/<partition>=<day>/<run>-<run id>-<n>.parquet`."""

    def __init__(self, zone: Lake, partition: str, seq: int, day: dt.date, fault: str):
        self.zone = zone
        self.prefix = f"{partition}={day.isoformat()}/{seq:010d}-{logs.run_id()}"
        self.fault = fault
        self.tables: dict[str, TableFiles] = {}
        self.quarantine = TableFiles()
        self.waiting: dict[str, TableFiles] = {}
        self.deleted = TableFiles()
        self.written: list[str] = []

    def __enter__(self) -> FileSet:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if kind is not None:  # the run failed before its commit: nothing will read these
            with contextlib.suppress(Exception):  # the run's own error is the one to report
                self.zone.delete(self.written)

    def table(self, name: str) -> TableFiles:
        return self.tables.setdefault(name, TableFiles())

    def write(self, name: str, rows: pa.Table, versions: pa.Array | None = None) -> None:
        """One file of `name`'s rows; `versions` are the source versions they reflect."""
        self._write(self.table(name), name, rows, versions)

    def set_aside(self, entries: pa.Table) -> None:
        """The run's quarantine entries, in `_quarantine/`, committed with the run."""
        self._write(self.quarantine, QUARANTINE, entries, None)

    def tombstones(self, rows: pa.Table, zone: str) -> None:
        """The keys the run found deleted in the source, committed with the run."""
        self._write(self.deleted, TOMBSTONES[zone], rows, None)

    def hold(self, name: str, rows: pa.Table) -> None:
        """Rows of `name` held back for a later run (in `_waiting/<name>/`)."""
        entry = self.waiting.setdefault(name, TableFiles())
        self._write(entry, f"{WAITING}/{name}", rows, None)

    def _write(self, entry: TableFiles, name: str, rows: pa.Table, versions) -> None:
        if rows.num_rows == 0:
            return
        key = f"{name}/{self.prefix}-{len(entry.files):04d}.parquet"
        self.written.append(key)
        body = parquet_bytes(rows)
        put_data(self.zone, key, body)
        faults.point(self.fault)
        low = high = None
        if versions is not None:
            bounds = pc.min_max(versions).as_py()
            low, high = bounds["min"], bounds["max"]
        entry.add(DataFile(key, rows.num_rows, len(body)), low, high)

    def log(self, verb: str, seconds: dict[str, float] | None = None) -> None:
        """One line per table: what the run wrote of it (and how long it took)."""
        for name, entry in self.tables.items():
            extra: dict[str, object] = {"table": name, "rows": entry.rows, "bytes": entry.bytes}
            if seconds is not None:
                extra["seconds"] = round(seconds.get(name, 0.0), 3)
            log.info("%s %s", verb, name, extra=extra)


def read_parquet(zone: Lake, keys: list[str], schema: pa.Schema | None = None) -> pa.Table:
    """The files as one Arrow table (a file `lake compact` replaced and `lake gc` has
    deleted, from the large file that holds its rows); a missing or corrupt
    file fails naming it."""
    tables = []
    for key in keys:
        try:
            table = _parquet(zone, key)
        except (pa.ArrowException, OSError) as err:
            raise RuntimeFailure(
                f"the lake file {zone.url}/{key} is not readable Parquet: {err}",
                "Restore it from the bucket's versions, or remove its run and re-extract",
            ) from None
        if schema is not None:
            try:
                table = table.select(schema.names).cast(schema)
            except (pa.ArrowException, KeyError) as err:
                raise RuntimeFailure(
                    f"the lake file {zone.url}/{key} does not have the expected columns: {err}",
                    "Remove its run and re-extract",
                ) from None
        tables.append(table)
    if not tables:
        return schema.empty_table() if schema is not None else pa.table({})
    return pa.concat_tables(tables)


def _parquet(zone: Lake, key: str) -> pa.Table:
    try:
        return pq.read_table(pa.BufferReader(zone.get(key)))
    except MissingFile:
        found = compaction.rows_of(zone, key)
        if found is None:
            raise
        return found
