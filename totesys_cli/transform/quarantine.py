"""The quarantine as a transform sees it: the entries still open, the rows waiting on a
parent, and what this run adds and resolves.

An entry is resolved when the key is read again, valid, from a later raw run: a new
version, or the same one fixed in place (its `last_updated` untouched) or no longer
ahead of the clock; or when a later raw run found the key deleted in the source. An
entry waiting on a parent is resolved when that very version is emitted, or when a
valid later version of the key replaces it. An entry found again while it is open (the
overlap re-reads a version still bad) is not new. A run's entries (new ones, and those
it resolved) go to its processed quarantine file, which the load copies into the
warehouse; the still-open entries and the waiting rows travel to the next run.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from totesys_cli.schemas import quality
from totesys_cli.schemas.quality import ENTRY, IDENTITY, MISSING_PARENT

# the versions that reached a star table; the valid ones, with the raw run they came from
_EMITTED = pa.schema([("source_table", pa.string()), ("key", pa.int64()), ("version", pa.string())])
_VALID = ("source_table", "key", "valid_version", "seq")


def _unique(entries: pa.Table) -> pa.Table:
    """One entry per identity (an overlap or a replay can find the same one twice)."""
    if entries.num_rows == 0:
        return entries
    marked = entries.append_column("_row", pa.array(range(entries.num_rows), pa.int64()))
    first = marked.group_by(list(IDENTITY)).aggregate([("_row", "min")])
    return entries.take(first.sort_by("_row_min").column("_row_min"))


class Ledger:
    def __init__(self, open_entries: pa.Table, waiting: dict[str, pa.Table]):
        self.open = open_entries
        self.waiting = dict(waiting)  # fact -> star rows whose dimension key is not emitted
        self.new: list[pa.Table] = []
        self.here: list[pa.Table] = []  # found by the transform itself, not carried
        self.valid_parts: list[pa.Table] = []
        self.emitted_parts: list[pa.Table] = []
        self.gone_parts: list[pa.Table] = []
        # the keys with an entry, per source table: only their versions can resolve one
        self.watched: dict[str, pa.Array] = {}
        self._watch(open_entries)

    def add(self, entries: pa.Table, carried: bool = False) -> None:
        """Entries new in this run: found here, or `carried` from the batch's extracts."""
        if entries.num_rows:
            self.new.append(entries.cast(ENTRY))
            if not carried:
                self.here.append(entries.cast(ENTRY))
            self._watch(entries)

    def _watch(self, entries: pa.Table) -> None:
        """Entries come before the versions that can resolve them: those of a later raw
        run of the batch, or a waiting row emitted by a later transform run."""
        for table in pc.unique(entries.column("source_table")).to_pylist():
            keys = entries.filter(pc.equal(entries.column("source_table"), table))
            keys = pc.cast(keys.column("key"), pa.int64()).combine_chunks()
            known = self.watched.get(table)
            self.watched[table] = pc.unique(
                keys if known is None else pa.concat_arrays([known, keys])
            )

    def _of_watched(self, table: str, keys: pa.Array, versions: pa.Array) -> pa.Table | None:
        """The versions among these whose key has an entry (usually none)."""
        watched = self.watched.get(table)
        if watched is None or not len(keys):
            return None
        keys = pc.cast(keys, pa.int64())
        hit = pc.is_in(keys, value_set=watched)
        if not pc.any(hit).as_py():
            return None
        found = keys.filter(hit)
        return pa.table(
            [
                pa.array([table] * len(found), pa.string()),
                found,
                quality.as_text(versions.filter(hit)),
            ],
            schema=_EMITTED,
        )

    def valid(self, table: str, keys: pa.Array, versions: pa.Array, seq: int) -> None:
        """Valid versions of these keys arrived from raw run `seq`."""
        if (part := self._of_watched(table, keys, versions)) is not None:
            seqs = pa.array([seq] * part.num_rows, pa.int32())
            self.valid_parts.append(part.append_column("seq", seqs).rename_columns(list(_VALID)))

    def emitted(self, table: str, keys: pa.Array, versions: pa.Array) -> None:
        """These versions reached a star table (a row that waited on a parent, say)."""
        if (part := self._of_watched(table, keys, versions)) is not None:
            self.emitted_parts.append(part)

    def gone(self, tombstones: pa.Table) -> None:
        """Keys found deleted in the source: their entries from earlier raw runs are
        resolved (no version of them is to come)."""
        if tombstones.num_rows:
            part = tombstones.select(["source_table", "key", "raw_seq"])
            self.gone_parts.append(part.rename_columns(["source_table", "key", "gone_seq"]))

    def found_here(self) -> pa.Table:
        """The entries the transform itself found in this run, once each, and not open
        before."""
        return self._not_open(_unique(pa.concat_tables([ENTRY.empty_table(), *self.here])))

    def _not_open(self, entries: pa.Table) -> pa.Table:
        if self.open.num_rows == 0 or entries.num_rows == 0:
            return entries
        marked = entries.append_column("_row", pa.array(range(entries.num_rows), pa.int64()))
        known = self.open.select(list(IDENTITY)).group_by(list(IDENTITY)).aggregate([])
        keep = marked.join(known, list(IDENTITY), join_type="left anti")
        return entries.take(keep.sort_by("_row").column("_row"))

    def found(self) -> int:
        return self.found_here().num_rows

    def close(self) -> tuple[pa.Table, pa.Table]:
        """(this run's quarantine file: new entries and resolutions, the entries still open)."""
        new = self._not_open(_unique(pa.concat_tables([ENTRY.empty_table(), *self.new])))
        everything = _unique(pa.concat_tables([self.open, new]))
        resolved = self._resolved(everything)
        still = pc.invert(resolved)
        done = everything.filter(resolved)
        done = done.set_column(
            done.schema.get_field_index("resolved"),
            ENTRY.field("resolved"),
            pa.array([True] * done.num_rows, pa.bool_()),
        )
        return pa.concat_tables([new, done]), everything.filter(still)

    def _resolved(self, entries: pa.Table) -> pa.Array:
        rows = entries.append_column("_row", pa.array(range(entries.num_rows), pa.int64()))
        hit = pa.array([], pa.int64())
        if self.valid_parts:  # another version, from a later raw run
            valid = pa.concat_tables(self.valid_parts)
            later = rows.join(valid, ["source_table", "key"], join_type="inner")
            # a row waiting on a parent is valid as it is: only another version replaces it
            later = later.filter(
                pc.and_(
                    pc.greater(later.column("seq"), later.column("raw_seq")),
                    pc.or_(
                        pc.not_equal(later.column("kind"), MISSING_PARENT),
                        pc.not_equal(later.column("valid_version"), later.column("version")),
                    ),
                )
            )
            hit = pa.concat_arrays([hit, later.column("_row").combine_chunks()])
        if self.gone_parts:  # the key was deleted in the source
            gone = pa.concat_tables(self.gone_parts)
            deleted = rows.join(gone, ["source_table", "key"], join_type="inner")
            deleted = deleted.filter(
                pc.greater(deleted.column("gone_seq"), deleted.column("raw_seq"))
            )
            hit = pa.concat_arrays([hit, deleted.column("_row").combine_chunks()])
        if self.emitted_parts:
            emitted = pa.concat_tables(self.emitted_parts)
            waiting = rows.filter(pc.equal(rows.column("kind"), MISSING_PARENT))
            same = waiting.join(emitted, ["source_table", "key", "version"], join_type="inner")
            hit = pa.concat_arrays([hit, same.column("_row").combine_chunks()])
        return pc.is_in(pa.array(range(entries.num_rows), pa.int64()), value_set=hit)


def still_waiting(
    rows: pa.Table, table: str, key: str, versions: pa.Array, open_entries: pa.Table
) -> pa.Table:
    """The waiting rows (of source table `table`) whose entries are still open, each
    version once (a --since replay reads a waiting version again): a row whose key has
    since had a valid later version no longer waits."""
    waiting = open_entries.filter(
        pc.and_(
            pc.equal(open_entries.column("kind"), MISSING_PARENT),
            pc.equal(open_entries.column("source_table"), table),
        )
    ).select(["key", "version"])
    marked = pa.table(
        {
            "key": pc.cast(rows.column(key), pa.int64()),
            "version": quality.as_text(versions),
            "_row": pa.array(range(rows.num_rows), pa.int64()),
        }
    )
    keep = marked.join(waiting.group_by(["key", "version"]).aggregate([]), ["key", "version"])
    once = keep.group_by(["key", "version"]).aggregate([("_row", "min")])
    return rows.take(once.sort_by("_row_min").column("_row_min"))
