"""Open what a command needs: its databases (reading Secrets Manager when named) and
its lake zones. Every password is registered for redaction the moment it is known, so
no later message can carry it.
"""

from __future__ import annotations

from dataclasses import dataclass

from totesys_cli.config import aws
from totesys_cli.config.settings import Settings, envvar
from totesys_cli.config.urls import Database, url_from_secret
from totesys_cli.errors import ConfigError
from totesys_cli.lake import Lake, open_lake
from totesys_cli.lake.zone import overlap
from totesys_cli.observe import logs

SOURCE, WAREHOUSE, RAW, PROCESSED = "source", "warehouse", "raw", "processed"
ALL = (SOURCE, WAREHOUSE, RAW, PROCESSED)


@dataclass(frozen=True)
class Endpoints:
    """What one command opened; what it did not need, or was not configured, is None."""

    source: Database | None = None
    warehouse: Database | None = None
    raw: Lake | None = None
    processed: Lake | None = None


def database(settings: Settings, role: str) -> Database | None:
    """A URL with its password stands alone. A secret gives the whole connection, or
    only the user name and password when a URL without a password gives the address (a
    secret RDS manages for a master user holds only those two). Neither: not configured."""
    url, secret_id = settings.url(role), settings.secret(role)
    if url is not None and (url.password is not None or not secret_id):
        db = Database(role, url, envvar(f"{role}_url"))
    elif secret_id:
        variable = envvar(f"{role}_secret")
        value = aws.read_secret(role, secret_id, variable)
        db = Database(
            role, url_from_secret(role, secret_id, value, envvar(f"{role}_url"), url), variable
        )
    else:
        return None
    logs.register_secret(db.url.password)
    return db


def _missing(name: str) -> ConfigError:
    if name in (SOURCE, WAREHOUSE):
        return ConfigError(
            f"no {name} database is configured",
            f"Set {envvar(f'{name}_url')} or {envvar(f'{name}_secret')}",
        )
    return ConfigError(
        "no lake is configured", f"Set {envvar('lake_url')} (or {envvar(f'{name}_url')})"
    )


def open_endpoints(
    settings: Settings, required: tuple[str, ...] = (), optional: tuple[str, ...] = ()
) -> Endpoints:
    """The required endpoints (a missing one is a configuration error) and the optional
    ones that are configured, in the order source, warehouse, raw, processed."""
    opened: dict[str, object] = {}
    for name in ALL:
        if name not in required and name not in optional:
            continue
        if name in (SOURCE, WAREHOUSE):
            value: object = database(settings, name)
        else:
            url = settings.raw_url if name == RAW else settings.processed_url
            value = open_lake(url, envvar("lake_url")) if url else None
        if value is None and name in required:
            raise _missing(name)
        opened[name] = value
    ends = Endpoints(**opened)
    if ends.raw is not None and ends.processed is not None and overlap(ends.raw, ends.processed):
        same = ends.raw.url.rstrip("/") == ends.processed.url.rstrip("/")
        raise ConfigError(
            f"the raw zone {ends.raw.url} and the processed zone {ends.processed.url} "
            + ("are the same place" if same else "are one inside the other"),
            f"Give {envvar('raw_url')} and {envvar('processed_url')} places apart "
            f"(or only {envvar('lake_url')}, which holds raw/ and processed/ side by side)",
        )
    return ends
