"""A source bigger than one run can read: successive scheduled runs drain it, each within
its deadline and each a success, through a SIGKILL in the middle of a pass."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator

import pytest
from sqlalchemy import insert

from tests.support import TEST_SEED, Pipeline
from totesys_cli.demo import generator
from totesys_cli.pipeline import plan
from totesys_cli.schemas import RUNS, SOURCE_TABLES

# a source of about 6,000 rows is several runs' worth whatever the machine's speed: the
# run history says a load costs 9 ms a row (LOAD_PACE), so a run of 20 s has room for
# about 1,500 rows (70 % of it, after its start-up); what a run reads is bounded by
# that room, not by how fast this machine reads. Ranges of 50 keys keep a run's files
# few enough for a loaded machine to load well within the deadline. A slower machine
# measures a slower pace of its own once its runs are the latest: its runs then take
# fewer rows each, and more of them drain the source (about 4 here; 40 are allowed).
DEADLINE = 20
BOUNDED = ("--max-runtime", str(DEADLINE), "--range-rows", "50")
LOAD_PACE = (100_000, 900)  # rows, seconds
BIG = generator.Sizes(sales_orders=1_200, purchase_orders=504)  # four times the test source


@pytest.fixture
def big_source(pg) -> Iterator[str]:
    from tests.conftest import _unique

    name = pg.create_database(_unique("big"))
    with pg.engine(name).begin() as conn:
        generator.generate_source(conn, BIG, seed=TEST_SEED)
    yield pg.url(name)
    pg.drop_database(name)


def _succeeded(run) -> dict:
    assert run.returncode == 0, run.stderr
    last = json.loads(run.stderr.strip().splitlines()[-1])
    assert last["message"] == "run succeeded"
    return last


def _shows_the_pass(pipeline: Pipeline) -> bool:
    """Whether a table is mid-way through a pass (a run may also stop between two tables),
    and then that `status` shows it."""
    shown = pipeline.here("status", "--json")
    assert shown.returncode == 0, shown.stderr
    passes = json.loads(shown.stdout)["passes"]
    if not passes:
        return False
    (name, passing), *_ = passes.items()
    assert 0 < passing["percent"] <= 100 and passing["rows"] > 0 and passing["runs"] >= 1
    assert passing["runs_left"] >= 1
    text = pipeline.here("status").stdout
    assert "read over several runs" in text and name in text
    return True


@pytest.mark.slow
def test_runs_bounded_by_their_deadline_drain_a_big_source_exactly(
    big_source, warehouse_url, tmp_path
):
    pipeline = Pipeline(big_source, warehouse_url, tmp_path / "lake")
    rows, seconds = LOAD_PACE
    _history(pipeline, 5, {"load": {"fact_sales_order": rows}}, {"load": seconds})
    lines = []
    killed = shown = False
    while not lines or lines[-1]["tables_left"] or lines[-1]["runs_waiting"]:
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
        assert lines[-1]["extracted"] + lines[-1]["loaded"] > 0  # every run commits progress
        shown = shown or _shows_the_pass(pipeline)
        assert lines[-1]["seconds"] < DEADLINE + 1  # and a stopped load's roll back
        assert len(lines) < 40, "the backlog does not drain"
    assert len(lines) >= 3 and killed and shown  # a killed run, and at least two more
    pipeline.assert_matches_source()
    verified = pipeline.here("verify")
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


def _history(pipeline: Pipeline, minutes_ago: int, rows: dict, seconds: dict) -> None:
    """A run in the warehouse's history that moved `rows` (step -> table -> rows) in
    `seconds` (step -> seconds)."""
    started = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=minutes_ago)
    with pipeline.warehouse().begin() as conn:
        conn.execute(
            insert(RUNS).values(
                run_id=f"history-{minutes_ago}",
                command="run-all",
                started_at=started,
                ended_at=started,
                outcome="succeeded",
                rows=rows,
                seconds=seconds,
            )
        )


def test_each_pace_is_the_slowest_of_the_latest_runs_that_measured_it(
    pg, source_url, warehouse_url, tmp_path
):
    pipeline = Pipeline(source_url, warehouse_url, tmp_path / "lake")
    with pipeline.warehouse().connect() as conn:
        fresh = plan.pace(conn)
    assert (fresh.extract, fresh.transform) == (4e-6, 2e-6)  # no history yet: the defaults
    assert set(fresh.load.values()) == {plan.DEFAULT_PACE["load"]}
    sales = {"extract": {"sales_order": 200_000}, "load": {"fact_sales_order": 200_000}}
    for age, (extract, load) in enumerate([(3, 4), (1, 8), (2, 6), (40, 400)]):  # newest first
        _history(pipeline, 10 * age + 20, sales, {"extract": extract, "load": load})
    mixed = {"fact_payment": 170_000, "dim_transaction": 30_000}  # not 90 % of one table
    _history(pipeline, 15, {"load": {"fact_payment": 300_000}}, {"load": 30})
    _history(pipeline, 12, {"load": mixed}, {"load": 2})
    _history(pipeline, 10, sales | {"extract": {"sales_order": 10}}, {"extract": 90, "load": 90})
    with pipeline.warehouse().connect() as conn:
        measured = plan.pace(conn)
    assert measured.extract == 3 / 200_000  # the slowest of the three latest
    assert measured.transform == plan.DEFAULT_PACE["transform"]  # never measured
    assert measured.load["fact_sales_order"] == 90 / 200_000
    assert measured.load["fact_payment"] == 30 / 300_000
    assert measured.load["dim_transaction"] == 90 / 200_000  # the slowest load measured
    per_row = measured.extract + measured.transform + measured.load["fact_payment"]
    assert measured.of("payment") == per_row


def test_a_run_takes_on_only_what_it_can_carry_to_the_warehouse_in_time(
    pg, source_url, warehouse_url, tmp_path
):
    """With a load measured at 1 s a row, a run of 60 s has room for about 40 rows: a
    processed run already waiting with more goes first (nothing new is read or
    transformed), and the next run reads only as many rows as it has room for."""
    pipeline = Pipeline(source_url, warehouse_url, tmp_path / "lake")
    pipeline.extract(tables=tuple(t for t in SOURCE_TABLES if t not in ("transaction", "payment")))
    waiting = pipeline.transform()
    _history(pipeline, 5, {"load": {"fact_sales_order": 100_000}}, {"load": 100_000})
    bounded = ("--log-format", "json", "run-all", "--max-runtime", "60", "--range-rows", "1000")

    first = pipeline.here(*bounded)
    line = _succeeded(first)
    assert "wait downstream: this run reads nothing new" in first.stderr
    assert line["extracted"] == 0 and line["transformed"] == 0
    assert line["loaded"] == waiting.rows and line["runs_waiting"] == 0

    second = _succeeded(pipeline.here(*bounded))
    # about 40 rows, and at most one range of the smallest size (a hundredth of 1,000) more
    assert 0 < second["extracted"] <= 42 + 10 and second["tables_left"] > 0
    assert second["seconds"] < 60

    with pipeline.warehouse().begin() as conn:
        conn.execute(RUNS.delete())
    while line["tables_left"] or line["runs_waiting"]:
        line = _succeeded(pipeline.here("--log-format", "json", "run-all"))
    pipeline.assert_matches_source()
