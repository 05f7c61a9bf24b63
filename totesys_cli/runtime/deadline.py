"""The deadline (--max-runtime), checked between units of work, and the hard stop that
ends a run hung past it."""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from sqlalchemy import Connection, text

from totesys_cli.config.urls import Database
from totesys_cli.errors import EXIT_RUNTIME, DeadlinePassed
from totesys_cli.observe import logs

log = logging.getLogger(__name__)

# seconds past the deadline before the process is ended; a test that waits for the hard
# stop shortens it with TOTESYS_HARD_STOP_GRACE (not a setting: no operator needs it)
HARD_STOP_GRACE = float(os.environ.get("TOTESYS_HARD_STOP_GRACE") or 30)

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
