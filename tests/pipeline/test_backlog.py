"""A source bigger than one run can read: successive scheduled runs drain it, each within
its deadline and each a success, through a SIGKILL in the middle of a pass."""

from __future__ import annotations

import json

from tests.support import Pipeline

# a deadline of 10 s gives the extract 4 s, with room for the transform and load of what
# it read on a busy machine; ranges of 2 keys make the test source (about 1,900 rows)
# several runs' worth (a range costs a COPY and a file)
BOUNDED = ("--max-runtime", "10", "--range-rows", "2")


def _succeeded(run) -> dict:
    assert run.returncode == 0, run.stderr
    last = json.loads(run.stderr.strip().splitlines()[-1])
    assert last["message"] == "run succeeded"
    return last


def _shows_the_pass(pipeline: Pipeline) -> None:
    shown = pipeline.cli("status", "--json")
    assert shown.returncode == 0, shown.stderr
    (name, passing), *_ = json.loads(shown.stdout)["passes"].items()
    assert 0 < passing["percent"] <= 100 and passing["rows"] > 0 and passing["runs"] >= 1
    assert passing["runs_left"] >= 1
    text = pipeline.cli("status").stdout
    assert "read over several runs" in text and name in text


def test_runs_bounded_by_their_deadline_drain_a_big_source_exactly(
    pg, source_url, warehouse_url, tmp_path
):
    pipeline = Pipeline(source_url, warehouse_url, tmp_path / "lake")
    lines = []
    killed = False
    while not lines or lines[-1]["tables_left"]:
        if len(lines) == 1 and not killed:  # in the middle of a pass, between two files
            crash = pipeline.cli(
                "--log-format",
                "json",
                "run-all",
                *BOUNDED,
                TOTESYS_KILL_AT="extract.file_written:3",
            )
            assert crash.returncode == -9, crash.stderr
            killed = True
            continue
        lines.append(_succeeded(pipeline.cli("--log-format", "json", "run-all", *BOUNDED)))
        assert lines[-1]["extracted"] > 0  # every run commits progress
        if len(lines) == 2:
            _shows_the_pass(pipeline)
        assert lines[-1]["seconds"] < 10
        assert len(lines) < 40, "the backlog does not drain"
    assert len(lines) >= 3 and killed
    assert all(line["tables_left"] for line in lines[:-1])
    pipeline.assert_matches_source()
    verified = pipeline.cli("verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_a_backlog_of_runs_is_transformed_and_loaded_oldest_first_a_bounded_amount_at_a_time(
    source_url, warehouse_url, tmp_path
):
    """After an outage of the transform and the load: each transform takes the oldest raw
    runs within its row limit, each load stops between runs once its budget is spent,
    and the warehouse ends exact."""
    pipeline = Pipeline(source_url, warehouse_url, tmp_path / "lake")
    pipeline.extract()
    for step in (1, 2):
        pipeline.activity(step=step)
        pipeline.extract()
    taken = [pipeline.transform(max_raw_rows=1).raw_runs for _ in range(3)]
    assert taken == [[1], [2], [3]]  # one run each: the first always goes, whatever its size
    assert pipeline.transform().seq is None  # nothing left
    loads = [[r.seq for r in pipeline.load(budget=0).runs] for _ in range(3)]
    assert loads == [[1], [2], [3]]
    pipeline.assert_matches_source()
