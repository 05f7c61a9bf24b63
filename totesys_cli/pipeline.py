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
from totesys_cli import load as load_stage
from totesys_cli import logs
from totesys_cli import transform as transform_stage
from totesys_cli.endpoints import PROCESSED, RAW, SOURCE, WAREHOUSE, Endpoints, open_endpoints
from totesys_cli.ops import gc
from totesys_cli.runtime import Deadline, hard_stop, run_lock
from totesys_cli.schemas import SOURCE_TABLES
from totesys_cli.settings import Settings

log = logging.getLogger(__name__)


@contextlib.contextmanager
def run_step(
    settings: Settings,
    step: str | None,
    required: tuple[str, ...],
    optional: tuple[str, ...] = (WAREHOUSE,),
    what: str | None = None,
) -> Iterator[tuple[Endpoints, Deadline]]:
    """Inside: the endpoints the step needs, under the lock, and the run's deadline.
    `step` names the log lines (None for run-all, whose steps name their own); `what`
    names the run in the lock's message."""
    deadline = Deadline(settings.max_runtime)
    with logs.step(step) if step else contextlib.nullcontext(), hard_stop(deadline):
        endpoints = open_endpoints(settings, required, optional)
        with run_lock(endpoints.warehouse, what or step or "run"):
            yield endpoints, deadline


def _extract(
    ends: Endpoints,
    deadline: Deadline,
    settings: Settings,
    tables: tuple[str, ...] = (),
    since: dt.datetime | None = None,
) -> extract_stage.ExtractResult:
    options = extract_stage.ExtractOptions(
        tables=tables or SOURCE_TABLES,
        since=since,
        overlap=settings.overlap,
        batch_rows=settings.batch_rows,
        bounds=settings.bounds,
    )
    return extract_stage.extract(ends.source, ends.raw, options, deadline)


def _transform(
    ends: Endpoints, deadline: Deadline, settings: Settings, since: dt.datetime | None
) -> transform_stage.TransformResult:
    options = transform_stage.TransformOptions(since=since, bounds=settings.bounds)
    return transform_stage.transform(ends.raw, ends.processed, options, deadline)


def _load(ends: Endpoints, deadline: Deadline, since: dt.datetime | None) -> load_stage.LoadResult:
    options = load_stage.LoadOptions(since=since)
    return load_stage.load(ends.warehouse, ends.processed, options, deadline)


def extract(
    settings: Settings, tables: tuple[str, ...] = (), since: dt.datetime | None = None
) -> extract_stage.ExtractResult:
    with run_step(settings, "extract", (SOURCE, RAW)) as (ends, deadline):
        return _extract(ends, deadline, settings, tables, since)


def transform(
    settings: Settings, since: dt.datetime | None = None
) -> transform_stage.TransformResult:
    with run_step(settings, "transform", (RAW, PROCESSED)) as (ends, deadline):
        return _transform(ends, deadline, settings, since)


def load(settings: Settings, since: dt.datetime | None = None) -> load_stage.LoadResult:
    with run_step(settings, "load", (WAREHOUSE, PROCESSED)) as (ends, deadline):
        return _load(ends, deadline, since)


def lake_gc(settings: Settings, grace: dt.timedelta, dry_run: bool) -> gc.GcResult:
    with run_step(settings, "gc", (RAW, PROCESSED), what="lake gc") as (ends, _):
        return gc.collect(ends.raw, ends.processed, grace, dry_run)


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

    required = (SOURCE, WAREHOUSE, RAW, PROCESSED)
    with run_step(settings, None, required) as (ends, deadline):
        with timed("extract"):
            extracted = _extract(ends, deadline, settings, since=since)
        with timed("transform"):
            transformed = _transform(ends, deadline, settings, since)
        with timed("load"):
            loaded = _load(ends, deadline, since)
    result = RunAllResult(extracted, transformed, loaded, seconds)
    timings = {f"{step}_seconds": round(value, 3) for step, value in seconds.items()}
    log.info(
        "run succeeded",
        extra={**result.counts(), "seconds": round(sum(seconds.values()), 3), **timings},
    )
    return result
