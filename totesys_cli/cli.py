"""The command line: parse options, call one library function, render its result.

Heavy libraries are imported inside commands, so `totesys --help` stays instant.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

import click

from totesys_cli import logs
from totesys_cli.errors import EXIT_LOCKED, EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, TotesysError

log = logging.getLogger("totesys_cli.cli")

LOG_LEVELS = click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False)


def _option(*names: str, envvar: str, help: str, **kwargs) -> Callable:
    return click.option(*names, envvar=envvar, show_envvar=True, help=help, **kwargs)


def warehouse_options(command: Callable) -> Callable:
    command = _option(
        "--warehouse-secret",
        envvar="TOTESYS_WAREHOUSE_SECRET",
        help="Secrets Manager id or ARN holding the warehouse connection.",
    )(command)
    return _option(
        "--warehouse-url",
        envvar="TOTESYS_WAREHOUSE_URL",
        help="Warehouse SQLAlchemy URL (postgresql://user:pw@host:5432/db).",
    )(command)


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


@cli.command()
@warehouse_options
def init(warehouse_url: str | None, warehouse_secret: str | None) -> None:
    """Create the warehouse tables, indexes and views if missing (idempotent)."""
    from totesys_cli.settings import build_settings
    from totesys_cli.warehouse import init_warehouse

    settings = build_settings(warehouse_url=warehouse_url, warehouse_secret=warehouse_secret)
    with logs.step("init"):
        result = init_warehouse(settings.require_warehouse())
    if result.changed:
        count = len(result.created)
        click.echo(f"warehouse initialised: created {count} object{'s' if count != 1 else ''}")
    else:
        click.echo("warehouse already initialised: nothing to do")


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
