"""The steps as the commands run them: settings -> endpoints -> lock -> deadline -> step.

Every command that writes goes through `run_step`, which opens what the step needs,
takes the warehouse lock for the whole run, and bounds it by the deadline (and, past
it, the hard stop). `run_all` runs extract, transform and load under one lock and one
deadline; each step commits before the next starts, so when one fails, what the
earlier ones committed stays committed and the next run continues from there.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from sqlalchemy import Connection

from totesys_cli import extract as extract_stage
from totesys_cli import load as load_stage
from totesys_cli import transform as transform_stage
from totesys_cli.config.settings import Settings, envvar
from totesys_cli.errors import ConfigError
from totesys_cli.lake import compaction, writers
from totesys_cli.lake import manifest as manifests
from totesys_cli.observe import logs, memory
from totesys_cli.ops import compact, gc, runs
from totesys_cli.pipeline import lineage, plan
from totesys_cli.runtime import HARD_STOP_GRACE, Deadline, hard_stop, run_lock
from totesys_cli.runtime.endpoints import (
    PROCESSED,
    RAW,
    SOURCE,
    WAREHOUSE,
    Endpoints,
    open_endpoints,
)
from totesys_cli.schemas import SOURCE_TABLES

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Run:
    """What a step runs with: its endpoints, deadline and history record, and the
    warehouse lock's connection (None without a warehouse) for its reads before it
    writes."""

    ends: Endpoints
    deadline: Deadline
    record: runs.RunRecord
    lock: Connection | None


# the share of --max-runtime after which an extract starts no new range of keys: the
# rest commits it (extract alone), or transforms and loads what it read (run-all, whose
# extract is bounded first by the rows the rest of the run can carry: see `plan`)
EXTRACT_SHARE = {"extract": 0.8, "run-all": 0.4}
# the share of --max-runtime a load keeps in hand: it starts no new processed run after
LOAD_RESERVE = 0.2


@contextlib.contextmanager
def run_step(
    settings: Settings,
    step: str | None,
    required: tuple[str, ...],
    optional: tuple[str, ...] = (WAREHOUSE,),
    what: str | None = None,
    writes: tuple[str, ...] = (),
    locked: bool = True,
) -> Iterator[Run]:
    """Inside: the endpoints the step needs, under the lock (unless not `locked`), their
    lineage checked, and the run's deadline. `step` names the log lines (None for
    run-all, whose steps name their own; until they begin, its lines keep the command's
    `startup` step); `what` names the run in the lock's message; `writes` the zones it
    writes. A step that writes the warehouse first checks that `totesys init` created it."""
    deadline = Deadline(settings.max_runtime)
    with (
        logs.step(step) if step else contextlib.nullcontext(),
        hard_stop(deadline),
        manifests.one_run(),
        compaction.one_run(),
    ):
        endpoints = open_endpoints(settings, required, optional)
        record = runs.start(endpoints.warehouse, what or step or "run-all", deadline.seconds)
        try:
            held = run_lock(endpoints.warehouse, what or step or "run") if locked else None
            with held or contextlib.nullcontext() as lock:
                if WAREHOUSE in writes and lock is not None:  # not yet initialised?
                    load_stage.check_ready(endpoints.warehouse, lock)
                lineage.check(endpoints, writes)
                with _announced(endpoints, writes, deadline):
                    yield Run(endpoints, deadline, record, lock)
        except BaseException as err:
            runs.finish(record, err)
            raise
        runs.finish(record, None)


def _announced(ends: Endpoints, writes: tuple[str, ...], deadline: Deadline):
    """A run that writes the lake without the warehouse lock tells lake gc so."""
    zones = [z for r, z in ((RAW, ends.raw), (PROCESSED, ends.processed)) if r in writes and z]
    if ends.warehouse is not None or not zones:
        return contextlib.nullcontext()
    longest = None
    if deadline.seconds is not None:
        longest = dt.timedelta(seconds=deadline.seconds + HARD_STOP_GRACE)
    return writers.announced(zones, logs.run_id(), longest)


def _share_left(deadline: Deadline, share: float) -> float | None:
    """Seconds left until `share` of the deadline is spent (None: no deadline)."""
    left = deadline.remaining()
    return None if left is None else max(left - deadline.seconds * (1 - share), 0.0)


def _extract(
    run: Run,
    settings: Settings,
    share: float,
    tables: tuple[str, ...] = (),
    since: dt.datetime | None = None,
    room: extract_stage.Room | None = None,
) -> extract_stage.ExtractResult:
    ends, deadline, record = run.ends, run.deadline, run.record
    options = extract_stage.ExtractOptions(
        tables=tables or SOURCE_TABLES,
        since=since,
        overlap=settings.overlap_window,
        batch_rows=settings.batch_rows,
        bounds=settings.bounds,
        budget=_share_left(deadline, share),
        range_rows=settings.range_rows,
        room=room,
        deletes=extract_stage.Deletes(
            every=dt.timedelta(minutes=settings.deletes_every),
            mass_percent=settings.mass_delete_percent,
            allowed=settings.allow_mass_delete,
        ),
    )
    result = extract_stage.extract(ends.source, ends.raw, options, deadline)
    rows = {name: files.rows for name, files in result.tables.items()}
    record.step("extract", rows, result.seconds, [result.seq])
    return result


def _transform(
    run: Run, settings: Settings, since: dt.datetime | None, rows: int | None = None
) -> transform_stage.TransformResult:
    ends, deadline, record = run.ends, run.deadline, run.record
    options = transform_stage.TransformOptions(since=since, bounds=settings.bounds)
    if rows is not None:
        options = replace(options, max_raw_rows=min(options.max_raw_rows, rows))
    result = transform_stage.transform(ends.raw, ends.processed, options, deadline)
    rows = {name: files.rows for name, files in result.tables.items()}
    record.step("transform", rows, result.seconds, [result.seq] if result.seq else [])
    return result


def _loaded(record: runs.RunRecord, step: str, result: load_stage.LoadResult) -> None:
    rows: dict[str, int] = {}
    for run in result.runs:
        for table, changed in run.changed.items():
            rows[table] = rows.get(table, 0) + changed
    record.step(step, rows, result.seconds, [r.seq for r in result.runs])


def _load(run: Run, since: dt.datetime | None, progressed: bool = False) -> load_stage.LoadResult:
    ends, deadline, record = run.ends, run.deadline, run.record
    budget = _share_left(deadline, 1 - LOAD_RESERVE)
    options = load_stage.LoadOptions(since=since, budget=budget, progressed=progressed)
    result = load_stage.load(ends.warehouse, ends.processed, options, deadline)
    _loaded(record, "load", result)
    return result


def extract(
    settings: Settings, tables: tuple[str, ...] = (), since: dt.datetime | None = None
) -> extract_stage.ExtractResult:
    with run_step(settings, "extract", (SOURCE, RAW), writes=(RAW,)) as run:
        return _extract(run, settings, EXTRACT_SHARE["extract"], tables, since)


def transform(
    settings: Settings, since: dt.datetime | None = None
) -> transform_stage.TransformResult:
    with run_step(settings, "transform", (RAW, PROCESSED), writes=(PROCESSED,)) as run:
        return _transform(run, settings, since)


def load(settings: Settings, since: dt.datetime | None = None) -> load_stage.LoadResult:
    with run_step(settings, "load", (WAREHOUSE, PROCESSED), writes=(WAREHOUSE,)) as run:
        return _load(run, since)


def rebuild(settings: Settings, allow_empty: bool = False) -> load_stage.LoadResult:
    with run_step(settings, "rebuild", (WAREHOUSE, PROCESSED)) as run:
        ends = run.ends
        result = load_stage.rebuild(ends.warehouse, ends.processed, run.deadline, allow_empty)
        _loaded(run.record, "rebuild", result)
        return result


def lake_gc(
    settings: Settings, grace: dt.timedelta, dry_run: bool, whole: bool = False
) -> gc.GcResult:
    longest = dt.timedelta(seconds=settings.max_runtime + HARD_STOP_GRACE)
    locked = settings.url(WAREHOUSE) is not None or settings.secret(WAREHOUSE) is not None
    if not locked and grace < longest:
        raise ConfigError(
            "without a warehouse to lock, lake gc cannot tell whether a run is still "
            f"writing, so its grace must be at least the longest run ({longest})",
            f"Give --grace-hours {longest.total_seconds() / 3600:.2f} or more, "
            f"or set {envvar('warehouse_url')} so that gc takes the lock",
            step="gc",
        )
    with run_step(settings, "gc", (RAW, PROCESSED), what="lake gc") as run:
        result = gc.collect(run.ends.raw, run.ends.processed, grace, dry_run, whole)
        run.record.step("gc", {url: len(files) for url, files in result.deleted.items()}, 0.0, [])
        return result


def lake_compact(settings: Settings, before: dt.date) -> compact.CompactResult:
    """Compact the closed days before `before`. It takes no lock (see `ops.compact`):
    a compaction and a run never touch the same files."""
    with run_step(settings, "compact", (RAW, PROCESSED), what="lake compact", locked=False) as run:
        result = compact.compact(run.ends.raw, run.ends.processed, before, run.deadline)
        written = {url: len(zone.days) for url, zone in result.zones.items()}
        run.record.step("compact", written, 0.0, [])
        return result


@dataclass
class RunAllResult:
    extract: extract_stage.ExtractResult | None  # None: the rows waiting downstream came first
    transform: transform_stage.TransformResult | None  # None: likewise
    load: load_stage.LoadResult
    tables_left: list[str]
    runs_waiting: int
    seconds: dict[str, float] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        extracted, transformed = self.extract, self.transform
        return {
            "extracted": extracted.rows if extracted else 0,
            "transformed": transformed.rows if transformed else 0,
            "loaded": self.load.rows,
            "quarantined": (extracted.quarantined if extracted else 0)
            + (transformed.quarantined if transformed else 0),
            "deleted": extracted.deleted if extracted else 0,
            "tables_left": len(self.tables_left),
            "runs_waiting": self.runs_waiting,
        }


def run_all(settings: Settings, since: dt.datetime | None = None) -> RunAllResult:
    """Extract, transform and load under one lock and one deadline, each taking on what
    the run can carry to the warehouse in time (see `plan`); ends with the `run
    succeeded` line that the schedule's heartbeat alarm watches, which says what is left
    for the next runs: tables still being read, raw and processed runs not yet loaded."""
    seconds: dict[str, float] = {}
    peaks: dict[str, int] = {}  # the process's peak memory once each step ended

    @contextlib.contextmanager
    def timed(step: str) -> Iterator[None]:
        started = time.perf_counter()
        with logs.step(step):
            yield
        seconds[step] = time.perf_counter() - started
        peaks[f"{step}_peak_rss_mb"] = memory.peak_rss_mb()
        memory.release()

    required, writes = (SOURCE, WAREHOUSE, RAW, PROCESSED), (RAW, PROCESSED, WAREHOUSE)
    with run_step(settings, None, required, writes=writes) as run:
        ends, lock = run.ends, run.lock
        with timed("extract"):  # the plan is the extract's first step: what it may read
            bound = None  # a reprocess (--since) reads its window whatever waits downstream
            if lock is not None and since is None:
                bound = plan.plan(ends.warehouse, lock, ends.raw, ends.processed, run.deadline)
            extracted = None
            if bound is None or bound.extract_seconds > 0:
                room = bound.room() if bound else None
                share = EXTRACT_SHARE["run-all"]
                extracted = _extract(run, settings, share, since=since, room=room)
            elif bound.seconds > 0:
                log.info("%s wait downstream: this run reads nothing new", bound.waiting())
        with timed("transform"):
            transformed = None
            if bound is None or bound.transform_rows > 0 or not bound.raw_runs:
                rows = bound.transform_rows if bound else None
                transformed = _transform(run, settings, since, rows)
            else:
                log.info("%s wait to load: this run transforms nothing", bound.waiting())
        with timed("load"):
            progressed = bool(extracted and extracted.rows) or bool(transformed and transformed.seq)
            loaded = _load(run, since, progressed)
    left = extracted.left if extracted else extract_stage.unfinished(ends.raw)
    # a transform is skipped only by a plan, which counted the raw runs waiting
    raw_waiting = transformed.waiting if transformed else (bound.raw_runs if bound else 0)
    result = RunAllResult(
        extracted, transformed, loaded, left, raw_waiting + loaded.waiting, seconds
    )
    timings = {f"{step}_seconds": round(value, 3) for step, value in seconds.items()}
    with logs.step("run-all"):
        _too_short(settings, result, bound, time.monotonic() - run.deadline.started)
        log.info(
            "run succeeded",
            extra={
                **result.counts(),
                "seconds": round(sum(seconds.values()), 3),
                **timings,
                **peaks,
            },
        )
    return result


def _too_short(
    settings: Settings, result: RunAllResult, bound: plan.Plan | None, elapsed: float
) -> None:
    """A WARNING when the deadline is too short for runs to progress and nothing new
    reached the warehouse: either the deadline was spent before the run could read
    (the plan found no room left for any work), or the extract's share was spent before
    every table was read (what was read was the overlap, read again).
    Such runs would succeed for ever."""
    extracted, transformed = result.extract, result.transform
    if (transformed is not None and transformed.rows) or result.load.rows:
        return
    # the extract starts no table after its share of the deadline: what went before it
    # (start-up, the plan) and every table at this run's pace must fit in that share
    before = elapsed - sum(result.seconds.values())
    if extracted is None:  # skipped by the plan: for want of time, or for what waits
        if bound is None or bound.seconds > 0:
            return
        read, needed = 0, before + result.seconds.get("extract", 0.0)
    elif result.tables_left:
        read = len(extracted.table_seconds)
        per_table = sum(extracted.table_seconds.values()) / max(read, 1)
        needed = before + extracted.seconds + per_table * len(result.tables_left)
    else:
        return
    log.warning(
        "--max-runtime %g s is too short for runs to progress: this run read %d of %d "
        "tables and brought nothing new to the warehouse; give --max-runtime %d or more",
        settings.max_runtime,
        read,
        len(SOURCE_TABLES),
        max(math.ceil(needed / EXTRACT_SHARE["run-all"]), math.floor(settings.max_runtime) + 1),
        extra={"tables_read": read},
    )
