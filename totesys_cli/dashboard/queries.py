"""Every figure the dashboard and the report show, each one SQL query on the warehouse.

Sums come from the summaries the load keeps (`schemas.summaries`): per day, currency
and dimension, the latest version of each fact row (the facts keep every version of a
source row, so summing them would count an updated order twice). Money is grouped by currency
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
from totesys_cli.schemas.summaries import summary

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


# Each query sums a summary's rows in the date range per key and currency first (the
# load keeps the summaries from the latest version of each fact row), then names the
# keys from the (small) dimensions. The currency filter keeps one currency's sums.
_CURRENCY = "c.currency_code = COALESCE(CAST(:currency AS varchar), c.currency_code)"


def _summed(name: str, alias: str, keys: tuple[str, ...]) -> str:
    """The summary `name` in the date range (all of it, for a summary over all time),
    summed per keys and currency, as `x` with the currency `c`."""
    found = summary(name)
    sums = ", ".join(f"sum({alias}.{c}) AS {c}" for c in (found.counted, *found.measures))
    grouped = ", ".join(str(n) for n in range(1, len(keys) + 2))
    days = f"WHERE {alias}.{found.day} BETWEEN :start AND :end" if found.day else ""
    return f"""(
  SELECT {"".join(f"{k}, " for k in keys)}{alias}.currency_id, {sums}
  FROM {found.fullname} {alias}
  {days}
  GROUP BY {grouped}
  HAVING sum({alias}.{found.counted}) > 0) x
  JOIN dim_currency c ON c.currency_id = x.currency_id AND {_CURRENCY}"""  # nosec B608


def _from_facts(view: str, alias: str, measures: str, keys: tuple[str, ...]) -> str:
    """As `_summed`, from a fact's latest versions (what no summary holds per day: a
    ranking of designs or items in a date range), as `x` with the currency `c`."""
    grouped = ", ".join(str(n) for n in range(1, len(keys) + 2))
    return f"""(
  SELECT {"".join(f"{k}, " for k in keys)}{alias}.currency_id, count(*) AS orders, {measures}
  FROM {view} {alias}
  WHERE {alias}.created_date BETWEEN :start AND :end
  GROUP BY {grouped}) x
  JOIN dim_currency c ON c.currency_id = x.currency_id AND {_CURRENCY}"""  # nosec B608


SALES_MEASURES = "sum(s.units_sold) AS units, sum(s.units_sold * s.unit_price) AS revenue"
PURCHASE_MEASURES = (
    "sum(p.item_quantity) AS quantity, sum(p.item_quantity * p.item_unit_price) AS spend"
)


def _sales(by: str, *keys: str) -> str:
    return _summed(f"sales_by_day_{by}", "s", keys)


def _purchases(by: str, *keys: str) -> str:
    return _summed(f"purchases_by_day_{by}", "p", keys)


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


def _designs_by_units(summed: str) -> str:
    return f"""
SELECT d.design_id, d.design_name, sum(x.units) AS units, sum(x.orders) AS orders
FROM {summed} {DESIGN}
GROUP BY d.design_id, d.design_name
ORDER BY units DESC, d.design_id
LIMIT :top"""  # nosec B608


def _designs_by_revenue(summed: str) -> str:
    # designs (and staff) are grouped by key: two designs may share a name
    return _top_per_currency(
        "d.design_id, d.design_name",
        "d.design_id, d.design_name",
        f"{summed} {DESIGN}",
        "revenue",
        UNITS,
    )


def _items(ranked: str) -> str:
    """Each currency's TOP items by spend, from `ranked` (the currency `c`'s rows, best
    first): one ranking per currency, so the many items are never sorted whole."""
    return f"""
SELECT t.item_code, c.currency_code AS currency, t.quantity, t.amount,
       row_number() OVER (PARTITION BY c.currency_code
                          ORDER BY t.amount DESC, t.item_code) AS rank
FROM dim_currency c CROSS JOIN LATERAL ({ranked}) t
WHERE {_CURRENCY}
ORDER BY currency, rank"""  # nosec B608


LOCATION = "JOIN dim_location l ON l.location_id = x.agreed_delivery_location_id"
DESIGN = "JOIN dim_design d ON d.design_id = x.design_id"
UNITS = "sum(x.units) AS units"
STAFF = "JOIN dim_staff st ON st.staff_id = x.sales_staff_id"
QUANTITY = "sum(x.quantity) AS quantity"

QUERIES: dict[str, str] = {
    # headline figures
    "sales_totals": f"""
SELECT c.currency_code AS currency, x.orders, x.units, x.revenue
FROM {_sales("staff")}
ORDER BY revenue DESC, currency""",  # nosec B608
    "purchase_totals": f"""
SELECT c.currency_code AS currency, x.orders, x.quantity, x.spend
FROM {_purchases("counterparty")}
ORDER BY spend DESC, currency""",  # nosec B608
    # sales
    "sales_by_month": f"""
SELECT x.month, c.currency_code AS currency, x.units, x.revenue
FROM {_sales("staff", "CAST(date_trunc('month', s.created_date) AS date) AS month")}
ORDER BY month, currency""",  # nosec B608
    "revenue_by_country": _top_per_currency(
        "l.country",
        "l.country",
        f"{_sales('location', 's.agreed_delivery_location_id')} {LOCATION}",
        "revenue",
        UNITS,
    ),
    "revenue_by_city": _top_per_currency(
        "l.city, l.country",
        "l.city, l.country",
        f"{_sales('location', 's.agreed_delivery_location_id')} {LOCATION}",
        "revenue",
        UNITS,
    ),
    "designs_by_units": _designs_by_units(
        _from_facts("fact_sales_order_latest", "s", SALES_MEASURES, ("s.design_id",))
    ),
    "designs_by_revenue": _designs_by_revenue(
        _from_facts("fact_sales_order_latest", "s", SALES_MEASURES, ("s.design_id",))
    ),
    "sales_by_staff": _top_per_currency(
        "st.staff_id, st.first_name || ' ' || st.last_name AS staff_name, st.department_name",
        "st.staff_id, st.first_name, st.last_name, st.department_name",
        f"{_sales('staff', 's.sales_staff_id')} {STAFF}",
        "revenue",
        UNITS,
    ),
    "sales_by_department": f"""
SELECT st.department_name, c.currency_code AS currency, {UNITS}, sum(x.revenue) AS revenue
FROM {_sales("staff", "s.sales_staff_id")} {STAFF}
GROUP BY st.department_name, c.currency_code
ORDER BY currency, revenue DESC, st.department_name""",  # nosec B608
    # purchasing
    "spend_by_counterparty": _top_per_currency(
        "cp.counterparty_legal_name",
        "cp.counterparty_legal_name",
        f"{_purchases('counterparty', 'p.counterparty_id')} "
        "JOIN dim_counterparty cp ON cp.counterparty_id = x.counterparty_id",
        "spend",
        QUANTITY,
    ),
    "spend_by_item": _top_per_currency(
        "x.item_code",
        "x.item_code",
        _from_facts("fact_purchase_orders_latest", "p", PURCHASE_MEASURES, ("p.item_code",)),
        "spend",
        QUANTITY,
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
  SELECT pay.transaction_type, pay.currency_id,
         CASE WHEN pay.paid THEN 'paid' WHEN pay.payment_date >= d.today THEN 'due'
              ELSE 'overdue' END AS status,
         sum(pay.amount) AS amount, sum(pay.payments) AS payments
  FROM {summary("payments_by_day").fullname} pay
  CROSS JOIN (SELECT COALESCE(CAST(:today AS date), CAST(now() AS date)) AS today) d
  WHERE pay.payment_date BETWEEN :start AND :end
  GROUP BY 1, 2, 3
  HAVING sum(pay.payments) > 0) x
JOIN dim_currency c ON c.currency_id = x.currency_id AND {_CURRENCY}
GROUP BY x.transaction_type, c.currency_code
ORDER BY x.transaction_type, currency""",  # nosec B608
    # the filters and freshness
    "currencies": """
SELECT currency_code AS currency, currency_name FROM dim_currency ORDER BY currency_code""",
    "date_span": f"""
SELECT min(created_date) AS first, max(created_date) AS last
FROM {summary("sales_by_day_staff").fullname} WHERE orders > 0""",  # nosec B608
    "freshness": """
SELECT max(snapshot_time) AS data_as_of, max(COALESCE(reloaded_at, loaded_at)) AS last_load,
       count(*) AS runs, CAST(now() AT TIME ZONE 'UTC' AS timestamp) AS checked_at
FROM totesys_meta.loaded_runs""",
}


# The rankings of many labels (designs, items) read summaries over all time for the
# first view (every date); in a date range they read the facts' latest versions, since
# a summary per label and day would be nearly as big as the facts.
WHOLE_RANGE: dict[str, str] = {
    "designs_by_units": _designs_by_units(_summed("sales_by_design", "s", ("s.design_id",))),
    "designs_by_revenue": _designs_by_revenue(_summed("sales_by_design", "s", ("s.design_id",))),
    "spend_by_item": _items(
        f"""SELECT p.item_code, p.quantity, p.spend AS amount
    FROM {summary("purchases_by_item").fullname} p
    WHERE p.currency_id = c.currency_id AND p.orders > 0
    ORDER BY p.spend DESC, p.item_code LIMIT :top"""  # nosec B608
    ),
}


def run(conn: Connection, name: str, filters: Filters | None = None) -> list[dict[str, Any]]:
    """One figure's rows, as dicts."""
    filters = filters or Filters()
    params = filters.params()
    whole = (filters.start, filters.end) == (dt.date.min, dt.date.max)
    query = WHOLE_RANGE[name] if whole and name in WHOLE_RANGE else QUERIES[name]
    sql = text(query)
    used = {k: v for k, v in params.items() if f":{k}" in query}
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
