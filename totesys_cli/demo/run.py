"""demo: the whole job on an embedded PostgreSQL and a local lake, with no set-up.

Each run resets the demo: it drops and recreates the source and warehouse databases and
empties the lake in its folder, so it always shows the same story. The server keeps
running afterwards, so the results can be explored; `totesys demo --stop` stops it.
"""

from __future__ import annotations

import logging
import shlex
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text

from totesys_cli.config.settings import parse_settings
from totesys_cli.config.urls import Database, parse_database_url
from totesys_cli.db import engine
from totesys_cli.demo import embedded, generator
from totesys_cli.demo.activity import Activity, simulate_activity
from totesys_cli.ops.init import init_warehouse
from totesys_cli.ops.verify import VerifyResult, verify
from totesys_cli.pipeline import RunAllResult, run_all
from totesys_cli.runtime.endpoints import SOURCE, WAREHOUSE, Endpoints, open_endpoints

log = logging.getLogger(__name__)

SOURCE_DB = "totesys"
WAREHOUSE_DB = "warehouse"

REVENUE_BY_COUNTRY = text("""
SELECT l.country, c.currency_code, sum(f.units_sold * f.unit_price) AS revenue,
       count(*) AS orders
FROM fact_sales_order_latest f
JOIN dim_location l ON l.location_id = f.agreed_delivery_location_id
JOIN dim_currency c USING (currency_id)
GROUP BY l.country, c.currency_code
ORDER BY c.currency_code, revenue DESC
""")


def default_folder() -> Path:
    return Path.home() / ".totesys-demo"


@dataclass
class DemoResult:
    folder: Path
    endpoints: Endpoints
    first: RunAllResult
    second: RunAllResult
    activity: Activity
    verified: VerifyResult
    revenue: list[tuple]
    server: embedded.EmbeddedServer


def _recreate(admin_url: str, name: str) -> None:
    db = Database("demo", parse_database_url("demo", admin_url, "-"), "-")
    with engine(db).execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
        quoted = conn.dialect.identifier_preparer.quote(name)
        conn.execute(text(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
        conn.execute(text(f"CREATE DATABASE {quoted}"))


def run_demo(folder: Path, scale: float = 1.0, say: Callable[[str], None] = print) -> DemoResult:
    folder = folder.expanduser().resolve()
    if embedded.running(folder / "pg"):
        say(f"Using the embedded PostgreSQL already running in {folder / 'pg'}.")
    else:
        say(f"Starting an embedded PostgreSQL in {folder / 'pg'} (it keeps running) ...")
    server = embedded.start(folder / "pg", keep_running=True)
    say("Resetting the demo: fresh source and warehouse databases, an empty lake.")
    for name in (SOURCE_DB, WAREHOUSE_DB):
        _recreate(server.url(), name)
    lake = folder / "lake"
    shutil.rmtree(lake, ignore_errors=True)
    settings = parse_settings(
        source_url=server.url(SOURCE_DB), warehouse_url=server.url(WAREHOUSE_DB), lake_url=str(lake)
    )
    ends = open_endpoints(settings, (SOURCE, WAREHOUSE))

    sizes = generator.Sizes.for_scale(scale)
    say(
        f"Generating the totesys source: {sizes.sales_orders:,} sales orders, "
        f"{sizes.purchase_orders:,} purchase orders, two years of history ..."
    )
    with engine(ends.source).begin() as conn:
        generator.generate_source(conn, sizes)
    init_warehouse(ends.warehouse)

    say("\nFirst run: everything is new.")
    first = run_all(settings)
    say("\nA burst of activity: new orders, payments paid, a department moving city ...")
    with engine(ends.source).begin() as conn:
        activity = simulate_activity(conn, seed=1, step=1)
    say("Second run: only what changed travels.")
    second = run_all(settings)
    verified = verify(ends.source, ends.warehouse)
    with engine(ends.warehouse).connect() as conn:
        revenue = [tuple(r) for r in conn.execute(REVENUE_BY_COUNTRY)]
    return DemoResult(folder, ends, first, second, activity, verified, revenue, server)


SAMPLE_QUERY = "SELECT * FROM fact_sales_order_latest LIMIT 5"


def how_to_explore(result: DemoResult) -> str:
    server, lake = result.server, result.folder / "lake"
    socket_folder = server.socket.rsplit("/", 1)[0]
    return "\n".join(
        [
            "",
            "Explore it:",
            f"  export TOTESYS_SOURCE_URL='{server.url(SOURCE_DB)}'",
            f"  export TOTESYS_WAREHOUSE_URL='{server.url(WAREHOUSE_DB)}'",
            f"  export TOTESYS_LAKE_URL='{lake}'",
            "  totesys status          where every step stands",
            "  totesys run-all         one more incremental run",
            "  totesys verify          reconcile source and warehouse",
            f"  psql -h {socket_folder} -U postgres -d {WAREHOUSE_DB} -c '{SAMPLE_QUERY}'",
            f"  ls {lake}/processed     the star tables as Parquet datasets",
            "  totesys report --out report.html   the dashboard as one file, opens offline",
            f"  {stop_command(result.folder)}     stop the demo's PostgreSQL",
            "",
            "Open the dashboard on the demo warehouse:",
            f"  totesys dashboard --warehouse-url '{server.url(WAREHOUSE_DB)}'",
            "  then browse http://127.0.0.1:8050/ (Ctrl-C stops it)",
        ]
    )


def stop_command(folder: Path) -> str:
    """The command that stops this folder's server, as it works when typed anywhere."""
    if folder == default_folder().expanduser().resolve():
        return "totesys demo --stop"
    return f"totesys demo --folder {shlex.quote(str(folder))} --stop"


def stop_demo(folder: Path) -> bool:
    """Stop the demo's server; False when none was running there."""
    pgdata = folder.expanduser().resolve() / "pg"
    if not (pgdata / "postmaster.pid").exists():
        return False
    server = embedded.start(pgdata, keep_running=True)
    server.handle.cleanup_mode = "stop"
    server.handle.cleanup()
    return True
