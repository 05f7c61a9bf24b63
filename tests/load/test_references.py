"""A run's facts keep their foreign keys: checked set-based over the rows it wrote, with
the triggers off, only where that is allowed; a dangling key fails the run and loads
nothing, on every path a fact's rows take."""

from __future__ import annotations

import pytest
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import CreateTable

from tests.support import Pipeline
from totesys_cli.errors import RuntimeFailure
from totesys_cli.load import apply, references
from totesys_cli.load import run as load_step
from totesys_cli.load.run import last_loaded
from totesys_cli.schemas import data_columns, star

SET_BASED = 'break its foreign key "{}"'
BY_TRIGGER = 'violates foreign key constraint "{}"'


def _losing(monkeypatch, after: str, statement: str, triggers_off: bool = True) -> None:
    """Once `after` is applied, the run loses a dimension row its facts need. The row is
    deleted with the triggers off (unless the role may not, and no fact is loaded yet),
    so that facts loaded before cannot hold it back."""
    real = load_step.load_table

    def losing(conn: Connection, processed, table, files, deadline, *rest):
        result = real(conn, processed, table, files, deadline, *rest)
        if table == after:
            if triggers_off:
                conn.execute(text("SET LOCAL session_replication_role = replica"))
            conn.execute(text(statement))
            if triggers_off:
                conn.execute(text("SET LOCAL session_replication_role = origin"))
        return result

    monkeypatch.setattr(load_step, "load_table", losing)


def _held(pipeline: Pipeline) -> tuple[int, dict]:
    with pipeline.warehouse().connect() as conn:
        return last_loaded(conn), pipeline.snapshot()


def test_a_dangling_key_straight_into_an_empty_fact_fails_and_loads_nothing(pipeline, monkeypatch):
    pipeline.process()
    _losing(monkeypatch, "dim_design", "DELETE FROM dim_design WHERE design_id = 1")
    with pytest.raises(RuntimeFailure, match=SET_BASED.format("fact_sales_order_design_id_fkey")):
        pipeline.load()
    with pipeline.warehouse().connect() as conn:
        assert last_loaded(conn) == 0
        assert conn.execute(text("SELECT count(*) FROM fact_sales_order")).scalar() == 0
        assert conn.execute(text("SELECT count(*) FROM dim_design")).scalar() == 0


def test_a_dangling_key_appended_to_a_fact_fails_and_loads_nothing(after_first_run, monkeypatch):
    pipeline = after_first_run()
    pipeline.activity()  # new sales orders, above every key the fact holds: appended
    pipeline.process()
    with pipeline.source().connect() as conn:
        design = conn.execute(
            text("SELECT design_id FROM sales_order ORDER BY sales_order_id DESC LIMIT 1")
        ).scalar_one()
    before = _held(pipeline)
    # dim_transaction: the last dimension this run brings (it brings no design)
    _losing(monkeypatch, "dim_transaction", f"DELETE FROM dim_design WHERE design_id = {design}")
    with pytest.raises(
        RuntimeFailure,
        match=SET_BASED.format("fact_sales_order_design_id_fkey")
        + rf": \(design_id\)=\({design}\)",
    ):
        pipeline.load()
    assert _held(pipeline) == before
    monkeypatch.undo()
    pipeline.load()
    pipeline.assert_matches_source()


def test_a_dangling_key_merged_into_a_fact_fails_and_loads_nothing(after_first_run, monkeypatch):
    pipeline = after_first_run()
    activity = pipeline.activity()  # payments paid: new versions of held keys, merged
    pipeline.process()
    with pipeline.source().connect() as conn:
        paid = conn.execute(
            text("SELECT transaction_id FROM payment WHERE payment_id = :p"),
            {"p": activity.paid_payments[0]},
        ).scalar_one()
    before = _held(pipeline)
    _losing(
        monkeypatch, "dim_transaction", f"DELETE FROM dim_transaction WHERE transaction_id = {paid}"
    )
    with pytest.raises(RuntimeFailure, match=SET_BASED.format("fact_payment_transaction_id_fkey")):
        pipeline.load()
    assert _held(pipeline) == before


def test_the_keys_a_run_checks_are_locked_until_it_commits(after_first_run):
    """As the trigger would: no other session can delete a dimension row the run's facts
    need before they are committed."""
    pipeline = after_first_run()
    warehouse = pipeline.warehouse()
    with warehouse.begin() as conn:  # a design no fact references yet
        conn.execute(
            text(
                "INSERT INTO dim_design (design_id, design_name, file_location, file_name) "
                "VALUES (99999, 'new', '/new', 'new.json')"
            )
        )
    stage = apply.stage_table("written", "fact_sales_order")
    columns = ", ".join(data_columns(star("fact_sales_order").table))
    with warehouse.connect() as conn, conn.begin():
        conn.execute(CreateTable(stage))
        conn.execute(
            text(f"INSERT INTO written ({columns}) SELECT {columns} FROM fact_sales_order")
        )
        conn.execute(text("UPDATE written SET design_id = 99999"))
        checks = references.Checks(conn, "fact_sales_order")
        assert {k.name for k in checks.keys} >= {"fact_sales_order_design_id_fkey"}
        checks.check(stage)
        with warehouse.connect() as other:
            other.execute(text("SET lock_timeout = '200ms'"))
            with pytest.raises(DBAPIError, match="55P03"):  # lock not available
                other.execute(text("DELETE FROM dim_design WHERE design_id = 99999"))


def test_a_facts_own_trigger_keeps_firing(after_first_run):
    """A team's trigger on a fact keeps the triggers on: each row is checked by them,
    and theirs fires."""
    pipeline = after_first_run()
    with pipeline.warehouse().begin() as conn:
        conn.execute(text("CREATE TABLE audited (payment_id int)"))
        conn.execute(
            text(
                "CREATE FUNCTION audit() RETURNS trigger LANGUAGE plpgsql AS "
                "$$BEGIN INSERT INTO audited VALUES (NEW.payment_id); RETURN NEW; END$$"
            )
        )
        conn.execute(
            text(
                "CREATE TRIGGER audit AFTER INSERT ON fact_payment "
                "FOR EACH ROW EXECUTE FUNCTION audit()"
            )
        )
        before = conn.execute(text("SELECT count(*) FROM fact_payment")).scalar_one()
        assert references.Checks(conn, "fact_payment").keys == []
        assert references.Checks(conn, "fact_sales_order").keys != []
    pipeline.activity()
    pipeline.run()
    pipeline.assert_matches_source()
    with pipeline.warehouse().connect() as conn:
        after = conn.execute(text("SELECT count(*) FROM fact_payment")).scalar_one()
        assert conn.execute(text("SELECT count(*) FROM audited")).scalar_one() == after - before > 0


def test_a_role_that_may_not_turn_the_triggers_off_leaves_each_row_to_them(
    pg, source_url, loader, tmp_path, monkeypatch
):
    role, warehouse = loader
    pipeline = Pipeline(source_url, warehouse, tmp_path / "lake")
    pipeline.process()
    losing = "DELETE FROM dim_design WHERE design_id = 1"  # no facts yet to hold it
    _losing(monkeypatch, "dim_design", losing, triggers_off=False)
    with pytest.raises(RuntimeFailure, match=BY_TRIGGER.format("fact_sales_order_design_id_fkey")):
        pipeline.load()
    with pg.admin().connect() as conn:  # granted, set-based
        conn.execute(text(f"GRANT SET ON PARAMETER session_replication_role TO {role}"))
    with pytest.raises(RuntimeFailure, match=SET_BASED.format("fact_sales_order_design_id_fkey")):
        pipeline.load()
    monkeypatch.undo()
    pipeline.load()
    pipeline.assert_matches_source()
    with pipeline.warehouse().connect() as conn:
        superuser = text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        assert conn.execute(superuser).scalar_one() is False
