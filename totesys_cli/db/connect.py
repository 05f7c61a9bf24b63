"""Connections to PostgreSQL through pg8000, with timeouts and errors a user can act on."""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Iterator

import pg8000.dbapi
from sqlalchemy import Engine, create_engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.pool import NullPool, QueuePool

from totesys_cli.config.urls import Database
from totesys_cli.db import driver
from totesys_cli.errors import ConfigError, RuntimeFailure, TotesysError

# SQLSTATEs that mean "your settings are wrong", not "try again later"
_CONFIG_STATES = {
    "28P01": "wrong user or password",
    "28000": "the server rejected this user",
    "3D000": "the database does not exist",
}


def _ssl_context(db: Database) -> ssl.SSLContext | bool | None:
    """TLS as libpq's sslmode means it; verify-ca and verify-full trust `sslrootcert`
    when given (the RDS bundle, say), else the system's certificate authorities."""
    mode = db.sslmode
    if db.unix_sock or mode in ("disable", "allow"):
        return False
    if mode == "require":
        return True  # encrypt without verifying, as libpq's sslmode=require does
    if mode in ("verify-ca", "verify-full"):
        try:
            context = ssl.create_default_context(cafile=db.sslrootcert)
        except OSError as err:
            raise ConfigError(
                f"cannot read the {db.role} database's sslrootcert {db.sslrootcert}: "
                f"{err.strerror or err}",
                f"Check {db.envvar}",
            ) from None
        context.check_hostname = mode == "verify-full"
        return context
    return None  # prefer: TLS when the server offers it


def _connect(db: Database) -> pg8000.dbapi.Connection:
    """Connect and authenticate within the connect timeout, then allow long quiet reads
    (big statements): a server that accepts but never answers cannot hold a run."""
    url = db.url
    sock = None
    if not db.unix_sock:
        sock = socket.create_connection(
            (url.host or "localhost", url.port or 5432), timeout=db.connect_timeout
        )
    raw = pg8000.dbapi.connect(
        user=url.username or "postgres",
        password=url.password,
        database=url.database,
        host=url.host or "localhost",
        unix_sock=db.unix_sock,
        sock=sock,
        ssl_context=_ssl_context(db),
        timeout=db.connect_timeout,
        application_name="totesys",
        startup_params={
            "statement_timeout": str(int(db.statement_timeout * 1000)),
            "idle_in_transaction_session_timeout": str(int(db.statement_timeout * 2000)),
            "TimeZone": "UTC",
        },
    )
    driver.set_read_timeout(raw, db.statement_timeout + 60)
    return raw


# seconds a reader (status, verify) waits for a table lock before it gives up on it, with
# this SQLSTATE
READ_WAIT = 3
LOCK_NOT_AVAILABLE = "55P03"


def connection_error(db: Database, err: BaseException) -> TotesysError:
    """Turn a driver failure into one clear line naming the database, never its password."""
    orig = err.orig if isinstance(err, DBAPIError) else err
    hint = f"Check {db.envvar}"
    state = sqlstate(orig)
    if state in _CONFIG_STATES:
        return ConfigError(
            f"cannot connect to the {db.role} database at {db.where}: {_CONFIG_STATES[state]}", hint
        )
    if state == LOCK_NOT_AVAILABLE:
        return RuntimeFailure(
            f"a table of the {db.role} database at {db.where} is locked by another session "
            "(a rebuild, or a load reorganising it), so this read gave up",
            "Try again when it has finished (totesys runs lists what is running)",
        )
    if state == "57014":
        return RuntimeFailure(
            f"a statement on the {db.role} database at {db.where} ran past its time limit "
            "(--max-runtime, or the 5-minute statement timeout)",
            "Look for locks or load on that database; the next run continues",
        )
    if state:
        return RuntimeFailure(
            f"the {db.role} database at {db.where} failed: {_server_message(orig)}", hint
        )
    cause = orig.__cause__ or orig
    if db.url.password is None and "no password" in str(cause):
        return _no_password(db)
    if isinstance(cause, ssl.SSLCertVerificationError):
        return ConfigError(
            f"the {db.role} database at {db.where} presented a certificate that cannot be "
            f"verified: {cause.verify_message}",
            f"Check sslmode and sslrootcert in {db.envvar}",
        )
    reason = cause.strerror if isinstance(cause, OSError) and cause.strerror else str(cause)
    if isinstance(cause, TimeoutError | socket.timeout):
        reason = "timed out"
    return RuntimeFailure(f"cannot reach the {db.role} database at {db.where}: {reason}", hint)


def _server_error(err: BaseException | None) -> dict | None:
    """The server's error fields, even when pg8000 hid them behind a failed close()."""
    while err is not None:
        args = getattr(err, "args", ())
        if args and isinstance(args[0], dict):
            return args[0]
        err = err.__cause__ or err.__context__
    return None


def sqlstate(err: BaseException) -> str | None:
    fields = _server_error(err)
    return fields.get("C") if fields else None


def _server_message(err: BaseException) -> str:
    fields = _server_error(err)
    return str(fields.get("M", err)) if fields else str(err)


def _no_password(db: Database) -> ConfigError:
    return ConfigError(
        f"cannot connect to the {db.role} database at {db.where}: it asks for a password "
        "and none was given",
        f"Give the password in {db.envvar}, or its secret",
    )


def reading(conn) -> None:
    """A reader waits for a table lock at most READ_WAIT seconds: a rebuild holds the star
    tables until it commits, and a reader must answer meanwhile, not hang."""
    conn.exec_driver_sql(f"SET lock_timeout = '{READ_WAIT}s'")


def engine(db: Database, pool: int = 0, wait: float = 10.0) -> Engine:
    """Without `pool`, an engine without a pool: each run opens few connections and must
    leave none behind. With it, a long-lived server's engine that never holds more than
    `pool` connections, whatever the number of callers: a caller waits at most `wait`
    seconds for one, then fails in one line."""

    def creator() -> pg8000.dbapi.Connection:
        try:
            return _connect(db)
        except (OSError, pg8000.dbapi.Error) as err:
            raise connection_error(db, err) from None
        except AttributeError:  # pg8000 starts SCRAM with a password of None
            if db.url.password is not None:
                raise
            raise _no_password(db) from None

    if not pool:
        return create_engine("postgresql+pg8000://", creator=creator, poolclass=NullPool)
    return create_engine(
        "postgresql+pg8000://",
        creator=creator,
        poolclass=QueuePool,
        pool_size=pool,
        max_overflow=0,
        pool_timeout=wait,
        pool_pre_ping=True,  # a connection the server dropped is replaced, not handed out
        pool_recycle=3600,
    )


@contextlib.contextmanager
def translate_errors(db: Database) -> Iterator[None]:
    """Inside this block any driver error becomes a TotesysError about `db`."""
    try:
        yield
    except (DBAPIError, pg8000.dbapi.Error) as err:  # raw errors come from COPY
        raise connection_error(db, err) from None
    except PoolTimeout:
        raise RuntimeFailure(
            f"every pooled connection to the {db.role} database at {db.where} stayed busy",
            "Try again in a moment",
        ) from None
