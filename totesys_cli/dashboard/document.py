"""The page as HTML: rendered live (the dashboard: a filter form, plotly.js from the
server, figures refreshed in place) or standalone (the report: plotly.js inlined, so
the file opens with no network)."""

from __future__ import annotations

import datetime as dt
import functools
import gzip
import html
import json
from decimal import Decimal
from typing import Any

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
nav { margin-left: auto; display: flex; gap: 16px; font-size: 14px; }
nav a { color: #c6cbd6; }
table { border-collapse: collapse; background: #fff; font-size: 13px; width: 100%;
        box-shadow: 0 1px 2px rgba(0,0,0,.08); }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid #e6e9ef;
         vertical-align: top; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.failed { color: #b42318; font-weight: 600; }
"""

SCRIPT = """
const CONFIG = {responsive: true, displaylogo: false};
function draw(figures) {
  for (const [id, figure] of Object.entries(figures)) {
    Plotly.react(id, figure.data, {template: TEMPLATE, ...figure.layout}, CONFIG);
  }
}
draw(FIGURES);
"""

LIVE = """
async function refresh() {
  try {
    const response = await fetch("UPDATE_URL" + window.location.search);
    if (!response.ok) return;
    const update = await response.json();
    for (const [id, html] of Object.entries(update.html || {})) {
      document.getElementById(id).innerHTML = html;
    }
    document.getElementById("freshness").textContent = update.freshness;
    draw(update.figures);
  } catch (error) { /* the next refresh tries again */ }
}
setInterval(refresh, REFRESH_MS);
"""


NAV = '<nav><a href="./">Business</a><a href="pipeline">Pipeline</a></nav>'

_SCRIPT_SAFE = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


def script_safe(text: str) -> str:
    """JSON made safe inside a <script> element: no label can close the element, open
    a comment (`<!--` makes the parser swallow the rest of the page) or end a line."""
    return text.translate(_SCRIPT_SAFE)


def figures_json(page: Page) -> dict[str, Any]:
    return json.loads(figures_text(page))


@functools.cache
def plotly_js() -> bytes:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs().encode()


@functools.cache
def plotly_js_gzipped() -> bytes:
    return gzip.compress(plotly_js(), compresslevel=9, mtime=0)


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def figures_text(page: Page | Any) -> str:
    """Every chart of a page as one JSON object, chart id -> figure."""
    return json.dumps({c.id: c.figure for c in page.charts()}, default=_plain)


@functools.cache
def template() -> str:
    """plotly's white theme, sent once per page rather than in every figure."""
    import plotly.io as pio

    return json.dumps(pio.templates["plotly_white"].to_plotly_json())


def update_json(freshness: str, html_parts: dict[str, str], figures: str) -> str:
    """What a live page fetches to refresh itself: the freshness line, the HTML of the
    parts that change, and the figures."""
    return (
        f'{{"freshness": {json.dumps(freshness)}, "html": {json.dumps(html_parts)}, '
        f'"figures": {figures}}}'
    )


def cards_html(page: Page | Any) -> str:
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


def charts_html(sections: list[Any]) -> str:
    return "".join(
        f"<section><h2>{html.escape(section.title)}</h2><div class='charts'>"
        + "".join(
            f"<figure><figcaption>{html.escape(chart.title)}</figcaption>"
            f'<div class="chart" id="{chart.id}" '
            f'style="height: {chart.figure["layout"]["height"]}px"></div></figure>'
            for chart in section.charts
        )
        + "</div></section>"
        for section in sections
    )


def shell(
    *,
    title: str,
    freshness: str,
    controls: str,
    main: str,
    footer: str,
    figures: str,
    plotly_js: str | None = None,
    live: tuple[str, float] | None = None,
) -> str:
    """A whole page around its parts. With `plotly_js` the library is inlined (the
    report, which must open offline); without it the page loads it from the server.
    With `live` (the update's URL, seconds) the page refreshes itself in place."""
    library = (
        f"<script>{plotly_js}</script>"
        if plotly_js is not None
        else '<script src="plotly.min.js"></script>'
    )
    refresh = (
        LIVE.replace("UPDATE_URL", live[0]).replace("REFRESH_MS", str(int(live[1] * 1000)))
        if live
        else ""
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{html.escape(title)}</title>
<style>{STYLE}</style>
{library}
</head><body>
<header><h1>{html.escape(title)}</h1>
<span id="freshness">{html.escape(freshness)}</span>{NAV if live else ""}</header>
{controls}
<main>
{main}
</main>
<footer>{footer}</footer>
<script>const TEMPLATE = {template()};
const FIGURES = {script_safe(figures)};
{SCRIPT}{refresh}</script>
</body></html>
"""


def render(
    page: Page,
    *,
    plotly_js: str | None = None,
    live_seconds: float | None = None,
    figures: str | None = None,
) -> str:
    """The business page. With `plotly_js` the library is inlined (the report); with
    `live_seconds` the page has the filter form and refreshes its figures in place.
    `figures` is `figures_text(page)` when the caller has it already."""
    controls = (
        _form(page) if live_seconds else f'<div class="range">{html.escape(describe(page))}</div>'
    )
    generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return shell(
        title="totesys: how the business is doing",
        freshness=page.freshness,
        controls=controls,
        main=f'<div id="cards">{cards_html(page)}</div>\n{charts_html(page.sections)}',
        footer="Figures come from the warehouse's latest version of each order and payment.\n"
        "Money is shown per currency and never added across currencies. "
        f"Generated {generated}.",
        figures=figures if figures is not None else figures_text(page),
        plotly_js=plotly_js,
        live=("figures.json", live_seconds) if live_seconds else None,
    )
