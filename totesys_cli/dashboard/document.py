"""The page as HTML: rendered live (the dashboard: a filter form, plotly.js from the
server, figures refreshed in place) or standalone (the report: plotly.js inlined, so
the file opens with no network)."""

from __future__ import annotations

import datetime as dt
import html
import json
from typing import Any

import plotly.io as pio

from totesys_cli.dashboard.page import Page

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


_SCRIPT_SAFE = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


def _script_json(value: Any) -> str:
    """JSON safe inside a <script> element: no label can close the element, open a
    comment (`<!--` makes the parser swallow the rest of the page) or end a line."""
    return json.dumps(value).translate(_SCRIPT_SAFE)


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
