"""A profile's settings as the commands' defaults, and `totesys config`.

The chosen profile (see `totesys_cli.config.profiles`) becomes click's `default_map`, so
precedence is click's own: an option, then its environment variable, then the profile,
then the declared default. Each value is checked here, when the file is read, as its
setting's declaration takes it, so a wrong value anywhere in the file is one line
naming the file, the line and the key, before any command starts (a database URL is
read when a command uses it, with its password from the profile's variable).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from totesys_cli.cli import options
from totesys_cli.config import profiles
from totesys_cli.config.settings import SETTINGS, DatabaseUrl
from totesys_cli.config.urls import parse_database_url
from totesys_cli.errors import ConfigError
from totesys_cli.observe.logs import register_secret

SOURCES = {
    ParameterSource.COMMANDLINE: "option",
    ParameterSource.ENVIRONMENT: "variable",
    ParameterSource.DEFAULT_MAP: "profile",
    ParameterSource.DEFAULT: "default",
}
MASK = "***"


def chosen(argv: list[str], commands: set[str]) -> tuple[str | None, str | None]:
    """(--config, --profile) as given before the command, else from their variables:
    needed before click parses anything, since the profile sets the defaults."""
    found: dict[str, str | None] = {"--config": None, "--profile": None}
    words = iter(argv)
    for word in words:
        if word in commands or word == "--":
            break
        name, equals, value = word.partition("=")
        if name in found:
            found[name] = value if equals else next(words, None)
    config = found["--config"] or os.environ.get(profiles.CONFIG_ENV) or None
    profile = found["--profile"] or os.environ.get(profiles.PROFILE_ENV) or None
    return config, profile


def load(group: click.Group, argv: list[str]) -> tuple[dict[str, Any], profiles.Profile | None]:
    """The default_map of the whole command tree, and the profile it comes from."""
    config, name = chosen(argv, set(group.commands))
    path = profiles.find(config, Path.cwd())
    if path is None:
        if name is not None:
            raise ConfigError(
                f"--profile {name} needs a {profiles.FILE_NAME}, and there is none here",
                f"Give the file with --config or {profiles.CONFIG_ENV}",
            )
        return {}, None
    file = profiles.read(path)
    for profile, values in file.profiles.items():
        for key, value in values.items():
            if key in SETTINGS:
                _check(file, profile, key, value)
    profile = profiles.choose(file, name)
    if profile is None:
        return {}, None
    return _tree(group, profile.values), profile


def _check(file: profiles.ProfileFile, profile: str, key: str, value: Any) -> None:
    """The value as the setting takes it: of the right TOML type, then as its kind
    accepts it (in range, one of the choices, a date)."""
    kind = SETTINGS[key].kind
    if not kind.fits(value):
        raise ConfigError(
            f"{file.where(profile, key)}: {key} in profile {profile!r} must be {kind.wanted}, "
            f"not {value!r}"
        )
    if isinstance(kind, DatabaseUrl):
        return
    try:
        kind.parse(value, f"{key} in profile {profile!r}")
    except ConfigError as err:
        raise ConfigError(f"{file.where(profile, key)}: {err.message}") from None


def _tree(command: click.Command, values: dict[str, Any]) -> dict[str, Any]:
    """click's default_map: a command's own options, and one entry per subcommand."""
    own = {p.name: _plain(values[p.name]) for p in command.params if p.name in values}
    for name, sub in getattr(command, "commands", {}).items():
        own[name] = _tree(sub, values)
    return own


def _plain(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


# ---------------------------------------------------------------- totesys config


def effective(ctx: click.Context, command: click.Command | None) -> dict[str, dict[str, Any]]:
    """Each setting (of `command` only, if given): its value, masked, and where it is
    from. The logging settings are the group's options; the others this command's."""
    root = ctx.find_root()
    wanted = {p.name for p in command.params} if command is not None else set(SETTINGS)
    shown = {}
    for name in SETTINGS:
        where = root if name in root.params else ctx
        if where is ctx and name not in wanted:
            continue
        source = where.get_parameter_source(name)
        shown[name] = {
            "value": _masked(name, where.params.get(name)),
            "from": SOURCES.get(source, "default") if source else "default",
            "variable": SETTINGS[name].envvar,
            "option": f"--{name.replace('_', '-')}",
        }
    return shown


def _masked(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name == "token":
        return MASK
    if name.endswith("_url") and name.split("_")[0] in ("source", "warehouse"):
        # read as every command reads it: what they refuse, this refuses, in the same line
        from sqlalchemy.engine import make_url

        parse_database_url(name.split("_")[0], value, SETTINGS[name].envvar)
        url = make_url(value)
        register_secret(url.password)
        return url.render_as_string(hide_password=True)
    if hasattr(value, "date") and callable(value.date):  # a day given to click.DateTime
        return value.date().isoformat()
    return value


@click.command("config")
@options.source
@options.warehouse
@options.lake
@options.deadline
@options.reading
@options.checks
@options.finding_deletes
@options.setting("token")
@options.as_json
@click.argument("command", nargs=-1)
@click.pass_context
def config(ctx: click.Context, command: tuple[str, ...], as_json: bool, **_given) -> None:
    """The settings a command would use, and where each comes from (option, variable,
    profile, default); passwords masked. COMMAND: only that command's settings."""
    import json

    from totesys_cli.cli import render

    target = None
    if command:
        target = ctx.find_root().command
        for word in command:
            found = getattr(target, "commands", {}).get(word)
            if found is None:
                raise click.UsageError(f"no such command: {' '.join(command)}", ctx)
            target = found
    root = ctx.find_root().command
    profile = getattr(root, "profile", None)
    result = {
        "file": str(profile.path) if profile else None,
        "profile": profile.name if profile else None,
        "settings": effective(ctx, target),
    }
    if as_json:
        click.echo(json.dumps(result, indent=1, default=str))
    else:
        render.config(result)
