"""Database URLs: where a database is (`Database`, never printing its password), the
URLs totesys accepts, and a URL made from a Secrets Manager secret. Heavy libraries
are imported inside functions: the CLI reads this module to draw `--help`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from totesys_cli.errors import ConfigError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

ROLES = ("source", "warehouse")
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
URL_PARAMETERS = ("sslmode", "sslrootcert", "unix_sock", "connect_timeout")
DEFAULT_CONNECT_TIMEOUT = 10.0  # seconds to connect and log in


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


def url_from_secret(
    role: str, secret_id: str, secret: Any, variable: str, address: URL | None = None
) -> URL:
    """A URL from a secret's JSON object, in the RDS shape or ours. With `address` (the
    role's URL, without a password, from the variable named `variable`), the secret
    gives only the user name and password, and the URL the host, port, database and
    options."""
    from sqlalchemy.engine import URL

    credentials = isinstance(secret, dict) and (secret.get("user") or secret.get("username"))
    if not credentials or "password" not in secret:
        raise ConfigError(
            f"the {role} secret {secret_id!r} is not a JSON object with user (or "
            "username) and password, and host, port and database (or dbname) unless "
            f"{variable} gives them",
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
            f"Set {variable} to the address without a password "
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
