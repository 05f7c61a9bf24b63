"""Time building the benchmark dataset (target: under 60 s).

    python bench/generate.py [--sales-orders N] [--keep DIR]

Uses TOTESYS_BENCH_DATABASE_URL's server when set, else an embedded PostgreSQL.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, make_url, select, text

from totesys_cli.config.urls import Database, parse_database_url
from totesys_cli.db import engine
from totesys_cli.demo import embedded, generator
from totesys_cli.schemas import SOURCE_TABLES, source_table


def _db(url: str) -> Database:
    return Database("bench", parse_database_url("bench", url, "TOTESYS_BENCH_DATABASE_URL"), "-")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sales-orders", type=int, default=generator.BENCHMARK.sales_orders)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, help="embedded server folder to keep running")
    args = parser.parse_args()
    sizes = generator.Sizes(args.sales_orders, round(args.sales_orders * 0.42))

    base = os.environ.get("TOTESYS_BENCH_DATABASE_URL")
    if base is None:
        folder = args.keep or Path(tempfile.mkdtemp()) / "pg"
        server = embedded.start(folder, keep_running=args.keep is not None)
        base = server.url()
    admin = engine(_db(base)).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("DROP DATABASE IF EXISTS bench_source WITH (FORCE)"))
        conn.execute(text("CREATE DATABASE bench_source"))
    source = _db(make_url(base).set(database="bench_source").render_as_string(hide_password=False))

    start = time.perf_counter()
    with engine(source).begin() as conn:
        generator.generate_source(conn, sizes, seed=args.seed)
    seconds = time.perf_counter() - start

    with engine(source).connect() as conn:
        counts = {
            t: conn.execute(select(func.count()).select_from(source_table(t))).scalar_one()
            for t in SOURCE_TABLES
        }
    rows = sum(counts.values())
    print(
        f"generated {rows:,} rows in {seconds:.1f} s ({rows / seconds:,.0f} rows/s); "
        f"target < 60 s: {'met' if seconds < 60 else 'MISSED'}"
    )
    for table, count in counts.items():
        print(f"  {table:<16} {count:>10,}")


if __name__ == "__main__":
    main()
