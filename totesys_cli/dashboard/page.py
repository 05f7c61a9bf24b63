"""The dashboard's page: headline figures and plotly charts built from the queries.

One page for the dashboard and the report (`document` renders it either way). Money
is always shown per currency: each currency is its own series, never added to another.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from operator import itemgetter
from typing import Any

from totesys_cli.dashboard import charts
from totesys_cli.dashboard.queries import Filters

Results = dict[str, list[dict[str, Any]]]


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    figure: dict[str, Any]  # plotly.js JSON: data and layout


@dataclass(frozen=True)
class Section:
    title: str
    charts: list[Chart]


@dataclass(frozen=True)
class Card:
    label: str
    lines: list[str]


@dataclass(frozen=True)
class Page:
    filters: Filters
    cards: list[Card]
    sections: list[Section]
    freshness: str
    currencies: list[str]
    span: tuple[dt.date | None, dt.date | None]

    def charts(self) -> list[Chart]:
        return [c for s in self.sections for c in s.charts]


# ---------------------------------------------------------------- formatting


def money(value: Decimal | None) -> str:
    return f"{value or 0:,.2f}"


def count(value: int | None) -> str:
    return f"{value or 0:,}"


def age(seconds: float) -> str:
    """A duration in the unit that reads best."""
    minutes = int(seconds // 60)
    if minutes < 1:
        return "under a minute"
    if minutes < 120:
        return f"{minutes} min"
    hours = minutes // 60
    return f"{hours} h" if hours < 48 else f"{hours // 24} days"


def freshness(rows: list[dict[str, Any]]) -> str:
    row = rows[0] if rows else {}
    as_of = row.get("data_as_of")
    if as_of is None:
        return "No run has been loaded yet"
    elapsed = (row["checked_at"] - as_of).total_seconds()
    runs = f"{count(row['runs'])} run{'s' if row['runs'] != 1 else ''}"
    return f"Data as of {as_of:%Y-%m-%d %H:%M} UTC ({age(elapsed)} ago), {runs} loaded"


def _cards(results: Results) -> list[Card]:
    sales, purchases = results["sales_totals"], results["purchase_totals"]

    def overdue(flow: str) -> list[str]:
        lines = [
            f"{r['currency']} {money(r['overdue'])}"
            for r in results["payments_by_status"]
            if r["transaction_type"] == flow and r["overdue"]
        ]
        return lines or ["none"]

    return [
        Card("Revenue", [f"{r['currency']} {money(r['revenue'])}" for r in sales] or ["none"]),
        Card("Units sold", [count(sum(r["units"] for r in sales))]),
        Card("Sales orders", [count(sum(r["orders"] for r in sales))]),
        Card(
            "Purchase spend",
            [f"{r['currency']} {money(r['spend'])}" for r in purchases] or ["none"],
        ),
        Card("Overdue to collect", overdue("SALE")),
        Card("Overdue to pay", overdue("PURCHASE")),
    ]


def _place(r: dict[str, Any]) -> str:
    return f"{r['city']}, {r['country']}"


def _staff(r: dict[str, Any]) -> str:
    return f"{r['staff_name']} ({r['department_name']})"


def _item(r: dict[str, Any]) -> str:
    return f"item {r['item_code']} ({count(r['quantity'])} units)"


def _ranked(
    results: Results,
    colours: dict[str, str],
    query: str,
    title: str,
    label: Callable[[dict[str, Any]], str],
    value: str = "amount",
) -> Chart:
    """One query's top amounts per label, a panel per currency; named as its query."""
    return Chart(
        query.replace("_", "-"), title, charts.per_currency(results[query], label, value, colours)
    )


def _sales(results: Results, colours: dict[str, str], partial: dict[dt.date, str]) -> Section:
    ranked = functools.partial(_ranked, results, colours)
    by_month = results["sales_by_month"]
    return Section(
        "Sales",
        [
            Chart(
                "revenue-by-month",
                "Revenue by month",
                charts.by_month(by_month, "revenue", colours, partial),
            ),
            Chart(
                "units-by-month",
                "Units sold by month",
                charts.by_month(by_month, "units", colours, partial),
            ),
            ranked(
                "revenue_by_country",
                "Revenue by delivery country (top 10 per currency)",
                itemgetter("country"),
            ),
            ranked("revenue_by_city", "Revenue by delivery city (top 10 per currency)", _place),
            Chart(
                "designs-by-units",
                "Top designs by units sold",
                charts.designs_by_units(results["designs_by_units"]),
            ),
            ranked(
                "designs_by_revenue", "Top designs by revenue (top 10 per currency)", charts.design
            ),
            ranked("sales_by_staff", "Revenue by sales staff (top 10 per currency)", _staff),
            Chart(
                "sales-by-department",
                "Revenue by department",
                charts.grouped(
                    results["sales_by_department"],
                    itemgetter("department_name"),
                    "revenue",
                    colours,
                ),
            ),
        ],
    )


def _purchasing(results: Results, colours: dict[str, str]) -> Section:
    ranked = functools.partial(_ranked, results, colours)
    return Section(
        "Purchasing",
        [
            ranked(
                "spend_by_counterparty",
                "Purchase spend by counterparty (top 10 per currency)",
                itemgetter("counterparty_legal_name"),
            ),
            ranked("spend_by_item", "Purchase spend by item (top 10 per currency)", _item),
        ],
    )


def _finance(results: Results) -> Section:
    return Section(
        "Finance",
        [
            Chart(
                "payments-by-status",
                "Payments falling due in the range: paid, due and overdue",
                charts.payments(results["payments_by_status"]),
            ),
        ],
    )


def build(results: Results, filters: Filters) -> Page:
    currencies = [r["currency"] for r in results["currencies"]]
    colours = charts.colours_for(currencies)
    found = results["date_span"][0] if results["date_span"] else {}
    span = (found.get("first"), found.get("last"))
    partial = charts.partial_months(filters, span)
    return Page(
        filters=filters,
        cards=_cards(results),
        sections=[
            _sales(results, colours, partial),
            _purchasing(results, colours),
            _finance(results),
        ],
        freshness=freshness(results["freshness"]),
        currencies=currencies,
        span=span,
    )
