"""Options declared once, shared by every command that uses them.

Names, variables, help and defaults come from the library's declarations
(`settings.SETTINGS`), so each is written in one place; this module adds only what is
click's: types, ranges and flags. Nothing heavy is imported here: `--help` stays
instant.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from totesys_cli.settings import (
    LOG_FORMATS,
    LOG_LEVELS,
    MIN_BATCH_ROWS,
    SETTINGS,
    parse_since,
)

Decorator = Callable[[Callable], Callable]


def setting(name: str, **kwargs: Any) -> Decorator:
    """The option for one declared setting: --name, its variable, help and default."""
    declared = SETTINGS[name]
    if declared.default is not None:
        default = declared.default
        kwargs.setdefault(
            "default", default.isoformat() if hasattr(default, "isoformat") else default
        )
        kwargs.setdefault("show_default", True)
    return click.option(
        f"--{name.replace('_', '-')}",
        name,
        envvar=declared.envvar,
        show_envvar=True,
        help=declared.help,
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
deadline = setting("max_runtime", type=click.FloatRange(min=1))
reading = compose(
    setting("overlap", type=click.FloatRange(min=0)),
    setting("batch_rows", type=click.IntRange(min=MIN_BATCH_ROWS)),
    setting("range_rows", type=click.IntRange(min=1)),
)
# what the quarantine sets aside as implausible
checks = compose(
    setting("earliest_date", type=click.DateTime(["%Y-%m-%d"])),
    setting("latest_date", type=click.DateTime(["%Y-%m-%d"])),
    setting("clock_skew", type=click.FloatRange(min=0)),
)
# how deletions in the source are found (the settings), and a mass delete let through
finding_deletes = compose(
    setting("deletes_every", type=click.FloatRange(min=0)),
    setting("mass_delete_percent", type=click.FloatRange(min=0, max=100)),
)
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
        envvar="TOTESYS_CONFIG",
        show_envvar=True,
        metavar="FILE",
        help="The profiles file [default: ./totesys.toml, if there is one].",
    ),
    click.option(
        "--profile",
        envvar="TOTESYS_PROFILE",
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

    from totesys_cli import profiles
    from totesys_cli.errors import ConfigError

    try:
        config = ctx.params.get("config") or os.environ.get(profiles.CONFIG_ENV)
        path = profiles.find(config, Path.cwd())
        names = profiles.read(path).profiles if path else {}
    except ConfigError:
        return []
    return [n for n in names if n.startswith(incomplete)]


logging = compose(
    setting("log_level", type=click.Choice(LOG_LEVELS, case_sensitive=False)),
    setting("log_format", type=click.Choice(LOG_FORMATS)),
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
    import inspect

    from totesys_cli.settings import parse_settings

    accepted = inspect.signature(parse_settings).parameters
    return parse_settings(**{n: v for n, v in options.items() if n in accepted})
