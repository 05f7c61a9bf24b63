"""How much a run-all under a deadline takes on: what it can carry from the source to the
warehouse in the time it has.

A run's time goes on rows, and a row's cost depends on its step and its table: loading
one costs several times extracting it, and a payment costs the load three times what a
transaction does. So each source table has a pace, in seconds per row through the whole
run: the extract's and the transform's pace, plus the load's pace of the star table the
source table feeds. Each comes from the run history, as the slowest of the latest
MEASURED_RUNS runs that measured it: a step's pace on runs that moved at least
MEASURED_ROWS rows, a star table's load pace on runs where it brought nearly all the rows.
A pace never measured is DEFAULT_PACE (about twice what the benchmark measures on a small
machine); a star table's, never less than the slowest load pace measured.

The rows already waiting downstream (raw rows not yet transformed, processed rows not
yet loaded) go first, at the slowest pace; the extract gets the seconds left, which it
spends range by range at each table's pace, so the processed run it leads to fits the
load that follows it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import Connection, text

from totesys_cli.config.urls import Database
from totesys_cli.db import translate_errors
from totesys_cli.extract import Room
from totesys_cli.lake import Lake
from totesys_cli.lake import manifest as manifests
from totesys_cli.lake.manifest import Manifest, ProcessedManifest, RawManifest
from totesys_cli.load import last_loaded
from totesys_cli.runtime import Deadline
from totesys_cli.schemas import SOURCE_TABLES, STAR_TABLES, star

log = logging.getLogger(__name__)

# seconds per row before the history has a measure
DEFAULT_PACE = {"extract": 4e-6, "transform": 2e-6, "load": 24e-6}
# a pace is measured on runs that moved at least this many rows, where the seconds every
# run spends whatever its size are a small part of the whole
MEASURED_ROWS = 100_000
MEASURED_RUNS = 3
# the share of the deadline kept in hand against a pace measured too fast (a load that
# passes the deadline is rolled back: its time is lost, so too little costs more than
# too much)
RESERVE = 0.3
# a star table's load pace is measured on runs where it brought this share of the rows
DOMINANT = 0.9
# the runs of the last week are enough to know the pace; older ones are not read
_HISTORY = text(
    "SELECT rows, seconds FROM totesys_meta.runs"
    " WHERE outcome = 'succeeded' AND started_at > now() - interval '7 days'"
    " ORDER BY started_at DESC LIMIT 200"
)


@dataclass(frozen=True)
class Pace:
    """Seconds per row: of the extract and transform steps, and of the load per star
    table."""

    extract: float
    transform: float
    load: dict[str, float]

    def of(self, source: str) -> float:
        """Through the whole run, per row of a source table."""
        fed = [self.load[s] for s in STAR_TABLES if star(s).source == source]
        return self.extract + self.transform + max(fed, default=0.0)

    @property
    def slowest(self) -> float:
        return max(self.of(t) for t in SOURCE_TABLES)


@dataclass(frozen=True)
class Plan:
    """What one run takes on: the seconds its extract may spend in rows (at `pace`),
    and the raw rows its transform takes at most (0 with rows waiting: the step is
    skipped)."""

    seconds: float  # the run's room for new work, before what waits downstream
    extract_seconds: float
    transform_rows: int
    pace: Pace
    raw_runs: int  # raw runs not yet transformed
    raw_rows: int
    processed_rows: int  # rows of the processed runs not yet loaded

    def room(self) -> Room:
        """The extract's seconds, and what a row of each table costs in them."""
        return Room(self.extract_seconds, {t: self.pace.of(t) for t in SOURCE_TABLES})

    def waiting(self) -> str:
        return f"{self.raw_rows:,} raw rows and {self.processed_rows:,} processed rows"


def _measures(conn: Connection) -> dict[str, list[float]]:
    """Per step, and per star table for the load, the paces of the latest runs that
    measured them, newest first."""
    found: dict[str, list[float]] = {}

    def add(name: str, pace: float) -> None:
        if len(paces := found.setdefault(name, [])) < MEASURED_RUNS:
            paces.append(pace)

    if conn.execute(text("SELECT to_regclass('totesys_meta.runs')")).scalar() is None:
        return found
    for rows, seconds in conn.execute(_HISTORY):
        for step, per_table in (rows or {}).items():
            moved = sum(per_table.values())
            if moved < MEASURED_ROWS or step not in (seconds or {}):
                continue
            add(step, seconds[step] / moved)
            most = max(per_table, key=per_table.get)
            if step == "load" and per_table[most] >= moved * DOMINANT:
                add(most, seconds[step] / moved)
    return found


def pace(conn: Connection) -> Pace:
    measured = {name: max(paces) for name, paces in _measures(conn).items()}
    loads = [measured[t] for t in (*STAR_TABLES, "load") if t in measured]
    unmeasured = max([DEFAULT_PACE["load"], *loads])
    return Pace(
        extract=measured.get("extract", DEFAULT_PACE["extract"]),
        transform=measured.get("transform", DEFAULT_PACE["transform"]),
        load={t: measured.get(t, unmeasured) for t in STAR_TABLES},
    )


def _rows(runs: list[Manifest]) -> int:
    return sum(t.rows for run in runs for t in run.tables.values())


def plan(
    warehouse: Database, conn: Connection, raw: Lake, processed: Lake, deadline: Deadline
) -> Plan | None:
    """The run's plan, read on `conn`, the warehouse's (None: no deadline, no bound)."""
    left = deadline.remaining()
    if left is None or deadline.seconds is None:
        return None
    with translate_errors(warehouse):
        steps = pace(conn)
        loaded = last_loaded(conn)
    processed_rows = _rows(manifests.runs_after(processed, loaded, ProcessedManifest))
    last = manifests.latest(processed, ProcessedManifest)
    raw_runs = manifests.runs_after(raw, last.raw_seq if last else 0, RawManifest)
    raw_rows = _rows(raw_runs)
    room = max(left - deadline.seconds * RESERVE, 0.0)
    loading = room - processed_rows * steps.slowest
    result = Plan(
        seconds=room,
        extract_seconds=max(loading - raw_rows * steps.slowest, 0.0),
        transform_rows=max(int(loading / steps.slowest), 0),
        pace=steps,
        raw_runs=len(raw_runs),
        raw_rows=raw_rows,
        processed_rows=processed_rows,
    )
    log.debug("the run's plan: %s", result)
    return result
