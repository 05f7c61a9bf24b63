"""`totesys dashboard` and `totesys report` as users run them: the installed command as a
subprocess, the page in headless Chromium (Debian's `chromium`), the report offline."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from sqlalchemy import text

from tests.dashboard.support import get, serving
from tests.support import Pipeline, require, totesys

CHARTS = (
    "revenue-by-month",
    "units-by-month",
    "revenue-by-country",
    "revenue-by-city",
    "designs-by-units",
    "designs-by-revenue",
    "sales-by-staff",
    "sales-by-department",
    "spend-by-counterparty",
    "spend-by-item",
    "payments-by-status",
)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def dashboard(loaded, tmp_path_factory) -> Iterator[str]:
    with serving(loaded.warehouse_url, tmp_path_factory.mktemp("dashboard")) as url:
        yield url


def test_the_dashboard_serves_its_page_figures_library_and_report(dashboard):
    status, body = get(dashboard)
    assert status == 200
    page = body.decode()
    assert all(f'id="{chart}"' in page for chart in CHARTS)
    assert '<script src="plotly.min.js">' in page  # served here: no network needed
    status, body = get(dashboard + "plotly.min.js")
    assert status == 200 and len(body) > 1_000_000
    status, body = get(dashboard + "figures.json?from=2024-01-01&to=2024-06-30&currency=GBP")
    assert status == 200 and b'"figures"' in body
    status, body = get(dashboard + "report.html")
    assert status == 200 and b"Plotly" in body and b'src="plotly.min.js"' not in body


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("?from=yesterday", "from='yesterday' is not a date like 2025-01-31"),
        ("?from=2025-02-01&to=2025-01-01", "from 2025-02-01 is after to 2025-01-01"),
        ("?currency=XYZ", "currency 'XYZ' is not one the warehouse holds"),
        ("?currency=%27%3B--", 'currency "\';--" is not one the warehouse holds'),
    ],
)
def test_bad_filters_get_a_400_with_one_line(dashboard, query, message):
    status, body = get(dashboard + query)
    assert (status, body.decode()) == (400, message + "\n")


def test_stopping_never_waits_on_an_idle_connection(loaded, tmp_path):
    """Browsers open spare connections and may never use them."""
    with serving(loaded.warehouse_url, tmp_path) as url:
        port = int(url.rsplit(":", 1)[1].strip("/"))
        idle = socket.create_connection(("127.0.0.1", port))
        assert get(url + "healthy-or-not")[0] == 404  # the server still answers others
        started = time.perf_counter()
    assert time.perf_counter() - started < 10
    idle.close()


def test_unknown_paths_are_404(dashboard):
    assert get(dashboard + "../../etc/passwd")[0] == 404
    assert get(dashboard + "admin")[0] == 404


# ---------------------------------------------------------------- in Chromium


@pytest.fixture(scope="module")
def browser() -> Iterator:
    require(CHROMIUM is not None, "headless Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        yield chromium
        chromium.close()


def _rendered_charts(page) -> dict[str, dict]:
    """Each chart's plotly SVG and its size, once plotly has drawn it."""
    sizes = {}
    for chart in CHARTS:
        svg = page.locator(f"#{chart} svg.main-svg").first
        svg.wait_for(state="visible", timeout=20_000)
        sizes[chart] = svg.bounding_box()
    return sizes


def _cards(page) -> str:
    return page.locator("#cards").inner_text()


def test_every_chart_renders_and_the_date_filter_changes_the_figures(dashboard, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(dashboard)
    page.wait_for_load_state("networkidle")
    assert errors == []
    sizes = _rendered_charts(page)
    assert all(box and box["width"] > 100 and box["height"] > 100 for box in sizes.values())
    # bars, lines and markers were drawn, not just empty axes
    for chart in CHARTS:
        drawn = page.locator(f"#{chart} .trace, #{chart} .point, #{chart} path.js-line")
        assert drawn.count() > 0, chart
    everything = _cards(page)
    assert "Revenue" in everything and "GBP" in everything
    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)

    first = dt.date.fromisoformat(page.input_value("#from"))
    page.fill("#to", (first + dt.timedelta(days=90)).isoformat())  # the first quarter
    with page.expect_navigation():
        page.click("#apply")
    assert "to=" in page.url
    _rendered_charts(page)
    narrowed = _cards(page)
    assert errors == []
    assert narrowed != everything
    page.screenshot(path=str(tmp_path / "dashboard-narrowed.png"), full_page=True)
    assert (tmp_path / "dashboard.png").stat().st_size > 10_000
    # the report link gives the report for the filters on screen
    with page.expect_download() as download:
        page.click("#report-link")
    report = download.value
    assert report.url == dashboard + "report.html?" + page.url.split("?", 1)[1]
    saved = tmp_path / "downloaded.html"
    report.save_as(saved)
    end = page.input_value("#to")
    assert f"Orders created from {first.isoformat()} to {end}" in saved.read_text()
    page.close()


def test_an_open_page_follows_the_warehouse_as_runs_load(
    pg, source_url, warehouse_url, browser, tmp_path
):
    pipeline = Pipeline(source_url, warehouse_url, tmp_path / "lake")
    pipeline.run()
    with serving(warehouse_url, tmp_path, stop=signal.SIGTERM) as url:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        _rendered_charts(page)
        before = _cards(page)
        assert page.inner_text("#freshness").endswith(", 1 run loaded")
        pipeline.activity(step=1, sales_orders=40)
        pipeline.run()
        page.evaluate("refresh()")  # what the page does every 15 seconds
        page.wait_for_function(
            "document.getElementById('freshness').textContent.endsWith(', 2 runs loaded')"
        )
        assert _cards(page) != before
        orders = page.locator(".card", has_text="Sales orders").inner_text()
        assert orders.split()[-1] == f"{300 + 40:,}"
        page.close()


def test_the_report_opens_offline_with_the_same_charts(loaded, browser, tmp_path):
    out = tmp_path / "report.html"
    result = totesys("report", "--warehouse-url", loaded.warehouse_url, "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"report written to {out} (")
    context = browser.new_context(offline=True)
    requested = []
    context.on("request", lambda request: requested.append(request.url))
    page = context.new_page()
    page.goto(out.as_uri())
    sizes = _rendered_charts(page)
    assert all(box["width"] > 100 and box["height"] > 100 for box in sizes.values())
    assert requested == [out.as_uri()]  # nothing fetched: everything is in the file
    assert page.locator("#filters").count() == 0  # a report describes its filters instead
    assert "Orders created from" in page.inner_text(".range")
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    context.close()


# ---------------------------------------------------------------- the commands' edges


def test_report_with_filters_to_a_file_and_to_s3(loaded, tmp_path, moto_endpoint):
    out = tmp_path / "march.html"
    args = ["--from", "2024-03-01", "--to", "2024-03-31", "--currency", "gbp"]
    result = totesys("report", "--warehouse-url", loaded.warehouse_url, "--out", str(out), *args)
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    assert "Orders created from 2024-03-01 to 2024-03-31" in text and "; GBP" in text
    s3 = boto3.client("s3", region_name="eu-west-2")
    s3.create_bucket(
        Bucket="reports", CreateBucketConfiguration={"LocationConstraint": "eu-west-2"}
    )
    result = totesys(
        "report", "--warehouse-url", loaded.warehouse_url, "--out", "s3://reports/daily/r.html"
    )
    assert result.returncode == 0, result.stderr
    stored = s3.get_object(Bucket="reports", Key="daily/r.html")
    assert stored["ContentType"] == "text/html; charset=utf-8"
    assert b"Plotly" in stored["Body"].read()
    missing = totesys(
        "report", "--warehouse-url", loaded.warehouse_url, "--out", "s3://no-such-bucket/r.html"
    )
    assert missing.returncode == 2
    (error,) = missing.stderr.strip().splitlines()
    assert "could not write s3://no-such-bucket/r.html: NoSuchBucket" in error


def test_a_warehouse_never_loaded_gives_empty_charts_and_says_so(warehouse_url, tmp_path):
    assert totesys("init", "--warehouse-url", warehouse_url).returncode == 0
    out = tmp_path / "r.html"
    result = totesys("report", "--warehouse-url", warehouse_url, "--out", str(out))
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    assert "No run has been loaded yet" in text
    assert text.count("Nothing for these filters") == len(CHARTS)


@pytest.mark.parametrize(
    ("args", "code", "line"),
    [
        (["--currency", "XYZ"], 2, "currency 'XYZ' is not one the warehouse holds"),
        (["--from", "2025-02-01", "--to", "2025-01-01"], 2, "--from 2025-02-01 is after"),
        (["--out", "/nonexistent/folder/r.html"], 2, "/nonexistent/folder is not a folder"),
        (["--out", "s3://"], 2, "s3:// names no object"),
    ],
)
def test_report_bad_input_is_one_line_and_writes_nothing(loaded, tmp_path, args, code, line):
    out = ["--out", str(tmp_path / "r.html")] if "--out" not in args else []
    result = totesys("report", "--warehouse-url", loaded.warehouse_url, *out, *args)
    assert result.returncode == code
    (error,) = result.stderr.strip().splitlines()
    assert line in error
    assert not list(tmp_path.iterdir())


def test_a_report_onto_a_folder_is_one_line_and_leaves_nothing(loaded, tmp_path):
    (tmp_path / "taken").mkdir()
    result = totesys(
        "report", "--warehouse-url", loaded.warehouse_url, "--out", str(tmp_path / "taken")
    )
    assert result.returncode == 2
    (error,) = result.stderr.strip().splitlines()
    assert f"cannot write {tmp_path / 'taken'}: Is a directory" in error
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]


def test_an_empty_warehouse_says_to_run_the_pipeline_first(pg, warehouse_url, tmp_path):
    for command in (["report", "--out", str(tmp_path / "r.html")], ["dashboard"]):
        result = totesys(command[0], "--warehouse-url", warehouse_url, *command[1:])
        assert result.returncode == 1
        (error,) = result.stderr.strip().splitlines()
        assert "cannot answer the dashboard's queries" in error
        assert "Run `totesys init` and `totesys run-all` first" in error


def test_a_port_in_use_is_one_line(loaded):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = totesys(
            "dashboard", "--warehouse-url", loaded.warehouse_url, "--port", str(port), timeout=30
        )
    assert result.returncode == 2
    (error,) = result.stderr.strip().splitlines()
    assert f"cannot listen on 127.0.0.1:{port}" in error and "Pass another --port" in error


def test_the_report_needs_no_server_and_keeps_no_temporary_file(loaded, tmp_path):
    out = tmp_path / "r.html"
    out.write_text("old")
    result = totesys("report", "--warehouse-url", loaded.warehouse_url, "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]
    assert out.stat().st_size > 1_000_000 and os.access(out, os.R_OK)
    assert Path(out).read_text().startswith("<!DOCTYPE html>")


HOSTILE = (
    "Sales <!--<script>",
    "</script><script>window.pwned=1</script>",
    "A & B \u2028 C",
    "\"Q\" 'q' <img src=x onerror=alert(1)>",
)
LABELS = {  # every labelled dimension, through its source table
    "design": "design_name",
    "staff": "last_name",
    "department": "department_name",
    "address": "city",
    "counterparty": "counterparty_legal_name",
    "purchase_order": "item_code",
}


PIPELINE_CHARTS = ("run-durations", "step-seconds", "step-rows")


def _hostile_run(pipeline: Pipeline) -> None:
    """A failed run whose error quotes a label, as a failing run can."""
    with pipeline.warehouse().begin() as conn:
        conn.execute(
            text(
                "INSERT INTO totesys_meta.runs (run_id, command, started_at, max_runtime, "
                "ended_at, outcome, exit_code, error, rows, seconds) VALUES ('hostile', "
                "'load', now() - interval '1 minute', 540, now(), 'failed', 1, :error, "
                "'{}', '{\"load\": 1.5}')"
            ),
            {"error": " ".join(HOSTILE)},
        )


def _opened(browser, where: str, charts: tuple[str, ...], shot: Path) -> None:
    """The page drawn with every chart, no script error, no dialog, nothing injected."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("dialog", lambda dialog: (errors.append(f"dialog: {dialog.message}"), dialog.dismiss()))
    page.goto(where)
    for chart in charts:
        page.locator(f"#{chart} svg.main-svg").first.wait_for(state="visible", timeout=20_000)
        drawn = page.locator(f"#{chart} .trace, #{chart} .point, #{chart} path.js-line")
        assert drawn.count() > 0, (where, chart)
    page.wait_for_load_state("networkidle")
    page.screenshot(path=shot, full_page=True)
    assert errors == [], where
    assert page.evaluate("window.pwned") is None, where
    assert page.locator("img[src=x]").count() == 0, where
    page.close()


@pytest.mark.slow
def test_hostile_labels_break_no_chart_on_the_page_or_in_the_report(
    source_url, warehouse_url, browser, tmp_path
):
    pipeline = Pipeline(source_url, warehouse_url, tmp_path / "lake")
    with pipeline.source().begin() as conn:
        for table, column in [*LABELS.items(), ("address", "country")]:
            for n, label in enumerate(HOSTILE):  # a few rows each, so the labels are charted
                conn.execute(
                    text(f'UPDATE "{table}" SET {column} = :label WHERE mod({table}_id, 4) = :n'),
                    {"label": f"{label} {n}", "n": n},
                )
    result = pipeline.here("run-all")  # through the command, not the library: the run is recorded
    assert result.returncode == 0, result.stderr
    _hostile_run(pipeline)
    out = tmp_path / "report.html"
    assert totesys("report", "--warehouse-url", warehouse_url, "--out", str(out)).returncode == 0
    lake = ("--lake-url", str(pipeline.lake))
    with serving(warehouse_url, tmp_path, args=lake) as url:
        for where, shot in ((url, "business.png"), (out.as_uri(), "report.png")):
            _opened(browser, where, CHARTS, tmp_path / shot)
        _opened(browser, url + "pipeline", PIPELINE_CHARTS, tmp_path / "pipeline.png")
        text_of = browser.new_page()
        text_of.goto(url)
        assert "Sales <!--<script> 0" in text_of.inner_text("body")
        text_of.goto(url + "pipeline")
        assert HOSTILE[3] in text_of.inner_text("body")  # the error, shown as text
        text_of.close()
    print(f"screenshots in {tmp_path}")


def test_a_currency_stored_in_lower_case_is_filtered_as_stored(source_url, warehouse_url, tmp_path):
    """A source that stores `gbp`: the report and the dashboard's filter take it in any
    case and match the rows the warehouse holds under it."""
    pipeline = Pipeline(source_url, warehouse_url, tmp_path / "lake")
    with pipeline.source().begin() as conn:
        conn.execute(
            text(
                "UPDATE currency SET currency_code = lower(currency_code), last_updated = "
                "(now() AT TIME ZONE 'UTC')::timestamp(3) WHERE currency_code = 'GBP'"
            )
        )
    assert pipeline.here("run-all").returncode == 0
    for given in ("GBP", "gbp"):
        out = tmp_path / f"{given}.html"
        result = totesys(
            "report", "--warehouse-url", warehouse_url, "--currency", given, "--out", str(out)
        )
        assert result.returncode == 0, result.stderr
        assert "Nothing for these filters" not in out.read_text()
    with serving(warehouse_url, tmp_path) as base:
        for given in ("GBP", "gbp"):
            status, body = get(f"{base}figures.json?currency={given}")
            assert status == 200 and b'"figures"' in body, body
