"""Keys deleted in the source, into the warehouse, in the load's transaction.

After a run's star rows are applied, a deletion ends where the run brought a version of
its key read from the source anew (the key is there again, even as it was, restored
from a backup), or, for a reprocess, one newer than the version the warehouse held when
the key was deleted. Then each of the run's tombstones is recorded in
`totesys_meta.deletions` with that newest version: a fact's history rows stay, but the
key leaves the `*_latest` views and the summaries; a dimension row stays, marked kept,
while any fact references it, and is removed otherwise. A key recorded open already,
or by this very run before (a reload), is not recorded again.
"""

from __future__ import annotations

import pyarrow as pa
from sqlalchemy import BigInteger, Column, Connection, Date, Integer, MetaData, Table, Text, text
from sqlalchemy.schema import CreateTable, DropTable

from totesys_cli.db.copy import copy_in
from totesys_cli.lake import Lake
from totesys_cli.lake.files import read_parquet
from totesys_cli.lake.manifest import ProcessedManifest
from totesys_cli.schemas import DELETIONS, DIMENSION_VERSIONS, star
from totesys_cli.schemas.arrow import tombstone_schema
from totesys_cli.warehouse import upkeep

_STAGE = "tombstones"
# the types of the tombstones' columns (`tombstone_schema`) in the warehouse
_SQL_TYPES = {
    pa.string(): Text(),
    pa.int64(): BigInteger(),
    pa.int32(): Integer(),
    pa.date32(): Date(),
}


def _newest(name: str, key: str) -> str:
    """SQL: the newest version of the key `key` that the star table holds."""
    spec = star(name)
    if spec.is_fact:
        return (
            f"(SELECT max(f.last_updated_date + f.last_updated_time) FROM {name} f "  # nosec B608
            f"WHERE f.{spec.key} = {key})"
        )
    return (
        f"(SELECT v.source_last_updated FROM {DIMENSION_VERSIONS.fullname} v "  # nosec B608
        f"WHERE v.dimension = '{name}' AND v.key = {key})"
    )


def end(conn: Connection, processed: Lake, manifest: ProcessedManifest, replayed: bool) -> None:
    """End the open deletions of the keys this run brought back."""
    for name, files in manifest.tables.items():
        source = star(name).source
        if source is None or not files.files:
            continue
        opened = conn.execute(
            text(
                f"SELECT EXISTS (SELECT FROM {DELETIONS.fullname} "  # nosec B608
                "WHERE source_table = :source AND ended_in IS NULL)"
            ),
            {"source": source},
        ).scalar_one()
        if not opened:
            continue  # the usual case: nothing of this table is deleted
        key = star(name).key
        read = read_parquet(processed, files.keys, pa.schema([(key, pa.int32())]))
        conn.execute(
            text(
                f"UPDATE {DELETIONS.fullname} d SET ended_in = :seq, ended_at = now() "  # nosec B608
                "WHERE d.ended_in IS NULL AND d.source_table = :source AND d.key = ANY(:keys) "
                "AND (NOT :replayed OR d.last_version IS NULL "
                f"OR {_newest(name, 'd.key')} > d.last_version)"
            ),
            {
                "seq": manifest.seq,
                "source": source,
                "keys": read.column(key).to_pylist(),
                "replayed": replayed,
            },
        )


def record(conn: Connection, processed: Lake, manifest: ProcessedManifest) -> int:
    """Record the run's tombstones; how many deletions are new."""
    found = read_parquet(processed, manifest.deleted.keys, tombstone_schema(processed=True))
    if found.num_rows == 0:
        return 0
    stage = _stage(conn, found)
    fresh = (
        f"SELECT t.* FROM {_STAGE} t WHERE NOT EXISTS (SELECT FROM {DELETIONS.fullname} d "  # nosec B608
        "WHERE d.source_table = t.source_table AND d.key = t.key "
        f"AND (d.ended_in IS NULL OR d.deleted_in = {int(manifest.seq)}))"
    )
    added = 0
    for name in sorted(set(found.column("star_table").to_pylist()), key=str):
        spec = star(name) if name is not None else None
        mine = f"{fresh} AND t.star_table {'IS NULL' if name is None else f'= {name!r}'}"
        if spec is not None and spec.is_fact:
            upkeep.forget(conn, name, f"SELECT key FROM ({mine}) n")  # nosec B608
        newest = _newest(name, "t.key") if spec is not None else "NULL"
        kept = _referenced(name, "t.key") if spec is not None and spec.is_dimension else "false"
        added += conn.execute(
            text(
                f"INSERT INTO {DELETIONS.fullname} (source_table, key, deleted_in, "  # nosec B608
                "star_table, deleted_at, raw_seq, last_version, kept) "
                "SELECT t.source_table, t.key, :seq, t.star_table, "
                "t.deleted_date + t.deleted_time * interval '1 millisecond', t.raw_seq, "
                f"{newest}, {kept} FROM ({mine}) t ON CONFLICT DO NOTHING"
            ),
            {"seq": manifest.seq},
        ).rowcount
        if spec is not None and spec.is_dimension:
            conn.execute(
                text(
                    f"DELETE FROM {name} WHERE {spec.key} IN (SELECT key FROM "  # nosec B608
                    f"{DELETIONS.fullname} WHERE deleted_in = :seq AND source_table = "
                    ":source AND NOT kept AND ended_in IS NULL)"
                ),
                {"seq": manifest.seq, "source": spec.source},
            )
    conn.execute(DropTable(stage))
    return added


def _referenced(dimension: str, key: str) -> str:
    """SQL: whether any fact row references the dimension's key."""
    uses = [
        f"EXISTS (SELECT FROM {fact} f WHERE f.{column} = {key})"  # nosec B608
        for fact, column in star(dimension).referenced_by
    ]
    return f"({' OR '.join(uses)})" if uses else "false"


def _stage(conn: Connection, found: pa.Table) -> Table:
    """The run's tombstones in a temporary table, its columns those of their files."""
    columns = (Column(f.name, _SQL_TYPES[f.type]) for f in found.schema)
    stage = Table(_STAGE, MetaData(), *columns, prefixes=["TEMPORARY"], postgresql_on_commit="DROP")
    conn.execute(CreateTable(stage))
    copy_in(conn, _STAGE, found)
    return stage
