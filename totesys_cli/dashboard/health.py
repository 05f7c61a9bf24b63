"""The pipeline page: how the job itself is doing, beside the business figures.

The run history comes from `totesys_meta.runs` (what `totesys runs` lists), open
quarantine entries from `totesys_meta.quarantine`; with the lake given, the freshness of
each source table, the backlog (runs not yet transformed or loaded) and the size of each
zone come from the newest manifests, as `totesys status` reads them: nothing lists the
lake, so a view costs the same in its first week and after a year.
"""

from __future__ import annotations

import datetime as dt
import html
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, select

from totesys_cli.dashboard import document
from totesys_cli.dashboard.charts import layout
from totesys_cli.dashboard.page import Card, Chart, Section, age, count
from totesys_cli.lake import compaction
from totesys_cli.lake import manifest as manifests
from totesys_cli.lake.manifest import Manifest, ProcessedManifest, RawManifest
from totesys_cli.ops import quarantine
from totesys_cli.ops import runs as history
from totesys_cli.schemas import LOADED_RUNS, META_SCHEMA

RUNS_SHOWN = 50  # runs in the charts and the table
QUARANTINE_SHOWN = 20
STEPS = ("extract", "transform", "load")
OUTCOME_COLOURS = {
    "succeeded": "#2ca02c",
    "failed": "#d62728",
    "locked": "#ff7f0e",
    "running": "#1f77b4",
    "did not finish": "#8c564b",
}
STEP_COLOURS = {"extract": "#1f77b4", "transform": "#ff7f0e", "load": "#2ca02c"}


@dataclass(frozen=True)
class Zone:
    name: str  # raw or processed
    url: str
    objects: int | None  # None: not counted yet
    bytes: int | None


@dataclass(frozen=True)
class Lake:
    """What the lake says: per source table its newest change read and last extract,
    the runs each later step has not taken yet, and each zone's size."""

    tables: dict[str, tuple[dt.datetime | None, dt.datetime | None]]
    not_transformed: int
    not_loaded: int
    zones: list[Zone]


@dataclass(frozen=True)
class Facts:
    runs: list[history.PastRun]
    quarantined: int
    quarantine: list[quarantine.Entry]
    lake: Lake | None


@dataclass(frozen=True)
class PipelinePage:
    freshness: str
    cards: list[Card]
    sections: list[Section]
    tables: str  # HTML

    def charts(self) -> list[Chart]:
        return [c for s in self.sections for c in s.charts]


# ---------------------------------------------------------------- reading


def _held(name: str, zone: Any, newest: Manifest | None) -> Zone:
    """A zone's size as its newest run counted it (see `lake.held`), with what the
    compactions changed (as `lake gc` leaves it): never a listing, which grows with
    the lake; None before a run of this release counted it."""
    if newest is None:
        return Zone(name, zone.url, 0, 0)
    held = compaction.held(zone, newest)
    return Zone(name, zone.url, held.files if held else None, held.bytes if held else None)


def _loaded_seq(conn: Connection) -> int:
    if not conn.dialect.has_table(conn, LOADED_RUNS.name, schema=META_SCHEMA):
        return 0
    return conn.execute(select(func.coalesce(func.max(LOADED_RUNS.c.seq), 0))).scalar_one()


def _lake(conn: Connection, endpoints: Any) -> Lake | None:
    if endpoints is None or (endpoints.raw is None and endpoints.processed is None):
        return None
    raw = manifests.latest(endpoints.raw, RawManifest) if endpoints.raw else None
    processed = (
        manifests.latest(endpoints.processed, ProcessedManifest) if endpoints.processed else None
    )
    tables = {t: (s.watermark, s.snapshot) for t, s in (raw.state if raw else {}).items()}
    newest = (("raw", endpoints.raw, raw), ("processed", endpoints.processed, processed))
    zones = [_held(name, zone, last) for name, zone, last in newest if zone is not None]
    return Lake(
        tables=tables,
        not_transformed=max(0, (raw.seq if raw else 0) - (processed.raw_seq if processed else 0)),
        not_loaded=max(0, (processed.seq if processed else 0) - _loaded_seq(conn)),
        zones=zones,
    )


def read(conn: Connection, endpoints: Any = None) -> Facts:
    """Everything the page shows, through the request's connection."""
    return Facts(
        runs=history.read(conn, RUNS_SHOWN),
        quarantined=quarantine.open_count(conn),
        quarantine=quarantine.entries(conn, limit=QUARANTINE_SHOWN),
        lake=_lake(conn, endpoints),
    )


# ---------------------------------------------------------------- the page


def _ago(when: dt.datetime, now: dt.datetime) -> str:
    return f"{age((now - when).total_seconds())} ago"


def _megabytes(size: int | None) -> str:
    return "not counted yet" if size is None else f"{size / 1e6:,.1f} MB"


def _cards(facts: Facts, now: dt.datetime) -> list[Card]:
    runs = facts.runs
    last = runs[0] if runs else None
    day = [r for r in runs if now - r.started_at <= dt.timedelta(days=1)]
    failed = [r for r in day if r.outcome in ("failed", "did not finish")]
    cards = [
        Card(
            "Last run",
            [f"{last.outcome}, {_ago(last.started_at, now)}", last.command]
            if last
            else ["none recorded"],
        ),
        Card("Failed in 24 h", [f"{len(failed)} of {len(day)} shown"]),
        Card("Open quarantine", [count(facts.quarantined)]),
    ]
    lake = facts.lake
    if lake is None:
        cards.append(Card("Backlog", ["give the lake to see it"]))
    else:
        cards.append(
            Card(
                "Backlog",
                [f"{lake.not_transformed} to transform", f"{lake.not_loaded} to load"],
            )
        )
        cards.append(Card("Lake size", [f"{z.name} {_megabytes(z.bytes)}" for z in lake.zones]))
    return cards


def _durations(runs: list[history.PastRun]) -> dict[str, Any]:
    """Each run's seconds (a bar, coloured by outcome) against its deadline (a line)."""
    shown = list(reversed(runs))
    data: list[dict[str, Any]] = [
        {
            "type": "bar",
            "name": outcome,
            "x": [_when(r) for r in mine],
            "y": [_seconds(r) for r in mine],
            "marker": {"color": colour},
            "customdata": [[r.run_id, r.command] for r in mine],
            "hovertemplate": "%{customdata[1]} %{customdata[0]}<br>%{y:.1f} s<extra></extra>",
        }
        for outcome, colour in OUTCOME_COLOURS.items()
        if (mine := [r for r in shown if r.outcome == outcome])
    ]
    deadlines = [r for r in shown if r.max_runtime]
    if data and deadlines:
        data.append(
            {
                "type": "scatter",
                "name": "deadline",
                "x": [_when(r) for r in deadlines],
                "y": [r.max_runtime for r in deadlines],
                "mode": "lines",
                "line": {"color": "#5b6476", "dash": "dash"},
                "hovertemplate": "deadline %{y:.0f} s<extra></extra>",
            }
        )
    return layout(data, xaxis={"type": "date"}, yaxis={"title": {"text": "seconds"}})


def _when(run: history.PastRun) -> str:
    return _stamp(run.started_at)


def _seconds(run: history.PastRun) -> float:
    if run.ended_at is not None:
        return round((run.ended_at - run.started_at).total_seconds(), 2)
    return round(sum(run.seconds.values()), 2)


def _per_step(runs: list[history.PastRun], value: str) -> dict[str, Any]:
    """Seconds or rows of each step, stacked per run."""
    shown = [r for r in reversed(runs) if getattr(r, value)]
    data = [
        {
            "type": "bar",
            "name": step,
            "x": [_when(r) for r in shown],
            "y": numbers,
            "marker": {"color": STEP_COLOURS[step]},
            "hovertemplate": f"{step} %{{y:,}}<extra></extra>",
        }
        for step in STEPS
        if any(numbers := [_step(r, step, value) for r in shown])
    ]
    return layout(data, barmode="stack", xaxis={"type": "date"})


def _step(run: history.PastRun, step: str, value: str) -> float:
    if value == "seconds":
        return round(float(run.seconds.get(step) or 0), 2)
    return sum((run.rows.get(step) or {}).values())


def _cell(value: Any, number: bool = False, css: str = "") -> str:
    classes = " ".join(c for c in ("n" if number else "", css) if c)
    attribute = f' class="{classes}"' if classes else ""
    return f"<td{attribute}>{html.escape(str(value))}</td>"


def _table(title: str, heads: tuple[str, ...], rows: list[str], empty: str) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in heads)
    body = "".join(rows) or f'<tr><td colspan="{len(heads)}">{html.escape(empty)}</td></tr>'
    return f"<section><h2>{html.escape(title)}</h2><table><tr>{head}</tr>{body}</table></section>"


def _stamp(value: dt.datetime | None) -> str:
    if value is None:
        return "-"
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return f"{value:%Y-%m-%d %H:%M:%S}"


def _runs_table(runs: list[history.PastRun]) -> str:
    rows = [
        "<tr>"
        + _cell(r.run_id)
        + _cell(r.command)
        + _cell(_stamp(r.started_at))
        + _cell(r.outcome, css="failed" if r.outcome in ("failed", "did not finish") else "")
        + "".join(_cell(f"{_step(r, s, 'rows'):,}", number=True) for s in STEPS)
        + "".join(_cell(f"{_step(r, s, 'seconds'):.1f}", number=True) for s in STEPS)
        + _cell(r.error or "")
        + "</tr>"
        for r in runs
    ]
    heads = ("run", "command", "started (UTC)", "outcome")
    heads += tuple(f"rows {s}" for s in STEPS) + tuple(f"s {s}" for s in STEPS) + ("error",)
    return _table("Recent runs", heads, rows, "No run has been recorded yet")


def _tables_table(lake: Lake | None) -> str:
    if lake is None:
        return _table(
            "Freshness per table",
            ("table",),
            [],
            "Give the lake (--lake-url or TOTESYS_LAKE_URL) to see each table's freshness, "
            "the backlog and the lake's size",
        )
    rows = [
        f"<tr>{_cell(t)}{_cell(_stamp(newest))}{_cell(_stamp(read))}</tr>"
        for t, (newest, read) in sorted(lake.tables.items())
    ]
    heads = ("source table", "newest change read (UTC)", "last extracted (UTC)")
    return _table("Freshness per table", heads, rows, "Nothing has been extracted yet")


def _zones_table(lake: Lake | None) -> str:
    if lake is None:
        return ""
    rows = [
        f"<tr>{_cell(z.name)}{_cell(z.url)}"
        f"{_cell('-' if z.objects is None else f'{z.objects:,}', True)}"
        f"{_cell(_megabytes(z.bytes), True)}</tr>"
        for z in lake.zones
    ]
    return _table("Lake size per zone", ("zone", "where", "objects", "size"), rows, "")


def _quarantine_table(facts: Facts) -> str:
    if not facts.quarantined:
        return ""
    rows = [
        "<tr>"
        + _cell(e.source_table)
        + _cell(e.key, number=True)
        + _cell(e.column)
        + _cell(e.value if e.value is not None else "NULL")
        + _cell(e.reason)
        + _cell(_stamp(e.found_at))
        + "</tr>"
        for e in facts.quarantine
    ]
    title = f"Open quarantine entries ({count(facts.quarantined)}; `totesys quarantine` lists all)"
    heads = ("table", "key", "column", "value", "reason", "found (UTC)")
    return _table(title, heads, rows, "")


def build(facts: Facts, freshness: str, now: dt.datetime | None = None) -> PipelinePage:
    now = now or dt.datetime.now(dt.UTC)
    charts = [
        Chart("run-durations", "Run duration against the deadline (s)", _durations(facts.runs)),
        Chart("step-seconds", "Seconds per step", _per_step(facts.runs, "seconds")),
        Chart("step-rows", "Rows per step", _per_step(facts.runs, "rows")),
    ]
    tables = (
        _runs_table(facts.runs)
        + _tables_table(facts.lake)
        + _zones_table(facts.lake)
        + _quarantine_table(facts)
    )
    return PipelinePage(freshness, _cards(facts, now), [Section("Runs", charts)], tables)


def cards_html(page: PipelinePage) -> str:
    return document.cards_html(page)


def update(page: PipelinePage) -> str:
    parts = {"cards": cards_html(page), "tables": page.tables}
    return document.update_json(page.freshness, parts, document.figures_text(page))


def render(page: PipelinePage, live_seconds: float | None = None) -> str:
    return document.shell(
        title="totesys: how the pipeline is doing",
        freshness=page.freshness,
        controls="",
        main=f'<div id="cards">{cards_html(page)}</div>\n'
        f"{document.charts_html(page.sections)}\n"
        f'<div id="tables">{page.tables}</div>',
        footer="Runs from totesys_meta.runs, newest first; times in UTC.",
        figures=document.figures_text(page),
        live=("pipeline.json", live_seconds) if live_seconds else None,
    )
