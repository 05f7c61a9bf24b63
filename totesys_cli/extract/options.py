"""What an extract is asked to do, and what it did."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

from totesys_cli.config.settings import Bounds, default
from totesys_cli.lake.files import TableFiles
from totesys_cli.lake.manifest import RawManifest
from totesys_cli.schemas import SOURCE_TABLES


@dataclass(frozen=True)
class Deletes:
    """When a run compares the source's keys with the keys the lake knows, and how many
    gone at once it takes for a mistake rather than a delete."""

    every: dt.timedelta = dt.timedelta(minutes=default("deletes_every"))
    # a comparison finding more than this share of a table gone (or the table emptied)
    # records nothing and fails the run, unless the table is allowed
    mass_percent: float = default("mass_delete_percent")
    allowed: tuple[str, ...] = ()


@dataclass(frozen=True)
class Room:
    """Seconds for the rows a run reads, and what a row of each table costs in them."""

    seconds: float
    pace: Mapping[str, float]


@dataclass(frozen=True)
class ExtractOptions:
    tables: tuple[str, ...] = SOURCE_TABLES
    since: dt.datetime | None = None
    overlap: dt.timedelta = dt.timedelta(minutes=default("overlap"))
    batch_rows: int = default("batch_rows")
    bounds: Bounds = field(default_factory=Bounds)
    # seconds after which no new range of keys starts (None: read every window whole,
    # one COPY per table); the run then commits what it read and the next goes on
    budget: float | None = None
    range_rows: int = default("range_rows")
    # the seconds the rest of the run has for the rows this one reads (None: no bound):
    # no new range starts once they are spent, and ranges are cut to fit them
    room: Room | None = None
    deletes: Deletes = field(default_factory=Deletes)

    @property
    def bounded(self) -> bool:
        return self.budget is not None or self.room is not None


@dataclass
class ExtractResult:
    manifest: RawManifest
    table_seconds: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    unread: tuple[str, ...] = ()  # tables the budget left for the next run

    @property
    def seq(self) -> int:
        return self.manifest.seq

    @property
    def snapshot(self) -> dt.datetime:
        return self.manifest.snapshot_time

    @property
    def tables(self) -> dict[str, TableFiles]:
        return self.manifest.tables

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables.values())

    @property
    def deleted(self) -> int:
        """Keys this run found deleted in the source."""
        return self.manifest.deleted.rows

    @property
    def quarantined(self) -> int:
        """Entries set aside by this run (a version may have several bad values)."""
        return self.manifest.quarantine.rows

    @property
    def left(self) -> list[str]:
        """The tables this run did not finish: an unfinished pass, or not reached."""
        passing = self.manifest.passing()
        return passing + [name for name in self.unread if name not in passing]
