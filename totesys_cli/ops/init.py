"""init: create the warehouse's tables, indexes, views and bookkeeping if missing."""

from __future__ import annotations

import logging

from totesys_cli.config.settings import Settings
from totesys_cli.config.urls import Database
from totesys_cli.db import engine, translate_errors
from totesys_cli.ops.status import source_reads
from totesys_cli.runtime.endpoints import WAREHOUSE, open_endpoints
from totesys_cli.warehouse.shape import create_missing

log = logging.getLogger(__name__)


def init(settings: Settings) -> tuple[list[str], dict[str, int | None] | None]:
    """`totesys init`: the warehouse of `settings` initialised, what was created; and,
    when a source is configured, the tables every run will read whole (read-only)."""
    created = init_warehouse(open_endpoints(settings, (WAREHOUSE,)).warehouse)
    return created, source_reads(settings)


def init_warehouse(db: Database) -> list[str]:
    """What was created (nothing on a second run: it is idempotent)."""
    with translate_errors(db), engine(db).begin() as conn:
        created = create_missing(conn)
    for item in created:
        log.info("created %s", item)
    return created
