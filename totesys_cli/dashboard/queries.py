"""Every figure the dashboard and the report show, each one SQL query on the star schema.

Facts are read through the `*_latest` views: the facts keep every version of a source
row, so summing them would count an updated order twice. Money is grouped by currency
and never summed across currencies. Sales and purchases are filtered on the day the
order was created, payments on the day they fall due (`payment_date`); a currency
filter keeps one currency code. All values are bound parameters; the SQL is put
together from this module's own constants only (hence its `nosec B608` marks).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, text

from totesys_cli.schemas.model import relations

# how many rows a ranking keeps per currency
TOP = 10


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


# Each query sums the latest versions in the date range per fact key and currency
# first, then names the keys from the (small) dimensions: the planner cannot see the
# row count through the views' DISTINCT ON, and joining the dimensions after the sums
# keeps a wrong guess cheap. The currency filter keeps one currency's sums.
_CURRENCY = "c.currency_code = COALESCE(CAST(:currency AS varchar), c.currency_code)"


def _summed(view: str, alias: str, measures: str, keys: tuple[str, ...]) -> str:
    """The latest version of each order created in the range, summed per keys and
    currency, as `x` with the currency `c`."""
    grouped = ", ".join(str(n) for n in range(1, len(keys) + 2))
    return f"""(
  SELECT {"".join(f"{k}, " for k in keys)}{alias}.currency_id, count(*) AS orders,
         {measures}
  FROM {view} {alias}
  WHERE {alias}.created_date BETWEEN :start AND :end
  GROUP BY {grouped}) x
  JOIN dim_currency c ON c.currency_id = x.currency_id AND {_CURRENCY}"""  # nosec B608


def _sales(*keys: str) -> str:
    measures = "sum(s.units_sold) AS units, sum(s.units_sold * s.unit_price) AS revenue"
    return _summed("fact_sales_order_latest", "s", measures, keys)


def _purchases(*keys: str) -> str:
    measures = "sum(p.item_quantity) AS quantity, sum(p.item_quantity * p.item_unit_price) AS spend"
    return _summed("fact_purchase_orders_latest", "p", measures, keys)


def _top_per_currency(labels: str, group: str, source: str, measure: str, extra: str) -> str:
    """The TOP labels of each currency by `measure` (ties by the grouped columns)."""
    return f"""
SELECT * FROM (
  SELECT {labels}, c.currency_code AS currency, {extra}, sum(x.{measure}) AS amount,
         row_number() OVER (PARTITION BY c.currency_code
                            ORDER BY sum(x.{measure}) DESC, {group}) AS rank
  FROM {source}
  GROUP BY {group}, c.currency_code) ranked
WHERE rank <= :top
ORDER BY currency, rank"""  # nosec B608


LOCATION = "JOIN dim_location l ON l.location_id = x.agreed_delivery_location_id"
DESIGN = "JOIN dim_design d ON d.design_id = x.design_id"
STAFF = "JOIN dim_staff st ON st.staff_id = x.sales_staff_id"
UNITS = "sum(x.units) AS units"
QUANTITY = "sum(x.quantity) AS quantity"

QUERIES: dict[str, str] = {
    # headline figures
    "sales_totals": f"""
SELECT c.currency_code AS currency, x.orders, x.units, x.revenue
FROM {_sales()}
ORDER BY revenue DESC, currency""",  # nosec B608
    "purchase_totals": f"""
SELECT c.currency_code AS currency, x.orders, x.quantity, x.spend
FROM {_purchases()}
ORDER BY spend DESC, currency""",  # nosec B608
    # sales
    "sales_by_month": f"""
SELECT x.month, c.currency_code AS currency, x.units, x.revenue
FROM {_sales("CAST(date_trunc('month', s.created_date) AS date) AS month")}
ORDER BY month, currency""",  # nosec B608
    "revenue_by_country": _top_per_currency(
        "l.country",
        "l.country",
        f"{_sales('s.agreed_delivery_location_id')} {LOCATION}",
        "revenue",
        UNITS,
    ),
    "revenue_by_city": _top_per_currency(
        "l.city, l.country",
        "l.city, l.country",
        f"{_sales('s.agreed_delivery_location_id')} {LOCATION}",
        "revenue",
        UNITS,
    ),
    "designs_by_units": f"""
SELECT d.design_id, d.design_name, sum(x.units) AS units, sum(x.orders) AS orders
FROM {_sales("s.design_id")} {DESIGN}
GROUP BY d.design_id, d.design_name
ORDER BY units DESC, d.design_id
LIMIT :top""",  # nosec B608
    # designs and staff are grouped by key: two designs may share a name
    "designs_by_revenue": _top_per_currency(
        "d.design_id, d.design_name",
        "d.design_id, d.design_name",
        f"{_sales('s.design_id')} {DESIGN}",
        "revenue",
        UNITS,
    ),
    "sales_by_staff": _top_per_currency(
        "st.staff_id, st.first_name || ' ' || st.last_name AS staff_name, st.department_name",
        "st.staff_id, st.first_name, st.last_name, st.department_name",
        f"{_sales('s.sales_staff_id')} {STAFF}",
        "revenue",
        UNITS,
    ),
    "sales_by_department": f"""
SELECT st.department_name, c.currency_code AS currency, {UNITS}, sum(x.revenue) AS revenue
FROM {_sales("s.sales_staff_id")} {STAFF}
GROUP BY st.department_name, c.currency_code
ORDER BY currency, revenue DESC, st.department_name""",  # nosec B608
    # purchasing
    "spend_by_counterparty": _top_per_currency(
        "cp.counterparty_legal_name",
        "cp.counterparty_legal_name",
        f"{_purchases('p.counterparty_id')} "
        "JOIN dim_counterparty cp ON cp.counterparty_id = x.counterparty_id",
        "spend",
        QUANTITY,
    ),
    "spend_by_item": _top_per_currency(
        "x.item_code", "x.item_code", _purchases("p.item_code"), "spend", QUANTITY
    ),
    # finance: money coming in (sales) and going out (purchases), by whether it is paid,
    # due, or overdue (unpaid and due before today)
    "payments_by_status": f"""
SELECT x.transaction_type, c.currency_code AS currency,
       COALESCE(sum(x.amount) FILTER (WHERE x.status = 'paid'), 0) AS paid,
       COALESCE(sum(x.amount) FILTER (WHERE x.status = 'due'), 0) AS due,
       COALESCE(sum(x.amount) FILTER (WHERE x.status = 'overdue'), 0) AS overdue,
       COALESCE(sum(x.payments) FILTER (WHERE x.status = 'overdue'), 0) AS overdue_payments
FROM (
  SELECT t.transaction_type, pay.currency_id,
         CASE WHEN pay.paid THEN 'paid' WHEN pay.payment_date >= d.today THEN 'due'
              ELSE 'overdue' END AS status,
         sum(pay.payment_amount) AS amount, count(*) AS payments
  FROM fact_payment_latest pay
  JOIN dim_transaction t ON t.transaction_id = pay.transaction_id
  CROSS JOIN (SELECT COALESCE(CAST(:today AS date), CAST(now() AS date)) AS today) d
  WHERE pay.payment_date BETWEEN :start AND :end
  GROUP BY 1, 2, 3) x
JOIN dim_currency c ON c.currency_id = x.currency_id AND {_CURRENCY}
GROUP BY x.transaction_type, c.currency_code
ORDER BY x.transaction_type, currency""",  # nosec B608
    # the filters and freshness
    "currencies": """
SELECT currency_code AS currency, currency_name FROM dim_currency ORDER BY currency_code""",
    # every version of an order has its creation date: no need for the latest here
    "date_span": """
SELECT min(created_date) AS first, max(created_date) AS last FROM fact_sales_order""",
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
    """The tables and views reports read (what `totesys init` creates) that the
    warehouse does not have."""
    sql = "SELECT r FROM unnest(CAST(:names AS text[])) r WHERE to_regclass(r) IS NULL"
    return list(conn.execute(text(sql), {"names": list(relations())}).scalars())


def run_all(
    conn: Connection, filters: Filters, names: tuple[str, ...] = tuple(QUERIES)
) -> dict[str, list[dict[str, Any]]]:
    """The figures (every one by default), in one read-only snapshot so they agree;
    the connection's transaction must not have begun."""
    conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))
    return {name: run(conn, name, filters) for name in names}
