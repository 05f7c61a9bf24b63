"""A generated source, a lake and a warehouse, driven step by step through the library."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import text

from tests import expected
from totesys_cli import generator
from totesys_cli import lake as lakes
from totesys_cli.extract import ExtractOptions, extract
from totesys_cli.load import LoadOptions, load
from totesys_cli.schemas import FACTS, STAR_TABLES, data_columns, latest_view_name, star_table
from totesys_cli.settings import build_settings
from totesys_cli.transform import TransformOptions, transform
from totesys_cli.warehouse import init_warehouse


def database_name(url: str) -> str:
    return url.rsplit("/", 1)[1].split("?")[0]


class Pipeline:
    def __init__(self, pg, source_url: str, warehouse_url: str, folder: Path, init=True):
        self.pg = pg
        self.source_url = source_url
        self.warehouse_url = warehouse_url
        self.settings = build_settings(
            source_url=source_url, warehouse_url=warehouse_url, lake_url=str(folder)
        )
        self.raw = lakes.open_lake(self.settings.raw_url, "TEST")
        self.processed = lakes.open_lake(self.settings.processed_url, "TEST")
        self.versions: dict[str, set[tuple]] = {t: set() for t in FACTS}
        if init:
            init_warehouse(self.settings.warehouse)

    def source(self):
        return self.pg.engine(database_name(self.source_url))

    def warehouse(self):
        return self.pg.engine(database_name(self.warehouse_url))

    def extract(self, **options):
        return extract(self.settings.source, self.raw, ExtractOptions(**options))

    def transform(self, **options):
        return transform(self.raw, self.processed, TransformOptions(**options))

    def load(self, since: dt.datetime | None = None):
        return load(self.settings.warehouse, self.processed, LoadOptions(since=since))

    def run(self):
        self.remember()
        self.extract()
        self.transform()
        return self.load()

    def activity(self, step: int = 1, **options):
        self.remember()
        with self.source().begin() as conn:
            return generator.simulate_activity(conn, seed=23, step=step, **options)

    def remember(self) -> None:
        """Every fact version the source has shown so far belongs in the warehouse."""
        with self.source().connect() as conn:
            for fact in FACTS:
                self.versions[fact] |= set(expected.rows(conn, fact))

    def expected(self, table: str) -> list[tuple]:
        with self.source().connect() as conn:
            rows = expected.rows(conn, table)
        if table in FACTS:
            return sorted(self.versions[table] | set(rows))
        return rows

    def actual(self, table: str, relation: str | None = None) -> list[tuple]:
        columns = ", ".join(f'"{c}"' for c in data_columns(star_table(table)))
        with self.warehouse().connect() as conn:
            return sorted(
                tuple(r) for r in conn.execute(text(f'SELECT {columns} FROM "{relation or table}"'))
            )

    def assert_matches_source(self) -> None:
        """The warehouse equals the independent SQL expectation, table by table."""
        for table in STAR_TABLES:
            actual, wanted = self.actual(table), self.expected(table)
            if actual != wanted:
                missing = sorted(set(wanted) - set(actual))[:5]
                extra = sorted(set(actual) - set(wanted))[:5]
                dupes = len(actual) - len(set(actual))
                raise AssertionError(
                    f"{table}: missing {missing}, unexpected {extra}, duplicates {dupes}"
                )
        with self.source().connect() as conn:
            for fact in FACTS:
                current = expected.rows(conn, fact)
                assert self.actual(fact, latest_view_name(fact)) == current, fact

    def assert_current(self) -> None:
        """Dimensions and the *_latest views equal the source now; no version is twice."""
        with self.source().connect() as conn:
            for table in STAR_TABLES:
                current = expected.rows(conn, table)
                if table in FACTS:
                    assert self.actual(table, latest_view_name(table)) == current, table
                    versions = self.actual(table)
                    assert len(versions) == len(set(versions)), table
                    assert set(current) <= set(versions), table
                else:
                    assert self.actual(table) == current, table

    def snapshot(self) -> dict[str, list[tuple]]:
        """Every row of every star table, serial ids included."""
        with self.warehouse().connect() as conn:
            return {
                t: sorted(tuple(r) for r in conn.execute(text(f'SELECT * FROM "{t}"')))
                for t in STAR_TABLES
            }
