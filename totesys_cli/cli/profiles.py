"""A profile's settings as the commands' defaults, and `totesys config`.

The chosen profile (see `totesys_cli.profiles`) becomes click's `default_map`, so
precedence is click's own: an option, then its environment variable, then the profile,
then the declared default. Each value is checked here, when the file is read, by the
type of the option it stands for, so a wrong value anywhere in the file is one line
naming the file, the line and the key, before any command starts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from totesys_cli import profiles
from totesys_cli.cli import options
from totesys_cli.errors import ConfigError
from totesys_cli.logs import register_secret
from totesys_cli.settings import SETTINGS, parse_database_url

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
    declared = _declared(group)
    for profile, values in file.profiles.items():
        for key, value in values.items():
            if key in declared:
                _check(file, profile, key, value, declared[key])
    profile = profiles.choose(file, name)
    if profile is None:
        return {}, None
    return _tree(group, profile.values), profile


def _declared(group: click.Group) -> dict[str, click.Parameter]:
    """Every setting's option, by name, as some command declares it."""
    found: dict[str, click.Parameter] = {}
    for command in _walk(group):
        for param in command.params:
            if param.name in SETTINGS:
                found.setdefault(param.name, param)
    return found


def _walk(command: click.Command):
    yield command
    for sub in getattr(command, "commands", {}).values():
        yield from _walk(sub)


def _check(file: profiles.ProfileFile, profile: str, key: str, value: Any, param) -> None:
    """The value as its option would take it: of the right TOML type, in range."""
    kind = param.type
    if isinstance(kind, click.types.IntParamType):
        wanted, fits = "an integer", isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(kind, click.types._NumberParamTypeBase):
        wanted, fits = "a number", isinstance(value, int | float) and not isinstance(value, bool)
    elif isinstance(kind, click.DateTime):
        wanted, fits = "a date (YYYY-MM-DD)", isinstance(value, str) or hasattr(value, "year")
        value = value.isoformat() if hasattr(value, "isoformat") else value
    else:
        wanted, fits = "a string", isinstance(value, str)
    if not fits:
        raise ConfigError(
            f"{file.where(profile, key)}: {key} in profile {profile!r} must be {wanted}, "
            f"not {value!r}"
        )
    try:
        kind.convert(value, param, None)
    except click.BadParameter as err:
        raise ConfigError(
            f"{file.where(profile, key)}: {key} in profile {profile!r}: {err.message}"
        ) from None


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
