"""Rows deleted in the source leave the warehouse's current picture, and only that.

Each kind of delete made in the source as an application or a DBA makes it, then one
run of the CLI comparing keys (`TOTESYS_DELETES_EVERY_MINUTES=0`): the
warehouse equals the independent expectation (a deleted fact keeps its history rows
but leaves the latest view; a deleted dimension row stays while a fact version
references it, as it last was, and is gone otherwise), the dashboard's summaries
agree with the facts, `verify` passes, and the processed zone names the key as deleted
(read with DuckDB). A mass delete is refused, recording nothing, unless allowed.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from tests.support import Pipeline

NOW = "(now() AT TIME ZONE 'UTC')::timestamp(3)"
COMPARING = {"TOTESYS_DELETES_EVERY_MINUTES": "0"}


def _remembered(after_first_run) -> Pipeline:
    """A copy of the first run, with the dimension rows as they are, before any is
    deleted."""
    copy = after_first_run()
    copy.remember()
    return copy


def _source(pipeline: Pipeline, *statements: str) -> None:
    with pipeline.source().begin() as conn:
        for statement in statements:
            conn.execute(text(statement))


def _one(pipeline: Pipeline, query: str):
    with pipeline.source().connect() as conn:
        return conn.execute(text(query)).scalar_one()


def _run(pipeline: Pipeline, *args: str) -> dict:
    """A run-all comparing keys: its `run succeeded` line."""
    run = pipeline.here("--log-format", "json", "run-all", *args, **COMPARING)
    assert run.returncode == 0, run.stderr
    last = json.loads(run.stderr.splitlines()[-1])
    assert last["message"] == "run succeeded", last
    return last


def _recorded(pipeline: Pipeline) -> list[tuple]:
    """The open deletions: (source table, key, kept)."""
    with pipeline.warehouse().connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                text(
                    "SELECT source_table, key, kept FROM totesys_meta.deletions "
                    "WHERE ended_in IS NULL ORDER BY 1, 2"
                )
            )
        ]


def _lake_deletions(pipeline: Pipeline) -> list[tuple]:
    """(star table, key) of every tombstone in the processed zone, read as Athena would."""
    import duckdb

    files = pipeline.lake / "processed" / "deletions" / "*" / "*.parquet"
    if not list((pipeline.lake / "processed").glob("deletions/*/*.parquet")):
        return []
    query = f"SELECT star_table, key FROM read_parquet('{files}') ORDER BY 1, 2"
    return [tuple(r) for r in duckdb.connect().execute(query).fetchall()]


def _checked(pipeline: Pipeline) -> None:
    """The warehouse equals the expectation, and verify and the summaries agree."""
    pipeline.assert_matches_source()
    verified = pipeline.here("verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "6 of 6 dashboard summaries agree with the facts" in verified.stdout


def test_a_deleted_payment_leaves_the_latest_view_and_keeps_its_history(after_first_run):
    pipeline = _remembered(after_first_run)
    held = _one(pipeline, "SELECT count(*) FROM payment")
    _source(pipeline, "DELETE FROM payment WHERE payment_id = 11")
    assert _run(pipeline)["deleted"] == 1
    assert _recorded(pipeline) == [("payment", 11, False)]
    with pipeline.warehouse().connect() as conn:
        history = "SELECT count(*) FROM fact_payment WHERE payment_id = 11"
        assert conn.execute(text(history)).scalar_one() >= 1
        latest = "SELECT count(*) FROM fact_payment_latest"
        assert conn.execute(text(latest)).scalar_one() == held - 1
    _checked(pipeline)
    listed = pipeline.here("verify", "--deleted")
    assert "deleted in the source, left out of the warehouse's side: payment 11" in listed.stdout
    status = json.loads(pipeline.here("status", "--json").stdout)
    assert status["deleted"] == {"payment": 1} and status["keys_compared"]
    assert _lake_deletions(pipeline) == [("fact_payment", 11)]
    # a quiet run after it, and a reprocess of everything, bring nothing back
    assert _run(pipeline)["deleted"] == 0
    _run(pipeline, "--since", "2000-01-01")
    # nor a transform replaying the raw runs, loaded as a new run (not a reload)
    for step in (("transform", "--since", "2000-01-01"), ("load",)):
        done = pipeline.here(*step)
        assert done.returncode == 0, done.stderr
    assert _recorded(pipeline) == [("payment", 11, False)]
    _checked(pipeline)


def _design_of_one_order(pipeline: Pipeline) -> tuple[int, int]:
    """(a design only one order uses, that order)."""
    with pipeline.source().connect() as conn:
        return tuple(
            conn.execute(
                text(
                    "SELECT design_id, min(sales_order_id) FROM sales_order GROUP BY 1 "
                    "HAVING count(*) = 1 ORDER BY 1 LIMIT 1"
                )
            ).one()
        )


def test_a_dimension_row_a_fact_version_references_stays_marked(after_first_run):
    """The order moves to another design, then its old design is deleted: the order's
    older version still references it, so it stays in dim_design, as it was."""
    pipeline = _remembered(after_first_run)
    design, order = _design_of_one_order(pipeline)
    other = _one(pipeline, f"SELECT min(design_id) FROM design WHERE design_id <> {design}")
    _source(
        pipeline,
        f"UPDATE sales_order SET design_id = {other}, last_updated = {NOW} "
        f"WHERE sales_order_id = {order}",
    )
    _run(pipeline)
    pipeline.remember()
    _source(pipeline, f"DELETE FROM design WHERE design_id = {design}")
    assert _run(pipeline)["deleted"] == 1
    assert _recorded(pipeline) == [("design", design, True)]
    with pipeline.warehouse().connect() as conn:
        kept = f"SELECT count(*) FROM dim_design WHERE design_id = {design}"
        assert conn.execute(text(kept)).scalar_one() == 1
    _checked(pipeline)
    assert _lake_deletions(pipeline) == [("dim_design", design)]


def test_a_dimension_row_no_fact_references_is_removed(after_first_run):
    pipeline = _remembered(after_first_run)
    _source(
        pipeline,
        "INSERT INTO address (address_id, address_line_1, city, postal_code, country, "
        f"phone, created_at, last_updated) VALUES (9001, '1 New Street', 'Leeds', 'LS1', "
        f"'United Kingdom', '0113 000', {NOW}, {NOW})",
    )
    _run(pipeline)
    pipeline.remember()
    with pipeline.warehouse().connect() as conn:
        there = "SELECT count(*) FROM dim_location WHERE location_id = 9001"
        assert conn.execute(text(there)).scalar_one() == 1
    _source(pipeline, "DELETE FROM address WHERE address_id = 9001")
    assert _run(pipeline)["deleted"] == 1
    assert _recorded(pipeline) == [("address", 9001, False)]
    with pipeline.warehouse().connect() as conn:
        assert conn.execute(text(there)).scalar_one() == 0
    _checked(pipeline)
    assert _lake_deletions(pipeline) == [("dim_location", 9001)]
    _run(pipeline, "--since", "2000-01-01")  # a reprocess does not bring it back
    with pipeline.warehouse().connect() as conn:
        assert conn.execute(text(there)).scalar_one() == 0
    _checked(pipeline)


def test_a_key_deleted_then_inserted_again_is_a_new_version(after_first_run):
    pipeline = _remembered(after_first_run)
    _source(
        pipeline,
        "CREATE TABLE kept_aside AS SELECT * FROM payment WHERE payment_id = 12",
        "DELETE FROM payment WHERE payment_id = 12",
    )
    assert _run(pipeline)["deleted"] == 1
    _checked(pipeline)
    pipeline.remember()
    _source(
        pipeline,
        "INSERT INTO payment SELECT * FROM kept_aside",
        f"UPDATE payment SET last_updated = {NOW}, payment_amount = 99.99 WHERE payment_id = 12",
    )
    assert _run(pipeline)["deleted"] == 0
    assert _recorded(pipeline) == []
    with pipeline.warehouse().connect() as conn:
        amount = "SELECT payment_amount FROM fact_payment_latest WHERE payment_id = 12"
        assert float(conn.execute(text(amount)).scalar_one()) == 99.99
        ended = "SELECT count(*) FROM totesys_meta.deletions WHERE ended_in IS NOT NULL"
        assert conn.execute(text(ended)).scalar_one() == 1
    _checked(pipeline)
    # the lake still names the deletion: its newer version is what ends it there
    assert _lake_deletions(pipeline) == [("fact_payment", 12)]


def test_a_row_restored_as_it_was_comes_back(after_first_run):
    """A mistaken delete undone by putting the very rows back (their `last_updated` as
    they were, from a backup): the next run reads them again, and they are current again
    in the warehouse; a version alone cannot tell them from a replay, the run can."""
    pipeline = _remembered(after_first_run)
    _source(
        pipeline,
        "INSERT INTO address (address_id, address_line_1, city, postal_code, country, "
        f"phone, created_at, last_updated) VALUES (9002, '2 New Street', 'Leeds', 'LS2', "
        f"'United Kingdom', '0113 001', {NOW}, {NOW})",
    )
    _run(pipeline)
    pipeline.remember()
    _source(
        pipeline,
        "CREATE TABLE kept_payment AS SELECT * FROM payment WHERE payment_id = 18",
        "CREATE TABLE kept_address AS SELECT * FROM address WHERE address_id = 9002",
        "DELETE FROM payment WHERE payment_id = 18",
        "DELETE FROM address WHERE address_id = 9002",
    )
    assert _run(pipeline)["deleted"] == 2
    _checked(pipeline)
    _source(
        pipeline,
        "INSERT INTO payment SELECT * FROM kept_payment",
        "INSERT INTO address SELECT * FROM kept_address",
    )
    # until a run reads them, verify says the warehouse lacks them (never "deleted")
    verified = pipeline.here("verify")
    assert verified.returncode == 1
    assert "dim_location keys 9002" in verified.stderr
    assert "fact_payment keys 18" in verified.stderr
    assert _run(pipeline)["deleted"] == 0
    assert _recorded(pipeline) == []
    _checked(pipeline)


def test_a_key_deleted_and_inserted_again_before_the_transform_stands(after_first_run):
    """Two extracts (the delete, then the key again) before one transform: the later
    version stands, and no deletion is recorded."""
    pipeline = _remembered(after_first_run)
    _source(
        pipeline,
        "CREATE TABLE kept_aside AS SELECT * FROM payment WHERE payment_id = 15",
        "DELETE FROM payment WHERE payment_id = 15",
    )
    assert pipeline.here("extract", **COMPARING).returncode == 0
    _source(
        pipeline,
        "INSERT INTO payment SELECT * FROM kept_aside",
        f"UPDATE payment SET last_updated = {NOW}, paid = NOT paid WHERE payment_id = 15",
    )
    assert pipeline.here("extract", **COMPARING).returncode == 0
    for step in ("transform", "load"):
        done = pipeline.here(step)
        assert done.returncode == 0, done.stderr
    assert _lake_deletions(pipeline) == [] and _recorded(pipeline) == []
    _checked(pipeline)


def test_a_deleted_row_resolves_its_quarantine_entry(after_first_run):
    """A version set aside, then its row deleted: nothing of it is to come, so its entry
    closes, and the rows waiting on it no longer wait."""
    pipeline = _remembered(after_first_run)
    _source(
        pipeline,
        f"UPDATE payment SET payment_date = '2026-13-45', last_updated = {NOW} "
        "WHERE payment_id = 16",
    )
    _run(pipeline)
    assert "payment" in pipeline.here("quarantine").stdout
    _source(pipeline, "DELETE FROM payment WHERE payment_id = 16")
    assert _run(pipeline)["deleted"] == 1
    assert pipeline.here("quarantine").stdout == "no open entries\n"
    _checked(pipeline)


def test_a_delete_not_yet_compared_is_drift_the_suggested_run_repairs(after_first_run):
    """Between comparisons a deleted row is still in the warehouse: verify says so, and
    its remedy (a run comparing keys now) is what repairs it."""
    pipeline = _remembered(after_first_run)
    _source(pipeline, "DELETE FROM payment WHERE payment_id = 17")
    quiet = pipeline.here("run-all", TOTESYS_DELETES_EVERY_MINUTES="600")  # not due
    assert quiet.returncode == 0, quiet.stderr
    verified = pipeline.here("verify")
    assert verified.returncode == 1
    assert "fact_payment keys 17" in verified.stderr
    assert "totesys run-all --deletes-every 0 compares now" in verified.stderr
    assert _run(pipeline, "--deletes-every", "0")["deleted"] == 1
    _checked(pipeline)


def test_a_delete_and_an_update_of_other_rows_in_one_run(after_first_run):
    pipeline = _remembered(after_first_run)
    _source(
        pipeline,
        "DELETE FROM payment WHERE payment_id = 13",
        f"UPDATE payment SET paid = NOT paid, last_updated = {NOW} WHERE payment_id = 14",
    )
    summary = _run(pipeline)
    assert (summary["deleted"], summary["extracted"] >= 1) == (1, True)
    assert _recorded(pipeline) == [("payment", 13, False)]
    _checked(pipeline)
    assert _lake_deletions(pipeline) == [("fact_payment", 13)]


@pytest.mark.parametrize(
    ("delete", "said"),
    [
        ("DELETE FROM payment", "payment {gone} of {held} (all)"),
        ("DELETE FROM payment WHERE payment_id % 10 = 0", "payment {gone} of {held} ({share} %)"),
    ],
    ids=["an emptied table", "a tenth of a table"],
)
def test_a_mass_delete_records_nothing_unless_allowed(after_first_run, delete, said):
    pipeline = _remembered(after_first_run)
    held = _one(pipeline, "SELECT count(*) FROM payment")
    _source(pipeline, delete)
    gone = held - _one(pipeline, "SELECT count(*) FROM payment")
    raw = sorted(p.name for p in (pipeline.lake / "raw" / "_manifests").glob("*.json"))
    before = pipeline.snapshot()
    refused = pipeline.here("run-all", **COMPARING)
    assert refused.returncode == 1
    (line,) = refused.stderr.strip().splitlines()
    share = f"{100 * gone / held:.1f}"
    assert "ERROR" in line and said.format(gone=gone, held=held, share=share) in line, line
    assert "run again with --allow-mass-delete payment" in line
    assert sorted(p.name for p in (pipeline.lake / "raw" / "_manifests").glob("*.json")) == raw
    assert pipeline.snapshot() == before and _recorded(pipeline) == []

    allowed = _run(pipeline, "--allow-mass-delete", "payment")
    assert allowed["deleted"] == gone
    assert len(_recorded(pipeline)) == gone
    _checked(pipeline)
