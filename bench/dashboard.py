"""The dashboard at the benchmark dataset: a first view and a refresh, timed at the server
on loopback, for this build and (with --base) another; and what keeping the summaries
costs a 1 % burst load.

    python bench/dashboard.py [--sales-orders N] [--keep DIR] [--base PATH/TO/totesys]

The warehouse is loaded once by this build; both builds' dashboards then read it (an
older build reads the facts' latest views and ignores the summaries).
"""

from __future__ import annotations

import json
import signal
import statistics
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from common import HERE, TOTESYS, database, setup, timed
from sqlalchemy import text

from totesys_cli.db import engine
from totesys_cli.demo.activity import simulate_activity


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> float:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as response:  # noqa: S310 - loopback
        response.read()
        assert response.status == 200, url
    return time.perf_counter() - started


def _views(exe: str, warehouse: str, label: str) -> dict[str, float]:
    """First view (a fresh server: nothing cached), a refresh with the same load, and a
    first view with other filters, in seconds."""
    port = _free_port()
    proc = subprocess.Popen(
        [exe, "dashboard", "--warehouse-url", warehouse, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        proc.stdout.readline()  # "dashboard on ..." once it listens
        url = f"http://127.0.0.1:{port}/"
        first = _get(url)
        refreshes = [_get(url + "figures.json") for _ in range(9)]
        filtered = _get(url + "figures.json?from=2025-01-01&to=2025-06-30&currency=GBP")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    found = {
        "first_view_seconds": round(first, 3),
        "refresh_seconds": round(statistics.median(refreshes), 4),
        "other_filters_seconds": round(filtered, 3),
    }
    print(
        f"{label:6} first view {first:7.3f} s   refresh {found['refresh_seconds'] * 1000:7.1f} ms"
        f"   other filters {filtered:7.3f} s",
        flush=True,
    )
    return found


def _burst_load(source: str, warehouse: str, lake: str, sizes) -> dict[str, float]:
    """A 1 % burst through run-all: the load's seconds and the summaries' share."""
    with engine(database(source)).begin() as conn:
        simulate_activity(
            conn,
            seed=11,
            step=1,
            sales_orders=sizes.sales_orders // 100,
            purchase_orders=sizes.purchase_orders // 100,
            payments_paid=(sizes.sales_orders + sizes.purchase_orders) // 100,
        )
    env = {
        "TOTESYS_SOURCE_URL": source,
        "TOTESYS_WAREHOUSE_URL": warehouse,
        "TOTESYS_LAKE_URL": lake,
    }
    _, _, _, log = timed([TOTESYS, "--log-format", "json", "--log-level", "DEBUG", "run-all"], env)
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    load = next(line["load_seconds"] for line in lines if "load_seconds" in line)
    kept = sum(line.get("summaries_seconds", 0) for line in lines)
    return {"load_seconds": load, "summaries_seconds": round(kept, 3)}


def main() -> None:
    args, sizes, server = setup(__doc__, base=True)
    base = args.base
    source_name = server.source_name(sizes)
    server.source(sizes)
    admin = engine(database(server.base)).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("DROP DATABASE IF EXISTS bench_dashboard WITH (FORCE)"))
        conn.execute(text(f'CREATE DATABASE bench_dashboard TEMPLATE "{source_name}"'))
    source = server.url("bench_dashboard")
    warehouse = server.create("bench_dashboard_warehouse")
    lake = str(Path(tempfile.mkdtemp(prefix="totesys-bench-")) / "lake")
    timed([TOTESYS, "init", "--warehouse-url", warehouse])
    env = {
        "TOTESYS_SOURCE_URL": source,
        "TOTESYS_WAREHOUSE_URL": warehouse,
        "TOTESYS_LAKE_URL": lake,
    }
    full, _, _, _ = timed([TOTESYS, "run-all"], env)
    print(f"dataset: {sizes.sales_orders:,} sales orders, loaded in {full:.1f} s", flush=True)

    figures: dict[str, object] = {"sales_orders": sizes.sales_orders}
    if base is not None:
        figures["base"] = _views(base, warehouse, "base")
    figures["this"] = _views(TOTESYS, warehouse, "this")
    burst = _burst_load(source, warehouse, lake, sizes)
    figures["burst"] = burst
    share = burst["summaries_seconds"] / burst["load_seconds"]
    print(
        f"1% burst load {burst['load_seconds']:.2f} s, of which the summaries "
        f"{burst['summaries_seconds']:.3f} s ({share:.1%}; target <= 10 %)"
    )
    print("targets: first view <= 1 s, refresh <= 50 ms")
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / f"dashboard_{sizes.sales_orders}.json").write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
