"""The run history, in `totesys_meta.runs`: every run of every writing command is
recorded here, and `totesys runs` and the dashboard list it, newest first.

A run is recorded when it starts and again when it ends, each time on a connection of
its own, so a run that fails (or is locked out) is recorded as surely as one that
succeeds, and one that was killed stays as started and never ended. Recording is
best-effort: a warehouse without the table (not yet `init`ed) just has no history.
A run that is open in the table is running while the warehouse lock is held, and did
not finish otherwise.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict, dataclass, field

from sqlalchemy import Connection, insert, or_, select, text, update

from totesys_cli import errors
from totesys_cli.config.settings import Settings
from totesys_cli.config.urls import Database
from totesys_cli.db import engine, translate_errors
from totesys_cli.errors import EXIT_LOCKED, EXIT_OK
from totesys_cli.observe import logs
from totesys_cli.runtime import LOCK_KEY
from totesys_cli.runtime.endpoints import WAREHOUSE, open_endpoints
from totesys_cli.schemas import META_SCHEMA, RUNS

log = logging.getLogger(__name__)
DID_NOT_FINISH = "did not finish"
RUNNING = "running"

# ---------------------------------------------------------------- recording a run


@dataclass
class RunRecord:
    """What a run did, step by step, as it goes."""

    warehouse: Database | None
    command: str
    stored: bool = False  # its start is in the warehouse, so its end goes there too
    rows: dict[str, dict[str, int]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    lake_runs: dict[str, list[int]] = field(default_factory=dict)

    def step(self, name: str, rows: dict[str, int], seconds: float, runs: list[int]) -> None:
        self.rows[name] = rows
        self.seconds[name] = round(seconds, 3)
        self.lake_runs[name] = runs


def _write(warehouse: Database, statement, level: int) -> bool:
    try:
        with engine(warehouse).connect() as conn:
            if conn.execute(text("SELECT to_regclass('totesys_meta.runs')")).scalar() is None:
                return False
            conn.execute(statement)
            conn.commit()
        return True
    except Exception as err:  # the history never fails a run
        log.log(level, "could not record this run in totesys_meta.runs: %s", err)
        return False


def start(warehouse: Database | None, command: str, max_runtime: float | None) -> RunRecord:
    record = RunRecord(warehouse, command)
    if warehouse is not None:
        started = insert(RUNS).values(
            run_id=logs.run_id(),
            command=command,
            started_at=dt.datetime.now(dt.UTC),
            max_runtime=max_runtime,
        )
        # an unreachable warehouse is reported once, by the lock that follows
        record.stored = _write(warehouse, started, logging.DEBUG)
    return record


def outcome(err: BaseException | None) -> tuple[str, int, str | None]:
    """(outcome, exit code, error line) of a run that ended with `err` (None: succeeded):
    the line and code the command itself ends with (see `errors.told`)."""
    if err is None:
        return "succeeded", EXIT_OK, None
    told = errors.told(err)
    kind = "locked" if told.exit_code == EXIT_LOCKED else "failed"
    return kind, told.exit_code, logs.redact(told.message)


def finish(record: RunRecord, err: BaseException | None) -> None:
    if not record.stored:
        return
    kind, code, error = outcome(err)
    _write(
        record.warehouse,
        update(RUNS)
        .where(RUNS.c.run_id == logs.run_id())
        .values(
            ended_at=dt.datetime.now(dt.UTC),
            outcome=kind,
            exit_code=code,
            error=error,
            rows=record.rows,
            seconds=record.seconds,
            lake_runs=record.lake_runs,
        ),
        logging.WARNING,
    )


# ---------------------------------------------------------------- listing the runs


@dataclass(frozen=True)
class PastRun:
    run_id: str
    command: str
    started_at: dt.datetime
    ended_at: dt.datetime | None
    outcome: str  # succeeded, failed, locked, running, did not finish
    exit_code: int | None
    error: str | None
    rows: dict
    seconds: dict
    lake_runs: dict
    max_runtime: float | None = None  # seconds, the run's deadline

    @property
    def total_rows(self) -> int:
        return sum(sum(tables.values()) for tables in self.rows.values())

    def as_dict(self) -> dict:
        data = asdict(self)
        for name in ("started_at", "ended_at"):
            if data[name] is not None:
                data[name] = data[name].astimezone(dt.UTC).isoformat(timespec="seconds")
        return data


def _lock_held(conn) -> bool:
    """Whether a run holds the warehouse lock now (every recorded run holds it while it
    lives), read from pg_locks without taking it."""
    held = text(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND ((classid::bigint << 32) | objid::bigint) = :key"
    )
    return conn.execute(held, {"key": LOCK_KEY}).scalar_one() > 0


def listing(settings: Settings, limit: int = 20, failed: bool = False) -> list[PastRun]:
    """`totesys runs`: the newest runs; `failed`: only those that failed or did not
    finish."""
    db = open_endpoints(settings, (WAREHOUSE,)).warehouse
    with translate_errors(db), engine(db).connect() as conn:
        return read(conn, limit, failed)


def read(conn: Connection, limit: int = 20, failed: bool = False) -> list[PastRun]:
    """`listing` through an open connection."""
    query = select(RUNS).order_by(RUNS.c.started_at.desc()).limit(limit)
    if failed:
        query = query.where(or_(RUNS.c.outcome == "failed", RUNS.c.outcome.is_(None)))
    if not conn.dialect.has_table(conn, RUNS.name, schema=META_SCHEMA):
        return []
    rows = conn.execute(query).all()
    live = _lock_held(conn)
    newest_open = next((r.run_id for r in rows if r.outcome is None), None) if live else None
    found = [
        PastRun(
            r.run_id,
            r.command,
            r.started_at,
            r.ended_at,
            r.outcome or (RUNNING if r.run_id == newest_open else DID_NOT_FINISH),
            r.exit_code,
            r.error,
            r.rows or {},
            r.seconds or {},
            r.lake_runs or {},
            r.max_runtime,
        )
        for r in rows
    ]
    return [r for r in found if not failed or r.outcome != RUNNING]
