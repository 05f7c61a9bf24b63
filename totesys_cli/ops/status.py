"""status: where every part of the pipeline stands, read-only."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Connection, func, select

from totesys_cli.db import engine, translate_errors
from totesys_cli.endpoints import Endpoints
from totesys_cli.lake import manifest as manifests
from totesys_cli.lake.manifest import ProcessedManifest, RawManifest
from totesys_cli.ops import quarantine
from totesys_cli.schemas import LOADED_RUNS, META_SCHEMA, STAR_TABLES, star_table

FRESHNESS_LIMIT = dt.timedelta(minutes=30)
SHOWN = 10  # open quarantine entries listed (`totesys quarantine` lists them all)


@dataclass
class Status:
    raw_url: str | None = None
    processed_url: str | None = None
    warehouse: str | None = None
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    last_extract: int | None = None
    last_transform: int | None = None
    not_transformed: list[int] = field(default_factory=list)
    not_loaded: list[int] = field(default_factory=list)
    last_load: dict[str, Any] | None = None
    freshness_seconds: float | None = None
    fresh: bool | None = None
    row_counts: dict[str, int] = field(default_factory=dict)
    quarantined: int | None = None  # open entries (None: no warehouse)
    quarantine: list[dict[str, Any]] = field(default_factory=list)  # the newest open ones

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _stamp(value: dt.datetime | None) -> str | None:
    return value.isoformat(sep=" ") if value is not None else None


def status(endpoints: Endpoints) -> Status:
    """What is configured is read; what is not is reported as None."""
    result = Status()
    raw_seq = transformed_raw = processed_seq = 0
    if endpoints.raw is not None:
        result.raw_url = endpoints.raw.url
        raw = manifests.latest(endpoints.raw, RawManifest)
        raw_seq = raw.seq if raw else 0
        result.last_extract = raw_seq or None
        for table, state in (raw.state if raw else {}).items():
            result.tables[table] = {
                "watermark": _stamp(state.watermark),
                "last_extract": _stamp(state.snapshot),
            }
    if endpoints.processed is not None:
        result.processed_url = endpoints.processed.url
        processed = manifests.latest(endpoints.processed, ProcessedManifest)
        processed_seq = processed.seq if processed else 0
        result.last_transform = processed_seq or None
        transformed_raw = processed.raw_seq if processed else 0
        result.not_transformed = list(range(transformed_raw + 1, raw_seq + 1))
    if endpoints.warehouse is not None:
        db = endpoints.warehouse
        result.warehouse = db.where
        with translate_errors(db), engine(db).connect() as conn:
            loaded = _last_load(conn, result)
            result.row_counts = _row_counts(conn)
            result.quarantined = quarantine.open_count(conn)
            result.quarantine = [e.as_dict() for e in quarantine.entries(conn, limit=SHOWN)]
        result.not_loaded = list(range(loaded + 1, processed_seq + 1))
    return result


def _last_load(conn: Connection, result: Status) -> int:
    """The newest loaded run (0 for none) and the freshness it gives."""
    if not conn.dialect.has_table(conn, LOADED_RUNS.name, schema=META_SCHEMA):
        return 0
    last = conn.execute(select(LOADED_RUNS).order_by(LOADED_RUNS.c.seq.desc()).limit(1)).first()
    if last is None:
        return 0
    result.last_load = {
        "run": last.seq,
        "loaded_at": last.loaded_at.astimezone(dt.UTC)
        .replace(tzinfo=None)
        .isoformat(sep=" ", timespec="seconds"),
        "snapshot_time": _stamp(last.snapshot_time),
    }
    if last.snapshot_time:
        age = _now() - last.snapshot_time
        result.freshness_seconds = round(age.total_seconds(), 1)
        result.fresh = age <= FRESHNESS_LIMIT
    return last.seq


def _row_counts(conn: Connection) -> dict[str, int]:
    existing = set(conn.dialect.get_table_names(conn))
    return {
        table: conn.execute(select(func.count()).select_from(star_table(table))).scalar_one()
        for table in STAR_TABLES
        if table in existing
    }
