"""Transform: star rows for exactly what changed, referentially closed, chunk by chunk."""

from __future__ import annotations

import datetime as dt
import decimal

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from click.testing import CliRunner
from sqlalchemy import text

from tests import expected
from totesys_cli import generator
from totesys_cli import lake as lakes
from totesys_cli.cli import cli
from totesys_cli.errors import RuntimeFailure
from totesys_cli.extract import ExtractOptions, extract
from totesys_cli.schemas import DIMENSIONS, STAR_TABLES, arrow_schema, source_table, star_table
from totesys_cli.settings import build_settings
from totesys_cli.transform import TransformOptions, stars, transform
from totesys_cli.transform.run import MARGIN, State

# ---------------------------------------------------------------- the pure functions

T = dt.datetime(2025, 3, 7, 10, 12, 10, 140000)  # 10:12:10.14, a real value
BULK = dt.datetime(2024, 10, 31, 14, 20, 49, 962000)


def _source(table: str, rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=arrow_schema(source_table(table)))


def _address(n: int, **values) -> dict:
    return {
        "address_id": n,
        "address_line_1": "1 O'Connell Street",
        "address_line_2": None,
        "district": None,
        "city": "Leeds",
        "postal_code": "LS1",
        "country": "Lao People's Democratic Republic",
        "phone": "0113 000",
        "created_at": BULK,
        "last_updated": BULK,
        **values,
    }


def test_dim_location_keeps_nulls_and_apostrophes():
    rows = stars.dim_location(_source("address", [_address(1), _address(2, district="Avon")]))
    assert rows.column_names[:3] == ["location_id", "address_line_1", "address_line_2"]
    first, second = rows.to_pylist()
    assert first["address_line_1"] == "1 O'Connell Street"
    assert first["address_line_2"] is None and first["district"] is None
    assert second["district"] == "Avon"
    assert first[stars.VERSION] == BULK


def test_dim_staff_joins_the_department_and_its_null_location():
    staff = _source(
        "staff",
        [
            {
                "staff_id": 4,
                "first_name": "Jeanette",
                "last_name": "O'Keefe",
                "department_id": 2,
                "email_address": "j@t.com",
                "created_at": BULK,
                "last_updated": BULK,
            }
        ],
    )
    department = _source(
        "department",
        [
            {
                "department_id": 2,
                "department_name": "Finance",
                "location": None,
                "manager": "x",
                "created_at": BULK,
                "last_updated": T,
            }
        ],
    )
    (row,) = stars.dim_staff(staff, department).to_pylist()
    assert row == {
        "staff_id": 4,
        "first_name": "Jeanette",
        "last_name": "O'Keefe",
        "department_name": "Finance",
        "location": None,
        "email_address": "j@t.com",
        stars.VERSION: T,
    }


def test_dim_staff_without_its_department_names_what_to_extract():
    staff = _source(
        "staff",
        [
            {
                "staff_id": 4,
                "first_name": "a",
                "last_name": "b",
                "department_id": 9,
                "email_address": "e",
                "created_at": BULK,
                "last_updated": BULK,
            }
        ],
    )
    with pytest.raises(RuntimeFailure) as caught:
        stars.dim_staff(staff, _source("department", []))
    assert caught.value.message == (
        "no department row is known for staff_id 4 -> department_id 9. Extract the department "
        "table (totesys extract --table department) and transform again"
    )


def test_dim_counterparty_takes_the_legal_address():
    counterparty = _source(
        "counterparty",
        [
            {
                "counterparty_id": 1,
                "counterparty_legal_name": "O'Hara LLC",
                "legal_address_id": 2,
                "commercial_contact": None,
                "delivery_contact": "x",
                "created_at": BULK,
                "last_updated": BULK,
            }
        ],
    )
    (row,) = stars.dim_counterparty(
        counterparty, _source("address", [_address(1), _address(2, last_updated=T, city="Dublin")])
    ).to_pylist()
    assert row["counterparty_legal_name"] == "O'Hara LLC"
    assert row["counterparty_legal_city"] == "Dublin"
    assert row["counterparty_legal_address_line_2"] is None
    assert row[stars.VERSION] == T  # the newer of the two rows it was built from
    assert "commercial_contact" not in row


def test_dim_currency_names_come_from_iso_4217_and_unknown_codes_fail():
    rows = stars.dim_currency(
        _source(
            "currency",
            [
                {"currency_id": n, "currency_code": c, "created_at": BULK, "last_updated": BULK}
                for n, c in enumerate(["GBP", "USD", "EUR"], 1)
            ],
        )
    )
    assert rows.column("currency_name").to_pylist() == ["Pound Sterling", "US Dollar", "Euro"]
    with pytest.raises(RuntimeFailure, match="the currency code 'XYZ' is not an ISO 4217 code"):
        stars.dim_currency(
            _source(
                "currency",
                [
                    {
                        "currency_id": 4,
                        "currency_code": "XYZ",
                        "created_at": BULK,
                        "last_updated": BULK,
                    }
                ],
            )
        )


def test_dim_transaction_keeps_null_order_ids_as_integers():
    rows = stars.dim_transaction(
        _source(
            "transaction",
            [
                {
                    "transaction_id": 1,
                    "transaction_type": "SALE",
                    "sales_order_id": 5,
                    "purchase_order_id": None,
                    "created_at": BULK,
                    "last_updated": BULK,
                },
                {
                    "transaction_id": 2,
                    "transaction_type": "PURCHASE",
                    "sales_order_id": None,
                    "purchase_order_id": 3,
                    "created_at": BULK,
                    "last_updated": BULK,
                },
            ],
        )
    )
    assert rows.schema.field("sales_order_id").type == pa.int32()
    assert rows.column("sales_order_id").to_pylist() == [5, None]
    assert rows.column("purchase_order_id").to_pylist() == [None, 3]


def test_dim_date_is_iso_with_english_names():
    rows = stars.dim_date(dt.date(2025, 3, 30), dt.date(2025, 4, 1)).to_pylist()
    assert [r["date_id"] for r in rows] == [
        dt.date(2025, 3, 30),
        dt.date(2025, 3, 31),
        dt.date(2025, 4, 1),
    ]
    assert rows[0] == {
        "date_id": dt.date(2025, 3, 30),
        "year": 2025,
        "month": 3,
        "day": 30,
        "day_of_week": 7,
        "day_name": "Sunday",
        "month_name": "March",
        "quarter": 1,
    }
    assert (rows[1]["day_of_week"], rows[2]["quarter"], rows[2]["month_name"]) == (1, 2, "April")


def _sale(n: int, **values) -> dict:
    return {
        "sales_order_id": n,
        "created_at": T,
        "last_updated": BULK,
        "design_id": 1,
        "staff_id": 2,
        "counterparty_id": 3,
        "units_sold": 100,
        "unit_price": decimal.Decimal("2.99"),
        "currency_id": 1,
        "agreed_delivery_date": "2027-01-31",
        "agreed_payment_date": "2025-03-10",
        "agreed_delivery_location_id": 4,
        **values,
    }


def test_fact_sales_order_splits_stamps_keeps_milliseconds_and_decimals():
    rows = stars.fact_sales_order(_source("sales_order", [_sale(1), _sale(2)]))
    first = rows.to_pylist()[0]
    assert first == {
        "sales_order_id": 1,
        "created_date": dt.date(2025, 3, 7),
        "created_time": dt.time(10, 12, 10, 140000),
        "last_updated_date": dt.date(2024, 10, 31),
        "last_updated_time": dt.time(14, 20, 49, 962000),
        "sales_staff_id": 2,
        "counterparty_id": 3,
        "units_sold": 100,
        "unit_price": decimal.Decimal("2.99"),
        "currency_id": 1,
        "design_id": 1,
        "agreed_payment_date": dt.date(2025, 3, 10),
        "agreed_delivery_date": dt.date(2027, 1, 31),
        "agreed_delivery_location_id": 4,
    }
    assert rows.schema.field("unit_price").type == pa.decimal128(10, 2)
    assert rows.column("last_updated_time").to_pylist() == [dt.time(14, 20, 49, 962000)] * 2


def test_a_malformed_text_date_is_named():
    with pytest.raises(RuntimeFailure) as caught:
        stars.fact_sales_order(
            _source("sales_order", [_sale(1), _sale(7, agreed_delivery_date="31/01/2027")])
        )
    assert caught.value.problem == (
        "sales_order 7 has agreed_delivery_date '31/01/2027', which is not a YYYY-MM-DD date"
    )


def test_fact_payment_drops_account_numbers():
    rows = stars.fact_payment(
        _source(
            "payment",
            [
                {
                    "payment_id": 1,
                    "created_at": T,
                    "last_updated": T,
                    "transaction_id": 1,
                    "counterparty_id": 2,
                    "payment_amount": decimal.Decimal("99999999.99"),
                    "currency_id": 1,
                    "payment_type_id": 3,
                    "paid": False,
                    "payment_date": "2025-03-08",
                    "company_ac_number": 12345678,
                    "counterparty_ac_number": 87654321,
                }
            ],
        )
    )
    (row,) = rows.to_pylist()
    assert "company_ac_number" not in row and row["paid"] is False
    assert row["payment_amount"] == decimal.Decimal("99999999.99")
    assert row["payment_date"] == dt.date(2025, 3, 8)


# ---------------------------------------------------------------- end to end


def _db(url: str) -> str:
    return url.rsplit("/", 1)[1].split("?")[0]


class Lake:
    def __init__(self, folder):
        self.raw = lakes.open_lake(str(folder / "raw"), "TEST")
        self.processed = lakes.open_lake(str(folder / "processed"), "TEST")

    def extract(self, source_url: str, **options):
        return extract(
            build_settings(source_url=source_url).source, self.raw, ExtractOptions(**options)
        )

    def transform(self, **options):
        return transform(self.raw, self.processed, TransformOptions(**options))

    def star(self, table: str, seqs: list[int] | None = None) -> list[dict]:
        rows = []
        for seq, key in lakes.manifests_after(self.processed, 0):
            if seqs is not None and seq not in seqs:
                continue
            manifest = lakes.decode_manifest(self.processed, key)
            files = [f["key"] for f in manifest["tables"].get(table, {}).get("files", [])]
            rows += lakes.read_parquet(self.processed, files).to_pylist()
        return rows


def _latest_dimension(rows: list[dict], key: str) -> list[tuple]:
    """What the warehouse would hold: the newest version of each key."""
    newest: dict = {}
    for row in rows:
        if row[key] not in newest or row[stars.VERSION] >= newest[row[key]][stars.VERSION]:
            newest[row[key]] = row
    return sorted(tuple(v for k, v in r.items() if k != stars.VERSION) for r in newest.values())


def _as_warehouse(lake: Lake, table: str) -> list[tuple]:
    rows = lake.star(table)
    if table in DIMENSIONS and table != "dim_date":
        return _latest_dimension(rows, next(iter(rows[0])))
    return sorted({tuple(r.values()) for r in rows})


def _expected(pg, url: str, table: str) -> list[tuple]:
    with pg.engine(_db(url)).connect() as conn:
        return expected.rows(conn, table)


def test_processed_star_tables_equal_the_sql_expectation(pg, source_url, tmp_path):
    lake = Lake(tmp_path)
    lake.extract(source_url, batch_rows=200)
    result = lake.transform()
    assert result.seq == 1 and result.raw_runs == [1]
    for table in STAR_TABLES:
        assert _as_warehouse(lake, table) == _expected(pg, source_url, table), table
    assert len(result.tables["fact_payment"].files) > 1  # transformed chunk by chunk


def test_after_activity_changes_and_their_dependents_are_emitted(pg, source_url, tmp_path):
    lake = Lake(tmp_path)
    lake.extract(source_url)
    lake.transform()
    before = {t: _expected(pg, source_url, t) for t in ("fact_payment", "fact_sales_order")}
    with pg.engine(_db(source_url)).begin() as conn:
        activity = generator.simulate_activity(conn, seed=11, step=2)
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
    lake.extract(source_url)
    second = lake.transform()
    staff = {r["staff_id"] for r in lake.star("dim_staff", [second.seq])}
    assert staff == department_staff | {activity.renamed_staff}
    counterparties = {r["counterparty_id"] for r in lake.star("dim_counterparty", [second.seq])}
    assert counterparties == rehomed
    assert {r["location_id"] for r in lake.star("dim_location", [second.seq])} == {
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
    paid = {r["payment_id"] for r in lake.star("fact_payment") if r["paid"]}
    assert set(activity.paid_payments) <= paid


def test_versions_repeated_by_the_extract_overlap_are_dropped(pg, source_url, tmp_path):
    lake = Lake(tmp_path)
    lake.extract(source_url)
    lake.transform()
    with pg.engine(_db(source_url)).begin() as conn:
        generator.simulate_activity(conn, seed=5, step=1)
    lake.extract(source_url)
    second = lake.transform()
    assert second.tables["fact_sales_order"].rows == 20
    again = lake.extract(source_url)  # the overlap re-reads the same versions
    assert again.tables["sales_order"].rows == 20
    third = lake.transform()
    assert third.rows == 0
    assert lake.transform().seq is None  # nothing new at all: no run
    with pg.engine(_db(source_url)).begin() as conn:  # repeats and news in one raw file
        newer = generator.simulate_activity(conn, seed=5, step=2)
    assert lake.extract(source_url).tables["sales_order"].rows == 40
    fourth = lake.transform()
    emitted = lake.star("fact_sales_order", [fourth.seq])
    assert sorted(r["sales_order_id"] for r in emitted) == newer.new_sales_orders


def test_a_batch_of_raw_runs_emits_each_version_once(pg, source_url, tmp_path):
    lake = Lake(tmp_path)
    lake.extract(source_url)
    with pg.engine(_db(source_url)).begin() as conn:
        generator.simulate_activity(conn, seed=5, step=1)
    lake.extract(source_url)
    lake.extract(source_url)
    result = lake.transform()
    assert result.raw_runs == [1, 2, 3]
    versions = [
        (r["sales_order_id"], r["last_updated_date"], r["last_updated_time"])
        for r in lake.star("fact_sales_order")
    ]
    assert len(versions) == len(set(versions))


def test_a_fact_without_its_dimensions_fails_and_commits_nothing(pg, source_url, tmp_path):
    lake = Lake(tmp_path)
    lake.extract(source_url, tables=("sales_order",))
    with pytest.raises(RuntimeFailure) as caught:
        lake.transform()
    assert caught.value.problem.startswith(
        "fact_sales_order references keys no processed run has emitted: "
        "sales_staff_id 1, 2, 3, 4, 5 and 15 more (dim_staff); counterparty_id 1, 2, 3"
    )
    assert caught.value.problem.endswith(
        "agreed_delivery_location_id 1, 2, 3, 4, 5 and 25 more (dim_location); "
        "nothing was committed"
    )
    assert caught.value.hint == (
        "Extract staff, counterparty, currency, design, address (totesys extract --table "
        "staff --table counterparty --table currency --table design --table address) and "
        "transform again"
    )
    assert lakes.latest_manifest(lake.processed) == (0, None)
    lake.extract(source_url)
    result = lake.transform()
    assert result.seq == 1 and result.raw_runs == [1, 2]
    # the tables first read in full by run 2 do not make the state keep every version
    state = State.load(lakes.decode_manifest(lake.processed, lakes.manifest_key(1)))
    assert all(v.num_rows < 50 for v in state.seen.values())
    assert _as_warehouse(lake, "fact_sales_order") == _expected(pg, source_url, "fact_sales_order")


def test_since_emits_the_window_again_and_corrects_it(pg, source_url, tmp_path):
    lake = Lake(tmp_path)
    lake.extract(source_url)
    lake.transform()
    since = dt.datetime(2026, 10, 1)
    result = lake.transform(since=since)
    assert result.seq == 2 and result.raw_runs == [1]
    with pg.engine(_db(source_url)).connect() as conn:
        window = conn.execute(
            text("SELECT count(*) FROM sales_order WHERE last_updated >= :t"), {"t": since}
        ).scalar_one()
    assert result.tables["fact_sales_order"].rows == window > 0
    manifest = lakes.decode_manifest(lake.processed, lakes.manifest_key(2))
    assert manifest["since"] == "2026-10-01 00:00:00"
    assert manifest["min_last_updated"] >= "2026-10-01"


def test_a_corrupt_raw_file_fails_naming_it(source_url, tmp_path):
    lake = Lake(tmp_path)
    first = lake.extract(source_url)
    key = first.tables["staff"].files[0]["key"]
    path = tmp_path / "raw" / key
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(RuntimeFailure) as caught:
        lake.transform()
    assert caught.value.problem.startswith(f"the lake file {tmp_path}/raw/{key} is not readable")
    assert lakes.latest_manifest(lake.processed) == (0, None)


def test_duckdb_reads_each_star_table_as_a_dataset(pg, source_url, tmp_path):
    import duckdb

    lake = Lake(tmp_path)
    lake.extract(source_url)
    lake.transform()
    with pg.engine(_db(source_url)).begin() as conn:
        generator.simulate_activity(conn, seed=5, step=1)
    lake.extract(source_url)
    lake.transform()
    lake.transform(since=dt.datetime(2026, 1, 1))  # the change log repeats versions
    for table in STAR_TABLES:
        source = (
            f"read_parquet('{tmp_path}/processed/{table}/*/*.parquet', hive_partitioning = true)"
        )
        if table in DIMENSIONS and table != "dim_date":
            key = star_table(table).primary_key.columns[0].name
            query = (
                f"SELECT * EXCLUDE (processed_date, source_last_updated, rn) FROM ("
                f"SELECT *, row_number() OVER (PARTITION BY {key} ORDER BY "
                f"source_last_updated DESC) AS rn FROM {source}) WHERE rn = 1"
            )
        else:
            query = f"SELECT DISTINCT * EXCLUDE (processed_date) FROM {source}"
        assert sorted(duckdb.sql(query).fetchall()) == _as_warehouse(lake, table), table


def test_cli_transform(source_url, tmp_path):
    runner = CliRunner()
    lake_url = str(tmp_path)
    assert (
        runner.invoke(
            cli, ["extract", "--source-url", source_url, "--lake-url", lake_url]
        ).exit_code
        == 0
    )
    result = runner.invoke(cli, ["transform", "--lake-url", lake_url])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1].startswith("processed run 1 committed from raw runs 1:")
    again = runner.invoke(cli, ["transform", "--lake-url", lake_url])
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
    lake = Lake(tmp_path)
    lake.extract(source_url)
    lake.transform()
    seen = State.load(lakes.decode_manifest(lake.processed, lakes.manifest_key(1))).seen
    assert seen["sales_order"].column("sales_order_id").to_pylist() == [2]
    raw = lakes.decode_manifest(lake.raw, lakes.manifest_key(1))
    overlap = dt.timedelta(seconds=raw["overlap_seconds"])
    for table, versions in seen.items():  # newer than min(W, S - overlap), the next bound
        state = raw["state"][table]
        bound = min(
            dt.datetime.fromisoformat(state["watermark"]),
            dt.datetime.fromisoformat(state["snapshot"]) - overlap,
        )
        oldest = pc.min(versions.column("last_updated")).as_py()
        assert oldest > bound - MARGIN, table


def test_state_reads_versions_packed_and_as_written_before_packing():
    from totesys_cli.transform.run import _to_json

    versions = pa.table(
        {"payment_id": pa.array([3, 4], pa.int32()), "last_updated": pa.array([T, BULK])}
    ).cast(pa.schema([("payment_id", pa.int32()), ("last_updated", pa.timestamp("ms"))]))
    state = State(raw_seq=2, seen={"payment": versions})
    packed = state.dump()
    assert "parquet" in packed["seen"]["payment"]
    older = {**packed, "seen": {"payment": _to_json(versions)}}
    for data in (packed, older):
        assert State.load({"state": data}).seen["payment"].equals(versions)
