"""Transform: committed raw runs -> one processed run of star rows, incrementally.

A run reads the raw runs committed since the last processed run, keeps only versions
it has not emitted (the extract overlap repeats a few minutes), and writes star rows
for exactly what changed, plus the dependents of changed parents (a department's
staff, an address's counterparties). Its state — the parents' current rows, the key
sets each dimension has emitted, the calendar's span and the recently emitted
versions — is small, travels in the processed manifest, and is read once per run, so
a run costs what its change costs. Every processed run is referentially closed.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from totesys_cli import faults, logs
from totesys_cli import lake as lakes
from totesys_cli.errors import RuntimeFailure
from totesys_cli.runtime import Deadline
from totesys_cli.schemas import (
    DIMENSION_SOURCES,
    FACTS,
    arrow_schema,
    source_table,
    star_table,
)
from totesys_cli.transform import keys as keysets
from totesys_cli.transform import stars

log = logging.getLogger(__name__)

PARENTS = ("department", "address", "staff", "counterparty")
SMALL = ("address", "counterparty", "currency", "department", "design", "staff", "payment_type")
CHUNKED = ("transaction", "sales_order", "purchase_order", "payment")
# versions this much older than the next extract's lower bound cannot come back. The
# bound is exact (the extract computes it the same way); the margin only absorbs
# rounding. Remembering is an economy, not the guarantee: a version emitted twice is a
# no-op in the load. A wide margin would make a busy source's state hold a day of
# changes, read and written by every run.
MARGIN = dt.timedelta(minutes=1)


@dataclass(frozen=True)
class TransformOptions:
    since: dt.datetime | None = None


@dataclass
class StarOutput:
    table: str
    rows: int = 0
    bytes: int = 0
    files: list[dict[str, Any]] = field(default_factory=list)
    min_last_updated: dt.datetime | None = None
    max_last_updated: dt.datetime | None = None


@dataclass
class TransformResult:
    seq: int | None
    raw_runs: list[int]
    tables: dict[str, StarOutput]
    seconds: float

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables.values())


# ---------------------------------------------------------------- state


def _json_value(value: object) -> object:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ", timespec="milliseconds")
    return str(value)


def _to_json(table: pa.Table) -> dict[str, list]:
    return {
        name: [_json_value(v) for v in table.column(name).to_pylist()]
        for name in table.column_names
    }


def _from_json(data: dict[str, list] | None, schema: pa.Schema) -> pa.Table:
    """Columns back from JSON: timestamps travel as ISO text and are cast on the way in."""
    if not data:
        return schema.empty_table()
    columns = {}
    for f in schema:
        plain = (
            pa.types.is_integer(f.type)
            or pa.types.is_boolean(f.type)
            or (pa.types.is_string(f.type))
        )
        columns[f.name] = pa.array(data[f.name], f.type if plain else pa.string())
    return pa.table(columns).cast(schema)


def _pack(table: pa.Table) -> dict[str, str]:
    """Many versions as one base64 Parquet value: a busy source's recent versions are
    a hundred thousand rows, which as JSON lists cost most of a small run."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return {"parquet": base64.b64encode(sink.getvalue().to_pybytes()).decode()}


def _unpack(data: dict[str, Any], schema: pa.Schema) -> pa.Table:
    if "parquet" not in data:  # manifests written before versions were packed
        return _from_json(data, schema)
    return pq.read_table(pa.BufferReader(base64.b64decode(data["parquet"]))).cast(schema)


def _version_schema(table: str) -> pa.Schema:
    key = source_table(table).primary_key.columns[0].name
    return pa.schema([pa.field(key, pa.int32()), pa.field("last_updated", pa.timestamp("ms"))])


@dataclass
class State:
    """What the next run needs from all earlier ones."""

    raw_seq: int = 0
    snapshot_time: str | None = None
    parents: dict[str, pa.Table] = field(default_factory=dict)
    keys: dict[str, keysets.Intervals] = field(default_factory=dict)
    dates: tuple[dt.date, dt.date] | None = None
    seen: dict[str, pa.Table] = field(default_factory=dict)

    @classmethod
    def load(cls, manifest: dict[str, Any] | None) -> State:
        if not manifest:
            return cls()
        data = manifest["state"]
        dates = data.get("dates")
        return cls(
            raw_seq=data["raw_seq"],
            snapshot_time=data.get("snapshot_time"),
            parents={
                t: _from_json(data["parents"].get(t), arrow_schema(source_table(t)))
                for t in PARENTS
            },
            keys=data["keys"],
            dates=(dt.date.fromisoformat(dates[0]), dt.date.fromisoformat(dates[1]))
            if dates
            else None,
            seen={t: _unpack(v, _version_schema(t)) for t, v in data["seen"].items()},
        )

    def dump(self) -> dict[str, Any]:
        return {
            "raw_seq": self.raw_seq,
            "snapshot_time": self.snapshot_time,
            "parents": {t: _to_json(v) for t, v in self.parents.items()},
            "keys": self.keys,
            "dates": [d.isoformat() for d in self.dates] if self.dates else None,
            "seen": {t: _pack(v) for t, v in self.seen.items()},
        }

    def parent(self, name: str) -> pa.Table:
        return self.parents.get(name, arrow_schema(source_table(name)).empty_table())


# ---------------------------------------------------------------- the batch of raw runs


@dataclass
class RawRun:
    seq: int
    manifest: dict[str, Any]
    replay: bool  # consumed before: only its rows inside the --since window count

    def files(self, table: str) -> list[str]:
        return [f["key"] for f in self.manifest["tables"].get(table, {}).get("files", [])]

    def lower_bound(self, table: str) -> dt.datetime | None:
        entry = self.manifest["tables"].get(table)
        bound = entry and entry.get("lower_bound")
        return dt.datetime.fromisoformat(bound) if bound else None


def _next_lower(manifest: dict[str, Any], table: str) -> dt.datetime | None:
    """The lower bound the next extract of this table will use (SPEC section 5)."""
    entry = manifest.get("state", {}).get(table)
    if not entry:
        return None
    snapshot = dt.datetime.fromisoformat(entry["snapshot"]) - dt.timedelta(
        seconds=manifest.get("overlap_seconds", 900)
    )
    mark = entry.get("watermark")
    return min(dt.datetime.fromisoformat(mark), snapshot) if mark else snapshot


def _horizon(bounds: list[dt.datetime | None]) -> dt.datetime:
    """Versions at or before this cannot be read again by extracts with these lower bounds
    (None: a table read in full, so anything can)."""
    if not bounds or any(b is None for b in bounds):
        return dt.datetime.min
    return min(bounds) - MARGIN


def _horizons(runs: list[RawRun], last: dict[str, Any]) -> dict[str, dt.datetime]:
    """Per table, what a later extract in this batch, or the next one, can read again:
    only newer versions must be remembered while the batch runs."""
    return {
        table: _horizon(
            [
                *(r.lower_bound(table) for r in runs[1:] if table in r.manifest["tables"]),
                _next_lower(last, table),
            ]
        )
        for table in (*SMALL, *CHUNKED)
    }


def _next_horizons(last: dict[str, Any]) -> dict[str, dt.datetime]:
    """What only the next extract can read again: all the next run must remember."""
    return {table: _horizon([_next_lower(last, table)]) for table in (*SMALL, *CHUNKED)}


class Batch:
    """Reads raw rows run by run and keeps only the versions this run must emit."""

    def __init__(
        self,
        raw: lakes.Lake,
        runs: list[RawRun],
        state: State,
        since: dt.datetime | None,
        horizons: dict[str, dt.datetime],
    ):
        self.raw = raw
        self.runs = runs
        self.since = since
        self.horizons = horizons
        self.seen = {
            t: state.seen.get(t, _version_schema(t).empty_table()) for t in (*SMALL, *CHUNKED)
        }
        self.emitted: dict[str, list[pa.Table]] = {t: [] for t in self.seen}

    def chunks(self, table: str):
        """New versions of `table`, one raw file at a time."""
        schema = arrow_schema(source_table(table))
        for run in self.runs:
            for key in run.files(table):
                rows = lakes.read_parquet(self.raw, [key], schema)
                fresh = self._fresh(table, rows, run.replay)
                if fresh.num_rows:
                    yield fresh

    def all(self, table: str) -> pa.Table:
        parts = list(self.chunks(table))
        return pa.concat_tables(parts) if parts else arrow_schema(source_table(table)).empty_table()

    def _fresh(self, table: str, rows: pa.Table, replay: bool) -> pa.Table:
        key = source_table(table).primary_key.columns[0].name
        known = pa.concat_tables(self.emitted[table]) if self.emitted[table] else None
        everything = self._concat(self.seen[table], known)
        if self.since is None:
            fresh = self._anti(rows, everything)
        else:
            # inside the --since window versions are emitted again, once per run; a run
            # consumed before contributes only its rows inside the window
            since = pa.scalar(self.since, pa.timestamp("ms"))
            inside = pc.greater_equal(rows.column("last_updated"), since)
            parts = [self._anti(rows.filter(inside), known)]
            if not replay:
                parts.append(self._anti(rows.filter(pc.invert(inside)), everything))
            fresh = pa.concat_tables(parts)
        remember = fresh.select([key, "last_updated"])
        if self.since is None:
            horizon = pa.scalar(self.horizons[table], pa.timestamp("ms"))
            remember = remember.filter(pc.greater(remember.column("last_updated"), horizon))
        self.emitted[table].append(remember.cast(_version_schema(table)))
        return fresh

    @staticmethod
    def _concat(a: pa.Table, b: pa.Table | None) -> pa.Table:
        return a if b is None else pa.concat_tables([a.cast(b.schema), b])

    @staticmethod
    def _anti(rows: pa.Table, known: pa.Table | None) -> pa.Table:
        """The rows whose version (key, last_updated) is not among the known ones."""
        if known is None or known.num_rows == 0 or rows.num_rows == 0:
            return rows
        versions = rows.select(known.column_names)
        marked = versions.append_column("_row", pa.array(range(rows.num_rows), pa.int64()))
        keep = marked.join(known, keys=known.column_names, join_type="left anti")
        return rows.take(keep.sort_by("_row").column("_row"))

    def next_seen(self, horizons: dict[str, dt.datetime]) -> dict[str, pa.Table]:
        """Recently emitted versions the next run must not emit again."""
        result = {}
        for table, known in self.seen.items():
            merged = self._concat(
                known, pa.concat_tables(self.emitted[table]) if self.emitted[table] else None
            )
            horizon = pa.scalar(horizons[table], pa.timestamp("ms"))
            kept = merged.filter(pc.greater(merged.column("last_updated"), horizon))
            if kept.num_rows:
                result[table] = kept
        return result


# ---------------------------------------------------------------- writing


class Writer:
    """Writes each star table's Parquet files to the processed zone."""

    def __init__(self, processed: lakes.Lake, seq: int, day: dt.date, written: list[str]):
        self.processed = processed
        self.written = written
        self.prefix = f"processed_date={day.isoformat()}/{seq:010d}-{logs.run_id()}"
        self.outputs: dict[str, StarOutput] = {}

    def write(self, name: str, table: pa.Table) -> None:
        output = self.outputs.setdefault(name, StarOutput(name))
        if table.num_rows == 0:
            return
        key = f"{name}/{self.prefix}-{len(output.files):04d}.parquet"
        self.written.append(key)
        sink = io.BytesIO()
        pq.write_table(table, sink, compression="snappy", use_dictionary=False)
        body = sink.getvalue()
        lakes.put_data(self.processed, key, body)
        faults.point("transform.file_written")
        output.files.append({"key": key, "rows": table.num_rows, "bytes": len(body)})
        output.rows += table.num_rows
        output.bytes += len(body)
        versions = _source_versions(name, table)
        if versions is not None:
            low, high = pc.min_max(versions).as_py().values()
            output.min_last_updated = min(filter(None, (output.min_last_updated, low)))
            output.max_last_updated = max(filter(None, (output.max_last_updated, high)))


def _source_versions(name: str, table: pa.Table) -> pa.Array | None:
    if name == "dim_date":
        return None
    if name.startswith("dim_"):
        return table.column(stars.VERSION)
    days = pc.cast(pc.cast(table.column("last_updated_date"), pa.int32()), pa.int64())
    millis = pc.cast(pc.cast(table.column("last_updated_time"), pa.int32()), pa.int64())
    return pc.add(pc.multiply(days, 86_400_000), millis).cast(pa.timestamp("ms"))


# ---------------------------------------------------------------- the run


def _latest_per_key(rows: pa.Table, key: str) -> pa.Table:
    """The newest version of each key (rows of small tables only)."""
    newest: dict[int, dict] = {}
    for row in rows.to_pylist():
        current = newest.get(row[key])
        if current is None or row["last_updated"] >= current["last_updated"]:
            newest[row[key]] = row
    return pa.Table.from_pylist(list(newest.values()), schema=rows.schema)


def _merge(state: pa.Table, new: pa.Table, key: str) -> pa.Table:
    return _latest_per_key(pa.concat_tables([state, new.cast(state.schema)]), key)


def _member(table: pa.Table, column: str, values: pa.Table) -> pa.Table:
    return table.filter(pc.is_in(table.column(column), value_set=values.column(column)))


class Closure:
    """Every dimension key a fact references was emitted by this or an earlier run."""

    def __init__(self, keys: dict[str, keysets.Intervals]):
        self.keys = {k: list(map(list, v)) for k, v in keys.items()}

    def add(self, dimension: str, rows: pa.Table) -> None:
        key = star_table(dimension).primary_key.columns[0].name
        if rows.num_rows:
            self.keys[dimension] = keysets.add(
                self.keys.get(dimension, []), rows.column(key).to_numpy()
            )

    def check(self, name: str, rows: pa.Table) -> None:
        gaps, sources = [], []
        for column in star_table(name).columns:
            for fk in column.foreign_keys:
                target = fk.column.table.name
                if target == "dim_date":
                    continue  # the calendar is continuous over every referenced date
                values = rows.column(column.name).drop_null().to_numpy()
                absent = keysets.missing(self.keys.get(target, []), values)
                if absent.size:
                    shown = ", ".join(str(k) for k in absent[:5])
                    more = f" and {absent.size - 5} more" if absent.size > 5 else ""
                    gaps.append(f"{column.name} {shown}{more} ({target})")
                    source = DIMENSION_SOURCES[target]
                    if source not in sources:
                        sources.append(source)
        if gaps:
            tables = " ".join(f"--table {s}" for s in sources)
            raise RuntimeFailure(
                f"{name} references keys no processed run has emitted: {'; '.join(gaps)}; "
                "nothing was committed",
                f"Extract {', '.join(sources)} (totesys extract {tables}) and transform again",
            )


def _raw_runs(raw: lakes.Lake, state: State, since: dt.datetime | None) -> list[RawRun]:
    new = [
        RawRun(seq, lakes.decode_manifest(raw, key), replay=False)
        for seq, key in lakes.manifests_after(raw, state.raw_seq)
    ]
    if since is None:
        return new
    # a reprocess also reads the runs consumed before whose data reaches back to T
    replays = []
    for seq, key in lakes.manifests_after(raw, 0):
        if seq > state.raw_seq:
            break
        manifest = lakes.decode_manifest(raw, key)
        newest = [t.get("max_last_updated") for t in manifest["tables"].values()]
        if any(n and dt.datetime.fromisoformat(n) >= since for n in newest):
            replays.append(RawRun(seq, manifest, replay=True))
    return replays + new


def transform(
    raw: lakes.Lake,
    processed: lakes.Lake,
    options: TransformOptions,
    deadline: Deadline | None = None,
) -> TransformResult:
    deadline = deadline or Deadline(None)
    started = time.perf_counter()
    raw.check()
    processed.check()
    seq, manifest = lakes.latest_manifest(processed)
    state = State.load(manifest)
    runs = _raw_runs(raw, state, options.since)
    new_runs = [r for r in runs if not r.replay]
    if not runs or (not new_runs and options.since is None):
        log.info("no new raw runs to transform")
        return TransformResult(None, [], {}, time.perf_counter() - started)
    newest = (
        new_runs[-1].manifest
        if new_runs
        else lakes.decode_manifest(raw, lakes.manifest_key(state.raw_seq))
    )
    batch = Batch(raw, runs, state, options.since, _horizons(runs, newest))
    with lakes.removed_on_failure(processed) as written:
        writer = Writer(processed, seq + 1, dt.datetime.now(dt.UTC).date(), written)
        closure = Closure(state.keys)
        parents = _dimensions(batch, state, writer, closure, deadline)
        dates = _facts(batch, writer, closure, deadline)
        calendar = _calendar(state.dates, dates, writer)
        deadline.check("committing the transform")
    next_state = State(
        raw_seq=max([state.raw_seq, *(r.seq for r in runs)]),
        snapshot_time=newest.get("snapshot_time", state.snapshot_time),
        parents=parents,
        keys=closure.keys,
        dates=calendar,
        seen=batch.next_seen(_next_horizons(newest)),
    )
    outputs = writer.outputs
    versions = [
        v
        for o in outputs.values()
        for v in (o.min_last_updated, o.max_last_updated)
        if v is not None
    ]
    body = {
        "kind": "processed",
        "run_id": logs.run_id(),
        "raw_runs": [r.seq for r in runs],
        "since": options.since.isoformat(sep=" ") if options.since else None,
        "snapshot_time": next_state.snapshot_time,
        "transformed_at": dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(sep=" "),
        "min_last_updated": min(versions).isoformat(sep=" ") if versions else None,
        "max_last_updated": max(versions).isoformat(sep=" ") if versions else None,
        "tables": {
            name: {
                "rows": o.rows,
                "bytes": o.bytes,
                "files": o.files,
                "min_last_updated": o.min_last_updated.isoformat(sep=" ")
                if o.min_last_updated
                else None,
                "max_last_updated": o.max_last_updated.isoformat(sep=" ")
                if o.max_last_updated
                else None,
            }
            for name, o in outputs.items()
        },
        "state": next_state.dump(),
    }
    faults.point("transform.before_manifest")
    lakes.commit_run(processed, seq + 1, body, written, "transform")
    faults.point("transform.after_manifest")
    result = TransformResult(seq + 1, [r.seq for r in runs], outputs, time.perf_counter() - started)
    for output in outputs.values():
        log.info(
            "transformed %s",
            output.table,
            extra={"table": output.table, "rows": output.rows, "bytes": output.bytes},
        )
    log.info(
        "processed run %d committed",
        result.seq,
        extra={"rows": result.rows, "seconds": round(result.seconds, 3)},
    )
    return result


def _dimensions(
    batch: Batch, state: State, writer: Writer, closure: Closure, deadline: Deadline
) -> dict[str, pa.Table]:
    """Changed dimension rows, plus the dependents of changed parents; returns the
    parents' new current rows."""
    new = {table: batch.all(table) for table in SMALL}
    parents = {}
    for table in PARENTS:
        key = source_table(table).primary_key.columns[0].name
        parents[table] = _merge(state.parent(table), new[table], key)
    deadline.check("transforming dimensions")

    for name, (source, build) in stars.SIMPLE_DIMENSIONS.items():
        key = source_table(source).primary_key.columns[0].name
        rows = build(_latest_per_key(new[source], key)) if new[source].num_rows else None
        if rows is not None:
            writer.write(name, rows)
            closure.add(name, rows)

    # a department change reaches all its staff; an address change its counterparties
    staff = parents["staff"]
    moved = new["department"]
    touched_staff = pa.concat_tables(
        [
            _member(staff, "staff_id", new["staff"].select(["staff_id"])),
            _member(staff, "department_id", moved.select(["department_id"])),
        ]
    )
    if touched_staff.num_rows:
        rows = stars.dim_staff(_latest_per_key(touched_staff, "staff_id"), parents["department"])
        writer.write("dim_staff", rows)
        closure.add("dim_staff", rows)

    counterparty = parents["counterparty"]
    rehomed = new["address"].select(["address_id"]).rename_columns(["legal_address_id"])
    touched = pa.concat_tables(
        [
            _member(
                counterparty, "counterparty_id", new["counterparty"].select(["counterparty_id"])
            ),
            _member(counterparty, "legal_address_id", rehomed),
        ]
    )
    if touched.num_rows:
        rows = stars.dim_counterparty(
            _latest_per_key(touched, "counterparty_id"), parents["address"]
        )
        writer.write("dim_counterparty", rows)
        closure.add("dim_counterparty", rows)

    for chunk in batch.chunks("transaction"):
        deadline.check("transforming transactions")
        rows = stars.dim_transaction(chunk)
        writer.write("dim_transaction", rows)
        closure.add("dim_transaction", rows)
    return parents


def _facts(
    batch: Batch, writer: Writer, closure: Closure, deadline: Deadline
) -> tuple[dt.date, dt.date] | None:
    """Fact versions chunk by chunk; returns the span of dates they reference."""
    span: tuple[dt.date, dt.date] | None = None
    for name in FACTS:
        source, build = stars.FACT_SOURCES[name]
        for chunk in batch.chunks(source):
            deadline.check(f"transforming {name}")
            rows = build(chunk)
            closure.check(name, rows)
            writer.write(name, rows)
            for column in stars.DATE_COLUMNS[name]:
                low, high = pc.min_max(rows.column(column)).as_py().values()
                if low is not None:
                    span = (min(low, span[0]), max(high, span[1])) if span else (low, high)
    return span


def _calendar(
    known: tuple[dt.date, dt.date] | None, needed: tuple[dt.date, dt.date] | None, writer: Writer
) -> tuple[dt.date, dt.date] | None:
    """Extend the continuous calendar to cover every referenced date, emitting only the
    dates not emitted before."""
    if needed is None:
        return known
    if known is None:
        writer.write("dim_date", stars.dim_date(*needed))
        return needed
    first, last = min(known[0], needed[0]), max(known[1], needed[1])
    if first < known[0]:
        writer.write("dim_date", stars.dim_date(first, known[0] - dt.timedelta(days=1)))
    if last > known[1]:
        writer.write("dim_date", stars.dim_date(known[1] + dt.timedelta(days=1), last))
    return first, last
