"""Transform: star rows for exactly what changed, referentially closed, chunk by chunk."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from sqlalchemy import text

from tests import expected
from tests.support import Pipeline, database_name, invoke
from totesys_cli.demo.activity import simulate_activity
from totesys_cli.errors import RuntimeFailure
from totesys_cli.lake import manifest as manifests
from totesys_cli.lake.files import read_parquet
from totesys_cli.lake.manifest import ProcessedManifest, RawManifest
from totesys_cli.schemas import DIMENSIONS, FACTS, STAR_TABLES, star
from totesys_cli.schemas.arrow import VERSION
from totesys_cli.transform.batch import MARGIN
from totesys_cli.transform.state import State

T = dt.datetime(2025, 3, 7, 10, 12, 10, 140000)
BULK = dt.datetime(2024, 10, 31, 14, 20, 49, 962000)

_db = database_name


def lake_of(source_url: str, folder) -> Pipeline:
    """The source and a lake, driven through the library, without a warehouse."""
    return Pipeline(source_url, None, folder)


def _processed(lake: Pipeline, seq: int) -> ProcessedManifest:
    return manifests.read(lake.processed, manifests.manifest_key(seq), ProcessedManifest)


def _latest_dimension(rows: list[dict], key: str) -> list[tuple]:
    """What the warehouse would hold: the newest version of each key."""
    newest: dict = {}
    for row in rows:
        if row[key] not in newest or row[VERSION] >= newest[row[key]][VERSION]:
            newest[row[key]] = row
    return sorted(tuple(v for k, v in r.items() if k != VERSION) for r in newest.values())


def _as_warehouse(lake: Pipeline, table: str) -> list[tuple]:
    rows = lake.star_rows(table)
    if table in DIMENSIONS and table != "dim_date":
        return _latest_dimension(rows, next(iter(rows[0])))
    return sorted({tuple(r.values()) for r in rows})


def _expected(pg, url: str, table: str) -> list[tuple]:
    with pg.engine(_db(url)).connect() as conn:
        return expected.rows(conn, table)


def test_processed_star_tables_equal_the_sql_expectation(pg, source_url, tmp_path):
    lake = lake_of(source_url, tmp_path)
    lake.extract(batch_rows=200)
    result = lake.transform()
    assert result.seq == 1 and result.raw_runs == [1]
    for table in STAR_TABLES:
        assert _as_warehouse(lake, table) == _expected(pg, source_url, table), table
    assert len(result.tables["fact_payment"].files) > 1  # transformed chunk by chunk


def test_after_activity_changes_and_their_dependents_are_emitted(pg, source_url, tmp_path):
    lake = lake_of(source_url, tmp_path)
    lake.process()
    before = {t: _expected(pg, source_url, t) for t in ("fact_payment", "fact_sales_order")}
    with pg.engine(_db(source_url)).begin() as conn:
        activity = simulate_activity(conn, seed=11, step=2)
        department_staff = set(
            conn.execute(
                text("SELECT staff_id FROM staff WHERE department_id = :d"),
                {"d": activity.moved_department},
            ).scalars()
        )
        rehomed = set(
            conn.execute(
                text(
                    "SELECT counterparty_id FROM counterparty WHERE legal_address_id = :a "
                    "OR counterparty_id = :c"
                ),
                {"a": activity.changed_address, "c": activity.moved_counterparty},
            ).scalars()
        )
    lake.extract()
    second = lake.transform()
    staff = {r["staff_id"] for r in lake.star_rows("dim_staff", [second.seq])}
    assert staff == department_staff | {activity.renamed_staff}
    counterparties = {
        r["counterparty_id"] for r in lake.star_rows("dim_counterparty", [second.seq])
    }
    assert counterparties == rehomed
    assert {r["location_id"] for r in lake.star_rows("dim_location", [second.seq])} == {
        activity.changed_address
    }
    for unchanged in ("dim_currency", "dim_design", "dim_payment_type"):
        assert unchanged not in second.tables or second.tables[unchanged].rows == 0
    assert second.tables["fact_sales_order"].rows == 20
    # every table still equals the expectation; facts keep both versions of paid payments
    for table in STAR_TABLES:
        want = _expected(pg, source_url, table)
        if table in before:
            want = sorted(set(want) | set(before[table]))
        assert _as_warehouse(lake, table) == want, table
    paid = {r["payment_id"] for r in lake.star_rows("fact_payment") if r["paid"]}
    assert set(activity.paid_payments) <= paid


def test_versions_repeated_by_the_extract_overlap_are_dropped(pg, source_url, tmp_path):
    lake = lake_of(source_url, tmp_path)
    lake.process()
    lake.activity()
    lake.extract()
    second = lake.transform()
    assert second.tables["fact_sales_order"].rows == 20
    again = lake.extract()  # the overlap re-reads the same versions
    assert again.tables["sales_order"].rows == 20
    third = lake.transform()
    assert third.rows == 0
    assert lake.transform().seq is None  # nothing new at all: no run
    with pg.engine(_db(source_url)).begin() as conn:  # repeats and news in one raw file
        newer = simulate_activity(conn, seed=5, step=2)
    assert lake.extract().tables["sales_order"].rows == 40
    fourth = lake.transform()
    emitted = lake.star_rows("fact_sales_order", [fourth.seq])
    assert sorted(r["sales_order_id"] for r in emitted) == newer.new_sales_orders


def test_a_batch_of_raw_runs_emits_each_version_once(pg, source_url, tmp_path):
    lake = lake_of(source_url, tmp_path)
    lake.extract()
    lake.activity()
    lake.extract()
    lake.extract()
    result = lake.transform()
    assert result.raw_runs == [1, 2, 3]
    versions = [
        (r["sales_order_id"], r["last_updated_date"], r["last_updated_time"])
        for r in lake.star_rows("fact_sales_order")
    ]
    assert len(versions) == len(set(versions))


def test_a_fact_without_its_dimensions_waits_for_them_and_then_flows(pg, source_url, tmp_path):
    """Nothing dangling reaches a processed run: the orders wait, set aside, until their
    dimensions are emitted, and then go through by themselves."""
    lake = lake_of(source_url, tmp_path)
    lake.extract(tables=("sales_order",))
    first = lake.transform()
    assert "fact_sales_order" not in first.tables  # nothing dangling was written
    assert first.quarantined == 300 * 5  # every order, each of its five dimension keys
    entries = read_parquet(lake.processed, _processed(lake, 1).quarantine.keys)
    assert set(entries.column("kind").to_pylist()) == {"missing_parent"}
    assert set(entries.column("column").to_pylist()) == {
        "sales_staff_id",
        "counterparty_id",
        "currency_id",
        "design_id",
        "agreed_delivery_location_id",
    }
    assert _processed(lake, 1).waiting["fact_sales_order"].rows == 300
    lake.extract()
    second = lake.transform()
    assert second.tables["fact_sales_order"].rows == 300  # they waited, now they flow
    assert not _processed(lake, 2).waiting  # nothing waits any more
    resolved = read_parquet(lake.processed, _processed(lake, 2).quarantine.keys)
    assert resolved.num_rows == 300 * 5 and all(resolved.column("resolved").to_pylist())
    assert State.load(_processed(lake, 2)).open.num_rows == 0
    # the tables first read in full by run 2 do not make the state keep every version
    assert all(v.num_rows < 50 for v in State.load(_processed(lake, 2)).seen.values())
    assert _as_warehouse(lake, "fact_sales_order") == _expected(pg, source_url, "fact_sales_order")


def test_since_emits_the_window_again_and_corrects_it(pg, source_url, tmp_path):
    lake = lake_of(source_url, tmp_path)
    lake.process()
    since = dt.datetime(2026, 10, 1)
    result = lake.transform(since=since)
    assert result.seq == 2 and result.raw_runs == [1]
    with pg.engine(_db(source_url)).connect() as conn:
        window = conn.execute(
            text("SELECT count(*) FROM sales_order WHERE last_updated >= :t"), {"t": since}
        ).scalar_one()
    assert result.tables["fact_sales_order"].rows == window > 0
    manifest = _processed(lake, 2)
    assert manifest.since == since
    assert manifest.min_last_updated >= since


def test_a_corrupt_raw_file_fails_naming_it(pg, source_url, tmp_path):
    lake = lake_of(source_url, tmp_path)
    first = lake.extract()
    key = first.tables["staff"].files[0].key
    path = tmp_path / "raw" / key
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(RuntimeFailure) as caught:
        lake.transform()
    assert caught.value.problem.startswith(f"the lake file {tmp_path}/raw/{key} is not readable")
    assert manifests.latest(lake.processed, ProcessedManifest) is None


def test_duckdb_reads_each_star_table_as_a_dataset(pg, source_url, tmp_path):
    import duckdb

    lake = lake_of(source_url, tmp_path)
    lake.process()
    lake.activity()
    lake.process()
    lake.transform(since=dt.datetime(2026, 1, 1))  # the change log repeats versions
    for table in STAR_TABLES:
        source = (
            f"read_parquet('{tmp_path}/processed/{table}/*/*.parquet', hive_partitioning = true)"
        )
        if table in DIMENSIONS and table != "dim_date":
            key = star(table).key
            query = (
                f"SELECT * EXCLUDE (processed_date, source_last_updated, rn) FROM ("
                f"SELECT *, row_number() OVER (PARTITION BY {key} ORDER BY "
                f"source_last_updated DESC) AS rn FROM {source}) WHERE rn = 1"
            )
        else:
            query = f"SELECT DISTINCT * EXCLUDE (processed_date) FROM {source}"
        if table in FACTS:  # a time of day is milliseconds since midnight in the lake
            times = ("created_time", "last_updated_time")
            shown = ", ".join(f"TIME '00:00' + to_milliseconds({c}) AS {c}" for c in times)
            query = f"SELECT * REPLACE ({shown}) FROM ({query})"
        assert sorted(duckdb.sql(query).fetchall()) == _as_warehouse(lake, table), table


def test_cli_transform(source_url, tmp_path):
    lake_url = str(tmp_path)
    assert invoke("extract", "--source-url", source_url, "--lake-url", lake_url).exit_code == 0
    result = invoke("transform", "--lake-url", lake_url)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1].startswith("processed run 1 committed from raw runs 1:")
    again = invoke("transform", "--lake-url", lake_url)
    assert again.exit_code == 0
    assert again.stdout == (
        "nothing to transform: every committed raw run is already transformed\n"
    )


def test_the_state_remembers_only_what_the_next_extract_can_read_again(pg, source_url, tmp_path):
    """A busy source changes all day: remembering a day of versions would make every
    run read and write them all. Only the overlap window the next extract rereads."""
    with pg.engine(_db(source_url)).begin() as conn:
        conn.execute(
            text(
                "UPDATE sales_order SET last_updated = CASE sales_order_id "
                "WHEN 1 THEN now() - interval '2 hours' ELSE now() END "
                "WHERE sales_order_id IN (1, 2)"
            )
        )
    lake = lake_of(source_url, tmp_path)
    lake.process()
    seen = State.load(_processed(lake, 1)).seen
    assert seen["sales_order"].column("sales_order_id").to_pylist() == [2]
    raw = manifests.read(lake.raw, manifests.manifest_key(1), RawManifest)
    for table, versions in seen.items():  # newer than min(W, S - overlap), the next bound
        state = raw.state[table]
        bound = min(state.watermark, state.snapshot - raw.overlap)
        oldest = pc.min(versions.column("last_updated")).as_py()
        assert oldest > bound - MARGIN, table


def test_the_state_travels_through_the_manifest_unchanged():
    versions = pa.table(
        {"payment_id": pa.array([3, 4], pa.int32()), "last_updated": pa.array([T, BULK])}
    ).cast(pa.schema([("payment_id", pa.int32()), ("last_updated", pa.timestamp("ms"))]))
    state = State(raw_seq=2, seen={"payment": versions}, dates=(T.date(), BULK.date()))
    packed = state.dump()
    assert "parquet" in packed["seen"]["payment"]  # versions packed, not JSON lists
    manifest = ProcessedManifest(seq=1, run_id="r", tables={}, raw_seq=2, state=packed)
    again = State.load(ProcessedManifest.from_json(json.loads(manifests.encode(manifest))))
    assert again.raw_seq == 2 and again.dates == state.dates
    assert again.seen["payment"].equals(versions)


def test_the_calendar_is_extended_by_the_new_dates_only(pg, source_url, tmp_path):
    lake = lake_of(source_url, tmp_path)
    first = lake.process()
    known = {r["date_id"] for r in lake.star_rows("dim_date", [first.seq])}
    with pg.engine(_db(source_url)).begin() as conn:  # an order due far beyond the calendar
        conn.execute(
            text(
                "UPDATE sales_order SET agreed_delivery_date = '2031-01-31', last_updated = "
                "(now() AT TIME ZONE 'UTC')::timestamp(3) WHERE sales_order_id = 1"
            )
        )
    second = lake.process()
    added = [r["date_id"] for r in lake.star_rows("dim_date", [second.seq])]
    beyond = (dt.date(2031, 1, 31) - max(known)).days
    assert added == [max(known) + dt.timedelta(days=n) for n in range(1, beyond + 1)]
    assert "dim_date" not in lake.process().tables  # an incremental run adds no date again
