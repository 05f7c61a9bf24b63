"""Structured logging: text for people, JSON lines for CloudWatch, the same fields in both.

Library code logs through ``logging.getLogger(__name__)`` and passes fields with
``extra={"table": ..., "rows": ...}``; the run id and the current step are added to
every line from context, so nothing needs to thread them through.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
import logging
import re
import sys
import uuid
from collections.abc import Iterator
from urllib.parse import quote

LOGGER_NAME = "totesys_cli"
# the step of every line a command logs before its own step begins (settings, secrets,
# connections, the lock): no line, and no error, is without a step
STARTUP = "startup"

_run_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("run_id", default=None)
_step: contextvars.ContextVar[str | None] = contextvars.ContextVar("step", default=None)
_secrets: set[str] = set()
_masks: list[re.Pattern[str]] = []

# attributes every LogRecord has; anything else on a record came from `extra=`
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "run_id", "step"}
_ORDER = ("table", "rows", "bytes", "seconds")


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def set_run_id(run_id: str) -> None:
    _run_id.set(run_id)


def run_id() -> str:
    """This run's id; library callers without one get a fresh id, so two runs never
    share file names."""
    current = _run_id.get()
    if current is None:
        current = new_run_id()
        _run_id.set(current)
    return current


@contextlib.contextmanager
def step(name: str) -> Iterator[None]:
    """Every line logged inside carries step=name."""
    token = _step.set(name)
    try:
        yield
    except Exception as err:
        if getattr(err, "step", None) is None:
            err.step = name  # so the error boundary can say which step failed
        raise
    finally:
        _step.reset(token)


def register_secret(value: str | None) -> None:
    """Never let this value reach any output where it stands as a value: as it is, or
    percent-encoded as it travels in a URL."""
    if not value or len(value) < 3:
        return
    for form in {value, quote(value, safe="")} - _secrets:
        _secrets.add(form)
        _masks.append(_value_pattern(form))


_KEYED = r"(?i:password|passwd|pwd|secret|token)['\"]?\s*[=:]\s*['\"]?"


def _value_pattern(secret: str) -> re.Pattern[str]:
    """Where a secret stands as a value: a URL's user-info (`user:SECRET@`), quoted
    (`'SECRET'`, `"SECRET"`), or after a key that names it (`password=SECRET`,
    `"password": "SECRET"`). Only there: masking it inside our own sentences would
    tell whoever reads them that the password is the word that went missing."""
    s = re.escape(secret)
    return re.compile(
        rf"(?P<pre>:){s}(?=@)|(?P<quote>['\"]){s}(?=(?P=quote))|(?P<key>{_KEYED}){s}(?![\w%])"
    )


def _masked(match: re.Match[str]) -> str:
    return (match.group("pre") or match.group("quote") or match.group("key")) + "***"


def redact(message: str) -> str:
    for mask in _masks:
        message = mask.sub(_masked, message)
    return message


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.run_id = _run_id.get()
        record.step = getattr(record, "step", None) or _step.get()
        return True


def _fields(record: logging.LogRecord) -> dict[str, object]:
    extra = {k: v for k, v in vars(record).items() if k not in _STANDARD}
    ordered = {k: extra.pop(k) for k in _ORDER if k in extra}
    ordered.update(extra)
    return ordered


class JsonFormatter(logging.Formatter):
    """One JSON object per line: what CloudWatch metric filters match on."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "message": redact(record.getMessage()),
            "logger": record.name,
            "run_id": getattr(record, "run_id", None),
            "step": getattr(record, "step", None),
        }
        line.update(_fields(record))
        if record.exc_info:
            line["traceback"] = redact(self.formatException(record.exc_info))
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    """Short lines for a person at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        when = dt.datetime.fromtimestamp(record.created, dt.UTC).strftime("%H:%M:%S")
        where = f"[{record.step}] " if getattr(record, "step", None) else ""
        fields = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        text = f"{when} {record.levelname:<7} {where}{redact(record.getMessage())}"
        if fields:
            text = f"{text}  {fields}"
        if record.exc_info:
            text = f"{text}\n{redact(self.formatException(record.exc_info))}"
        return text


def is_configured() -> bool:
    """Whether `configure` has set up our handlers (not whatever else a host attached)."""
    return any(getattr(h, "totesys", False) for h in logging.getLogger(LOGGER_NAME).handlers)


def shutdown() -> None:
    """Flush and detach our handlers: CloudWatch gets every line before the process exits."""
    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        handler.flush()
        handler.close()
        logger.removeHandler(handler)


def configure(
    level: str = "INFO", fmt: str = "text", cloudwatch_log_group: str | None = None, stream=None
) -> None:
    """Only the CLI calls this: stderr in the chosen format, plus CloudWatch when asked."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(level.upper())
    logger.propagate = False
    shutdown()

    console = logging.StreamHandler(stream or sys.stderr)
    console.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handlers: list[logging.Handler] = [console]
    if cloudwatch_log_group:
        handlers.append(_cloudwatch_handler(cloudwatch_log_group))
    for handler in handlers:
        handler.addFilter(_ContextFilter())
        handler.totesys = True  # type: ignore[attr-defined]
        logger.addHandler(handler)


def _cloudwatch_handler(log_group: str) -> logging.Handler:
    """JSON lines to a log group the deployment created; we never create it ourselves."""
    import watchtower

    from totesys_cli.config import aws

    run = _run_id.get() or new_run_id()
    stamp = dt.datetime.now(dt.UTC).strftime("%Y/%m/%d")
    handler = watchtower.CloudWatchLogHandler(
        log_group_name=log_group,
        log_stream_name=f"totesys/{stamp}/{run}",
        boto3_client=aws.client("logs"),
        create_log_group=False,
        send_interval=5,
    )
    handler.setFormatter(JsonFormatter())
    return handler
