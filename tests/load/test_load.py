"""Load: every processed run exactly once, atomically; dimensions never go back in time."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import text

from tests.support import SPEC_WAREHOUSE_SQL, Pipeline, invoke
from totesys_cli.db import indexes
from totesys_cli.errors import RuntimeFailure
from totesys_cli.lake import manifest as manifests
from totesys_cli.lake.manifest import ProcessedManifest
from totesys_cli.load import references
from totesys_cli.load import run as load_step
from totesys_cli.runtime import Deadline
from totesys_cli.schemas import FACTS, STAR_TABLES, star


def test_golden_the_warehouse_equals_the_source_before_and_after_activity(pipeline):
    first = pipeline.run()
    assert [r.seq for r in first.runs] == [1]
    pipeline.assert_matches_source()

    activity = pipeline.activity()
    pipeline.run()
    pipeline.assert_matches_source()
    with pipeline.warehouse().connect() as conn:
        paid_versions = conn.execute(
            text("SELECT count(*) FROM fact_payment WHERE payment_id = ANY(:ids)"),
            {"ids": activity.paid_payments},
        ).scalar_one()
        assert paid_versions == 2 * len(activity.paid_payments)
        with pipeline.source().connect() as source:
            moved = source.execute(
                text(
                    "SELECT d.location, array_agg(s.staff_id ORDER BY s.staff_id) FROM staff s "
                    "JOIN department d USING (department_id) WHERE department_id = :d "
                    "GROUP BY d.location"
                ),
                {"d": activity.moved_department},
            ).one()
        locations = (
            conn.execute(
                text("SELECT DISTINCT location FROM dim_staff WHERE staff_id = ANY(:ids)"),
                {"ids": moved[1]},
            )
            .scalars()
            .all()
        )
        assert locations == [moved[0]]


def test_loading_again_and_since_over_everything_change_nothing(pipeline):
    pipeline.run()
    pipeline.activity()
    pipeline.run()
    before = pipeline.snapshot()
    assert pipeline.load().runs == []
    reloaded = pipeline.load(since=dt.datetime(2000, 1, 1))
    assert [r.seq for r in reloaded.runs] == [1, 2] and all(r.reload for r in reloaded.runs)
    assert reloaded.rows == 0
    assert pipeline.snapshot() == before


def test_a_reprocess_corrects_wrong_values_in_the_warehouse(pipeline):
    """What a fixed transform relies on: `run-all --since` rewrites every version in the
    window, facts and dimensions alike, even where the version itself is unchanged."""
    pipeline.run()
    activity = pipeline.activity()
    pipeline.run()
    with pipeline.warehouse().begin() as conn:
        conn.execute(text("UPDATE dim_design SET design_name = 'wrong' WHERE design_id = 1"))
        conn.execute(
            text("UPDATE dim_staff SET last_name = 'wrong' WHERE staff_id = :s"),
            {"s": activity.renamed_staff},
        )
        conn.execute(text("UPDATE fact_sales_order SET units_sold = -1 WHERE sales_order_id = 1"))
        conn.execute(
            text("UPDATE fact_payment SET paid = NOT paid WHERE payment_id = ANY(:p)"),
            {"p": activity.paid_payments},
        )
    repaired = pipeline.cli("run-all", "--since", "2000-01-01")
    assert repaired.returncode == 0, repaired.stderr
    pipeline.assert_matches_source()


def test_replaying_an_older_run_leaves_dimensions_at_their_newer_values(pipeline):
    pipeline.run()
    activity = pipeline.activity()
    pipeline.run()
    before = pipeline.snapshot()
    manifest = manifests.read(pipeline.processed, manifests.manifest_key(1), ProcessedManifest)
    with pipeline.warehouse().connect() as conn, conn.begin():
        replay = load_step.load_run(conn, pipeline.processed, manifest, True, Deadline(None))
    assert replay.changed.get("dim_staff") == 0
    assert pipeline.snapshot() == before  # the moved department's staff kept its new city
    with pipeline.warehouse().connect() as conn:
        assert (
            conn.execute(
                text(
                    "SELECT count(*) FROM dim_staff s JOIN totesys_meta.dimension_versions v "
                    "ON v.dimension = 'dim_staff' AND v.key = s.staff_id "
                    "WHERE v.source_last_updated = :at"
                ),
                {"at": activity.at},
            ).scalar()
            > 0
        )


def test_a_failure_inside_the_transaction_changes_nothing(pipeline, monkeypatch):
    pipeline.process()
    before = pipeline.snapshot()
    real = load_step.load_table

    def failing(conn, processed, table, files, deadline, *rest):
        result = real(conn, processed, table, files, deadline, *rest)
        if table == "fact_payment":  # everything else of the run is already written
            raise RuntimeFailure("injected failure after loading fact_payment")
        return result

    monkeypatch.setattr(load_step, "load_table", failing)
    with pytest.raises(RuntimeFailure, match="injected"):
        pipeline.load()
    assert pipeline.snapshot() == before
    with pipeline.warehouse().connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM totesys_meta.loaded_runs")).scalar() == 0
    monkeypatch.undo()
    assert [r.seq for r in pipeline.load().runs] == [1]
    pipeline.assert_matches_source()


def test_a_run_repeating_a_key_is_merged_not_copied_straight(pipeline):
    """Two versions of one transaction in one run cannot go straight into an empty
    table; the load falls back to merging and keeps the newer."""
    pipeline.extract()
    with pipeline.source().begin() as conn:
        conn.execute(
            text(
                'UPDATE "transaction" SET last_updated = '
                "(now() AT TIME ZONE 'UTC')::timestamp(3) WHERE transaction_id = 1"
            )
        )
    pipeline.extract()
    result = pipeline.transform()
    assert result.raw_runs == [1, 2]
    pipeline.load()
    pipeline.assert_matches_source()


def test_big_runs_check_foreign_keys_once_and_keep_them(pipeline, monkeypatch):
    monkeypatch.setattr(references, "BULK_ROWS", 10)
    with pipeline.warehouse().connect() as conn:
        constraints = conn.execute(
            text(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE contype = 'f' "
                "ORDER BY 1"
            )
        ).all()
    pipeline.run()
    pipeline.assert_matches_source()
    with pipeline.warehouse().connect() as conn:
        assert (
            conn.execute(
                text(
                    "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                    "WHERE contype = 'f' ORDER BY 1"
                )
            ).all()
            == constraints
        )
        assert conn.execute(
            text("SELECT bool_and(convalidated) FROM pg_constraint WHERE contype = 'f'")
        ).scalar()


def test_a_big_dimension_keys_the_versions_once_after_its_rows(pipeline, monkeypatch):
    """A first load's big dimensions take their rows of the shared versions table with
    its key built after them, not grown row by row; the key stands again after each,
    and later runs merge into it."""
    monkeypatch.setattr(references, "BULK_ROWS", 10)
    real, built = indexes.built_after, []

    def spying(conn, table):
        built.append(table)
        return real(conn, table)

    monkeypatch.setattr(indexes, "built_after", spying)
    pipeline.run()
    # each dimension of more than 10 rows, while its rows are over a tenth of those held
    assert built.count("totesys_meta.dimension_versions") >= 2
    versions_key = text(
        "SELECT count(*) FROM pg_indexes WHERE tablename = 'dimension_versions' "
        "AND indexname = 'dimension_versions_pkey'"
    )
    with pipeline.warehouse().connect() as conn:
        assert conn.execute(versions_key).scalar_one() == 1
        held = conn.execute(text("SELECT count(*) FROM totesys_meta.dimension_versions"))
        assert held.scalar_one() == sum(
            conn.execute(text(f"SELECT count(*) FROM {d}")).scalar_one()
            for d in STAR_TABLES
            if star(d).is_dimension
        )
    pipeline.activity()  # a department moving, a staff rename: merged into the versions
    pipeline.run()
    pipeline.assert_matches_source()


def test_a_fact_takes_the_record_ids_its_sequence_would_have_given(pipeline):
    """Straight in, a fact's record ids are drawn from its sequence a file at a time, not
    row by row: 1 to n in the order of its files' rows, and the versions merged later go
    on from n + 1."""
    pipeline.extract(batch_rows=40)
    run = pipeline.transform()
    manifest = manifests.read(
        pipeline.processed, manifests.manifest_key(run.seq), ProcessedManifest
    )
    assert all(len(manifest.files(fact)) > 1 for fact in FACTS)
    pipeline.load()

    def held(fact: str) -> list[tuple]:
        spec = star(fact)
        columns = ", ".join([spec.record_id, *spec.version_key])
        with pipeline.warehouse().connect() as conn:
            query = text(f"SELECT {columns} FROM {fact} ORDER BY 1")  # nosec B608
            return [tuple(r) for r in conn.execute(query)]

    for fact in FACTS:
        rows = pipeline.star_rows(fact)
        versions = [tuple(row[c] for c in star(fact).version_key) for row in rows]
        assert held(fact) == [(n, *v) for n, v in enumerate(versions, start=1)], fact
    pipeline.activity()
    pipeline.run()
    for fact in FACTS:
        ids = [row[0] for row in held(fact)]
        assert ids == list(range(1, len(ids) + 1)) and len(ids) > len(pipeline.star_rows(fact, [1]))
    pipeline.assert_matches_source()


def test_only_runs_big_beside_their_table_check_foreign_keys_at_the_end(pipeline, monkeypatch):
    """Checking a small run's rows costs less than re-checking a big table."""
    monkeypatch.setattr(references, "BULK_ROWS", 10)
    real = load_step.checked_at_the_end
    checked: list[list[str]] = []

    def spying(conn, tables, deadline):
        checked.append(list(tables))
        return real(conn, tables, deadline)

    monkeypatch.setattr(load_step, "checked_at_the_end", spying)
    pipeline.run()  # into empty tables: every fact at the end
    # 20 of 300 sales orders, under a tenth: row by row; 30 of 126 purchase orders and
    # their 30 payments beside 20 others: over a tenth of their tables
    pipeline.activity(purchase_orders=30)
    pipeline.run()
    assert checked == [list(FACTS), ["fact_purchase_orders", "fact_payment"]]
    with pipeline.warehouse().connect() as conn:
        held = conn.execute(text("SELECT reltuples FROM pg_class WHERE relname = 'fact_payment'"))
        assert held.scalar_one() > 400  # analyzed by the bulk path
    pipeline.assert_matches_source()


def test_a_bulk_run_with_a_dangling_key_fails_and_loads_nothing(pipeline, monkeypatch):
    monkeypatch.setattr(references, "BULK_ROWS", 10)
    pipeline.process()
    real = load_step.load_table

    def losing_a_design(conn, processed, table, files, deadline, *rest):
        result = real(conn, processed, table, files, deadline, *rest)
        if table == "dim_design":  # a dimension row the facts need is gone
            conn.execute(text("DELETE FROM dim_design WHERE design_id = 1"))
        return result

    monkeypatch.setattr(load_step, "load_table", losing_a_design)
    with pytest.raises(RuntimeFailure, match="fact_sales_order_design_id_fkey"):
        pipeline.load()
    with pipeline.warehouse().connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM fact_sales_order")).scalar() == 0
        assert conn.execute(text("SELECT count(*) FROM dim_design")).scalar() == 0


def test_without_unique_version_indexes_nothing_is_duplicated(pipeline):
    with pipeline.warehouse().begin() as conn:
        for fact in ("fact_sales_order", "fact_purchase_orders", "fact_payment"):
            conn.execute(text(f'DROP INDEX "{fact}_version_key"'))
    pipeline.run()
    pipeline.activity()
    pipeline.run()
    pipeline.load(since=dt.datetime(2000, 1, 1))
    pipeline.assert_matches_source()


def test_a_team_warehouse_without_meta_gets_it(pg, source_url, warehouse_url, tmp_path):
    pipeline = Pipeline(source_url, warehouse_url, tmp_path, init=False)
    with pipeline.warehouse().begin() as conn:
        conn.execute(text(SPEC_WAREHOUSE_SQL))
    pipeline.run()
    with pipeline.warehouse().connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM totesys_meta.loaded_runs")).scalar() == 1
    for table in ("dim_staff", "fact_payment"):
        assert pipeline.actual(table) == pipeline.expected(table)


def test_a_warehouse_table_missing_a_column_fails_before_writing(pipeline):
    pipeline.process()
    with pipeline.warehouse().begin() as conn:
        conn.execute(text("ALTER TABLE dim_staff DROP COLUMN email_address"))
    with pytest.raises(RuntimeFailure) as caught:
        pipeline.load()
    assert caught.value.message == (
        "the warehouse table dim_staff has no column email_address; nothing was loaded. "
        "Add it as totesys init creates it"
    )
    with pipeline.warehouse().connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM dim_date")).scalar() == 0


def test_a_processed_file_that_does_not_match_fails_naming_it(pipeline):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pipeline.extract()
    result = pipeline.transform()
    key = result.tables["dim_staff"].files[0].key
    pq.write_table(pa.table({"staff_id": [1]}), f"{pipeline.processed.url}/{key}")
    with pytest.raises(RuntimeFailure) as caught:
        pipeline.load()
    assert caught.value.problem.startswith(
        f"the lake file {pipeline.processed.url}/{key} does not have the expected columns"
    )
    with pipeline.warehouse().connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM dim_date")).scalar() == 0


def test_cli_load_and_its_lock(pipeline):
    from totesys_cli.runtime import LOCK_KEY

    pipeline.process()
    args = ["load", "--warehouse-url", pipeline.warehouse_url, "--lake-url", str(pipeline.lake)]
    with pipeline.warehouse().connect() as holder:
        holder.execute(text("SELECT pg_advisory_lock(:k)"), {"k": LOCK_KEY})
        locked = invoke(*args)
    assert locked.exit_code == 75
    assert "WARNING [load] another totesys run holds the warehouse lock" in locked.stderr
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1].startswith("loaded 1 run: ")
    again = invoke(*args)
    assert again.stdout == "nothing to load: every committed processed run is already loaded\n"


class _Expiring(Deadline):
    """A deadline that passes when told to, whatever the clock says."""

    def __init__(self) -> None:
        super().__init__(600.0)
        self.expired = False

    def remaining(self) -> float | None:
        return -1.0 if self.expired else 600.0


def _expiring_in(monkeypatch, deadline: _Expiring, call: int) -> None:
    """The deadline passes while fact_sales_order is loaded for the call-th time."""
    real, calls = load_step.load_table, []

    def load_table(conn, processed, table, files, at, *rest):
        if table == "fact_sales_order":
            calls.append(table)
            deadline.expired = len(calls) == call
        return real(conn, processed, table, files, at, *rest)

    monkeypatch.setattr(load_step, "load_table", load_table)


def _loaded_runs(pipeline: Pipeline) -> list[int]:
    with pipeline.warehouse().connect() as conn:
        return list(conn.execute(text("SELECT seq FROM totesys_meta.loaded_runs")).scalars())


@pytest.mark.parametrize("progressed", [False, True])
def test_a_load_that_reaches_its_deadline_after_progress_leaves_the_run_waiting(
    pipeline, monkeypatch, caplog, progressed
):
    """Once a run has committed something (a processed run loaded, or the extract and
    transform before it), the deadline passing inside the next processed run rolls that
    one back and ends the load successfully, the run waiting for the next load."""
    pipeline.process()
    pipeline.activity(step=1)
    pipeline.process()
    deadline = _Expiring()
    _expiring_in(monkeypatch, deadline, call=1 if progressed else 2)
    options = load_step.LoadOptions(progressed=progressed)
    result = load_step.load(pipeline.warehouse_db, pipeline.processed, options, deadline)
    assert result.stopped and [r.seq for r in result.runs] == ([] if progressed else [1])
    assert result.waiting == (2 if progressed else 1)
    assert _loaded_runs(pipeline) == ([] if progressed else [1])
    assert "the next run loads it" in caplog.text
    monkeypatch.undo()
    pipeline.load()
    pipeline.assert_matches_source()


def test_a_load_that_reaches_its_deadline_before_any_progress_fails(pipeline, monkeypatch):
    pipeline.process()
    deadline = _Expiring()
    _expiring_in(monkeypatch, deadline, call=1)
    with pytest.raises(RuntimeFailure, match="passed its --max-runtime"):
        load_step.load(pipeline.warehouse_db, pipeline.processed, load_step.LoadOptions(), deadline)
    assert _loaded_runs(pipeline) == []


def test_a_deadline_cuts_a_transaction_statement_timeout_and_never_raises_it(pipeline):
    with pipeline.warehouse().connect() as conn:
        shown = text("SHOW statement_timeout")
        Deadline(3600).limit(conn)  # more time than the connection's own 5 minutes
        assert conn.execute(shown).scalar_one() == "5min"
        Deadline(12).limit(conn)
        assert 11_000 <= int(conn.execute(shown).scalar_one().removesuffix("ms")) <= 12_000
        conn.rollback()
        assert conn.execute(shown).scalar_one() == "5min"  # for the transaction only
        gone = Deadline(1, started=0.0)
        with pytest.raises(RuntimeFailure, match="passed its --max-runtime"):
            gone.limit(conn)


def test_a_tables_first_file_is_read_once_and_not_held_through_its_pass(monkeypatch):
    """The first file, read for its lowest key, serves the pass that follows and is not
    kept past it (a file of a big fact is tens of MB); a pass that was not preceded by
    that read keeps nothing."""
    import pyarrow as pa

    from totesys_cli.load import tables

    reads = []

    def read(lake, keys, schema):
        reads.append(keys[0])
        return pa.table({"staff_id": pa.array([int(keys[0])], pa.int32())})

    monkeypatch.setattr(tables, "read_parquet", read)
    files = tables._Files(None, "dim_staff", ["7", "3", "9"], 3, False)
    assert files.lowest_key() == 7 and reads == ["7"]
    passing = iter(files)
    assert next(passing).column("staff_id").to_pylist() == [7]
    assert files.first is None and reads == ["7"]
    assert [t.num_rows for t in passing] == [1, 1] and reads == ["7", "3", "9"]
    assert [t.column("staff_id")[0].as_py() for t in files] == [7, 3, 9]  # read anew
    assert files.first is None and reads == ["7", "3", "9"] * 2
