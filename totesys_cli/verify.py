"""verify: reconcile the warehouse with the source without changing either.

The warehouse is exact as of the snapshot of the newest loaded extract, S. Source rows
changed after S are not yet in it, so they are left out of both sides and reported as
pending; every other source row must be in the warehouse exactly: the number of keys
per table, and per currency the sums of the quantity and money columns.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import Connection, func, select, table

from totesys_cli.db import engine, translate_errors
from totesys_cli.errors import RuntimeFailure
from totesys_cli.schemas import (
    DIMENSION_SOURCES,
    LOADED_RUNS,
    latest_view_name,
    source_table,
    star_table,
)
from totesys_cli.settings import Database

# star table -> (source table, [(label, source expression, warehouse expression)])
FACT_SUMS = {
    "fact_sales_order": (
        "sales_order",
        [("units_sold", "units_sold", None), ("value", "units_sold", "unit_price")],
    ),
    "fact_purchase_orders": (
        "purchase_order",
        [("item_quantity", "item_quantity", None), ("value", "item_quantity", "item_unit_price")],
    ),
    "fact_payment": ("payment", [("payment_amount", "payment_amount", None)]),
}


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

    @property
    def drift(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]


def _snapshot(conn: Connection) -> dt.datetime:
    snapshot = conn.execute(
        select(LOADED_RUNS.c.snapshot_time).order_by(LOADED_RUNS.c.seq.desc()).limit(1)
    ).scalar()
    if snapshot is None:
        raise RuntimeFailure(
            "nothing has been loaded into the warehouse yet", "Run totesys run-all first"
        )
    return snapshot


def _measure(rows, column: str, factor: str | None):
    value = rows.c[column] * rows.c[factor] if factor else rows.c[column]
    return func.coalesce(func.sum(value), 0)


def verify(source: Database, warehouse: Database) -> VerifyResult:
    with (
        translate_errors(warehouse),
        engine(warehouse).connect() as wh,
        translate_errors(source),
        engine(source).connect() as src,
    ):
        snapshot = _snapshot(wh)
        codes = dict(
            src.execute(
                select(
                    source_table("currency").c.currency_id, source_table("currency").c.currency_code
                )
            ).all()
        )
        checks: list[Check] = []
        pending: dict[str, int] = {}
        for star, source_name in DIMENSION_SOURCES.items():
            checks.append(_count(src, wh, star, source_name, snapshot, pending))
        for star, (source_name, measures) in FACT_SUMS.items():
            checks.append(_count(src, wh, star, source_name, snapshot, pending))
            checks += _sums(src, wh, star, source_name, measures, snapshot, codes)
    return VerifyResult(snapshot, checks, pending)


def _changed_keys(src: Connection, source_name: str, snapshot: dt.datetime) -> list[int]:
    rows = source_table(source_name)
    key = rows.primary_key.columns[0]
    return list(src.execute(select(key).where(rows.c.last_updated > snapshot)).scalars())


def _warehouse_rows(star: str):
    """The latest version of each source row: a fact's *_latest view, or the dimension."""
    columns = star_table(star).columns
    name = latest_view_name(star) if star.startswith("fact_") else star
    return table(name, *(c._copy() for c in columns))


def _count(src, wh, star, source_name, snapshot, pending) -> Check:
    rows = source_table(source_name)
    changed = _changed_keys(src, source_name, snapshot)
    pending[star] = len(changed)
    expected = src.execute(
        select(func.count()).select_from(rows).where(rows.c.last_updated <= snapshot)
    ).scalar_one()
    target = _warehouse_rows(star)
    key = target.c[_star_key(star)]
    actual = wh.execute(
        select(func.count()).select_from(target).where(key.not_in(changed))
    ).scalar_one()
    return Check(star, "rows", expected, actual)


def _star_key(star: str) -> str:
    declared = star_table(star)
    return declared.info.get("source_key") or declared.primary_key.columns[0].name


def _sums(src, wh, star, source_name, measures, snapshot, codes) -> list[Check]:
    rows = source_table(source_name)
    changed = _changed_keys(src, source_name, snapshot)
    target = _warehouse_rows(star)
    key = target.c[_star_key(star)]
    checks = []
    source_sums = {
        r[0]: r[1:]
        for r in src.execute(
            select(rows.c.currency_id, *(_measure(rows, a, b) for _, a, b in measures))
            .where(rows.c.last_updated <= snapshot)
            .group_by(rows.c.currency_id)
        )
    }
    warehouse_sums = {
        r[0]: r[1:]
        for r in wh.execute(
            select(target.c.currency_id, *(_measure(target, a, b) for _, a, b in measures))
            .where(key.not_in(changed))
            .group_by(target.c.currency_id)
        )
    }
    for currency in sorted(set(source_sums) | set(warehouse_sums)):
        want = source_sums.get(currency, (0,) * len(measures))
        got = warehouse_sums.get(currency, (0,) * len(measures))
        for (label, _, _), expected, actual in zip(measures, want, got, strict=True):
            code = codes.get(currency, str(currency))
            checks.append(Check(star, f"sum({label}) {code}", expected, actual))
    return checks
