"""Operator mistakes cannot corrupt or drift: each is refused in one line with the exit
code the README gives, and the lake and the warehouse are exactly as they were.

One pipeline, loaded once, serves every refusal (none of them changes anything, which
each test checks); the tests that move it to another lake build their own.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import time
import uuid

import pytest
from sqlalchemy import text

from tests.support import TOTESYS, Pipeline, lake_state, leaks
from totesys_cli.schemas import STAR_TABLES


def _warehouse_state(pipeline: Pipeline) -> tuple:
    with pipeline.warehouse().connect() as conn:
        meta = conn.execute(
            text("SELECT seq, run_id FROM totesys_meta.loaded_runs ORDER BY seq")
        ).all()
        lineage = conn.execute(text("SELECT * FROM totesys_meta.lineage")).all()
    return pipeline.snapshot(), meta, lineage


def _database(pg, template: str | None = None) -> str:
    return pg.url(pg.create_database(f"mistake_{uuid.uuid4().hex[:8]}", template=template))


@pytest.fixture(scope="module")
def loaded(pg, source_template, tmp_path_factory) -> Pipeline:
    pipeline = Pipeline(
        _database(pg, source_template), _database(pg), tmp_path_factory.mktemp("m") / "lake"
    )
    run = pipeline.here("run-all")
    assert run.returncode == 0, run.stderr
    return pipeline


def _refused(pipeline: Pipeline, code: int, expected: str, *args: str, **env: str | None) -> str:
    """Run the command: it exits `code` with one line holding `expected`, and changes
    nothing in the lake or the warehouse."""
    lake, warehouse = lake_state(pipeline.lake), _warehouse_state(pipeline)
    result = pipeline.here(*args, **env)
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0], lines[0]
    assert lake_state(pipeline.lake) == lake
    assert _warehouse_state(pipeline) == warehouse
    return lines[0]


# ---------------------------------------------------------------- 1. another lake


def test_a_new_lake_with_the_same_warehouse_is_refused_then_rebuilt_on_purpose(
    pg, source_template, tmp_path
):
    # its own first run: the warehouse names the lake it was first loaded from
    pipeline = Pipeline(_database(pg, source_template), _database(pg), tmp_path / "lake")
    assert pipeline.here("run-all").returncode == 0
    new = tmp_path / "new-lake"
    line = _refused(
        pipeline, 2, "the warehouse was loaded from", "run-all", TOTESYS_LAKE_URL=str(new)
    )
    assert f"{pipeline.lake}/processed (zone " in line and f"{new}/processed (a new zone)" in line
    assert "totesys rebuild --yes" in line
    assert lake_state(new) == {}  # refused before anything was written there
    _refused(pipeline, 2, "the warehouse was loaded from", "load", TOTESYS_LAKE_URL=str(new))

    # moving on purpose: fill the new lake, then rebuild the warehouse from it
    for step in ("extract", "transform"):
        assert pipeline.here(step, TOTESYS_LAKE_URL=str(new)).returncode == 0
    needs_yes = pipeline.here("rebuild", TOTESYS_LAKE_URL=str(new))
    assert needs_yes.returncode == 2 and "needs --yes" in needs_yes.stderr
    rebuilt = pipeline.here("rebuild", "--yes", TOTESYS_LAKE_URL=str(new))
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "rebuilt the warehouse from 1 processed run" in rebuilt.stdout
    assert pipeline.here("verify").returncode == 0
    pipeline.assert_matches_source()
    assert pipeline.here("run-all", TOTESYS_LAKE_URL=str(new)).returncode == 0
    # and now the old lake is the stranger
    _refused(pipeline, 2, "the warehouse was loaded from", "run-all")


def test_a_rebuild_that_fails_leaves_the_warehouse_as_it_was(after_first_run, tmp_path):
    pipeline = after_first_run()
    manifest = json.loads((pipeline.lake / "processed/_manifests/0000000001.json").read_text())
    (pipeline.lake / "processed" / manifest["tables"]["fact_payment"]["files"][0]["key"]).unlink()
    _refused(pipeline, 1, "[rebuild] the lake file", "rebuild", "--yes")


def _restore(copy, lake) -> None:
    shutil.rmtree(lake)
    shutil.copytree(copy, lake)


def test_a_lake_restored_from_an_older_copy_is_refused_then_rebuilt(after_first_run, tmp_path):
    """Restored, the lake numbers new runs again from where the copy ends: by number
    alone the load would take them as loaded and skip them for ever."""
    pipeline = after_first_run()
    copy = tmp_path / "lake.bak"
    shutil.copytree(pipeline.lake, copy)
    for step in (1, 2):
        pipeline.activity(step=step)
        assert pipeline.here("run-all").returncode == 0
    _restore(copy, pipeline.lake)
    pipeline.activity(step=3)
    line = _refused(pipeline, 2, "restored from an older copy?", "run-all")
    assert f"the processed zone {pipeline.lake}/processed is not the history" in line
    assert "the warehouse read its run 3 (" in line and "it holds no run 3" in line
    assert "totesys rebuild --yes" in line

    # the way forward, on purpose: the warehouse reloaded from the restored lake, which
    # then reads the source from where the copy ends
    rebuilt = pipeline.here("rebuild", "--yes")
    assert rebuilt.returncode == 0, rebuilt.stderr
    caught_up = pipeline.here("run-all")
    assert caught_up.returncode == 0, caught_up.stderr
    pipeline.assert_current()
    assert pipeline.here("verify").returncode == 0


def test_a_raw_zone_restored_behind_its_processed_zone_is_refused(after_first_run, tmp_path):
    """The transform would take the raw runs numbered again as consumed already."""
    pipeline = after_first_run()
    copy = tmp_path / "raw.bak"
    shutil.copytree(pipeline.lake / "raw", copy)
    pipeline.activity(step=1)
    assert pipeline.here("run-all").returncode == 0
    _restore(copy, pipeline.lake / "raw")
    line = _refused(pipeline, 2, "restored from an older copy?", "run-all")
    assert f"the raw zone {pipeline.lake}/raw is not the history the processed zone read" in line
    assert "it holds no run 2" in line
    _refused(pipeline, 2, "restored from an older copy?", "transform")


def test_a_rebuild_from_a_lake_with_no_run_is_refused_unless_asked(after_first_run, tmp_path):
    """A typo in the lake's URL that names an existing but empty folder."""
    pipeline = after_first_run()
    empty = tmp_path / "empty-lake"
    (empty / "processed").mkdir(parents=True)
    line = _refused(
        pipeline, 2, "holds no committed run", "rebuild", "--yes", TOTESYS_LAKE_URL=str(empty)
    )
    assert "--allow-empty" in line
    emptied = pipeline.here("rebuild", "--yes", "--allow-empty", TOTESYS_LAKE_URL=str(empty))
    assert emptied.returncode == 0, emptied.stderr
    assert all(rows == [] for rows in pipeline.snapshot().values())


def test_a_rebuild_keeps_the_run_history_and_lets_others_answer_meanwhile(
    after_first_run, tmp_path
):
    """Held up by a reader's lock on one star table, the rebuild holds the tables before
    it: a run-all exits 75 at once and status answers (without their row counts); the
    history keeps every run, the rebuild's own among them."""
    pipeline = after_first_run()
    holder = pipeline.warehouse().connect()
    holder.execute(text(f'LOCK TABLE "{STAR_TABLES[-1]}" IN ACCESS SHARE MODE'))
    rebuilding = subprocess.Popen(
        [TOTESYS, "rebuild", "--yes"],
        env=pipeline.process_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with pipeline.warehouse().connect() as conn:
            for _ in range(300):  # until the rebuild waits on the held lock
                waiting = conn.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND query LIKE 'TRUNCATE%'"
                    )
                ).scalar_one()
                conn.rollback()  # the activity is read once per transaction
                if waiting:
                    break
                assert rebuilding.poll() is None, rebuilding.communicate()
                time.sleep(0.1)
            assert waiting, "the rebuild never waited for the lock held"
        started = time.monotonic()
        other = pipeline.cli("run-all", timeout=30)  # before, both hung on its locks
        assert other.returncode == 75, other.stderr
        status = pipeline.cli("status", "--json", timeout=30)
        assert status.returncode == 0, status.stderr
        assert "the star tables are locked by a rebuild" in status.stderr
        assert json.loads(status.stdout)["last_load"]["run"] == 1
        assert time.monotonic() - started < 60
    finally:
        holder.rollback()
        holder.close()
    _, err = rebuilding.communicate(timeout=120)
    assert rebuilding.returncode == 0, err
    runs = json.loads(pipeline.here("runs", "--json").stdout)
    assert [(r["command"], r["outcome"]) for r in runs] == [
        ("run-all", "locked"),
        ("rebuild", "succeeded"),
        ("run-all", "succeeded"),
    ]
    pipeline.assert_current()


# ---------------------------------------------------------------- 2. zones that overlap


@pytest.mark.parametrize(
    "command", [("run-all",), ("transform",), ("lake", "gc", "--grace-hours", "0")]
)
def test_zones_that_are_the_same_place_or_nested_are_refused(loaded, command):
    raw, processed = str(loaded.lake / "raw"), str(loaded.lake / "processed")
    line = _refused(
        loaded, 2, "are the same place", *command, TOTESYS_RAW_URL=raw, TOTESYS_PROCESSED_URL=raw
    )
    assert "places apart" in line
    _refused(  # the processed zone inside the raw zone: gc would take it for orphans
        loaded,
        2,
        "are one inside the other",
        *command,
        TOTESYS_RAW_URL=str(loaded.lake),
        TOTESYS_PROCESSED_URL=processed,
    )


def test_zones_swapped_are_refused_by_their_identity(loaded):
    raw, processed = str(loaded.lake / "raw"), str(loaded.lake / "processed")
    line = _refused(
        loaded,
        2,
        "is a processed zone",
        "transform",
        TOTESYS_RAW_URL=processed,
        TOTESYS_PROCESSED_URL=raw,
    )
    assert line.endswith("Check TOTESYS_RAW_URL (or TOTESYS_LAKE_URL)")


def test_a_processed_zone_refuses_another_raw_zone(loaded, tmp_path):
    (tmp_path / "other-raw").mkdir()
    line = _refused(
        loaded,
        2,
        "was built from the raw zone",
        "transform",
        TOTESYS_RAW_URL=str(tmp_path / "other-raw"),
        TOTESYS_PROCESSED_URL=str(loaded.lake / "processed"),
    )
    assert f"{tmp_path}/other-raw (a new zone)" in line


def test_only_extract_and_run_all_create_a_zone(loaded, tmp_path):
    typo = tmp_path / "lake-typo" / "raw"
    line = _refused(
        loaded,
        2,
        f"the lake folder {typo} does not exist",
        "transform",
        TOTESYS_RAW_URL=str(typo),
        TOTESYS_PROCESSED_URL=str(loaded.lake / "processed"),
    )
    assert line.endswith("only extract and run-all create a zone")
    assert not typo.exists()
    status = loaded.here("status", TOTESYS_LAKE_URL=str(tmp_path / "lake-typo"))
    assert f"the raw zone {typo} holds no runs" in status.stderr
    assert not typo.exists()


# ---------------------------------------------------------------- 3. gc without the lock


def test_gc_without_a_warehouse_keeps_what_a_live_run_could_still_commit(loaded):
    today = dt.datetime.now(dt.UTC).date().isoformat()  # a run writes into its own day
    orphan = loaded.lake / f"raw/sales_order/extracted_date={today}/0000000099-x-0000.parquet"
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"left by a run that is still writing")
    try:
        line = _refused(
            loaded,
            2,
            "grace must be at least the longest run (0:09:30)",
            "lake",
            "gc",
            "--grace-hours",
            "0",
            TOTESYS_WAREHOUSE_URL=None,
        )
        assert "or set TOTESYS_WAREHOUSE_URL" in line
        kept = loaded.here("lake", "gc", "--grace-hours", "0.2", TOTESYS_WAREHOUSE_URL=None)
        assert "kept apart by the exclusive manifest create (and lake gc by its grace)" in (
            kept.stderr
        )
        assert kept.returncode == 0, kept.stderr
        assert orphan.exists()  # younger than the grace
        dry = loaded.here("--log-format", "json", "lake", "gc", "--dry-run", "--grace-hours", "0")
        assert dry.returncode == 0, dry.stderr
        header, listed, summary = dry.stdout.strip().splitlines()
        assert header.split() == ["file", "bytes", "age"]
        assert listed.split() == [
            f"{loaded.lake}/{orphan.relative_to(loaded.lake)}",
            "35",
            "0.0",
            "h",
        ]
        assert summary.startswith("would delete 1 uncommitted file (35 bytes)")
        found = [json.loads(line) for line in dry.stderr.splitlines()]
        raw_line = next(f for f in found if f["message"].endswith(f"{loaded.lake}/raw"))
        assert (
            raw_line["message"].startswith("found 1 uncommitted file in") and raw_line["files"] == 1
        )
        assert "rows" not in raw_line and orphan.exists()
        locked = loaded.here("lake", "gc", "--grace-hours", "0")  # the lock makes 0 safe
        assert locked.returncode == 0, locked.stderr
        assert not orphan.exists()
        assert (loaded.lake / "raw/_zone.json").exists()  # the identity is never collected
    finally:
        orphan.unlink(missing_ok=True)


def test_gc_with_the_lock_keeps_the_files_of_a_run_writing_without_it(
    after_first_run, tmp_path, monkeypatch
):
    """An extract configured without a warehouse takes no lock; gc with the warehouse
    (the lock free) and no grace runs while it writes: the extract still commits, and
    the next run finds every file its manifest names."""
    from totesys_cli import faults, pipeline
    from totesys_cli.config.settings import parse_settings

    loaded = after_first_run()

    collected = []

    def gc_meanwhile(name: str) -> None:
        if name == "extract.before_manifest":
            collected.append(loaded.cli("lake", "gc", "--grace-hours", "0"))

    monkeypatch.setattr(faults, "point", gc_meanwhile)
    loaded.activity(step=1)
    settings = parse_settings(source_url=loaded.source_url, lake_url=str(loaded.lake))
    written = pipeline.extract(settings)
    (gc,) = collected
    assert gc.returncode == 0, gc.stderr
    assert "without the warehouse lock is writing" in gc.stderr
    assert written.rows > 0
    assert not list((loaded.lake / "raw").glob("_writers/*"))  # gone once committed
    after = loaded.here("run-all")
    assert after.returncode == 0, after.stderr
    loaded.assert_current()


# ---------------------------------------------------------------- 4. secrets


@pytest.mark.parametrize(
    "user_info", ["etl:Tote@Secret99", "etl:Tote:Secret99", "etl:Tote/Secret99"]
)
def test_a_password_with_a_reserved_character_must_be_encoded_and_is_never_echoed(
    loaded, user_info
):
    url = f"postgresql://{user_info}@localhost:5432/warehouse"
    line = _refused(loaded, 2, "must be percent-encoded", "run-all", TOTESYS_WAREHOUSE_URL=url)
    assert "Tote" not in line and "Secret99" not in line and "etl" not in line


@pytest.mark.parametrize("password", ["warehouse", "database"])
def test_a_password_that_is_one_of_our_words_cannot_be_read_off_a_line(loaded, password):
    url = f"postgresql://etl:{password}@127.0.0.1:9/warehouse"
    line = _refused(
        loaded,
        1,
        "cannot reach the warehouse database at 127.0.0.1:9/warehouse",
        "run-all",
        TOTESYS_WAREHOUSE_URL=url,
    )
    assert "***" not in line


# ---------------------------------------------------------------- 5. exit codes


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (("extract", "--since", "0001-01-01T00:00:00+01:00"), {}, "before the first representable"),
        (("run-all",), {"TOTESYS_SOURCE_URL": "postgresql://u@localhost:99999/s"}, "port 99999"),
    ],
    ids=["since-before-year-1", "port-out-of-range"],
)
def test_bad_values_exit_2(loaded, args, env, expected):
    _refused(loaded, 2, expected, *args, **env)


@pytest.mark.parametrize(
    ("body", "problem"),
    [("[1,2]", "is not a manifest (a JSON list"), ('{"format": 1}', "names no kind")],
)
def test_a_manifest_of_the_wrong_shape_is_one_line_naming_it(loaded, body, problem):
    path = loaded.lake / "raw/_manifests/0000000001.json"
    kept = path.read_bytes()
    path.write_text(body)
    try:
        line = _refused(loaded, 1, str(path), "run-all")
        assert problem in line, line
    finally:
        path.write_bytes(kept)
    assert not leaks(line)


# ---------------------------------------------------------------- a schedule before init


def test_run_all_before_init_says_so_at_startup_and_extracts_nothing(pg, source_template, tmp_path):
    """A stack whose schedule starts before `totesys init`: one line naming the fix,
    from the startup step (its own alarm), and the lake stays empty."""
    pipeline = Pipeline(
        _database(pg, source_template), _database(pg), tmp_path / "lake", init=False
    )
    result = pipeline.here("run-all")
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.endswith(
        "ERROR   [startup] the warehouse is not initialised: it has none of the star tables; "
        "nothing was loaded. Run totesys init first"
    )
    assert lake_state(pipeline.lake) == {}
