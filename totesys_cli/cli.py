"""The command line: parse options, call one library function, render its result.

Heavy libraries are imported inside commands, so `totesys --help` stays instant.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import click

from totesys_cli import logs
from totesys_cli.errors import EXIT_LOCKED, EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, TotesysError

log = logging.getLogger("totesys_cli.cli")

# the source tables, spelled out here so --help needs no import of the schemas
SOURCE_TABLE_NAMES = (
    "address",
    "counterparty",
    "currency",
    "department",
    "design",
    "staff",
    "sales_order",
    "purchase_order",
    "payment_type",
    "transaction",
    "payment",
)
LOG_LEVELS = click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False)


def _option(*names: str, envvar: str, help: str, **kwargs) -> Callable:
    return click.option(*names, envvar=envvar, show_envvar=True, help=help, **kwargs)


def _database_options(role: str) -> Callable:
    def decorate(command: Callable) -> Callable:
        command = _option(
            f"--{role}-secret",
            envvar=f"TOTESYS_{role.upper()}_SECRET",
            help=f"Secrets Manager id or ARN holding the {role} connection.",
        )(command)
        return _option(
            f"--{role}-url",
            envvar=f"TOTESYS_{role.upper()}_URL",
            help=f"The {role} database, a SQLAlchemy URL (postgresql://user:pw@host:5432/db).",
        )(command)

    return decorate


warehouse_options = _database_options("warehouse")
source_options = _database_options("source")


def lake_options(command: Callable) -> Callable:
    for name, envvar, text in (
        ("--processed-url", "TOTESYS_PROCESSED_URL", "The processed zone, if apart."),
        ("--raw-url", "TOTESYS_RAW_URL", "The raw zone, if apart from the processed zone."),
        ("--lake-url", "TOTESYS_LAKE_URL", "s3://bucket/prefix or a folder holding both zones."),
    ):
        command = _option(name, envvar=envvar, help=text)(command)
    return command


class SinceType(click.ParamType):
    name = "TIME"

    def convert(self, value, param, ctx):
        from totesys_cli.errors import ConfigError
        from totesys_cli.settings import parse_since

        if not isinstance(value, str):
            return value
        try:
            return parse_since(value)
        except ConfigError as err:
            self.fail(err.message, param, ctx)


def run_options(command: Callable) -> Callable:
    command = _option(
        "--max-runtime",
        envvar="TOTESYS_MAX_RUNTIME",
        type=click.FloatRange(min=1),
        default=540,
        show_default=True,
        help="Seconds the whole run may take (under the 10-minute schedule).",
    )(command)
    return click.option(
        "--since",
        type=SinceType(),
        help="Re-process source rows whose last_updated >= TIME (UTC date or timestamp).",
    )(command)


def _settings(options: dict):
    from totesys_cli.settings import build_settings

    names = (
        "source_url",
        "source_secret",
        "warehouse_url",
        "warehouse_secret",
        "lake_url",
        "raw_url",
        "processed_url",
    )
    return build_settings(**{n: options.get(n) for n in names})


def _watchdog(seconds: float) -> None:
    """A hung call cannot outlive the deadline: past it (and a grace), the process ends.
    PostgreSQL then releases the lock, and nothing half-written was committed."""
    import os
    import threading

    def expire() -> None:
        log.error("the run passed its --max-runtime of %g s and did not stop; exiting", seconds)
        logs.shutdown()
        os._exit(EXIT_RUNTIME)

    timer = threading.Timer(seconds + 30, expire)
    timer.daemon = True
    timer.start()


class TotesysGroup(click.Group):
    """The one error boundary: library errors become one line and an exit code."""

    def main(self, args=None, prog_name=None, **extra):
        extra.pop("standalone_mode", None)
        argv = list(args) if args is not None else sys.argv[1:]
        sys.exit(self.run_boundary(argv, prog_name or "totesys", extra))

    def run_boundary(self, argv: list[str], prog_name: str, extra: dict) -> int:
        try:
            code = super().main(args=argv, prog_name=prog_name, standalone_mode=False, **extra)
            return code if isinstance(code, int) else EXIT_OK
        except click.exceptions.Exit as done:
            return done.exit_code
        except click.exceptions.Abort:
            _error_line("aborted", None)
            return EXIT_RUNTIME
        except click.UsageError as err:
            where = err.ctx.command_path if err.ctx else prog_name
            _error_line(f"{err.format_message().rstrip('.')}. Run '{where} --help' for usage", None)
            return EXIT_USAGE
        except TotesysError as err:
            _report(err)
            return err.exit_code
        except Exception as err:  # anything unexpected still gets one line and exit 1
            wrapped = TotesysError(
                f"unexpected error: {type(err).__name__}: {err}",
                "Re-run with --log-level DEBUG and report it",
                step=getattr(err, "step", None),
            )
            wrapped.__cause__ = err
            _report(wrapped)
            return EXIT_RUNTIME
        finally:
            logs.shutdown()  # flushes CloudWatch before the process exits


@click.group(cls=TotesysGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--log-level",
    type=LOG_LEVELS,
    default="INFO",
    show_default=True,
    envvar="TOTESYS_LOG_LEVEL",
    show_envvar=True,
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    envvar="TOTESYS_LOG_FORMAT",
    show_envvar=True,
    help="text for people, json for CloudWatch.",
)
@click.option(
    "--cloudwatch-log-group",
    envvar="TOTESYS_CLOUDWATCH_LOG_GROUP",
    show_envvar=True,
    help="Also send the JSON log lines to this (existing) CloudWatch log group.",
)
@click.version_option(package_name="totesys")
@click.pass_context
def cli(
    ctx: click.Context, log_level: str, log_format: str, cloudwatch_log_group: str | None
) -> None:
    """Keep the totesys star-schema warehouse up to date, incrementally, exactly once."""
    logs.set_run_id(logs.new_run_id())
    logs.configure(log_level, log_format, cloudwatch_log_group)
    ctx.obj = {"log_format": log_format}


@cli.command()
@warehouse_options
def init(warehouse_url: str | None, warehouse_secret: str | None) -> None:
    """Create the warehouse tables, indexes and views if missing (idempotent)."""
    from totesys_cli.warehouse import init_warehouse

    settings = _settings({"warehouse_url": warehouse_url, "warehouse_secret": warehouse_secret})
    with logs.step("init"):
        result = init_warehouse(settings.require_warehouse())
    if result.changed:
        count = len(result.created)
        click.echo(f"warehouse initialised: created {count} object{'s' if count != 1 else ''}")
    else:
        click.echo("warehouse already initialised: nothing to do")


@cli.command()
@source_options
@warehouse_options
@lake_options
@run_options
@click.option(
    "--table",
    "tables",
    multiple=True,
    metavar="NAME",
    type=click.Choice(SOURCE_TABLE_NAMES),
    help="Extract only this table (repeatable).",
)
@_option(
    "--overlap",
    envvar="TOTESYS_OVERLAP_MINUTES",
    type=click.FloatRange(min=0),
    default=15,
    show_default=True,
    help="Minutes re-read behind the last snapshot, for rows committed late.",
)
@_option(
    "--batch-rows",
    envvar="TOTESYS_BATCH_ROWS",
    type=click.IntRange(min=1000),
    default=250_000,
    show_default=True,
    help="Rows per file; bounds memory.",
)
def extract(tables, overlap, batch_rows, since, max_runtime, **options) -> None:
    """Copy what changed in the source into the raw zone of the lake."""
    import datetime as dt

    from totesys_cli import extract as step
    from totesys_cli.runtime import Deadline, run_lock

    settings = _settings(options)
    _watchdog(max_runtime)
    with logs.step("extract"):
        source = settings.require_source()
        raw = settings.raw_lake()
        with run_lock(settings.warehouse, "extract"):
            result = step.extract(
                source,
                raw,
                step.ExtractOptions(
                    tables=tuple(tables) or step.SOURCE_TABLES,
                    since=since,
                    overlap=dt.timedelta(minutes=overlap),
                    batch_rows=batch_rows,
                ),
                Deadline(max_runtime),
            )
    _table(
        [(t.table, t.rows, t.bytes, t.seconds) for t in result.tables.values()],
        ("table", "rows", "bytes", "seconds"),
    )
    click.echo(
        f"extract run {result.seq} committed: {result.rows:,} rows in "
        f"{result.seconds:.1f} s (snapshot {result.snapshot:%Y-%m-%d %H:%M:%S} UTC)"
    )


@cli.command()
@lake_options
@warehouse_options
@run_options
def transform(since, max_runtime, **options) -> None:
    """Remodel the raw runs not yet transformed into the star schemas (processed zone)."""
    from totesys_cli.runtime import Deadline, run_lock
    from totesys_cli.transform import TransformOptions
    from totesys_cli.transform import transform as step

    settings = _settings(options)
    _watchdog(max_runtime)
    with logs.step("transform"):
        raw = settings.raw_lake()
        processed = settings.processed_lake()
        with run_lock(settings.warehouse, "transform"):
            result = step(raw, processed, TransformOptions(since=since), Deadline(max_runtime))
    if result.seq is None:
        click.echo("nothing to transform: every committed raw run is already transformed")
        return
    _table([(t.table, t.rows, t.bytes) for t in result.tables.values()], ("table", "rows", "bytes"))
    click.echo(
        f"processed run {result.seq} committed from raw runs "
        f"{_runs(result.raw_runs)}: {result.rows:,} rows in {result.seconds:.1f} s"
    )


@cli.command()
@warehouse_options
@lake_options
@run_options
def load(since, max_runtime, **options) -> None:
    """Load every processed run not yet loaded into the warehouse, exactly once."""
    from totesys_cli import load as step
    from totesys_cli.runtime import Deadline, run_lock

    settings = _settings(options)
    _watchdog(max_runtime)
    with logs.step("load"):
        warehouse = settings.require_warehouse()
        processed = settings.processed_lake()
        with run_lock(warehouse, "load"):
            result = step.load(
                warehouse, processed, step.LoadOptions(since=since), Deadline(max_runtime)
            )
    if not result.runs:
        click.echo("nothing to load: every committed processed run is already loaded")
        return
    _table(
        [
            (
                f"{'re' if r.reload else ''}loaded run {r.seq}",
                sum(r.rows.values()),
                sum(r.changed.values()),
                r.seconds,
            )
            for r in result.runs
        ],
        ("run", "rows", "changed", "seconds"),
    )
    click.echo(
        f"loaded {len(result.runs)} run{'s' if len(result.runs) != 1 else ''}: "
        f"{result.rows:,} rows changed in {result.seconds:.1f} s"
    )


@cli.command("run-all")
@source_options
@warehouse_options
@lake_options
@run_options
@click.pass_context
def run_all(ctx, since, max_runtime, **options) -> None:
    """Extract, transform and load in one run, under one lock."""
    from totesys_cli.pipeline import run_all as job

    settings = _settings(options)
    _watchdog(max_runtime)
    result = job(settings, since=since, max_runtime=max_runtime)
    if sys.stdout.isatty() and ctx.obj["log_format"] == "text":
        _render_run(result)


def _render_run(result) -> None:
    """Rows per table through each step, then seconds per step."""
    loaded: dict[str, int] = {}
    for run in result.load.runs:
        for table, count in run.changed.items():
            loaded[table] = loaded.get(table, 0) + count
    rows = [(name, t.rows, "", "") for name, t in result.extract.tables.items()]
    rows += [(name, "", t.rows, loaded.get(name, 0)) for name, t in result.transform.tables.items()]
    _table(rows, ("table", "extracted", "transformed", "loaded"))
    click.echo("seconds: " + ", ".join(f"{step} {s:.2f}" for step, s in result.seconds.items()))


@cli.command()
@source_options
@warehouse_options
@lake_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def status(as_json: bool, **options) -> None:
    """Watermarks, pending runs, the last load, freshness and row counts (read-only)."""
    import json

    from totesys_cli.status import status as read

    settings = _settings(options)
    with logs.step("status"):
        result = read(settings)
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=1))
        return
    unset = "not configured"
    click.echo(f"raw zone:        {result.raw_url or unset}")
    click.echo(f"processed zone:  {result.processed_url or unset}")
    click.echo(f"warehouse:       {result.warehouse or unset}")
    if result.tables:
        _table(
            [
                (t, v["watermark"] or "-", v["last_extract"] or "-")
                for t, v in result.tables.items()
            ],
            ("table", "watermark", "last extract"),
        )
    click.echo(f"last extract run:    {result.last_extract or '-'}")
    click.echo(f"not transformed:     {_listing(result.not_transformed)}")
    click.echo(f"last transform run:  {result.last_transform or '-'}")
    click.echo(f"not loaded:          {_listing(result.not_loaded)}")
    if result.last_load:
        load = result.last_load
        click.echo(f"last load:           run {load['run']} at {load['loaded_at']} UTC")
    else:
        click.echo("last load:           -")
    if result.freshness_seconds is not None:
        verdict = "healthy" if result.fresh else "STALE (over 30 minutes)"
        click.echo(f"freshness:           {result.freshness_seconds / 60:.1f} minutes, {verdict}")
    if result.row_counts:
        _table(list(result.row_counts.items()), ("star table", "rows"))


def _listing(runs: list[int]) -> str:
    if not runs:
        return "none"
    return f"{len(runs)} run{'s' if len(runs) != 1 else ''} ({_runs(runs)})"


@cli.command()
@source_options
@warehouse_options
def verify(**options) -> None:
    """Reconcile source and warehouse (row counts, sums per currency); exit 1 on drift."""
    from totesys_cli.errors import RuntimeFailure
    from totesys_cli.verify import verify as reconcile

    settings = _settings(options)
    with logs.step("verify"):
        result = reconcile(settings.require_source(), settings.require_warehouse())
    _render_verify(result)
    if result.drift:
        named = "; ".join(
            f"{c.table} {c.measure}: source {c.source}, warehouse {c.warehouse}"
            for c in result.drift
        )
        raise RuntimeFailure(
            f"the warehouse differs from the source: {named}",
            "Reprocess the window with totesys run-all --since",
            step="verify",
        )


def _render_verify(result) -> None:
    _table(
        [
            (c.table, c.measure, c.source, c.warehouse, "ok" if c.ok else "DRIFT")
            for c in result.checks
        ],
        ("table", "check", "source", "warehouse", ""),
    )
    pending = sum(result.pending.values())
    click.echo(
        f"as of the loaded snapshot {result.snapshot:%Y-%m-%d %H:%M:%S} UTC; "
        f"{pending} source row{'s' if pending != 1 else ''} changed since "
        "(left for the next run)"
    )


def _dashboard():
    """The dashboard package, or one line on how to install it."""
    from totesys_cli.errors import ConfigError

    try:
        from totesys_cli.dashboard import server
    except ModuleNotFoundError as err:
        raise ConfigError(
            f"the dashboard and the report need {err.name}, which is not installed",
            "Install them with pip install 'totesys[dashboard]'",
        ) from None
    return server


def _filters(start, end, currency: str | None, currencies: list[str]):
    from totesys_cli.dashboard.queries import Filters
    from totesys_cli.errors import ConfigError

    bounds = {"start": start.date() if start else None, "end": end.date() if end else None}
    if bounds["start"] and bounds["end"] and bounds["start"] > bounds["end"]:
        raise ConfigError(f"--from {bounds['start']} is after --to {bounds['end']}")
    code = currency.strip().upper() if currency else None
    if code is not None and code not in currencies:
        raise ConfigError(
            f"--currency {currency} is not one the warehouse holds",
            f"Give one of {', '.join(currencies)}",
        )
    return Filters(**{k: v for k, v in bounds.items() if v is not None}, currency=code)


def filter_options(command: Callable) -> Callable:
    command = click.option(
        "--currency", help="Keep one currency code (GBP); all currencies by default."
    )(command)
    command = click.option(
        "--to", "end", type=click.DateTime(["%Y-%m-%d"]), help="Last day (orders created)."
    )(command)
    return click.option(
        "--from",
        "start",
        type=click.DateTime(["%Y-%m-%d"]),
        help="First day: orders created, payments falling due [default: the first].",
    )(command)


@cli.command()
@warehouse_options
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=8050, show_default=True, help="Port."
)
def dashboard(host: str, port: int, **options) -> None:
    """Serve a live dashboard of the warehouse: sales, purchasing, payments, freshness."""
    import signal

    server = _dashboard()
    warehouse = server.Warehouse(_settings(options).require_warehouse())
    with logs.step("dashboard"):
        warehouse.check()
        httpd = server.make_server(warehouse, host, port)
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"dashboard on http://{shown}:{httpd.server_address[1]}/ (Ctrl-C stops it)")

    def terminated(*_) -> None:  # a service manager stops it as Ctrl-C does
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminated)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        click.echo("dashboard stopped")
    finally:
        httpd.server_close()


@cli.command()
@warehouse_options
@click.option(
    "--out",
    required=True,
    help="The HTML file to write, or s3://bucket/key to upload it.",
)
@filter_options
def report(out: str, start, end, currency, **options) -> None:
    """Write the dashboard as one self-contained HTML file that opens with no network."""
    server = _dashboard()
    warehouse = server.Warehouse(_settings(options).require_warehouse())
    with logs.step("report"):
        warehouse.check()
        filters = _filters(start, end, currency, warehouse.currencies())
        size = server.write_report(warehouse, filters, out)
    click.echo(f"report written to {out} ({size / 1e6:.1f} MB, opens with no network)")


@cli.group()
def lake() -> None:
    """Maintain the lake."""


@lake.command()
@lake_options
@warehouse_options
@click.option(
    "--grace-hours",
    type=click.FloatRange(min=0),
    default=24,
    show_default=True,
    help="Keep uncommitted files younger than this (a run may still be writing).",
)
@click.option("--dry-run", is_flag=True, help="List what would be deleted; delete nothing.")
def gc(grace_hours: float, dry_run: bool, **options) -> None:
    """Delete files that no committed manifest names, once older than the grace period."""
    import datetime as dt

    from totesys_cli import gc as garbage
    from totesys_cli.runtime import run_lock

    settings = _settings(options)
    with logs.step("gc"):
        zones = [
            settings.raw_lake(),
            settings.processed_lake(),
        ]
        with run_lock(settings.warehouse, "lake gc"):
            result = garbage.collect(zones, dt.timedelta(hours=grace_hours), dry_run)
    verb = "would delete" if dry_run else "deleted"
    click.echo(
        f"{verb} {result.count} uncommitted file{'s' if result.count != 1 else ''} "
        f"({result.bytes:,} bytes); kept {result.kept_young} younger than "
        f"{grace_hours:g} h"
    )


@cli.command()
@click.option(
    "--folder",
    type=click.Path(path_type=Path),
    envvar="TOTESYS_DEMO_DIR",
    show_envvar=True,
    help="Where the demo keeps its server and lake [default: ~/.totesys-demo].",
)
@click.option(
    "--scale",
    type=click.FloatRange(min=0.01, max=20),
    default=1.0,
    show_default=True,
    help="Source size; 1 is about today's real database.",
)
@click.option("--stop", is_flag=True, help="Stop the demo's PostgreSQL server and exit.")
@click.pass_context
def demo(ctx: click.Context, folder: Path | None, scale: float, stop: bool) -> None:
    """The whole job on an embedded PostgreSQL and a local lake, no set-up."""
    from totesys_cli import demo as show

    folder = folder or show.default_folder()
    if stop:
        stopped = show.stop_demo(folder)
        click.echo("demo server stopped" if stopped else f"no demo server runs in {folder}")
        return
    if ctx.get_parameter_source("log_level") != click.core.ParameterSource.COMMANDLINE:
        logging.getLogger(logs.LOGGER_NAME).setLevel(logging.WARNING)  # the tables tell it
    with logs.step("demo"):
        result = show.run_demo(folder, scale=scale, say=click.echo)
    click.echo("\nFirst run:")
    _render_run(result.first)
    click.echo("\nSecond run, after the activity:")
    _render_run(result.second)
    click.echo("\nverify: source and warehouse reconciled")
    _render_verify(result.verified)
    click.echo("\nRevenue by delivery country, per currency (from fact_sales_order_latest):")
    _table(
        [
            (country, code, f"{revenue:,.2f}", orders)
            for country, code, revenue, orders in result.revenue
        ],
        ("country", "currency", "revenue", "orders"),
    )
    click.echo(show.how_to_explore(result))


def _runs(seqs: list[int]) -> str:
    return f"{seqs[0]}-{seqs[-1]}" if len(seqs) > 1 else str(seqs[0])


def _table(rows: list[tuple], headers: tuple[str, ...]) -> None:
    """A plain aligned table on stdout: results, not logs."""
    cells = [headers] + [tuple(_cell(v) for v in row) for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for row in cells:
        click.echo(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )


def _cell(value) -> str:
    if isinstance(value, float | Decimal):
        return f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def main() -> None:
    cli.main(prog_name="totesys")


def _report(err: TotesysError) -> None:
    """One line; the traceback only when the user asked for DEBUG."""
    level = logging.WARNING if err.exit_code == EXIT_LOCKED else logging.ERROR
    extra = {"step": err.step} if err.step else {}
    debug = logging.getLogger(logs.LOGGER_NAME).isEnabledFor(logging.DEBUG)
    exc_info = (err.__cause__ or err) if debug else None
    if logs.is_configured():
        log.log(level, err.message, extra=extra, exc_info=exc_info)
    else:
        _error_line(err.message, err.step)


def _error_line(message: str, step: str | None) -> None:
    prefix = f"[{step}] " if step else ""
    click.echo(f"error: {prefix}{logs.redact(message)}", err=True)
