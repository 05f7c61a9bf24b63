"""One typed settings object, resolved once: pure values, no I/O.

Every setting is declared once below, with its environment variable and default; the
CLI builds its options from these declarations, and `endpoints` turns the settings
into databases and lake zones. Parsing (database URLs, `--since`) happens here, so a
malformed value fails before anything is opened. Heavy libraries are imported inside
functions: the CLI reads this module to draw `--help`.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from totesys_cli.errors import ConfigError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

DEFAULT_MAX_RUNTIME = 540  # seconds, under the 10-minute schedule
# seconds past the deadline before the process is ended; a test that waits for the hard
# stop shortens it with TOTESYS_HARD_STOP_GRACE (not a setting: no operator needs it)
HARD_STOP_GRACE = float(os.environ.get("TOTESYS_HARD_STOP_GRACE") or 30)
DEFAULT_OVERLAP_MINUTES = 15
DEFAULT_BATCH_ROWS = 250_000
MIN_BATCH_ROWS = 100
# key values per range when a run has a budget: a range takes seconds, so the run stops
# close to its budget; a table with fewer keys is one range (one COPY), as every table
# of the benchmark dataset is
DEFAULT_RANGE_ROWS = 2_000_000
DEFAULT_GRACE_HOURS = 24
DEFAULT_EARLIEST_DATE = dt.date(1900, 1, 1)
DEFAULT_LATEST_DATE = dt.date(2100, 12, 31)
DEFAULT_CLOCK_SKEW_MINUTES = 5
DEFAULT_DELETES_EVERY_MINUTES = 60  # a comparison of keys reads every primary key
DEFAULT_MASS_DELETE_PERCENT = 5.0
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("text", "json")
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
URL_PARAMETERS = ("sslmode", "sslrootcert", "unix_sock", "connect_timeout")
DEFAULT_CONNECT_TIMEOUT = 10.0  # seconds to connect and log in
ROLES = ("source", "warehouse")


@dataclass(frozen=True)
class Setting:
    """One setting: the option `--name` (underscores as dashes) and its variable."""

    name: str
    envvar: str
    help: str
    default: Any = None


SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in (
        Setting(
            "source_url",
            "TOTESYS_SOURCE_URL",
            "The source database, a SQLAlchemy URL (postgresql://user:pw@host:5432/db).",
        ),
        Setting("source_secret", "TOTESYS_SOURCE_SECRET", "Secrets Manager id or ARN instead."),
        Setting(
            "warehouse_url",
            "TOTESYS_WAREHOUSE_URL",
            "The warehouse database, a SQLAlchemy URL (postgresql://user:pw@host:5432/db).",
        ),
        Setting(
            "warehouse_secret", "TOTESYS_WAREHOUSE_SECRET", "Secrets Manager id or ARN instead."
        ),
        Setting(
            "lake_url", "TOTESYS_LAKE_URL", "s3://bucket/prefix or a folder holding both zones."
        ),
        Setting("raw_url", "TOTESYS_RAW_URL", "The raw zone, if apart from the processed zone."),
        Setting("processed_url", "TOTESYS_PROCESSED_URL", "The processed zone, if apart."),
        Setting(
            "max_runtime",
            "TOTESYS_MAX_RUNTIME",
            "Seconds the whole run may take (under the 10-minute schedule).",
            DEFAULT_MAX_RUNTIME,
        ),
        Setting(
            "overlap",
            "TOTESYS_OVERLAP_MINUTES",
            "Minutes re-read behind the last snapshot, for rows committed late.",
            DEFAULT_OVERLAP_MINUTES,
        ),
        Setting(
            "batch_rows",
            "TOTESYS_BATCH_ROWS",
            "Rows per extracted file; bounds memory.",
            DEFAULT_BATCH_ROWS,
        ),
        Setting(
            "range_rows",
            "TOTESYS_RANGE_ROWS",
            "Keys per range when a big window is read over several runs.",
            DEFAULT_RANGE_ROWS,
        ),
        Setting(
            "earliest_date",
            "TOTESYS_EARLIEST_DATE",
            "Dates and timestamps before this day are set aside as implausible.",
            DEFAULT_EARLIEST_DATE,
        ),
        Setting(
            "latest_date",
            "TOTESYS_LATEST_DATE",
            "Dates and timestamps after this day are set aside as implausible.",
            DEFAULT_LATEST_DATE,
        ),
        Setting(
            "clock_skew",
            "TOTESYS_CLOCK_SKEW_MINUTES",
            "Minutes a row's last_updated may lie ahead of the extract's snapshot before it "
            "is set aside.",
            DEFAULT_CLOCK_SKEW_MINUTES,
        ),
        Setting(
            "deletes_every",
            "TOTESYS_DELETES_EVERY_MINUTES",
            "Minutes between comparisons of the source's keys, which find deleted rows "
            "(0: every run).",
            DEFAULT_DELETES_EVERY_MINUTES,
        ),
        Setting(
            "mass_delete_percent",
            "TOTESYS_MASS_DELETE_PERCENT",
            "A comparison finding more than this percent of a table deleted at once (or "
            "the table emptied) records nothing and fails the run.",
            DEFAULT_MASS_DELETE_PERCENT,
        ),
        Setting("log_level", "TOTESYS_LOG_LEVEL", "How much to log.", "INFO"),
        Setting(
            "log_format", "TOTESYS_LOG_FORMAT", "text for people, json for CloudWatch.", "text"
        ),
        Setting(
            "cloudwatch_log_group",
            "TOTESYS_CLOUDWATCH_LOG_GROUP",
            "Also send the JSON log lines to this (existing) CloudWatch log group.",
        ),
        Setting(
            "token",
            "TOTESYS_DASHBOARD_TOKEN",
            "The dashboard's access token, shown once by a browser (?token=...); required "
            "to listen off loopback.",
        ),
    )
}


def envvar(name: str) -> str:
    return SETTINGS[name].envvar


@dataclass(frozen=True)
class Database:
    """Where one PostgreSQL database is, without ever printing its password."""

    role: str  # "source" or "warehouse"
    url: URL
    envvar: str
    statement_timeout: float = 300.0

    @property
    def connect_timeout(self) -> float:
        """Seconds to connect and log in: the URL's connect_timeout, as in libpq."""
        value = self.url.query.get("connect_timeout")
        return float(value) if isinstance(value, str) else DEFAULT_CONNECT_TIMEOUT

    @property
    def unix_sock(self) -> str | None:
        value = self.url.query.get("unix_sock")
        return value if isinstance(value, str) else None

    @property
    def sslmode(self) -> str | None:
        value = self.url.query.get("sslmode")
        return value if isinstance(value, str) else None

    @property
    def sslrootcert(self) -> str | None:
        value = self.url.query.get("sslrootcert")
        return value if isinstance(value, str) else None

    @property
    def where(self) -> str:
        """host:port/database, or the socket path: safe for any message."""
        place = self.unix_sock or f"{self.url.host or 'localhost'}:{self.url.port or 5432}"
        return f"{place}/{self.url.database or ''}"

    def __repr__(self) -> str:
        return f"Database({self.role}, {self.url.render_as_string(hide_password=True)})"


@dataclass(frozen=True)
class Bounds:
    """Plausible dates, and how far ahead of the source's clock a row's clock may be:
    what lies outside is set aside in the quarantine, never loaded."""

    earliest: dt.date = DEFAULT_EARLIEST_DATE
    latest: dt.date = DEFAULT_LATEST_DATE
    skew: dt.timedelta = dt.timedelta(minutes=DEFAULT_CLOCK_SKEW_MINUTES)


@dataclass(frozen=True)
class Settings:
    """Everything a command may need, as given; `endpoints` opens what a step requires.

    Database URLs are parsed on creation (see `parse_settings`); secrets are only named
    here and read when a step opens its endpoints.
    """

    source_url: URL | None = None
    source_secret: str | None = None
    warehouse_url: URL | None = None
    warehouse_secret: str | None = None
    raw_url: str | None = None
    processed_url: str | None = None
    max_runtime: float = DEFAULT_MAX_RUNTIME
    overlap_minutes: float = DEFAULT_OVERLAP_MINUTES
    batch_rows: int = DEFAULT_BATCH_ROWS
    range_rows: int = DEFAULT_RANGE_ROWS
    bounds: Bounds = Bounds()
    deletes_every_minutes: float = DEFAULT_DELETES_EVERY_MINUTES
    mass_delete_percent: float = DEFAULT_MASS_DELETE_PERCENT
    allow_mass_delete: tuple[str, ...] = ()  # tables whose mass delete is on purpose

    @property
    def overlap(self) -> dt.timedelta:
        return dt.timedelta(minutes=self.overlap_minutes)

    def url(self, role: str) -> URL | None:
        return self.source_url if role == "source" else self.warehouse_url

    def secret(self, role: str) -> str | None:
        return self.source_secret if role == "source" else self.warehouse_secret


def parse_settings(
    *,
    source_url: str | None = None,
    source_secret: str | None = None,
    warehouse_url: str | None = None,
    warehouse_secret: str | None = None,
    lake_url: str | None = None,
    raw_url: str | None = None,
    processed_url: str | None = None,
    max_runtime: float | None = None,
    overlap: float | None = None,
    batch_rows: int | None = None,
    range_rows: int | None = None,
    earliest_date: dt.date | dt.datetime | None = None,
    latest_date: dt.date | dt.datetime | None = None,
    clock_skew: float | None = None,
    deletes_every: float | None = None,
    mass_delete_percent: float | None = None,
    allow_mass_delete: tuple[str, ...] = (),
) -> Settings:
    """One lake URL holds both zones; separate raw and processed URLs override it."""
    lake = lake_url.rstrip("/") if lake_url else None
    return Settings(
        source_url=_url("source", source_url),
        source_secret=source_secret or None,
        warehouse_url=_url("warehouse", warehouse_url),
        warehouse_secret=warehouse_secret or None,
        raw_url=raw_url or (f"{lake}/raw" if lake else None),
        processed_url=processed_url or (f"{lake}/processed" if lake else None),
        max_runtime=DEFAULT_MAX_RUNTIME if max_runtime is None else float(max_runtime),
        overlap_minutes=DEFAULT_OVERLAP_MINUTES if overlap is None else float(overlap),
        batch_rows=DEFAULT_BATCH_ROWS if batch_rows is None else int(batch_rows),
        range_rows=DEFAULT_RANGE_ROWS if range_rows is None else int(range_rows),
        bounds=_bounds(earliest_date, latest_date, clock_skew),
        deletes_every_minutes=_given(deletes_every, DEFAULT_DELETES_EVERY_MINUTES),
        mass_delete_percent=_given(mass_delete_percent, DEFAULT_MASS_DELETE_PERCENT),
        allow_mass_delete=tuple(allow_mass_delete),
    )


def _given(value: float | None, default: float) -> float:
    return default if value is None else float(value)


def _day(value: dt.date | dt.datetime | None, default: dt.date) -> dt.date:
    if value is None:
        return default
    return value.date() if isinstance(value, dt.datetime) else value


def _bounds(earliest, latest, skew: float | None) -> Bounds:
    bounds = Bounds(
        _day(earliest, DEFAULT_EARLIEST_DATE),
        _day(latest, DEFAULT_LATEST_DATE),
        dt.timedelta(minutes=DEFAULT_CLOCK_SKEW_MINUTES if skew is None else float(skew)),
    )
    if bounds.earliest >= bounds.latest:
        raise ConfigError(
            f"the earliest plausible date {bounds.earliest} is not before the latest "
            f"{bounds.latest}",
            f"Check {envvar('earliest_date')} and {envvar('latest_date')}",
        )
    return bounds


def _url(role: str, raw: str | None) -> URL | None:
    return parse_database_url(role, raw, envvar(f"{role}_url")) if raw else None


def parse_database_url(role: str, raw: str, envvar: str) -> URL:
    """Accept SQLAlchemy URLs; a plain postgresql:// means pg8000, never psycopg."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    _check_user_info(role, raw, envvar)
    try:
        url = make_url(raw)
        port = url.port
    except (ArgumentError, ValueError):
        raise ConfigError(
            f"the {role} URL is malformed",
            f"Set {envvar} to a URL like postgresql://user:password@host:5432/dbname",
        ) from None
    if port is not None and not 0 < port < 65536:
        raise ConfigError(
            f"the {role} URL's port {port} is not a TCP port", "Give a port from 1 to 65535"
        )
    backend, _, driver = url.drivername.partition("+")
    if backend not in ("postgresql", "postgres"):
        raise ConfigError(
            f"the {role} URL must be a PostgreSQL URL, not {backend}://",
            f"Set {envvar} to a URL like postgresql://user:password@host:5432/dbname",
        )
    if driver not in ("", "pg8000"):
        raise ConfigError(
            f"the {role} URL asks for the {driver} driver; totesys uses pg8000",
            f"Write {envvar} as postgresql://... or postgresql+pg8000://...",
        )
    url = url.set(drivername="postgresql+pg8000")
    if not url.database:
        raise ConfigError(f"the {role} URL names no database", f"Add /dbname to {envvar}")
    sslmode = url.query.get("sslmode")
    if sslmode is not None and sslmode not in SSL_MODES:
        raise ConfigError(
            f"the {role} URL has an unknown sslmode {sslmode!r}",
            f"Use one of {', '.join(SSL_MODES)}",
        )
    timeout = url.query.get("connect_timeout")
    whole = isinstance(timeout, str) and timeout.isdigit() and int(timeout) > 0
    if timeout is not None and not whole:
        raise ConfigError(
            f"the {role} URL's connect_timeout {timeout!r} is not a positive whole number "
            "of seconds",
            f"Give connect_timeout=10 (or more seconds) in {envvar}",
        )
    unknown = set(url.query) - set(URL_PARAMETERS)
    if unknown:
        raise ConfigError(
            f"the {role} URL has unsupported parameters: {', '.join(sorted(unknown))}",
            f"Only {', '.join(URL_PARAMETERS)} are understood",
        )
    return url


def _check_user_info(role: str, raw: str, envvar: str) -> None:
    """A password holding `@`, `:`, `/`, `?` or `#` must be percent-encoded: otherwise
    the URL splits in the wrong place and part of the password would be taken for the
    host. Nothing of the user-info is echoed."""
    _, _, rest = raw.partition("://")
    at = rest.rfind("@")
    if at < 0:
        return
    user_info, host = rest[:at], rest[at + 1 :]
    if "@" in user_info or user_info.count(":") > 1 or any(c in user_info for c in "/?#"):
        raise ConfigError(
            f"the {role} URL's user name or password holds a character that must be "
            "percent-encoded (@ : / ? #)",
            f"Write it encoded in {envvar}: @ as %40, : as %3A, / as %2F, ? as %3F, # as %23",
        )
    if not host:
        raise ConfigError(f"the {role} URL names no host after its user-info", f"Check {envvar}")


def url_from_secret(role: str, secret_id: str, secret: Any, address: URL | None = None) -> URL:
    """A URL from a secret's JSON object, in the RDS shape or ours. With `address` (the
    role's URL, without a password), the secret gives only the user name and password,
    and the URL the host, port, database and options."""
    from sqlalchemy.engine import URL

    credentials = isinstance(secret, dict) and (secret.get("user") or secret.get("username"))
    if not credentials or "password" not in secret:
        raise ConfigError(
            f"the {role} secret {secret_id!r} is not a JSON object with user (or "
            "username) and password, and host, port and database (or dbname) unless "
            f"{envvar(f'{role}_url')} gives them",
            "Store the secret in that shape",
        )
    # a null password is none (a server that trusts the user), never the word "None"
    password = None if secret["password"] is None else str(secret["password"])
    if address is not None:
        return address.set(username=str(credentials), password=password)
    database = secret.get("database") or secret.get("dbname")
    host = secret.get("host")
    if not (database and host):
        raise ConfigError(
            f"the {role} secret {secret_id!r} holds credentials but no host and database "
            "(or dbname)",
            f"Set {envvar(f'{role}_url')} to the address without a password "
            "(postgresql://HOST:5432/DATABASE?sslmode=require), or add host and dbname "
            "to the secret",
        )
    port = int(secret.get("port") or 5432)
    query = {name: str(secret[name]) for name in ("sslmode", "sslrootcert") if secret.get(name)}
    if str(host).startswith("/"):  # a socket folder, as libpq reads it
        query["unix_sock"] = f"{host}/.s.PGSQL.{port}"
        host = None
    return URL.create(
        "postgresql+pg8000",
        username=str(credentials),
        password=password,
        host=host,
        port=None if host is None else port,
        database=str(database),
        query=query,
    )


def parse_since(value: str) -> dt.datetime:
    """--since is source data time in UTC: a date, or a date and time (ISO 8601)."""
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise ConfigError(
            f"--since {value!r} is not a date or timestamp",
            "Give it as 2026-11-25 or 2026-11-25T09:30:00 (UTC)",
        ) from None
    if parsed.tzinfo is not None:
        try:
            parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
        except OverflowError:
            raise ConfigError(
                f"--since {value!r} is before the first representable time",
                "Give a time from year 1 onwards, in UTC",
            ) from None
    if parsed > dt.datetime.now(dt.UTC).replace(tzinfo=None):
        raise ConfigError(f"--since {value!r} is in the future", "Give a time in the past, in UTC")
    return parsed
