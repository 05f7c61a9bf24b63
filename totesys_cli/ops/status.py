"""status: where every part of the pipeline stands, read-only."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy import table as relation
from sqlalchemy.exc import DBAPIError

from totesys_cli.config.settings import Settings
from totesys_cli.config.urls import Database
from totesys_cli.db import LOCK_NOT_AVAILABLE, engine, reading, sqlstate, translate_errors
from totesys_cli.errors import TotesysError
from totesys_cli.extract.window import read_whole
from totesys_cli.lake import manifest as manifests
from totesys_cli.lake.manifest import ProcessedManifest, RawManifest
from totesys_cli.lake.state import Pass
from totesys_cli.ops import deletions, quarantine
from totesys_cli.runtime.endpoints import ALL, SOURCE, open_endpoints
from totesys_cli.schemas import (
    FACTS,
    LOADED_RUNS,
    META_SCHEMA,
    STAR_TABLES,
    latest_view_name,
    star_table,
)

log = logging.getLogger(__name__)

FRESHNESS_LIMIT = dt.timedelta(minutes=30)
SHOWN = 10  # open quarantine entries listed (`totesys quarantine` lists them all)


@dataclass
class Status:
    raw_url: str | None = None
    processed_url: str | None = None
    warehouse: str | None = None
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    # a table whose window is being read over several runs: how far, and how long yet
    passes: dict[str, dict[str, Any]] = field(default_factory=dict)
    last_extract: int | None = None
    last_transform: int | None = None
    not_transformed: list[int] = field(default_factory=list)
    not_loaded: list[int] = field(default_factory=list)
    last_load: dict[str, Any] | None = None
    freshness_seconds: float | None = None
    fresh: bool | None = None
    row_counts: dict[str, int] = field(default_factory=dict)  # a fact's: its versions
    latest_rows: dict[str, int] = field(default_factory=dict)  # a fact's latest versions
    quarantined: int | None = None  # open entries (None: no warehouse)
    quarantine: list[dict[str, Any]] = field(default_factory=list)  # the newest open ones
    # when the source's keys were last compared (every table at once), which finds deletes
    keys_compared: str | None = None
    deleted: dict[str, int] = field(default_factory=dict)  # open deletions per source table
    # the source tables every run reads whole, and their rows (None: no source configured)
    read_whole: dict[str, int | None] | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _stamp(value: dt.datetime | None) -> str | None:
    """ISO 8601 with its offset (every time here is UTC)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat()


def _runs_in(zone, role: str) -> None:
    """A zone that holds no run is often a typo in its URL: say so."""
    if not manifests.latest_seq(zone):
        log.warning(
            "the %s zone %s holds no runs%s",
            role,
            zone.url,
            "" if role == "raw" else " yet",
        )


def status(settings: Settings) -> Status:
    """`totesys status`: what `settings` configures is read; what not, reported as None."""
    endpoints = open_endpoints(settings, optional=ALL)
    result = Status()
    if endpoints.source is not None:
        result.read_whole = source_reads(settings, endpoints.source)
    raw_seq = transformed_raw = processed_seq = 0
    if endpoints.raw is not None:
        result.raw_url = endpoints.raw.url
        _runs_in(endpoints.raw, "raw")
        raw = manifests.latest(endpoints.raw, RawManifest)
        raw_seq = raw.seq if raw else 0
        result.last_extract = raw_seq or None
        result.keys_compared = _stamp(raw.census.time) if raw and raw.census else None
        for table, state in (raw.state if raw else {}).items():
            result.tables[table] = {
                "watermark": _stamp(state.watermark),
                "last_extract": _stamp(state.snapshot),
                "keys_compared": result.keys_compared,  # every table at once
            }
            if state.passing is not None:
                result.passes[table] = _pass(state.passing)
    if endpoints.processed is not None:
        result.processed_url = endpoints.processed.url
        _runs_in(endpoints.processed, "processed")
        processed = manifests.latest(endpoints.processed, ProcessedManifest)
        processed_seq = processed.seq if processed else 0
        result.last_transform = processed_seq or None
        transformed_raw = processed.raw_seq if processed else 0
        result.not_transformed = list(range(transformed_raw + 1, raw_seq + 1))
    if endpoints.warehouse is not None:
        db = endpoints.warehouse
        result.warehouse = db.where
        with translate_errors(db), engine(db).connect() as conn:
            reading(conn)
            loaded = _last_load(conn, result)
            result.quarantined = quarantine.open_count(conn)
            result.quarantine = [e.as_dict() for e in quarantine.entries(conn, limit=SHOWN)]
            result.deleted = deletions.counts(conn)
            result.row_counts, result.latest_rows = _row_counts(conn)
        result.not_loaded = list(range(loaded + 1, processed_seq + 1))
    return result


def source_reads(settings: Settings, db: Database | None = None) -> dict[str, int | None] | None:
    """The source tables every run reads whole (see `extract.window.read_whole`), from
    `db` or the source `settings` configure; None when there is none, or when it cannot
    be read: a WARNING says why, and the command goes on (neither init nor status needs
    the source)."""
    try:
        db = db or open_endpoints(settings, optional=(SOURCE,)).source
        if db is None:
            return None
        with translate_errors(db), engine(db).connect() as conn:
            return read_whole(conn)
    except TotesysError as err:
        log.warning("could not read which source tables every run reads whole: %s", err.message)
        return None


def _pass(passing: Pass) -> dict[str, Any]:
    """An unfinished pass: the share of its key range read, its rows and runs so far,
    and the runs it needs yet at the pace it went."""
    done = passing.done
    left = None if done <= 0 else max(1, round(passing.runs * (1 - done) / done))
    return {
        "percent": round(done * 100, 1),
        "rows": passing.rows,
        "runs": passing.runs,
        "runs_left": left,
        "began": _stamp(passing.snapshot),
    }


def _last_load(conn: Connection, result: Status) -> int:
    """The newest loaded run (0 for none) and the freshness it gives."""
    if not conn.dialect.has_table(conn, LOADED_RUNS.name, schema=META_SCHEMA):
        return 0
    last = conn.execute(select(LOADED_RUNS).order_by(LOADED_RUNS.c.seq.desc()).limit(1)).first()
    if last is None:
        return 0
    result.last_load = {
        "run": last.seq,
        "loaded_at": _stamp(last.loaded_at),
        "snapshot_time": _stamp(last.snapshot_time),
    }
    if last.snapshot_time:
        age = _now() - last.snapshot_time
        result.freshness_seconds = round(age.total_seconds(), 1)
        result.fresh = age <= FRESHNESS_LIMIT
    return last.seq


def _row_counts(conn: Connection) -> tuple[dict[str, int], dict[str, int]]:
    """Rows of every star table (a fact's are its versions), and each fact's latest rows;
    none while a rebuild (or a load reorganising a table) holds them."""
    try:
        return _counted(conn)
    except DBAPIError as err:
        if sqlstate(err.orig) != LOCK_NOT_AVAILABLE:
            raise
        conn.rollback()
        log.warning(
            "the star tables are locked by a rebuild or a load reorganising them: their rows "
            "are not counted (the rest is as of the last committed load)"
        )
        return {}, {}


def _counted(conn: Connection) -> tuple[dict[str, int], dict[str, int]]:
    existing = set(conn.dialect.get_table_names(conn))
    views = set(conn.dialect.get_view_names(conn))
    rows = {
        table: conn.execute(select(func.count()).select_from(star_table(table))).scalar_one()
        for table in STAR_TABLES
        if table in existing
    }
    latest = {
        fact: conn.execute(
            select(func.count()).select_from(relation(latest_view_name(fact)))
        ).scalar_one()
        for fact in FACTS
        if latest_view_name(fact) in views
    }
    return rows, latest
