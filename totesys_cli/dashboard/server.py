"""The live dashboard: a WSGI application over the warehouse, served by waitress.

Bounded whatever the clients do: a fixed pool of worker threads (idle connections cost
none), a limit on open connections, idle connections dropped after a timeout, a request
that takes too long to arrive dropped however it trickles in (a header line every few
seconds keeps a connection from being idle), small request size limits, and the
warehouse pool of `reading`. Every route but /healthz
checks the request's host name and token (`access`).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import os
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from totesys_cli.config.settings import Settings
from totesys_cli.dashboard import document, health
from totesys_cli.dashboard.access import COOKIE, Access
from totesys_cli.dashboard.reading import Warehouse, open_warehouse, parse_filters
from totesys_cli.errors import ConfigError, TotesysError
from totesys_cli.observe import logs

log = logging.getLogger(__name__)

REFRESH_SECONDS = 15.0
THREADS = 8  # requests worked on at once
CONNECTIONS = 1000  # open client connections; idle ones hold no thread
IDLE_SECONDS = 30  # an idle client connection is closed after this
# a request still arriving after this is dropped, however it trickles; a test of it
# shortens it with TOTESYS_DASHBOARD_REQUEST_SECONDS (not a setting: no operator needs it)
REQUEST_SECONDS = float(os.environ.get("TOTESYS_DASHBOARD_REQUEST_SECONDS") or 10)
HEADER_LIMIT = 16 * 1024  # bytes of request line and headers
BODY_LIMIT = 16 * 1024  # bytes of request body (the dashboard takes none)
COMPRESSED = 1024  # bytes from which a body is sent gzipped to a client that accepts it


@dataclass
class Response:
    status: str
    kind: str
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)
    gzipped: bytes | None = None  # the body compressed ahead, when it is served often


def _text(status: str, line: str) -> Response:
    return Response(status, "text/plain; charset=utf-8", f"{line}\n".encode())


SECURITY_HEADERS = [
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
]


class Dashboard:
    """The WSGI application: routes, host and token checks, compression."""

    def __init__(self, warehouse: Warehouse, access: Access):
        self.warehouse = warehouse
        self.access = access
        self.routes: dict[str, Callable[[dict[str, list[str]]], Response]] = {
            "/": self.business,
            "/figures.json": self.figures,
            "/report.html": self.report,
            "/pipeline": self.pipeline,
            "/pipeline.json": self.pipeline_figures,
            "/plotly.min.js": self.plotly,
        }

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> list[bytes]:
        response = self.respond(environ)
        accepts = environ.get("HTTP_ACCEPT_ENCODING", "")
        body = response.body
        headers = [("Content-Type", response.kind), *SECURITY_HEADERS, *response.headers]
        if len(body) >= COMPRESSED:
            headers.append(("Vary", "Accept-Encoding"))
            if "gzip" in accepts:
                body = response.gzipped or gzip.compress(body, 5)
                headers.append(("Content-Encoding", "gzip"))
        headers.append(("Content-Length", str(len(body))))
        start_response(response.status, headers)
        return [b"" if environ["REQUEST_METHOD"] == "HEAD" else body]

    def respond(self, environ: dict[str, Any]) -> Response:
        path = environ.get("PATH_INFO", "/")
        if environ["REQUEST_METHOD"] not in ("GET", "HEAD"):
            response = _text("405 Method Not Allowed", "only GET and HEAD are served")
            response.headers.append(("Allow", "GET, HEAD"))
            return response
        if path == "/healthz":  # for a load balancer: no figures, no host or token check
            return self.health()
        if not self.access.host_allowed(environ.get("HTTP_HOST", "")):
            return _text(
                "403 Forbidden",
                "this dashboard does not answer to that host name; its server can allow "
                "it with --allow-host",
            )
        query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
        if self.access.token is not None:
            refused = self._authenticate(environ, path, query)
            if refused is not None:
                return refused
        route = self.routes.get(path)
        if route is None:
            return _text("404 Not Found", "not found")
        try:
            return route(query)
        except ConfigError as err:
            return _text("400 Bad Request", err.problem)
        except TotesysError as err:
            log.error("the dashboard could not read the warehouse: %s", err.problem)
            return _text("503 Service Unavailable", err.problem)
        except Exception:  # one ERROR line (the alarm's), one 500; the server goes on
            log.exception("the dashboard failed on %s", path)
            return _text("500 Internal Server Error", "the dashboard failed; its log says why")

    def _authenticate(
        self, environ: dict[str, Any], path: str, query: dict[str, list[str]]
    ) -> Response | None:
        """None when the browser showed the token; else the answer to give it. The token
        is taken once from the URL, then kept in an HttpOnly cookie."""
        if self.access.shown_in_cookie(environ.get("HTTP_COOKIE", "")):
            return None
        given = (query.get("token") or [""])[0]
        if given and self.access.shown_in_url(given):
            rest = urllib.parse.urlencode({k: v for k, v in query.items() if k != "token"}, True)
            cookie = f"{COOKIE}={self.access.cookie_value()}; HttpOnly; SameSite=Strict; Path=/"
            response = _text("303 See Other", "signed in")
            response.headers += [
                ("Location", path + (f"?{rest}" if rest else "")),
                ("Set-Cookie", cookie),
                ("Cache-Control", "no-store"),
            ]
            return response
        return _text(
            "401 Unauthorized",
            "this dashboard needs its access token: open it once with ?token=<the token>",
        )

    # -------------------------------------------------------------- routes

    def business(self, query: dict[str, list[str]]) -> Response:
        with self.warehouse.reading() as reading:
            rendered = reading.rendered(parse_filters(query, reading.currencies()))
        body = document.render(
            rendered.page, live_seconds=REFRESH_SECONDS, figures=rendered.figures
        )
        return Response("200 OK", "text/html; charset=utf-8", body.encode(), _no_store())

    def figures(self, query: dict[str, list[str]]) -> Response:
        with self.warehouse.reading() as reading:
            rendered = reading.rendered(parse_filters(query, reading.currencies()))
            freshness = reading.freshness()
        body = document.update_json(freshness, {"cards": rendered.cards}, rendered.figures)
        return Response("200 OK", "application/json", body.encode(), _no_store())

    def report(self, query: dict[str, list[str]]) -> Response:
        with self.warehouse.reading() as reading:
            rendered = reading.rendered(parse_filters(query, reading.currencies()))
        html = document.render(
            rendered.page, plotly_js=document.plotly_js().decode(), figures=rendered.figures
        )
        headers = [("Content-Disposition", 'attachment; filename="totesys-report.html"')]
        return Response("200 OK", "text/html; charset=utf-8", html.encode(), headers)

    def pipeline(self, _query: dict[str, list[str]]) -> Response:
        with self.warehouse.reading() as reading:
            page = reading.pipeline()
        body = health.render(page, live_seconds=REFRESH_SECONDS)
        return Response("200 OK", "text/html; charset=utf-8", body.encode(), _no_store())

    def pipeline_figures(self, _query: dict[str, list[str]]) -> Response:
        with self.warehouse.reading() as reading:
            page = reading.pipeline()
        return Response("200 OK", "application/json", health.update(page).encode(), _no_store())

    def plotly(self, _query: dict[str, list[str]]) -> Response:
        return Response(
            "200 OK",
            "application/javascript",
            document.plotly_js(),
            [("Cache-Control", "public, max-age=86400")],
            gzipped=document.plotly_js_gzipped(),
        )

    def health(self) -> Response:
        """200 with the data's age while the warehouse answers; 503 when it does not."""
        try:
            with self.warehouse.reading() as reading:
                row = reading.fresh[0]
        except TotesysError as err:
            body = {"warehouse": "unreachable", "problem": err.problem}
            return Response(
                "503 Service Unavailable", "application/json", json.dumps(body).encode()
            )
        as_of = row["data_as_of"]
        age = (row["checked_at"] - as_of).total_seconds() if as_of else None
        body = {
            "warehouse": "ok",
            "data_as_of": as_of.isoformat() + "Z" if as_of else None,
            "age_seconds": round(age, 1) if age is not None else None,
            "runs_loaded": row["runs"],
        }
        return Response("200 OK", "application/json", json.dumps(body).encode(), _no_store())


def _no_store() -> list[tuple[str, str]]:
    return [("Cache-Control", "no-store")]


def _bounded(server: Any) -> Any:
    """`server` closing, at each of its maintenance passes, every connection whose request
    has been arriving for more than REQUEST_SECONDS (waitress bounds only idle time)."""
    import time

    from waitress.channel import HTTPChannel
    from waitress.parser import HTTPRequestParser

    class TimedParser(HTTPRequestParser):
        def __init__(self, adj: Any):
            super().__init__(adj)
            self.started = time.time()

    class BoundedChannel(HTTPChannel):
        parser_class = TimedParser

    idle = server.maintenance

    def maintenance(now: float) -> None:
        idle(now)
        cutoff = now - REQUEST_SECONDS
        for channel in list(server.active_channels.values()):
            arriving = getattr(channel, "request", None)
            if arriving is not None and not channel.requests and arriving.started < cutoff:
                channel.will_close = True

    server.channel_class = BoundedChannel
    server.maintenance = maintenance
    return server


@contextlib.contextmanager
def serving(
    settings: Settings,
    host: str,
    port: int,
    token: str | None,
    no_auth: bool,
    allowed: tuple[str, ...] = (),
) -> Iterator[Any]:
    """`totesys dashboard`: the server bound to `host`:`port` over the warehouse of
    `settings`, ready to `run()`; the warehouse's connections are closed on leaving."""
    warehouse = open_warehouse(settings)
    try:
        with logs.step("dashboard"):
            access = Access.decide(host, token, no_auth, allowed)  # before any bind
            warehouse.check()
            httpd = make_server(Dashboard(warehouse, access), host, port)
        yield httpd
    finally:
        warehouse.close()


def make_server(app: Dashboard, host: str, port: int) -> Any:
    """A waitress server for `app` on host:port, bounded as the module says."""
    from waitress.server import create_server

    try:
        return _bounded(
            create_server(
                app,
                host=host,
                port=port,
                threads=THREADS,
                connection_limit=CONNECTIONS,
                channel_timeout=IDLE_SECONDS,
                cleanup_interval=max(1, min(5, round(REQUEST_SECONDS / 2))),  # passes dropping them
                max_request_header_size=HEADER_LIMIT,
                max_request_body_size=BODY_LIMIT,
                asyncore_use_poll=True,  # more than 1,024 sockets
                ident="totesys-dashboard",
                expose_tracebacks=False,
            )
        )
    except OSError as err:
        raise ConfigError(
            f"cannot listen on {host}:{port}: {err.strerror}",
            "Pass another --port, or stop what is using it",
        ) from None
