"""verify: reconcile the warehouse with the source without changing either.

The warehouse is exact as of the snapshot of the newest loaded extract, S. Source rows
changed after S are not yet in it, so they are left out of both sides and reported as
pending; so are the keys with an open quarantine entry, reported apart. The warehouse's
side leaves out the keys it records as deleted in the source (reported apart): one the
source holds again is a difference. Every other source row must be in the warehouse
exactly: the number of keys per table, and per currency the sums of the quantity and
money columns.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import Connection, func, select, table

from totesys_cli.config.settings import Settings
from totesys_cli.config.urls import Database
from totesys_cli.db import engine, reading, translate_errors
from totesys_cli.errors import Drift, RuntimeFailure
from totesys_cli.ops import deletions
from totesys_cli.ops.quarantine import open_keys
from totesys_cli.runtime.endpoints import SOURCE, WAREHOUSE, open_endpoints
from totesys_cli.schemas import LOADED_RUNS, META_SCHEMA, STARS, Star, source_key, source_table
from totesys_cli.schemas.model import deleted as deleted_key
from totesys_cli.schemas.warehouse import Measure
from totesys_cli.warehouse import upkeep


@dataclass
class Check:
    table: str
    measure: str
    source: Decimal | int
    warehouse: Decimal | int

    @property
    def ok(self) -> bool:
        return self.source == self.warehouse


@dataclass
class VerifyResult:
    snapshot: dt.datetime
    checks: list[Check]
    pending: dict[str, int]
    quarantined: dict[str, list[int]] = field(default_factory=dict)  # source table -> keys
    deleted: dict[str, list[int]] = field(default_factory=dict)  # source table -> keys
    differing: dict[str, list[int]] = field(default_factory=dict)  # star table -> keys
    since: dt.datetime | None = None  # the --since that reprocesses every differing key

    @property
    def drift(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def error(self) -> Drift | None:
        """The drift as the error `verify` ends with, with how to repair it (None: none)."""
        if not self.drift:
            return None
        named = "; ".join(
            f"{c.table} {c.measure}: source {c.source}, warehouse {c.warehouse}" for c in self.drift
        )
        keys = "; ".join(
            f"{name} keys {_some(keys)}" for name, keys in self.differing.items() if keys
        )
        repair = (
            f"Reprocess them with totesys run-all --since {self.since.isoformat()}"
            if self.since is not None
            else "The warehouse holds rows the source does not: deleted after the last "
            "comparison of keys, the next one records them (totesys run-all "
            "--deletes-every 0 compares now); otherwise something else wrote them"
        )
        if all(c.table.startswith("totesys_meta.") for c in self.drift):
            repair = "Drop the summaries that differ and run totesys init: it sums them again"
        return Drift(
            f"the warehouse differs from the source: {named} ({keys or 'no key differs'})",
            repair,
            len(self.drift),
        )


def _some(keys: list, shown: int = 5) -> str:
    """A few of many: `1, 2, 3, 4, 5 and 12 more`."""
    head = ", ".join(str(k) for k in keys[:shown])
    return f"{head} and {len(keys) - shown} more" if len(keys) > shown else head


def reconcile(settings: Settings) -> VerifyResult:
    """`totesys verify`: the source and the warehouse of `settings`, reconciled."""
    ends = open_endpoints(settings, (SOURCE, WAREHOUSE))
    return verify(ends.source, ends.warehouse)


def _snapshot(conn: Connection) -> dt.datetime:
    snapshot = conn.execute(
        select(LOADED_RUNS.c.snapshot_time).order_by(LOADED_RUNS.c.seq.desc()).limit(1)
    ).scalar()
    if snapshot is None:
        raise RuntimeFailure(
            "nothing has been loaded into the warehouse yet", "Run totesys run-all first"
        )
    return snapshot


def _value(rows, measure: Measure):
    value = rows.c[measure.columns[0]]
    for column in measure.columns[1:]:
        value = value * rows.c[column]
    return value


def _measure(rows, measure: Measure):
    return func.coalesce(func.sum(_value(rows, measure)), 0)


def verify(source: Database, warehouse: Database) -> VerifyResult:
    with (
        translate_errors(warehouse),
        engine(warehouse).connect() as wh,
        translate_errors(source),
        engine(source).connect() as src,
    ):
        reading(wh)
        snapshot = _snapshot(wh)
        currency = source_table("currency")
        codes = dict(src.execute(select(currency.c.currency_id, currency.c.currency_code)).all())
        checks: list[Check] = []
        pending: dict[str, int] = {}
        result_keys: dict[str, list[int]] = {}
        earliest: dt.datetime | None = None
        quarantined = open_keys(wh)
        deleted = deletions.open_keys(wh)
        for star in STARS.values():
            if star.source is None:
                continue  # the calendar is derived from the facts
            set_aside = set(quarantined.get(star.source, ()))
            changed = [k for k in _changed_keys(src, star.source, snapshot) if k not in set_aside]
            pending[star.name] = len(changed)
            # neither side holds a quarantined key's version: both leave it out
            left_out = changed + sorted(set_aside)
            found = [_count(src, wh, star, snapshot, left_out)]
            if star.measures:
                found += _sums(src, wh, star, snapshot, left_out, codes)
            checks += found
            if not all(c.ok for c in found):
                keys, since = _differing(src, wh, star, snapshot, left_out)
                result_keys[star.name] = keys
                earliest = min(filter(None, (earliest, since)), default=None)
        checks += [
            Check(f"{META_SCHEMA}.{name}", "groups unlike the facts", 0, n)
            for name, n in upkeep.drifted(wh).items()
        ]
    return VerifyResult(snapshot, checks, pending, quarantined, deleted, result_keys, earliest)


def _differing(src, wh, star: Star, snapshot, left_out: list[int]):
    """The keys whose latest version differs (missing, extra, or other values), and the
    earliest source last_updated among them: a reprocess from there repairs them."""
    rows = source_table(star.source)
    key = rows.c[source_key(star.source)]
    values = [_value(rows, m) for m in star.measures]
    source = {
        r[0]: (r[1], tuple(r[2:]))
        for r in src.execute(
            select(key, rows.c.last_updated, *values).where(
                rows.c.last_updated <= snapshot, key.not_in(left_out)
            )
        )
    }
    target = _warehouse_rows(star)
    warehouse = {
        r[0]: tuple(r[1:])
        for r in wh.execute(
            select(target.c[star.key], *(_value(target, m) for m in star.measures)).where(
                target.c[star.key].not_in(left_out), *_current(star, target)
            )
        )
    }
    keys = sorted(
        k
        for k in set(source) | set(warehouse)
        if source.get(k, (None, None))[1] != warehouse.get(k)
    )
    stamps = [source[k][0] for k in keys if k in source]
    return keys, min(stamps, default=None)


def _changed_keys(src: Connection, source_name: str, snapshot: dt.datetime) -> list[int]:
    rows = source_table(source_name)
    key = rows.c[source_key(source_name)]
    return list(src.execute(select(key).where(rows.c.last_updated > snapshot)).scalars())


def _warehouse_rows(star: Star):
    """The latest version of each source row: a fact's *_latest view, or the dimension."""
    return table(star.relation, *(c._copy() for c in star.table.columns))


def _current(star: Star, target) -> list:
    """What the warehouse holds as current: a fact's view leaves deleted keys out
    already; a dimension keeps the deleted rows facts reference, which the source does
    not hold. Only the warehouse's side leaves them out: a deleted key the source holds
    again is a difference."""
    return [] if star.is_fact else [~deleted_key(star.name, target.c[star.key])]


def _count(src, wh, star: Star, snapshot, changed: list[int]) -> Check:
    rows = source_table(star.source)
    key = rows.c[source_key(star.source)]
    expected = src.execute(
        select(func.count())
        .select_from(rows)
        .where(rows.c.last_updated <= snapshot, key.not_in(changed))
    ).scalar_one()
    target = _warehouse_rows(star)
    actual = wh.execute(
        select(func.count())
        .select_from(target)
        .where(target.c[star.key].not_in(changed), *_current(star, target))
    ).scalar_one()
    return Check(star.name, "rows", expected, actual)


def _sums(src, wh, star: Star, snapshot, changed: list[int], codes) -> list[Check]:
    rows = source_table(star.source)
    target = _warehouse_rows(star)
    measures = star.measures
    source_sums = {
        r[0]: r[1:]
        for r in src.execute(
            select(rows.c.currency_id, *(_measure(rows, m) for m in measures))
            .where(rows.c.last_updated <= snapshot, rows.c[source_key(star.source)].not_in(changed))
            .group_by(rows.c.currency_id)
        )
    }
    warehouse_sums = {
        r[0]: r[1:]
        for r in wh.execute(
            select(target.c.currency_id, *(_measure(target, m) for m in measures))
            .where(target.c[star.key].not_in(changed), *_current(star, target))
            .group_by(target.c.currency_id)
        )
    }
    checks = []
    for currency in sorted(set(source_sums) | set(warehouse_sums)):
        want = source_sums.get(currency, (0,) * len(measures))
        got = warehouse_sums.get(currency, (0,) * len(measures))
        for measure, expected, actual in zip(measures, want, got, strict=True):
            code = codes.get(currency, str(currency))
            checks.append(Check(star.name, f"sum({measure.label}) {code}", expected, actual))
    return checks
