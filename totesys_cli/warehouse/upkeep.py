"""Keeping the summaries (`schemas.summaries`) current, in the load's transaction.

A fact's summaries change only where the run touches the fact: before the run's rows
are merged, the latest version of every key the run brings is read, the latest after
the merge follows from it and the run's rows, and the summaries take the difference.
So a run of a few thousand rows costs a few index probes, whatever the size of the
facts, and a replayed run changes nothing. A fact filled from empty (a first
load) and a summary created on a warehouse that already holds facts are summed whole
(the rows of a first load as they pass: `first_fill`).
"""

from __future__ import annotations

import logging
import time

from sqlalchemy import Connection, Table, any_, func, literal, select, text

from totesys_cli.schemas import DELETIONS, star
from totesys_cli.schemas.model import deleted, latest_versions
from totesys_cli.schemas.summaries import SUMMARIES, Summary, of_fact

log = logging.getLogger(__name__)

CHANGE, _LATEST = "summary_change", "summary_latest"


def _sql(query, conn: Connection) -> str:
    return str(query.compile(conn, compile_kwargs={"literal_binds": True}))


def summed_columns(summary: Summary) -> dict[str, str]:
    """Each summed column and what it sums over signed fact rows `f`."""
    return {
        summary.counted: "f.sign",
        **{
            m: " * ".join(["f.sign", *(f"f.{c}" for c in cs)]) for m, cs in summary.measures.items()
        },
    }


def _join(summary: Summary, rows: str, few: bool) -> str:
    """The summary's dimension, as `t`. For `few` rows (a temporary table), only its
    rows that they name are read, through its primary key."""
    if summary.joined is None:
        return ""
    dimension, key = summary.joined
    join = f"JOIN {dimension} t ON t.{key} = f.{key}"
    return f"{join} AND t.{key} = ANY(ARRAY(SELECT DISTINCT {key} FROM {rows}))" if few else join  # nosec B608


def _grouped(summary: Summary, rows: str, few: bool = False) -> str:
    """The sums of `rows` (fact rows with a `sign`: +1 to add, -1 to take away) per
    the summary's keys, leaving out groups whose sums are all zero."""
    days = [f"f.{summary.day}"] if summary.day else []
    groups = [*days, "f.currency_id", *(g.expression for g in summary.groups)]
    sums = summed_columns(summary).values()
    return (
        f"SELECT {', '.join(groups)}, {', '.join(f'sum({s})' for s in sums)} "  # nosec B608
        f"FROM {rows} f {_join(summary, rows, few)} "
        f"GROUP BY {', '.join(groups)} "
        f"HAVING {' OR '.join(f'sum({s}) <> 0' for s in sums)}"
    )


def _add(conn: Connection, summary: Summary, rows: str, few: bool = False) -> None:
    """Add the sums of `rows` to the summary."""
    sums = summed_columns(summary)
    conn.execute(
        text(
            f"INSERT INTO {summary.fullname} ({', '.join([*summary.keys, *sums])}) "  # nosec B608
            f"{_grouped(summary, rows, few)} "
            f"ON CONFLICT ({', '.join(summary.keys)}) DO UPDATE SET "
            + ", ".join(f"{c} = {summary.name}.{c} + excluded.{c}" for c in sums)
        )
    )


def _latest(conn: Connection, fact: str) -> str:
    """The fact's latest versions, each with the sign +1."""
    whole = _sql(latest_versions(fact), conn)
    return f"SELECT 1 AS sign, l.* FROM ({whole}) l"  # nosec B608


def drifted(conn: Connection) -> dict[str, int]:
    """Per summary, how many of its groups differ from the sums of the facts' latest
    versions (none, unless something other than the load wrote to either)."""
    found = {}
    for summary in SUMMARIES:
        sums = summed_columns(summary)
        stored = (
            f"SELECT {', '.join([*summary.keys, *sums])} FROM {summary.fullname} "  # nosec B608
            f"WHERE {' OR '.join(f'{c} <> 0' for c in sums)}"
        )
        fresh = _grouped(summary, f"({_latest(conn, summary.fact)})")
        found[summary.name] = conn.execute(
            text(
                f"SELECT count(*) FROM (({stored} EXCEPT ALL {fresh}) "  # nosec B608
                f"UNION ALL ({fresh} EXCEPT ALL {stored})) d"
            )
        ).scalar_one()
    return found


def timed(fact: str, started: float) -> None:
    log.debug(
        "the summaries of %s are current",
        fact,
        extra={"summaries_seconds": round(time.perf_counter() - started, 3)},
    )


def sum_whole(conn: Connection, fact: str, summaries: tuple[Summary, ...] | None = None) -> None:
    """Sum the fact's latest versions into its summaries, from nothing: the latest
    versions are found once (when every key has one version, they are the fact), and
    each summary is filled in its keys' order."""
    started = time.perf_counter()
    table = star(fact).table
    key = star(fact).key
    one_each = conn.execute(
        select(func.count() == func.count(func.distinct(table.c[key])))
    ).scalar_one()
    if one_each:  # every version is the latest: the fact, less its deleted keys
        whole = select(literal(1).label("sign"), table).where(~deleted(fact, table.c[key]))
        rows = f"({_sql(whole, conn)})"
    else:
        conn.execute(
            text(f"CREATE TEMPORARY TABLE {_LATEST} ON COMMIT DROP AS {_latest(conn, fact)}")
        )
        rows = _LATEST
    for summary in summaries if summaries is not None else of_fact(fact):
        columns = ", ".join([*summary.keys, *summed_columns(summary)])
        in_key_order = ", ".join(str(n) for n in range(1, len(summary.keys) + 1))
        conn.execute(text(f"DELETE FROM {summary.fullname}"))  # nosec B608
        conn.execute(
            text(
                f"INSERT INTO {summary.fullname} ({columns}) "  # nosec B608
                f"{_grouped(summary, rows)} ORDER BY {in_key_order}"
            )
        )
    if not one_each:
        conn.execute(text(f"DROP TABLE {_LATEST}"))
    timed(fact, started)


def _needed(fact: str) -> list[str]:
    """The fact's columns its summaries read, with its key and version."""
    found = [star(fact).key, "last_updated_date", "last_updated_time"]
    for summary in of_fact(fact):
        found += [
            *(k for k in summary.keys if k not in {g.name for g in summary.groups if g.joined})
        ]
        found += [c for factors in summary.measures.values() for c in factors]
        found += [summary.joined[1]] if summary.joined else []
    return list(dict.fromkeys(found))


def follow(conn: Connection, stage: Table, fact: str, replayed: bool = False) -> None:
    """Before `stage` is merged into `fact`: move the summaries by the change the merge
    makes. The latest version of each key the run brings is read from the fact once;
    after the merge it is the newest of that and the run's versions of the key (the
    run's own where they share a version: the merge corrects it in place)."""
    started = time.perf_counter()
    table = star(fact).table
    key = star(fact).key
    # = ANY(ARRAY(...)): the keys' versions through the version index, not a scan
    touched = latest_versions(fact).where(
        table.c[key] == any_(func.array(select(stage.c[key]).scalar_subquery()))
    )
    columns = ", ".join(_needed(fact))
    after = (
        f"SELECT DISTINCT ON ({key}) {columns} FROM ("  # nosec B608
        f"SELECT 0 AS older, {columns} FROM {stage.name} "
        f"UNION ALL SELECT 1, {columns} FROM before) candidates "
        f"ORDER BY {key}, last_updated_date DESC, last_updated_time DESC, older"
    )
    conn.execute(
        text(
            f"CREATE TEMPORARY TABLE {CHANGE} ON COMMIT DROP AS "  # nosec B608
            f"WITH before AS MATERIALIZED ({_sql(touched, conn)}) "
            f"SELECT 1 AS sign, a.* FROM ({after}) a "
            f"WHERE NOT {_still_deleted(fact, 'a') if replayed else 'false'} "
            f"UNION ALL SELECT -1, {columns} FROM before"
        )
    )
    for summary in of_fact(fact):
        _add(conn, summary, CHANGE, few=True)
    conn.execute(text(f"DROP TABLE {CHANGE}"))
    timed(fact, started)


def _still_deleted(fact: str, rows: str) -> str:
    """SQL: whether the version in `rows`, of a reprocess, leaves its key deleted: the
    key has an open deletion and the version is not newer than the one the warehouse
    held then (a newer one ends the deletion, see `load.deletions`)."""
    return (
        f"EXISTS (SELECT FROM {DELETIONS.fullname} d WHERE "  # nosec B608
        f"d.source_table = '{star(fact).source}' AND d.key = {rows}.{star(fact).key} "
        "AND d.ended_in IS NULL AND d.last_version IS NOT NULL AND "
        f"{rows}.last_updated_date + {rows}.last_updated_time <= d.last_version)"
    )


def forget(conn: Connection, fact: str, keys: str) -> None:
    """Take the latest versions of these keys (SQL selecting them) out of the fact's
    summaries: their rows were deleted in the source."""
    started = time.perf_counter()
    table = star(fact).table
    key = table.c[star(fact).key]
    latest = _sql(latest_versions(fact, with_deleted=True), conn)
    conn.execute(
        text(
            f"CREATE TEMPORARY TABLE {CHANGE} ON COMMIT DROP AS "  # nosec B608
            f"SELECT -1 AS sign, l.* FROM ({latest}) l WHERE l.{key.name} IN ({keys})"
        )
    )
    for summary in of_fact(fact):
        _add(conn, summary, CHANGE, few=True)
    conn.execute(text(f"DROP TABLE {CHANGE}"))
    timed(fact, started)
