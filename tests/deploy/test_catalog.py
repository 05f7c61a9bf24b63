"""The processed zone as tables for Athena and Spark.

The Glue tables the stack registers must describe the files the pipeline writes (each
column's name, place and type, as the Parquet type each Athena type reads), no file may
hold a Parquet TIME (which Athena's Hive tables and Spark cannot read), and each named
query must answer from the lake what the warehouse answers. moto's CloudFormation
creates no Glue table or Athena query, so these are read from the parsed template; the
queries run with DuckDB over the processed zone, as written (DuckDB reads Athena's SQL
here unchanged), each table a view over its Hive-style dataset.
"""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import text

from tests.deploy.stack import resources
from tests.support import Pipeline, run_here
from totesys_cli.schemas import STAR_TABLES

# an order with the most units, with its transaction and their payments
DELETE_AN_ORDER = (
    "CREATE TEMPORARY TABLE doomed ON COMMIT DROP AS SELECT s.sales_order_id, t.transaction_id "
    'FROM sales_order s LEFT JOIN "transaction" t USING (sales_order_id) '
    "ORDER BY s.units_sold DESC, s.sales_order_id LIMIT 1",
    "DELETE FROM payment WHERE transaction_id IN (SELECT transaction_id FROM doomed)",
    'DELETE FROM "transaction" WHERE transaction_id IN (SELECT transaction_id FROM doomed)',
    "DELETE FROM sales_order WHERE sales_order_id IN (SELECT sales_order_id FROM doomed)",
)


@pytest.fixture(scope="module")
def filled(pg, source_template, tmp_path_factory):
    """A pipeline after two runs with activity between them and a replay of the whole
    lake with --since, so the processed zone repeats versions as a real one does."""
    from tests.conftest import _unique

    source = pg.create_database(_unique("catalog_source"), template=source_template)
    warehouse = pg.create_database(_unique("catalog_warehouse"))
    pipeline = Pipeline(pg.url(source), pg.url(warehouse), tmp_path_factory.mktemp("lake"))
    assert pipeline.here("run-all").returncode == 0
    pipeline.activity(step=1)
    with pipeline.source().begin() as conn:  # payments whose date has passed unpaid
        conn.execute(
            text(
                "UPDATE payment SET paid = false, payment_date = '2026-10-01', "
                "last_updated = now() WHERE payment_id % 13 = 0"
            )
        )
    assert pipeline.here("run-all").returncode == 0
    with pipeline.source().begin() as conn:  # an overdue payment and an order deleted
        for statement in DELETE_AN_ORDER:
            conn.execute(text(statement))
        conn.execute(text("DELETE FROM payment WHERE payment_id = 26"))
    assert pipeline.here("run-all", TOTESYS_DELETES_EVERY_MINUTES="0").returncode == 0
    assert pipeline.here("run-all", "--since", "2000-01-01").returncode == 0
    yield pipeline
    pg.drop_database(source)
    pg.drop_database(warehouse)


def _tables(template: dict) -> dict[str, dict]:
    """Each Glue table's input, by table name."""
    found = resources(template, "AWS::Glue::Table").values()
    return {r["Properties"]["TableInput"]["Name"]: r["Properties"]["TableInput"] for r in found}


def _parquet_type(athena: str) -> tuple[str, str]:
    """(physical, logical) Parquet type of a column the Athena (Hive) type reads."""
    if decimal := re.fullmatch(r"decimal\((\d+),(\d+)\)", athena):
        return "FIXED_LEN_BYTE_ARRAY", f"Decimal(precision={decimal[1]}, scale={decimal[2]})"
    return {
        "int": ("INT32", "None"),
        "bigint": ("INT64", "None"),
        "string": ("BYTE_ARRAY", "String"),
        "date": ("INT32", "Date"),
        "boolean": ("BOOLEAN", "None"),
        # the logical type's text goes on with how it was written; its head is the type
        "timestamp": ("INT64", "Timestamp(isAdjustedToUTC=false, timeUnit=milliseconds"),
    }[athena]


def _files(pipeline: Pipeline, folder: str = "") -> list[Path]:
    return sorted((pipeline.lake / "processed" / folder).rglob("*.parquet"))


def test_every_star_table_is_in_the_catalog_with_projected_partitions(template):
    tables = _tables(template)
    assert sorted(tables) == sorted([*STAR_TABLES, "deletions"])
    for name, table in tables.items():
        assert table["PartitionKeys"] == [{"Name": "processed_date", "Type": "string"}]
        place = {"Fn::Sub": f"s3://${{ProcessedBucket}}/{name}/"}
        assert table["StorageDescriptor"]["Location"] == place
        assert table["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"].endswith(
            "parquet.serde.ParquetHiveSerDe"
        )
        options = table["Parameters"]
        assert options["projection.enabled"] == "true"
        assert options["projection.processed_date.type"] == "date"
        assert options["projection.processed_date.format"] == "yyyy-MM-dd"  # as the lake names
        assert options["storage.location.template"] == {
            "Fn::Sub": f"s3://${{ProcessedBucket}}/{name}/processed_date=${{!processed_date}}/"
        }


def test_glue_columns_are_the_columns_and_types_of_the_processed_files(template, filled):
    for name, table in _tables(template).items():
        columns = table["StorageDescriptor"]["Columns"]
        files = _files(filled, name)
        assert files, name
        for path in files:
            schema = pq.ParquetFile(path).schema
            assert [c["Name"] for c in columns] == schema.names, path
            for column in columns:
                found = schema.column(schema.names.index(column["Name"]))
                physical, logical = _parquet_type(column["Type"])
                assert found.physical_type == physical, (path, column)
                assert str(found.logical_type).startswith(logical), (path, column)
                if found.physical_type == "INT32" and logical == "None":
                    assert found.converted_type in ("NONE", "INT_32"), (path, column)


def test_the_templates_columns_are_written_from_the_schemas(tmp_path):
    """A column is declared once, in `totesys_cli/schemas/`: the template holds what
    `deploy/columns.py` writes from there, and the script puts back a column changed by
    hand."""
    import shutil
    import subprocess
    import sys

    from tests.support import ROOT

    script = ROOT / "deploy" / "columns.py"
    check = [sys.executable, str(script), "--check"]
    assert subprocess.run(check, capture_output=True, text=True).returncode == 0
    copy = tmp_path / "deploy"
    copy.mkdir()
    shutil.copy(script, copy)
    stack = (ROOT / "deploy" / "totesys.yaml").read_text()
    edited = stack.replace("{Name: units_sold, Type: int}", "{Name: units_sold, Type: bigint}")
    assert edited != stack
    (copy / "totesys.yaml").write_text(edited)
    moved = [sys.executable, str(copy / "columns.py")]
    refused = subprocess.run([*moved, "--check"], capture_output=True, text=True)
    assert refused.returncode == 1 and "differs from the schemas" in refused.stdout
    assert subprocess.run(moved).returncode == 0
    assert (copy / "totesys.yaml").read_text() == stack


def test_no_processed_file_holds_a_parquet_time(filled):
    files = _files(filled)
    assert len(files) > len(STAR_TABLES)  # the tables, their runs, _waiting and _quarantine
    for path in files:
        for column in pq.ParquetFile(path).schema:
            assert column.logical_type.type != "TIME", (path, column.name)
        schema = pq.read_schema(path)
        assert not [f.name for f in schema if pa.types.is_time(f.type)], path


def test_the_workgroup_keeps_encrypted_results_in_the_processed_bucket(template):
    (workgroup,) = resources(template, "AWS::Athena::WorkGroup").values()
    config = workgroup["Properties"]["WorkGroupConfiguration"]
    assert config["EnforceWorkGroupConfiguration"] is True
    results = config["ResultConfiguration"]
    assert results["OutputLocation"] == {"Fn::Sub": "s3://${ProcessedBucket}/athena-results/"}
    assert results["EncryptionConfiguration"]["EncryptionOption"] == "SSE_S3"
    rules = template["Resources"]["ProcessedBucket"]["Properties"]["LifecycleConfiguration"]
    expiry = [r for r in rules["Rules"] if r.get("Prefix") == "athena-results/"]
    assert expiry and expiry[0]["ExpirationInDays"] == {"Ref": "AthenaResultDays"}


# ---------------------------------------------------------------- the named queries

# Each named query's question asked of the warehouse, where the facts' *_latest views
# hold the newest version of each key and a dimension holds only the current one.
WAREHOUSE = {
    "revenue by month and currency": """
        SELECT CAST(date_trunc('month', s.created_date) AS date), c.currency_code,
               count(*), sum(s.units_sold * s.unit_price)
        FROM fact_sales_order_latest AS s JOIN dim_currency AS c USING (currency_id)
        GROUP BY 1, 2 ORDER BY 1, 2""",
    "revenue by delivery country": """
        SELECT l.country, c.currency_code, count(*), sum(s.units_sold * s.unit_price) AS r
        FROM fact_sales_order_latest AS s
        JOIN dim_location AS l ON l.location_id = s.agreed_delivery_location_id
        JOIN dim_currency AS c USING (currency_id)
        GROUP BY 1, 2 ORDER BY r DESC, 1, 2""",
    "top designs": """
        SELECT d.design_id, d.design_name, count(*), sum(s.units_sold) AS u
        FROM fact_sales_order_latest AS s JOIN dim_design AS d USING (design_id)
        GROUP BY 1, 2 ORDER BY u DESC, 1 LIMIT 20""",
    "payments overdue": """
        SELECT p.payment_id, cp.counterparty_legal_name, p.payment_amount, c.currency_code,
               p.payment_date, current_date - p.payment_date
        FROM fact_payment_latest AS p JOIN dim_counterparty AS cp USING (counterparty_id)
        JOIN dim_currency AS c USING (currency_id)
        WHERE NOT p.paid AND p.payment_date < current_date
        ORDER BY p.payment_date, p.payment_id""",
}


def _queries(template: dict) -> dict[str, str]:
    found = resources(template, "AWS::Athena::NamedQuery").values()
    return {q["Properties"]["Name"]: q["Properties"]["QueryString"] for q in found}


def _lake(pipeline: Pipeline, template: dict):
    """DuckDB with each Glue table as a view over the processed zone's dataset."""
    import duckdb

    lake = duckdb.connect()
    for name in _tables(template):
        files = pipeline.lake / "processed" / name / "*" / "*.parquet"
        lake.execute(
            f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{files}', "
            "hive_partitioning = true, hive_types = {'processed_date': VARCHAR})"
        )
    return lake


def _plain(rows) -> list[tuple]:
    """Rows with numbers as numbers, whichever engine's types they came in."""
    return [tuple(int(v) if isinstance(v, int) else v for v in row) for row in rows]


def test_each_named_query_answers_from_the_lake_what_the_warehouse_answers(template, filled):
    queries = _queries(template)
    assert sorted(queries) == sorted(WAREHOUSE)
    lake = _lake(filled, template)
    with filled.warehouse().connect() as conn:
        for name, sql in queries.items():
            assert "fact_" in sql and "newest = 1" in sql, name  # the newest version only
            answered = _plain(lake.execute(sql).fetchall())
            wanted = _plain(conn.execute(text(WAREHOUSE[name])).all())
            assert answered, name  # the data answers every question
            assert answered == wanted, name


def test_the_queries_read_the_newest_version_not_every_version(template, filled):
    """The lake holds an older version of amended orders, and every version of a deleted
    one; counting every version would count the first twice, and the second at all."""
    lake = _lake(filled, template)
    versions = lake.execute("SELECT count(*) FROM fact_sales_order").fetchone()[0]
    orders = lake.execute("SELECT count(DISTINCT sales_order_id) FROM fact_sales_order").fetchone()[
        0
    ]
    assert versions > orders
    deleted = lake.execute(
        "SELECT count(*) FROM deletions WHERE star_table = 'fact_sales_order'"
    ).fetchone()[0]
    assert deleted == 1  # and the order deleted in the source is left out
    by_month = lake.execute(_queries(template)["revenue by month and currency"]).fetchall()
    assert sum(row[2] for row in by_month) == orders - deleted


def test_a_time_of_day_in_the_lake_is_the_warehouse_time(filled):
    """Milliseconds since midnight in the lake, TIME in the warehouse: the same instant."""
    import duckdb

    files = filled.lake / "processed" / "fact_sales_order" / "*" / "*.parquet"
    lake = duckdb.sql(
        f"SELECT DISTINCT sales_order_id, last_updated_date, last_updated_time "
        f"FROM read_parquet('{files}')"
    ).fetchall()
    with filled.warehouse().connect() as conn:
        warehouse = conn.execute(
            text(
                "SELECT sales_order_id, last_updated_date, last_updated_time FROM fact_sales_order"
            )
        ).all()
    as_millis = {
        (key, day, ((at.hour * 60 + at.minute) * 60 + at.second) * 1000 + at.microsecond // 1000)
        for key, day, at in warehouse
    }
    assert set(lake) == as_millis


def test_the_named_queries_answer_the_same_over_a_compacted_lake(template, filled, tmp_path):
    """While a compaction's large files and the small files they replace are both in the
    lake the queries, which rank versions, answer as before (a bare count(*) counts both);
    once gc has deleted the small files, from the large files alone."""
    import datetime as dt
    import shutil
    from types import SimpleNamespace

    copy = SimpleNamespace(lake=tmp_path / "lake")
    shutil.copytree(filled.lake, copy.lake)
    env = filled.env(TOTESYS_LAKE_URL=str(copy.lake))
    queries = _queries(template)
    wanted = {
        name: _plain(_lake(filled, template).execute(sql).fetchall())
        for name, sql in queries.items()
    }
    versions = (
        _lake(filled, template).execute("SELECT count(*) FROM fact_sales_order").fetchone()[0]
    )
    tomorrow = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)).isoformat()
    compacted = run_here("lake", "compact", "--before", tomorrow, env=env)
    assert compacted.returncode == 0, compacted.stderr
    files = len(_files(copy))
    for state in ("beside the small files", "alone"):
        lake = _lake(copy, template)
        for name, sql in queries.items():
            assert _plain(lake.execute(sql).fetchall()) == wanted[name], (state, name)
        counted = lake.execute("SELECT count(*) FROM fact_sales_order").fetchone()[0]
        assert counted == (2 * versions if state != "alone" else versions), state
        reclaimed = run_here("lake", "gc", "--grace-hours", "0", env=env)
        assert reclaimed.returncode == 0, reclaimed.stderr
    per_table = {p.parent.parent.name for p in _files(copy)}
    assert len(_files(copy)) < files / 2 and len(_files(copy)) <= 2 * len(per_table)
