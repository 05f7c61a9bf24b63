"""init: create the warehouse's tables, indexes, views and bookkeeping if missing."""

from __future__ import annotations

import logging

from totesys_cli.db import engine, translate_errors
from totesys_cli.db.warehouse import create_missing
from totesys_cli.settings import Database

log = logging.getLogger(__name__)


def init_warehouse(db: Database) -> list[str]:
    """What was created (nothing on a second run: it is idempotent)."""
    with translate_errors(db), engine(db).begin() as conn:
        created = create_missing(conn)
    for item in created:
        log.info("created %s", item)
    return created
