"""`totesys demo`: the whole job on an embedded PostgreSQL, as a new user runs it."""

from __future__ import annotations

import shlex
import tempfile
from pathlib import Path

import pytest

from tests.support import Pipeline, server_folder, totesys


def _told(stdout: str, variable: str) -> str:
    """The value the demo tells to export for a variable."""
    (line,) = [x for x in stdout.splitlines() if x.strip().startswith(f"export {variable}=")]
    return shlex.split(line.strip())[1].split("=", 1)[1]


@pytest.mark.slow
def test_demo_from_a_clean_folder_twice_then_stop(tmp_path):
    """Each demo resets its databases and lake, so it tells the same story twice; it
    keeps to the folder it is told (option or variable), and logs what it is asked to."""
    with server_folder("demo") as folder:
        _demo_twice_then_stop(folder, tmp_path)


def _demo_twice_then_stop(folder: Path, tmp_path: Path) -> None:
    # the second at a smaller scale, to spare the suite's time
    for asked, scale in (((), "1"), (("--log-level", "INFO"), "0.1")):
        result = totesys(*asked, "demo", "--scale", scale, env={"TOTESYS_DEMO_DIR": str(folder)})
        assert result.returncode == 0, result.stderr[-3000:]
        assert "Resetting the demo" in result.stdout
        first = result.stdout.splitlines()[0]
        assert first.startswith(
            "Using the embedded PostgreSQL already running in"
            if asked
            else "Starting an embedded PostgreSQL in"
        )
        assert "verify: source and warehouse reconciled" in result.stdout
        assert "Revenue by delivery country, per currency" in result.stdout
        # its tables tell the story: log lines only when a level is given
        assert result.stderr.count("INFO    [run-all] run succeeded") == (2 if asked else 0)
        # the warehouse it leaves is the independent expectation of its source
        demo = Pipeline(
            _told(result.stdout, "TOTESYS_SOURCE_URL"),
            _told(result.stdout, "TOTESYS_WAREHOUSE_URL"),
            Path(_told(result.stdout, "TOTESYS_LAKE_URL")),
            init=False,
        )
        demo.assert_current()
    assert (folder / "pg" / "postmaster.pid").exists()
    # it ends by telling how to open the dashboard on the demo warehouse, and that works
    told = result.stdout.strip().splitlines()[-3:]
    assert told[0] == "Open the dashboard on the demo warehouse:"
    assert told[2].strip() == "then browse http://127.0.0.1:8050/ (Ctrl-C stops it)"
    command = shlex.split(told[1])
    assert command[:2] == ["totesys", "dashboard"]
    report = totesys("report", *command[2:], "--out", str(tmp_path / "demo.html"))
    assert report.returncode == 0, report.stderr
    # the stop it tells of works as printed, in a shell that never set TOTESYS_DEMO_DIR
    (stop,) = [x for x in result.stdout.splitlines() if "stop the demo's PostgreSQL" in x]
    command = shlex.split(stop.split("     ")[0])
    assert command[:2] == ["totesys", "demo"]
    stopped = totesys(*command[1:], env={"TOTESYS_DEMO_DIR": None})
    assert stopped.stdout == "demo server stopped\n"
    assert not (folder / "pg" / "postmaster.pid").exists()
    again = totesys("demo", "--folder", str(folder), "--stop")
    assert again.stdout == f"no demo server runs in {folder}\n"


def test_the_demo_folder_is_in_home_by_default():
    home = Path(tempfile.mkdtemp())
    default = totesys("demo", "--stop", env={"HOME": str(home), "TOTESYS_DEMO_DIR": None})
    assert default.stdout == f"no demo server runs in {home / '.totesys-demo'}\n"


def test_a_server_that_cannot_start_says_why_in_one_line(tmp_path):
    pgdata = tmp_path / "pg"
    pgdata.mkdir()
    (pgdata / "PG_VERSION").write_text("15\n")  # a data folder missing everything else
    result = totesys("demo", "--folder", str(tmp_path))
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert f"[demo] the embedded PostgreSQL in {pgdata} did not start: postgres: " in line
    assert line.endswith(
        f"Fix what its log ({pgdata}/log) says, or remove {pgdata} to start afresh"
    )
