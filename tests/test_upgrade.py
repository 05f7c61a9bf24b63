"""Upgrades keep what exists: a lake and a warehouse the previous release built keep
working under this one, with nothing lost, nothing duplicated, nothing reloaded by hand.

The previous release is installed from this repository's own history into a folder of
its own and run with this environment's libraries.
"""

from __future__ import annotations

import compileall
import datetime as dt
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.support import ROOT, Pipeline, require, unmeasured

# previous releases, what `init` then says, and the format of their processed manifests:
# the release before the quarantine (its manifests carry no quarantine, its transform
# state no open entries, its warehouse no totesys_meta.quarantine), the release before
# processed manifest format 2 (its processed files hold times of day as Parquet TIME),
# and the release before deletions (no census, no tombstones, *_latest views that keep
# every key: init replaces them)
PREVIOUS = {
    # each with the index on the run history's start
    "76861f5": ("warehouse initialised: created 15 objects\n", 1),  # 6 summaries
    "775c0db": ("warehouse initialised: created 6 objects\n", 1),
    "a7dc698": ("warehouse initialised: created 6 objects\n", 2),
    "78b0381": ("warehouse initialised: created 1 object\n", 3),  # raw state before sweeps
}


def _has_commit(commit: str) -> bool:
    found = subprocess.run(
        ["git", "-C", str(ROOT), "cat-file", "-e", f"{commit}^{{commit}}"],
        capture_output=True,
        check=False,
    )
    return found.returncode == 0


@pytest.fixture(scope="module", params=sorted(PREVIOUS))
def previous(request, tmp_path_factory) -> Path:
    """The previous release's package, taken from the repository's history into a
    folder of its own (it is pure Python: the package is the release)."""
    commit = request.param
    require(_has_commit(commit), f"the repository's history holds no commit {commit}")
    target = tmp_path_factory.mktemp("previous") / commit
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", commit, "totesys_cli"],
        capture_output=True,
        check=True,
    )
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(target, filter="data")
    compileall.compile_dir(target, quiet=1)  # once, not in each of its processes
    return target


def _old(previous: Path, pipeline: Pipeline, *args: str) -> None:
    """The previous release's command (its coverage is not this release's)."""
    assert (previous / "totesys_cli" / "cli").is_dir()
    env = unmeasured({**os.environ, **pipeline.env()})
    env["PYTHONPATH"] = str(previous)
    run = subprocess.run(
        [sys.executable, "-c", "from totesys_cli.cli import main; main()", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=previous,  # not this repository, whose own package would be found first
        check=False,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr


@pytest.mark.slow
def test_a_lake_and_warehouse_of_the_previous_release_keep_working(
    previous, source_url, warehouse_url, tmp_path
):
    pipeline = Pipeline(source_url, warehouse_url, tmp_path / "lake", init=False)
    _old(previous, pipeline, "init")
    pipeline.remember()
    _old(previous, pipeline, "run-all")
    pipeline.activity(step=1)
    _old(previous, pipeline, "run-all")
    pipeline.activity(step=2)
    _old(previous, pipeline, "extract")  # a raw run the old release never transformed
    pipeline.activity(step=3)
    _old(previous, pipeline, "extract")
    _old(previous, pipeline, "transform")  # and a processed run it never loaded
    pipeline.remember()

    upgraded = pipeline.here("init")  # brings totesys_meta up to date, touches no star row
    assert upgraded.returncode == 0, upgraded.stderr
    said, old_format = PREVIOUS[previous.name]
    assert upgraded.stdout.startswith(said)  # then the source tables every run reads whole
    run = pipeline.here("run-all")
    assert run.returncode == 0, run.stderr
    written = pipeline.lake / "processed" / "_manifests"
    formats = {json.loads(m.read_text())["format"] for m in written.glob("*.json")}
    assert formats == {old_format, 3}  # the old release's processed runs, and this one's
    pipeline.assert_matches_source()  # every version once: nothing lost, nothing twice
    verified = pipeline.here("verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr

    # a row deleted now is found by the next comparison of keys (the first run of this
    # release took the census), and leaves the old warehouse's latest view
    pipeline.remember()
    with pipeline.source().begin() as conn:
        conn.execute(text("DELETE FROM payment WHERE payment_id = 11"))
    compared = pipeline.here("run-all", TOTESYS_DELETES_EVERY_MINUTES="0")
    assert compared.returncode == 0, compared.stderr
    pipeline.assert_matches_source()
    verified = pipeline.here("verify", "--deleted")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "deleted in the source, left out of the warehouse's side: payment 11" in verified.stdout

    # the old release's files compacted with this one's (other columns: other large
    # files), the small ones deleted: a rebuild reads every run as it was written
    tomorrow = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)).isoformat()
    compacted = pipeline.here("lake", "compact", "--before", tomorrow)
    assert compacted.returncode == 0, compacted.stderr
    assert pipeline.here("lake", "gc", "--grace-hours", "0").returncode == 0
    rebuilt = pipeline.here("rebuild", "--yes")
    assert rebuilt.returncode == 0, rebuilt.stderr
    pipeline.assert_matches_source()
    verified = pipeline.here("verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr

    # and the new release's own features work on the old lake
    with pipeline.source().begin() as conn:
        conn.execute(
            text(
                "UPDATE sales_order SET agreed_delivery_date = '2026-13-45', last_updated = "
                "(now() AT TIME ZONE 'UTC')::timestamp(3) WHERE sales_order_id = 7"
            )
        )
    assert pipeline.here("run-all").returncode == 0
    listed = pipeline.here("quarantine")
    assert "sales_order" in listed.stdout and "agreed_delivery_date" in listed.stdout
