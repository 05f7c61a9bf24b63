"""The warehouse lock: one writing run at a time, held for the whole run."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from sqlalchemy import Connection, func, select

from totesys_cli.config.urls import Database
from totesys_cli.db import engine, translate_errors
from totesys_cli.errors import LockedError

log = logging.getLogger(__name__)

# one advisory lock key for every writing command: 'totesys' as a 64-bit number
LOCK_KEY = int.from_bytes(b"totesys\x00", "big") >> 1
_held: dict[str, int] = {}


@contextlib.contextmanager
def run_lock(warehouse: Database | None, what: str) -> Iterator[Connection | None]:
    """Hold the warehouse's session advisory lock for the whole run; inside, the lock's
    own connection (autocommit; None without a warehouse, or when this process already
    holds the lock), for the run's checks before it writes.

    Re-entrant inside one process (run-all's own steps never block on it); PostgreSQL
    releases it if the process dies, so a killed run never leaves it behind.
    """
    if warehouse is None:
        log.warning(
            "no warehouse is configured, so this %s takes no lock: a concurrent run is kept "
            "apart by the exclusive manifest create (and lake gc by its grace)",
            what,
        )
        yield None
        return
    key = warehouse.where
    if _held.get(key):
        _held[key] += 1
        try:
            yield None
        finally:
            _held[key] -= 1
        return
    eng = engine(warehouse).execution_options(isolation_level="AUTOCOMMIT")
    with translate_errors(warehouse):  # only the lock's own connection speaks for the warehouse
        conn = eng.connect()
        try:
            got = conn.execute(select(func.pg_try_advisory_lock(LOCK_KEY))).scalar_one()
        except BaseException:
            conn.close()
            raise
    try:
        if not got:
            raise LockedError(
                f"another totesys run holds the warehouse lock, so this {what} did not start",
                "Nothing to do: the running one carries on and the next scheduled run follows",
            )
        _held[key] = 1
        log.debug("took the warehouse lock for this %s", what)
        try:
            yield conn
        finally:
            _held.pop(key, None)
            with contextlib.suppress(Exception):
                conn.execute(select(func.pg_advisory_unlock(LOCK_KEY)))
    finally:
        conn.close()
