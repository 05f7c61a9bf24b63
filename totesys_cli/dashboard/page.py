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

import plotly.graph_objects as go

from totesys_cli.dashboard.queries import Filters

Results = dict[str, list[dict[str, Any]]]

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")
STATUS_COLOURS = {"Paid": "#2ca02c", "Due": "#1f77b4", "Overdue": "#d62728"}
HEIGHT = 360  # pixels, the least a chart gets
FLOWS = {"SALE": "Money in (sales)", "PURCHASE": "Money out (purchases)"}


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    figure: go.Figure


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


def _age(seconds: float) -> str:
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
    age = (row["checked_at"] - as_of).total_seconds()
    runs = f"{count(row['runs'])} run{'s' if row['runs'] != 1 else ''}"
    return f"Data as of {as_of:%Y-%m-%d %H:%M} UTC ({_age(age)} ago), {runs} loaded"


# ---------------------------------------------------------------- charts


def _colours(currencies: list[str]) -> dict[str, str]:
    return {c: PALETTE[i % len(PALETTE)] for i, c in enumerate(currencies)}


def _number(value: Any) -> Any:
    return float(value) if isinstance(value, Decimal) else value


def _layout(figure: go.Figure, **layout: Any) -> go.Figure:
    figure.update_layout(
        **{
            "template": "plotly_white",
            "height": HEIGHT,
            "margin": {"l": 10, "r": 10, "t": 10, "b": 10},
            "legend": {"orientation": "h", "y": -0.15},
            **layout,
        }
    )
    if not figure.data:
        figure.add_annotation(
            text="Nothing for these filters", showarrow=False, font={"size": 16}, x=0.5, y=0.5
        )
        figure.update_xaxes(visible=False)
        figure.update_yaxes(visible=False)
    return figure


def _per_currency(
    rows: list[dict[str, Any]],
    label: Callable[[dict[str, Any]], str],
    value: str,
    colours: dict[str, str],
    horizontal: bool = True,
) -> go.Figure:
    """One bar series per currency: amounts in different currencies are never added."""
    figure = go.Figure()
    for currency in dict.fromkeys(r["currency"] for r in rows):
        mine = [r for r in rows if r["currency"] == currency]
        labels = [label(r) for r in mine]
        values = [_number(r[value]) for r in mine]
        if horizontal:
            x, y, hover = values, labels, f"%{{y}}<br>{currency} %{{x:,.2f}}<extra></extra>"
        else:
            x, y, hover = labels, values, f"%{{x}}<br>{currency} %{{y:,.2f}}<extra></extra>"
        figure.add_bar(
            name=currency,
            x=x,
            y=y,
            orientation="h" if horizontal else "v",
            marker_color=colours.get(currency),
            hovertemplate=hover,
        )
    if not horizontal:
        return _layout(figure, barmode="group")
    # a bar row per label, each tall enough to keep its name readable
    labels = {label(r) for r in rows}
    return _layout(
        figure,
        barmode="group",
        yaxis={"autorange": "reversed"},
        height=max(HEIGHT, 20 * len(labels) + 90),
    )


def _by_month(rows: list[dict[str, Any]], value: str, colours: dict[str, str]) -> go.Figure:
    figure = go.Figure()
    for currency in dict.fromkeys(r["currency"] for r in rows):
        mine = [r for r in rows if r["currency"] == currency]
        x = [r["month"].isoformat() for r in mine]
        y = [_number(r[value]) for r in mine]
        if value == "units":  # a count, so the currencies stack to the month's total
            figure.add_bar(name=currency, x=x, y=y, marker_color=colours.get(currency))
        else:
            figure.add_scatter(
                name=currency,
                x=x,
                y=y,
                mode="lines+markers",
                line_color=colours.get(currency),
                hovertemplate=f"%{{x|%b %Y}}<br>{currency} %{{y:,.2f}}<extra></extra>",
            )
    return _layout(figure, barmode="stack", xaxis={"type": "date"})


def _payments(rows: list[dict[str, Any]]) -> go.Figure:
    figure = go.Figure()
    x = [[FLOWS.get(r["transaction_type"], r["transaction_type"]) for r in rows]]
    x.append([r["currency"] for r in rows])
    if rows:
        for status in ("Paid", "Due", "Overdue"):
            figure.add_bar(
                name=status,
                x=x,
                y=[_number(r[status.lower()]) for r in rows],
                marker_color=STATUS_COLOURS[status],
                hovertemplate=f"%{{x}}<br>{status} %{{y:,.2f}}<extra></extra>",
            )
    return _layout(figure, barmode="stack")


def _design(r: dict[str, Any]) -> str:
    return f"{r['design_name']} #{r['design_id']}"


def _designs_by_units(rows: list[dict[str, Any]]) -> go.Figure:
    figure = go.Figure()
    if rows:
        figure.add_bar(
            x=[r["units"] for r in rows],
            y=[_design(r) for r in rows],
            orientation="h",
            marker_color=PALETTE[4],
            hovertemplate="%{y}<br>%{x:,} units<extra></extra>",
        )
    return _layout(figure, yaxis={"autorange": "reversed"})


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


def _ranked(
    results: Results,
    colours: dict[str, str],
    query: str,
    title: str,
    label: Callable[[dict[str, Any]], str],
    value: str = "amount",
    horizontal: bool = True,
) -> Chart:
    """One query's amounts per label, a series per currency; named as its query."""
    figure = _per_currency(results[query], label, value, colours, horizontal)
    return Chart(query.replace("_", "-"), title, figure)


def _sales(results: Results, colours: dict[str, str]) -> Section:
    ranked = functools.partial(_ranked, results, colours)
    by_month = results["sales_by_month"]
    return Section(
        "Sales",
        [
            Chart("revenue-by-month", "Revenue by month", _by_month(by_month, "revenue", colours)),
            Chart("units-by-month", "Units sold by month", _by_month(by_month, "units", colours)),
            ranked(
                "revenue_by_country",
                "Revenue by delivery country (top 10 per currency)",
                itemgetter("country"),
            ),
            ranked("revenue_by_city", "Revenue by delivery city (top 10 per currency)", _place),
            Chart(
                "designs-by-units",
                "Top designs by units sold",
                _designs_by_units(results["designs_by_units"]),
            ),
            ranked("designs_by_revenue", "Top designs by revenue (per currency)", _design),
            ranked("sales_by_staff", "Revenue by sales staff (top 10 per currency)", _staff),
            ranked(
                "sales_by_department",
                "Revenue by department",
                itemgetter("department_name"),
                "revenue",
                horizontal=False,
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
            ranked(
                "spend_by_item",
                "Purchase spend by item (top 10 per currency)",
                itemgetter("item_code"),
            ),
        ],
    )


def _finance(results: Results) -> Section:
    return Section(
        "Finance",
        [
            Chart(
                "payments-by-status",
                "Payments falling due in the range: paid, due and overdue",
                _payments(results["payments_by_status"]),
            ),
        ],
    )


def build(results: Results, filters: Filters) -> Page:
    currencies = [r["currency"] for r in results["currencies"]]
    colours = _colours(currencies)
    span = results["date_span"][0] if results["date_span"] else {}
    return Page(
        filters=filters,
        cards=_cards(results),
        sections=[_sales(results, colours), _purchasing(results, colours), _finance(results)],
        freshness=freshness(results["freshness"]),
        currencies=currencies,
        span=(span.get("first"), span.get("last")),
    )
