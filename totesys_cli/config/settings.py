"""One typed settings object, checked on creation: pure values, no I/O.

Every setting is one field of `Settings` below, declared with its environment variable,
help, default and the values it accepts (its kind). From that one declaration come the
dataclass, the checks (`Settings` checks and converts whatever it is given: a string
from the environment, a value from a profile, a typed value from a library caller),
`SETTINGS` (by name, for profiles and `totesys config`) and the CLI's options with
their click types (`cli.options`). Heavy libraries are imported inside functions: the
CLI reads this module to draw `--help`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from totesys_cli.config.urls import parse_database_url
from totesys_cli.errors import ConfigError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

DAY_FORMAT = "%Y-%m-%d"


class Kind:
    """What a setting accepts: `parse` turns what it is given into its value or raises
    ConfigError; `wanted` and `fits` judge a profile's TOML value before that."""

    wanted = "a string"

    def fits(self, value: Any) -> bool:
        return isinstance(value, str)

    def parse(self, value: Any, where: str) -> Any:
        return str(value)


@dataclass(frozen=True)
class Number(Kind):
    integer: bool = False
    min: float | None = None
    max: float | None = None

    @property
    def wanted(self) -> str:
        return "an integer" if self.integer else "a number"

    def fits(self, value: Any) -> bool:
        kinds = int if self.integer else int | float
        return isinstance(value, kinds) and not isinstance(value, bool)

    def parse(self, value: Any, where: str) -> float | int:
        try:
            number = (int if self.integer else float)(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: {value!r} is not {self.wanted}") from None
        if self.integer and number != float(value):  # 2.5 rows is not 2 rows
            raise ConfigError(f"{where}: {value!r} is not {self.wanted}")
        low = self.min is None or number >= self.min
        high = self.max is None or number <= self.max
        if not (low and high) or isinstance(value, bool):
            raise ConfigError(f"{where}: {value!r} is not in the range {self.range}")
        return number

    @property
    def range(self) -> str:
        if self.max is None:
            return f"x>={self.min:g}"
        if self.min is None:
            return f"x<={self.max:g}"
        return f"{self.min:g}<=x<={self.max:g}"


@dataclass(frozen=True)
class Choice(Kind):
    values: tuple[str, ...]

    def parse(self, value: Any, where: str) -> str:
        found = {v.lower(): v for v in self.values}.get(str(value).lower())
        if found is None:
            shown = ", ".join(repr(v) for v in self.values)
            raise ConfigError(f"{where}: {value!r} is not one of {shown}")
        return found


class Day(Kind):
    wanted = "a date (YYYY-MM-DD)"

    def fits(self, value: Any) -> bool:
        return isinstance(value, str) or hasattr(value, "year")

    def parse(self, value: Any, where: str) -> dt.date:
        if isinstance(value, dt.datetime):
            return value.date()
        if isinstance(value, dt.date):
            return value
        try:
            return dt.datetime.strptime(str(value), DAY_FORMAT).date()
        except ValueError:
            raise ConfigError(f"{where}: {value!r} is not a date (YYYY-MM-DD)") from None


@dataclass(frozen=True)
class DatabaseUrl(Kind):
    role: str

    def parse(self, value: Any, where: str) -> URL:
        from sqlalchemy.engine import URL

        if isinstance(value, URL):
            return value
        return parse_database_url(self.role, str(value), envvar(f"{self.role}_url"))


TEXT = Kind()


def _setting(variable: str, help: str, default: Any = None, kind: Kind = TEXT) -> Any:
    """A field of `Settings` that is a setting: its variable, help and kind."""
    return field(default=default, metadata={"setting": (variable, help, kind)})


@dataclass(frozen=True)
class Settings:
    """Everything a command may need, as given; `endpoints` opens what a step requires.

    Each value is checked and converted on creation; secrets are only named here and
    read when a step opens its endpoints. One lake URL holds both zones; separate raw
    and processed URLs override it.
    """

    source_url: URL | None = _setting(
        "TOTESYS_SOURCE_URL",
        "The source database, a SQLAlchemy URL (postgresql://user:pw@host:5432/db).",
        kind=DatabaseUrl("source"),
    )
    source_secret: str | None = _setting(
        "TOTESYS_SOURCE_SECRET", "Secrets Manager id or ARN instead."
    )
    warehouse_url: URL | None = _setting(
        "TOTESYS_WAREHOUSE_URL",
        "The warehouse database, a SQLAlchemy URL (postgresql://user:pw@host:5432/db).",
        kind=DatabaseUrl("warehouse"),
    )
    warehouse_secret: str | None = _setting(
        "TOTESYS_WAREHOUSE_SECRET", "Secrets Manager id or ARN instead."
    )
    lake_url: str | None = _setting(
        "TOTESYS_LAKE_URL", "s3://bucket/prefix or a folder holding both zones."
    )
    raw_url: str | None = _setting(
        "TOTESYS_RAW_URL", "The raw zone, if apart from the processed zone."
    )
    processed_url: str | None = _setting("TOTESYS_PROCESSED_URL", "The processed zone, if apart.")
    max_runtime: float = _setting(
        "TOTESYS_MAX_RUNTIME",
        "Seconds the whole run may take (under the 10-minute schedule).",
        540,
        Number(min=1),
    )
    overlap: float = _setting(
        "TOTESYS_OVERLAP_MINUTES",
        "Minutes re-read behind the last snapshot, for rows committed late.",
        15,
        Number(min=0),
    )
    batch_rows: int = _setting(
        "TOTESYS_BATCH_ROWS",
        "Rows per extracted file; bounds memory.",
        250_000,
        Number(integer=True, min=100),
    )
    # a range takes seconds, so a run with a budget stops close to it; a table with fewer
    # keys is one range (one COPY), as every table of the benchmark dataset is
    range_rows: int = _setting(
        "TOTESYS_RANGE_ROWS",
        "Keys per range when a big window is read over several runs.",
        2_000_000,
        Number(integer=True, min=1),
    )
    earliest_date: dt.date = _setting(
        "TOTESYS_EARLIEST_DATE",
        "Dates and timestamps before this day are set aside as implausible.",
        dt.date(1900, 1, 1),
        Day(),
    )
    latest_date: dt.date = _setting(
        "TOTESYS_LATEST_DATE",
        "Dates and timestamps after this day are set aside as implausible.",
        dt.date(2100, 12, 31),
        Day(),
    )
    clock_skew: float = _setting(
        "TOTESYS_CLOCK_SKEW_MINUTES",
        "Minutes a row's last_updated may lie ahead of the extract's snapshot before it "
        "is set aside.",
        5,
        Number(min=0),
    )
    deletes_every: float = _setting(  # a comparison of keys reads every primary key
        "TOTESYS_DELETES_EVERY_MINUTES",
        "Minutes between comparisons of the source's keys, which find deleted rows, and "
        "between sweeps of the tables an index on last_updated serves (0: every run).",
        60,
        Number(min=0),
    )
    mass_delete_percent: float = _setting(
        "TOTESYS_MASS_DELETE_PERCENT",
        "A comparison finding more than this percent of a table deleted at once (or "
        "the table emptied) records nothing and fails the run.",
        5.0,
        Number(min=0, max=100),
    )
    log_level: str = _setting(
        "TOTESYS_LOG_LEVEL",
        "How much to log.",
        "INFO",
        Choice(("DEBUG", "INFO", "WARNING", "ERROR")),
    )
    log_format: str = _setting(
        "TOTESYS_LOG_FORMAT",
        "text for people, json for CloudWatch.",
        "text",
        Choice(("text", "json")),
    )
    cloudwatch_log_group: str | None = _setting(
        "TOTESYS_CLOUDWATCH_LOG_GROUP",
        "Also send the JSON log lines to this (existing) CloudWatch log group.",
    )
    token: str | None = _setting(
        "TOTESYS_DASHBOARD_TOKEN",
        "The dashboard's access token, shown once by a browser (?token=...); required "
        "to listen off loopback.",
    )
    # not a setting: the tables whose mass delete this run lets through, on purpose
    allow_mass_delete: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name, declared in SETTINGS.items():
            value = getattr(self, name)
            if value is not None and value != "":
                value = declared.kind.parse(value, f"{declared.envvar} (--{declared.option})")
            elif declared.default is None:
                value = None
            else:
                value = declared.default
            object.__setattr__(self, name, value)
        lake = self.lake_url.rstrip("/") if self.lake_url else None
        if lake and not self.raw_url:
            object.__setattr__(self, "raw_url", f"{lake}/raw")
        if lake and not self.processed_url:
            object.__setattr__(self, "processed_url", f"{lake}/processed")
        object.__setattr__(self, "allow_mass_delete", tuple(self.allow_mass_delete))
        if self.earliest_date >= self.latest_date:
            raise ConfigError(
                f"the earliest plausible date {self.earliest_date} is not before the latest "
                f"{self.latest_date}",
                f"Check {envvar('earliest_date')} and {envvar('latest_date')}",
            )

    @property
    def overlap_window(self) -> dt.timedelta:
        return dt.timedelta(minutes=self.overlap)

    @property
    def bounds(self) -> Bounds:
        return Bounds(self.earliest_date, self.latest_date, dt.timedelta(minutes=self.clock_skew))

    def url(self, role: str) -> URL | None:
        return self.source_url if role == "source" else self.warehouse_url

    def secret(self, role: str) -> str | None:
        return self.source_secret if role == "source" else self.warehouse_secret


@dataclass(frozen=True)
class Setting:
    """One setting as declared in `Settings`: the option `--name` (underscores as
    dashes), its variable, help, default and kind."""

    name: str
    envvar: str
    help: str
    default: Any
    kind: Kind

    @property
    def option(self) -> str:
        return self.name.replace("_", "-")


SETTINGS: dict[str, Setting] = {
    f.name: Setting(f.name, *f.metadata["setting"][:2], f.default, f.metadata["setting"][2])
    for f in fields(Settings)
    if "setting" in f.metadata
}


def envvar(name: str) -> str:
    return SETTINGS[name].envvar


def default(name: str) -> Any:
    return SETTINGS[name].default


@dataclass(frozen=True)
class Bounds:
    """Plausible dates, and how far ahead of the source's clock a row's clock may be:
    what lies outside is set aside in the quarantine, never loaded."""

    earliest: dt.date = field(default_factory=lambda: default("earliest_date"))
    latest: dt.date = field(default_factory=lambda: default("latest_date"))
    skew: dt.timedelta = field(default_factory=lambda: dt.timedelta(minutes=default("clock_skew")))


def parse_settings(**given: Any) -> Settings:
    """Settings from keyword values (None or absent: the default); unknown names are a
    mistake of the caller, not of the user."""
    return Settings(**{name: value for name, value in given.items() if value is not None})


def parse_since(value: str) -> dt.datetime:
    """--since is source data time in UTC: a date, or a date and time (ISO 8601)."""
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise ConfigError(
            f"--since {value!r} is not a date or timestamp",
            "Give it as 2026-11-25 or 2026-11-25T09:30:00 (UTC)",
        ) from None
    if parsed.tzinfo is not None:
        try:
            parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
        except OverflowError:
            raise ConfigError(
                f"--since {value!r} is before the first representable time",
                "Give a time from year 1 onwards, in UTC",
            ) from None
    if parsed > dt.datetime.now(dt.UTC).replace(tzinfo=None):
        raise ConfigError(f"--since {value!r} is in the future", "Give a time in the past, in UTC")
    return parsed
