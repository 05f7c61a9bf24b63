"""Keeping the summaries (`schemas.summaries`) current, in the load's transaction.

A fact's summaries change only where the run touches the fact: before the run's rows
are merged, the latest version of every key the run brings is read, the latest after
the merge follows from it and the run's rows, and the summaries take the difference.
So a run of a few thousand rows costs a few index probes, whatever the size of the
facts, and a replayed run changes nothing. A fact filled from empty (a first
load) and a summary created on a warehouse that already holds facts are summed whole.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator

from sqlalchemy import Connection, Table, any_, func, literal, select, text

from totesys_cli.db.catalog import estimated_rows
from totesys_cli.db.copy import copy_in, copy_out
from totesys_cli.schemas import DELETIONS, star
from totesys_cli.schemas.model import deleted, latest_versions
from totesys_cli.schemas.summaries import SUMMARIES, Summary, of_fact

log = logging.getLogger(__name__)

_CHANGE, _LATEST = "summary_change", "summary_latest"


def _sql(query, conn: Connection) -> str:
    return str(query.compile(conn, compile_kwargs={"literal_binds": True}))


def _sums(summary: Summary) -> dict[str, str]:
    """Each summed column and what it sums over signed fact rows `f`."""
    return {
        summary.counted: "f.sign",
        **{
            m: " * ".join(["f.sign", *(f"f.{c}" for c in cs)]) for m, cs in summary.measures.items()
        },
    }


def _join(summary: Summary, rows: str, few: bool) -> str:
    """The summary's dimension, as `t`. For `few` rows (a temporary table), only its
    rows that they name are read, through its primary key."""
    if summary.joined is None:
        return ""
    dimension, key = summary.joined
    join = f"JOIN {dimension} t ON t.{key} = f.{key}"
    return f"{join} AND t.{key} = ANY(ARRAY(SELECT DISTINCT {key} FROM {rows}))" if few else join  # nosec B608


def _grouped(summary: Summary, rows: str, few: bool = False) -> str:
    """The sums of `rows` (fact rows with a `sign`: +1 to add, -1 to take away) per
    the summary's keys, leaving out groups whose sums are all zero."""
    days = [f"f.{summary.day}"] if summary.day else []
    groups = [*days, "f.currency_id", *(g.expression for g in summary.groups)]
    sums = _sums(summary).values()
    return (
        f"SELECT {', '.join(groups)}, {', '.join(f'sum({s})' for s in sums)} "  # nosec B608
        f"FROM {rows} f {_join(summary, rows, few)} "
        f"GROUP BY {', '.join(groups)} "
        f"HAVING {' OR '.join(f'sum({s}) <> 0' for s in sums)}"
    )


def _add(conn: Connection, summary: Summary, rows: str, few: bool = False) -> None:
    """Add the sums of `rows` to the summary."""
    sums = _sums(summary)
    conn.execute(
        text(
            f"INSERT INTO {summary.fullname} ({', '.join([*summary.keys, *sums])}) "  # nosec B608
            f"{_grouped(summary, rows, few)} "
            f"ON CONFLICT ({', '.join(summary.keys)}) DO UPDATE SET "
            + ", ".join(f"{c} = {summary.name}.{c} + excluded.{c}" for c in sums)
        )
    )


def _latest(conn: Connection, fact: str) -> str:
    """The fact's latest versions, each with the sign +1."""
    whole = _sql(latest_versions(fact), conn)
    return f"SELECT 1 AS sign, l.* FROM ({whole}) l"  # nosec B608


def drifted(conn: Connection) -> dict[str, int]:
    """Per summary, how many of its groups differ from the sums of the facts' latest
    versions (none, unless something other than the load wrote to either)."""
    found = {}
    for summary in SUMMARIES:
        sums = _sums(summary)
        stored = (
            f"SELECT {', '.join([*summary.keys, *sums])} FROM {summary.fullname} "  # nosec B608
            f"WHERE {' OR '.join(f'{c} <> 0' for c in sums)}"
        )
        fresh = _grouped(summary, f"({_latest(conn, summary.fact)})")
        found[summary.name] = conn.execute(
            text(
                f"SELECT count(*) FROM (({stored} EXCEPT ALL {fresh}) "  # nosec B608
                f"UNION ALL ({fresh} EXCEPT ALL {stored})) d"
            )
        ).scalar_one()
    return found


def _timed(fact: str, started: float) -> None:
    log.debug(
        "the summaries of %s are current",
        fact,
        extra={"summaries_seconds": round(time.perf_counter() - started, 3)},
    )


def sum_whole(conn: Connection, fact: str, summaries: tuple[Summary, ...] | None = None) -> None:
    """Sum the fact's latest versions into its summaries, from nothing: the latest
    versions are found once (when every key has one version, they are the fact), and
    each summary is filled in its keys' order."""
    started = time.perf_counter()
    table = star(fact).table
    key = star(fact).key
    one_each = conn.execute(
        select(func.count() == func.count(func.distinct(table.c[key])))
    ).scalar_one()
    if one_each:  # every version is the latest: the fact, less its deleted keys
        whole = select(literal(1).label("sign"), table).where(~deleted(fact, table.c[key]))
        rows = f"({_sql(whole, conn)})"
    else:
        conn.execute(
            text(f"CREATE TEMPORARY TABLE {_LATEST} ON COMMIT DROP AS {_latest(conn, fact)}")
        )
        rows = _LATEST
    for summary in summaries if summaries is not None else of_fact(fact):
        columns = ", ".join([*summary.keys, *_sums(summary)])
        in_key_order = ", ".join(str(n) for n in range(1, len(summary.keys) + 1))
        conn.execute(text(f"DELETE FROM {summary.fullname}"))  # nosec B608
        conn.execute(
            text(
                f"INSERT INTO {summary.fullname} ({columns}) "  # nosec B608
                f"{_grouped(summary, rows)} ORDER BY {in_key_order}"
            )
        )
    if not one_each:
        conn.execute(text(f"DROP TABLE {_LATEST}"))
    _timed(fact, started)


def _needed(fact: str) -> list[str]:
    """The fact's columns its summaries read, with its key and version."""
    found = [star(fact).key, "last_updated_date", "last_updated_time"]
    for summary in of_fact(fact):
        found += [
            *(k for k in summary.keys if k not in {g.name for g in summary.groups if g.joined})
        ]
        found += [c for factors in summary.measures.values() for c in factors]
        found += [summary.joined[1]] if summary.joined else []
    return list(dict.fromkeys(found))


def follow(conn: Connection, stage: Table, fact: str, replayed: bool = False) -> None:
    """Before `stage` is merged into `fact`: move the summaries by the change the merge
    makes. The latest version of each key the run brings is read from the fact once;
    after the merge it is the newest of that and the run's versions of the key (the
    run's own where they share a version: the merge corrects it in place)."""
    started = time.perf_counter()
    table = star(fact).table
    key = star(fact).key
    # = ANY(ARRAY(...)): the keys' versions through the version index, not a scan
    touched = latest_versions(fact).where(
        table.c[key] == any_(func.array(select(stage.c[key]).scalar_subquery()))
    )
    columns = ", ".join(_needed(fact))
    after = (
        f"SELECT DISTINCT ON ({key}) {columns} FROM ("  # nosec B608
        f"SELECT 0 AS older, {columns} FROM {stage.name} "
        f"UNION ALL SELECT 1, {columns} FROM before) candidates "
        f"ORDER BY {key}, last_updated_date DESC, last_updated_time DESC, older"
    )
    conn.execute(
        text(
            f"CREATE TEMPORARY TABLE {_CHANGE} ON COMMIT DROP AS "  # nosec B608
            f"WITH before AS MATERIALIZED ({_sql(touched, conn)}) "
            f"SELECT 1 AS sign, a.* FROM ({after}) a "
            f"WHERE NOT {_still_deleted(fact, 'a') if replayed else 'false'} "
            f"UNION ALL SELECT -1, {columns} FROM before"
        )
    )
    for summary in of_fact(fact):
        _add(conn, summary, _CHANGE, few=True)
    conn.execute(text(f"DROP TABLE {_CHANGE}"))
    _timed(fact, started)


def _still_deleted(fact: str, rows: str) -> str:
    """SQL: whether the version in `rows`, of a reprocess, leaves its key deleted: the
    key has an open deletion and the version is not newer than the one the warehouse
    held then (a newer one ends the deletion, see `load.deletions`)."""
    return (
        f"EXISTS (SELECT FROM {DELETIONS.fullname} d WHERE "  # nosec B608
        f"d.source_table = '{star(fact).source}' AND d.key = {rows}.{star(fact).key} "
        "AND d.ended_in IS NULL AND d.last_version IS NOT NULL AND "
        f"{rows}.last_updated_date + {rows}.last_updated_time <= d.last_version)"
    )


def forget(conn: Connection, fact: str, keys: str) -> None:
    """Take the latest versions of these keys (SQL selecting them) out of the fact's
    summaries: their rows were deleted in the source."""
    started = time.perf_counter()
    table = star(fact).table
    key = table.c[star(fact).key]
    latest = _sql(latest_versions(fact, with_deleted=True), conn)
    conn.execute(
        text(
            f"CREATE TEMPORARY TABLE {_CHANGE} ON COMMIT DROP AS "  # nosec B608
            f"SELECT -1 AS sign, l.* FROM ({latest}) l WHERE l.{key.name} IN ({keys})"
        )
    )
    for summary in of_fact(fact):
        _add(conn, summary, _CHANGE, few=True)
    conn.execute(text(f"DROP TABLE {_CHANGE}"))
    _timed(fact, started)


class SeveralVersions(Exception):
    """Rows appended to a fact bring several versions of a key: the latest is not known
    from the rows alone, so the summaries cannot simply take their sums."""


class FirstFill:
    """A fact's summaries summed from the rows copied into it while it was empty (the
    first load), or appended to it with keys it did not hold (`adding`), file by file as
    they pass, instead of reading the fact back: each file is summed per summary on the
    way, and the sums are added up at the end and copied in (added to the summaries'
    when appending). That holds when the rows bring one version per key (a first
    extract does, and a pass through a backlog); when they do not, a first fill sums the
    summaries from the fact (`sum_whole`), and an append raises SeveralVersions."""

    def __init__(self, conn: Connection, fact: str, adding: bool = False):
        self.conn = conn
        self.fact = fact
        self.adding = adding
        self.summaries = of_fact(fact)
        self.keys: list = []
        self.parts: dict[str, list] = {s.name: [] for s in self.summaries}
        self.lookups: dict[tuple[str, str], object] = {}

    def add(self, rows) -> None:
        """Sum one file's rows (an Arrow table of the fact's columns)."""
        self.keys.append(rows.column(star(self.fact).key))
        for summary in self.summaries:
            self.parts[summary.name].append(self._summed(summary, self._joined(summary, rows)))

    def _joined(self, summary: Summary, rows):
        """The rows with the joined dimension's columns: the whole dimension read once
        for a first fill; for an append, only the span of keys the file names (a run
        of a backlog names a narrow one), so its cost follows the run, not the table."""
        import pyarrow.compute as pc

        if summary.joined is None:
            return rows
        if not self.adding:
            if summary.joined not in self.lookups:
                self.lookups[summary.joined] = self._lookup(summary)
            return rows.join(self.lookups[summary.joined], summary.joined[1])
        span = pc.min_max(rows.column(summary.joined[1]))
        low, high = span["min"].as_py(), span["max"].as_py()
        lookup = self._lookup(summary, (0, -1) if low is None else (low, high))
        return rows.join(lookup, summary.joined[1])

    def _lookup(self, summary: Summary, span: tuple[int, int] | None = None):
        """The joined dimension's key and the columns the summary groups by (of the keys
        in `span` only, when given)."""
        import pyarrow as pa
        import pyarrow.csv as pcsv

        dimension, key = summary.joined or ("", "")
        names = [key, *(g.name for g in summary.groups if g.joined)]
        where = "" if span is None else f" WHERE {key} BETWEEN {int(span[0])} AND {int(span[1])}"
        query = f"COPY (SELECT {', '.join(names)} FROM {dimension}{where}) TO STDOUT (FORMAT csv)"  # nosec B608
        types = {key: pa.int32(), **{n: pa.string() for n in names[1:]}}
        chunks = [
            pcsv.read_csv(
                pa.py_buffer(bytes(chunk)),
                read_options=pcsv.ReadOptions(column_names=names),
                convert_options=pcsv.ConvertOptions(column_types=types),
            )
            for chunk in copy_out(self.conn, query, 1_000_000)
        ]
        return pa.concat_tables(chunks) if chunks else pa.table({n: [] for n in names}, types)

    @staticmethod
    def _summed(summary: Summary, rows):
        import pyarrow as pa
        import pyarrow.compute as pc

        columns = {k: rows.column(k) for k in summary.keys}
        columns[summary.counted] = pa.array([1] * rows.num_rows, pa.int64())
        for measure, factors in summary.measures.items():
            product = rows.column(factors[0])
            for factor in factors[1:]:
                product = pc.multiply(_decimal(product), _decimal(rows.column(factor)))
            columns[measure] = _decimal(product)
        return _sum_by(pa.table(columns), summary)

    def finish(self) -> None:
        """Copy the sums into the summaries, in the fact's transaction."""
        import pyarrow as pa
        import pyarrow.compute as pc

        started = time.perf_counter()
        keys = pa.chunked_array(self.keys) if self.keys else pa.chunked_array([], pa.int32())
        if pc.count_distinct(keys).as_py() != len(keys):
            if self.adding:
                raise SeveralVersions(self.fact)
            sum_whole(self.conn, self.fact)  # several versions of a key: the latest count
            return
        for summary in self.summaries:
            parts = self.parts[summary.name]
            if self.adding:
                if parts:
                    _add_sums(self.conn, summary, _sum_by(pa.concat_tables(parts), summary))
                continue
            self.conn.execute(text(f"DELETE FROM {summary.fullname}"))  # nosec B608
            if parts:
                with _key_built_after(self.conn, summary):
                    sums = _sum_by(pa.concat_tables(parts), summary)
                    copy_in(self.conn, summary.fullname, sums)
        _timed(self.fact, started)


# an append that brings more than 1/REBUILD_SHARE as many groups as a summary holds
# builds its primary key again after the insert, instead of growing it key by key
REBUILD_SHARE = 4


def _add_sums(conn: Connection, summary: Summary, sums) -> None:
    """Add sums already grouped by the summary's keys to the summary: the groups it
    holds are updated, the others inserted (two set-based statements: an append brings
    mostly new groups, which an INSERT ... ON CONFLICT would take one by one). Many
    new groups (a summary by purchase order item has about one per order) go in with
    the key built after them."""
    summed = list(_sums(summary))
    columns = ", ".join([*summary.keys, *summed])
    same = " AND ".join(f"s.{k} = c.{k}" for k in summary.keys)
    conn.execute(
        text(
            f"CREATE TEMPORARY TABLE {_CHANGE} ON COMMIT DROP AS "  # nosec B608
            f"SELECT {columns} FROM {summary.fullname} WITH NO DATA"
        )
    )
    copy_in(conn, _CHANGE, sums)
    conn.execute(text(f"ANALYZE {_CHANGE}"))
    conn.execute(
        text(
            f"UPDATE {summary.fullname} s SET "  # nosec B608
            + ", ".join(f"{c} = s.{c} + c.{c}" for c in summed)
            + f" FROM {_CHANGE} c WHERE {same}"
        )
    )
    held = estimated_rows(conn, [summary.fullname]).get(summary.fullname, 0)
    many = sums.num_rows * REBUILD_SHARE > max(held, 0)
    with _key_built_after(conn, summary) if many else contextlib.nullcontext():
        conn.execute(
            text(
                f"INSERT INTO {summary.fullname} ({columns}) "  # nosec B608
                f"SELECT {columns} FROM {_CHANGE} c "
                f"WHERE NOT EXISTS (SELECT FROM {summary.fullname} s WHERE {same})"
            )
        )
    conn.execute(text(f"DROP TABLE {_CHANGE}"))


@contextlib.contextmanager
def _key_built_after(conn: Connection, summary: Summary) -> Iterator[None]:
    """Around filling an empty summary: its primary key dropped, then built once from
    the rows (several times faster than growing its index row by row). Inside the
    transaction, so no other session sees it without its key."""
    name = conn.execute(
        text(
            "SELECT conname FROM pg_constraint "
            "WHERE conrelid = to_regclass(:table) AND contype = 'p'"
        ),
        {"table": summary.fullname},
    ).scalar()
    quoted = conn.dialect.identifier_preparer.quote
    if name is not None:
        conn.execute(text(f"ALTER TABLE {summary.fullname} DROP CONSTRAINT {quoted(name)}"))
    yield
    key = quoted(name or f"{summary.name}_pkey")
    conn.execute(
        text(
            f"ALTER TABLE {summary.fullname} ADD CONSTRAINT {key} "
            f"PRIMARY KEY ({', '.join(summary.keys)})"
        )
    )


def _sum_by(table, summary: Summary):
    """The table's counted and measure columns summed per the summary's keys."""
    import pyarrow as pa

    summed = [summary.counted, *summary.measures]
    out = table.group_by(summary.keys).aggregate([(c, "sum") for c in summed])
    return pa.table(
        {
            **{k: out.column(k) for k in summary.keys},
            **{c: out.column(f"{c}_sum") for c in summed},
        }
    )


def _decimal(values):
    """Integers as decimals, so products and sums of money stay exact."""
    import pyarrow as pa

    return values.cast(pa.decimal128(10, 0)) if pa.types.is_integer(values.type) else values
