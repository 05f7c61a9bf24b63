"""A fact's summaries summed from the rows copied into it, as they pass: a first load,
and an append of keys the fact did not hold (a backlog's pass), without reading the
fact back (see `upkeep` for the runs that follow)."""

from __future__ import annotations

import contextlib
import itertools
import time

from sqlalchemy import Connection, text

from totesys_cli.db import indexes
from totesys_cli.db.catalog import estimated_rows
from totesys_cli.db.copy import copy_in, copy_out
from totesys_cli.observe import memory
from totesys_cli.schemas import star
from totesys_cli.schemas.summaries import Summary, of_fact
from totesys_cli.warehouse.lookup import MAPPED_KEYS, Lookup, labels_encoded
from totesys_cli.warehouse.upkeep import CHANGE, sum_whole, summed_columns, timed

# rows of the dimension a summary joins read at a time: as CSV, then parsed, a chunk
# of a million took 27 MB for a moment, the peak of a backlog's payments at 5 million
# orders
LOOKUP_ROWS = 262_144


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
        self.keys = _Keys()
        self.sums = {s.name: _Sums(conn, s) for s in self.summaries}
        self.lookups: dict[tuple[str, str], object] = {}

    def add(self, rows) -> None:
        """Sum one file's rows (an Arrow table of the fact's columns), HELD_ROWS at a
        time: grouping a whole file at once by a key of about one group per row
        (purchases by item) holds hash tables of several times the file."""
        self.keys.add(rows.column(star(self.fact).key))
        for summary in self.summaries:
            joined = self._joined(summary, rows)
            for start in range(0, rows.num_rows, HELD_ROWS):
                part = joined.slice(start, HELD_ROWS)
                self.sums[summary.name].add(self._summed(summary, part))

    def _joined(self, summary: Summary, rows):
        """The rows with the joined dimension's columns: the whole dimension read once
        for a first fill; for an append, only the span of keys the file names (a run
        of a backlog names a narrow one), so its cost follows the run, not the table."""
        import pyarrow.compute as pc

        if summary.joined is None:
            return rows
        key = summary.joined[1]
        if not self.adding:
            if summary.joined not in self.lookups:
                self.lookups[summary.joined] = Lookup.read(lambda: self._chunks(summary), key)
            return self.lookups[summary.joined].join(rows)
        found = pc.min_max(rows.column(key))
        low, high = found["min"].as_py(), found["max"].as_py()
        span = (0, -1) if low is None else (low, high)
        return Lookup.read(lambda: self._chunks(summary, span), key).join(rows)

    def _chunks(self, summary: Summary, span: tuple[int, int] | None = None):
        """The joined dimension's key and the columns the summary groups by (of the keys
        in `span` only, when given), LOOKUP_ROWS at a time (at least one chunk, maybe
        empty)."""
        import pyarrow as pa
        import pyarrow.csv as pcsv

        dimension, key = summary.joined or ("", "")
        names = [key, *(g.name for g in summary.groups if g.joined)]
        where = "" if span is None else f" WHERE {key} BETWEEN {int(span[0])} AND {int(span[1])}"
        query = f"COPY (SELECT {', '.join(names)} FROM {dimension}{where}) TO STDOUT (FORMAT csv)"  # nosec B608
        types = {key: pa.int32(), **{n: pa.string() for n in names[1:]}}
        read = pcsv.ReadOptions(column_names=names)
        convert = pcsv.ConvertOptions(column_types=types)
        empty = True
        for chunk in copy_out(self.conn, query, LOOKUP_ROWS):
            empty = False
            yield labels_encoded(pcsv.read_csv(pa.py_buffer(chunk), read, convert_options=convert))
        if empty:
            yield labels_encoded(pa.schema(types).empty_table())

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
        started = time.perf_counter()
        if self.keys.repeat():
            if self.adding:
                raise SeveralVersions(self.fact)
            sum_whole(self.conn, self.fact)  # several versions of a key: the latest count
            return
        for summary in self.summaries:
            self._sum_into(summary, self.sums.pop(summary.name))
            memory.release()  # its parts and sums, before the next summary's
        timed(self.fact, started)

    def _sum_into(self, summary: Summary, sums: _Sums) -> None:
        """The summary's sums from the files' parts: added to its rows when appending,
        its rows replaced when filling."""
        if self.adding:
            if sums:
                _add_sums(self.conn, summary, sums)
            return
        self.conn.execute(text(f"DELETE FROM {summary.fullname}"))  # nosec B608
        if sums:
            with indexes.built_after(self.conn, summary.fullname):
                sums.into(summary.fullname)


# rows of partial sums a summary holds in memory; beyond them they go to a temporary
# table and the database adds them up (a summary with about a group per fact row, such
# as purchases by item, would otherwise hold the whole summary)
HELD_ROWS = 65_536
_SPILLS = itertools.count(1)


class _Sums:
    """One summary's partial sums, file by file: held in memory up to HELD_ROWS rows,
    then summed and moved to a temporary table, so that what a fill holds is bounded
    by that, never by the fact's size."""

    def __init__(self, conn: Connection, summary: Summary):
        self.conn, self.summary = conn, summary
        self.parts: list = []
        self.rows = 0
        self.spilled = False
        # a name of its own: a rebuild fills and appends to a fact in one transaction,
        # and a fill that found several versions of a key leaves its table until commit
        self.name = f"{summary.name}_sums_{next(_SPILLS)}"

    def __bool__(self) -> bool:
        return self.spilled or self.rows > 0

    def add(self, part) -> None:
        self.parts.append(part)
        self.rows += part.num_rows
        if self.rows > HELD_ROWS:
            self._spill()

    def _summed(self):
        import pyarrow as pa

        return _sum_by(pa.concat_tables(self.parts), self.summary)

    def _spill(self) -> None:
        if not self.spilled:
            columns = ", ".join([*self.summary.keys, *summed_columns(self.summary)])
            self.conn.execute(
                text(
                    f"CREATE TEMPORARY TABLE {self.name} ON COMMIT DROP AS "  # nosec B608
                    f"SELECT {columns} FROM {self.summary.fullname} WITH NO DATA"
                )
            )
            self.spilled = True
        copy_in(self.conn, self.name, self._summed())
        self.parts, self.rows = [], 0
        memory.release()

    def into(self, table: str) -> None:
        """Write the sums, grouped by the summary's keys, into an empty `table` shaped
        like the summary."""
        if not self.spilled:
            copy_in(self.conn, table, self._summed())
            return
        if self.parts:
            self._spill()
        keys = ", ".join(self.summary.keys)
        summed = list(summed_columns(self.summary))
        self.conn.execute(
            text(
                f"INSERT INTO {table} ({keys}, {', '.join(summed)}) "  # nosec B608
                f"SELECT {keys}, {', '.join(f'sum({c})' for c in summed)} "
                f"FROM {self.name} GROUP BY {keys}"
            )
        )
        self.conn.execute(text(f"DROP TABLE {self.name}"))


# an append that brings more than 1/REBUILD_SHARE as many groups as a summary holds
# builds its primary key again after the insert, instead of growing it key by key
REBUILD_SHARE = 4


def _add_sums(conn: Connection, summary: Summary, sums: _Sums) -> None:
    """Add sums already grouped by the summary's keys to the summary: the groups it
    holds are updated, the others inserted (two set-based statements: an append brings
    mostly new groups, which an INSERT ... ON CONFLICT would take one by one). Many
    new groups (a summary by purchase order item has about one per order) go in with
    the key built after them."""
    summed = list(summed_columns(summary))
    columns = ", ".join([*summary.keys, *summed])
    same = " AND ".join(f"s.{k} = c.{k}" for k in summary.keys)
    conn.execute(
        text(
            f"CREATE TEMPORARY TABLE {CHANGE} ON COMMIT DROP AS "  # nosec B608
            f"SELECT {columns} FROM {summary.fullname} WITH NO DATA"
        )
    )
    sums.into(CHANGE)
    conn.execute(text(f"ANALYZE {CHANGE}"))
    conn.execute(
        text(
            f"UPDATE {summary.fullname} s SET "  # nosec B608
            + ", ".join(f"{c} = s.{c} + c.{c}" for c in summed)
            + f" FROM {CHANGE} c WHERE {same}"
        )
    )
    held = estimated_rows(conn, [summary.fullname]).get(summary.fullname, 0)
    added = estimated_rows(conn, [CHANGE]).get(CHANGE, 0)
    many = added * REBUILD_SHARE > max(held, 0)
    with indexes.built_after(conn, summary.fullname) if many else contextlib.nullcontext():
        conn.execute(
            text(
                f"INSERT INTO {summary.fullname} ({columns}) "  # nosec B608
                f"SELECT {columns} FROM {CHANGE} c "
                f"WHERE NOT EXISTS (SELECT FROM {summary.fullname} s WHERE {same})"
            )
        )
    conn.execute(text(f"DROP TABLE {CHANGE}"))


class _Keys:
    """The fact keys a fill has taken, to find one given twice. Ids as a source numbers
    them are marked in a map of a byte per key, the span a file's keys cover counted
    before and after: its memory is the largest key's bytes (5 MB for 5 million rows),
    never a copy of the keys. Keys below 0 or from MAPPED_KEYS on are kept, then
    sorted at the end."""

    def __init__(self) -> None:
        import numpy as np

        self.marked = np.zeros(0, np.bool_)
        self.kept: list = []
        self.repeated = False

    def add(self, keys) -> None:
        import numpy as np

        values = keys.to_numpy()
        if not len(values) or self.repeated:
            return
        low, high = int(values.min()), int(values.max())
        if low < 0 or high >= MAPPED_KEYS:
            self.kept.append(values)
            return
        if high >= len(self.marked):  # doubled: growing copies at most twice the map
            grown = np.zeros(max(high + 1, 2 * len(self.marked)), np.bool_)
            grown[: len(self.marked)] = self.marked
            self.marked = grown
        span = self.marked[low : high + 1]
        before = np.count_nonzero(span)
        span[values - low] = True
        self.repeated = bool(np.count_nonzero(span) - before != len(values))

    def repeat(self) -> bool:
        """Whether a key was given twice."""
        import numpy as np

        if self.repeated or not self.kept:
            return self.repeated
        ordered = np.concatenate([*self.kept, np.flatnonzero(self.marked)])
        ordered.sort()
        return bool(np.any(ordered[1:] == ordered[:-1]))


def _sum_by(table, summary: Summary):
    """The table's counted and measure columns summed per the summary's keys."""
    import pyarrow as pa

    summed = [summary.counted, *summary.measures]
    out = table.group_by(summary.keys).aggregate([(c, "sum") for c in summed])
    return pa.table(
        {
            **{k: _decoded(out.column(k)) for k in summary.keys},
            **{c: out.column(f"{c}_sum") for c in summed},
        }
    )


def _decoded(column):
    """A dictionary-encoded column as its values: each file's lookup has dictionaries
    of its own, which the sums of several files cannot be grouped across."""
    import pyarrow as pa

    if pa.types.is_dictionary(column.type):
        return column.cast(column.type.value_type)
    return column


def _decimal(values):
    """Integers as decimals, so products and sums of money stay exact."""
    import pyarrow as pa

    return values.cast(pa.decimal128(10, 0)) if pa.types.is_integer(values.type) else values
