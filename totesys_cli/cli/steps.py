"""The pipeline's commands: extract, transform, load and run-all."""

from __future__ import annotations

import sys

import click

from totesys_cli.cli import options, render


@click.command()
@options.source
@options.step
@options.tables
@options.reading
@options.checks
@options.deletes
def extract(tables: tuple[str, ...], since, **given) -> None:
    """Copy what changed in the source into the raw zone of the lake."""
    from totesys_cli import pipeline

    result = pipeline.extract(options.settings_from(given), tables, since)
    render.extracted(result)


@click.command()
@options.step
@options.checks
def transform(since, **given) -> None:
    """Remodel the raw runs not yet transformed into the star schemas (processed zone)."""
    from totesys_cli import pipeline

    render.transformed(pipeline.transform(options.settings_from(given), since))


@click.command()
@options.step
def load(since, **given) -> None:
    """Load every processed run not yet loaded into the warehouse, exactly once."""
    from totesys_cli import pipeline

    render.loaded(pipeline.load(options.settings_from(given), since))


@click.command("run-all")
@options.source
@options.step
@options.reading
@options.checks
@options.deletes
@click.pass_context
def run_all(ctx: click.Context, since, **given) -> None:
    """Extract, transform and load in one run, under one lock."""
    from totesys_cli import pipeline

    result = pipeline.run_all(options.settings_from(given), since)
    if sys.stdout.isatty() and ctx.obj["log_format"] == "text":
        render.run_summary(result)


@click.command()
@options.warehouse
@options.lake
@options.deadline
@click.option("--yes", is_flag=True, help="Confirm: the warehouse's rows are replaced.")
@click.option(
    "--allow-empty",
    is_flag=True,
    help="Rebuild even from a lake with no processed run (the star tables end empty).",
)
def rebuild(yes: bool, allow_empty: bool, **given) -> None:
    """Reload the warehouse from the configured lake, in one transaction (to move it to a
    new lake)."""
    from totesys_cli import pipeline
    from totesys_cli.errors import ConfigError

    if not yes:
        raise ConfigError(
            "rebuild empties the warehouse and loads every processed run of the configured "
            "lake, so it needs --yes",
            "Run totesys rebuild --yes",
        )
    result = pipeline.rebuild(options.settings_from(given), allow_empty)
    click.echo(
        f"rebuilt the warehouse from {render.plural(len(result.runs), 'processed run')}: "
        f"{result.rows:,} rows in {result.seconds:.1f} s"
    )


COMMANDS = (extract, transform, load, run_all, rebuild)
