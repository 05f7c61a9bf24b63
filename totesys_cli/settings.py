"""One typed settings object, resolved once from options and the environment."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from totesys_cli.errors import ConfigError, RuntimeFailure
from totesys_cli.logs import register_secret

SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


@dataclass(frozen=True)
class Database:
    """Where one PostgreSQL database is, without ever printing its password."""

    role: str  # "source" or "warehouse"
    url: URL
    envvar: str
    connect_timeout: float = 10.0
    statement_timeout: float = 300.0

    @property
    def unix_sock(self) -> str | None:
        value = self.url.query.get("unix_sock")
        return value if isinstance(value, str) else None

    @property
    def sslmode(self) -> str | None:
        value = self.url.query.get("sslmode")
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
    try:
        url = make_url(raw)
    except (ArgumentError, ValueError):
        raise ConfigError(
            f"the {role} URL is malformed",
            f"Set {envvar} to a URL like postgresql://user:password@host:5432/dbname",
        ) from None
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
    unknown = set(url.query) - {"sslmode", "unix_sock"}
    if unknown:
        raise ConfigError(
            f"the {role} URL has unsupported parameters: {', '.join(sorted(unknown))}",
            "Only unix_sock and sslmode are understood",
        )
    return url


def url_from_secret(role: str, secret_id: str, envvar: str) -> URL:
    """Build a URL from a Secrets Manager secret in the RDS shape or ours."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        client = boto3.client("secretsmanager", config=aws_config())
        raw = client.get_secret_value(SecretId=secret_id)["SecretString"]
    except ClientError as err:
        code = err.response.get("Error", {}).get("Code", "error")
        raise ConfigError(
            f"cannot read the {role} secret {secret_id!r} from Secrets Manager: {code}",
            f"Check {envvar} and that this role may call secretsmanager:GetSecretValue",
        ) from None
    except BotoCoreError as err:
        raise RuntimeFailure(
            f"cannot reach Secrets Manager for the {role} secret {secret_id!r}: {err}",
            "Check the network and AWS region",
        ) from None
    try:
        secret: dict[str, Any] = json.loads(raw)
        user = secret.get("user") or secret["username"]
        database = secret.get("database") or secret["dbname"]
        host = secret["host"]
    except (ValueError, KeyError, TypeError):
        raise ConfigError(
            f"the {role} secret {secret_id!r} is not a JSON object with host, port, "
            "user (or username), password and database (or dbname)",
            "Store the secret in that shape",
        ) from None
    port = int(secret.get("port") or 5432)
    query = {}
    if secret.get("sslmode"):
        query["sslmode"] = str(secret["sslmode"])
    if str(host).startswith("/"):  # a socket folder, as libpq reads it
        query["unix_sock"] = f"{host}/.s.PGSQL.{port}"
        host = None
    return URL.create(
        "postgresql+pg8000",
        username=str(user),
        password=secret.get("password"),
        host=host,
        port=None if host is None else port,
        database=str(database),
        query=query,
    )


def aws_config():
    """Timeouts and retries for every AWS client, so a hung endpoint cannot hold a run."""
    from botocore.config import Config

    return Config(connect_timeout=10, read_timeout=60, retries={"max_attempts": 4})


def resolve_database(role: str, url: str | None, secret: str | None) -> Database | None:
    """The URL wins over the secret; neither means this database is not configured."""
    if url:
        envvar = f"TOTESYS_{role.upper()}_URL"
        db = Database(role, parse_database_url(role, url, envvar), envvar)
    elif secret:
        envvar = f"TOTESYS_{role.upper()}_SECRET"
        db = Database(role, url_from_secret(role, secret, envvar), envvar)
    else:
        return None
    register_secret(db.url.password)
    return db


@dataclass(frozen=True)
class Settings:
    """Everything a command needs, resolved once; missing parts are None until a step needs them."""

    source: Database | None = None
    warehouse: Database | None = None
    raw_url: str | None = None
    processed_url: str | None = None
    cloudwatch_log_group: str | None = None

    def require_source(self) -> Database:
        if self.source is None:
            raise ConfigError(
                "no source database is configured",
                "Set TOTESYS_SOURCE_URL or TOTESYS_SOURCE_SECRET",
            )
        return self.source

    def raw_lake(self):
        """The raw zone; a missing setting is a configuration error."""
        from totesys_cli.lake import open_lake

        if not self.raw_url:
            raise ConfigError("no lake is configured", "Set TOTESYS_LAKE_URL (or TOTESYS_RAW_URL)")
        return open_lake(self.raw_url, "TOTESYS_LAKE_URL")

    def processed_lake(self):
        """The processed zone; a missing setting is a configuration error."""
        from totesys_cli.lake import open_lake

        if not self.processed_url:
            raise ConfigError(
                "no lake is configured", "Set TOTESYS_LAKE_URL (or TOTESYS_PROCESSED_URL)"
            )
        return open_lake(self.processed_url, "TOTESYS_LAKE_URL")

    def require_warehouse(self) -> Database:
        if self.warehouse is None:
            raise ConfigError(
                "no warehouse database is configured",
                "Set TOTESYS_WAREHOUSE_URL or TOTESYS_WAREHOUSE_SECRET",
            )
        return self.warehouse


def build_settings(
    *,
    source_url: str | None = None,
    source_secret: str | None = None,
    warehouse_url: str | None = None,
    warehouse_secret: str | None = None,
    lake_url: str | None = None,
    raw_url: str | None = None,
    processed_url: str | None = None,
    cloudwatch_log_group: str | None = None,
) -> Settings:
    """One lake URL holds both zones; separate raw and processed URLs override it."""
    return Settings(
        source=resolve_database("source", source_url, source_secret),
        warehouse=resolve_database("warehouse", warehouse_url, warehouse_secret),
        raw_url=raw_url or (f"{lake_url.rstrip('/')}/raw" if lake_url else None),
        processed_url=processed_url or (f"{lake_url.rstrip('/')}/processed" if lake_url else None),
        cloudwatch_log_group=cloudwatch_log_group,
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
        parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
    if parsed > dt.datetime.now(dt.UTC).replace(tzinfo=None):
        raise ConfigError(f"--since {value!r} is in the future", "Give a time in the past, in UTC")
    return parsed
