"""Load: processed runs -> the warehouse, each exactly once, each in one transaction.

A run's star tables are applied in order (the calendar, the dimensions, the facts; see
`tables` and `apply`), then the record that the run was loaded, all in one
transaction. The loaded runs recorded in the warehouse alone decide what is pending.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field

from sqlalchemy import Connection, func, insert, select, text, update

from totesys_cli import faults
from totesys_cli.config.settings import envvar
from totesys_cli.config.urls import Database
from totesys_cli.db import engine, translate_errors
from totesys_cli.errors import ConfigError, RuntimeFailure
from totesys_cli.lake import Lake, zone
from totesys_cli.lake import manifest as manifests
from totesys_cli.lake.manifest import ProcessedManifest
from totesys_cli.load import deletions, quarantine
from totesys_cli.load.references import bulk_facts, checked_at_the_end
from totesys_cli.load.tables import load_table
from totesys_cli.observe import memory, progress
from totesys_cli.runtime import Deadline
from totesys_cli.schemas import (
    FACTS,
    LINEAGE,
    LOADED_RUNS,
    META,
    QUARANTINE,
    RUNS,
    STAR_TABLES,
    star,
)
from totesys_cli.warehouse import upkeep
from totesys_cli.warehouse.shape import check_tables, check_warehouse, ensure_meta, record_lineage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadOptions:
    since: dt.datetime | None = None
    # seconds after which no new processed run starts loading (None: load them all); the
    # next run goes on with the rest
    budget: float | None = None
    # the run has already committed progress (an extract or a transform), so a deadline
    # that passes while a processed run is loaded rolls that run back and ends the load
    # with it waiting for the next run, as it does once this load has loaded a run
    progressed: bool = False


@dataclass
class RunLoad:
    seq: int
    rows: dict[str, int] = field(default_factory=dict)
    changed: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    reload: bool = False
    quarantined: int = 0  # entries newly recorded in the warehouse
    deleted: int = 0  # deletions newly recorded


@dataclass
class LoadResult:
    runs: list[RunLoad]
    seconds: float
    waiting: int = 0  # processed runs left for the next run
    stopped: bool = False  # the deadline passed while a processed run was loaded

    @property
    def rows(self) -> int:
        return sum(sum(r.changed.values()) for r in self.runs)


def load_run(
    conn: Connection,
    processed: Lake,
    manifest: ProcessedManifest,
    reload: bool,
    deadline: Deadline,
) -> RunLoad:
    """Apply one processed run inside the caller's transaction."""
    result = RunLoad(manifest.seq, reload=reload)
    # a reload or a --since reprocess carries versions read before, perhaps of keys
    # deleted since; any other run read its versions from the source after every run
    # before it, so a deleted key it brings is in the source again
    replayed = reload or manifest.since is not None
    started = time.perf_counter()
    tables = manifest.tables
    bulk = bulk_facts(conn, {f: tables[f].rows if f in tables else 0 for f in FACTS})
    rows_in = sum(t.rows for t in tables.values())
    with (
        checked_at_the_end(conn, bulk, deadline),
        progress.bar(f"load run {manifest.seq}", rows_in, "rows") as applied,
    ):
        for table in STAR_TABLES:  # declared in load order: calendar, dimensions, facts
            files = tables.get(table)
            if files and files.keys:
                deadline.limit(conn)
                began = time.perf_counter()
                rows, changed = load_table(conn, processed, table, files, deadline, replayed)
                memory.release()
                result.rows[table], result.changed[table] = rows, changed
                applied(rows)
                log.debug(
                    "applied %s",
                    table,
                    extra={
                        "table": table,
                        "rows": rows,
                        "changed": changed,
                        "seconds": round(time.perf_counter() - began, 3),
                    },
                )
    deadline.limit(conn)
    deletions.end(conn, processed, manifest, replayed)
    result.deleted = deletions.record(conn, processed, manifest)
    result.quarantined = quarantine.record(conn, processed, manifest)
    _record(conn, manifest, sum(result.rows.values()), reload)
    if (identity := zone.identity(processed)) is not None:
        record_lineage(conn, identity.id, processed.url)
    faults.point("load.before_commit")
    result.seconds = time.perf_counter() - started
    return result


def _record(conn: Connection, manifest: ProcessedManifest, rows: int, reload: bool) -> None:
    if reload:
        conn.execute(
            update(LOADED_RUNS)
            .where(LOADED_RUNS.c.seq == manifest.seq)
            .values(reloaded_at=func.now())
        )
        return
    conn.execute(
        insert(LOADED_RUNS).values(
            seq=manifest.seq,
            run_id=manifest.run_id,
            snapshot_time=manifest.snapshot_time,
            min_last_updated=manifest.min_last_updated,
            max_last_updated=manifest.max_last_updated,
            rows=rows,
        )
    )


def last_loaded(conn: Connection) -> int:
    """The newest processed run the warehouse has loaded (0: none)."""
    return conn.execute(select(func.coalesce(func.max(LOADED_RUNS.c.seq), 0))).scalar_one()


def _pending(
    conn: Connection, processed: Lake, since: dt.datetime | None
) -> list[tuple[int, str, bool]]:
    """(seq, manifest key, reload) in load order."""
    loaded = last_loaded(conn)
    runs = []
    if since is not None:
        # reload the loaded runs whose data reaches back to T
        reaching = set(
            conn.execute(
                select(LOADED_RUNS.c.seq).where(LOADED_RUNS.c.max_last_updated >= since)
            ).scalars()
        )
        runs += [
            (seq, key, True)
            for seq, key in manifests.manifests_after(processed, 0)
            if seq in reaching
        ]
    runs += [(seq, key, False) for seq, key in manifests.manifests_after(processed, loaded)]
    return runs


def check_ready(warehouse: Database, conn: Connection) -> None:
    """Whether the warehouse has every star table, asked (on the lock's connection)
    before a run extracts anything: a schedule that starts before `totesys init` says so
    at once, not in its load (which checks every column too, in its own transaction)."""
    with translate_errors(warehouse):
        check_tables(conn)


# what a rebuild empties row by row, so that readers (status, quarantine) still answer
# from the rows as they were until it commits; the run history it keeps
_READ_WHILE_REBUILT = (LOADED_RUNS, QUARANTINE, LINEAGE)
_KEPT = (RUNS,)


def rebuild(
    warehouse: Database, processed: Lake, deadline: Deadline, allow_empty: bool = False
) -> LoadResult:
    """Empty the warehouse and load every run of this processed zone, in one
    transaction: it ends loaded from this lake, or, on any failure, as it was. A zone
    with no committed run would only empty the warehouse (a typo in the lake's URL):
    refused unless `allow_empty`."""
    started = time.perf_counter()
    runs = manifests.manifests_after(processed, 0)
    if not runs and not allow_empty:
        raise ConfigError(
            f"the processed zone {processed.url} holds no committed run, so a rebuild "
            "would leave every star table empty",
            f"Check {envvar('lake_url')} (or {envvar('processed_url')}); to empty the "
            "warehouse on purpose, give --allow-empty",
        )
    warehouse = deadline.bound(warehouse)
    done: list[RunLoad] = []
    with translate_errors(warehouse), engine(warehouse).connect() as conn:
        check_warehouse(conn)
        ensure_meta(conn)
        conn.commit()
        skipped = {t.name for t in (*_READ_WHILE_REBUILT, *_KEPT)}
        emptied = [
            *(star(t).table for t in STAR_TABLES),
            *(t for t in META.sorted_tables if t.name not in skipped),
        ]
        with conn.begin():
            for table in _READ_WHILE_REBUILT:
                conn.execute(table.delete())
            conn.execute(text(f"TRUNCATE {', '.join(_quoted(t) for t in emptied)}"))
            for _, key in runs:
                manifest = manifests.read(processed, key, ProcessedManifest)
                done.append(load_run(conn, processed, manifest, False, deadline))
    result = LoadResult(done, time.perf_counter() - started)
    log.info(
        "rebuilt the warehouse from %d processed runs of %s",
        len(done),
        processed.url,
        extra={"rows": result.rows, "seconds": round(result.seconds, 3)},
    )
    return result


def _quoted(table) -> str:
    name = f'"{table.name}"'
    return f'"{table.schema}".{name}' if table.schema else name


def load(
    warehouse: Database, processed: Lake, options: LoadOptions, deadline: Deadline
) -> LoadResult:
    started = time.perf_counter()
    processed.check(create=False)
    warehouse = deadline.bound(warehouse)
    done: list[RunLoad] = []
    with translate_errors(warehouse), engine(warehouse).connect() as conn:
        check_warehouse(conn)
        ensure_meta(conn)
        pending = _pending(conn, processed, options.since)
        conn.commit()
        stopped = False
        for _, key, reload in pending:
            spent = options.budget is not None and time.perf_counter() - started >= options.budget
            if done and spent:
                log.info("the load's share of the deadline is spent: the next run goes on")
                break
            manifest = manifests.read(processed, key, ProcessedManifest)
            try:
                with conn.begin():
                    result = load_run(conn, processed, manifest, reload, deadline)
            except Exception as err:  # a deadline check, or a statement cut off at it
                if not ((done or options.progressed) and deadline.passed()):
                    raise
                log.warning(
                    "the run reached its --max-runtime of %g s while loading processed run "
                    "%d (%s): the run was rolled back and the next run loads it",
                    deadline.seconds,
                    manifest.seq,
                    err.message if isinstance(err, RuntimeFailure) else "a statement cut off",
                )
                stopped = True
                break
            faults.point("load.after_commit")
            done.append(result)
            log.info(
                "%s processed run %d",
                "reloaded" if reload else "loaded",
                result.seq,
                extra={"rows": sum(result.changed.values()), "seconds": round(result.seconds, 3)},
            )
        if any(r.reload for r in done):
            _summed_again(conn, done)
    waiting = len(pending) - len(done)
    return LoadResult(done, time.perf_counter() - started, waiting, stopped)


def _summed_again(conn: Connection, done: list[RunLoad]) -> None:
    """A reload repairs facts someone changed outside the load, which the summaries
    never followed: the reloaded facts' summaries are summed again from the facts."""
    reloaded = [f for f in FACTS if any(r.reload and f in r.rows for r in done)]
    with conn.begin():
        for fact in reloaded:
            upkeep.sum_whole(conn, fact)
