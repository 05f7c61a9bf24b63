"""The live dashboard: a small HTTP server over the warehouse, and the report file.

Each page view and each refresh runs the queries in one read-only transaction, so the
figures are always the warehouse's current ones and agree with each other. The server
binds to 127.0.0.1 unless told otherwise; it serves plotly.js itself, so it works with
no network.
"""

from __future__ import annotations

import datetime as dt
import http.server
import json
import logging
import os
import tempfile
import threading
import urllib.parse
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from totesys_cli.dashboard import document, queries
from totesys_cli.dashboard import page as pages
from totesys_cli.db import engine, translate_errors
from totesys_cli.errors import ConfigError, RuntimeFailure, TotesysError
from totesys_cli.settings import Database

log = logging.getLogger(__name__)

REFRESH_SECONDS = 15.0


@cache
def plotly_js() -> bytes:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs().encode()


def parse_filters(query: dict[str, list[str]], currencies: list[str]) -> queries.Filters:
    """Filters from a query string (?from=2025-01-01&to=2025-03-31&currency=GBP)."""

    def day(name: str, default: dt.date) -> dt.date:
        value = (query.get(name) or [""])[0].strip()
        if not value:
            return default
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            raise ConfigError(f"{name}={value!r} is not a date like 2025-01-31") from None

    start, end = day("from", dt.date.min), day("to", dt.date.max)
    if start > end:
        raise ConfigError(f"from {start} is after to {end}")
    currency = (query.get("currency") or [""])[0].strip().upper() or None
    if currency is not None and currency not in currencies:
        raise ConfigError(f"currency {currency!r} is not one the warehouse holds")
    return queries.Filters(start=start, end=end, currency=currency)


class Warehouse:
    """Runs the figures' queries against the warehouse.

    The warehouse changes when a load commits, which `totesys_meta.loaded_runs`
    records: each request reads that first (one small query) and reuses the figures
    computed for the same filters since the last load, so an open page refreshing every
    few seconds costs the warehouse almost nothing, while every new load shows at once.
    """

    CACHED = 32  # filter combinations kept

    def __init__(self, db: Database):
        self.db = db
        self.engine: Engine = engine(db)
        self._cache: dict[tuple, pages.Results] = {}
        self._lock = threading.Lock()

    def results(self, filters: queries.Filters) -> pages.Results:
        figures = tuple(n for n in queries.QUERIES if n != "freshness")
        with translate_errors(self.db), self.engine.connect() as conn:
            fresh = queries.run_all(conn, filters, ("freshness",))
            row = fresh["freshness"][0]
            key = (filters, row["runs"], row["last_load"], row["checked_at"].date())
            with self._lock:
                results = self._cache.get(key)
            if results is None:  # in the same snapshot as the freshness read above
                results = {name: queries.run(conn, name, filters) for name in figures}
                with self._lock:
                    self._cache[key] = results
                    while len(self._cache) > self.CACHED:
                        del self._cache[next(iter(self._cache))]
        return {**results, **fresh}

    def currencies(self) -> list[str]:
        with translate_errors(self.db), self.engine.connect() as conn:
            return [r["currency"] for r in queries.run(conn, "currencies")]

    def page(self, filters: queries.Filters) -> pages.Page:
        return pages.build(self.results(filters), filters)

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


def write_report(warehouse: Warehouse, filters: queries.Filters, out: str) -> int:
    """The report as one self-contained file (plotly.js inlined); returns its size."""
    html = document.render(warehouse.page(filters), plotly_js=plotly_js().decode())
    body = html.encode()
    if out.startswith("s3://"):
        _put_s3(out, body)
    else:
        _write_atomically(Path(out), body)
    return len(body)


def _write_atomically(path: Path, body: bytes) -> None:
    """Whole or not at all: a reader never sees half a report."""
    folder = path.parent
    if not folder.is_dir():
        raise ConfigError(f"cannot write {path}: {folder} is not a folder")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{path.name}.", delete=False) as tmp:
            try:
                tmp.write(body)
                tmp.close()
                os.replace(tmp.name, path)
            except OSError:
                os.unlink(tmp.name)
                raise
    except OSError as err:
        raise ConfigError(f"cannot write {path}: {err.strerror}") from None


def _put_s3(url: str, body: bytes) -> None:
    import botocore.exceptions

    from totesys_cli import aws

    parsed = urllib.parse.urlparse(url)
    if not parsed.netloc or not parsed.path.strip("/"):
        raise ConfigError(f"{url} names no object; give s3://bucket/path/report.html")
    try:
        aws.client("s3").put_object(
            Bucket=parsed.netloc,
            Key=parsed.path.lstrip("/"),
            Body=body,
            ContentType="text/html; charset=utf-8",
        )
    except botocore.exceptions.BotoCoreError as err:
        raise RuntimeFailure(f"could not write {url}: {err}") from None
    except botocore.exceptions.ClientError as err:
        code = err.response.get("Error", {}).get("Code", "")
        raise ConfigError(f"could not write {url}: {code or err}") from None


class _Handler(http.server.BaseHTTPRequestHandler):
    warehouse: Warehouse
    server_version = "totesys-dashboard"
    timeout = 30  # seconds a connection may idle: a browser's unused spare one is dropped

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        routes = {
            "/": self._page,
            "/figures.json": self._figures,
            "/report.html": self._report,
            "/plotly.min.js": self._plotly,
        }
        route = routes.get(url.path)
        if route is None:
            self._send(404, "text/plain; charset=utf-8", b"not found\n")
            return
        try:
            route(urllib.parse.parse_qs(url.query))
        except ConfigError as err:
            self._send(400, "text/plain; charset=utf-8", f"{err.problem}\n".encode())
        except TotesysError as err:
            log.error("the dashboard could not read the warehouse: %s", err.problem)
            self._send(503, "text/plain; charset=utf-8", f"{err.problem}\n".encode())

    def _filters(self, query: dict[str, list[str]]) -> queries.Filters:
        return parse_filters(query, self.warehouse.currencies())

    def _page(self, query: dict[str, list[str]]) -> None:
        page = self.warehouse.page(self._filters(query))
        body = document.render(page, live_seconds=REFRESH_SECONDS).encode()
        self._send(200, "text/html; charset=utf-8", body)

    def _figures(self, query: dict[str, list[str]]) -> None:
        page = self.warehouse.page(self._filters(query))
        update: dict[str, Any] = {
            "cards": document.cards_html(page),
            "freshness": page.freshness,
            "figures": document.figures_json(page),
        }
        self._send(200, "application/json", json.dumps(update).encode())

    def _report(self, query: dict[str, list[str]]) -> None:
        page = self.warehouse.page(self._filters(query))
        body = document.render(page, plotly_js=plotly_js().decode()).encode()
        self._send(
            200,
            "text/html; charset=utf-8",
            body,
            {"Content-Disposition": 'attachment; filename="totesys-report.html"'},
        )

    def _plotly(self, _query: dict[str, list[str]]) -> None:
        self._send(
            200,
            "application/javascript",
            plotly_js(),
            {"Cache-Control": "public, max-age=86400"},
        )

    def _send(
        self, status: int, kind: str, body: bytes, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


def make_server(warehouse: Warehouse, host: str, port: int) -> http.server.ThreadingHTTPServer:
    handler = type("Handler", (_Handler,), {"warehouse": warehouse})
    try:
        server = http.server.ThreadingHTTPServer((host, port), handler)
    except OSError as err:
        raise ConfigError(
            f"cannot listen on {host}:{port}: {err.strerror}",
            "Pass another --port, or stop what is using it",
        ) from None
    server.daemon_threads = True
    return server
