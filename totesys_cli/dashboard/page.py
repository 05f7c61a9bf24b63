"""The dashboard page and the report: headline figures and plotly charts from the queries.

One page, rendered two ways: live (the dashboard: a filter form, plotly.js from the
server, figures refreshed in place) and standalone (the report: plotly.js inlined, so
the file opens with no network). Money is always shown per currency: each currency is
its own series, never added to another.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio

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


def build(results: Results, filters: Filters) -> Page:
    currencies = [r["currency"] for r in results["currencies"]]
    colours = _colours(currencies)
    sales, purchases = results["sales_totals"], results["purchase_totals"]
    statuses = results["payments_by_status"]

    def overdue(flow: str) -> list[str]:
        lines = [
            f"{r['currency']} {money(r['overdue'])}"
            for r in statuses
            if r["transaction_type"] == flow and r["overdue"]
        ]
        return lines or ["none"]

    cards = [
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

    def place(r: dict[str, Any]) -> str:
        return f"{r['city']}, {r['country']}"

    def staff(r: dict[str, Any]) -> str:
        return f"{r['staff_name']} ({r['department_name']})"

    sections = [
        Section(
            "Sales",
            [
                Chart(
                    "revenue-by-month",
                    "Revenue by month",
                    _by_month(results["sales_by_month"], "revenue", colours),
                ),
                Chart(
                    "units-by-month",
                    "Units sold by month",
                    _by_month(results["sales_by_month"], "units", colours),
                ),
                Chart(
                    "revenue-by-country",
                    "Revenue by delivery country (top 10 per currency)",
                    _per_currency(
                        results["revenue_by_country"], lambda r: r["country"], "amount", colours
                    ),
                ),
                Chart(
                    "revenue-by-city",
                    "Revenue by delivery city (top 10 per currency)",
                    _per_currency(results["revenue_by_city"], place, "amount", colours),
                ),
                Chart(
                    "designs-by-units",
                    "Top designs by units sold",
                    _designs_by_units(results["designs_by_units"]),
                ),
                Chart(
                    "designs-by-revenue",
                    "Top designs by revenue (per currency)",
                    _per_currency(results["designs_by_revenue"], _design, "amount", colours),
                ),
                Chart(
                    "sales-by-staff",
                    "Revenue by sales staff (top 10 per currency)",
                    _per_currency(results["sales_by_staff"], staff, "amount", colours),
                ),
                Chart(
                    "sales-by-department",
                    "Revenue by department",
                    _per_currency(
                        results["sales_by_department"],
                        lambda r: r["department_name"],
                        "revenue",
                        colours,
                        horizontal=False,
                    ),
                ),
            ],
        ),
        Section(
            "Purchasing",
            [
                Chart(
                    "spend-by-counterparty",
                    "Purchase spend by counterparty (top 10 per currency)",
                    _per_currency(
                        results["spend_by_counterparty"],
                        lambda r: r["counterparty_legal_name"],
                        "amount",
                        colours,
                    ),
                ),
                Chart(
                    "spend-by-item",
                    "Purchase spend by item (top 10 per currency)",
                    _per_currency(
                        results["spend_by_item"], lambda r: r["item_code"], "amount", colours
                    ),
                ),
            ],
        ),
        Section(
            "Finance",
            [
                Chart(
                    "payments-by-status",
                    "Payments falling due in the range: paid, due and overdue",
                    _payments(statuses),
                ),
            ],
        ),
    ]
    span = results["date_span"][0] if results["date_span"] else {}
    return Page(
        filters=filters,
        cards=cards,
        sections=sections,
        freshness=freshness(results["freshness"]),
        currencies=currencies,
        span=(span.get("first"), span.get("last")),
    )


# ---------------------------------------------------------------- HTML

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0;
       background: #f5f6f8; color: #1d2330; }
header { background: #1d2330; color: #fff; padding: 14px 24px; display: flex;
         flex-wrap: wrap; gap: 12px 24px; align-items: baseline; }
header h1 { font-size: 20px; margin: 0; }
#freshness { color: #c6cbd6; font-size: 14px; }
form, .range { padding: 12px 24px; background: #fff; border-bottom: 1px solid #dde1e8;
               display: flex; flex-wrap: wrap; gap: 12px; align-items: end; font-size: 14px; }
label { display: flex; flex-direction: column; gap: 4px; }
input, select, button { font: inherit; padding: 4px 8px; }
main { padding: 16px 24px; }
#cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr)); gap: 12px; }
.card { background: #fff; border-radius: 6px; padding: 12px 14px;
        box-shadow: 0 1px 2px rgba(0,0,0,.08); }
.card h3 { margin: 0 0 6px; font-size: 13px; color: #5b6476; font-weight: 600; }
.card p { margin: 0; font-size: 17px; font-variant-numeric: tabular-nums; }
h2 { font-size: 17px; margin: 24px 0 8px; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 12px; }
figure { background: #fff; border-radius: 6px; margin: 0; padding: 10px;
         box-shadow: 0 1px 2px rgba(0,0,0,.08); }
figcaption { font-size: 14px; font-weight: 600; margin-bottom: 4px; }
footer { padding: 16px 24px; font-size: 12px; color: #5b6476; }
"""

SCRIPT = """
const CONFIG = {responsive: true, displaylogo: false};
function draw(figures) {
  for (const [id, figure] of Object.entries(figures)) {
    Plotly.react(id, figure.data, figure.layout, CONFIG);
  }
}
draw(FIGURES);
"""

LIVE = """
async function refresh() {
  try {
    const response = await fetch("figures.json" + window.location.search);
    if (!response.ok) return;
    const update = await response.json();
    document.getElementById("cards").innerHTML = update.cards;
    document.getElementById("freshness").textContent = update.freshness;
    draw(update.figures);
  } catch (error) { /* the next refresh tries again */ }
}
setInterval(refresh, REFRESH_MS);
"""


def _script_json(value: Any) -> str:
    """JSON safe inside a <script> element."""
    return json.dumps(value).replace("</", "<\\/")


def figures_json(page: Page) -> dict[str, Any]:
    return {c.id: json.loads(pio.to_json(c.figure, validate=False)) for c in page.charts()}


def cards_html(page: Page) -> str:
    return "".join(
        f'<div class="card"><h3>{html.escape(card.label)}</h3>'
        + "".join(f"<p>{html.escape(line)}</p>" for line in card.lines)
        + "</div>"
        for card in page.cards
    )


def _date_value(value: dt.date, default: dt.date | None) -> str:
    if value in (dt.date.min, dt.date.max):
        return default.isoformat() if default else ""
    return value.isoformat()


def _form(page: Page) -> str:
    f = page.filters
    options = ['<option value="">All currencies</option>'] + [
        f'<option value="{html.escape(c)}"{" selected" if c == f.currency else ""}>'
        f"{html.escape(c)}</option>"
        for c in page.currencies
    ]
    return (
        '<form id="filters" method="get" action="">'
        f'<label>Orders from<input type="date" id="from" name="from" '
        f'value="{_date_value(f.start, page.span[0])}"></label>'
        f'<label>to<input type="date" id="to" name="to" '
        f'value="{_date_value(f.end, page.span[1])}"></label>'
        f'<label>Currency<select id="currency" name="currency">{"".join(options)}</select></label>'
        '<button type="submit" id="apply">Apply</button>'
        '<a href="report.html" id="report-link" '
        "onclick=\"this.href='report.html'+window.location.search\">Download the report</a>"
        "</form>"
    )


def describe(page: Page) -> str:
    f = page.filters
    start = _date_value(f.start, page.span[0]) or "the first order"
    end = _date_value(f.end, page.span[1]) or "the last order"
    currency = f.currency or "all currencies"
    return f"Orders created from {start} to {end}; payments falling due in that range; {currency}"


def render(page: Page, *, plotly_js: str | None = None, live_seconds: float | None = None) -> str:
    """The whole page. With `plotly_js` the library is inlined (the report, which must
    open offline); without it the page loads it from the server. With `live_seconds`
    the page has the filter form and refreshes its figures in place."""
    library = (
        f"<script>{plotly_js}</script>"
        if plotly_js is not None
        else '<script src="plotly.min.js"></script>'
    )
    controls = (
        _form(page) if live_seconds else f'<div class="range">{html.escape(describe(page))}</div>'
    )
    sections = "".join(
        f"<section><h2>{html.escape(section.title)}</h2><div class='charts'>"
        + "".join(
            f"<figure><figcaption>{html.escape(chart.title)}</figcaption>"
            f'<div class="chart" id="{chart.id}" '
            f'style="height: {chart.figure.layout.height}px"></div></figure>'
            for chart in section.charts
        )
        + "</div></section>"
        for section in page.sections
    )
    live = LIVE.replace("REFRESH_MS", str(int(live_seconds * 1000))) if live_seconds else ""
    generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>totesys: how the business is doing</title>
<style>{STYLE}</style>
{library}
</head><body>
<header><h1>totesys: how the business is doing</h1>
<span id="freshness">{html.escape(page.freshness)}</span></header>
{controls}
<main>
<div id="cards">{cards_html(page)}</div>
{sections}
</main>
<footer>Figures come from the warehouse's latest version of each order and payment.
Money is shown per currency and never added across currencies. Generated {generated}.</footer>
<script>const FIGURES = {_script_json(figures_json(page))};
{SCRIPT}{live}</script>
</body></html>
"""
