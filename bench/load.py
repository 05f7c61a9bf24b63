"""`totesys load` of the processed benchmark dataset against the floor.

    python bench/load.py [--sales-orders N] [--keep DIR]

The floor is psql `\\copy` of the same star rows (as CSV) into star tables with the same
primary keys and unique version indexes but no foreign keys; the same COPY with the
foreign keys in place is printed beside it. Target: load/floor <= 2.5.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pyarrow.csv as pcsv
from common import HERE, TOTESYS, Server, database, run_psql, setup, timed
from sqlalchemy.schema import CreateIndex, CreateTable

from totesys_cli.db import engine
from totesys_cli.lake import Lake, open_lake
from totesys_cli.lake import manifest as manifests
from totesys_cli.lake.files import read_parquet
from totesys_cli.lake.manifest import ProcessedManifest
from totesys_cli.schemas import STAR_TABLES, WAREHOUSE, data_columns, star_table
from totesys_cli.schemas.arrow import VERSION


def star_csvs(processed: Lake, folder: Path) -> int:
    """Every star row of the processed zone as one CSV per table; returns the row count."""
    rows = 0
    for manifest in manifests.runs_after(processed, 0, ProcessedManifest):
        for table, entry in manifest.tables.items():
            for key in entry.keys:
                data = read_parquet(processed, [key])
                if VERSION in data.column_names:
                    data = data.drop_columns([VERSION])
                with open(folder / f"{table}.csv", "ab") as sink:
                    pcsv.write_csv(
                        data, sink, pcsv.WriteOptions(include_header=False, quoting_style="needed")
                    )
                rows += data.num_rows
    return rows


def copy_script(folder: Path) -> str:
    lines = []
    for table in STAR_TABLES:
        columns = ", ".join(f'"{c}"' for c in data_columns(star_table(table)))
        lines.append(
            f"\\copy \"{table}\" ({columns}) FROM '{folder / table}.csv' WITH (FORMAT csv)"
        )
    return "\n".join(lines) + "\n"


def floor_database(server: Server, name: str, foreign_keys: bool) -> str:
    url = server.create(name)
    with engine(database(url)).begin() as conn:
        for table in WAREHOUSE.sorted_tables:
            conn.execute(
                CreateTable(table, include_foreign_key_constraints=None if foreign_keys else [])
            )
            for index in table.indexes:
                conn.execute(CreateIndex(index))
    return url


def main() -> None:
    _, sizes, server = setup(__doc__)
    source = server.source(sizes)
    work = Path(tempfile.mkdtemp(prefix="totesys-bench-"))
    lake_url = str(work / "lake")
    timed([TOTESYS, "extract", "--source-url", source, "--lake-url", lake_url])
    timed([TOTESYS, "transform", "--lake-url", lake_url])
    csv_dir = work / "csv"
    csv_dir.mkdir()
    rows = star_csvs(open_lake(f"{lake_url}/processed", "-"), csv_dir)

    floor = run_psql(floor_database(server, "bench_floor", False), copy_script(csv_dir))
    with_fks = run_psql(floor_database(server, "bench_floor_fk", True), copy_script(csv_dir))
    warehouse = server.create("bench_warehouse")
    timed([TOTESYS, "init", "--warehouse-url", warehouse])
    seconds, rss, _, _ = timed(
        [TOTESYS, "load", "--warehouse-url", warehouse, "--lake-url", lake_url]
    )

    figures = {
        "rows": rows,
        "floor_seconds": round(floor, 2),
        "floor_with_foreign_keys_seconds": round(with_fks, 2),
        "load_seconds": round(seconds, 2),
        "load_peak_rss_mb": round(rss),
        "load_over_floor": round(seconds / floor, 2),
    }
    print(f"star rows                  {rows:>12,}")
    print(f"floor (psql \\copy, no FKs) {floor:>10.2f} s")
    print(f"psql \\copy with FKs        {with_fks:>10.2f} s")
    print(f"totesys load               {seconds:>10.2f} s  peak RSS {rss:,.0f} MB")
    print(f"load / floor               {seconds / floor:>10.2f}   (target <= 2.5)")
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "load.json").write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
