"""init: create the warehouse's tables, indexes, views and bookkeeping if missing."""

from __future__ import annotations

import logging

from sqlalchemy import text

from totesys_cli.config.settings import Settings
from totesys_cli.config.urls import Database
from totesys_cli.db import engine, translate_errors
from totesys_cli.load import references
from totesys_cli.ops.status import source_reads
from totesys_cli.runtime.endpoints import WAREHOUSE, open_endpoints
from totesys_cli.warehouse.shape import create_missing

log = logging.getLogger(__name__)


def init(settings: Settings) -> tuple[list[str], str | None, dict[str, int | None] | None]:
    """`totesys init`: the warehouse of `settings` initialised, what was created; the
    role to grant what lets a run check its facts' foreign keys once, if it lacks it;
    and, when a source is configured, the tables every run will read whole (read-only)."""
    warehouse = open_endpoints(settings, (WAREHOUSE,)).warehouse
    created = init_warehouse(warehouse)
    return created, _checked_per_row(warehouse), source_reads(settings)


def init_warehouse(db: Database) -> list[str]:
    """What was created (nothing on a second run: it is idempotent)."""
    with translate_errors(db), engine(db).begin() as conn:
        created = create_missing(conn)
    for item in created:
        log.info("created %s", item)
    return created


def _checked_per_row(db: Database) -> str | None:
    """The warehouse role, quoted, when it may not turn triggers off: a trigger then
    checks each fact row's foreign keys, key by key; None when a run checks them once."""
    with translate_errors(db), engine(db).connect() as conn:
        if references.may_turn_triggers_off(conn):
            return None
        return conn.execute(text("SELECT quote_ident(current_user)")).scalar_one()
