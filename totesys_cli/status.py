"""status: where every part of the pipeline stands, read-only."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import func, select

from totesys_cli import lake as lakes
from totesys_cli.db import engine, translate_errors
from totesys_cli.schemas import LOADED_RUNS, META_SCHEMA, STAR_TABLES, star_table
from totesys_cli.settings import Settings

FRESHNESS_LIMIT = dt.timedelta(minutes=30)


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

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def status(settings: Settings) -> Status:
    """What is configured is read; what is not is reported as None."""
    result = Status(raw_url=settings.raw_url, processed_url=settings.processed_url)
    raw_seq, transformed_raw = 0, 0
    if settings.raw_url:
        raw = settings.raw_lake()
        raw_seq, manifest = lakes.latest_manifest(raw)
        result.last_extract = raw_seq or None
        for table, state in (manifest or {}).get("state", {}).items():
            result.tables[table] = {
                "watermark": state.get("watermark"),
                "last_extract": state.get("snapshot"),
            }
    processed_seq = 0
    if settings.processed_url:
        processed = settings.processed_lake()
        processed_seq, manifest = lakes.latest_manifest(processed)
        result.last_transform = processed_seq or None
        transformed_raw = (manifest or {}).get("state", {}).get("raw_seq", 0)
        result.not_transformed = list(range(transformed_raw + 1, raw_seq + 1))
    if settings.warehouse is not None:
        db = settings.warehouse
        result.warehouse = db.where
        with translate_errors(db), engine(db).connect() as conn:
            loaded = 0
            if conn.dialect.has_table(conn, LOADED_RUNS.name, schema=META_SCHEMA):
                last = conn.execute(
                    select(LOADED_RUNS).order_by(LOADED_RUNS.c.seq.desc()).limit(1)
                ).first()
                if last is not None:
                    loaded = last.seq
                    result.last_load = {
                        "run": last.seq,
                        "loaded_at": last.loaded_at.astimezone(dt.UTC)
                        .replace(tzinfo=None)
                        .isoformat(sep=" ", timespec="seconds"),
                        "snapshot_time": last.snapshot_time.isoformat(sep=" ")
                        if last.snapshot_time
                        else None,
                    }
                    if last.snapshot_time:
                        age = _now() - last.snapshot_time
                        result.freshness_seconds = round(age.total_seconds(), 1)
                        result.fresh = age <= FRESHNESS_LIMIT
            existing = set(conn.dialect.get_table_names(conn))
            for table in STAR_TABLES:
                if table in existing:
                    result.row_counts[table] = conn.execute(
                        select(func.count()).select_from(star_table(table))
                    ).scalar_one()
            result.not_loaded = list(range(loaded + 1, processed_seq + 1))
    return result
