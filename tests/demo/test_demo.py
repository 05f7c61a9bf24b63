"""`totesys demo`: the whole job on an embedded PostgreSQL, as a new user runs it."""

from __future__ import annotations

import shlex
import time

from tests.support import totesys


def test_demo_from_a_clean_folder_twice_then_stop(tmp_path):
    folder = tmp_path / "demo"
    for _ in range(2):
        started = time.perf_counter()
        result = totesys("demo", "--folder", str(folder))
        assert result.returncode == 0, result.stderr[-3000:]
        assert time.perf_counter() - started < 60
        assert "Resetting the demo" in result.stdout
        assert "verify: source and warehouse reconciled" in result.stdout
        assert "Revenue by delivery country, per currency" in result.stdout
        assert "DRIFT" not in result.stdout
    assert (folder / "pg" / "postmaster.pid").exists()
    # it ends by telling how to open the dashboard on the demo warehouse, and that works
    told = result.stdout.strip().splitlines()[-3:]
    assert told[0] == "Open the dashboard on the demo warehouse:"
    assert told[2].strip() == "then browse http://127.0.0.1:8050/ (Ctrl-C stops it)"
    command = shlex.split(told[1])
    assert command[:2] == ["totesys", "dashboard"]
    report = totesys("report", *command[2:], "--out", str(tmp_path / "demo.html"))
    assert report.returncode == 0, report.stderr
    stopped = totesys("demo", "--folder", str(folder), "--stop")
    assert stopped.stdout == "demo server stopped\n"
    assert not (folder / "pg" / "postmaster.pid").exists()
    again = totesys("demo", "--folder", str(folder), "--stop")
    assert again.stdout == f"no demo server runs in {folder}\n"


def test_the_demo_logs_at_the_level_asked_for(tmp_path):
    """Its tables tell the story, so it logs only warnings unless a level is given."""
    folder = str(tmp_path / "demo")
    quiet = totesys("demo", "--folder", folder, "--scale", "0.05")
    assert quiet.returncode == 0, quiet.stderr[-3000:]
    assert "run succeeded" not in quiet.stderr
    told = totesys("--log-level", "INFO", "demo", "--folder", folder, "--scale", "0.05")
    assert told.returncode == 0, told.stderr[-3000:]
    assert told.stderr.count("INFO    [demo] run succeeded") == 2
    assert totesys("demo", "--folder", folder, "--stop").returncode == 0
