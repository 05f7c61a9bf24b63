"""The dashboard's reads of the warehouse: a bounded pool, one connection and one
read-only snapshot per request, and what each load gives computed once.

The warehouse changes when a load commits, which `totesys_meta.loaded_runs` records: a
request reads that first (one small query) and reuses what was computed for the same
load and filters, so an open page refreshing every few seconds costs almost nothing,
while a new load shows at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine

from totesys_cli.config.settings import Settings
from totesys_cli.config.urls import Database
from totesys_cli.dashboard import document, health, queries
from totesys_cli.dashboard import page as pages
from totesys_cli.db import engine, translate_errors
from totesys_cli.errors import ConfigError, RuntimeFailure
from totesys_cli.runtime.endpoints import PROCESSED, RAW, WAREHOUSE, open_endpoints

POOL = 4  # warehouse connections, whatever the number of clients
POOL_WAIT = 10.0  # seconds a request waits for one, then gets a 503
STATEMENT_SECONDS = 20.0  # a dashboard query longer than this is cancelled


def parse_filters(query: dict[str, list[str]], currencies: list[str]) -> queries.Filters:
    """Filters from a query string (?from=2025-01-01&to=2025-03-31&currency=GBP)."""

    def day(name: str) -> dt.date | None:
        value = (query.get(name) or [""])[0].strip()
        if not value:
            return None
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            raise ConfigError(f"{name}={value!r} is not a date like 2025-01-31") from None

    currency = (query.get("currency") or [""])[0]
    return filters(day("from"), day("to"), currency, currencies)


def filters(
    start: dt.date | None,
    end: dt.date | None,
    currency: str | None,
    currencies: list[str],
    names: tuple[str, str] = ("from", "to"),
) -> queries.Filters:
    """Filters of days (None: unbounded) and a currency the warehouse holds; `names`
    are the days' names in a message (the report's options, the page's parameters)."""
    if start is not None and end is not None and start > end:
        raise ConfigError(f"{names[0]} {start} is after {names[1]} {end}")
    return queries.Filters(
        start=start or dt.date.min,
        end=end or dt.date.max,
        currency=held_currency(currency, currencies),
    )


def open_warehouse(settings: Settings) -> Warehouse:
    """The warehouse `settings` configures, with the lake's zones when they are given
    (the pipeline page measures them)."""
    ends = open_endpoints(settings, (WAREHOUSE,), (RAW, PROCESSED))
    return Warehouse(ends.warehouse, lake=ends)


def held_currency(given: str | None, currencies: list[str]) -> str | None:
    """The currency code as the warehouse stores it (a source may store `gbp`), matched
    whatever its case; None for none given."""
    wanted = (given or "").strip()
    if not wanted:
        return None
    for code in currencies:
        if code.upper() == wanted.upper():
            return code
    raise ConfigError(
        f"currency {wanted!r} is not one the warehouse holds",
        f"Give one of {', '.join(currencies)}",
    )


# ---------------------------------------------------------------- the warehouse


@dataclass(frozen=True)
class Rendered:
    """What one load and one set of filters give, computed once."""

    page: pages.Page
    figures: str  # the figures as JSON
    cards: str  # the headline cards as HTML


class Warehouse:
    """The figures of the warehouse, through a bounded pool, cached per load."""

    CACHED = 64  # entries kept: (load, filters) pairs and per-load facts

    def __init__(self, db: Database, pool: int = POOL, lake: Any = None):
        self.db = dataclasses.replace(db, statement_timeout=STATEMENT_SECONDS)
        self.engine: Engine = engine(self.db, pool=pool, wait=POOL_WAIT)
        self.lake = lake  # the endpoints whose zones the pipeline page measures, if any
        self._cache: OrderedDict[tuple, Any] = OrderedDict()
        self._computing: dict[tuple, threading.Lock] = {}
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def reading(self) -> Iterator[Reading]:
        """One pooled connection, in one read-only snapshot, with the load it shows."""
        with translate_errors(self.db), self.engine.connect() as conn:
            fresh = queries.run_all(conn, queries.Filters(), ("freshness",))["freshness"]
            row = fresh[0]
            load = (row["runs"], row["last_load"], row["checked_at"].date())
            yield Reading(self, conn, load, fresh)

    def cached(self, key: tuple, compute: Callable[[], Any]) -> Any:
        """`compute()` once per key, even when many requests ask for it at once."""
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
            computing = self._computing.setdefault(key, threading.Lock())
        with computing:
            with self._lock:
                if key in self._cache:
                    return self._cache[key]
            value = compute()
            with self._lock:
                self._cache[key] = value
                self._computing.pop(key, None)
                while len(self._cache) > self.CACHED:
                    self._cache.popitem(last=False)
        return value

    def results(self, filters: queries.Filters) -> pages.Results:
        with self.reading() as reading:
            return reading.results(filters)

    def currencies(self) -> list[str]:
        with self.reading() as reading:
            return reading.currencies()

    def page(self, filters: queries.Filters) -> pages.Page:
        with self.reading() as reading:
            return reading.rendered(filters).page

    def check(self) -> None:
        """Fail at once, in one line, when the warehouse lacks what the queries read."""
        with translate_errors(self.db), self.engine.connect() as conn:
            missing = queries.missing_relations(conn)
        if missing:
            raise RuntimeFailure(
                f"the warehouse at {self.db.where} cannot answer the dashboard's queries: "
                f"it has no {', '.join(missing)}",
                "Run `totesys init` and `totesys run-all` first",
            )

    def close(self) -> None:
        self.engine.dispose()


@dataclass
class Reading:
    """One request's view of the warehouse: its connection, snapshot and load."""

    warehouse: Warehouse
    conn: Connection
    load: tuple
    fresh: list[dict[str, Any]]

    def freshness(self) -> str:
        return pages.freshness(self.fresh)

    def currencies(self) -> list[str]:
        def read() -> list[str]:
            return [r["currency"] for r in queries.run(self.conn, "currencies")]

        return self.warehouse.cached((self.load, "currencies"), read)

    def results(self, filters: queries.Filters) -> pages.Results:
        figures = tuple(n for n in queries.QUERIES if n != "freshness")

        def read() -> pages.Results:  # in the snapshot the load was read in
            return {name: queries.run(self.conn, name, filters) for name in figures}

        return {**self.warehouse.cached((self.load, filters), read), "freshness": self.fresh}

    def rendered(self, filters: queries.Filters) -> Rendered:
        def render() -> Rendered:
            page = pages.build(self.results(filters), filters)
            return Rendered(page, document.figures_text(page), document.cards_html(page))

        done = self.warehouse.cached((self.load, filters, "rendered"), render)
        page = dataclasses.replace(done.page, freshness=self.freshness())  # its age moves on
        return dataclasses.replace(done, page=page)

    def pipeline(self) -> health.PipelinePage:
        """Read afresh each time: runs are recorded between loads too."""
        return health.build(health.read(self.conn, self.warehouse.lake), self.freshness())
