"""Deletes: the keys the source no longer holds, found by comparing keys.

A watermark never sees a delete. On its cadence (`--deletes-every`), an extract reads
every source table's primary key inside its own snapshot, as runs of consecutive keys
(an index-only scan of the primary key, not of the table; the server sends a row per
gap), and compares it with the keys the lake knows: the newest census (the keys the
previous comparison found, kept as intervals in the manifest of the run that took it)
and every key a raw run has read since. A known key the snapshot no longer holds was
deleted: it becomes a tombstone in the run's `_deleted/` file, committed by the run's
manifest with the run's new census.

A comparison that finds more than `--mass-delete-percent` of a table gone, or the table
emptied, takes it for a mistake (a truncated table, a restore from an empty backup, a
URL naming the wrong database): it records nothing and fails the run, unless
`--allow-mass-delete` names the table. The first comparison of a lake only takes the
census: keys deleted before it are not found (`verify` shows them).
"""

from __future__ import annotations

import datetime as dt
import logging
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection

from totesys_cli.errors import RuntimeFailure
from totesys_cli.extract.options import Deletes
from totesys_cli.extract.source import islands
from totesys_cli.lake import Lake
from totesys_cli.lake import keys as keysets
from totesys_cli.lake import manifest as manifests
from totesys_cli.lake.files import read_parquet
from totesys_cli.lake.manifest import Census, RawManifest
from totesys_cli.runtime import Deadline
from totesys_cli.schemas import SOURCE_TABLES, source_key, source_table
from totesys_cli.schemas.arrow import tombstone_schema
from totesys_cli.schemas.quality import ENTRY

log = logging.getLogger(__name__)


def due(last: RawManifest | None, snapshot: dt.datetime, every: dt.timedelta) -> bool:
    """Whether this run compares keys: never compared, or the census is `every` old."""
    census = last.census if last else None
    return census is None or snapshot - census.time >= every


def _present(conn: Connection, table: str) -> keysets.Intervals:
    """The table's keys in the run's snapshot, as intervals."""
    found = conn.execute(islands(source_table(table)))
    return [[int(low), int(high)] for low, high in found]


def _read_since(raw: Lake, census: Census) -> dict[str, np.ndarray]:
    """The keys every raw run after the census read (its rows and the versions it set
    aside), by table."""
    runs = manifests.runs_after(raw, census.seq, RawManifest)
    found: dict[str, list[np.ndarray]] = {}
    for run in runs:
        for table in run.tables:
            key = source_key(table)
            rows = read_parquet(raw, run.files(table), pa.schema([(key, pa.int32())]))
            found.setdefault(table, []).append(rows.column(key).to_numpy().astype(np.int64))
        entries = read_parquet(raw, run.quarantine.keys, ENTRY)
        for table in set(entries.column("source_table").to_pylist()):
            mine = entries.filter(pc.equal(entries.column("source_table"), table))
            found.setdefault(table, []).append(mine.column("key").to_numpy())
    return {table: keysets.unique(np.concatenate(parts)) for table, parts in found.items()}


def _census_keys(raw: Lake, census: Census | None) -> dict[str, keysets.Intervals]:
    if census is None:
        return {}
    taken = manifests.read(raw, manifests.manifest_key(census.seq), RawManifest).census
    return taken.keys or {} if taken else {}


def compare(
    conn: Connection,
    raw: Lake,
    last: RawManifest | None,
    options: Deletes,
    seq: int,
    snapshot: dt.datetime,
    deadline: Deadline,
) -> tuple[pa.Table, Census]:
    """The tombstones of the keys deleted since the census, and the new census; raises
    when a table lost more than its share at once (nothing is recorded)."""
    started = time.perf_counter()
    census = last.census if last else None
    known = _census_keys(raw, census)
    read = _read_since(raw, census) if census else {}
    taken: dict[str, keysets.Intervals] = {}
    gone: dict[str, np.ndarray] = {}
    held: dict[str, int] = {}
    for table in SOURCE_TABLES:
        deadline.check(f"comparing the keys of {table}")
        present = taken[table] = _present(conn, table)
        runs = known.get(table, [])
        extra = keysets.missing(runs, read.get(table, np.empty(0, dtype=np.int64)))
        lost = keysets.subtract(runs, present)  # a handful of intervals, whatever the size
        missing = keysets.unique(
            np.concatenate([keysets.spelled_out(lost), keysets.missing(present, extra)])
        )
        held[table] = keysets.count(runs) + extra.size
        if missing.size:
            gone[table] = missing
    _guard(gone, held, census, options)
    rows = sum(k.size for k in gone.values())
    tombstones = pa.table(
        {
            "source_table": pa.array(
                [t for t, k in gone.items() for _ in range(k.size)], pa.string()
            ),
            "key": pa.array(np.concatenate(list(gone.values())) if gone else [], pa.int64()),
            "deleted_at": pa.array([snapshot] * rows, pa.timestamp("ms")),
            "raw_seq": pa.array([seq] * rows, pa.int32()),
        },
        schema=tombstone_schema(),
    )
    log.info(
        "compared the keys of every source table%s",
        "" if census else " for the first time (keys deleted before now are not found)",
        extra={"deleted": rows, "seconds": round(time.perf_counter() - started, 3)},
    )
    return tombstones, Census(seq, snapshot, taken)


def _guard(
    gone: dict[str, np.ndarray], held: dict[str, int], census: Census | None, options: Deletes
) -> None:
    """More than the share of a table gone at once, or the table emptied, is taken for a
    mistake, not a delete: the run fails before it records anything."""
    too_many = []
    for table, keys in gone.items():
        emptied = keys.size == held[table]
        share = 100 * keys.size / held[table]
        if table not in options.allowed and (emptied or share > options.mass_percent):
            what = "all" if emptied else f"{share:.1f} %"
            too_many.append((table, f"{table} {keys.size} of {held[table]} ({what})"))
    if not too_many:
        return
    since = f" since {census.time:%Y-%m-%d %H:%M:%S} UTC" if census else ""
    raise RuntimeFailure(
        f"the source lost more rows at once than a delete does{since}: "
        f"{'; '.join(said for _, said in too_many)}, over --mass-delete-percent "
        f"{options.mass_percent:g}; taken for a mistake (a truncated table, a restore, the "
        "wrong database), nothing was recorded",
        "If they were deleted on purpose, run again with "
        + " ".join(f"--allow-mass-delete {table}" for table, _ in too_many),
    )
