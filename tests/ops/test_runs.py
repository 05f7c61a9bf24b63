"""`totesys runs`: every run of every writing command, however it ended."""

from __future__ import annotations

import json
import subprocess

from sqlalchemy import func, select, text

from tests.support import TOTESYS, Pipeline, started
from totesys_cli.runtime import LOCK_KEY


def test_runs_lists_succeeded_failed_locked_and_killed_runs(source_url, warehouse_url, tmp_path):
    pipeline = Pipeline(source_url, warehouse_url, tmp_path / "lake")
    assert pipeline.here("run-all").returncode == 0
    unreachable = pipeline.here("extract", TOTESYS_SOURCE_URL="postgresql://u@127.0.0.1:9/src")
    assert unreachable.returncode == 1
    with pipeline.warehouse().connect() as conn:  # another run holds the lock
        conn.execute(select(func.pg_advisory_lock(LOCK_KEY)))
        assert pipeline.here("load").returncode == 75
        conn.execute(select(func.pg_advisory_unlock(LOCK_KEY)))
    killed = pipeline.cli(
        "run-all", TOTESYS_KILL_AT="load.before_commit", COVERAGE_PROCESS_CONFIG=None
    )
    assert killed.returncode == -9

    listed = pipeline.here("runs", "--json")
    assert listed.returncode == 0, listed.stderr
    runs = json.loads(listed.stdout)
    assert [(r["command"], r["outcome"], r["exit_code"]) for r in runs] == [
        ("run-all", "did not finish", None),
        ("load", "locked", 75),
        ("extract", "failed", 1),
        ("run-all", "succeeded", 0),
    ]
    killed_run, locked, failed, succeeded = runs
    assert killed_run["ended_at"] is None and killed_run["started_at"].endswith("+00:00")
    assert "another totesys run holds the warehouse lock" in locked["error"]
    assert "cannot reach the source database at 127.0.0.1:9/src" in failed["error"]
    assert succeeded["lake_runs"] == {"extract": [1], "transform": [1], "load": [1]}
    assert succeeded["rows"]["extract"]["sales_order"] > 0
    assert (
        succeeded["rows"]["load"]["fact_sales_order"] == succeeded["rows"]["extract"]["sales_order"]
    )
    assert set(succeeded["seconds"]) == {"extract", "transform", "load"}
    assert len({r["run_id"] for r in runs}) == 4

    failing = json.loads(pipeline.here("runs", "--json", "--failed").stdout)
    assert [r["outcome"] for r in failing] == ["did not finish", "failed"]
    assert [
        r["command"] for r in json.loads(pipeline.here("runs", "--json", "--limit", "1").stdout)
    ] == ["run-all"]

    text = pipeline.here("runs").stdout
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["run", "command", "started"]
    assert "did not finish" in lines[1] and "locked (exit 75)" in lines[2]
    assert "failed (exit 1)" in lines[3] and "extract 1, transform 1, load 1" in lines[4]
    assert f"{failed['run_id']}: cannot reach the source database" in text


def test_a_run_holding_the_lock_is_listed_as_running(after_first_run):
    """A run stalled on a locked source table holds the warehouse lock: `runs` says it is
    running (an open run without the lock would be one that did not finish)."""
    pipeline = after_first_run()
    blocker = pipeline.source().connect()
    blocker.execute(text("LOCK TABLE address IN ACCESS EXCLUSIVE MODE"))  # read first
    run = subprocess.Popen(
        [TOTESYS, "--log-level", "DEBUG", "run-all"],
        env=pipeline.process_env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = started(run)
        assert run.poll() is None, "".join(lines)
        listed = json.loads(pipeline.here("runs", "--json").stdout)
        assert [(r["command"], r["outcome"]) for r in listed] == [
            ("run-all", "running"),
            ("run-all", "succeeded"),
        ]
        assert "running" in pipeline.here("runs").stdout.splitlines()[1]
        assert json.loads(pipeline.here("runs", "--json", "--failed").stdout) == []
    finally:
        blocker.rollback()
        blocker.close()
    assert run.wait(60) == 0, "".join(lines)
    listed = json.loads(pipeline.here("runs", "--json").stdout)
    assert [r["outcome"] for r in listed] == ["succeeded", "succeeded"]


def _index_scans(conn) -> int:
    conn.execute(text("SELECT pg_stat_clear_snapshot()"))
    return conn.execute(
        text("SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = 'runs_started_at'")
    ).scalar_one()


def test_a_year_of_run_history_is_read_through_its_index(source_url, warehouse_url, tmp_path):
    """A year of ten-minute runs is 52,560 rows: a run's pace and the newest runs are
    read by index, not by sorting the year; a warehouse from a release without the
    index gets it with its next load."""
    pipeline = Pipeline(source_url, warehouse_url, tmp_path / "lake")
    with pipeline.warehouse().begin() as conn:
        conn.execute(text("DROP INDEX IF EXISTS totesys_meta.runs_started_at"))
        conn.execute(
            text(
                "INSERT INTO totesys_meta.runs (run_id, command, started_at, ended_at, outcome,"
                " exit_code, rows, seconds)"
                " SELECT 'past-' || g, 'run-all', now() - g * interval '10 minutes',"
                " now() - g * interval '10 minutes' + interval '3 seconds', 'succeeded', 0,"
                """ '{"extract": {"sales_order": 3}}', '{"extract": 0.4}'"""
                " FROM generate_series(1, 52560) g"
            )
        )
        conn.execute(text("ANALYZE totesys_meta.runs"))
    assert pipeline.here("run-all").returncode == 0

    with pipeline.warehouse().connect() as conn:
        before = _index_scans(conn)
        assert pipeline.cli("run-all").returncode == 0  # its pace reads the last week
        after_run = _index_scans(conn)
        listed = pipeline.cli("runs", "--json", "--limit", "3")
        after_listing = _index_scans(conn)
    assert after_run > before and after_listing > after_run
    runs = json.loads(listed.stdout)
    assert [r["command"] for r in runs] == ["run-all"] * 3
    assert [r["run_id"].startswith("past-") for r in runs] == [False, False, True]
    assert runs[2]["run_id"] == "past-1" and runs[0]["outcome"] == "succeeded"
