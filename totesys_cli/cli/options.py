"""Options declared once, shared by every command that uses them.

Names, variables, help, defaults and the values accepted come from the library's
declarations (`config.settings.Settings`), so each is written in one place; this module
turns a setting's kind into click's type, and declares what is only the CLI's: flags,
filters, --since. Nothing heavy is imported here: `--help` stays instant.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from totesys_cli.config import profiles
from totesys_cli.config.settings import (
    DAY_FORMAT,
    SETTINGS,
    Choice,
    Day,
    Number,
    parse_since,
)

Decorator = Callable[[Callable], Callable]


def click_type(kind) -> click.ParamType:
    """The click type that accepts what the setting's kind does (and says why not in
    click's words on the command line)."""
    if isinstance(kind, Number):
        ranged = click.IntRange if kind.integer else click.FloatRange
        return ranged(min=kind.min, max=kind.max)
    if isinstance(kind, Choice):
        return click.Choice(kind.values, case_sensitive=False)
    if isinstance(kind, Day):
        return click.DateTime([DAY_FORMAT])
    return click.STRING


def setting(name: str, **kwargs: Any) -> Decorator:
    """The option for one declared setting: --name, its variable, help, default, type."""
    declared = SETTINGS[name]
    if declared.default is not None:
        default = declared.default
        kwargs.setdefault(
            "default", default.isoformat() if hasattr(default, "isoformat") else default
        )
        kwargs.setdefault("show_default", True)
    return click.option(
        f"--{declared.option}",
        name,
        envvar=declared.envvar,
        show_envvar=True,
        help=declared.help,
        type=click_type(declared.kind),
        **kwargs,
    )


def compose(*decorators: Decorator) -> Decorator:
    """Several options as one decorator, listed in --help in the order given."""

    def decorate(command: Callable) -> Callable:
        for decorator in reversed(decorators):
            command = decorator(command)
        return command

    return decorate


class SinceType(click.ParamType):
    name = "TIME"

    def convert(self, value, param, ctx):
        from totesys_cli.errors import ConfigError

        if not isinstance(value, str):
            return value
        try:
            return parse_since(value)
        except ConfigError as err:
            self.fail(err.message, param, ctx)


class SourceTableType(click.ParamType):
    """One of the source tables, read from the schemas only when the option is used."""

    name = "NAME"

    def convert(self, value, param, ctx):
        from totesys_cli.schemas import SOURCE_TABLES

        if value not in SOURCE_TABLES:
            shown = ", ".join(repr(t) for t in SOURCE_TABLES)
            self.fail(f"{value!r} is not one of {shown}.", param, ctx)
        return value


source = compose(setting("source_url"), setting("source_secret"))
warehouse = compose(setting("warehouse_url"), setting("warehouse_secret"))
lake = compose(setting("lake_url"), setting("raw_url"), setting("processed_url"))
since = click.option(
    "--since",
    type=SinceType(),
    help="Re-process source rows whose last_updated >= TIME (UTC date or timestamp).",
)
deadline = setting("max_runtime")
reading = compose(setting("overlap"), setting("batch_rows"), setting("range_rows"))
# what the quarantine sets aside as implausible
checks = compose(setting("earliest_date"), setting("latest_date"), setting("clock_skew"))
# how deletions in the source are found (the settings), and a mass delete let through
finding_deletes = compose(setting("deletes_every"), setting("mass_delete_percent"))
deletes = compose(
    finding_deletes,
    click.option(
        "--allow-mass-delete",
        "allow_mass_delete",
        multiple=True,
        type=SourceTableType(),
        metavar="TABLE",
        help="Record the deletions found in this table however many (repeatable): for a "
        "mass delete made on purpose.",
    ),
)
# what every step of the pipeline takes
step = compose(warehouse, lake, deadline, since)
tables = click.option(
    "--table",
    "tables",
    multiple=True,
    type=SourceTableType(),
    help="Extract only this source table (repeatable).",
)
as_json = click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
# read before anything else is parsed (see cli.profiles); declared here for --help
profile = compose(
    click.option(
        "--config",
        envvar=profiles.CONFIG_ENV,
        show_envvar=True,
        metavar="FILE",
        help="The profiles file [default: ./totesys.toml, if there is one].",
    ),
    click.option(
        "--profile",
        envvar=profiles.PROFILE_ENV,
        show_envvar=True,
        metavar="NAME",
        help="The profile of the file to use [default: 'default', if the file has one].",
        shell_complete=lambda ctx, param, incomplete: profile_names(ctx, incomplete),
    ),
)


def profile_names(ctx: click.Context, incomplete: str) -> list[str]:
    """Shell completion of --profile: the profiles of the file in use."""
    import os
    from pathlib import Path

    from totesys_cli.errors import ConfigError

    try:
        config = ctx.params.get("config") or os.environ.get(profiles.CONFIG_ENV)
        path = profiles.find(config, Path.cwd())
        names = profiles.read(path).profiles if path else {}
    except ConfigError:
        return []
    return [n for n in names if n.startswith(incomplete)]


logging = compose(
    setting("log_level"),
    setting("log_format"),
    setting("cloudwatch_log_group"),
)
filters = compose(
    click.option(
        "--from",
        "start",
        type=click.DateTime(["%Y-%m-%d"]),
        help="First day: orders created, payments falling due [default: the first].",
    ),
    click.option(
        "--to", "end", type=click.DateTime(["%Y-%m-%d"]), help="Last day (orders created)."
    ),
    click.option("--currency", help="Keep one currency code (GBP); all currencies by default."),
)


def settings_from(options: dict[str, Any]):
    """The settings object from a command's options (those it does not declare keep
    their defaults)."""
    from dataclasses import fields

    from totesys_cli.config.settings import Settings

    accepted = {f.name for f in fields(Settings)}
    return Settings(**{n: v for n, v in options.items() if n in accepted and v is not None})
