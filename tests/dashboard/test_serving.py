"""The dashboard as a server others can reach: bounded under load, answering only to its
own host names and, when it has a token, only to a browser that showed it. All on
loopback; the installed command as a subprocess."""

from __future__ import annotations

import gzip
import http.client
import json
import logging
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import create_engine, text

from tests.dashboard.support import serving
from tests.support import Pipeline, totesys
from totesys_cli.dashboard import reading
from totesys_cli.dashboard.access import Access

TOKEN = "correct-horse-battery-staple-42"


def request(
    url: str, path: str = "/", method: str = "GET", headers: dict | None = None, timeout=30
) -> tuple[int, dict[str, str], bytes]:
    """One request, redirects not followed; the headers with lower-case names."""
    where = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(where.hostname, where.port, timeout=timeout)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def dashboard(loaded, tmp_path_factory) -> Iterator[str]:
    with serving(loaded.warehouse_url, tmp_path_factory.mktemp("serving")) as url:
        yield url


def test_a_foreign_host_name_gets_403(dashboard):
    """A page on another site that rebinds its name to 127.0.0.1 sends its own name."""
    port = urllib.parse.urlsplit(dashboard).port
    status, _, body = request(dashboard, headers={"Host": f"evil.example:{port}"})
    assert status == 403 and b"--allow-host" in body
    assert request(dashboard, "/figures.json", headers={"Host": "evil.example"})[0] == 403
    for allowed in (f"localhost:{port}", f"127.0.0.1:{port}", "localhost"):
        assert request(dashboard, headers={"Host": allowed})[0] == 200, allowed


def test_head_healthz_and_gzip(dashboard):
    status, headers, body = request(dashboard, method="HEAD")
    assert status == 200 and body == b"" and int(headers["content-length"]) > 1000
    status, headers, body = request(dashboard, "/healthz")
    health = json.loads(body)
    assert status == 200 and health["warehouse"] == "ok" and health["runs_loaded"] == 2
    assert health["age_seconds"] >= 0 and health["data_as_of"].endswith("Z")
    assert request(dashboard, method="POST")[0] == 405

    plain = request(dashboard, "/plotly.min.js")[2]
    status, headers, packed = request(
        dashboard, "/plotly.min.js", headers={"Accept-Encoding": "gzip, br"}
    )
    assert headers["content-encoding"] == "gzip" and gzip.decompress(packed) == plain
    assert len(packed) < len(plain) / 3
    for path in ("/", "/figures.json", "/pipeline"):
        status, headers, packed = request(dashboard, path, headers={"Accept-Encoding": "gzip"})
        assert status == 200 and headers["content-encoding"] == "gzip", path
        assert gzip.decompress(packed).strip(), path


def test_a_reachable_address_needs_a_token_or_an_explicit_no_auth(loaded, caplog):
    reachable = "0.0.0.0"  # noqa: S104 - refused before it binds
    result = totesys("dashboard", "--warehouse-url", loaded.warehouse_url, "--host", reachable)
    assert result.returncode == 2
    assert "--host 0.0.0.0 lets other machines reach the dashboard, and it has no token" in (
        result.stderr
    )
    result = totesys(
        "dashboard", "--warehouse-url", loaded.warehouse_url, "--token", "short", "--port", "1"
    )
    assert result.returncode == 2 and "give at least 16" in result.stderr
    with caplog.at_level(logging.WARNING):
        access = Access.decide("192.0.2.7", None, no_auth=True)
    assert access.token is None and "has no access token (--no-auth)" in caplog.text
    assert access.host_allowed("192.0.2.7:8050") and not access.host_allowed("evil.example")
    assert Access.decide("::1", None, no_auth=False).host_allowed("[::1]:8050")


def test_the_token_is_taken_once_from_the_url_then_kept_in_a_cookie(loaded, tmp_path):
    env = {"TOTESYS_DASHBOARD_TOKEN": TOKEN}
    with serving(loaded.warehouse_url, tmp_path, env=env) as url:
        assert request(url)[0] == 401
        assert request(url, "/figures.json")[0] == 401
        assert request(url, "/?token=" + TOKEN[:-1] + "x")[0] == 401
        status, headers, _ = request(url, f"/?currency=GBP&token={TOKEN}")
        assert status == 303 and headers["location"] == "/?currency=GBP"
        cookie = headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKEN not in cookie
        jar = {"Cookie": cookie.split(";")[0]}
        assert request(url, "/?currency=GBP", headers=jar)[0] == 200
        assert request(url, "/figures.json", headers=jar)[0] == 200
        assert request(url, "/", headers={"Cookie": "totesys_dashboard=forged"})[0] == 401
        assert request(url, "/healthz")[0] == 200  # a load balancer has no token


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def _server_pid(port: int) -> int:
    """The dashboard process listening on `port` (the test started it)."""
    inode = None
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if int(fields[1].split(":")[1], 16) == port and fields[3] == "0A":
                inode = fields[9]
    import os

    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    return int(pid)
        except OSError:
            continue
    raise AssertionError(f"nothing listens on {port}")


def _slowed(pipeline: Pipeline) -> None:
    """Every request's first read takes 0.2 s, so concurrent requests overlap on the
    warehouse and the pool is what bounds them."""
    with pipeline.warehouse().begin() as conn:
        conn.execute(text("ALTER TABLE totesys_meta.loaded_runs RENAME TO loaded_runs_stored"))
        conn.execute(
            text(
                "CREATE VIEW totesys_meta.loaded_runs AS SELECT l.* "
                "FROM totesys_meta.loaded_runs_stored l, pg_sleep(0.2)"
            )
        )


def test_300_idle_connections_and_100_concurrent_requests_stay_bounded(
    pg, source_url, warehouse_url, tmp_path
):
    """Idle connections hold no thread, the warehouse never sees more connections than
    the pool, no request waits past its timeouts, memory stays bounded, and the server
    answers normally afterwards."""
    pipeline = Pipeline(source_url, warehouse_url, tmp_path / "lake")
    pipeline.run()
    _slowed(pipeline)
    database = warehouse_url.rsplit("/", 1)[1].split("?")[0]
    watcher = create_engine(pg.url("postgres").replace("postgresql://", "postgresql+pg8000://"))
    seen = {"connections": 0, "rss": 0}
    done = threading.Event()
    with serving(warehouse_url, tmp_path) as url:
        port = urllib.parse.urlsplit(url).port
        pid = _server_pid(port)

        def watch() -> None:
            # autocommit: a transaction would see one snapshot of pg_stat_activity
            with watcher.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                while not done.is_set():
                    # clients only: autovacuum may visit the freshly loaded warehouse
                    n = conn.execute(
                        text(
                            "SELECT count(*) FROM pg_stat_activity WHERE datname = :d "
                            "AND backend_type = 'client backend'"
                        ),
                        {"d": database},
                    ).scalar_one()
                    seen["connections"] = max(seen["connections"], n)
                    seen["rss"] = max(seen["rss"], _rss_kb(pid))
                    time.sleep(0.02)

        watching = threading.Thread(target=watch)
        watching.start()
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(300)]
        # ten filter sets, each asked ten times at once: computed once each, then cached
        days = [f"2022-{1 + n % 10:02d}-01" for n in range(100)]
        started = time.perf_counter()
        with ThreadPoolExecutor(100) as pool:
            answers = list(
                pool.map(lambda day: request(url, f"/figures.json?from={day}", timeout=60), days)
            )
        took = time.perf_counter() - started
        done.set()
        watching.join()
        for sock in idle:
            sock.close()
        assert [a[0] for a in answers] == [200] * 100
        assert all(json.loads(a[2])["figures"] for a in answers)
        assert took < 30  # 100 reads of 0.2 s over 4 connections: 5 s, plus the figures
        assert seen["connections"] == reading.POOL, (seen, took)
        assert seen["rss"] < 200_000, seen
        assert request(url)[0] == 200
    watcher.dispose()


def test_an_unexpected_failure_is_one_error_line_and_a_500(caplog):
    from totesys_cli.dashboard.server import Dashboard

    class Broken:
        def reading(self):
            raise ValueError("not what anyone expected")

    app = Dashboard(Broken(), Access.decide("127.0.0.1", None, no_auth=False))
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "HTTP_HOST": "localhost"}
    started: list[str] = []
    with caplog.at_level(logging.ERROR):
        body = app(environ, lambda status, headers: started.append(status))
    assert started == ["500 Internal Server Error"]
    assert body == [b"the dashboard failed; its log says why\n"]
    assert "the dashboard failed on /" in caplog.text


# the limit the trickle test serves with: 10 s in production
TRICKLE_LIMIT = 2


def test_requests_that_trickle_in_are_dropped_and_others_are_served(loaded, tmp_path):
    """Nine hundred connections each sending a header line every half second are never
    idle; each is dropped once its request has been arriving too long (all of them are
    accepted: the limit of open connections is a thousand), and the server answers
    normally afterwards."""
    env = {"TOTESYS_DASHBOARD_REQUEST_SECONDS": str(TRICKLE_LIMIT)}
    with serving(loaded.warehouse_url, tmp_path, env=env) as dashboard:
        port = urllib.parse.urlsplit(dashboard).port
        slow = []
        for _ in range(900):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            slow.append(sock)
        try:
            started = time.monotonic()
            closed: set[int] = set()
            while len(closed) < len(slow) and time.monotonic() - started < TRICKLE_LIMIT + 20:
                for n, sock in enumerate(slow):
                    if n in closed:
                        continue
                    try:
                        sock.sendall(b"X-Trickle: 1\r\n")
                    except OSError:  # reset: the server dropped it
                        closed.add(n)
                time.sleep(0.5)
            took = time.monotonic() - started
            assert len(closed) == len(slow), f"{len(slow) - len(closed)} slow requests still held"
            assert TRICKLE_LIMIT <= took < TRICKLE_LIMIT + 20
            assert request(dashboard, timeout=10)[0] == 200
        finally:
            for sock in slow:
                sock.close()
