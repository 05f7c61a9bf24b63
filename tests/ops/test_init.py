"""`totesys init` creates exactly the warehouse written out in spec_warehouse.sql, once."""

from __future__ import annotations

from sqlalchemy import inspect, text

from tests import catalog
from tests.support import SPEC_WAREHOUSE_SQL as SPEC_SQL
from tests.support import invoke
from totesys_cli.schemas import FACTS, META_SCHEMA, STAR_TABLES


def _init(url: str):
    return invoke("init", "--warehouse-url", url)


def test_init_creates_the_spec_warehouse_column_by_column(pg, empty_db):
    expected_db = pg.create_database(f"{empty_db}_spec")
    try:
        with pg.engine(expected_db).begin() as conn:
            conn.execute(text(SPEC_SQL))
            expected = catalog.snapshot(conn, list(STAR_TABLES))
        result = _init(pg.url(empty_db))
        assert result.exit_code == 0, result.output
        with pg.engine(empty_db).connect() as conn:
            actual = catalog.snapshot(conn, list(STAR_TABLES))
    finally:
        pg.drop_database(expected_db)
    assert len(expected[0]) == 87
    assert actual[0] == expected[0]  # columns: order, types, nullability, precision, serial
    assert actual[1] == expected[1]  # primary and foreign keys


def test_init_creates_version_indexes_latest_views_and_meta_schema(pg, empty_db):
    assert _init(pg.url(empty_db)).exit_code == 0
    with pg.engine(empty_db).connect() as conn:
        inspector = inspect(conn)
        for fact in FACTS:
            indexes = {ix["name"]: ix for ix in inspector.get_indexes(fact)}
            version = indexes[f"{fact}_version_key"]
            assert version["unique"]
            key = (
                "payment_id"
                if fact == "fact_payment"
                else ("sales_order_id" if fact == "fact_sales_order" else "purchase_order_id")
            )
            assert version["column_names"] == [key, "last_updated_date", "last_updated_time"]
        assert set(inspector.get_view_names()) == {f"{fact}_latest" for fact in FACTS}
        assert inspector.has_schema(META_SCHEMA)


def test_latest_view_holds_the_newest_version_of_each_source_row(pg, empty_db):
    assert _init(pg.url(empty_db)).exit_code == 0
    with pg.engine(empty_db).begin() as conn:
        conn.execute(
            text("""
            INSERT INTO dim_date VALUES ('2025-01-01', 2025, 1, 1, 3, 'Wednesday', 'January', 1),
                                        ('2025-01-02', 2025, 1, 2, 4, 'Thursday', 'January', 1);
            INSERT INTO dim_transaction VALUES (1, 'SALE', 1, NULL);
            INSERT INTO dim_counterparty VALUES (1, 'O''Hara', 'a', NULL, NULL, 'c', 'p', 'x', '1');
            INSERT INTO dim_currency VALUES (1, 'GBP', 'Pound Sterling');
            INSERT INTO dim_payment_type VALUES (1, 'SALES_RECEIPT');
            INSERT INTO fact_payment (payment_id, created_date, created_time, last_updated_date,
              last_updated_time, transaction_id, counterparty_id, payment_amount, currency_id,
              payment_type_id, paid, payment_date)
            VALUES (7, '2025-01-01', '10:12:10.14', '2025-01-01', '10:12:10.14', 1, 1, 5.00, 1, 1,
                    false, '2025-01-02'),
                   (7, '2025-01-01', '10:12:10.14', '2025-01-02', '09:00:00', 1, 1, 5.00, 1, 1,
                    true, '2025-01-02');
        """)
        )
        rows = conn.execute(text("SELECT payment_id, paid FROM fact_payment_latest")).all()
    assert rows == [(7, True)]


def test_second_init_changes_nothing(pg, empty_db):
    url = pg.url(empty_db)
    first = _init(url)
    assert first.exit_code == 0
    assert first.stdout == "warehouse initialised: created 32 objects\n"
    with pg.engine(empty_db).connect() as conn:
        before = catalog.snapshot(conn, list(STAR_TABLES))
    second = _init(url)
    assert second.exit_code == 0
    assert second.stdout == "warehouse already initialised: nothing to do\n"
    with pg.engine(empty_db).connect() as conn:
        assert catalog.snapshot(conn, list(STAR_TABLES)) == before


def test_init_completes_a_warehouse_someone_else_started(pg, empty_db):
    with pg.engine(empty_db).begin() as conn:
        conn.execute(text(SPEC_SQL))  # the team created the tables, not the indexes or views
    result = _init(pg.url(empty_db))
    assert result.exit_code == 0, result.output
    assert result.stdout == "warehouse initialised: created 21 objects\n"
    with pg.engine(empty_db).begin() as conn:
        conn.execute(text("DROP VIEW fact_payment_latest"))
    assert _init(pg.url(empty_db)).stdout == "warehouse initialised: created 1 object\n"


def test_init_names_the_grant_that_lets_a_run_check_foreign_keys_once(pg, loader):
    """A role that may not turn triggers off leaves each fact row to a trigger per key:
    init says so, with the GRANT that changes it, and says nothing once granted."""
    role, url = loader
    first = _init(url)
    assert first.exit_code == 0, first.stderr
    assert first.stdout.splitlines()[1:] == [
        "warehouse: a trigger checks each new fact row's foreign keys, key by key (about "
        "half of a small run's load)",
        "  a run checks them once over its rows when its role may set "
        "session_replication_role: a superuser, or on PostgreSQL 15 and later",
        f"    GRANT SET ON PARAMETER session_replication_role TO {role};",
    ]
    with pg.admin().connect() as conn:
        conn.execute(text(f"GRANT SET ON PARAMETER session_replication_role TO {role}"))
    assert _init(url).stdout == "warehouse already initialised: nothing to do\n"
