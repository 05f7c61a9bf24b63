"""The run history as `totesys runs` shows it: newest first, what each run did and how
it ended (see `history` for how runs are recorded)."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass

from sqlalchemy import Connection, or_, select, text

from totesys_cli.db import engine, translate_errors
from totesys_cli.runtime import LOCK_KEY
from totesys_cli.schemas import META_SCHEMA, RUNS
from totesys_cli.settings import Database

DID_NOT_FINISH = "did not finish"
RUNNING = "running"


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


def listing(db: Database, limit: int = 20, failed: bool = False) -> list[PastRun]:
    """The newest runs; `failed`: only those that failed or did not finish."""
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
