"""The run history: every run of every writing command, in `totesys_meta.runs`.

A run is recorded when it starts and again when it ends, each time on a connection of
its own, so a run that fails (or is locked out) is recorded as surely as one that
succeeds, and one that was killed stays as started and never ended. Recording is
best-effort: a warehouse without the table (not yet `init`ed) just has no history.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from sqlalchemy import insert, text, update

from totesys_cli import logs
from totesys_cli.db import engine
from totesys_cli.errors import EXIT_LOCKED, EXIT_OK, EXIT_RUNTIME, TotesysError
from totesys_cli.schemas import RUNS
from totesys_cli.settings import Database

log = logging.getLogger(__name__)


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
    """(outcome, exit code, error line) of a run that ended with `err` (None: succeeded)."""
    if err is None:
        return "succeeded", EXIT_OK, None
    if isinstance(err, TotesysError):
        kind = "locked" if err.exit_code == EXIT_LOCKED else "failed"
        return kind, err.exit_code, logs.redact(err.message)
    return "failed", EXIT_RUNTIME, logs.redact(f"unexpected error: {type(err).__name__}: {err}")


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
