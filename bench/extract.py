"""`totesys extract` on the benchmark dataset against the floor and the naive baseline.

    python bench/extract.py [--scale-sales N] [--keep DIR]

The floor is psql `\\copy` of every source table out to CSV files, in one session.
The naive baseline is pg8000 `SELECT *` into pandas, table by table.
Targets: extract/floor <= 2.0, peak RSS <= 600 MB.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from common import HERE, TOTESYS, copy_out_script, database, run_psql, setup, timed
from sqlalchemy import text

from totesys_cli.db import engine
from totesys_cli.schemas import SOURCE_TABLES


def naive_baseline(url: str) -> float:
    try:
        import pandas as pd
    except ImportError:
        raise SystemExit(
            "the naive baseline needs pandas: pip install -e '.[bench]', or give --skip-naive"
        ) from None

    start = time.perf_counter()
    with engine(database(url)).connect() as conn:
        for table in SOURCE_TABLES:
            result = conn.execute(text(f'SELECT * FROM "{table}"'))
            pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    return time.perf_counter() - start


def main() -> None:
    args, sizes, server = setup(__doc__, naive=True)
    source = server.source(sizes)
    work = Path(tempfile.mkdtemp(prefix="totesys-bench-"))
    with engine(database(source)).connect() as conn:
        rows = sum(
            conn.execute(text(f'SELECT count(*) FROM "{t}"')).scalar_one() for t in SOURCE_TABLES
        )

    floor_dir = work / "floor"
    floor_dir.mkdir()
    floor = run_psql(source, copy_out_script(floor_dir))
    seconds, rss, _, _ = timed(
        [TOTESYS, "extract", "--source-url", source, "--lake-url", str(work / "lake")]
    )
    naive = None if args.skip_naive else naive_baseline(source)

    figures = {
        "rows": rows,
        "floor_seconds": round(floor, 2),
        "extract_seconds": round(seconds, 2),
        "extract_rows_per_second": round(rows / seconds),
        "extract_peak_rss_mb": round(rss),
        "extract_over_floor": round(seconds / floor, 2),
        "naive_seconds": None if naive is None else round(naive, 2),
        "naive_over_extract": None if naive is None else round(naive / seconds, 1),
    }
    print(f"rows                 {rows:>12,}")
    print(f"floor (psql \\copy)   {floor:>10.2f} s  {rows / floor:>12,.0f} rows/s")
    print(
        f"totesys extract      {seconds:>10.2f} s  {rows / seconds:>12,.0f} rows/s  "
        f"peak RSS {rss:,.0f} MB"
    )
    if naive is not None:
        print(f"naive SELECT *       {naive:>10.2f} s  {rows / naive:>12,.0f} rows/s")
    print(f"extract / floor      {seconds / floor:>10.2f}   (target <= 2.0)")
    print(f"peak RSS             {rss:>10,.0f} MB (target <= 600)")
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "extract.json").write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
