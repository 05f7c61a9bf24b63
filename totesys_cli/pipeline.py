"""run-all: extract, transform and load in one process, under one lock and one deadline."""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field

from totesys_cli import logs
from totesys_cli.extract import (
    DEFAULT_BATCH_ROWS,
    DEFAULT_OVERLAP,
    ExtractOptions,
    ExtractResult,
    extract,
)
from totesys_cli.load import LoadOptions, LoadResult, load
from totesys_cli.runtime import Deadline, run_lock
from totesys_cli.settings import Settings
from totesys_cli.transform import TransformOptions, TransformResult, transform

log = logging.getLogger(__name__)


@dataclass
class RunAllResult:
    extract: ExtractResult
    transform: TransformResult
    load: LoadResult
    seconds: dict[str, float] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {
            "extracted": self.extract.rows,
            "transformed": self.transform.rows,
            "loaded": self.load.rows,
        }


def run_all(
    settings: Settings,
    *,
    since: dt.datetime | None = None,
    overlap: dt.timedelta | None = None,
    batch_rows: int | None = None,
    max_runtime: float | None = None,
) -> RunAllResult:
    """Each step commits before the next starts: when one fails, what the earlier ones
    committed stays committed and the next run continues from there."""
    deadline = Deadline(max_runtime)
    source = settings.require_source()
    warehouse = settings.require_warehouse()
    raw = settings.raw_lake()
    processed = settings.processed_lake()
    options = ExtractOptions(
        since=since,
        overlap=DEFAULT_OVERLAP if overlap is None else overlap,
        batch_rows=batch_rows or DEFAULT_BATCH_ROWS,
    )
    seconds: dict[str, float] = {}
    with run_lock(warehouse, "run"):
        started = time.perf_counter()
        with logs.step("extract"):
            extracted = extract(source, raw, options, deadline)
        seconds["extract"] = time.perf_counter() - started
        started = time.perf_counter()
        with logs.step("transform"):
            transformed = transform(raw, processed, TransformOptions(since=since), deadline)
        seconds["transform"] = time.perf_counter() - started
        started = time.perf_counter()
        with logs.step("load"):
            loaded = load(warehouse, processed, LoadOptions(since=since), deadline)
        seconds["load"] = time.perf_counter() - started
    result = RunAllResult(extracted, transformed, loaded, seconds)
    timings = {f"{step}_seconds": round(value, 3) for step, value in seconds.items()}
    log.info(
        "run succeeded",
        extra={**result.counts(), "seconds": round(sum(seconds.values()), 3), **timings},
    )
    return result
