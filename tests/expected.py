"""The star schemas computed independently, in plain SQL over the source database.

Tests compare what the pipeline produced with these, row for row. Nothing here uses
the pipeline's code: currency names are spelled out, dates come from PostgreSQL.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

STAMPS = """{key}, created_at::date AS created_date, created_at::time AS created_time,
  last_updated::date AS last_updated_date, last_updated::time AS last_updated_time"""

QUERIES = {
    "dim_location": """SELECT address_id AS location_id, address_line_1, address_line_2,
        district, city, postal_code, country, phone FROM address""",
    "dim_counterparty": """SELECT c.counterparty_id, c.counterparty_legal_name,
        a.address_line_1, a.address_line_2, a.district, a.city, a.postal_code, a.country,
        a.phone FROM counterparty c JOIN address a ON a.address_id = c.legal_address_id""",
    "dim_staff": """SELECT s.staff_id, s.first_name, s.last_name, d.department_name,
        d.location, s.email_address FROM staff s JOIN department d USING (department_id)""",
    "dim_currency": """SELECT currency_id, currency_code, CASE currency_code
        WHEN 'GBP' THEN 'Pound Sterling' WHEN 'USD' THEN 'US Dollar' WHEN 'EUR' THEN 'Euro'
        END AS currency_name FROM currency""",
    "dim_design": "SELECT design_id, design_name, file_location, file_name FROM design",
    "dim_payment_type": "SELECT payment_type_id, payment_type_name::text FROM payment_type",
    "dim_transaction": """SELECT transaction_id, transaction_type::text, sales_order_id,
        purchase_order_id FROM "transaction" """,
    "fact_sales_order": f"""SELECT {STAMPS.format(key="sales_order_id")}, staff_id,
        counterparty_id, units_sold, unit_price, currency_id, design_id,
        agreed_payment_date::date, agreed_delivery_date::date, agreed_delivery_location_id
        FROM sales_order""",
    "fact_purchase_orders": f"""SELECT {STAMPS.format(key="purchase_order_id")}, staff_id,
        counterparty_id, item_code, item_quantity, item_unit_price, currency_id,
        agreed_delivery_date::date, agreed_payment_date::date, agreed_delivery_location_id
        FROM purchase_order""",
    "fact_payment": f"""SELECT {STAMPS.format(key="payment_id")}, transaction_id,
        counterparty_id, payment_amount, currency_id, payment_type_id, paid,
        payment_date::date FROM payment""",
}

DATES = """
WITH referenced AS (
  SELECT created_at::date AS d FROM sales_order UNION SELECT last_updated::date FROM sales_order
  UNION SELECT agreed_payment_date::date FROM sales_order
  UNION SELECT agreed_delivery_date::date FROM sales_order
  UNION SELECT created_at::date FROM purchase_order
  UNION SELECT last_updated::date FROM purchase_order
  UNION SELECT agreed_payment_date::date FROM purchase_order
  UNION SELECT agreed_delivery_date::date FROM purchase_order
  UNION SELECT created_at::date FROM payment UNION SELECT last_updated::date FROM payment
  UNION SELECT payment_date::date FROM payment)
SELECT d::date AS date_id, extract(year FROM d)::int, extract(month FROM d)::int,
  extract(day FROM d)::int, extract(isodow FROM d)::int, to_char(d, 'FMDay'),
  to_char(d, 'FMMonth'), extract(quarter FROM d)::int
FROM generate_series((SELECT min(d) FROM referenced), (SELECT max(d) FROM referenced),
                     interval '1 day') AS d
"""


# each dimension, and where the facts' rows above hold its key (position in the row)
REFERENCES = {
    "dim_staff": {"fact_sales_order": 5, "fact_purchase_orders": 5},
    "dim_counterparty": {"fact_sales_order": 6, "fact_purchase_orders": 6, "fact_payment": 6},
    "dim_currency": {"fact_sales_order": 9, "fact_purchase_orders": 10, "fact_payment": 8},
    "dim_design": {"fact_sales_order": 10},
    "dim_location": {"fact_sales_order": 13, "fact_purchase_orders": 13},
    "dim_payment_type": {"fact_payment": 9},
    "dim_transaction": {"fact_payment": 5},
}


def dimension(
    table: str,
    current: list[tuple],
    remembered: dict[int, tuple],
    facts: dict[str, set[tuple]],
) -> list[tuple]:
    """A dimension once rows are deleted in the source: the source's rows, and each
    deleted row that a fact version (any, history included) still references, as it
    last was (`remembered`, by key); a deleted row no fact references is gone."""
    present = {row[0] for row in current}
    used = {row[i] for fact, i in REFERENCES.get(table, {}).items() for row in facts[fact]}
    kept = [row for key, row in remembered.items() if key not in present and key in used]
    return sorted(current + kept)


def rows(conn: Connection, table: str) -> list[tuple]:
    """The expected rows of a star table (facts: one per current source version)."""
    sql = DATES if table == "dim_date" else QUERIES[table]
    return sorted(tuple(r) for r in conn.execute(text(sql)))
