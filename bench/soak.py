"""Many scheduled runs in a row: what grows with the lake's history, and what stays flat.

    python bench/soak.py [--runs 2000] [--every 100] [--keep DIR] [--sales-orders N]

The source is the demo's size (scale 1, about today's real database; `--sales-orders`
sets another). Each run is a `totesys run-all` process after a ten-minute slice of
`simulate_activity` (a few orders, payments paid, a department moving, a staff rename,
a counterparty moving). Every `--every` runs a sample prints: the median seconds of the
runs since the last sample; objects and bytes per zone (as the pipeline page counts
them, from the newest manifest and compaction record, and, apart from the timings, as
a listing finds them); the newest manifest's
bytes per zone; a full-history query over the processed zone with DuckDB (the latest
version of every sales order, ranked over every file of the fact, as the stack's named
queries rank them); and the seconds of `status`, `verify`, the pipeline page's first
view (a fresh reader, nothing cached) and `lake gc`. The slices are stamped ten
minutes apart from the source's newest change on, so that the overlap and every window
hold what they hold on a real schedule, whatever the runs' own pace; the lake's
partitions follow the wall clock, so every file lands in today's.

After the last run, `lake compact --before <tomorrow>` compacts that one day (a whole
year of runs, as far as the files go) and `lake gc --grace-hours 0` reclaims the small
files; a last row samples the lake as they leave it, and prints the compaction's
seconds and the files per star table.
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from common import HERE, TOTESYS, Server, compiled, database, timed
from sqlalchemy import text

from totesys_cli.dashboard.reading import Warehouse
from totesys_cli.db import engine
from totesys_cli.demo import generator
from totesys_cli.demo.activity import simulate_activity
from totesys_cli.lake import compaction, open_lake
from totesys_cli.lake import manifest as manifests
from totesys_cli.lake.manifest import ProcessedManifest, RawManifest
from totesys_cli.schemas import SOURCE_TABLES

SLICE = {"sales_orders": 3, "purchase_orders": 1, "payments_paid": 4}  # ten minutes
SLICE_APART = dt.timedelta(minutes=10)


def _zone(url: str, kind) -> dict:
    zone = open_lake(url, "SOAK")
    newest = manifests.latest(zone, kind)
    held = compaction.held(zone, newest)
    listed = zone.list("")
    return {
        "objects": held.files if held else None,
        "bytes": held.bytes if held else None,
        "listed_objects": len(listed),
        "listed_bytes": sum(o.size for o in listed),
        "manifest_bytes": newest.size if newest else 0,
    }


def _history_query(processed: Path) -> tuple[float, int]:
    """(seconds, files read): the latest version of every sales order, over all files."""
    import duckdb

    files = str(processed / "fact_sales_order" / "*" / "*.parquet")
    started = time.perf_counter()
    ((count,),) = duckdb.sql(
        "SELECT count(*) FROM (SELECT row_number() OVER (PARTITION BY sales_order_id "
        "ORDER BY last_updated_date DESC, last_updated_time DESC) AS n "
        f"FROM read_parquet('{files}', hive_partitioning = true)) WHERE n = 1"
    ).fetchall()
    seconds = time.perf_counter() - started
    assert count > 0
    return seconds, len(list(processed.glob("fact_sales_order/*/*.parquet")))


def _page(warehouse: str, lake: Path) -> float:
    """The pipeline page's first view: a fresh reader, nothing cached."""
    ends = SimpleNamespace(
        raw=open_lake(str(lake / "raw"), "SOAK"),
        processed=open_lake(str(lake / "processed"), "SOAK"),
    )
    started = time.perf_counter()
    reader = Warehouse(database(warehouse), lake=ends)
    try:
        with reader.reading() as reading:
            reading.pipeline()
    finally:
        reader.close()
    return time.perf_counter() - started


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--keep", type=Path, help="keep the embedded server in this folder")
    parser.add_argument(
        "--sales-orders", type=int, default=generator.Sizes.for_scale(1).sales_orders
    )
    args = parser.parse_args()
    compiled()
    sizes = generator.Sizes(args.sales_orders, round(args.sales_orders * 0.42))
    server = Server(args.keep)
    source = server.create("soak_source")
    with engine(database(source)).begin() as conn:
        generator.generate_source(conn, sizes)
        newest = max(
            conn.execute(text(f'SELECT max(last_updated) FROM "{t}"')).scalar_one()  # nosec B608
            for t in SOURCE_TABLES
        )
    warehouse = server.create("soak_warehouse")
    lake = Path(tempfile.mkdtemp(prefix="totesys-soak-")) / "lake"
    env = {
        "TOTESYS_SOURCE_URL": source,
        "TOTESYS_WAREHOUSE_URL": warehouse,
        "TOTESYS_LAKE_URL": str(lake),
    }
    timed([TOTESYS, "init"], env)
    samples, seconds = [], []
    print(
        f"{'run':>5} {'run s':>6} {'raw obj':>8} {'raw MB':>7} {'proc obj':>8} "
        f"{'proc MB':>7} {'manif KB':>8} {'query s':>7} {'files':>6} {'status':>6} "
        f"{'verify':>6} {'page':>6} {'gc':>6}",
        flush=True,
    )
    for run in range(1, args.runs + 2):
        if run > args.runs:  # the lake compacted, and reclaimed
            tomorrow = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)).isoformat()
            compact = timed([TOTESYS, "lake", "compact", "--before", tomorrow], env)[0]
            timed([TOTESYS, "lake", "gc", "--grace-hours", "0"], env)
            processed_lake = lake / "processed"
            per_table = {
                p.name: len(list(p.glob("*/*.parquet")))
                for p in processed_lake.iterdir()
                if not p.name.startswith("_")
            }
            print(f"compacted in {compact:.1f} s; files per star table: {per_table}", flush=True)
            seconds = [0.0]
        else:
            if run > 1:
                at = newest + SLICE_APART * run  # the source's clock, ten minutes a run
                with engine(database(source)).begin() as conn:
                    simulate_activity(conn, seed=7, step=run, at=at, **SLICE)
            seconds.append(timed([TOTESYS, "run-all"], env)[0])
            if run % args.every and run != 1:
                continue
        raw = _zone(str(lake / "raw"), RawManifest)
        processed = _zone(str(lake / "processed"), ProcessedManifest)
        query, files = _history_query(lake / "processed")
        sample = {
            "run": run,
            "run_seconds": statistics.median(seconds),
            "raw": raw,
            "processed": processed,
            "history_query_seconds": query,
            "fact_sales_order_files": files,
            "status_seconds": timed([TOTESYS, "status"], env)[0],
            "verify_seconds": timed([TOTESYS, "verify"], env)[0],
            "pipeline_page_seconds": _page(warehouse, lake),
            "gc_seconds": timed([TOTESYS, "lake", "gc"], env)[0],
        }
        samples.append(sample)
        seconds = []
        print(
            f"{'after' if run > args.runs else run:>5} {sample['run_seconds']:6.2f} "
            f"{raw['objects']:8,} "
            f"{raw['bytes'] / 1e6:7.1f} {processed['objects']:8,} "
            f"{processed['bytes'] / 1e6:7.1f} "
            f"{(raw['manifest_bytes'] + processed['manifest_bytes']) / 1e3:8.1f} "
            f"{query:7.3f} {files:6,} {sample['status_seconds']:6.2f} "
            f"{sample['verify_seconds']:6.2f} {sample['pipeline_page_seconds']:6.3f} "
            f"{sample['gc_seconds']:6.2f}",
            flush=True,
        )
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / f"soak_{args.runs}.json").write_text(json.dumps(samples, indent=1))


if __name__ == "__main__":
    main()
