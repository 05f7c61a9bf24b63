"""Every figure the dashboard and the report show, each one SQL query on the star schema.

Facts are read through the `*_latest` views: the facts keep every version of a source
row, so summing them would count an updated order twice. Money is grouped by currency
and never summed across currencies. Sales and purchases are filtered on the day the
order was created, payments on the day they fall due (`payment_date`); a currency
filter keeps one currency code. All values are bound parameters.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, text

# how many rows a ranking keeps per currency
TOP = 10
# what the queries read
RELATIONS = (
    "fact_sales_order_latest",
    "fact_purchase_orders_latest",
    "fact_payment_latest",
    "dim_currency",
    "dim_location",
    "dim_design",
    "dim_staff",
    "dim_counterparty",
    "dim_transaction",
    "totesys_meta.loaded_runs",
)


@dataclass(frozen=True)
class Filters:
    start: dt.date = dt.date.min
    end: dt.date = dt.date.max
    currency: str | None = None  # a currency code, or None for every currency
    today: dt.date | None = None  # what "overdue" is measured against; None: the warehouse's

    def params(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "currency": self.currency,
            "today": self.today,
            "top": TOP,
        }


_CURRENCY = "c.currency_code = COALESCE(CAST(:currency AS varchar), c.currency_code)"


def _sales(*joins: str) -> str:
    return f"""
  FROM fact_sales_order_latest s
  JOIN dim_currency c ON c.currency_id = s.currency_id {" ".join(joins)}
  WHERE s.created_date BETWEEN :start AND :end AND {_CURRENCY}"""


def _purchases(*joins: str) -> str:
    return f"""
  FROM fact_purchase_orders_latest p
  JOIN dim_currency c ON c.currency_id = p.currency_id {" ".join(joins)}
  WHERE p.created_date BETWEEN :start AND :end AND {_CURRENCY}"""


def _top_per_currency(columns: str, group: str, facts: str, measure: str) -> str:
    """The TOP rows of each currency by `measure` (ties by the first grouped column)."""
    return f"""
SELECT * FROM (
  SELECT {columns}, c.currency_code AS currency, {measure} AS amount,
         row_number() OVER (PARTITION BY c.currency_code
                            ORDER BY {measure} DESC, {group}) AS rank
  {facts}
  GROUP BY {group}, c.currency_code) ranked
WHERE rank <= :top
ORDER BY currency, rank"""  # nosec B608


REVENUE = "sum(s.units_sold * s.unit_price)"
UNITS = "sum(s.units_sold) AS units"
SPEND = "sum(p.item_quantity * p.item_unit_price)"
QUANTITY = "sum(p.item_quantity) AS quantity"
LOCATION = "JOIN dim_location l ON l.location_id = s.agreed_delivery_location_id"
DESIGN = "JOIN dim_design d ON d.design_id = s.design_id"
STAFF = "JOIN dim_staff st ON st.staff_id = s.sales_staff_id"

QUERIES: dict[str, str] = {
    # headline figures
    "sales_totals": f"""
SELECT c.currency_code AS currency, count(*) AS orders, {UNITS}, {REVENUE} AS revenue
{_sales()}
GROUP BY c.currency_code
ORDER BY revenue DESC, currency""",
    "purchase_totals": f"""
SELECT c.currency_code AS currency, count(*) AS orders, {QUANTITY}, {SPEND} AS spend
{_purchases()}
GROUP BY c.currency_code
ORDER BY spend DESC, currency""",
    # sales
    "sales_by_month": f"""
SELECT CAST(date_trunc('month', s.created_date) AS date) AS month,
       c.currency_code AS currency, {UNITS}, {REVENUE} AS revenue
{_sales()}
GROUP BY 1, 2
ORDER BY month, currency""",
    "revenue_by_country": _top_per_currency(
        f"l.country, {UNITS}", "l.country", _sales(LOCATION), REVENUE
    ),
    "revenue_by_city": _top_per_currency(
        f"l.city, l.country, {UNITS}", "l.city, l.country", _sales(LOCATION), REVENUE
    ),
    "designs_by_units": f"""
SELECT d.design_id, d.design_name, {UNITS}, count(*) AS orders
{_sales(DESIGN)}
GROUP BY d.design_id, d.design_name
ORDER BY units DESC, d.design_id
LIMIT :top""",
    # designs and staff are grouped by key: two designs may share a name
    "designs_by_revenue": _top_per_currency(
        f"d.design_id, d.design_name, {UNITS}",
        "d.design_id, d.design_name",
        _sales(DESIGN),
        REVENUE,
    ),
    "sales_by_staff": _top_per_currency(
        f"st.staff_id, st.first_name || ' ' || st.last_name AS staff_name, st.department_name, "
        f"{UNITS}",
        "st.staff_id, st.first_name, st.last_name, st.department_name",
        _sales(STAFF),
        REVENUE,
    ),
    "sales_by_department": f"""
SELECT st.department_name, c.currency_code AS currency, {UNITS}, {REVENUE} AS revenue
{_sales(STAFF)}
GROUP BY st.department_name, c.currency_code
ORDER BY currency, revenue DESC, st.department_name""",
    # purchasing
    "spend_by_counterparty": _top_per_currency(
        f"cp.counterparty_legal_name, {QUANTITY}",
        "cp.counterparty_legal_name",
        _purchases("JOIN dim_counterparty cp ON cp.counterparty_id = p.counterparty_id"),
        SPEND,
    ),
    "spend_by_item": _top_per_currency(
        f"p.item_code, {QUANTITY}", "p.item_code", _purchases(), SPEND
    ),
    # finance: money coming in (sales) and going out (purchases), by whether it is paid,
    # due, or overdue (unpaid and due before today)
    "payments_by_status": f"""
SELECT t.transaction_type, c.currency_code AS currency,
       COALESCE(sum(pay.payment_amount) FILTER (WHERE pay.paid), 0) AS paid,
       COALESCE(sum(pay.payment_amount)
                FILTER (WHERE NOT pay.paid AND pay.payment_date >= d.today), 0) AS due,
       COALESCE(sum(pay.payment_amount)
                FILTER (WHERE NOT pay.paid AND pay.payment_date < d.today), 0) AS overdue,
       count(*) FILTER (WHERE NOT pay.paid AND pay.payment_date < d.today) AS overdue_payments
  FROM fact_payment_latest pay
  JOIN dim_currency c ON c.currency_id = pay.currency_id
  JOIN dim_transaction t ON t.transaction_id = pay.transaction_id
  CROSS JOIN (SELECT COALESCE(CAST(:today AS date), CAST(now() AS date)) AS today) d
  WHERE pay.payment_date BETWEEN :start AND :end AND {_CURRENCY}
GROUP BY t.transaction_type, c.currency_code
ORDER BY t.transaction_type, currency""",  # nosec B608
    # the filters and freshness
    "currencies": """
SELECT currency_code AS currency, currency_name FROM dim_currency ORDER BY currency_code""",
    "date_span": """
SELECT min(created_date) AS first, max(created_date) AS last FROM fact_sales_order_latest""",
    "freshness": """
SELECT max(snapshot_time) AS data_as_of, max(COALESCE(reloaded_at, loaded_at)) AS last_load,
       count(*) AS runs, CAST(now() AT TIME ZONE 'UTC' AS timestamp) AS checked_at
FROM totesys_meta.loaded_runs""",
}


def run(conn: Connection, name: str, filters: Filters | None = None) -> list[dict[str, Any]]:
    """One figure's rows, as dicts."""
    params = (filters or Filters()).params()
    sql = text(QUERIES[name])
    used = {k: v for k, v in params.items() if f":{k}" in QUERIES[name]}
    return [dict(row) for row in conn.execute(sql, used).mappings()]


def missing_relations(conn: Connection) -> list[str]:
    """The tables and views the queries read that the warehouse does not have."""
    sql = "SELECT r FROM unnest(CAST(:names AS text[])) r WHERE to_regclass(r) IS NULL"
    return list(conn.execute(text(sql), {"names": list(RELATIONS)}).scalars())


def run_all(conn: Connection, filters: Filters) -> dict[str, list[dict[str, Any]]]:
    """Every figure, in one read-only transaction so they agree with each other."""
    conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))
    return {name: run(conn, name, filters) for name in QUERIES}
