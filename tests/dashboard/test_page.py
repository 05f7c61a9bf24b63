"""How the charts are drawn, from given query results: no database needed."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal

from totesys_cli.dashboard import charts, document
from totesys_cli.dashboard import page as pages
from totesys_cli.dashboard.queries import TOP, Filters

CURRENCIES = ["EUR", "GBP", "USD"]
FIRST, LAST = dt.date(2024, 10, 28), dt.date(2026, 10, 28)


def _results() -> pages.Results:
    """Every figure's rows, each currency with its own labels, the data in an order
    unlike the currencies' (as sorting by amount gives)."""
    by_amount = ["USD", "EUR", "GBP"]

    def ranked(name: str, **extra) -> list[dict]:
        return [
            {name: f"{c}-{i}", "currency": c, "amount": Decimal(100 - i), **extra}
            for c in by_amount
            for i in range(TOP)
        ]

    months = [dt.date(2024 + (9 + m) // 12, 1 + (9 + m) % 12, 1) for m in range(25)]
    return {
        "currencies": [{"currency": c, "currency_name": c} for c in CURRENCIES],
        "date_span": [{"first": FIRST, "last": LAST}],
        "freshness": [{"data_as_of": None}],
        "sales_totals": [
            {"currency": c, "orders": 1, "units": 2, "revenue": Decimal(3)} for c in by_amount
        ],
        "purchase_totals": [
            {"currency": c, "orders": 1, "quantity": 2, "spend": Decimal(3)} for c in by_amount
        ],
        "sales_by_month": [
            {"month": m, "currency": c, "units": 5, "revenue": Decimal(2)}
            for m in months
            for c in by_amount
        ],
        "revenue_by_country": ranked("country", units=1),
        "revenue_by_city": [{**r, "country": "X"} for r in ranked("city", units=1)],
        "designs_by_units": [
            {"design_id": i, "design_name": "d", "units": 5, "orders": 2} for i in range(TOP)
        ],
        "designs_by_revenue": [{**r, "design_id": 1} for r in ranked("design_name", units=1)],
        "sales_by_staff": [
            {**r, "staff_id": 1, "department_name": "D"} for r in ranked("staff_name", units=1)
        ],
        "sales_by_department": [
            {"department_name": f"D{i}", "currency": c, "units": 1, "revenue": Decimal(i)}
            for c in by_amount
            for i in range(3)
        ],
        "spend_by_counterparty": ranked("counterparty_legal_name", quantity=1),
        "spend_by_item": ranked("item_code", quantity=1234),
        "payments_by_status": [
            {
                "transaction_type": t,
                "currency": c,
                "paid": 1,
                "due": 2,
                "overdue": 3,
                "overdue_payments": 1,
            }
            for t in ("SALE", "PURCHASE")
            for c in by_amount
        ],
    }


def _figure(page: pages.Page, chart: str) -> dict:
    return next(c.figure for c in page.charts() if c.id == chart)


def test_partial_first_and_last_months_are_marked():
    assert charts.partial_months(Filters(), (FIRST, LAST)) == {
        dt.date(2024, 10, 1): "from 28 Oct 2024 only",
        dt.date(2026, 10, 1): "to 28 Oct 2026 only",
    }
    whole = Filters(start=dt.date(2025, 1, 1), end=dt.date(2025, 3, 31))
    assert charts.partial_months(whole, (FIRST, LAST)) == {}
    one = Filters(start=dt.date(2025, 2, 3), end=dt.date(2025, 2, 20))
    assert charts.partial_months(one, (FIRST, LAST)) == {
        dt.date(2025, 2, 1): "03 to 20 Feb 2025 only"
    }
    assert charts.partial_months(Filters(), (None, None)) == {}

    page = pages.build(_results(), Filters())
    revenue = _figure(page, "revenue-by-month")
    for trace in revenue["data"]:
        symbols = trace["marker"]["symbol"]
        assert symbols[0] == symbols[-1] == "circle-open" and set(symbols[1:-1]) == {"circle"}
    assert "Partial months: Oct 2024" in revenue["layout"]["annotations"][0]["text"]
    units = _figure(page, "units-by-month")
    assert all(t["marker"]["opacity"][0] < 1 for t in units["data"])


def test_each_currency_ranks_its_own_rows_in_its_own_panel():
    page = pages.build(_results(), Filters())
    for chart in ("revenue-by-country", "sales-by-staff", "spend-by-counterparty"):
        figure = _figure(page, chart)
        assert [t["name"] for t in figure["data"]] == CURRENCIES
        assert [len(t["y"]) for t in figure["data"]] == [TOP] * 3  # not 30 rows each
        assert len({t["yaxis"] for t in figure["data"]}) == 3
        domains = [figure["layout"][f"yaxis{n}"]["domain"] for n in ("", "2", "3")]
        assert all(a[0] > b[1] for a, b in itertools.pairwise(domains)), domains


def test_every_chart_lists_the_currencies_in_one_order_and_leaves_room_for_the_toolbar():
    page = pages.build(_results(), Filters())
    for chart in page.charts():
        names = [t.get("name") for t in chart.figure["data"]]
        shown = [n for n in names if n in CURRENCIES]
        assert shown == sorted(shown, key=CURRENCIES.index), chart.id
        assert chart.figure["layout"]["margin"]["t"] >= 30, chart.id


def test_long_labels_are_cut_in_the_middle_and_stay_distinct():
    long = ["A" * 30 + " middle one " + "#1", "A" * 30 + " middle two " + "#1", "short"]
    cut = charts.short_labels(long)
    assert len(set(cut)) == 3 and cut[2] == "short"
    assert all(len(c.rstrip("\u200b")) <= charts.LABEL_CHARACTERS for c in cut)
    assert cut[0].endswith("#1") and "\u2026" in cut[0]


def test_items_are_named_as_items_and_the_figures_are_plain_json():
    page = pages.build(_results(), Filters())
    items = _figure(page, "spend-by-item")
    assert items["data"][0]["customdata"][0] == "item EUR-0 (1,234 units)"
    figures = document.figures_json(page)
    assert set(figures) == {c.id for c in page.charts()}
    assert figures["revenue-by-month"]["data"][0]["y"][0] == 2.0  # a Decimal, as a number
