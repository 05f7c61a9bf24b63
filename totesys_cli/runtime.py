"""What every writing run shares: the warehouse lock, the deadline and the hard stop."""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from sqlalchemy import Connection, func, select, text

from totesys_cli import logs
from totesys_cli.db import engine, translate_errors
from totesys_cli.errors import EXIT_RUNTIME, DeadlinePassed, LockedError
from totesys_cli.settings import HARD_STOP_GRACE, Database

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


# statement_timeout is in milliseconds; 0 is none
_LIMIT = text(
    "SELECT set_config('statement_timeout', CASE WHEN setting::bigint = 0 THEN :ms"
    " ELSE least(setting::bigint, :ms) END::text, true)"
    " FROM pg_settings WHERE name = 'statement_timeout'"
)


@dataclass
class Deadline:
    """The whole-run time limit (--max-runtime), checked between units of work."""

    seconds: float | None
    started: float = field(default_factory=time.monotonic)

    def remaining(self) -> float | None:
        if self.seconds is None:
            return None
        return self.seconds - (time.monotonic() - self.started)

    def check(self, doing: str) -> None:
        left = self.remaining()
        if left is not None and left <= 0:
            raise DeadlinePassed(
                f"the run passed its --max-runtime of {self.seconds:g} s while {doing}",
                "Nothing was committed for the unfinished part; the next run continues",
            )

    def passed(self) -> bool:
        """Whether the deadline has passed (within the second a statement timeout set
        to it ends)."""
        left = self.remaining()
        return left is not None and left < 1.0

    def limit(self, conn: Connection) -> None:
        """Cut the statement timeout of `conn`'s transaction to the time left, so that
        no statement started late runs past the deadline (never raising it: the
        connection's own timeout still holds when it is shorter)."""
        left = self.remaining()
        if left is not None:
            self.check("starting a statement")
            conn.execute(_LIMIT, {"ms": max(int(left * 1000), 1000)})

    def bound(self, db: Database) -> Database:
        """The database with its statement timeout cut to the time this run has left."""
        left = self.remaining()
        if left is None or left >= db.statement_timeout:
            return db
        self.check("connecting")
        return replace(db, statement_timeout=max(left, 1.0))


@contextlib.contextmanager
def hard_stop(deadline: Deadline) -> Iterator[None]:
    """A hung call cannot outlive the deadline: past it (and a grace), the process ends.
    PostgreSQL then releases the lock, and nothing half-written was committed. The
    timer is cancelled when the run returns, so a process that carries on (a test, a
    library caller) is never ended by it."""
    if deadline.seconds is None:
        yield
        return

    def expire() -> None:
        log.error(
            "the run passed its --max-runtime of %g s and did not stop; exiting", deadline.seconds
        )
        logs.shutdown()
        os._exit(EXIT_RUNTIME)

    # the timer's thread logs with this run's id and step, so the line alarms as the step's
    timer = threading.Timer(
        deadline.seconds + HARD_STOP_GRACE, contextvars.copy_context().run, (expire,)
    )
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        timer.join()
