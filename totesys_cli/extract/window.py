"""What each table's read takes this run: its change window by last_updated, and
whether it must also take the versions an earlier snapshot did not see.

Without an index on last_updated a run reads the table whole anyway, so it also takes
every version the previous snapshot did not see (a late commit, a value fixed in place
with last_updated left as it was). With one, a run reads its window through the index,
and takes the versions the previous snapshot did not see only when a transaction in
progress then has committed since (its rows may carry any older last_updated); on the
key comparison's cadence (`--deletes-every`) it sweeps: every version written since the
table's last sweep, whatever its last_updated.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from sqlalchemy import Connection

from totesys_cli.db.catalog import estimated_rows, indexed_by
from totesys_cli.extract.options import ExtractOptions
from totesys_cli.extract.source import Snapshot
from totesys_cli.lake import manifest as manifests
from totesys_cli.lake.state import TableState
from totesys_cli.schemas import SOURCE_TABLES

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Window:
    """What a table's read takes: last_updated > lower (None: every row), or written by
    a transaction the snapshot `late` did not see, or last_updated >= since; and, for a
    pass that goes on, only the keys above `after`. A `sweep` reads every version
    written since the table's last sweep, whatever its last_updated."""

    lower: dt.datetime | None
    late: str | None
    since: dt.datetime | None
    after: int | None = None
    sweep: bool = True


@dataclass(frozen=True)
class SourceNow:
    """What the run knows of the source beyond its rows: its snapshot, the tables an
    index on last_updated serves, and which transactions the previous snapshots saw in
    progress have committed since."""

    snapshot: Snapshot
    indexed: set[str]
    committed: set[int]


def window_of(
    previous: TableState | None, options: ExtractOptions, source: SourceNow, name: str
) -> Window:
    """The table's window this run (see the module's docstring); a pass that goes on
    keeps the window it began with."""
    ongoing = previous.passing if previous else None
    if ongoing is not None:
        return Window(ongoing.lower, ongoing.late, ongoing.since, ongoing.after, ongoing.sweep)
    lower = manifests.lower_bound(previous, options.overlap)
    if previous is None or lower is None:
        return Window(None, None, options.since)  # every row
    now = source.snapshot
    every = options.deletes.every
    if name not in source.indexed or not previous.swept or now.time - previous.swept >= every:
        against = previous.swept_xids or previous.xids
        return Window(lower, _late_since(against, now.xids, name), options.since)
    running = previous.running
    late = running is None or not source.committed.isdisjoint(running)
    against = _late_since(previous.xids, now.xids, name) if late else None
    return Window(lower, against, options.since, sweep=False)


# the age(xmin) test that keeps the late-commit read cheap works within 2^31 transactions
_XID_REACH = 2**31 - 2**20


def _late_since(before: str | None, xids: str, name: str) -> str | None:
    """An earlier snapshot's transactions, when this one can be compared with it. When
    the source's transaction counter went backwards (a restore, a failover to a new
    cluster) or ran too far, the window is by last_updated alone, with a WARNING."""
    if before is None:
        return None
    before_xmin, before_xmax = (int(x) for x in before.split(":")[:2])
    now_xmax = int(xids.split(":")[1])
    if now_xmax < before_xmax or now_xmax - before_xmin > _XID_REACH:
        log.warning(
            "the source's transaction counter %s since the last extract of %s (%s, now %s): "
            "a restore or a failover to another cluster? This run reads it by last_updated "
            "alone, so a row committed later than the overlap after it was written is missed",
            "went backwards" if now_xmax < before_xmax else "moved more than 2^31",
            name,
            before,
            xids,
            extra={"table": name},
        )
        return None
    return before


def indexed(conn: Connection, tables: tuple[str, ...]) -> set[str]:
    """Which of these tables an index on last_updated serves."""
    return indexed_by(conn, list(tables), "last_updated")


def read_whole(conn: Connection) -> dict[str, int | None]:
    """The source tables every run reads whole, as no index on last_updated serves
    their window, with the planner's estimate of their rows (None: never analyzed),
    largest first."""
    tables = list(SOURCE_TABLES)
    served = indexed(conn, tuple(tables))
    rows = {t: int(n) if n >= 0 else None for t, n in estimated_rows(conn, tables).items()}
    whole = [t for t in tables if t not in served]
    return {t: rows.get(t) for t in sorted(whole, key=lambda t: -(rows.get(t) or 0))}


# a table this small costs as little read whole as through an index
_SMALL = 10_000


def worth_an_index(whole: dict[str, int | None]) -> list[str]:
    """For each table read whole that is big enough for it to matter (as far as the
    planner knows), the index that lets a run read its changes only, built without
    blocking the application's writes."""
    return [
        f"CREATE INDEX CONCURRENTLY {table}_last_updated ON {table} (last_updated);"
        for table, rows in whole.items()
        if rows is not None and rows >= _SMALL
    ]
