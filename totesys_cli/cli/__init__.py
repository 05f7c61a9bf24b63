"""The command line: parse options, call one library function, render its result.

This package is the only place that knows click. The group below is the one error
boundary: every library error becomes one line and an exit code. Heavy libraries are
imported inside commands, so `totesys --help` stays instant.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sys
import threading

import click

from totesys_cli.cli import apps, configure, ops, options, steps
from totesys_cli.config.profiles import Profile
from totesys_cli.errors import EXIT_LOCKED, EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, TotesysError, told
from totesys_cli.observe import logs, progress

log = logging.getLogger("totesys_cli.cli")


class TotesysGroup(click.Group):
    """The one error boundary: library errors become one line and an exit code."""

    def main(self, args=None, prog_name=None, **extra):
        extra.pop("standalone_mode", None)
        argv = self.globals_first(list(args) if args is not None else sys.argv[1:])
        sys.exit(self.run_boundary(argv, prog_name or "totesys", extra))

    def globals_first(self, argv: list[str]) -> list[str]:
        """The group's own options (--log-level and the like) may follow the command, as
        in `totesys run-all --log-level DEBUG`: move them before it."""
        command = next((i for i, a in enumerate(argv) if a in self.commands), None)
        if command is None:
            return argv
        own = {name for p in self.params for name in p.opts if name.startswith("--")}
        before, after, moved = argv[:command], [], []
        rest = iter(argv[command:])
        for arg in rest:
            if arg == "--":
                after += [arg, *rest]
                break
            name = arg.split("=", 1)[0]
            if name in own and name not in ("--help", "--version"):
                moved += [arg] if "=" in arg else [arg, next(rest, "")]
            else:
                after.append(arg)
        return before + moved + after

    profile: Profile | None = None  # the profile in use, once read

    def profile_defaults(self, argv: list[str]) -> tuple[dict, Profile | None]:
        """The profile's settings; a broken file still lets --help and --version answer."""
        try:
            return configure.load(self, argv)
        except TotesysError:
            if {"--help", "-h", "--version"} & set(argv):
                return {}, None
            raise

    def run_boundary(self, argv: list[str], prog_name: str, extra: dict) -> int:
        try:
            with logs.step(logs.STARTUP):
                defaults, self.profile = self.profile_defaults(argv)
                code = super().main(
                    args=argv,
                    prog_name=prog_name,
                    standalone_mode=False,
                    default_map=defaults,
                    **extra,
                )
            return code if isinstance(code, int) else EXIT_OK
        except click.exceptions.Exit as done:
            return done.exit_code
        except click.exceptions.Abort:
            _error_line("aborted", None)
            return EXIT_RUNTIME
        except click.UsageError as err:
            where = err.ctx.command_path if err.ctx else prog_name
            said = err.format_message().rstrip(".")
            said += " " if said.endswith("?") else ". "
            _error_line(f"{said}Run '{where} --help' for usage", None)
            return EXIT_USAGE
        except TotesysError as err:
            _report(err)
            return err.exit_code
        except Exception as err:  # anything unexpected still gets one line and exit 1
            _report(told(err))
            return EXIT_RUNTIME
        finally:
            logs.shutdown()  # flushes CloudWatch before the process exits


def _report(err: TotesysError) -> None:
    """One line; the traceback only when the user asked for DEBUG."""
    level = logging.WARNING if err.exit_code == EXIT_LOCKED else logging.ERROR
    extra = {**err.fields, **({"step": err.step} if err.step else {})}
    debug = logging.getLogger(logs.LOGGER_NAME).isEnabledFor(logging.DEBUG)
    exc_info = (err.__cause__ or err) if debug else None
    if logs.is_configured():
        log.log(level, err.message, extra=extra, exc_info=exc_info)
    else:
        _error_line(err.message, err.step)


def _error_line(message: str, step: str | None) -> None:
    prefix = f"[{step}] " if step else ""
    click.echo(f"error: {prefix}{logs.redact(message)}", err=True)


@click.group(cls=TotesysGroup, context_settings={"help_option_names": ["-h", "--help"]})
@options.profile
@options.logging
@click.version_option(package_name="totesys")
@click.pass_context
def cli(
    ctx: click.Context, log_level: str, log_format: str, cloudwatch_log_group: str | None, **_
) -> None:
    """Keep the totesys star-schema warehouse up to date, incrementally, exactly once."""
    logs.set_run_id(logs.new_run_id())
    logs.configure(log_level, log_format, cloudwatch_log_group)
    progress.show(log_format == "text" and sys.stderr.isatty())
    ctx.obj = {"log_format": log_format}
    chosen = cli.profile  # read before parsing (see TotesysGroup.run_boundary)
    for warning in chosen.warnings if chosen else ():
        log.warning(warning)


for command in (*steps.COMMANDS, *ops.COMMANDS, *apps.COMMANDS, configure.config):
    cli.add_command(command)


def main() -> None:
    # Arrow's allocator (mimalloc) keeps the pages a table's load freed for later ones,
    # so a run's memory would climb to what all its tables held; returned at once, it is
    # what one table holds. Read when Arrow loads, after this.
    os.environ.setdefault("MIMALLOC_PURGE_DELAY", "0")
    try:
        cli.main(prog_name="totesys")
    except SystemExit as done:
        _exit(done.code)


def _exit(code: object) -> None:
    """End the process as an exit does, less the interpreter's teardown: freeing every
    module of Arrow, SQLAlchemy and the rest object by object costs about a fifth of a
    second, a fifth of a scheduled run with nothing to do. The exit handlers still run
    (the log's last lines, a coverage file) and the standard streams are flushed; a
    thread still running that is not a daemon gets the ordinary exit, which waits."""
    main = threading.main_thread()
    if any(t is not main and t.is_alive() and not t.daemon for t in threading.enumerate()):
        sys.exit(code)
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code or 0)
