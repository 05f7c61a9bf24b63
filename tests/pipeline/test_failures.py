"""Nothing lost, nothing duplicated: SIGKILL at every commit point and at random times,
hangs, concurrent runs, a source under load, and the orphans killed runs leave."""

from __future__ import annotations

import random
import signal
import subprocess
import threading
import time
from collections import Counter

import pytest
from sqlalchemy import func, select, text

from tests.support import TOTESYS, Pipeline, Ran, committed_keys, started
from totesys_cli.demo.activity import simulate_activity
from totesys_cli.faults import POINTS
from totesys_cli.lake import manifest as manifests
from totesys_cli.lake.files import read_parquet
from totesys_cli.lake.manifest import ProcessedManifest, RawManifest
from totesys_cli.runtime import LOCK_KEY
from totesys_cli.schemas import FACTS, star
from totesys_cli.schemas.arrow import warehouse_schema

KILL_POINTS = [
    "extract.file_written:5",
    "extract.before_manifest",
    "extract.after_manifest",
    "transform.file_written:3",
    "transform.before_manifest",
    "transform.after_manifest",
    "load.before_commit",
    "load.after_commit",
]


# A SIGKILLed process never writes its coverage data: measuring it only slows it down.
UNMEASURED = {"COVERAGE_PROCESS_CONFIG": None}


def totesys(pipeline: Pipeline, *args: str, **extra: str) -> subprocess.CompletedProcess:
    """The installed command, comparing keys on every run: a delete is found by the next
    run. For the runs killed or timed."""
    return pipeline.cli(*args, TOTESYS_DELETES_EVERY_MINUTES="0", **extra)


def here(pipeline: Pipeline, *args: str) -> Ran:
    """The command in this process, comparing keys on every run: for the runs that
    recover and check."""
    return pipeline.here(*args, TOTESYS_DELETES_EVERY_MINUTES="0")


def _processed_seqs(pipeline: Pipeline) -> list[int]:
    return [seq for seq, _ in manifests.manifests_after(pipeline.processed, 0)]


def _loaded_seqs(pipeline: Pipeline) -> list[int]:
    with pipeline.warehouse().connect() as conn:
        return list(conn.execute(text("SELECT seq FROM totesys_meta.loaded_runs ORDER BY seq")))


def _assert_loads_are_recorded_with_their_rows(pipeline: Pipeline) -> None:
    """Whatever the kill interrupted, the warehouse holds exactly the fact versions of
    the processed runs it records as loaded: a run's rows and its record commit together."""
    recorded = {seq for (seq,) in _loaded_seqs(pipeline)}
    for fact in FACTS:
        version = star(fact).version_key
        expected = set()
        for manifest in manifests.runs_after(pipeline.processed, 0, ProcessedManifest):
            if manifest.seq in recorded and manifest.files(fact):
                schema = warehouse_schema(fact)
                rows = read_parquet(pipeline.processed, manifest.files(fact), schema)
                expected |= set(zip(*(rows.column(c).to_pylist() for c in version), strict=True))
        columns = ", ".join(version)
        with pipeline.warehouse().connect() as conn:
            held = set(map(tuple, conn.execute(text(f"SELECT {columns} FROM {fact}"))))
        assert held == expected, fact
    # and its quarantine entries with them
    entries = set()
    for manifest in manifests.runs_after(pipeline.processed, 0, ProcessedManifest):
        if manifest.seq in recorded and manifest.quarantine.files:
            found = read_parquet(pipeline.processed, manifest.quarantine.keys)
            entries |= {(e["source_table"], e["key"], e["kind"]) for e in found.to_pylist()}
    assert set(_quarantine(pipeline)) == entries
    # and the deletions its tombstones record
    tombstones = set()
    for manifest in manifests.runs_after(pipeline.processed, 0, ProcessedManifest):
        if manifest.seq in recorded and manifest.deleted.files:
            found = read_parquet(pipeline.processed, manifest.deleted.keys)
            tombstones |= {(t["source_table"], t["key"], manifest.seq) for t in found.to_pylist()}
    assert set(_deletions(pipeline)) == tombstones


def _deletions(pipeline: Pipeline) -> list[tuple]:
    with pipeline.warehouse().connect() as conn:
        query = "SELECT source_table, key, deleted_in FROM totesys_meta.deletions"
        return [tuple(r) for r in conn.execute(text(query))]


def _quarantine(pipeline: Pipeline) -> list[tuple]:
    with pipeline.warehouse().connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT source_table, key, kind FROM totesys_meta.quarantine "
                    "WHERE resolved_in IS NULL"
                )
            )
        )


def _recover(pipeline: Pipeline) -> None:
    run = here(pipeline, "run-all")
    assert run.returncode == 0, run.stderr
    # every processed run is recorded as loaded, once
    assert [seq for (seq,) in _loaded_seqs(pipeline)] == _processed_seqs(pipeline)


def _recover_and_check(pipeline: Pipeline) -> None:
    pipeline.remember()
    _recover(pipeline)
    pipeline.assert_matches_source()


BAD_DATE = (
    "UPDATE sales_order SET agreed_delivery_date = '{}', last_updated = "
    "(now() AT TIME ZONE 'UTC')::timestamp(3) WHERE sales_order_id = 7"
)


def test_every_kill_point_is_named():
    assert {p.split(":")[0] for p in KILL_POINTS} == set(POINTS)


# A team warehouse without the version indexes takes the other path of the fact merge,
# which only the load runs.
CASES = [(point, True) for point in KILL_POINTS] + [
    (point, False) for point in KILL_POINTS if point.startswith("load.")
]


@pytest.mark.parametrize(
    ("point", "indexes"),
    CASES,
    ids=[f"{p}-{'version' if i else 'no-version'}-indexes" for p, i in CASES],
)
def test_sigkill_at_a_commit_point_loses_and_duplicates_nothing(pipeline, point, indexes):
    if not indexes:
        with pipeline.warehouse().begin() as conn:
            for fact in FACTS:
                conn.execute(text(f'DROP INDEX "{fact}_version_key"'))
    pipeline.remember()
    killed = totesys(pipeline, "run-all", TOTESYS_KILL_AT=point, **UNMEASURED)  # first load
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    _assert_loads_are_recorded_with_their_rows(pipeline)
    _recover_and_check(pipeline)  # the source changes only after a completed run
    pipeline.activity()
    with pipeline.source().begin() as conn:  # the next run also sets a version aside
        conn.execute(text(BAD_DATE.format("2026-13-45")))
        conn.execute(text("DELETE FROM payment WHERE payment_id = 3"))  # and finds a delete
    killed = totesys(pipeline, "run-all", TOTESYS_KILL_AT=point.split(":")[0], **UNMEASURED)
    assert killed.returncode == -signal.SIGKILL, killed.stderr  # every point recurs
    _assert_loads_are_recorded_with_their_rows(pipeline)
    _recover(pipeline)
    assert _quarantine(pipeline) == [("sales_order", 7, "not_a_date")]  # once, open
    assert [row[:2] for row in _deletions(pipeline)] == [("payment", 3)]  # once
    with pipeline.source().begin() as conn:
        conn.execute(text(BAD_DATE.format("2026-12-25")))
    _recover_and_check(pipeline)
    assert _quarantine(pipeline) == []


def _phase(pipeline: Pipeline, before: tuple[int, int, int]) -> str:
    """Where a killed run was, from what it had committed."""
    raw = len(manifests.manifests_after(pipeline.raw, 0))
    processed = len(_processed_seqs(pipeline))
    loaded = len(_loaded_seqs(pipeline))
    if raw == before[0]:
        return "extract"
    if processed == before[1]:
        return "transform"
    return "load" if loaded == before[2] else "after the load"


# seconds a kill may wait after the lock is taken, at most: a whole run on a slow machine
MAX_WINDOW = 10.0
# kills wanted; once the test has run SECONDS it stops at the FEWEST (in two places at
# least): a slower machine makes fewer attempts, never a failure
KILLS, FEWEST, SECONDS = 12, 6, 8.0


def test_sigkill_at_random_times(pipeline):
    """The source changes only after a completed run, so every version it showed is one
    some committed extract could read: all of them belong in the warehouse. Each kill
    lands a random time after the run has taken the lock, within a typical run's length;
    on a slow machine, where every kill so far found the run in one place, the window
    widens."""
    chance = random.Random(20261125)
    window = 0.6
    phases: Counter[str] = Counter()
    attempt = 0
    began = time.monotonic()
    while sum(phases.values()) < KILLS and attempt < 3 * KILLS:
        enough = sum(phases.values()) >= FEWEST and len(phases) >= 2
        if enough and time.monotonic() - began > SECONDS:
            break
        attempt += 1
        if attempt % 4 == 0:
            _recover_and_check(pipeline)
            pipeline.activity(step=attempt)
        before = (
            len(manifests.manifests_after(pipeline.raw, 0)),
            len(_processed_seqs(pipeline)),
            len(_loaded_seqs(pipeline)),
        )
        process = subprocess.Popen(
            [TOTESYS, "--log-level", "DEBUG", "run-all"],
            env=pipeline.process_env(**UNMEASURED),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        started(process)
        time.sleep(chance.uniform(0.0, window))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait()
            phases[_phase(pipeline, before)] += 1
            _assert_loads_are_recorded_with_their_rows(pipeline)
            if len(phases) == 1 and sum(phases.values()) % 3 == 0:
                window = min(window * 2, MAX_WINDOW)  # once per three kills in one place
        process.wait()
    print(f"kills by where the run was: {dict(phases)} in {attempt} attempts")
    _recover_and_check(pipeline)
    assert here(pipeline, "verify").returncode == 0
    assert sum(phases.values()) >= FEWEST  # runs really died mid-run
    assert len(phases) >= 2, phases  # and not all at one place


def test_a_stalled_source_ends_by_its_deadline_and_frees_the_lock(pipeline):
    """The first table a run reads is locked: the run stalls before it has read a row
    (so no budget can end it with progress) and only its deadline ends it, whatever the
    machine's speed, as long as start-up leaves the statement a second of it."""
    blocker = pipeline.source().connect()
    try:
        blocker.execute(text("LOCK TABLE address IN ACCESS EXCLUSIVE MODE"))
        began = time.perf_counter()
        stalled = totesys(pipeline, "run-all", "--max-runtime", "4")
        assert time.perf_counter() - began < 20
    finally:
        blocker.rollback()
        blocker.close()
    assert stalled.returncode == 1
    (line,) = stalled.stderr.strip().splitlines()
    assert "[extract] a statement on the source database" in line
    assert "ran past its time limit" in line
    _recover_and_check(pipeline)  # the lock was released: the next run proceeds


def test_two_runs_at_once_and_an_extract_racing_a_run(pipeline):
    first = subprocess.Popen(
        [TOTESYS, "run-all"], env=pipeline.process_env(), stderr=subprocess.PIPE, text=True
    )
    second = subprocess.Popen(
        [TOTESYS, "run-all"], env=pipeline.process_env(), stderr=subprocess.PIPE, text=True
    )
    codes = sorted([first.wait(), second.wait()])
    assert codes in ([0, 0], [0, 75]), (first.stderr.read(), second.stderr.read())
    _recover_and_check(pipeline)
    pipeline.activity()
    extract_env = pipeline.process_env()
    extract_env.pop("TOTESYS_WAREHOUSE_URL", None)
    racer = subprocess.Popen(
        [TOTESYS, "extract"], env=extract_env, stderr=subprocess.PIPE, text=True
    )
    run = subprocess.Popen(
        [TOTESYS, "run-all"], env=pipeline.process_env(), stderr=subprocess.PIPE, text=True
    )
    outcomes = [(racer.wait(), racer.stderr.read()), (run.wait(), run.stderr.read())]
    for code, stderr in outcomes:
        assert code == 0 or "first, so this run's files were not committed" in stderr, stderr
    _recover_and_check(pipeline)
    assert here(pipeline, "verify").returncode == 0


def test_a_source_under_load_loses_nothing(pipeline):
    stop = threading.Event()
    steps = []

    def busy_source() -> None:
        step = 100
        while not stop.is_set():
            with pipeline.source().begin() as conn:
                simulate_activity(
                    conn, seed=31, step=step, sales_orders=5, purchase_orders=2, payments_paid=3
                )
            steps.append(step)
            step += 1
            time.sleep(0.05)

    writer = threading.Thread(target=busy_source)
    writer.start()
    try:
        for _ in range(3):
            run = here(pipeline, "run-all")
            assert run.returncode == 0, run.stderr
    finally:
        stop.set()
        writer.join()
    assert len(steps) >= 5
    run = here(pipeline, "run-all")
    assert run.returncode == 0, run.stderr
    # versions written and overwritten between two runs were never visible to a run, so
    # the check is on the present: every current version is in, nothing is twice in
    pipeline.assert_current()
    assert here(pipeline, "verify").returncode == 0


def test_orphans_are_never_read_and_gc_removes_only_them(pipeline):
    killed = totesys(pipeline, "run-all", TOTESYS_KILL_AT="extract.before_manifest", **UNMEASURED)
    assert killed.returncode == -signal.SIGKILL
    lake = pipeline.lake
    orphans = sorted(p.relative_to(lake).as_posix() for p in lake.rglob("*.parquet"))
    assert len(orphans) == 11
    _recover_and_check(pipeline)
    committed = set()
    for zone, kind in ((pipeline.raw, RawManifest), (pipeline.processed, ProcessedManifest)):
        committed |= {f"{zone.url.rsplit('/', 1)[1]}/{k}" for k in committed_keys(zone, kind)}
    assert not set(orphans) & committed  # the next run never read them
    young = here(pipeline, "lake", "gc")
    assert young.stdout.startswith("deleted 0 uncommitted files (0 bytes); kept 11 younger")
    with pipeline.warehouse().connect() as conn:  # a run holds the lock: gc deletes nothing
        conn.execute(select(func.pg_advisory_lock(LOCK_KEY)))
        held = here(pipeline, "lake", "gc", "--grace-hours", "0")
        conn.execute(select(func.pg_advisory_unlock(LOCK_KEY)))
    assert held.returncode == 75, held.stderr
    assert "another totesys run holds the warehouse lock" in held.stderr
    assert set(orphans) <= {p.relative_to(lake).as_posix() for p in lake.rglob("*.parquet")}
    dry = here(pipeline, "lake", "gc", "--grace-hours", "0", "--dry-run")
    assert dry.stdout.splitlines()[-1].startswith("would delete 11 uncommitted files")
    done = here(pipeline, "lake", "gc", "--grace-hours", "0")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].startswith("deleted 11 uncommitted files")
    left = {p.relative_to(lake).as_posix() for p in lake.rglob("*") if p.is_file()}
    assert not set(orphans) & left
    assert committed <= left
    assert manifests.latest(pipeline.raw, RawManifest).seq == 1
    pipeline.activity()
    _recover_and_check(pipeline)
    assert here(pipeline, "transform", "--since", "2000-01-01").returncode == 0
    assert here(pipeline, "verify").returncode == 0
