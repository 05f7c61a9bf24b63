"""What counts as a bad value, decided once: the rules that set a source row version aside.

A version that cannot be typed (extract) or mapped (transform) goes to the quarantine
of its zone instead of stopping the run; every other row of the run goes through. Each
kind of bad value is one rule below, vectorised over Arrow columns: on a clean chunk a
rule costs a null count or a minimum and maximum, and only a chunk that breaks one
looks at its rows one by one, never in Python.

An entry names the source table, the key, the version (`last_updated`, as text, since a
bad one may not be a timestamp at all), the column, the value as text, the kind of
problem and the raw run the version was read in. When it is resolved is the transform's
to say (`transform/quarantine.py`).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from totesys_cli.config.settings import Bounds
from totesys_cli.schemas.arrow import arrow_type
from totesys_cli.schemas.warehouse import QUARANTINE

log = logging.getLogger(__name__)

# the kinds, each with the reason it is given in every listing
NOT_A_DATE = "not_a_date"
IMPLAUSIBLE = "implausible"
IN_THE_FUTURE = "in_the_future"
MISSING = "missing"
DOES_NOT_FIT = "does_not_fit"
UNKNOWN_CURRENCY = "unknown_currency"
MISSING_PARENT = "missing_parent"
NOT_TEXT = "not_utf8"
REASONS = {
    NOT_A_DATE: "not a YYYY-MM-DD calendar date",
    IMPLAUSIBLE: "outside the plausible dates",
    IN_THE_FUTURE: "later than the extract's snapshot (beyond the clock-skew tolerance)",
    MISSING: "NULL where the warehouse requires a value",
    DOES_NOT_FIT: "does not fit the warehouse's type without loss",
    UNKNOWN_CURRENCY: "not an ISO 4217 currency code",
    MISSING_PARENT: "references a row no processed run has emitted",
    NOT_TEXT: "not valid UTF-8 text (shown with \\xNN for the bytes that are not)",
}

# an entry as the lake's files carry it: these columns of `totesys_meta.quarantine`
# (declared there once; the files call column_name `column`), and whether the run that
# wrote it resolved it
FILE_NAMES = {"column_name": "column"}
CARRIED = (
    "source_table",
    "key",
    "version",
    "last_updated",
    "column_name",
    "value",
    "kind",
    "reason",
    "raw_seq",
)
ENTRY = pa.schema(
    [
        *(
            pa.field(FILE_NAMES.get(n, n), arrow_type(QUARANTINE.c[n]), QUARANTINE.c[n].nullable)
            for n in CARRIED
        ),
        pa.field("resolved", pa.bool_(), nullable=False),
    ]
)
IDENTITY = ("source_table", "key", "version", "column", "kind")  # as the files name them


def table_name(column: str) -> str:
    """A column of an entry's file as `totesys_meta.quarantine` names it."""
    return {file: table for table, file in FILE_NAMES.items()}.get(column, column)


TIMESTAMP_TEXT = r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,3})?$"


def implausible(bounds: Bounds) -> str:
    return f"{REASONS[IMPLAUSIBLE]} ({bounds.earliest} to {bounds.latest})"


def as_text(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Any column's values as text, as they would be listed."""
    if pa.types.is_timestamp(values.type):
        return pc.strftime(values, format="%Y-%m-%d %H:%M:%S")  # milliseconds included
    return pc.cast(values, pa.string())


@dataclass
class Findings:
    """The bad values of one chunk of one source table, row by row and column by column.

    Each row's version is its `last_updated` where that is a timestamp, else the text
    the source holds (`infinity`, microseconds)."""

    table: str
    key: pa.Array
    last_updated: pa.Array
    raw_seq: int
    raw_version: pa.Array | None = None  # the text, when the rows were read as text
    found: list[pa.Table] = field(default_factory=list)
    bad: pa.Array | None = None
    flagged: dict[str, pa.Array] = field(default_factory=dict)

    def add(self, mask, column: str, values, kind: str, reason: str | None = None) -> None:
        """Rows where `mask` holds have a bad `column`: record them and set them aside
        (once per row and column, whichever rule found it first)."""
        mask = pc.fill_null(mask, False)
        if column in self.flagged:
            mask = pc.and_(mask, pc.invert(self.flagged[column]))
        if not pc.any(mask).as_py():
            return
        self.flagged[column] = _or(self.flagged.get(column), mask)
        self.bad = _or(self.bad, mask)
        count = pc.sum(mask).as_py()
        stamps = self.last_updated.filter(mask)
        version = as_text(stamps)
        if self.raw_version is not None:
            version = pc.coalesce(version, self.raw_version.filter(mask))
        self.found.append(
            pa.table(
                {
                    "source_table": pa.array([self.table] * count, pa.string()),
                    "key": pc.cast(self.key.filter(mask), pa.int64()),
                    "version": pc.fill_null(version, ""),
                    "last_updated": stamps,
                    "column": pa.array([column] * count, pa.string()),
                    "value": as_text(values).filter(mask),
                    "kind": pa.array([kind] * count, pa.string()),
                    "reason": pa.array([reason or REASONS[kind]] * count, pa.string()),
                    "raw_seq": pa.array([self.raw_seq] * count, pa.int32()),
                    "resolved": pa.array([False] * count, pa.bool_()),
                },
                schema=ENTRY,
            )
        )

    def good(self, rows: pa.Table) -> pa.Table:
        """The rows no rule set aside."""
        return rows if self.bad is None else rows.filter(pc.invert(self.bad))

    def entries(self) -> pa.Table:
        return pa.concat_tables(self.found) if self.found else ENTRY.empty_table()


def _or(a: pa.Array | None, b: pa.Array) -> pa.Array:
    return b if a is None else pc.or_(a, b)


# ---------------------------------------------------------------- the rules


def check_missing(findings: Findings, rows: pa.Table, required: list[str]) -> None:
    """NULL in a column the warehouse requires."""
    for name in required:
        column = rows.column(name)
        if column.null_count:
            findings.add(pc.is_null(column), name, column, MISSING)


def check_plausible(findings: Findings, rows: pa.Table, columns: list[str], bounds: Bounds) -> None:
    """Dates and timestamps outside the plausible range (so the calendar never grows by
    centuries for one typo)."""
    for name in columns:
        column = rows.column(name)
        low, high = pc.min_max(column).as_py().values()
        if low is None:
            continue
        day = (lambda v: v.date()) if isinstance(low, dt.datetime) else (lambda v: v)
        if bounds.earliest <= day(low) and day(high) <= bounds.latest:
            continue
        earliest = pa.scalar(bounds.earliest, pa.date32())
        latest = pa.scalar(bounds.latest, pa.date32())
        days = pc.cast(column, pa.date32())
        outside = pc.or_(pc.less(days, earliest), pc.greater(days, latest))
        findings.add(outside, name, column, IMPLAUSIBLE, implausible(bounds))


def check_not_after(findings: Findings, rows: pa.Table, column: str, limit: dt.datetime) -> None:
    """A `last_updated` later than the extract's snapshot plus the clock skew: a typo or a
    clock gone wrong, which would otherwise hold the dimension guard for ever."""
    values = rows.column(column)
    high = pc.max(values).as_py()
    if high is not None and high > limit:
        findings.add(
            pc.greater(values, pa.scalar(limit, values.type)), column, values, IN_THE_FUTURE
        )


def text_dates(findings: Findings, rows: pa.Table, column: str, bounds: Bounds) -> pa.Array:
    """Text holding a date: a strict YYYY-MM-DD calendar date, in the plausible range.
    Returns the dates (null where the text is not one)."""
    values = rows.column(column)
    try:
        dates = pc.cast(values, pa.date32())
    except pa.ArrowInvalid:
        # the round trip keeps only real calendar dates written the ISO way
        parsed = pc.strptime(values, format="%Y-%m-%d", unit="s", error_is_null=True)
        again = pc.strftime(parsed, format="%Y-%m-%d")
        good = pc.fill_null(pc.equal(again, values), False)
        findings.add(pc.invert(good), column, values, NOT_A_DATE)
        dates = pc.cast(pc.if_else(good, parsed, None), pa.date32())
    check_plausible(findings, pa.table({column: dates}), [column], bounds)
    return dates


def timestamps(text: pa.Array) -> pa.Array:
    """Text that holds a millisecond timestamp, converted; null where it does not."""
    fits = pc.fill_null(pc.match_substring_regex(text, TIMESTAMP_TEXT), False)
    return pc.cast(pc.if_else(fits, text, None), pa.timestamp("ms"))


def texts(raw: pa.Table) -> tuple[pa.Table, dict[str, pa.Array]]:
    """Columns read as bytes, as text: bytes that are not UTF-8 (a SQL_ASCII source) are
    written `\\xNN`, losing nothing; returns where, per column."""
    columns, invalid = {}, {}
    for name in raw.column_names:
        values = raw.column(name)
        try:
            columns[name] = pc.cast(values, pa.string())
            continue
        except pa.ArrowInvalid:
            pass
        decoded, bad = [], []
        for value in values.to_pylist():
            try:
                decoded.append(None if value is None else value.decode())
                bad.append(False)
            except UnicodeDecodeError:
                decoded.append(value.decode(errors="backslashreplace"))
                bad.append(True)
        columns[name] = pa.array(decoded, pa.string())
        invalid[name] = pa.array(bad, pa.bool_())
    return pa.table(columns), invalid


def convert(
    findings: Findings, strings: pa.Table, schema: pa.Schema, kept: set[str]
) -> tuple[pa.Table, dict[str, int]]:
    """Columns read as text, converted to their declared types; a value that does not fit
    its type without loss is recorded and left null. For a source whose column types
    changed (numeric(12,4), timestamp(6), bigint) or that holds `infinity`. In a column
    the warehouse does not hold, such a value is only left null: returns how many, per
    column."""
    columns, blanked = {}, {}
    for target in schema:
        text = strings.column(target.name)
        if pa.types.is_string(target.type):
            columns[target.name] = text
            continue
        fits = pc.fill_null(pc.match_substring_regex(text, _pattern(target.type)), True)
        if pa.types.is_timestamp(target.type) and target.name in kept:
            # PostgreSQL's infinities are dates too far
            for word, kind in (("infinity", IN_THE_FUTURE), ("-infinity", IMPLAUSIBLE)):
                findings.add(pc.equal(text, word), target.name, text, kind)
            fits = pc.or_(fits, pc.is_in(text, pa.array(["infinity", "-infinity"])))
        candidate = pc.if_else(fits, text, None)
        if pa.types.is_boolean(target.type):
            converted = pc.equal(candidate, "t")
        else:
            converted = pc.cast(
                pc.if_else(pc.match_substring_regex(candidate, "infinity"), None, candidate),
                _wide(target.type),
            )
        if pa.types.is_integer(target.type):
            low, high = _int_range(target.type)
            inside = pc.and_(pc.greater_equal(converted, low), pc.less_equal(converted, high))
            fits = pc.and_(fits, pc.fill_null(inside, True))
        if target.name in kept:
            findings.add(pc.invert(fits), target.name, text, DOES_NOT_FIT)
        elif misfits := pc.sum(pc.and_(pc.invert(fits), pc.is_valid(text))).as_py():
            blanked[target.name] = misfits
        columns[target.name] = pc.cast(pc.if_else(fits, converted, None), target.type)
    return pa.table(columns), blanked


def _pattern(kind: pa.DataType) -> str:
    """The text of a value that fits the type without loss, as PostgreSQL writes it."""
    if pa.types.is_decimal(kind):
        whole = kind.precision - kind.scale
        return rf"^-?\d{{1,{whole}}}(\.\d{{0,{kind.scale}}}0*)?$"
    if pa.types.is_timestamp(kind):
        return TIMESTAMP_TEXT
    if pa.types.is_integer(kind):
        return r"^-?\d{1,19}$"
    if pa.types.is_boolean(kind):
        return r"^[tf]$"
    raise TypeError(f"no text pattern for {kind}")


def _wide(kind: pa.DataType) -> pa.DataType:
    """A type every fitting text converts to, checked against the target afterwards."""
    return pa.int64() if pa.types.is_integer(kind) else kind


def _int_range(kind: pa.DataType) -> tuple[pa.Scalar, pa.Scalar]:
    bits = kind.bit_width - 1
    return pa.scalar(-(2**bits), pa.int64()), pa.scalar(2**bits - 1, pa.int64())


def warn(entries: pa.Table, where: str, shown: int = 5) -> None:
    """One WARNING per source table: how many versions were set aside, why, a few keys."""
    if entries.num_rows == 0:
        return
    for table in sorted(set(entries.column("source_table").to_pylist())):
        mine = entries.filter(pc.equal(entries.column("source_table"), table))
        problems = mine.group_by(["column", "reason"]).aggregate([]).to_pylist()
        versions = mine.group_by(["key", "version"]).aggregate([]).num_rows
        keys = sorted(pc.unique(mine.column("key")).to_pylist())
        said = "; ".join(f"{p['column']} {p['reason']}" for p in problems)
        more = f" and {len(keys) - shown} more" if len(keys) > shown else ""
        log.warning(
            "set aside %d version%s of %s in the %s quarantine: %s (keys %s%s)",
            versions,
            "" if versions == 1 else "s",
            table,
            where,
            said,
            ", ".join(str(k) for k in keys[:shown]),
            more,
            extra={"table": table, "quarantined": versions},
        )
