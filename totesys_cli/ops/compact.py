"""lake compact: the small files of each closed day rewritten into a few large ones.

Each ten-minute run writes a few small files per table; Athena, Spark and DuckDB pay per
file. A day is closed once a whole day has passed since it ended: no run writes its
partitions any more. For each closed day, oldest first, and each table, the small files
its committed runs wrote (a file a run's manifest names; larger than `SMALL` it stays as
it is) become row groups of large files of up to `TARGET` bytes, in the same Hive
partition, and the day's record commits them (see `lake.compaction`).

Safe at any point: a kill before the record leaves large files no record names, which
the next pass of the day replaces and `lake gc` deletes; two passes racing for a day
both write their files, one creates the record, the other removes its own. It takes no
lock: runs write only today's partitions and read a run's own files, which stay until
`lake gc` deletes them a grace period after the record.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import uuid
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq

from totesys_cli import faults
from totesys_cli.lake import Lake, compaction
from totesys_cli.lake import manifest as manifests
from totesys_cli.lake.compaction import GROUP_ROWS, Compacted, Part, Record
from totesys_cli.lake.files import DataFile, partition, put_data
from totesys_cli.lake.held import Held, added
from totesys_cli.lake.manifest import Manifest, ProcessedManifest, RawManifest
from totesys_cli.runtime.deadline import Deadline
from totesys_cli.schemas import SOURCE_TABLES, STAR_TABLES

log = logging.getLogger(__name__)

SMALL = 16 * 1024 * 1024  # a file of this size or more stays as it is
TARGET = 128 * 1024 * 1024  # a large file is closed once it holds this much
# compacted by default: the days before yesterday (yesterday's runs may still write:
# a run that began before midnight, or a source whose clock is behind)
CLOSED = dt.timedelta(days=1)


@dataclass
class ZoneCompaction:
    days: list[dt.date] = field(default_factory=list)  # the days whose files it rewrote
    replaced: Held = field(default_factory=lambda: Held(0, 0))
    written: Held = field(default_factory=lambda: Held(0, 0))


@dataclass
class CompactResult:
    zones: dict[str, ZoneCompaction] = field(default_factory=dict)  # zone url -> its pass
    stopped: bool = False  # the deadline passed: the next pass goes on

    @property
    def days(self) -> int:
        return sum(len(z.days) for z in self.zones.values())


def default_before() -> dt.date:
    """The first day not compacted by default."""
    return (dt.datetime.now(dt.UTC) - CLOSED).date()


def compact(raw: Lake, processed: Lake, before: dt.date, deadline: Deadline) -> CompactResult:
    """Compact each zone's days before `before` that are not compacted yet."""
    result = CompactResult()
    for zone, kind in ((raw, RawManifest), (processed, ProcessedManifest)):
        done = result.zones[zone.url] = ZoneCompaction()
        last = compaction.newest(zone)
        day = last.day + dt.timedelta(days=1) if last else _first_day(zone, kind)
        net = last.net if last else Held(0, 0)
        while day is not None and day < before:
            if deadline.passed():
                result.stopped = True
                log.info("the deadline passed: the next pass compacts from %s", day)
                return result
            record = _compact_day(zone, kind, day, net)
            if record is not None:
                if record.tables:  # a day with nothing to compact is recorded all the same
                    done.days.append(day)
                net = record.net
                done.replaced += record.replaced
                done.written = added(done.written, record.files())
            else:
                net = compaction.read(zone, day).net  # another pass committed it first
            day += dt.timedelta(days=1)
        log.info(
            "compacted %d day%s of %s",
            len(done.days),
            "" if len(done.days) == 1 else "s",
            zone.url,
            extra={
                "days": len(done.days),
                "replaced": done.replaced.files,
                "written": done.written.files,
                "bytes": done.written.bytes,
            },
        )
    return result


def _first_day(zone: Lake, kind: type[Manifest]) -> dt.date | None:
    """The first day a run of the zone can have written (None: no run committed)."""
    if manifests.latest_seq(zone) == 0:
        return None
    first = manifests.read(zone, manifests.manifest_key(1), kind)
    when = first.snapshot_time if isinstance(first, RawManifest) else first.transformed_at
    return (when - CLOSED).date()


def _partition(kind: type[Manifest], day: dt.date) -> str:
    return partition("raw" if kind is RawManifest else "processed", day)


def _small_files(zone: Lake, kind: type[Manifest], table: str, day: dt.date, runs: _Runs) -> list:
    """The small files the day's committed runs wrote of `table`, in the order written."""
    found = []
    for item in zone.list(f"{table}/{_partition(kind, day)}/"):
        run = item.key.rsplit("/", 1)[-1].split("-", 1)[0]
        if not run.isdigit() or int(run) > runs.newest or item.size >= SMALL:
            continue  # a large file, a compacted one, or one committed after we began
        named = runs.files(int(run)).get(item.key)
        if named is not None and named.rows > 0:  # not a killed run's
            found.append(named)
    return found


class _Runs:
    """The data files of the runs committed up to `newest`, each manifest read once."""

    def __init__(self, zone: Lake, kind: type[Manifest], newest: int):
        self.zone, self.kind, self.newest = zone, kind, newest
        self._files: dict[int, dict[str, DataFile]] = {}

    def files(self, seq: int) -> dict[str, DataFile]:
        if seq not in self._files:
            run = manifests.read(self.zone, manifests.manifest_key(seq), self.kind)
            self._files[seq] = {f.key: f for t in run.tables.values() for f in t.files}
        return self._files[seq]


def _compact_day(zone: Lake, kind: type[Manifest], day: dt.date, net: Held) -> Record | None:
    """Compact one day; None if another pass committed the day first."""
    tables = SOURCE_TABLES if kind is RawManifest else STAR_TABLES
    token = uuid.uuid4().hex[:12]
    written: list[str] = []
    record = Record(day, _now(), manifests.latest_seq(zone))
    runs = _Runs(zone, kind, record.seq)
    try:
        for table in tables:
            small = _small_files(zone, kind, table, day, runs)
            if len(small) > 1:
                prefix = f"{table}/{_partition(kind, day)}/compacted-{token}"
                record.tables[table] = _rewrite(zone, prefix, small, written)
                record.replaced = added(record.replaced, small)
        large = record.files()
        in_, out = added(Held(0, 0), large), record.replaced
        record.net = net + Held(in_.files - out.files, in_.bytes - out.bytes)
        faults.point("compact.before_commit")
        committed = zone.put_new(compaction.record_key(day), record.encode())
    except BaseException:
        zone.delete(written)
        raise
    if not committed:
        zone.delete(written)
        log.info("another pass compacted %s of %s first", day, zone.url)
        return None
    zone.put(compaction.LATEST_HINT, compaction.Newest(day, record.net).encode())
    faults.point("compact.after_commit")
    return record


def _rewrite(zone: Lake, prefix: str, small: list, written: list[str]) -> list[Compacted]:
    """The small files as row groups of large files, in order; a file of other columns
    than the one before starts a new large file."""
    done: list[Compacted] = []
    large: _Large | None = None
    for file in small:
        rows = pq.read_table(pa.BufferReader(zone.get(file.key)))
        if large is not None and not large.takes(rows):
            done.append(large.commit(zone, f"{prefix}-{len(done):04d}.parquet", written))
            large = None
        large = large or _Large(rows.schema)
        large.add(file.key, rows)
    if large is not None:
        done.append(large.commit(zone, f"{prefix}-{len(done):04d}.parquet", written))
    return done


class _Large:
    """A large file being written: the small files' rows in order, in row groups of
    `GROUP_ROWS` rows (the last one fewer)."""

    def __init__(self, schema: pa.Schema):
        self.sink = io.BytesIO()
        self.writer = pq.ParquetWriter(
            self.sink, schema, compression="snappy", use_dictionary=False
        )
        self.parts: list[Part] = []
        self.rows = 0
        self.groups = 0
        self.waiting: list[pa.Table] = []  # the rows of the row group not yet written

    def takes(self, rows: pa.Table) -> bool:
        same = rows.schema.equals(self.writer.schema, check_metadata=False)
        return same and self.sink.tell() < TARGET

    def add(self, key: str, rows: pa.Table) -> None:
        offset = sum(t.num_rows for t in self.waiting)
        self.parts.append(Part(key, self.groups, offset, rows.num_rows))
        self.waiting.append(rows)
        self.rows += rows.num_rows
        if offset + rows.num_rows >= GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self.waiting:
            group = pa.concat_tables(self.waiting)
            self.writer.write_table(group, row_group_size=max(group.num_rows, 1))
            self.groups += 1
            self.waiting = []

    def commit(self, zone: Lake, key: str, written: list[str]) -> Compacted:
        """Write it whole (not yet committed: the day's record does that)."""
        self._flush()
        self.writer.close()
        body = self.sink.getvalue()
        written.append(key)
        put_data(zone, key, body)
        faults.point("compact.file_written")
        return Compacted(key, self.rows, len(body), self.parts)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)
