"""The dashboard's figures: each query against an answer computed here from the source.

The expectations below read the operational source tables directly (not the warehouse)
and compute every figure in Python, with the warehouse's mapping rules applied by hand:
current rows only, money per currency, orders filtered on the day they were created and
payments on the day they fall due.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections import defaultdict
from typing import Any

import pytest
from sqlalchemy import text

from tests.support import Pipeline
from totesys_cli.dashboard import document, queries
from totesys_cli.dashboard import page as pages
from totesys_cli.dashboard.queries import TOP, Filters


def _figure(pipeline: Pipeline, name: str, filters: Filters) -> list[dict[str, Any]]:
    with pipeline.warehouse().connect() as conn:
        return queries.run(conn, name, filters)


# ---------------------------------------------------------------- the source, by hand


class Source:
    """The source's current rows, and every figure computed from them in Python."""

    def __init__(self, pipeline: Pipeline):
        with pipeline.source().connect() as conn:

            def rows(sql: str) -> list[dict[str, Any]]:
                return [dict(r) for r in conn.execute(text(sql)).mappings()]

            def by_id(table: str) -> dict[int, dict[str, Any]]:
                return {r[f"{table}_id"]: r for r in rows(f'SELECT * FROM "{table}"')}

            self.sales = rows("SELECT * FROM sales_order")
            self.purchases = rows("SELECT * FROM purchase_order")
            self.payments = rows("SELECT * FROM payment")
            self.currency = {k: v["currency_code"] for k, v in by_id("currency").items()}
            self.address = by_id("address")
            self.design = by_id("design")
            self.staff = by_id("staff")
            self.department = by_id("department")
            self.counterparty = by_id("counterparty")
            self.transaction = by_id("transaction")

    @staticmethod
    def _inside(day: dt.date, f: Filters) -> bool:
        return f.start <= day <= f.end

    def _orders_in(self, orders: list[dict[str, Any]], f: Filters) -> list[dict[str, Any]]:
        return [
            {**o, "code": self.currency[o["currency_id"]]}
            for o in orders
            if self._inside(o["created_at"].date(), f)
            and f.currency in (None, self.currency[o["currency_id"]])
        ]

    def sales_in(self, f: Filters) -> list[dict[str, Any]]:
        return self._orders_in(self.sales, f)

    def purchases_in(self, f: Filters) -> list[dict[str, Any]]:
        return self._orders_in(self.purchases, f)

    def payments_in(self, f: Filters) -> list[dict[str, Any]]:
        return [
            {**p, "code": self.currency[p["currency_id"]], "due": due}
            for p in self.payments
            if self._inside(due := dt.date.fromisoformat(p["payment_date"]), f)
            and f.currency in (None, self.currency[p["currency_id"]])
        ]


def _sum_by(rows, key, value) -> dict:
    totals: dict = defaultdict(lambda: 0)
    for row in rows:
        totals[key(row)] += value(row)
    return dict(totals)


def _revenue(s: dict[str, Any]) -> decimal.Decimal:
    return s["units_sold"] * s["unit_price"]


def _spend(p: dict[str, Any]) -> decimal.Decimal:
    return p["item_quantity"] * p["item_unit_price"]


def _top(amounts: dict[tuple, Any]) -> list[tuple]:
    """(currency, label..., amount) of the TOP labels per currency, by amount then label."""
    result = []
    for currency in sorted({k[0] for k in amounts}):
        mine = [(k[1:], v) for k, v in amounts.items() if k[0] == currency]
        mine.sort(key=lambda kv: (-kv[1], kv[0]))
        result += [(currency, *label, amount) for label, amount in mine[:TOP]]
    return result


def _staff_name(source: Source, staff_id: int) -> tuple[str, str]:
    staff = source.staff[staff_id]
    department = source.department[staff["department_id"]]["department_name"]
    return f"{staff['first_name']} {staff['last_name']}", department


# ---------------------------------------------------------------- the figures


@pytest.fixture(scope="module")
def source(loaded) -> Source:
    return Source(loaded)


@pytest.fixture(scope="module")
def today(source) -> dt.date:
    """A day amid the unpaid payments' due dates, so some are overdue and some due."""
    unpaid = sorted(
        dt.date.fromisoformat(p["payment_date"]) for p in source.payments if not p["paid"]
    )
    return unpaid[len(unpaid) // 2]


@pytest.fixture(scope="module", params=["everything", "a window in GBP"])
def filters(request, source, today) -> Filters:
    if request.param == "everything":
        return Filters(today=today)
    days = sorted(s["created_at"].date() for s in source.sales)
    return Filters(
        start=days[len(days) // 4],
        end=today + dt.timedelta(days=10),
        currency="GBP",
        today=today,
    )


def test_the_source_gives_every_figure_something_to_show(source, filters):
    assert len(source.sales_in(filters)) > 20
    assert len(source.purchases_in(filters)) > 10
    payments = source.payments_in(filters)
    assert {(p["paid"], p["due"] < filters.today) for p in payments} == {
        (True, True),
        (False, True),  # overdue
        (False, False),  # due
    }


def test_sales_totals(loaded, source, filters):
    rows = source.sales_in(filters)
    expected = {
        code: (
            sum(1 for s in rows if s["code"] == code),
            sum(s["units_sold"] for s in rows if s["code"] == code),
            sum(_revenue(s) for s in rows if s["code"] == code),
        )
        for code in {s["code"] for s in rows}
    }
    actual = {
        r["currency"]: (r["orders"], r["units"], r["revenue"])
        for r in _figure(loaded, "sales_totals", filters)
    }
    assert actual == expected


def test_purchase_totals(loaded, source, filters):
    rows = source.purchases_in(filters)
    actual = {r["currency"]: r["spend"] for r in _figure(loaded, "purchase_totals", filters)}
    assert actual == _sum_by(rows, lambda p: p["code"], _spend)


def test_sales_by_month(loaded, source, filters):
    rows = source.sales_in(filters)

    def month(s):
        return (s["created_at"].date().replace(day=1), s["code"])

    actual = {
        (r["month"], r["currency"]): (r["units"], r["revenue"])
        for r in _figure(loaded, "sales_by_month", filters)
    }
    units = _sum_by(rows, month, lambda s: s["units_sold"])
    revenue = _sum_by(rows, month, _revenue)
    assert actual == {k: (units[k], revenue[k]) for k in units}


def test_revenue_by_delivery_country_and_city(loaded, source, filters):
    rows = source.sales_in(filters)

    def place(s):
        return source.address[s["agreed_delivery_location_id"]]

    by_country = _sum_by(rows, lambda s: (s["code"], place(s)["country"]), _revenue)
    actual = [
        (r["currency"], r["country"], r["amount"])
        for r in _figure(loaded, "revenue_by_country", filters)
    ]
    assert actual == _top(by_country)
    by_city = _sum_by(rows, lambda s: (s["code"], place(s)["city"], place(s)["country"]), _revenue)
    actual = [
        (r["currency"], r["city"], r["country"], r["amount"])
        for r in _figure(loaded, "revenue_by_city", filters)
    ]
    assert actual == _top(by_city)


def test_top_designs_by_units_and_by_revenue(loaded, source, filters):
    rows = source.sales_in(filters)
    units = _sum_by(rows, lambda s: s["design_id"], lambda s: s["units_sold"])
    ranked = sorted(units.items(), key=lambda kv: (-kv[1], kv[0]))
    expected = [(d, source.design[d]["design_name"], u) for d, u in ranked[:TOP]]
    actual = [
        (r["design_id"], r["design_name"], r["units"])
        for r in _figure(loaded, "designs_by_units", filters)
    ]
    assert actual == expected

    def design(s):
        return (s["code"], s["design_id"], source.design[s["design_id"]]["design_name"])

    actual = [
        (r["currency"], r["design_id"], r["design_name"], r["amount"])
        for r in _figure(loaded, "designs_by_revenue", filters)
    ]
    assert actual == _top(_sum_by(rows, design, _revenue))


def test_sales_by_staff_and_department(loaded, source, filters):
    rows = source.sales_in(filters)
    by_staff = _sum_by(
        rows,
        lambda s: (s["code"], s["staff_id"], *_staff_name(source, s["staff_id"])),
        _revenue,
    )
    actual = [
        (r["currency"], r["staff_id"], r["staff_name"], r["department_name"], r["amount"])
        for r in _figure(loaded, "sales_by_staff", filters)
    ]
    assert actual == _top(by_staff)
    by_department = _sum_by(
        rows, lambda s: (s["code"], _staff_name(source, s["staff_id"])[1]), _revenue
    )
    actual = {
        (r["currency"], r["department_name"]): r["revenue"]
        for r in _figure(loaded, "sales_by_department", filters)
    }
    assert actual == by_department


def test_purchase_spend_by_counterparty_and_item(loaded, source, filters):
    rows = source.purchases_in(filters)

    def name(p):
        return source.counterparty[p["counterparty_id"]]["counterparty_legal_name"]

    actual = [
        (r["currency"], r["counterparty_legal_name"], r["amount"])
        for r in _figure(loaded, "spend_by_counterparty", filters)
    ]
    assert actual == _top(_sum_by(rows, lambda p: (p["code"], name(p)), _spend))
    actual = [
        (r["currency"], r["item_code"], r["amount"])
        for r in _figure(loaded, "spend_by_item", filters)
    ]
    assert actual == _top(_sum_by(rows, lambda p: (p["code"], p["item_code"]), _spend))


def test_payments_paid_due_and_overdue(loaded, source, filters):
    today = filters.today
    expected: dict = defaultdict(lambda: [0, 0, 0, 0])
    for p in source.payments_in(filters):
        kind = source.transaction[p["transaction_id"]]["transaction_type"]
        totals = expected[(kind, p["code"])]
        if p["paid"]:
            totals[0] += p["payment_amount"]
        elif p["due"] >= today:
            totals[1] += p["payment_amount"]
        else:
            totals[2] += p["payment_amount"]
            totals[3] += 1
    actual = {
        (r["transaction_type"], r["currency"]): [
            r["paid"],
            r["due"],
            r["overdue"],
            r["overdue_payments"],
        ]
        for r in _figure(loaded, "payments_by_status", filters)
    }
    assert actual == dict(expected)


def test_facts_with_history_are_counted_once(loaded, source, today):
    """Amended orders and paid payments have two fact rows each; every figure counts one."""
    with loaded.warehouse().connect() as conn:
        for fact, key in (
            ("fact_sales_order", "sales_order_id"),
            ("fact_purchase_orders", "purchase_order_id"),
            ("fact_payment", "payment_id"),
        ):
            versions, keys = conn.execute(
                text(f"SELECT count(*), count(DISTINCT {key}) FROM {fact}")
            ).one()
            assert versions > keys, fact
    everything = Filters(today=today)
    orders = sum(r["orders"] for r in _figure(loaded, "sales_totals", everything))
    assert orders == len(source.sales)
    bought = sum(r["orders"] for r in _figure(loaded, "purchase_totals", everything))
    assert bought == len(source.purchases)
    statuses = _figure(loaded, "payments_by_status", everything)
    total = sum(p["payment_amount"] for p in source.payments)
    assert sum(r["paid"] + r["due"] + r["overdue"] for r in statuses) == total


def test_freshness_is_the_newest_loaded_snapshot(loaded):
    asked = dt.datetime.now(dt.UTC).replace(tzinfo=None)  # as the warehouse writes it
    (row,) = _figure(loaded, "freshness", Filters())
    answered = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    assert row["runs"] == 2
    with loaded.warehouse().connect() as conn:
        newest = conn.execute(
            text("SELECT max(snapshot_time) FROM totesys_meta.loaded_runs")
        ).scalar_one()
    assert row["data_as_of"] == newest
    # checked when asked, on the same machine's clock (the load was minutes ago, or more)
    assert asked - dt.timedelta(seconds=1) <= row["checked_at"] <= answered
    assert pages.freshness([row]).startswith(f"Data as of {newest:%Y-%m-%d %H:%M} UTC (")


def test_the_page_shows_money_per_currency_and_every_chart(loaded, source, today):
    with loaded.warehouse().connect() as conn:
        results = queries.run_all(conn, Filters(today=today))
    page = pages.build(results, Filters(today=today))
    revenue = next(c for c in page.cards if c.label == "Revenue")
    expected = _sum_by(source.sales_in(Filters()), lambda s: s["code"], _revenue)
    assert sorted(revenue.lines) == sorted(f"{c} {v:,.2f}" for c, v in expected.items())
    figures = document.figures_json(page)
    assert set(figures) == {c.id for c in page.charts()} and len(figures) == 11
    assert all(figure["data"] for figure in figures.values())
    html = document.render(page, live_seconds=15)
    assert html.count('class="chart"') == 11 and 'src="plotly.min.js"' in html


@pytest.mark.parametrize(
    ("seconds", "said"),
    [
        (30, "under a minute"),
        (600, "10 min"),
        (7199, "119 min"),
        (7200, "2 h"),
        (3 * 86400, "3 days"),
    ],
)
def test_freshness_says_its_age_in_the_unit_that_reads_best(seconds, said):
    loaded_at = dt.datetime(2026, 11, 25, 9, 30)
    row = {
        "data_as_of": loaded_at,
        "checked_at": loaded_at + dt.timedelta(seconds=seconds),
        "runs": 1234,
    }
    assert (
        pages.freshness([row]) == f"Data as of 2026-11-25 09:30 UTC ({said} ago), 1,234 runs loaded"
    )
    assert pages.freshness([{"data_as_of": None}]) == "No run has been loaded yet"


def test_figures_are_computed_once_per_load_and_filters(loaded):
    """An open page refreshes every 15 seconds: between loads that costs one small query.
    (That a new load shows at once is checked in the browser test.)"""
    from sqlalchemy import event

    from totesys_cli.dashboard.reading import Warehouse

    warehouse = Warehouse(loaded.warehouse_db)
    statements: list[str] = []
    event.listen(
        warehouse.engine, "before_cursor_execute", lambda *args: statements.append(args[2])
    )
    first = warehouse.results(Filters())
    assert len(statements) == 1 + len(queries.QUERIES)  # SET TRANSACTION, every query
    again = warehouse.results(Filters())
    assert len(statements) == 1 + len(queries.QUERIES) + 2  # SET TRANSACTION, freshness
    assert {k: v for k, v in again.items() if k != "freshness"} == {
        k: v for k, v in first.items() if k != "freshness"
    }
    warehouse.results(Filters(currency="GBP"))  # other filters: computed
    assert len(statements) == 2 * (1 + len(queries.QUERIES)) + 2
