"""What a run costs the source: with an index on last_updated its changes only, without
one the table whole; and what it reads either way is every version it must."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from tests.conftest import PgServer, _start_embedded
from tests.support import (
    TEST_SEED,
    TEST_SIZES,
    database_name,
    index_last_updated,
    invoke,
    server_folder,
)
from totesys_cli.config.settings import parse_settings
from totesys_cli.demo import generator
from totesys_cli.demo.activity import simulate_activity
from totesys_cli.extract import ExtractOptions, extract
from totesys_cli.extract.options import Deletes
from totesys_cli.lake import manifest as manifests
from totesys_cli.lake import open_lake
from totesys_cli.lake.files import read_parquet
from totesys_cli.lake.manifest import RawManifest
from totesys_cli.runtime import Deadline
from totesys_cli.runtime.endpoints import SOURCE, open_endpoints
from totesys_cli.schemas import SOURCE_TABLES, source_table
from totesys_cli.schemas.arrow import arrow_schema

HOUR = dt.timedelta(hours=1)


def _extract(url: str, lake, every: dt.timedelta = HOUR):
    source = open_endpoints(parse_settings(source_url=url), (SOURCE,)).source
    raw = open_lake(str(lake), "TEST")
    options = ExtractOptions(deletes=Deletes(every=every))
    return extract(source, raw, options, Deadline(None)), raw


def _scans(pg, url: str) -> dict[str, tuple[int, int]]:
    """Rows read by sequential scans, and index scans, per source table."""
    with pg.engine(database_name(url)).connect() as conn:
        found = conn.execute(
            text(
                "SELECT relname, seq_tup_read, coalesce(idx_scan, 0) FROM pg_stat_user_tables "
                "WHERE relname = ANY(:t)"
            ),
            {"t": list(SOURCE_TABLES)},
        )
        return {name: (seq, idx) for name, seq, idx in found}


def _settled(pg, url: str) -> dict[str, tuple[int, int]]:
    """The counts once what came before has arrived (a backend reports its counts as it
    ends: the activity's own scans must not count as the run's)."""
    deadline = time.monotonic() + 20
    counts = _scans(pg, url)
    while True:
        time.sleep(0.5)
        again = _scans(pg, url)
        if again == counts:
            return counts
        assert time.monotonic() < deadline, "the statistics never settled"
        counts = again


def _read_whole(pg, url: str, run) -> dict[str, int]:
    """Rows each table gave to sequential scans during `run`: its counts have arrived
    once its index probes have (it makes some on every table)."""
    before = _settled(pg, url)
    run()
    deadline = time.monotonic() + 20
    while not all(_scans(pg, url)[t][1] > before[t][1] for t in SOURCE_TABLES):
        assert time.monotonic() < deadline, "the run's statistics never arrived"
        time.sleep(0.1)
    after = _settled(pg, url)
    return {t: after[t][0] - before[t][0] for t in SOURCE_TABLES if after[t][0] > before[t][0]}


def _rows(raw, seq: int, table: str) -> list[dict]:
    manifest = manifests.read(raw, manifests.manifest_key(seq), RawManifest)
    schema = arrow_schema(source_table(table))
    return read_parquet(raw, manifest.files(table), schema).to_pylist()


def _key(table: str):
    name = source_table(table).primary_key.columns[0].name
    return lambda row: (row[name], row["last_updated"])


@pytest.fixture(scope="module")
def quiet_pg() -> Iterator[PgServer]:
    """A server of its own: transaction ids are the whole server's, and another test's
    transaction in progress at a run's snapshot that commits before the next one would
    (rightly) make the next one read by the snapshot too."""
    with server_folder("quiet") as folder:
        server = _start_embedded(folder / "data")
        server.create_database("template")
        with server.engine("template").begin() as conn:
            generator.generate_source(conn, TEST_SIZES, seed=TEST_SEED)
        yield server
        server._server.handle.cleanup()


@pytest.fixture
def quiet_source(quiet_pg: PgServer, request) -> tuple[PgServer, str]:
    """The server of its own, and a source database on it for this test."""
    name = quiet_pg.create_database(request.node.name[:40].lower(), template="template")
    return quiet_pg, quiet_pg.url(name)


def test_with_an_index_a_quiet_or_busy_run_reads_no_table_whole(quiet_source, tmp_path):
    """The burst's versions, exactly, through index probes; and a quiet run after it
    reads nothing whole. The same runs without the index read the tables whole (which
    also shows the counts are seen)."""
    pg, source_url = quiet_source
    index_last_updated(pg, source_url)
    _extract(source_url, tmp_path)
    with pg.engine(database_name(source_url)).begin() as conn:
        activity = simulate_activity(conn, seed=3, step=1)
    whole = _read_whole(pg, source_url, lambda: _extract(source_url, tmp_path))
    assert whole == {}
    raw = open_lake(str(tmp_path), "TEST")
    for table in SOURCE_TABLES:
        with pg.engine(database_name(source_url)).connect() as conn:
            changed = conn.execute(
                text(f"SELECT * FROM {table} WHERE last_updated = :at"), {"at": activity.at}
            )
            wanted = [dict(r._mapping) for r in changed]
        assert sorted(_rows(raw, 2, table), key=_key(table)) == sorted(wanted, key=_key(table))
    assert _read_whole(pg, source_url, lambda: _extract(source_url, tmp_path)) == {}
    with pg.engine(database_name(source_url)).connect() as conn:
        for table in SOURCE_TABLES:
            conn.execute(text(f"DROP INDEX {table}_last_updated"))
        conn.commit()
    unindexed = _read_whole(pg, source_url, lambda: _extract(source_url, tmp_path))
    assert set(unindexed) == set(SOURCE_TABLES)


def _fixed_in_place(pg, url: str) -> None:
    """A DBA's fix that leaves last_updated as it was."""
    with pg.engine(database_name(url)).begin() as conn:
        conn.execute(
            text("UPDATE staff SET email_address = 'fixed@example.com' WHERE staff_id = 4")
        )


def _emails(raw, seq: int) -> list[tuple[int, str]]:
    return [(r["staff_id"], r["email_address"]) for r in _rows(raw, seq, "staff")]


def test_without_an_index_a_value_fixed_in_place_is_read_by_the_next_run(pg, source_url, tmp_path):
    _extract(source_url, tmp_path)
    _fixed_in_place(pg, source_url)
    _, raw = _extract(source_url, tmp_path)
    assert _emails(raw, 2) == [(4, "fixed@example.com")]


def test_with_an_index_a_value_fixed_in_place_is_read_by_the_next_sweep(quiet_source, tmp_path):
    """Runs between sweeps read by last_updated alone (on a quiet server: a transaction
    in progress at a snapshot that commits later makes the next run read by the
    snapshot too); the sweep (on the key comparison's cadence) reads every version
    written since the one before, once."""
    pg, source_url = quiet_source
    index_last_updated(pg, source_url, ["staff"])
    _extract(source_url, tmp_path)
    _fixed_in_place(pg, source_url)
    _, raw = _extract(source_url, tmp_path)  # within the hour: no sweep
    assert _emails(raw, 2) == []
    _extract(source_url, tmp_path, every=dt.timedelta(0))
    assert _emails(raw, 3) == [(4, "fixed@example.com")]
    _extract(source_url, tmp_path, every=dt.timedelta(0))
    assert _emails(raw, 4) == []  # swept since: not again


@pytest.mark.parametrize("indexed", [False, True], ids=["unindexed", "indexed"])
def test_init_and_status_name_the_tables_read_whole_and_the_index_that_spares_it(
    pg, source_url, warehouse_url, indexed
):
    """Largest first, with the planner's rows; the statement for each table big enough
    for an index to matter (the test's sales_order is made to look big, as the planner
    would see it on the real source)."""
    if indexed:
        index_last_updated(pg, source_url, [t for t in SOURCE_TABLES if t != "currency"])
    with pg.engine(database_name(source_url)).connect() as conn:
        conn.execute(text("ANALYZE"))
        conn.execute(text("UPDATE pg_class SET reltuples = 1000000 WHERE relname = 'sales_order'"))
        conn.commit()
    env = {"TOTESYS_SOURCE_URL": source_url, "TOTESYS_WAREHOUSE_URL": warehouse_url}
    advice = "CREATE INDEX CONCURRENTLY sales_order_last_updated ON sales_order (last_updated);"
    for command in ("init", "status"):
        result = invoke(command, env=env)
        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        whole = next(line for line in lines if line.startswith("source: "))
        if indexed:
            assert (
                whole
                == "source: read whole by every run (no index on last_updated): currency (3 rows)"
            )
            assert "CREATE INDEX" not in result.output  # a small table: as cheap read whole
        else:
            assert whole.startswith(
                "source: read whole by every run (no index on last_updated): "
                "sales_order (1,000,000 rows), "
            )
            assert [line.strip() for line in lines if "CREATE INDEX" in line] == [advice]


def test_init_and_status_go_on_without_a_source_they_cannot_reach(warehouse_url):
    """Neither needs the source: one it cannot reach is a WARNING, not a failure."""
    env = {
        "TOTESYS_SOURCE_URL": "postgresql://totesys:secret@127.0.0.1:1/totesys",
        "TOTESYS_WAREHOUSE_URL": warehouse_url,
    }
    for command in ("init", "status"):
        result = invoke(command, env=env)
        assert result.exit_code == 0, result.output
        assert "could not read which source tables every run reads whole" in result.output
        assert "source: read whole" not in result.output
