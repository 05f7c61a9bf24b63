"""The summaries the dashboard reads stay equal to the sums of the facts' latest versions
through every way the load changes the facts, and `verify` notices when they do not."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import text

from tests.support import Pipeline
from totesys_cli.load import tables
from totesys_cli.schemas import SOURCE_TABLES, SUMMARIES
from totesys_cli.warehouse import first_fill, lookup, upkeep


def _drift(pipeline: Pipeline) -> dict[str, int]:
    with pipeline.warehouse().connect() as conn:
        return upkeep.drifted(conn)


def _rows(pipeline: Pipeline) -> dict[str, int]:
    with pipeline.warehouse().connect() as conn:
        return {
            s.name: conn.execute(text(f"SELECT count(*) FROM {s.fullname}")).scalar_one()
            for s in SUMMARIES
        }


@pytest.mark.parametrize(
    ("held_rows", "byte_labels"),
    [
        (first_fill.HELD_ROWS, lookup.BYTE_LABELS),
        (40, lookup.BYTE_LABELS),
        (first_fill.HELD_ROWS, 1),
    ],
)
def test_summaries_follow_first_loads_amendments_reloads_and_rebuilds(
    source_url, warehouse_url, tmp_path, monkeypatch, held_rows, byte_labels
):
    """(With 40 rows held, a first fill's partial sums go to the database file by file
    and are added up there. With a byte coding one label, the transaction types do
    not fit a map: the dimension's COPY, read in chunks, is read to its end, then again
    to be sorted.)"""
    monkeypatch.setattr(first_fill, "HELD_ROWS", held_rows)
    monkeypatch.setattr(lookup, "BYTE_LABELS", byte_labels)
    monkeypatch.setattr(
        first_fill, "LOOKUP_ROWS", 7 if byte_labels == 1 else first_fill.LOOKUP_ROWS
    )
    pipeline = Pipeline(source_url, warehouse_url, tmp_path / "lake")
    pipeline.run()  # the facts start empty: summed whole
    pipeline.assert_matches_source()  # the facts the summaries are checked against
    assert all(_rows(pipeline).values())
    assert set(_drift(pipeline).values()) == {0}
    # amended orders, paid payments, new ones: only the touched keys' groups change
    pipeline.activity(step=1, sales_orders=30, purchase_orders=20, payments_paid=40)
    pipeline.run()
    pipeline.assert_matches_source()
    assert set(_drift(pipeline).values()) == {0}
    pipeline.activity(step=2)
    pipeline.process()
    before = _rows(pipeline)
    pipeline.load()
    pipeline.load(since=dt.datetime(2000, 1, 1))  # a reload changes no sum
    assert set(_drift(pipeline).values()) == {0} and _rows(pipeline) != before
    assert pipeline.here("rebuild", "--yes").returncode == 0
    assert set(_drift(pipeline).values()) == {0}


def test_a_summary_that_drifts_fails_verify_and_init_sums_it_again(after_first_run):
    pipeline = after_first_run()
    with pipeline.warehouse().begin() as conn:
        conn.execute(
            text(
                "UPDATE totesys_meta.sales_by_design SET revenue = revenue + 1 "
                "WHERE ctid = (SELECT min(ctid) FROM totesys_meta.sales_by_design)"
            )
        )
    verified = pipeline.here("verify")
    assert verified.returncode == 1
    assert "totesys_meta.sales_by_design groups unlike the facts: source 0, warehouse 2" in (
        verified.stderr
    )
    assert "Drop the summaries that differ and run totesys init" in verified.stderr
    with pipeline.warehouse().begin() as conn:
        conn.execute(text("DROP TABLE totesys_meta.sales_by_design"))
    initialised = pipeline.here("init").stdout.splitlines()
    assert initialised[0] == "warehouse initialised: created 1 object"
    assert pipeline.here("verify").returncode == 0


def test_a_first_load_with_several_versions_of_a_key_counts_the_latest(
    source_url, warehouse_url, tmp_path
):
    """Two extracts before the first transform: the first load brings two versions of
    every amended order, and the summaries count each order once, at its latest."""
    pipeline = Pipeline(source_url, warehouse_url, tmp_path / "lake")
    pipeline.extract()
    pipeline.activity(step=1, sales_orders=30, purchase_orders=20, payments_paid=40)
    pipeline.extract()
    pipeline.transform()
    pipeline.load()
    assert set(_drift(pipeline).values()) == {0}
    assert all(_rows(pipeline).values())


@pytest.mark.parametrize("held_rows", [first_fill.HELD_ROWS, 40])
def test_a_backlog_read_in_key_order_is_appended_and_an_amendment_is_merged(
    source_url, warehouse_url, tmp_path, monkeypatch, held_rows
):
    """Runs of a pass through sales_order bring keys above every key the fact holds:
    they go straight in (no staging, no merge) and the summaries take their sums. A run
    that brings new versions of older orders is merged, and the summaries follow it."""
    monkeypatch.setattr(first_fill, "HELD_ROWS", held_rows)
    merged: list[str] = []
    staged = tables._staged

    def merging(conn, files, *rest):
        merged.append(files.table)
        return staged(conn, files, *rest)

    monkeypatch.setattr(tables, "_staged", merging)
    pipeline = Pipeline(source_url, warehouse_url, tmp_path / "lake")
    pipeline.extract(tables=tuple(t for t in SOURCE_TABLES if t != "sales_order"))
    pipeline.transform()
    pipeline.load()
    for _ in range(2):  # the first fills the empty fact, the second is appended
        pipeline.extract(tables=("sales_order",), budget=0, range_rows=100)
        pipeline.transform()
        merged.clear()
        pipeline.load()
        assert "fact_sales_order" not in merged
        assert set(_drift(pipeline).values()) == {0}
    pipeline.extract()  # the rest of the pass, above every key loaded: appended too
    pipeline.transform()
    merged.clear()
    pipeline.load()
    assert "fact_sales_order" not in merged
    pipeline.remember()
    with pipeline.source().begin() as conn:  # new versions of the first orders
        conn.execute(
            text(
                "UPDATE sales_order SET units_sold = units_sold + 1, last_updated = "
                "date_trunc('milliseconds', clock_timestamp() AT TIME ZONE 'UTC') "
                "WHERE sales_order_id <= 5"
            )
        )
    pipeline.process()
    merged.clear()
    pipeline.load()
    assert "fact_sales_order" in merged
    assert set(_drift(pipeline).values()) == {0}
    pipeline.assert_matches_source()
