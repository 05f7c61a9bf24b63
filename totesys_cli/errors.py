"""The one error hierarchy: each error says what failed and what to do, and maps to an exit code."""

from __future__ import annotations

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2
EXIT_LOCKED = 75


class TotesysError(Exception):
    """A failure the user can act on; the CLI prints it as one line."""

    exit_code = EXIT_RUNTIME
    fields: dict[str, object] = {}  # noqa: RUF012 - structured fields of its log line

    def __init__(self, problem: str, hint: str | None = None, *, step: str | None = None):
        self.problem = problem
        self.hint = hint
        self.step = step
        super().__init__(self.message)

    @property
    def message(self) -> str:
        return f"{self.problem}. {self.hint}" if self.hint else self.problem


class ConfigError(TotesysError):
    """Usage or configuration: bad option, malformed URL, missing setting, wrong credentials."""

    exit_code = EXIT_USAGE


class RuntimeFailure(TotesysError):
    """The run could not complete: unreachable host, failed step, corrupt data, deadline."""


class DeadlinePassed(RuntimeFailure):
    """The run's --max-runtime passed before it finished."""


class Drift(RuntimeFailure):
    """verify found the warehouse different from the source. Its line carries `drift`,
    the number of measures that differ, which an alarm of its own watches: a drift is
    not a failed run."""

    def __init__(self, problem: str, hint: str, drift: int):
        super().__init__(problem, hint, step="verify")
        self.fields = {"drift": drift}


class LockedError(TotesysError):
    """Another run holds the warehouse lock; not an error worth paging anyone for."""

    exit_code = EXIT_LOCKED


def told(err: BaseException) -> TotesysError:
    """The error a command ends with: `err` itself when it is one the user can act on,
    else an unexpected error (exit 1) asking for a report, with `err` as its cause."""
    if isinstance(err, TotesysError):
        return err
    wrapped = TotesysError(
        f"unexpected error: {type(err).__name__}: {err}",
        "Re-run with --log-level DEBUG and report it",
        step=getattr(err, "step", None),
    )
    wrapped.__cause__ = err
    return wrapped
