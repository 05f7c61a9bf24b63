"""Profiles: named sets of settings in a `totesys.toml`, one per environment.

    [profiles.dev]
    source_url = "postgresql://me@localhost:5432/totesys"
    source_password_env = "DEV_SOURCE_PASSWORD"
    lake_url = "/home/me/lake"

A profile's keys are the settings' names (`config.settings.SETTINGS`), plus, per
database, the name of an environment variable that holds its password
(`*_password_env`), so that no secret needs to be in the file. A file that does hold a
password (in a URL, or the dashboard's token) is used only when no one else can read
it, as ssh treats a key: if others can, the secret is left out with a WARNING.

This module reads and checks the file's shape (known keys, TOML types) and picks the
profile; the command line checks each value as its setting's declaration does and gives
it the place it has in precedence: option > environment variable > profile > default.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from totesys_cli.config.settings import SETTINGS
from totesys_cli.config.urls import ROLES
from totesys_cli.errors import ConfigError

FILE_NAME = "totesys.toml"
CONFIG_ENV = "TOTESYS_CONFIG"
PROFILE_ENV = "TOTESYS_PROFILE"
DEFAULT_PROFILE = "default"
SECRETS = ("source_url", "warehouse_url", "token")  # may hold a password or a token
PASSWORD_ENV = {f"{role}_password_env": f"{role}_url" for role in ROLES}
KEYS = (*SETTINGS, *PASSWORD_ENV)


@dataclass(frozen=True)
class Profile:
    """The chosen profile: its settings (passwords from their variables put in), and
    what the user should be told about it once logging is set up."""

    path: Path
    name: str
    values: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ProfileFile:
    """A parsed totesys.toml: every profile's raw values, and where each key is."""

    path: Path
    profiles: dict[str, dict[str, Any]]
    text: str

    def where(self, profile: str, key: str | None = None) -> str:
        return f"{self.path}, line {self.line(profile, key)}"

    def line(self, profile: str, key: str | None = None) -> int:
        """The line of `key` in the profile's table (of the table itself without a key):
        for messages, so the reader can go straight to it."""
        header = re.compile(rf"\s*\[\s*profiles\s*\.\s*(\"?){re.escape(profile)}\1\s*\]")
        dotted = re.compile(rf"\s*profiles\s*\.\s*(\"?){re.escape(profile)}\1\s*\.\s*(\w+)\s*=")
        table, found = None, None
        inside = False
        for number, line in enumerate(self.text.splitlines(), 1):
            if line.lstrip().startswith("["):
                inside = bool(header.match(line))
                if inside:
                    table = table or number
                continue
            match = dotted.match(line)
            if match and key is not None and match[2] == key:
                return number
            if inside and key is not None and re.match(rf"\s*\"?{re.escape(key)}\"?\s*=", line):
                found = found or number
        return found or table or 1


def find(config: str | None, folder: Path) -> Path | None:
    """The file given (it must exist), or totesys.toml in `folder` if there is one."""
    if config:
        path = Path(config).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"the configuration file {path} does not exist",
                f"Check --config or {CONFIG_ENV}",
            )
        return path
    found = folder / FILE_NAME
    return found if found.is_file() else None


def read(path: Path) -> ProfileFile:
    """The file, parsed and checked as a whole: every profile a table, every key known
    and of a TOML type some setting takes (the command line checks each value)."""
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path} is not valid TOML: {err}", "Fix the file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"the configuration file {path} cannot be read: {err}") from None
    unknown = sorted(set(data) - {"profiles"})
    if unknown:
        raise ConfigError(
            f"{path}: unknown top-level key {unknown[0]!r}",
            "A totesys.toml holds only [profiles.NAME] tables",
        )
    profiles = data.get("profiles", {})
    if not isinstance(profiles, dict):
        raise ConfigError(f"{path}: profiles must be tables, as [profiles.NAME]")
    parsed = ProfileFile(path, profiles, text)
    for name, values in profiles.items():
        if not isinstance(values, dict):
            raise ConfigError(
                f"{parsed.where(name)}: profile {name!r} must be a table, as [profiles.{name}]"
            )
        for key, value in values.items():
            if key not in KEYS:
                raise ConfigError(
                    f"{parsed.where(name, key)}: unknown key {key!r} in profile {name!r}",
                    f"Use the settings `totesys config` lists: {', '.join(KEYS)}",
                )
            if isinstance(value, dict | list) or (
                isinstance(value, dt.date | dt.time) and not _is_day(value)
            ):
                raise ConfigError(
                    f"{parsed.where(name, key)}: {key} in profile {name!r} must be a "
                    f"string, a number or a date, not a TOML {type(value).__name__}"
                )
            if key in PASSWORD_ENV and not isinstance(value, str):
                raise ConfigError(
                    f"{parsed.where(name, key)}: {key} in profile {name!r} must be a "
                    "string: the name of an environment variable"
                )
    return parsed


def _is_day(value: object) -> bool:
    return isinstance(value, dt.date) and not isinstance(value, dt.datetime)


def choose(file: ProfileFile, name: str | None) -> Profile | None:
    """The profile `name` (None: `default` if the file has one, else none at all)."""
    if name is None:
        if DEFAULT_PROFILE not in file.profiles:
            return None
        name = DEFAULT_PROFILE
    if name not in file.profiles:
        have = ", ".join(sorted(file.profiles)) or "none"
        raise ConfigError(
            f"there is no profile {name!r} in {file.path} (it has: {have})",
            f"Check --profile or {PROFILE_ENV}",
        )
    values = dict(file.profiles[name])
    warnings = _unprotected(file, name, values)
    for key, url_key in PASSWORD_ENV.items():
        variable = values.pop(key, None)
        if variable is None:
            continue
        if not values.get(url_key):
            raise ConfigError(
                f"{file.where(name, key)}: profile {name!r} names {key} but no {url_key}",
                f"Add the {url_key} (without its password) to the profile",
            )
        password = os.environ.get(variable)
        if password is None:
            raise ConfigError(
                f"profile {name!r} reads the {url_key[:-4]} password from {variable}, "
                "which is not set",
                f"Export {variable}, or choose another profile",
            )
        values[url_key] = _with_password(values[url_key], password)
    return Profile(file.path, name, values, warnings)


def _unprotected(file: ProfileFile, name: str, values: dict[str, Any]) -> list[str]:
    """Secrets written in a file others can read are left out, with a WARNING each."""
    mode = stat.S_IMODE(file.path.stat().st_mode)
    if not mode & (stat.S_IRWXG | stat.S_IRWXO):
        return []
    warnings = []
    for key in SECRETS:
        value = values.get(key)
        if not isinstance(value, str) or not _holds_secret(key, value):
            continue
        if key == "token":
            del values[key]
        else:
            values[key] = _with_password(value, None)
        what, fix = ("password", f"name a variable with {key[:-4]}_password_env")
        if key == "token":
            what, fix = ("token", "set TOTESYS_DASHBOARD_TOKEN")
        warnings.append(
            f"{file.where(name, key)}: the {what} in {key} of profile {name!r} is ignored: "
            f"others can read the file (mode {mode:04o}). Run chmod 600 {file.path}, or "
            f"{fix} instead"
        )
    return warnings


def _holds_secret(key: str, value: str) -> bool:
    if key == "token":
        return bool(value)
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(value).password is not None
    except (ArgumentError, ValueError):
        return False  # the option's own check says what is wrong with it


def _with_password(url: str, password: str | None) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return url  # the option's own check says what is wrong with it
    # set() leaves a field as it is when given None; a namedtuple's _replace clears it
    return parsed._replace(password=password).render_as_string(hide_password=False)
