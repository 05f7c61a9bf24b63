"""The mapping's own checks on source rows, before any star function sees them.

The extract already set aside what could not be typed; here go the values that type but
cannot be mapped: a text date that is not a YYYY-MM-DD calendar date (or not a plausible
one), and a currency code with no ISO 4217 name. What passes can be mapped without
error, so the star functions stay simple and pure.
"""

from __future__ import annotations

from functools import cache

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Text

from totesys_cli.config.settings import Bounds
from totesys_cli.schemas import FACTS, quality, source_key, source_table, star

CURRENCY = ("currency", "currency_code")


@cache
def text_dates(table: str) -> tuple[str, ...]:
    """The source's text columns that a fact maps to dates."""
    columns = []
    for fact in FACTS:
        if star(fact).source == table:
            source = source_table(table)
            columns += [
                c
                for c in star(fact).date_columns
                if c in source.c and isinstance(source.c[c].type, Text)
            ]
    return tuple(columns)


@cache
def known_currency(code: str) -> bool:
    import pycountry

    return pycountry.currencies.get(alpha_3=code) is not None


def validate(table: str, rows: pa.Table, raw_seq: int, bounds: Bounds) -> tuple[pa.Table, pa.Table]:
    """(the rows that can be mapped, the quarantine entries of those that cannot)."""
    findings = quality.Findings(
        table, rows.column(source_key(table)), rows.column("last_updated"), raw_seq
    )
    for column in text_dates(table):
        quality.text_dates(findings, rows, column, bounds)
    if table == CURRENCY[0] and rows.num_rows:
        codes = rows.column(CURRENCY[1])
        unknown = [c for c in pc.unique(codes).to_pylist() if c is None or not known_currency(c)]
        if unknown:
            findings.add(
                pc.is_in(codes, pa.array(unknown, pa.string())),
                CURRENCY[1],
                codes,
                quality.UNKNOWN_CURRENCY,
            )
    return findings.good(rows), findings.entries()
