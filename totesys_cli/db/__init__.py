"""PostgreSQL: connections with timeouts and errors a user can act on, COPY, the catalog."""

from totesys_cli.db.connect import (
    LOCK_NOT_AVAILABLE,
    connection_error,
    engine,
    reading,
    sqlstate,
    translate_errors,
)

__all__ = [
    "LOCK_NOT_AVAILABLE",
    "connection_error",
    "engine",
    "reading",
    "sqlstate",
    "translate_errors",
]
