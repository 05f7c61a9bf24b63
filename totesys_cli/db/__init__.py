"""PostgreSQL: connections with timeouts and errors a user can act on, COPY, the catalog."""

from totesys_cli.db.connect import (
    connection_error,
    engine,
    reading,
    sqlstate,
    translate_errors,
)

__all__ = ["connection_error", "engine", "reading", "sqlstate", "translate_errors"]
