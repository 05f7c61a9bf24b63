"""Reading the source: its columns checked, each table's change window as one COPY,
and PostgreSQL's CSV parsed into Arrow with the declared types."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
from sqlalchemy import Connection, Table, cast, func, literal, or_, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import TIMESTAMP

from totesys_cli.config.settings import Bounds, envvar
from totesys_cli.db.catalog import columns
from totesys_cli.errors import ConfigError, RuntimeFailure
from totesys_cli.schemas import quality, source_key, source_table
from totesys_cli.schemas.arrow import arrow_schema
from totesys_cli.schemas.source import kept

log = logging.getLogger(__name__)

_DIALECT = postgresql.dialect()


def _declared_type(column) -> str:
    """A declared column's type as PostgreSQL's format_type writes it."""
    compiled = column.type.compile(dialect=_DIALECT)
    return (
        compiled
        if compiled.startswith('"')
        else (compiled.lower().replace(", ", ",").replace("varchar", "character varying"))
    )


def _nullability(nullable: bool) -> str:
    return "NULL allowed" if nullable else "NOT NULL"


def check_columns(conn: Connection, tables: tuple[str, ...]) -> None:
    """Every declared column is there before anything is read. An extra column is a
    warning; so is a column whose type or nullability changed: its values that fit go
    through, the others are set aside."""
    present = columns(conn, list(tables))
    hint = f"Check that {envvar('source_url')} points at the totesys database"
    for name in tables:
        declared = source_table(name).columns
        if name not in present:
            raise RuntimeFailure(f"the source has no table {name}", hint)
        missing = [c.name for c in declared if c.name not in present[name]]
        if missing:
            raise RuntimeFailure(
                f"the source table {name} has no column {', '.join(missing)}; nothing was "
                "extracted",
                hint,
            )
        extra = sorted(set(present[name]) - {c.name for c in declared})
        if extra:
            log.warning(
                "the source table %s has columns totesys does not read: %s",
                name,
                ", ".join(extra),
                extra={"table": name},
            )
        for column in declared:
            found, nullable = present[name][column.name]
            expected = _declared_type(column)
            if found != expected or (nullable and not column.nullable):
                log.warning(
                    "the source column %s.%s is %s, %s; totesys expects %s, %s: values that "
                    "do not fit are set aside in the quarantine",
                    name,
                    column.name,
                    found,
                    _nullability(nullable),
                    expected,
                    _nullability(column.nullable),
                    extra={"table": name},
                )


# the transaction ids one snapshot asks about at most (about 0.3 s): past that, a
# transaction has stayed open that long, and what was written since it began is read again
_XID_SCAN = 1_000_000


@dataclass(frozen=True)
class _Before:
    """What was in progress just before the extract's snapshot."""

    xmax: int
    running: list[int] | None  # None: too many ids to ask about


def _in_progress(conn: Connection) -> _Before:
    """The session's encoding; then every transaction id in progress, subtransactions
    included, asked before the snapshot: a subtransaction of a transaction in progress
    is in progress too, even once its SAVEPOINT was released."""
    conn.execute(text("SET TRANSACTION READ ONLY"))  # the source is only ever read
    # the rows come as UTF-8, converted by the server from the source's encoding; a
    # SQL_ASCII source converts nothing, so its bytes come as stored (see `quality.texts`)
    conn.execute(
        text(
            "SELECT set_config('client_encoding', CASE current_setting('server_encoding') "
            "WHEN 'SQL_ASCII' THEN 'SQL_ASCII' ELSE 'UTF8' END, false)"
        )
    )
    xmax, running = conn.execute(
        text(
            "WITH s AS (SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS low, "
            "pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS high) "
            "SELECT high, CASE WHEN high - low <= :scan THEN array("
            "SELECT x FROM generate_series(low, high - 1) AS x "
            "WHERE pg_xact_status(x::text::xid8) = 'in progress') END FROM s"
        ),
        {"scan": _XID_SCAN},
    ).one()
    conn.commit()  # nothing written; the extract's own transaction begins after this
    return _Before(int(xmax), None if running is None else [int(x) for x in running])


def _with_subtransactions(xids: str, before: _Before) -> str:
    """The snapshot as the late-commit rule must judge it. pg_current_snapshot() lists
    top-level transactions only, so pg_visible_in_snapshot() calls a subtransaction (a
    SAVEPOINT, a PL/pgSQL EXCEPTION block) of a transaction in progress visible. Every id
    in progress just before the snapshot is added, and every id from that moment's xmax
    on is judged not visible: at worst a few rows of transactions that committed between
    the two are read again, never one missed."""
    xmin, xmax, listed = xids.split(":")
    low = int(xmin)
    if before.running is None:
        log.warning(
            "a transaction has been open on the source for more than %d transactions "
            "(since transaction %s): whatever was written since it began is read again by "
            "the next run. Is a session idle in transaction?",
            _XID_SCAN,
            xmin,
        )
        return f"{low}:{low}:"
    high = max(low, min(before.xmax, int(xmax)))
    ids = {int(x) for x in listed.split(",") if x} | set(before.running)
    return f"{low}:{high}:" + ",".join(str(x) for x in sorted(ids) if low <= x < high)


@dataclass(frozen=True)
class Snapshot:
    """The extract's snapshot: its database time; the transactions it did not see, as the
    late-commit rule judges them (see `_with_subtransactions`); and the top-level
    transactions in progress when it was taken (None: not known), whose commit is what
    can bring a row with an older `last_updated` (see `running_then`)."""

    time: dt.datetime
    xids: str
    running: tuple[int, ...] | None


# xids assigned between a snapshot and the statement reading the next one to be assigned:
# more than this and the count is not trusted (every run then reads by the late rule)
_ASSIGNED_MEANWHILE = 100_000


def running_then(xids: str, assigned: int | None) -> tuple[int, ...] | None:
    """The top-level transactions in progress at a snapshot `xmin:xmax:listed`, given
    how many ids had been assigned past its xmax by the time the statement taking it
    asked (`age(xmax)`): those it lists, and every id from xmax up to the next one
    (pg_current_snapshot() does not list a transaction whose id is past the newest one
    completed). Every transaction not among them had ended then or began after."""
    _, high, listed = xids.split(":")
    if assigned is None or not 0 <= assigned <= _ASSIGNED_MEANWHILE:
        return None
    ids = {int(x) for x in listed.split(",") if x}
    return tuple(sorted(ids | set(range(int(high), int(high) + assigned))))


def open_snapshot(conn: Connection, since: dt.datetime | None) -> Snapshot:
    """Begin the extract's one read-only REPEATABLE READ transaction."""
    before = _in_progress(conn)
    conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
    # age(xid) counts from the next id to be assigned, read during this statement, so after
    # its snapshot: an upper bound of the ids assigned before it (not normal ids: NULL)
    snapshot, xids, assigned = conn.execute(
        text(
            "WITH s AS (SELECT pg_current_snapshot() AS s, statement_timestamp() AS t) "
            "SELECT t AT TIME ZONE 'UTC', s::text, CASE WHEN x >= 3 THEN age(x::text::xid) END "
            "FROM s, LATERAL (SELECT pg_snapshot_xmax(s)::text::bigint & 4294967295 AS x) AS m"
        )
    ).one()
    if since is not None and since > snapshot:
        raise ConfigError(
            f"--since {since.isoformat(sep=' ')} is after the source's clock "
            f"({snapshot.isoformat(sep=' ', timespec='seconds')} UTC)",
            "Give a time in the past, in UTC",
        )
    return Snapshot(snapshot, _with_subtransactions(xids, before), running_then(xids, assigned))


def committed(conn: Connection, ids: set[int]) -> set[int]:
    """Which of these transactions have committed, as of now (pg_xact_status reads the
    commit log, not the snapshot: asked after the snapshot, it sees every commit the
    snapshot saw); one too old for the log to tell counts as committed."""
    if not ids:
        return set()
    found = conn.execute(
        text(
            "SELECT x FROM unnest(CAST(:ids AS bigint[])) AS x "
            "WHERE coalesce(pg_xact_status(x::text::xid8), 'committed') = 'committed'"
        ),
        {"ids": sorted(ids)},
    )
    return set(found.scalars())


def set_window(conn: Connection, table: Table, xids: str | None = None) -> tuple[int, int]:
    """COPY takes no bind parameters: the late-commit rule's snapshot travels through
    set_config, in one statement that also returns the table's smallest and largest
    keys (its primary-key index answers at once)."""
    key = table.c[source_key(table.name)]
    query = select(
        func.set_config("totesys.xids", xids or "", True),
        select(func.min(key)).scalar_subquery(),
        select(func.max(key)).scalar_subquery(),
    )
    _, low, high = conn.execute(query).one()
    return low or 0, high or 0


# A version written by a transaction the previous snapshot did not see (in progress
# then, or begun after), whatever its last_updated. xmin is 32 bits: it is widened to
# xid8 with the epoch of this snapshot's xmax, one epoch less when that would pass xmax.
# age(xmin), cheap, first keeps only versions no older than the previous snapshot's xmin.
_XIDS = "current_setting('totesys.xids')::pg_snapshot"
_XMAX = "(SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint)"
_EPOCH = f"(SELECT ({_XMAX} >> 32) << 32)"
_WIDE = f"({_EPOCH} | xmin::text::bigint)"
_LATE = f"""(
    age(xmin) <= (SELECT age((pg_snapshot_xmin({_XIDS})::text::bigint & 4294967295)::text::xid))
    AND NOT pg_visible_in_snapshot(
        GREATEST(CASE WHEN {_WIDE} >= {_XMAX} THEN {_WIDE} - 4294967296 ELSE {_WIDE} END, 3)
            ::text::xid8,
        (SELECT {_XIDS})
    )
)"""


def _changed(table: Table, lower: dt.datetime | None, since: dt.datetime | None, late: bool):
    """last_updated > lower, or >= since when reprocessing a window, or (`late`) written
    by a transaction the snapshot totesys.xids did not see. The times are written into
    the statement, so the planner weighs them: with an index on last_updated a window of
    minutes is a few index probes."""
    changed = []
    if lower is not None:
        changed.append(table.c.last_updated > cast(literal(lower.isoformat(sep=" ")), TIMESTAMP))
    if since is not None:
        changed.append(table.c.last_updated >= cast(literal(since.isoformat(sep=" ")), TIMESTAMP))
    return or_(*changed, text(_LATE)) if late else or_(*changed)


def copy_query(
    table: Table,
    *,
    lower: dt.datetime | None = None,
    since: dt.datetime | None = None,
    late: bool = False,
    keys: tuple[int, int] | None = None,
) -> str:
    """COPY of the table's declared columns: every row, or those changed after `lower`
    (or from `since`; `late`: see `_changed`), or (`keys`) those whose keys lie above the
    first and up to the second."""
    query = select(*table.columns)
    if lower is not None or since is not None:
        query = query.where(_changed(table, lower, since, late))
    if keys is not None:
        key = table.c[source_key(table.name)]
        query = query.where(key > keys[0], key <= keys[1])
    sql = query.compile(dialect=_DIALECT, compile_kwargs={"literal_binds": True})
    return f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)"


def islands(table: Table):
    """The table's keys as runs of consecutive keys (low, high), in key order: the key's
    index alone answers (an index-only scan), and the server sends a row per gap, not
    per key."""
    key = table.c[source_key(table.name)]
    island = (key - func.row_number().over(order_by=key)).label("island")
    keys = select(key.label("key"), island).subquery("keys")
    low = func.min(keys.c.key)
    return select(low, func.max(keys.c.key)).group_by(keys.c.island).order_by(low)


def _read_csv(data: bytes | bytearray, schema: pa.Schema) -> pa.Table:
    """PostgreSQL's CSV with these types: NULL is an unquoted empty field."""
    return pcsv.read_csv(
        pa.BufferReader(pa.py_buffer(data)),  # no copy of the chunk
        # one thread: the parse already runs beside the COPY, more would only compete
        read_options=pcsv.ReadOptions(
            column_names=schema.names, block_size=8 << 20, use_threads=False
        ),
        parse_options=pcsv.ParseOptions(newlines_in_values=True),
        convert_options=pcsv.ConvertOptions(
            column_types=schema,
            true_values=["t"],
            false_values=["f"],
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        ),
    )


def typed_chunk(
    data: bytes | bytearray, table: Table, raw_seq: int, snapshot: dt.datetime, bounds: Bounds
) -> tuple[pa.Table, pa.Table]:
    """A chunk of the COPY in the declared types, and the quarantine entries of the
    versions set aside (a value that does not fit, text that is not UTF-8, NULL where a
    value is required, an implausible date, a `last_updated` in the future). Only the
    columns the warehouse holds can set a version aside (see `schemas.source.kept`)."""
    schema = arrow_schema(table)
    relaxed = pa.schema([f.with_nullable(True) for f in schema])
    key = source_key(table.name)
    held = {c.name for c in table.columns if kept(c)}
    try:
        rows = _read_csv(data, relaxed)
        findings = quality.Findings(
            table.name, rows.column(key), rows.column("last_updated"), raw_seq
        )
    except pa.ArrowInvalid:  # a value that does not fit its type, or bytes that are not UTF-8
        raw = _read_csv(data, pa.schema([(name, pa.binary()) for name in schema.names]))
        strings, invalid = quality.texts(raw)
        version = strings.column("last_updated")
        findings = quality.Findings(
            table.name,
            pc.cast(strings.column(key), pa.int64()),
            quality.timestamps(version),
            raw_seq,
            version,
        )
        for name, bad in invalid.items():
            if name in held:
                findings.add(bad, name, strings.column(name), quality.NOT_TEXT)
        rows, blanked = quality.convert(findings, strings, relaxed, held)
        _carried(table.name, key, strings, invalid, blanked, held)
    quality.check_missing(findings, rows, [f.name for f in schema if not f.nullable])
    stamps = [f.name for f in schema if pa.types.is_timestamp(f.type) and f.name in held]
    quality.check_plausible(findings, rows, stamps, bounds)
    quality.check_not_after(findings, rows, "last_updated", snapshot + bounds.skew)
    return findings.good(rows).cast(schema), findings.entries()


def _carried(
    table: str,
    key: str,
    strings: pa.Table,
    invalid: dict[str, pa.Array],
    blanked: dict[str, int],
    held: set[str],
) -> None:
    """A WARNING for each column the warehouse does not hold whose values were carried
    with their bytes escaped, or left empty: the versions still go through."""
    for name, bad in invalid.items():
        if name not in held:
            keys = strings.column(key).filter(bad).to_pylist()
            log.warning(
                "the source column %s.%s holds text that is not UTF-8 (keys %s): carried "
                "with \\xNN for those bytes; the warehouse does not hold it",
                table,
                name,
                ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else ""),
                extra={"table": table},
            )
    for name, count in blanked.items():
        log.warning(
            "%d value%s of the source column %s.%s do%s not fit its type: left empty in the "
            "lake; the warehouse does not hold it",
            count,
            "" if count == 1 else "s",
            table,
            name,
            "es" if count == 1 else "",
            extra={"table": table},
        )
