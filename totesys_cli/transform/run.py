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
from dataclasses import dataclass, field

import pyarrow as pa

from totesys_cli import faults
from totesys_cli.config.settings import Bounds
from totesys_cli.lake import Lake, zone
from totesys_cli.lake import manifest as manifests
from totesys_cli.lake.files import PARTITIONS, FileSet, TableFiles, read_parquet
from totesys_cli.lake.manifest import ProcessedManifest, RawManifest
from totesys_cli.observe import logs
from totesys_cli.runtime import Deadline
from totesys_cli.schemas import quality, star
from totesys_cli.schemas.arrow import output_schema
from totesys_cli.schemas.quality import ENTRY
from totesys_cli.transform import build, deletes
from totesys_cli.transform.batch import Batch, RawRun, horizons, next_horizons
from totesys_cli.transform.closure import Closure
from totesys_cli.transform.quarantine import Ledger, still_waiting
from totesys_cli.transform.state import State

log = logging.getLogger(__name__)


# raw rows one processed run takes at most (raw runs oldest first, at least one): after
# an outage of the transform, a backlog of raw runs is worked through over several runs
MAX_RAW_ROWS = 10_000_000


@dataclass(frozen=True)
class TransformOptions:
    since: dt.datetime | None = None
    bounds: Bounds = field(default_factory=Bounds)
    max_raw_rows: int = MAX_RAW_ROWS


@dataclass
class TransformResult:
    seq: int | None
    raw_runs: list[int]
    tables: dict[str, TableFiles]
    seconds: float
    quarantined: int = 0  # entries this run found (the extract's were counted there)
    deleted: int = 0  # tombstones it carried to the star tables
    waiting: int = 0  # raw runs left for the next run

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables.values())


def _oldest(runs: list[RawRun], max_rows: int) -> list[RawRun]:
    """The oldest runs whose rows stay within max_rows (the first whatever its size)."""
    taken, rows = [], 0
    for run in runs:
        rows += sum(t.rows for t in run.manifest.tables.values())
        if taken and rows > max_rows:
            break
        taken.append(run)
    return taken


def _raw_runs(
    raw: Lake, state: State, since: dt.datetime | None, max_rows: int = MAX_RAW_ROWS
) -> tuple[list[RawRun], int]:
    """The raw runs this run takes, and how many newer ones it leaves for the next."""
    runs = manifests.runs_after(raw, state.raw_seq, RawManifest)
    new = _oldest([RawRun(m, replay=False) for m in runs], max_rows)
    waiting = len(runs) - len(new)
    if since is None:
        return new, waiting
    # a reprocess also reads the runs consumed before whose data reaches back to T
    replays = []
    for seq, key in manifests.manifests_after(raw, 0):
        if seq > state.raw_seq:
            break
        manifest = manifests.read(raw, key, RawManifest)
        newest = [t.max_last_updated for t in manifest.tables.values()]
        if any(n and n >= since for n in newest):
            replays.append(RawRun(manifest, replay=True))
    return replays + new, waiting


def _ledger(raw: Lake, processed: Lake, last: ProcessedManifest | None, state: State, batch):
    """The open entries and waiting rows handed on by the last run, and the entries the
    batch's extracts set aside."""
    waiting = {
        name: read_parquet(processed, files.keys, output_schema(name))
        for name, files in (last.waiting.items() if last else ())
    }
    ledger = Ledger(state.open, waiting)
    ledger.add(read_parquet(raw, batch.set_aside(), ENTRY), carried=True)
    return ledger


def _hold_waiting(files: FileSet, ledger: Ledger, still_open: pa.Table) -> None:
    """The rows that still wait go to the next run (those whose key has since had a valid
    version no longer wait)."""
    for name, rows in ledger.waiting.items():
        source, key = star(name).source, star(name).key
        kept = still_waiting(rows, source, key, build.source_versions(name, rows), still_open)
        files.hold(name, kept)


def transform(
    raw: Lake, processed: Lake, options: TransformOptions, deadline: Deadline
) -> TransformResult:
    started = time.perf_counter()
    raw.check(create=False)
    processed.check()
    last = manifests.latest(processed, ProcessedManifest)
    seq = (last.seq if last else 0) + 1
    state = State.load(last)
    runs, waiting = _raw_runs(raw, state, options.since, options.max_raw_rows)
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
    ledger = _ledger(raw, processed, last, state, batch)
    today = dt.datetime.now(dt.UTC).date()
    with FileSet(processed, PARTITIONS["processed"], seq, today, "transform.file_written") as files:
        newest_raw = max(r.seq for r in runs)
        run = build.Run(files, Closure(state.keys), ledger, options.bounds, deadline, newest_raw)
        parents = build.dimensions(run, batch, state)
        build.facts(run, batch)
        calendar = build.calendar(run, state.dates)
        tombstones = deletes.carried(raw, runs)
        files.tombstones(tombstones, "processed")
        parents = deletes.forget(parents, tombstones)
        batch.forget(tombstones, every_version=True)
        ledger.gone(tombstones)
        events, still_open = ledger.close()
        files.set_aside(events)
        _hold_waiting(files, ledger, still_open)
        deadline.check("committing the transform")
    next_state = State(
        raw_seq=max([state.raw_seq, *(r.seq for r in runs)]),
        parents=parents,
        keys=run.closure.keys,
        dates=calendar,
        seen=batch.next_seen(next_horizons(newest)),
        open=still_open,
    )
    raw_zone = zone.identity(raw)
    manifest = ProcessedManifest(
        seq=seq,
        raw_zone=raw_zone.id if raw_zone else None,
        raw_url=raw.url,
        raw_run_id=newest.run_id,
        run_id=logs.run_id(),
        tables=files.tables,
        quarantine=files.quarantine,
        waiting=files.waiting,
        deleted=files.deleted,
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
    elapsed = time.perf_counter() - started
    result = TransformResult(
        seq,
        manifest.raw_runs,
        files.tables,
        elapsed,
        quarantined=ledger.found(),
        deleted=tombstones.num_rows,
        waiting=waiting,
    )
    files.log("transformed")
    quality.warn(ledger.found_here(), "processed")
    log.info(
        "processed run %d committed",
        result.seq,
        extra={
            "rows": result.rows,
            "quarantined": result.quarantined,
            "seconds": round(result.seconds, 3),
        },
    )
    return result
