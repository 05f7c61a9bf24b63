"""An incremental transform costs what its change costs, not what the lake holds.

    python bench/transform.py [--keep DIR]

For a lake holding the scale-1 source and one holding the benchmark dataset: a full
extract and transform, then about 100 changed rows (a working day's activity), extract,
and `totesys transform` timed as a whole process.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from common import HERE, TOTESYS, Server, database, timed
from sqlalchemy import text

from totesys_cli.db import engine
from totesys_cli.demo import generator
from totesys_cli.demo.activity import simulate_activity


def incremental(server: Server, sizes: generator.Sizes) -> dict:
    server.source(sizes)
    name = server.source_name(sizes)
    admin = engine(database(server.base)).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("DROP DATABASE IF EXISTS bench_transform WITH (FORCE)"))
        conn.execute(text(f'CREATE DATABASE bench_transform TEMPLATE "{name}"'))
    source = server.url("bench_transform")
    lake = str(Path(tempfile.mkdtemp(prefix="totesys-bench-")) / "lake")
    timed([TOTESYS, "extract", "--source-url", source, "--lake-url", lake])
    full, full_rss, _, _ = timed([TOTESYS, "transform", "--lake-url", lake])
    with engine(database(source)).begin() as conn:
        activity = simulate_activity(conn, seed=4, step=1)
    changed = (
        (len(activity.new_sales_orders) + len(activity.new_purchase_orders)) * 3
        + len(activity.paid_payments)
        + 4
    )
    timed([TOTESYS, "extract", "--source-url", source, "--lake-url", lake])
    seconds, rss, _, _ = timed([TOTESYS, "transform", "--lake-url", lake])
    return {
        "sales_orders": sizes.sales_orders,
        "full_transform_seconds": round(full, 2),
        "full_peak_rss_mb": round(full_rss),
        "changed_rows": changed,
        "incremental_seconds": round(seconds, 2),
        "incremental_peak_rss_mb": round(rss),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", type=Path, help="keep the embedded server in this folder")
    args = parser.parse_args()
    server = Server(args.keep)
    small = incremental(server, generator.Sizes.for_scale(1))
    large = incremental(server, generator.BENCHMARK)
    for case in (small, large):
        print(
            f"lake of {case['sales_orders']:>9,} sales orders: full transform "
            f"{case['full_transform_seconds']:6.2f} s; {case['changed_rows']} changed rows "
            f"transformed in {case['incremental_seconds']:.2f} s "
            f"(peak RSS {case['incremental_peak_rss_mb']} MB)"
        )
    ratio = large["incremental_seconds"] / small["incremental_seconds"]
    print(f"incremental, benchmark dataset / scale 1: {ratio:.2f} (about the same: near 1)")
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "transform.json").write_text(
        json.dumps({"scale_1": small, "spec": large, "ratio": round(ratio, 2)}, indent=1)
    )


if __name__ == "__main__":
    main()
