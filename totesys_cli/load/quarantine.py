"""A processed run's quarantine entries into `totesys_meta.quarantine`, in the run's
transaction: new entries are recorded once, and an entry the run resolved records the
run that resolved it."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    MetaData,
    Table,
    and_,
    func,
    literal,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.schema import CreateTable, DropTable

from totesys_cli.db.copy import copy_in
from totesys_cli.lake import Lake
from totesys_cli.lake.files import read_parquet
from totesys_cli.lake.manifest import ProcessedManifest
from totesys_cli.schemas import QUARANTINE
from totesys_cli.schemas.quality import ENTRY, IDENTITY, table_name


def record(conn: Connection, processed: Lake, manifest: ProcessedManifest) -> int:
    """Returns how many new entries the warehouse recorded."""
    if not manifest.quarantine.files:
        return 0
    entries = read_parquet(processed, manifest.quarantine.keys, ENTRY)
    entries = entries.rename_columns([table_name(n) for n in entries.column_names])
    values = [c for c in entries.column_names if c != "resolved"]
    stage = Table(
        "stage_quarantine",
        MetaData(),
        *(Column(c, QUARANTINE.c[c].type) for c in values),
        Column("resolved", Boolean),
        prefixes=["TEMPORARY"],
        postgresql_on_commit="DROP",
    )
    conn.execute(CreateTable(stage))
    copy_in(conn, stage.name, entries)
    identity = [table_name(c) for c in IDENTITY]
    found = select(*(stage.c[c] for c in values), literal(manifest.seq)).where(~stage.c.resolved)
    new = pg_insert(QUARANTINE).from_select([*values, "found_in"], found)
    # an entry found again after it was resolved (a row fixed, then broken again in
    # place) opens again; a replay of an older run does not reopen it
    again = new.on_conflict_do_update(
        index_elements=identity,
        set_={"found_in": new.excluded.found_in, "resolved_in": None, "resolved_at": None},
        where=QUARANTINE.c.resolved_in < new.excluded.found_in,
    )
    added = conn.execute(again).rowcount
    conn.execute(
        update(QUARANTINE)
        .where(
            and_(*(QUARANTINE.c[c] == stage.c[c] for c in identity)),
            stage.c.resolved,
            QUARANTINE.c.resolved_in.is_(None),
        )
        .values(resolved_in=manifest.seq, resolved_at=func.now())
    )
    conn.execute(DropTable(stage))
    return added
