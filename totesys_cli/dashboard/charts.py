"""The dashboard's charts as plotly.js figures (plain JSON: data and layout).

Building plotly.py figure objects validates every property and costs a third of a
second per page; these are dicts. Money is always per currency: each currency is its
own series or panel, never added to another, and the currencies keep one order (and
one colour) on every chart.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from totesys_cli.dashboard.queries import Filters

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")
STATUS_COLOURS = {"Paid": "#2ca02c", "Due": "#1f77b4", "Overdue": "#d62728"}
HEIGHT = 360  # pixels, the least a chart gets
FLOWS = {"SALE": "Money in (sales)", "PURCHASE": "Money out (purchases)"}

Figure = dict[str, Any]


def colours_for(currencies: list[str]) -> dict[str, str]:
    return {c: PALETTE[i % len(PALETTE)] for i, c in enumerate(currencies)}


def _number(value: Any) -> Any:
    return float(value) if isinstance(value, Decimal) else value


def layout(data: list[dict[str, Any]], **settings: Any) -> Figure:
    """A figure: its traces and layout, the page's defaults under `settings`. The top
    margin leaves room for plotly's toolbar above the plot, never over a bar."""
    figure = {
        "data": data,
        "layout": {
            "height": HEIGHT,
            "margin": {"l": 10, "r": 10, "t": 30, "b": 10},
            "legend": {"orientation": "h", "y": -0.15, "traceorder": "normal"},
            **settings,
        },
    }
    if not data:
        figure["layout"].update(
            annotations=[
                {
                    "text": "Nothing for these filters",
                    "showarrow": False,
                    "font": {"size": 16},
                    "x": 0.5,
                    "y": 0.5,
                    "xref": "paper",
                    "yref": "paper",
                }
            ],
            xaxis={"visible": False},
            yaxis={"visible": False},
        )
    return figure


def _ordered(rows: list[dict[str, Any]], colours: dict[str, str]) -> list[str]:
    """The currencies present, always in one order (the legend's, on every chart)."""
    present = {r["currency"] for r in rows}
    return [c for c in colours if c in present] + sorted(present - set(colours))


LABEL_CHARACTERS = 42  # a longer label is cut on the axis, whole in the hover
ROW_PIXELS = 22
PANEL_GAP = 50  # pixels between two currencies' panels, for the second one's name


def short_labels(labels: list[str]) -> list[str]:
    """Labels cut in the middle (a name's start and its key at the end stay) to fit the
    axis, and kept distinct: two labels cut alike would share one bar."""
    half = (LABEL_CHARACTERS - 1) // 2
    shown: list[str] = []
    for label in labels:
        cut = label if len(label) <= LABEL_CHARACTERS else f"{label[:half]}\u2026{label[-half:]}"
        while cut in shown:
            cut += "\u200b"  # invisible, but another category
        shown.append(cut)
    return shown


def per_currency(
    rows: list[dict[str, Any]],
    label: Callable[[dict[str, Any]], str],
    value: str,
    colours: dict[str, str],
) -> Figure:
    """A ranking per currency, one panel under another, each with its own rows: amounts
    in different currencies are never added, and no currency leaves blank rows in another."""
    shown = _ordered(rows, colours)
    panels = [[r for r in rows if r["currency"] == c] for c in shown]
    plot = sum(ROW_PIXELS * len(p) for p in panels) + PANEL_GAP * max(0, len(panels) - 1)
    height = max(HEIGHT, plot + 70)
    data, settings, notes = [], {}, []
    top = 1.0
    for i, (currency, mine) in enumerate(zip(shown, panels, strict=True)):
        share = ROW_PIXELS * len(mine) / plot
        bottom = max(0.0, top - share)
        suffix = "" if i == 0 else str(i + 1)
        labels = [label(r) for r in mine]
        data.append(
            {
                "type": "bar",
                "orientation": "h",
                "name": currency,
                "x": [_number(r[value]) for r in mine],
                "y": short_labels(labels),
                "customdata": labels,
                "marker": {"color": colours.get(currency)},
                "xaxis": f"x{suffix}",
                "yaxis": f"y{suffix}",
                "hovertemplate": f"%{{customdata}}<br>{currency} %{{x:,.2f}}<extra></extra>",
            }
        )
        settings[f"xaxis{suffix}"] = {"anchor": f"y{suffix}", "tickfont": {"size": 10}}
        settings[f"yaxis{suffix}"] = {
            "domain": [bottom, top],
            "anchor": f"x{suffix}",
            "autorange": "reversed",
            "automargin": True,
            "tickfont": {"size": 11},
        }
        notes.append(
            {
                "text": f"<b>{currency}</b>",
                "showarrow": False,
                "x": 0,
                "y": top,
                "xref": "paper",
                "yref": "paper",
                "xanchor": "left",
                "yanchor": "bottom",
            }
        )
        top = bottom - PANEL_GAP / plot
    if data:
        settings["annotations"] = notes
    return layout(data, showlegend=False, height=height, **settings)


def grouped(
    rows: list[dict[str, Any]],
    label: Callable[[dict[str, Any]], str],
    value: str,
    colours: dict[str, str],
) -> Figure:
    """Vertical bars per label, a series per currency (few labels: departments)."""
    data = [
        {
            "type": "bar",
            "name": currency,
            "x": [label(r) for r in rows if r["currency"] == currency],
            "y": [_number(r[value]) for r in rows if r["currency"] == currency],
            "marker": {"color": colours.get(currency)},
            "hovertemplate": f"%{{x}}<br>{currency} %{{y:,.2f}}<extra></extra>",
        }
        for currency in _ordered(rows, colours)
    ]
    return layout(data, barmode="group")


def _month_end(day: dt.date) -> dt.date:
    following = (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return following - dt.timedelta(days=1)


def partial_months(
    filters: Filters, span: tuple[dt.date | None, dt.date | None]
) -> dict[dt.date, str]:
    """The months the range covers only in part (first day of month -> why), so a
    chart does not show them as a fall in business."""
    first = max(d for d in (filters.start, span[0]) if d is not None) if span[0] else None
    last = min(d for d in (filters.end, span[1]) if d is not None) if span[1] else None
    if first is None or last is None or first > last:
        return {}
    partial = {}
    if first.day != 1:
        partial[first.replace(day=1)] = f"from {first:%d %b %Y} only"
    if last != _month_end(last):
        month = last.replace(day=1)
        partial[month] = (
            f"{first:%d} to {last:%d %b %Y} only"
            if month in partial
            else f"to {last:%d %b %Y} only"
        )
    return partial


def by_month(
    rows: list[dict[str, Any]], value: str, colours: dict[str, str], partial: dict[dt.date, str]
) -> Figure:
    """Per month and currency; partial months drawn hollow (lines) or faded (bars) and
    named in the hover and under the chart."""
    data = []
    for currency in _ordered(rows, colours):
        mine = [r for r in rows if r["currency"] == currency]
        months = [r["month"] for r in mine]
        note = [f" (partial: {partial[m]})" if m in partial else "" for m in months]
        common = {
            "name": currency,
            "x": [m.isoformat() for m in months],
            "y": [_number(r[value]) for r in mine],
            "customdata": note,
        }
        if value == "units":  # a count, so the currencies stack to the month's total
            data.append(
                {
                    **common,
                    "type": "bar",
                    "marker": {
                        "color": colours.get(currency),
                        "opacity": [0.4 if m in partial else 1 for m in months],
                    },
                    "hovertemplate": f"%{{x|%b %Y}}%{{customdata}}<br>{currency} "
                    "%{y:,} units<extra></extra>",
                }
            )
        else:
            data.append(
                {
                    **common,
                    "type": "scatter",
                    "mode": "lines+markers",
                    "line": {"color": colours.get(currency)},
                    "marker": {
                        "symbol": ["circle-open" if m in partial else "circle" for m in months],
                        "size": [11 if m in partial else 6 for m in months],
                    },
                    "hovertemplate": f"%{{x|%b %Y}}%{{customdata}}<br>{currency} "
                    "%{y:,.2f}<extra></extra>",
                }
            )
    settings: dict[str, Any] = {"barmode": "stack", "xaxis": {"type": "date"}}
    shown = sorted(m for m in partial if any(r["month"] == m for r in rows))
    if data and shown:
        settings["annotations"] = [
            {
                "text": "Partial month"
                + ("s" if len(shown) > 1 else "")
                + ": "
                + "; ".join(f"{m:%b %Y} {partial[m]}" for m in shown)
                + (" (hollow points)" if value != "units" else " (faded bars)"),
                "showarrow": False,
                "x": 0,
                "y": 1.0,
                "xref": "paper",
                "yref": "paper",
                "xanchor": "left",
                "yanchor": "bottom",
                "font": {"size": 11, "color": "#5b6476"},
            }
        ]
    return layout(data, **settings)


def payments(rows: list[dict[str, Any]]) -> Figure:
    x = [
        [FLOWS.get(r["transaction_type"], r["transaction_type"]) for r in rows],
        [r["currency"] for r in rows],
    ]
    data = [
        {
            "type": "bar",
            "name": status,
            "x": x,
            "y": [_number(r[status.lower()]) for r in rows],
            "marker": {"color": STATUS_COLOURS[status]},
            "hovertemplate": f"%{{x}}<br>{status} %{{y:,.2f}}<extra></extra>",
        }
        for status in ("Paid", "Due", "Overdue")
        if rows
    ]
    return layout(data, barmode="stack")


def design(r: dict[str, Any]) -> str:
    return f"{r['design_name']} #{r['design_id']}"


def designs_by_units(rows: list[dict[str, Any]]) -> Figure:
    data = [
        {
            "type": "bar",
            "orientation": "h",
            "x": [r["units"] for r in rows],
            "y": [design(r) for r in rows],
            "marker": {"color": PALETTE[4]},
            "hovertemplate": "%{y}<br>%{x:,} units<extra></extra>",
        }
    ]
    return layout(data if rows else [], yaxis={"autorange": "reversed", "automargin": True})
