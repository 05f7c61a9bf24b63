"""Tombstones through the transform: the keys the raw runs found deleted, for the star
tables.

A key a raw run found deleted goes on to the star table built from its source table
(none for a source no star table is built from: the departments), unless a later raw
run of the same batch read the key again (deleted, then inserted again: the new version
stands). The joined dimensions' kept source rows forget the deleted keys, so a change
to a parent never rebuilds a deleted row.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from totesys_cli.lake import Lake
from totesys_cli.lake.files import read_parquet
from totesys_cli.schemas import STARS, source_key
from totesys_cli.schemas.arrow import tombstone_schema
from totesys_cli.transform.batch import RawRun

# the star table built from each source table, key for key
_BUILT_FROM = {s.source: s.name for s in STARS.values() if s.source is not None}


def carried(raw: Lake, runs: list[RawRun]) -> pa.Table:
    """The batch's tombstones that stand, each with its star table (replays bring none:
    their tombstones were carried when they were new)."""
    new = [r for r in runs if not r.replay]
    keys = [k for r in new for k in r.manifest.deleted.keys]
    found = read_parquet(raw, keys, tombstone_schema()).to_pylist()
    newest: dict[tuple[str, int], dict] = {}
    for row in found:  # a key found deleted twice: the later one
        key = (row["source_table"], row["key"])
        if key not in newest or row["raw_seq"] > newest[key]["raw_seq"]:
            newest[key] = row
    for run in new:
        for table in {t for t, _ in newest}:
            earlier = [k for (t, k), r in newest.items() if t == table and r["raw_seq"] < run.seq]
            if not earlier or not run.manifest.files(table):
                continue
            key = source_key(table)
            read = read_parquet(raw, run.manifest.files(table), pa.schema([(key, pa.int32())]))
            again = set(read.column(key).to_pylist()) & set(earlier)
            for k in again:
                del newest[(table, k)]
    rows = [
        {
            **r,
            "star_table": _BUILT_FROM.get(r["source_table"]),
            "deleted_date": r["deleted_at"].date(),
            "deleted_time": _millis(r["deleted_at"]),
        }
        for r in newest.values()
    ]
    return pa.Table.from_pylist(rows, schema=tombstone_schema(processed=True))


def _millis(when) -> int:
    """Milliseconds since midnight."""
    return ((when.hour * 60 + when.minute) * 60 + when.second) * 1000 + when.microsecond // 1000


def forget(parents: dict[str, pa.Table], tombstones: pa.Table) -> dict[str, pa.Table]:
    """The kept source rows without the deleted keys."""
    kept = {}
    for table, rows in parents.items():
        gone = tombstones.filter(pc.equal(tombstones.column("source_table"), table))
        if gone.num_rows:
            deleted = pc.is_in(rows.column(source_key(table)), gone.column("key").cast(pa.int32()))
            rows = rows.filter(pc.invert(deleted))
        kept[table] = rows
    return kept
