"""What the commands print on stdout: results, never logs (those go to stderr)."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import click

# C0 and C1 control characters and DEL: in a value from the source, an escape sequence
# could recolour, hide or rewrite what the terminal shows
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """Text as a terminal can show it harmlessly: each control character written \\xNN."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def table(rows: list[tuple], headers: tuple[str, ...]) -> None:
    """A plain aligned table."""
    cells = [headers] + [tuple(_cell(v) for v in row) for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for row in cells:
        click.echo(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )


def _cell(value) -> str:
    if isinstance(value, float | Decimal):
        return f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return printable(str(value))


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'s' if count != 1 else ''}"


def runs(seqs: list[int]) -> str:
    return f"{seqs[0]}-{seqs[-1]}" if len(seqs) > 1 else str(seqs[0])


def listing(seqs: list[int]) -> str:
    return f"{plural(len(seqs), 'run')} ({runs(seqs)})" if seqs else "none"


def extracted(result) -> None:
    table(
        [(n, t.rows, t.bytes, result.table_seconds.get(n, 0.0)) for n, t in result.tables.items()],
        ("table", "rows", "bytes", "seconds"),
    )
    deleted = f", {plural(result.deleted, 'key')} found deleted" if result.deleted else ""
    click.echo(
        f"extract run {result.seq} committed: {result.rows:,} rows{deleted} in "
        f"{result.seconds:.1f} s (snapshot {result.snapshot:%Y-%m-%d %H:%M:%S} UTC)"
    )


def transformed(result) -> None:
    if result.seq is None:
        click.echo("nothing to transform: every committed raw run is already transformed")
        return
    table([(n, t.rows, t.bytes) for n, t in result.tables.items()], ("table", "rows", "bytes"))
    click.echo(
        f"processed run {result.seq} committed from raw runs "
        f"{runs(result.raw_runs)}: {result.rows:,} rows in {result.seconds:.1f} s"
    )


def loaded(result) -> None:
    if not result.runs:
        click.echo("nothing to load: every committed processed run is already loaded")
        return
    table(
        [
            (
                f"{'re' if r.reload else ''}loaded run {r.seq}",
                sum(r.rows.values()),
                sum(r.changed.values()),
                r.seconds,
            )
            for r in result.runs
        ],
        ("run", "rows", "changed", "seconds"),
    )
    click.echo(
        f"loaded {plural(len(result.runs), 'run')}: {result.rows:,} rows changed in "
        f"{result.seconds:.1f} s"
    )


def run_summary(result) -> None:
    """Rows per table through each step, then seconds per step."""
    changed: dict[str, int] = {}
    for run in result.load.runs:
        for name, count in run.changed.items():
            changed[name] = changed.get(name, 0) + count
    extracted = result.extract.tables if result.extract else {}
    transformed = result.transform.tables if result.transform else {}
    rows = [(name, t.rows, "", "") for name, t in extracted.items()]
    rows += [(name, "", t.rows, changed.get(name, 0)) for name, t in transformed.items()]
    table(rows, ("table", "extracted", "transformed", "loaded"))
    if result.extract and result.extract.deleted:
        click.echo(f"found deleted in the source: {plural(result.extract.deleted, 'key')}")
    click.echo("seconds: " + ", ".join(f"{step} {s:.2f}" for step, s in result.seconds.items()))


def checked_per_row(role: str) -> None:
    """The warehouse role may not turn triggers off, and what would let it."""
    click.echo(
        "warehouse: a trigger checks each new fact row's foreign keys, key by key (about "
        "half of a small run's load)"
    )
    click.echo(
        "  a run checks them once over its rows when its role may set "
        "session_replication_role: a superuser, or on PostgreSQL 15 and later"
    )
    click.echo(f"    GRANT SET ON PARAMETER session_replication_role TO {role};")


def read_whole(tables: dict[str, int | None]) -> None:
    """The source tables every run reads whole, and the indexes that would spare it."""
    from totesys_cli.extract.window import worth_an_index  # the reader's imports, when asked

    if not tables:
        click.echo("source: an index on last_updated serves every table; a run reads its changes")
        return
    rows = ", ".join(
        f"{t} ({'rows unknown: not analyzed' if n is None else f'{n:,} rows'})"
        for t, n in tables.items()
    )
    click.echo(f"source: read whole by every run (no index on last_updated): {rows}")
    statements = worth_an_index(tables)
    if statements:
        click.echo("  an index makes a run read its changes only (the application keeps writing):")
        for statement in statements:
            click.echo(f"    {statement}")


def status(result) -> None:
    unset = "not configured"
    click.echo(f"raw zone:        {result.raw_url or unset}")
    click.echo(f"processed zone:  {result.processed_url or unset}")
    click.echo(f"warehouse:       {result.warehouse or unset}")
    if result.read_whole is not None:
        read_whole(result.read_whole)
    if result.tables:
        table(
            [
                (t, v["watermark"] or "-", v["last_extract"] or "-", v["keys_compared"] or "-")
                for t, v in result.tables.items()
            ],
            ("table", "watermark", "last extract", "keys compared (finds deletes)"),
        )
    if result.passes:
        table(
            [
                (
                    t,
                    f"{p['percent']:.1f} %",
                    f"{p['rows']:,}",
                    str(p["runs"]),
                    "?" if p["runs_left"] is None else f"about {p['runs_left']}",
                )
                for t, p in result.passes.items()
            ],
            ("read over several runs", "key range", "rows so far", "runs", "runs left"),
        )
    click.echo(f"last extract run:    {result.last_extract or '-'}")
    click.echo(f"not transformed:     {listing(result.not_transformed)}")
    click.echo(f"last transform run:  {result.last_transform or '-'}")
    click.echo(f"not loaded:          {listing(result.not_loaded)}")
    if result.last_load:
        load = result.last_load
        click.echo(f"last load:           run {load['run']} at {load['loaded_at']}")
    else:
        click.echo("last load:           -")
    if result.freshness_seconds is not None:
        verdict = "healthy" if result.fresh else "STALE (over 30 minutes)"
        click.echo(f"freshness:           {result.freshness_seconds / 60:.1f} minutes, {verdict}")
    if result.row_counts:
        table(
            [(t, n, result.latest_rows.get(t, "")) for t, n in result.row_counts.items()],
            ("star table", "rows (a fact's: versions)", "latest rows"),
        )
    if result.warehouse and result.row_counts:
        gone = ", ".join(f"{t} {n}" for t, n in result.deleted.items()) or "none"
        click.echo(f"deleted in source:   {gone}")
    if result.quarantined is not None:
        entries_word = "entry" if result.quarantined == 1 else "entries"
        click.echo(f"quarantine:          {result.quarantined} open {entries_word}")
        if result.quarantine:
            entries(result.quarantine)
            if result.quarantined > len(result.quarantine):
                click.echo("(totesys quarantine lists them all)")


def entries(found: list[dict]) -> None:
    """Quarantine entries: which version of which row, what is wrong, where it stands."""
    table(
        [
            (
                e["source_table"],
                str(e["key"]),
                e["version"],
                e["column"],
                "NULL" if e["value"] is None else e["value"],
                e["reason"],
                f"resolved by run {e['resolved_in']}" if e["resolved_in"] else "open",
            )
            for e in found
        ],
        ("table", "key", "version (last_updated)", "column", "value", "why", ""),
    )


def past_runs(found) -> None:
    """The run history, newest first; a failed run's error line under it."""
    table(
        [
            (
                r.run_id,
                r.command,
                r.started_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S"),
                f"{(r.ended_at - r.started_at).total_seconds():.1f}" if r.ended_at else "",
                r.outcome if r.exit_code in (None, 0) else f"{r.outcome} (exit {r.exit_code})",
                r.total_rows,
                ", ".join(f"{step} {runs(seqs)}" for step, seqs in _in_order(r.lake_runs) if seqs),
            )
            for r in found
        ],
        ("run", "command", "started (UTC)", "seconds", "outcome", "rows", "lake runs"),
    )
    for r in found:
        if r.error:
            click.echo(f"{r.run_id}: {r.error}")


def _in_order(by_step: dict) -> list[tuple]:
    order = ("extract", "transform", "load", "rebuild", "gc")
    return sorted(by_step.items(), key=lambda item: order.index(item[0]))


def verified(result, show_deleted: bool = False) -> None:
    summaries = [c for c in result.checks if c.table.startswith("totesys_meta.")]
    shown = [c for c in result.checks if c not in summaries or not c.ok]
    table(
        [(c.table, c.measure, c.source, c.warehouse, "ok" if c.ok else "DRIFT") for c in shown],
        ("table", "check", "source", "warehouse", ""),
    )
    agree = sum(c.ok for c in summaries)
    if agree:
        click.echo(f"{agree} of {len(summaries)} dashboard summaries agree with the facts")
    pending = sum(result.pending.values())
    click.echo(
        f"as of the loaded snapshot {result.snapshot:%Y-%m-%d %H:%M:%S} UTC; "
        f"{plural(pending, 'source row')} changed since (left for the next run)"
    )
    if result.quarantined:
        keys = "; ".join(
            f"{name} {', '.join(str(k) for k in keys)}" for name, keys in result.quarantined.items()
        )
        click.echo(f"quarantined, left out of both sides: {keys} (totesys quarantine says why)")
    if result.deleted and show_deleted:
        keys = "; ".join(
            f"{name} {', '.join(str(k) for k in keys)}" for name, keys in result.deleted.items()
        )
        click.echo(f"deleted in the source, left out of the warehouse's side: {keys}")
    elif result.deleted:
        count = sum(len(keys) for keys in result.deleted.values())
        click.echo(
            f"{plural(count, 'key')} deleted in the source, left out of the warehouse's side "
            "(--deleted lists them)"
        )


def collected(result, dry_run: bool, grace_hours: float) -> None:
    verb = "would delete" if dry_run else "deleted"
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    files = [
        (f"{url}/{item.key}", item.size, f"{(now - item.modified).total_seconds() / 3600:.1f} h")
        for url, items in result.deleted.items()
        for item in items
    ]
    if files:
        table(files, ("file", "bytes", "age"))
    click.echo(
        f"{verb} {plural(result.count, 'uncommitted file')} ({result.bytes:,} bytes); "
        f"kept {result.kept_young} younger than {grace_hours:g} h"
    )


def compacted(result) -> None:
    for url, zone in result.zones.items():
        days = (
            f"{zone.days[0]} to {zone.days[-1]}"
            if len(zone.days) > 1
            else "".join(str(d) for d in zone.days)
        )
        click.echo(
            f"{url}: compacted {plural(len(zone.days), 'day')}{f' ({days})' if days else ''}: "
            f"{plural(zone.replaced.files, 'small file')} ({zone.replaced.bytes:,} bytes) into "
            f"{plural(zone.written.files, 'large file')} ({zone.written.bytes:,} bytes)"
        )
    if result.stopped:
        click.echo("the deadline passed: the next compaction goes on from the next day")


def config(result: dict) -> None:
    if result["profile"]:
        click.echo(f"profile {result['profile']} from {result['file']}")
    else:
        click.echo("no profile: options, variables and defaults only")
    rows = [("setting", "value", "from")] + [
        (name, "-" if s["value"] is None else str(s["value"]), _origin(s))
        for name, s in result["settings"].items()
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    for name, value, origin in rows:
        click.echo(f"{name.ljust(widths[0])}  {value.ljust(widths[1])}  {origin}")


def _origin(setting: dict) -> str:
    """Where a value comes from, naming the option or variable that gave it."""
    shown = {"option": setting["option"], "variable": setting["variable"]}
    source = setting["from"]
    return f"{source} {shown[source]}" if source in shown else source
