"""The operations beside the pipeline: init, status, verify, lake gc and lake compact."""

from __future__ import annotations

import click

from totesys_cli.cli import options, render
from totesys_cli.errors import ConfigError
from totesys_cli.observe import logs


@click.command()
@options.warehouse
@options.source
def init(**given) -> None:
    """Create the warehouse tables, indexes and views if missing (idempotent); with a
    source, say which of its tables every run reads whole."""
    from totesys_cli.ops import init as initialise

    settings = options.settings_from(given)
    with logs.step("init"):
        created, per_row, whole = initialise.init(settings)
    if created:
        click.echo(f"warehouse initialised: created {render.plural(len(created), 'object')}")
    else:
        click.echo("warehouse already initialised: nothing to do")
    if per_row is not None:
        render.checked_per_row(per_row)
    if whole is not None:
        render.read_whole(whole)


@click.command()
@options.source
@options.warehouse
@options.lake
@options.as_json
def status(as_json: bool, **given) -> None:
    """Watermarks, pending runs, the last load, freshness and row counts (read-only)."""
    import json

    from totesys_cli.ops.status import status as read

    settings = options.settings_from(given)
    with logs.step("status"):
        result = read(settings)
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=1))
    else:
        render.status(result)


@click.command()
@options.source
@options.warehouse
@click.option(
    "--deleted", "show_deleted", is_flag=True, help="List the keys deleted in the source."
)
def verify(show_deleted: bool, **given) -> None:
    """Reconcile source and warehouse (row counts, sums per currency); exit 1 on drift."""
    from totesys_cli.ops.verify import reconcile

    settings = options.settings_from(given)
    with logs.step("verify"):
        result = reconcile(settings)
    render.verified(result, show_deleted)
    drift = result.error()
    if drift is not None:
        raise drift


@click.command()
@options.warehouse
@options.as_json
@click.option("--all", "everything", is_flag=True, help="Resolved entries too.")
def quarantine(as_json: bool, everything: bool, **given) -> None:
    """Row versions set aside: what is wrong with each, and which later run resolved it."""
    import json

    from totesys_cli.ops.quarantine import listing

    settings = options.settings_from(given)
    with logs.step("quarantine"):
        found = [e.as_dict() for e in listing(settings, everything)]
    if as_json:
        click.echo(json.dumps(found, indent=1))
    elif found:
        render.entries(found)
    else:
        click.echo("the quarantine holds no entries" if everything else "no open entries")


@click.command()
@options.warehouse
@options.as_json
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--failed", is_flag=True, help="Only runs that failed or did not finish.")
def runs(as_json: bool, limit: int, failed: bool, **given) -> None:
    """Past runs of every writing command: when, how they ended, what they did."""
    import json

    from totesys_cli.ops.runs import listing

    settings = options.settings_from(given)
    with logs.step("runs"):
        found = listing(settings, limit, failed)
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in found], indent=1))
    elif found:
        render.past_runs(found)
    else:
        click.echo("no failed runs recorded" if failed else "no runs recorded")


@click.group()
def lake() -> None:
    """Maintain the lake."""


@lake.command()
@options.lake
@options.warehouse
@options.deadline
@click.option(
    "--grace-hours",
    type=click.FloatRange(min=0),
    default=24,
    show_default=True,
    help="Keep uncommitted files younger than this (a run may still be writing).",
)
@click.option("--dry-run", is_flag=True, help="List what would be deleted; delete nothing.")
@click.option(
    "--whole",
    is_flag=True,
    help="Look through every file of both zones, not only the days since the last pass "
    "(after files were copied into the lake by hand).",
)
def gc(grace_hours: float, dry_run: bool, whole: bool, **given) -> None:
    """Delete files that no committed manifest names, once older than the grace period."""
    import datetime as dt

    from totesys_cli import pipeline

    grace = dt.timedelta(hours=grace_hours)
    result = pipeline.lake_gc(options.settings_from(given), grace, dry_run, whole)
    render.collected(result, dry_run, grace_hours)


@lake.command()
@options.lake
@options.warehouse
@options.deadline
@click.option(
    "--before",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="Compact the days before this one (default: the days before yesterday, which "
    "no run writes any more). Today's runs after a compaction of today stay as written.",
)
def compact(before, **given) -> None:
    """Rewrite the small files of each closed day into a few large ones."""
    import datetime as dt

    from totesys_cli import pipeline
    from totesys_cli.ops.compact import default_before

    day = before.date() if before else default_before()
    tomorrow = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)
    if day > tomorrow:
        raise ConfigError(
            f"--before {day} is after tomorrow: days no run has written yet would be "
            "recorded as compacted",
            f"Give a day up to {tomorrow}",
        )
    render.compacted(pipeline.lake_compact(options.settings_from(given), day))


COMMANDS = (init, status, verify, quarantine, runs, lake)
