"""The whole job on the benchmark dataset, against the physical floor.

    python bench/run_all.py [--sales-orders N] [--keep DIR] [--skip-naive] [--index]

Measured in one run: the floor (psql \\copy of every source table out, and back into
copies with the same primary keys and unique constraints); a full `totesys run-all`
from an empty lake and warehouse, with seconds per step; a no-op run-all as a whole
process, and one that compares every table's keys (which finds deletes); a 1% activity
burst, then run-all; the naive extract baseline (pg8000 SELECT * into pandas). Around the
no-op and the burst, the rows the source gave to sequential scans; `--index` first builds
an index on last_updated on every table of the source's copy (the totesys schema has
none), so a run reads its changes through it.
Targets: full <= 1.5 x floor, no-op <= 1.0 s, burst <= 0.1 x full, peak RSS <= 350 MB.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from common import (
    HERE,
    TOTESYS,
    Server,
    copy_out_script,
    database,
    run_psql,
    seq_rows,
    setup,
    timed,
)
from extract import naive_baseline
from sqlalchemy import text

from totesys_cli.db import engine
from totesys_cli.demo import generator
from totesys_cli.demo.activity import simulate_activity
from totesys_cli.schemas import SOURCE_TABLES


def floor(server: Server, source: str, folder: Path) -> tuple[float, float]:
    """(seconds out, seconds in): every table to CSV and back into keyed copies."""
    out = run_psql(source, copy_out_script(folder))
    copy = server.create("bench_floor_copy")
    with engine(database(copy)).begin() as conn:
        generator.create_source_schema(conn)  # keys and unique constraints, no foreign keys
    back = run_psql(
        copy,
        "".join(
            f"\\copy \"{t}\" FROM '{folder / t}.csv' WITH (FORMAT csv)\n" for t in SOURCE_TABLES
        ),
    )
    return out, back


def settled(server: Server) -> None:
    """The floor's copies dropped and the server's dirty pages written: the floor leaves
    4.26 million fresh rows, whose autovacuum and checkpoint would otherwise share the
    2 cores with the run measured next."""
    admin = engine(database(server.base)).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("DROP DATABASE IF EXISTS bench_floor_copy WITH (FORCE)"))
        conn.execute(text("CHECKPOINT"))


def main() -> None:
    args, sizes, server = setup(__doc__, naive=True, index=True)
    source = server.source(sizes)
    source_name = server.source_name(sizes)
    # the burst changes the source: work on a copy so the dataset can be reused
    with (
        engine(database(server.base))
        .execution_options(isolation_level="AUTOCOMMIT")
        .connect() as conn
    ):
        conn.execute(text("DROP DATABASE IF EXISTS bench_run WITH (FORCE)"))
        conn.execute(text(f'CREATE DATABASE bench_run TEMPLATE "{source_name}"'))
    source = server.url("bench_run")
    if args.index:
        with (
            engine(database(source)).execution_options(isolation_level="AUTOCOMMIT").connect() as c
        ):
            for table in SOURCE_TABLES:
                c.execute(text(f"CREATE INDEX {table}_last_updated ON {table} (last_updated)"))
            c.execute(text("ANALYZE"))
    work = Path(tempfile.mkdtemp(prefix="totesys-bench-"))
    csv = work / "csv"
    csv.mkdir()
    floor_out, floor_in = floor(server, source, csv)
    floor_total = floor_out + floor_in
    settled(server)

    warehouse = server.create("bench_run_warehouse")
    timed([TOTESYS, "init", "--warehouse-url", warehouse])
    env = {
        "TOTESYS_SOURCE_URL": source,
        "TOTESYS_WAREHOUSE_URL": warehouse,
        "TOTESYS_LAKE_URL": str(work / "lake"),
    }
    full, full_rss, _, log = timed([TOTESYS, "--log-format", "json", "run-all"], env)
    steps, peaks = _steps(log), _peaks(log)
    before = seq_rows(source)
    noop, noop_rss, _, log = timed([TOTESYS, "--log-format", "json", "run-all"], env)
    noop_scanned = seq_rows(source) - before
    noop_steps = _steps(log)
    # the same no-op comparing every table's keys (the default does it every 60 minutes)
    every = {**env, "TOTESYS_DELETES_EVERY_MINUTES": "0"}
    compared, _, _, log = timed([TOTESYS, "--log-format", "json", "run-all"], every)
    comparison = _comparison(log)
    with engine(database(source)).begin() as conn:
        simulate_activity(
            conn,
            seed=9,
            step=1,
            sales_orders=sizes.sales_orders // 100,
            purchase_orders=sizes.purchase_orders // 100,
            payments_paid=(sizes.sales_orders + sizes.purchase_orders) // 100,
        )
    before = seq_rows(source)
    burst, burst_rss, _, log = timed([TOTESYS, "--log-format", "json", "run-all"], env)
    burst_scanned = seq_rows(source) - before
    burst_steps = _steps(log)
    naive = None if args.skip_naive else naive_baseline(source)

    figures = {
        "sales_orders": sizes.sales_orders,
        "floor_out_seconds": round(floor_out, 2),
        "floor_in_seconds": round(floor_in, 2),
        "floor_seconds": round(floor_total, 2),
        "full_seconds": round(full, 2),
        "full_steps": steps,
        "full_peak_rss_mb": round(full_rss),
        "full_peak_rss_mb_by_step": peaks,
        "noop_seconds": round(noop, 2),
        "noop_peak_rss_mb": round(noop_rss),
        "noop_steps": noop_steps,
        "noop_startup_seconds": round(noop - sum(noop_steps.values()), 2),
        "noop_source_rows_scanned": noop_scanned,
        "burst_source_rows_scanned": burst_scanned,
        "indexed": args.index,
        "noop_comparing_keys_seconds": round(compared, 2),
        "key_comparison_seconds": comparison,
        "burst_seconds": round(burst, 2),
        "burst_steps": burst_steps,
        "burst_peak_rss_mb": round(burst_rss),
        "naive_extract_seconds": None if naive is None else round(naive, 2),
        "full_over_floor": round(full / floor_total, 2),
        "burst_over_full": round(burst / full, 3),
    }
    print(
        f"dataset: {sizes.sales_orders:,} sales orders, {sizes.purchase_orders:,} purchase "
        "orders, a transaction and a payment each"
    )
    print(f"floor: psql \\copy out {floor_out:.2f} s + in {floor_in:.2f} s = {floor_total:.2f} s")
    print(f"full run-all     {full:8.2f} s  peak RSS {full_rss:6,.0f} MB  steps {steps}")
    print(f"                 peak RSS once each step ended (MB) {peaks}")
    print(f"no-op run-all    {noop:8.2f} s  peak RSS {noop_rss:6,.0f} MB  (target <= 1.0 s)")
    startup = noop - sum(noop_steps.values())
    print(
        f"                 process start, imports, connections {startup:.2f} s, steps {noop_steps}"
    )
    print(f"                 source rows read by sequential scans {noop_scanned:,}")
    print(f"no-op comparing  {compared:8.2f} s  (the key comparison itself {comparison} s)")
    print(f"1% burst run-all {burst:8.2f} s  peak RSS {burst_rss:6,.0f} MB  steps {burst_steps}")
    print(f"                 source rows read by sequential scans {burst_scanned:,}")
    if naive is not None:
        print(f"naive extract    {naive:8.2f} s  (pg8000 SELECT * into pandas)")
    print(f"full / floor     {full / floor_total:8.2f}    (target <= 1.5)")
    print(f"burst / full     {burst / full:8.3f}    (target <= 0.1)")
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    name = f"run_all_{sizes.sales_orders}{'_indexed' if args.index else ''}.json"
    (out_dir / name).write_text(json.dumps(figures, indent=1))


def _comparison(log: str) -> float | None:
    """Seconds of the run's comparison of keys, from its log line."""
    lines = [json.loads(line) for line in log.strip().splitlines()]
    return next((x["seconds"] for x in lines if x["message"].startswith("compared the keys")), None)


def _steps(log: str) -> dict[str, float]:
    """Seconds per step, from the run's `run succeeded` line."""
    last = json.loads(log.strip().splitlines()[-1])
    return {step: last[f"{step}_seconds"] for step in ("extract", "transform", "load")}


def _peaks(log: str) -> dict[str, int]:
    """The process's peak RSS (MB) once each step ended, from the `run succeeded` line."""
    last = json.loads(log.strip().splitlines()[-1])
    return {step: last.get(f"{step}_peak_rss_mb") for step in ("extract", "transform", "load")}


if __name__ == "__main__":
    main()
