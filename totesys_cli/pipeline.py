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
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from totesys_cli import extract as extract_stage
from totesys_cli import history, lineage, logs
from totesys_cli import load as load_stage
from totesys_cli import transform as transform_stage
from totesys_cli.endpoints import PROCESSED, RAW, SOURCE, WAREHOUSE, Endpoints, open_endpoints
from totesys_cli.errors import ConfigError
from totesys_cli.ops import gc
from totesys_cli.runtime import Deadline, hard_stop, run_lock
from totesys_cli.schemas import SOURCE_TABLES
from totesys_cli.settings import HARD_STOP_GRACE, Settings, envvar

log = logging.getLogger(__name__)


Run = tuple[Endpoints, Deadline, history.RunRecord]

# the share of --max-runtime after which an extract starts no new range of keys: the
# rest commits it (extract alone), or transforms and loads what it read (run-all), so a
# backlog keeps all three steps moving and every run ends within its deadline
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
) -> Iterator[Run]:
    """Inside: the endpoints the step needs, under the lock, their lineage checked, and
    the run's deadline. `step` names the log lines (None for run-all, whose steps name
    their own; until they begin, its lines keep the command's `startup` step); `what`
    names the run in the lock's message; `writes` the zones it writes. A step that
    writes the warehouse first checks that `totesys init` created it."""
    deadline = Deadline(settings.max_runtime)
    with logs.step(step) if step else contextlib.nullcontext(), hard_stop(deadline):
        endpoints = open_endpoints(settings, required, optional)
        record = history.start(endpoints.warehouse, what or step or "run-all", deadline.seconds)
        try:
            with run_lock(endpoints.warehouse, what or step or "run"):
                if WAREHOUSE in writes:  # before anything is written: not yet initialised?
                    load_stage.check_ready(endpoints.warehouse)
                lineage.check(endpoints, writes)
                yield endpoints, deadline, record
        except BaseException as err:
            history.finish(record, err)
            raise
        history.finish(record, None)


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
) -> extract_stage.ExtractResult:
    ends, deadline, record = run
    options = extract_stage.ExtractOptions(
        tables=tables or SOURCE_TABLES,
        since=since,
        overlap=settings.overlap,
        batch_rows=settings.batch_rows,
        bounds=settings.bounds,
        budget=_share_left(deadline, share),
        range_rows=settings.range_rows,
    )
    result = extract_stage.extract(ends.source, ends.raw, options, deadline)
    rows = {name: files.rows for name, files in result.tables.items()}
    record.step("extract", rows, result.seconds, [result.seq])
    return result


def _transform(
    run: Run, settings: Settings, since: dt.datetime | None
) -> transform_stage.TransformResult:
    ends, deadline, record = run
    options = transform_stage.TransformOptions(since=since, bounds=settings.bounds)
    result = transform_stage.transform(ends.raw, ends.processed, options, deadline)
    rows = {name: files.rows for name, files in result.tables.items()}
    record.step("transform", rows, result.seconds, [result.seq] if result.seq else [])
    return result


def _loaded(record: history.RunRecord, step: str, result: load_stage.LoadResult) -> None:
    rows: dict[str, int] = {}
    for run in result.runs:
        for table, changed in run.changed.items():
            rows[table] = rows.get(table, 0) + changed
    record.step(step, rows, result.seconds, [r.seq for r in result.runs])


def _load(run: Run, since: dt.datetime | None) -> load_stage.LoadResult:
    ends, deadline, record = run
    options = load_stage.LoadOptions(since=since, budget=_share_left(deadline, 1 - LOAD_RESERVE))
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


def rebuild(settings: Settings) -> load_stage.LoadResult:
    with run_step(settings, "rebuild", (WAREHOUSE, PROCESSED)) as (ends, deadline, record):
        result = load_stage.rebuild(ends.warehouse, ends.processed, deadline)
        _loaded(record, "rebuild", result)
        return result


def lake_gc(settings: Settings, grace: dt.timedelta, dry_run: bool) -> gc.GcResult:
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
    with run_step(settings, "gc", (RAW, PROCESSED), what="lake gc") as (ends, _, record):
        result = gc.collect(ends.raw, ends.processed, grace, dry_run)
        record.step("gc", {url: len(files) for url, files in result.deleted.items()}, 0.0, [])
        return result


@dataclass
class RunAllResult:
    extract: extract_stage.ExtractResult
    transform: transform_stage.TransformResult
    load: load_stage.LoadResult
    seconds: dict[str, float] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {
            "extracted": self.extract.rows,
            "transformed": self.transform.rows,
            "loaded": self.load.rows,
            "quarantined": self.extract.quarantined + self.transform.quarantined,
            "tables_left": len(self.extract.left),
        }


def run_all(settings: Settings, since: dt.datetime | None = None) -> RunAllResult:
    """Extract, transform and load under one lock and one deadline; ends with the
    `run succeeded` line that the schedule's heartbeat alarm watches."""
    seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def timed(step: str) -> Iterator[None]:
        started = time.perf_counter()
        with logs.step(step):
            yield
        seconds[step] = time.perf_counter() - started

    required, writes = (SOURCE, WAREHOUSE, RAW, PROCESSED), (RAW, PROCESSED, WAREHOUSE)
    with run_step(settings, None, required, writes=writes) as run:
        with timed("extract"):
            extracted = _extract(run, settings, EXTRACT_SHARE["run-all"], since=since)
        with timed("transform"):
            transformed = _transform(run, settings, since)
        with timed("load"):
            loaded = _load(run, since)
    result = RunAllResult(extracted, transformed, loaded, seconds)
    timings = {f"{step}_seconds": round(value, 3) for step, value in seconds.items()}
    with logs.step("run-all"):
        log.info(
            "run succeeded",
            extra={**result.counts(), "seconds": round(sum(seconds.values()), 3), **timings},
        )
    return result
