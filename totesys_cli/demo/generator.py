"""A realistic totesys source, deterministic from a seed, shared by tests, demo and benchmark.

Every value is derived from (seed, table, column, row number) through a hash, never
from a random stream, so the same seed and sizes always give the same database.
Large tables are filled with set-based SQL over generate_series; foreign keys are
added after the fill so they are validated once, set-based, as a migration would.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import (
    Column,
    Connection,
    MetaData,
    String,
    Table,
    Text,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import TIMESTAMP
from sqlalchemy.schema import AddConstraint, CreateTable

from totesys_cli.demo.values import (
    CITIES,
    COMPANY_SUFFIXES,
    COMPANY_WORDS,
    COUNTRIES,
    CURRENCIES,
    DEPARTMENTS,
    DESIGN_WORDS,
    STREETS,
    email,
    h,
    person,
    phone,
    pick,
)
from totesys_cli.schemas.source import SOURCE, PaymentTypeName, TransactionType

HISTORY_END = dt.datetime(2026, 11, 2, 17, 30)  # fixed, so a seed always means the same data
HISTORY_DAYS = 730
SEED_STAMP = dt.datetime(2024, 10, 31, 14, 20, 49, 962000)  # one bulk seed of every dimension
SEEDED = {"created_at": SEED_STAMP, "last_updated": SEED_STAMP}

_PRISMA = MetaData()
Table(
    "_prisma_migrations",
    _PRISMA,
    Column("id", String(36), primary_key=True),
    Column("checksum", String(64), nullable=False),
    Column("finished_at", TIMESTAMP(timezone=True)),
    Column("migration_name", String(255), nullable=False),
    Column("logs", Text),
    Column("started_at", TIMESTAMP(timezone=True), nullable=False),
)


@dataclass(frozen=True)
class Sizes:
    """Row counts: dimensions at the real size, orders scaled."""

    sales_orders: int
    purchase_orders: int
    designs: int = 500
    addresses: int = 30
    counterparties: int = 20
    departments: int = len(DEPARTMENTS)
    staff: int = 20

    @classmethod
    def for_scale(cls, scale: float) -> Sizes:
        """scale 1 is about today's real database: 11k sales and 4.6k purchase orders."""
        sales = max(1, round(11_000 * scale))
        return cls(sales_orders=sales, purchase_orders=max(1, round(sales * 0.42)))


BENCHMARK = Sizes(sales_orders=1_000_000, purchase_orders=420_000)


def _address(seed: int, n: int) -> dict:
    k = h(seed, "address", n)
    return {
        "address_id": n,
        "address_line_1": f"{1 + k % 400} {pick(STREETS, seed, 'street', n)}",
        "address_line_2": None if k % 2 else f"Flat {1 + k % 30}",
        "district": None
        if k % 3 == 0
        else pick(("Avon", "Cheshire", "Bedfordshire", "Buckinghamshire"), seed, "district", n),
        "city": pick(CITIES, seed, "city", n),
        "postal_code": f"{10000 + k % 89999}-{k % 10000:04d}",
        "country": pick(COUNTRIES, seed, "country", n),
        "phone": phone(seed, "address", n),
        **SEEDED,
    }


def _counterparty(seed: int, n: int, sizes: Sizes) -> dict:
    first, last = person(seed, "contact", n)
    return {
        "counterparty_id": n,
        "counterparty_legal_name": pick(COMPANY_WORDS, seed, "company", n)
        + pick(COMPANY_SUFFIXES, seed, "suffix", n),
        "legal_address_id": 1 + h(seed, "legal_address", n) % sizes.addresses,
        "commercial_contact": None if n % 4 == 0 else f"{first} {last}",
        "delivery_contact": None if n % 5 == 0 else " ".join(person(seed, "delivery", n)),
        **SEEDED,
    }


def _department(seed: int, n: int) -> dict:
    return {
        "department_id": n,
        "department_name": DEPARTMENTS[(n - 1) % len(DEPARTMENTS)],
        "location": None if n % 5 == 0 else pick(CITIES, seed, "department_city", n),
        "manager": " ".join(person(seed, "manager", n)),
        **SEEDED,
    }


def _design(seed: int, n: int, start: dt.datetime) -> dict:
    """Designs are created over the whole history (an order may name a newer one)."""
    word = pick(DESIGN_WORDS, seed, "design", n)
    span = HISTORY_DAYS * 24 * 3600 * 1000
    stamp = start + dt.timedelta(milliseconds=h(seed, "design_time", n) % span)
    return {
        "design_id": n,
        "created_at": stamp,
        "design_name": word,
        "file_location": f"/{pick(('usr', 'private', 'opt', 'home'), seed, 'dir', n)}"
        f"/{word.lower()}",
        "file_name": f"{word.lower()}-{h(seed, 'file', n) % 16**8:08x}.json",
        "last_updated": stamp,
    }


def _staff(seed: int, n: int, sizes: Sizes) -> dict:
    first, last = person(seed, "staff", n)
    return {
        "staff_id": n,
        "first_name": first,
        "last_name": last,
        "department_id": 1 + h(seed, "staff_department", n) % sizes.departments,
        "email_address": email(first, last),
        **SEEDED,
    }


def _dimension_rows(seed: int, sizes: Sizes, start: dt.datetime) -> dict[str, list[dict]]:
    return {
        "address": [_address(seed, n) for n in range(1, sizes.addresses + 1)],
        "counterparty": [_counterparty(seed, n, sizes) for n in range(1, sizes.counterparties + 1)],
        "currency": [
            {"currency_id": n, "currency_code": code, **SEEDED}
            for n, code in enumerate(CURRENCIES, 1)
        ],
        "department": [_department(seed, n) for n in range(1, sizes.departments + 1)],
        "design": [_design(seed, n, start) for n in range(1, sizes.designs + 1)],
        "staff": [_staff(seed, n, sizes) for n in range(1, sizes.staff + 1)],
        "payment_type": [
            {"payment_type_id": n, "payment_type_name": kind, **SEEDED}
            for n, kind in enumerate(PaymentTypeName.enums, 1)
        ],
    }


# r(n, k): a uniform [0, 1) value for row n and salt k, derived by hashing (no random stream)
_RANDOM_FN = """
CREATE FUNCTION pg_temp.r(n bigint, k int) RETURNS float8 LANGUAGE sql IMMUTABLE AS
$$ SELECT (hashint8extended(n, k) & 9007199254740991)::float8 / 9007199254740992.0 $$
"""

# business day d (0-based) after the Monday :monday, at a time of day inside 09:00-17:00
_WORKING_STAMP = """(
  CAST(:monday AS timestamp)
  + ((({d}) / 5) * 7 + mod({d}, 5)) * interval '1 day'
  + interval '9 hours' + floor(pg_temp.r(g.n, :seed * 100 + {k}) * 28800000) * interval '1 ms'
)"""

_ORDERS = {
    "sales_order": """
INSERT INTO sales_order (sales_order_id, created_at, last_updated, design_id, staff_id,
  counterparty_id, units_sold, unit_price, currency_id, agreed_delivery_date,
  agreed_payment_date, agreed_delivery_location_id)
SELECT n, c, {last_updated}, 1 + floor(pg_temp.r(n, :seed * 100 + 3) * :designs)::int,
  1 + floor(pg_temp.r(n, :seed * 100 + 4) * :staff)::int,
  1 + floor(pg_temp.r(n, :seed * 100 + 5) * :counterparties)::int,
  1000 + floor(pg_temp.r(n, :seed * 100 + 6) * 99000)::int,
  round((2 + pg_temp.r(n, :seed * 100 + 7) * 2)::numeric, 2),
  {currency},
  to_char(c::date + 2 + floor(pg_temp.r(n, :seed * 100 + 9) * 728)::int, 'YYYY-MM-DD'),
  to_char(c::date + floor(pg_temp.r(n, :seed * 100 + 10) * 60)::int, 'YYYY-MM-DD'),
  1 + floor(pg_temp.r(n, :seed * 100 + 11) * :addresses)::int
FROM (SELECT g.n, {stamp} AS c FROM generate_series(1, :count) AS g(n)) AS o
""",
    "purchase_order": """
INSERT INTO purchase_order (purchase_order_id, created_at, last_updated, staff_id,
  counterparty_id, item_code, item_quantity, item_unit_price, currency_id, agreed_delivery_date,
  agreed_payment_date, agreed_delivery_location_id)
SELECT n, c, {last_updated}, 1 + floor(pg_temp.r(n, :seed * 100 + 23) * :staff)::int,
  1 + floor(pg_temp.r(n, :seed * 100 + 24) * :counterparties)::int,
  upper(substr(md5(n::text || ':' || :seed), 1, 7)),
  1 + floor(pg_temp.r(n, :seed * 100 + 26) * 1000)::int,
  round((1 + pg_temp.r(n, :seed * 100 + 27) * 999)::numeric, 2),
  {currency},
  to_char(c::date + 2 + floor(pg_temp.r(n, :seed * 100 + 29) * 728)::int, 'YYYY-MM-DD'),
  to_char(c::date + floor(pg_temp.r(n, :seed * 100 + 30) * 60)::int, 'YYYY-MM-DD'),
  1 + floor(pg_temp.r(n, :seed * 100 + 31) * :addresses)::int
FROM (SELECT g.n, {stamp} AS c FROM generate_series(1, :count) AS g(n)) AS o
""",
}

# most rows are never updated; some are updated days later; some share one bulk stamp
_LAST_UPDATED = """least(CAST(:end AS timestamp), CASE
  WHEN pg_temp.r(n, :seed * 100 + {k}) < 0.65 THEN c
  WHEN pg_temp.r(n, :seed * 100 + {k}) < 0.80
    THEN c + floor(pg_temp.r(n, :seed * 100 + {k} + 1) * 1728000000) * interval '1 ms'
  ELSE date_trunc('quarter', c) + interval '3 months 14:20:49.962' END)"""

_CURRENCY = """CASE WHEN pg_temp.r(n, :seed * 100 + {k}) < 0.5 THEN 1
  WHEN pg_temp.r(n, :seed * 100 + {k}) < 0.8 THEN 2 ELSE 3 END"""

_TRANSACTIONS = """
INSERT INTO "transaction" (transaction_id, transaction_type, sales_order_id, purchase_order_id,
  created_at, last_updated)
SELECT row_number() OVER (ORDER BY created_at, kind DESC, id), CAST(kind AS "TransactionType"),
  sales_order_id, purchase_order_id, created_at, created_at
FROM (SELECT 'SALE' AS kind, sales_order_id AS id, sales_order_id, NULL::int AS purchase_order_id,
        created_at FROM sales_order
      UNION ALL
      SELECT 'PURCHASE', purchase_order_id, NULL, purchase_order_id, created_at
        FROM purchase_order) AS t
"""

# one payment per transaction; paid ones were updated when they were paid
_PAYMENTS = """
INSERT INTO payment (payment_id, created_at, last_updated, transaction_id, counterparty_id,
  payment_amount, currency_id, payment_type_id, paid, payment_date, company_ac_number,
  counterparty_ac_number)
SELECT n, created_at,
  CASE WHEN paid THEN least(CAST(:end AS timestamp), greatest(created_at, pay_date
    + interval '10 hours' + floor(pg_temp.r(n, :seed * 100 + 41) * 25200000) * interval '1 ms'))
  ELSE created_at END,
  n, counterparty_id, amount, currency_id,
  CASE WHEN kind = 'SALE' THEN 1 ELSE 3 END
    + CASE WHEN pg_temp.r(n, :seed * 100 + 42) < 0.05 THEN 1 ELSE 0 END,
  paid, to_char(pay_date, 'YYYY-MM-DD'),
  10000000 + floor(pg_temp.r(n, :seed * 100 + 43) * 89999999)::int,
  10000000 + floor(pg_temp.r(n, :seed * 100 + 44) * 89999999)::int
FROM (
  SELECT t.transaction_id AS n, t.transaction_type::text AS kind, t.created_at,
    coalesce(s.counterparty_id, p.counterparty_id) AS counterparty_id,
    coalesce(s.currency_id, p.currency_id) AS currency_id,
    least(99999999.99, coalesce(s.units_sold * s.unit_price,
                                 p.item_quantity * p.item_unit_price)) AS amount,
    t.created_at::date + floor(pg_temp.r(t.transaction_id, :seed * 100 + 40) * 30)::int
      AS pay_date,
    t.created_at::date + floor(pg_temp.r(t.transaction_id, :seed * 100 + 40) * 30)::int
      < CAST(:end AS date) - 3 AS paid
  FROM "transaction" AS t
  LEFT JOIN sales_order AS s USING (sales_order_id)
  LEFT JOIN purchase_order AS p USING (purchase_order_id)
) AS x
"""


def _monday_before(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def create_source_schema(conn: Connection) -> None:
    """The totesys DDL as Prisma made it, without foreign keys (added after the fill)."""
    PaymentTypeName.create(conn, checkfirst=True)
    TransactionType.create(conn, checkfirst=True)
    for table in SOURCE.sorted_tables:
        conn.execute(CreateTable(table, include_foreign_key_constraints=[]))
    _PRISMA.create_all(conn)


def add_foreign_keys(conn: Connection) -> None:
    for table in SOURCE.sorted_tables:
        for constraint in table.foreign_key_constraints:
            conn.execute(AddConstraint(constraint))


def generate_source(
    conn: Connection, sizes: Sizes | None = None, seed: int = 0, end: dt.datetime = HISTORY_END
) -> None:
    """Create and fill the totesys schema in the database `conn` points at."""
    sizes = sizes or Sizes.for_scale(1)
    start = end - dt.timedelta(days=HISTORY_DAYS)
    monday = _monday_before(start.date())
    business_days = (end.date() - monday).days * 5 // 7 - 1
    conn.execute(text("SET LOCAL synchronous_commit = off"))
    create_source_schema(conn)
    conn.execute(text(_RANDOM_FN))
    for name, rows in _dimension_rows(seed, sizes, start).items():
        conn.execute(insert(SOURCE.tables[name]).values(rows))
    params = {
        "seed": seed,
        "end": end,
        "monday": monday,
        "designs": sizes.designs,
        "staff": sizes.staff,
        "counterparties": sizes.counterparties,
        "addresses": sizes.addresses,
    }
    for table, count, k in (
        ("sales_order", sizes.sales_orders, 0),
        ("purchase_order", sizes.purchase_orders, 20),
    ):
        day = f"floor((g.n - 1) * {business_days}::float8 / :count)::int"
        sql = _ORDERS[table].format(
            stamp=_WORKING_STAMP.format(d=day, k=k + 1),
            last_updated=_LAST_UPDATED.format(k=k + 12),
            currency=_CURRENCY.format(k=k + 8),
        )
        conn.execute(text(sql), {**params, "count": count})
    conn.execute(text(_TRANSACTIONS))
    conn.execute(text(_PAYMENTS), params)
    add_foreign_keys(conn)
    for table in SOURCE.sorted_tables:  # the application's next ids follow the history
        key = table.primary_key.columns[0]
        sequence = func.pg_get_serial_sequence(_quoted(conn, table.name), key.name)
        conn.execute(select(func.setval(sequence, select(func.max(key)).scalar_subquery())))
    conn.execute(text("DROP FUNCTION pg_temp.r(bigint, int)"))
    conn.execute(
        insert(_PRISMA.tables["_prisma_migrations"]).values(
            id="7e0c1d7a-4a50-4c39-9e07-6a41d3b7e2a1",
            checksum="0" * 64,
            finished_at=SEED_STAMP,
            migration_name="20221103_init",
            started_at=SEED_STAMP,
        )
    )


def _quoted(conn: Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote(name)
