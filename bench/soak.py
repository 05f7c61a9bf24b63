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
seconds and the files per star table. Last, a second schedule of its own is run
`--every` runs, and each figure (a run-all after a slice, `status`, `verify`, the page,
`lake gc`, the history query) is measured on both alternately, `--rounds` times: the
medians compare a young history with the old compacted one at the same moments, which
the samples, minutes apart on a machine whose speed drifts, cannot.

A year of ten-minute runs is 52,560. After a daily compaction its lake holds what the
compacted soak holds per day, one day after another; what grows with the count of runs
is the manifests (a listing after the newest costs their names on a local lake, its
results on S3) and the run history every run and page view reads. `--year` fills the old
schedule's run history to a year before the side by side, so that its figures are a
year's: `python bench/soak.py --runs 2000 --every 100 --year`.
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
YEAR = 52_560  # ten-minute runs


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


class _Schedule:
    """A source, a warehouse and a lake of their own, run as the schedule runs them."""

    def __init__(self, server: Server, name: str, sizes: generator.Sizes):
        self.source = server.create(f"{name}_source")
        with engine(database(self.source)).begin() as conn:
            generator.generate_source(conn, sizes)
            self.newest = max(
                conn.execute(text(f'SELECT max(last_updated) FROM "{t}"')).scalar_one()  # nosec B608
                for t in SOURCE_TABLES
            )
        self.warehouse = server.create(f"{name}_warehouse")
        self.lake = Path(tempfile.mkdtemp(prefix=f"totesys-{name}-")) / "lake"
        self.env = {
            "TOTESYS_SOURCE_URL": self.source,
            "TOTESYS_WAREHOUSE_URL": self.warehouse,
            "TOTESYS_LAKE_URL": str(self.lake),
        }
        self.runs = 0
        timed([TOTESYS, "init"], self.env)

    def run(self) -> float:
        """A ten-minute slice of activity (after the first run), then run-all: its seconds."""
        if self.runs:
            at = self.newest + SLICE_APART * (self.runs + 1)  # the source's clock
            with engine(database(self.source)).begin() as conn:
                simulate_activity(conn, seed=7, step=self.runs + 1, at=at, **SLICE)
        self.runs += 1
        return timed([TOTESYS, "run-all"], self.env)[0]

    def command(self, *args: str) -> float:
        return timed([TOTESYS, *args], self.env)[0]

    def page(self) -> float:
        return _page(self.warehouse, self.lake)

    def year(self) -> int:
        """The run history filled to a year of ten-minute runs, before the oldest, each
        a copy of the newest run-all: what every run's pace and every page view read."""
        with engine(database(self.warehouse)).begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO totesys_meta.runs SELECT 'year-' || g, command,"
                    " first - g * interval '10 minutes', max_runtime,"
                    " first - g * interval '10 minutes' + (ended_at - started_at), outcome,"
                    " exit_code, error, rows, seconds, lake_runs"
                    " FROM (SELECT *, (SELECT min(started_at) FROM totesys_meta.runs) AS first"
                    "  FROM totesys_meta.runs WHERE command = 'run-all'"
                    "  ORDER BY started_at DESC LIMIT 1) newest,"
                    " generate_series(1, :year - (SELECT count(*) FROM totesys_meta.runs)) g"
                ),
                {"year": YEAR},
            )
            conn.execute(text("ANALYZE totesys_meta.runs"))
            return conn.execute(text("SELECT count(*) FROM totesys_meta.runs")).scalar_one()


def _side_by_side(young: _Schedule, old: _Schedule, rounds: int) -> dict[str, list[float]]:
    """Each figure of both schedules, alternately, `rounds` times: the medians compare
    their histories, not the machine's moments."""
    figures = {
        "run-all": lambda s: s.run(),
        "status": lambda s: s.command("status"),
        "verify": lambda s: s.command("verify"),
        "page": lambda s: s.page(),
        "lake gc": lambda s: s.command("lake", "gc"),
        "query": lambda s: _history_query(s.lake / "processed")[0],
    }
    found = {}
    for name, measure in figures.items():
        pairs = [(measure(young), measure(old)) for _ in range(rounds)]
        found[name] = [statistics.median(p[i] for p in pairs) for i in (0, 1)]
    return found


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5, help="of the side-by-side figures")
    parser.add_argument("--keep", type=Path, help="keep the embedded server in this folder")
    parser.add_argument(
        "--year",
        action="store_true",
        help="fill the old schedule's run history to a year of runs before the side by side",
    )
    parser.add_argument(
        "--sales-orders", type=int, default=generator.Sizes.for_scale(1).sales_orders
    )
    args = parser.parse_args()
    compiled()
    sizes = generator.Sizes(args.sales_orders, round(args.sales_orders * 0.42))
    server = Server(args.keep)
    schedule = _Schedule(server, "soak", sizes)
    lake, env = schedule.lake, schedule.env
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
            seconds.append(schedule.run())
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
            "status_seconds": schedule.command("status"),
            "verify_seconds": schedule.command("verify"),
            "pipeline_page_seconds": schedule.page(),
            "gc_seconds": schedule.command("lake", "gc"),
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
    if args.year:
        print(f"run history filled to a year: {schedule.year():,} runs", flush=True)
    # the same figures of a schedule only `--every` runs old, measured alternately with
    # the compacted one: what the history costs, apart from the machine's own drift
    young = _Schedule(server, "young", sizes)
    for _ in range(args.every):
        young.run()
    ages = f"{young.runs} and {schedule.runs} runs old" + (
        ", a year's history" if args.year else ""
    )
    compared = _side_by_side(young, schedule, args.rounds)
    print(f"\nside by side ({ages}; medians of {args.rounds} rounds; the old lake compacted):")
    print(f"{'figure':>8} {'young s':>9} {'old s':>9} {'ratio':>6}")
    for name, (then, now) in compared.items():
        print(f"{name:>8} {then:9.3f} {now:9.3f} {now / then:6.2f}", flush=True)
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    result = {"samples": samples, "side_by_side": compared}
    (out_dir / f"soak_{args.runs}.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
