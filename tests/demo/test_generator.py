"""The realistic source: the exact totesys DDL, data that behaves like the real thing."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import text

from tests import catalog
from tests.support import TEST_SEED, TEST_SIZES, database_name
from totesys_cli.demo import generator
from totesys_cli.demo.activity import simulate_activity
from totesys_cli.schemas import SOURCE_TABLES

T3 = ("timestamp without time zone", 3)
INT = ("integer", None)
TEXT = ("text", None)
# the real totesys source, written out independently: (column, type, nullable)
SPEC_SOURCE = {
    "address": [
        ("address_id", INT, False),
        ("address_line_1", TEXT, False),
        ("address_line_2", TEXT, True),
        ("district", TEXT, True),
        ("city", TEXT, False),
        ("postal_code", TEXT, False),
        ("country", TEXT, False),
        ("phone", TEXT, False),
    ],
    "counterparty": [
        ("counterparty_id", INT, False),
        ("counterparty_legal_name", TEXT, False),
        ("legal_address_id", INT, False),
        ("commercial_contact", TEXT, True),
        ("delivery_contact", TEXT, True),
    ],
    "currency": [
        ("currency_id", INT, False),
        ("currency_code", ("character varying", None), False),
    ],
    "department": [
        ("department_id", INT, False),
        ("department_name", TEXT, False),
        ("location", TEXT, True),
        ("manager", TEXT, True),
    ],
    "design": [
        ("design_id", INT, False),
        ("created_at", T3, False),
        ("design_name", TEXT, False),
        ("file_location", TEXT, False),
        ("file_name", TEXT, False),
        ("last_updated", T3, False),
    ],
    "staff": [
        ("staff_id", INT, False),
        ("first_name", TEXT, False),
        ("last_name", TEXT, False),
        ("department_id", INT, False),
        ("email_address", TEXT, False),
    ],
    "sales_order": [
        ("sales_order_id", INT, False),
        ("created_at", T3, False),
        ("last_updated", T3, False),
        ("design_id", INT, False),
        ("staff_id", INT, False),
        ("counterparty_id", INT, False),
        ("units_sold", INT, False),
        ("unit_price", ("numeric", None), False),
        ("currency_id", INT, False),
        ("agreed_delivery_date", TEXT, False),
        ("agreed_payment_date", TEXT, False),
        ("agreed_delivery_location_id", INT, False),
    ],
    "purchase_order": [
        ("purchase_order_id", INT, False),
        ("created_at", T3, False),
        ("last_updated", T3, False),
        ("staff_id", INT, False),
        ("counterparty_id", INT, False),
        ("item_code", TEXT, False),
        ("item_quantity", INT, False),
        ("item_unit_price", ("numeric", None), False),
        ("currency_id", INT, False),
        ("agreed_delivery_date", TEXT, False),
        ("agreed_payment_date", TEXT, False),
        ("agreed_delivery_location_id", INT, False),
    ],
    "payment_type": [
        ("payment_type_id", INT, False),
        ("payment_type_name", ("USER-DEFINED", None), False),
    ],
    "transaction": [
        ("transaction_id", INT, False),
        ("transaction_type", ("USER-DEFINED", None), False),
        ("sales_order_id", INT, True),
        ("purchase_order_id", INT, True),
    ],
    "payment": [
        ("payment_id", INT, False),
        ("created_at", T3, False),
        ("last_updated", T3, False),
        ("transaction_id", INT, False),
        ("counterparty_id", INT, False),
        ("payment_amount", ("numeric", None), False),
        ("currency_id", INT, False),
        ("payment_type_id", INT, False),
        ("paid", ("boolean", None), False),
        ("payment_date", TEXT, False),
        ("company_ac_number", INT, False),
        ("counterparty_ac_number", INT, False),
    ],
}
STAMPS = [("created_at", T3, False), ("last_updated", T3, False)]
FOREIGN_KEYS = {
    ("counterparty", "legal_address_id", "address", "address_id"),
    ("staff", "department_id", "department", "department_id"),
    *{
        (t, c, r, f"{r}_id")
        for t in ("sales_order", "purchase_order")
        for c, r in (
            ("staff_id", "staff"),
            ("counterparty_id", "counterparty"),
            ("currency_id", "currency"),
        )
    },
    ("sales_order", "design_id", "design", "design_id"),
    ("sales_order", "agreed_delivery_location_id", "address", "address_id"),
    ("purchase_order", "agreed_delivery_location_id", "address", "address_id"),
    ("transaction", "sales_order_id", "sales_order", "sales_order_id"),
    ("transaction", "purchase_order_id", "purchase_order", "purchase_order_id"),
    ("payment", "transaction_id", "transaction", "transaction_id"),
    ("payment", "counterparty_id", "counterparty", "counterparty_id"),
    ("payment", "currency_id", "currency", "currency_id"),
    ("payment", "payment_type_id", "payment_type", "payment_type_id"),
}


def _spec_columns(table: str):
    columns = SPEC_SOURCE[table]
    if table not in ("design", "sales_order", "purchase_order", "payment"):
        columns = columns + STAMPS
    return [(name, kind[0], "YES" if nullable else "NO") for name, kind, nullable in columns]


def test_source_schema_matches_the_spec_column_by_column(pg, source_url):
    with pg.engine(source_url.rsplit("/", 1)[1].split("?")[0]).connect() as conn:
        actual = catalog.columns(conn, list(SOURCE_TABLES))
        keys = catalog.keys(conn, list(SOURCE_TABLES))
        enums = dict(
            conn.execute(
                text(
                    "SELECT t.typname, array_agg(e.enumlabel ORDER BY e.enumsortorder) "
                    "FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid GROUP BY t.typname"
                )
            ).all()
        )
        defaults = (
            conn.execute(
                text(
                    "SELECT DISTINCT column_default FROM information_schema.columns "
                    "WHERE table_schema = 'public' AND column_name = 'created_at'"
                )
            )
            .scalars()
            .all()
        )
        tables = set(
            conn.execute(
                text(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
                )
            ).scalars()
        )
    assert set(SOURCE_TABLES) == set(SPEC_SOURCE)
    for table in SOURCE_TABLES:
        got = [(c[2], c[3], c[4]) for c in actual if c[0] == table]
        assert got == _spec_columns(table), table
    money = [c for c in actual if c[3] == "numeric"]
    assert {(c[5], c[6]) for c in money} == {(10, 2)}
    stamps = [c for c in actual if c[3].startswith("timestamp")]
    assert {c[7] for c in stamps} == {3}
    assert next(c for c in actual if c[2] == "currency_code")[3] == "character varying"
    assert enums == {
        "PaymentTypeName": ["SALES_RECEIPT", "SALES_REFUND", "PURCHASE_PAYMENT", "PURCHASE_REFUND"],
        "TransactionType": ["SALE", "PURCHASE"],
    }
    assert defaults == ["CURRENT_TIMESTAMP"]
    assert {k[0] for k in keys if k[1] == "PRIMARY KEY"} == set(SOURCE_TABLES)
    assert {(k[0], k[2], k[3], k[4]) for k in keys if k[1] == "FOREIGN KEY"} == FOREIGN_KEYS
    assert {(k[0], k[2]) for k in keys if k[1] == "UNIQUE"} == {
        ("transaction", "sales_order_id"),
        ("transaction", "purchase_order_id"),
        ("payment", "transaction_id"),
    }
    assert "_prisma_migrations" in tables


_db = database_name


def _scalar(pg, url: str, sql: str):
    with pg.engine(_db(url)).connect() as conn:
        return conn.execute(text(sql)).scalar_one()


def test_sizes_follow_the_real_database(pg, source_url):
    counts = {t: _scalar(pg, source_url, f'SELECT count(*) FROM "{t}"') for t in SOURCE_TABLES}
    assert counts == {
        "address": 30,
        "counterparty": 20,
        "currency": 3,
        "department": 8,
        "design": 500,
        "staff": 20,
        "payment_type": 4,
        "sales_order": TEST_SIZES.sales_orders,
        "purchase_order": TEST_SIZES.purchase_orders,
        "transaction": TEST_SIZES.sales_orders + TEST_SIZES.purchase_orders,
        "payment": TEST_SIZES.sales_orders + TEST_SIZES.purchase_orders,
    }
    assert generator.Sizes.for_scale(1).sales_orders == 11_000
    assert generator.BENCHMARK.sales_orders == 1_000_000
    assert generator.BENCHMARK.purchase_orders == 420_000


def test_data_has_the_real_quirks(pg, source_url):
    def q(sql):
        return _scalar(pg, source_url, sql)

    assert q("SELECT count(*) FROM staff WHERE last_name LIKE '%''%'") > 0
    assert q("SELECT count(*) FROM address WHERE country LIKE '%People''s%'") > 0
    assert q("SELECT count(*) FROM address WHERE address_line_2 IS NULL") > 0
    assert q("SELECT count(*) FROM address WHERE district IS NULL") > 0
    assert q("SELECT count(*) FROM department WHERE location IS NULL") > 0
    # transactions link to exactly one order; the other id is NULL
    assert (
        q(
            'SELECT count(*) FROM "transaction" WHERE (sales_order_id IS NULL) = '
            "(purchase_order_id IS NULL)"
        )
        == 0
    )
    # milliseconds are real
    assert (
        q(
            "SELECT count(*) FROM sales_order WHERE extract(milliseconds FROM created_at)::int "
            "% 1000 <> 0"
        )
        > 0
    )
    # many rows share one identical last_updated (bulk updates)
    assert (
        q("SELECT max(n) FROM (SELECT count(*) AS n FROM sales_order GROUP BY last_updated) x") >= 5
    )
    # created during working hours, on working days, over two years
    assert (
        q(
            "SELECT count(*) FROM sales_order WHERE extract(isodow FROM created_at) > 5 "
            "OR created_at::time NOT BETWEEN '09:00' AND '17:00'"
        )
        == 0
    )
    span = q("SELECT max(created_at) - min(created_at) FROM sales_order")
    assert span > dt.timedelta(days=700)
    assert q("SELECT max(last_updated) FROM payment") <= generator.HISTORY_END
    # rows are updated: payments paid days later, some orders touched after creation
    assert q("SELECT count(*) FROM payment WHERE paid AND last_updated > created_at") > 0
    assert q("SELECT count(*) FROM payment WHERE NOT paid") > 0
    assert q("SELECT count(*) FROM sales_order WHERE last_updated > created_at") > 0
    assert q("SELECT count(*) FROM sales_order WHERE last_updated < created_at") == 0
    # orders may reference a design created after them
    assert (
        q(
            "SELECT count(*) FROM sales_order s JOIN design d USING (design_id) "
            "WHERE d.created_at > s.created_at"
        )
        > 0
    )
    # text dates, delivery up to two years out
    assert (
        q("SELECT count(*) FROM sales_order WHERE agreed_delivery_date !~ '^\\d{4}-\\d{2}-\\d{2}$'")
        == 0
    )
    assert q("SELECT max(agreed_delivery_date::date - created_at::date) FROM sales_order") > 365
    assert q("SELECT count(DISTINCT currency_id) FROM sales_order") == 3
    assert q("SELECT string_agg(currency_code, ',' ORDER BY currency_id) FROM currency") == (
        "GBP,USD,EUR"
    )


def _fingerprint(pg, database: str) -> dict[str, str]:
    with pg.engine(database).connect() as conn:
        return {
            t: conn.execute(
                text(f"SELECT md5(string_agg(x::text, '|' ORDER BY x::text)) FROM \"{t}\" AS x")
            ).scalar_one()
            for t in SOURCE_TABLES
        }


def test_same_seed_gives_identical_data_and_another_seed_differs(pg, source_url, empty_db):
    with pg.engine(empty_db).begin() as conn:
        generator.generate_source(conn, TEST_SIZES, seed=TEST_SEED)
    again = _fingerprint(pg, empty_db)
    assert _fingerprint(pg, _db(source_url)) == again
    other = pg.create_database(f"{empty_db}_other")
    try:
        with pg.engine(other).begin() as conn:
            generator.generate_source(conn, TEST_SIZES, seed=TEST_SEED + 1)
        differs = _fingerprint(pg, other)
    finally:
        pg.drop_database(other)
    assert differs["sales_order"] != again["sales_order"]
    assert differs["currency"] == again["currency"]


def test_activity_changes_what_a_working_day_changes(pg, source_url):
    database = _db(source_url)
    with pg.engine(database).begin() as conn:
        before_paid = conn.execute(text("SELECT count(*) FROM payment WHERE paid")).scalar_one()
        unpaid = conn.execute(text("SELECT count(*) FROM payment WHERE NOT paid")).scalar_one()
        activity = simulate_activity(conn, seed=TEST_SEED, step=1)
    at = activity.at
    flipped = min(25, unpaid)
    assert flipped > 0
    assert len(activity.new_sales_orders) == 20
    assert len(activity.new_purchase_orders) == 7
    assert len(activity.paid_payments) == flipped
    with pg.engine(database).connect() as conn:

        def one(sql, **params):
            return conn.execute(text(sql), params).scalar_one()

        assert one("SELECT count(*) FROM payment WHERE paid") == before_paid + flipped
        assert one("SELECT count(*) FROM sales_order WHERE last_updated = :at", at=at) == 20
        assert one('SELECT count(*) FROM "transaction" WHERE created_at = :at', at=at) == 27
        assert one("SELECT count(*) FROM payment WHERE created_at = :at AND NOT paid", at=at) == 27
        assert (
            one(
                "SELECT last_updated FROM department WHERE department_id = :d",
                d=activity.moved_department,
            )
            == at
        )
        assert (
            one("SELECT last_updated FROM staff WHERE staff_id = :s", s=activity.renamed_staff)
            == at
        )
        assert one(
            "SELECT email_address LIKE '%-%' FROM staff WHERE staff_id = :s",
            s=activity.renamed_staff,
        )
        assert (
            one(
                "SELECT last_updated FROM counterparty WHERE counterparty_id = :c",
                c=activity.moved_counterparty,
            )
            == at
        )
        assert (
            one(
                "SELECT last_updated FROM address WHERE address_id = :a", a=activity.changed_address
            )
            == at
        )
        # nothing else moved
        assert one("SELECT count(*) FROM department WHERE last_updated = :at", at=at) == 1
        assert at > generator.HISTORY_END
