"""lake compact: a closed day's small files become a few large ones, and every step reads
the lake as before: a run's rows, `--since`, `rebuild`, through a kill at any point and
beside a running run-all."""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import time

import pytest

from tests.support import TOTESYS, Pipeline, run_here
from totesys_cli.lake import compaction
from totesys_cli.lake import manifest as manifests
from totesys_cli.lake.files import read_parquet
from totesys_cli.lake.manifest import ProcessedManifest, RawManifest
from totesys_cli.ops import gc

TODAY = dt.datetime.now(dt.UTC).date()
# today's runs are compacted only when asked to: the default leaves open days alone
COMPACT_TODAY = ("lake", "compact", "--before", (TODAY + dt.timedelta(days=1)).isoformat())
ZONES = (("raw", RawManifest), ("processed", ProcessedManifest))


def _reads(pipeline: Pipeline) -> dict[tuple[str, int, str], list[dict]]:
    """Every run's rows of every table, read as the steps read them."""
    found = {}
    for name, kind in ZONES:
        zone = getattr(pipeline, name)
        for run in manifests.runs_after(zone, 0, kind):
            for table, files in run.tables.items():
                found[(name, run.seq, table)] = read_parquet(zone, files.keys).to_pylist()
    return found


def _parquet(pipeline: Pipeline) -> set[str]:
    return {str(p.relative_to(pipeline.lake)) for p in pipeline.lake.rglob("*.parquet")}


def _runs(pipeline: Pipeline, count: int) -> None:
    assert pipeline.here("run-all").returncode == 0
    for step in range(1, count):
        pipeline.activity(step=step)
        assert pipeline.here("run-all").returncode == 0


def test_a_compacted_day_reads_as_its_runs_wrote_it(pipeline):
    """Each table's small files of the day become one large file; once gc has deleted
    them, every run's rows read the same from it, and a rebuild and a --since replay
    across the day give the warehouse the source wants."""
    _runs(pipeline, 4)
    before, written = _reads(pipeline), _parquet(pipeline)
    assert pipeline.here("lake", "compact").returncode == 0  # by default: closed days only
    assert _parquet(pipeline) == written

    ran = pipeline.here(*COMPACT_TODAY)
    assert ran.returncode == 0, ran.stderr
    assert "compacted 1 day" in ran.stdout
    for name, _ in ZONES:
        record = compaction.read(getattr(pipeline, name), TODAY)
        assert record is not None and record.tables, name
        for table, large in record.tables.items():
            assert len(large) == 1, (name, table)  # the test's day is far below a large file
            assert large[0].rows == sum(
                len(before[k]) for k in before if k[0] == name and k[2] == table
            )
    assert _reads(pipeline) == before  # the small files are still there: read first
    again = pipeline.here(*COMPACT_TODAY)
    assert again.returncode == 0 and "compacted 0 days" in again.stdout

    # a pass whose last one ended ahead of today lists no day of its own: it finds the
    # small files through the records committed since
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).replace(tzinfo=None)
    for name, _ in ZONES:
        last = {"cutoff": future.isoformat(sep=" "), "seq": 0}
        (pipeline.lake / name / gc.LAST).parent.mkdir(exist_ok=True)
        (pipeline.lake / name / gc.LAST).write_text(json.dumps(last))
    reclaimed = pipeline.here("lake", "gc", "--grace-hours", "0")
    assert reclaimed.returncode == 0, reclaimed.stderr
    left = _parquet(pipeline)
    replaced = {
        f"{name}/{part}"
        for name, _ in ZONES
        for part in compaction.read(getattr(pipeline, name), TODAY).parts()
    }
    assert replaced and not replaced & left
    assert _reads(pipeline) == before  # now through the large files' row groups
    for name, _ in ZONES:
        last = json.loads((pipeline.lake / name / gc.LAST).read_text())
        assert last["compacted"] == TODAY.isoformat()

    rebuilt = pipeline.here("rebuild", "--yes")
    assert rebuilt.returncode == 0, rebuilt.stderr
    pipeline.assert_matches_source()
    pipeline.activity(step=4)
    assert pipeline.here("run-all").returncode == 0
    replayed = pipeline.here("run-all", "--since", "2000-01-01")
    assert replayed.returncode == 0, replayed.stderr
    pipeline.assert_matches_source()
    assert pipeline.here("verify").returncode == 0


def test_a_compaction_killed_at_any_point_leaves_the_lake_as_it_reads(pipeline):
    """Killed after a large file, before its record, after it: the runs read as written,
    the next pass completes the day, and gc leaves only the committed large files. The
    files of a killed run, under a run number another run has since committed, are never
    taken into a large file."""
    _runs(pipeline, 3)
    written = _parquet(pipeline)
    orphaned = pipeline.cli("extract", TOTESYS_KILL_AT="extract.before_manifest")
    assert orphaned.returncode == -signal.SIGKILL
    orphans = _parquet(pipeline) - written
    assert orphans
    assert pipeline.here("run-all").returncode == 0  # commits the killed run's number
    before = _reads(pipeline)
    for point in ("compact.file_written", "compact.before_commit"):
        killed = pipeline.cli(*COMPACT_TODAY, TOTESYS_KILL_AT=point)
        assert killed.returncode == -signal.SIGKILL, point
        assert compaction.read(pipeline.raw, TODAY) is None, point
        assert _reads(pipeline) == before, point
    leftovers = {p for p in _parquet(pipeline) if "/compacted-" in p}
    assert leftovers  # what the killed passes wrote, named by no record
    killed = pipeline.cli(*COMPACT_TODAY, TOTESYS_KILL_AT="compact.after_commit")
    assert killed.returncode == -signal.SIGKILL
    assert compaction.read(pipeline.raw, TODAY) is not None
    finished = pipeline.here(*COMPACT_TODAY)  # the raw zone's day is done: the rest goes on
    assert finished.returncode == 0, finished.stderr
    assert pipeline.here("lake", "gc", "--grace-hours", "0").returncode == 0
    committed = {
        f"{name}/{f.key}"
        for name, _ in ZONES
        for f in compaction.read(getattr(pipeline, name), TODAY).files()
    }
    assert {p for p in _parquet(pipeline) if "/compacted-" in p} == committed
    assert not leftovers & committed
    assert not orphans & _parquet(pipeline)
    assert (
        not {p.removeprefix("raw/") for p in orphans} & compaction.read(pipeline.raw, TODAY).parts()
    )
    assert _reads(pipeline) == before
    rebuilt = pipeline.here("rebuild", "--yes")
    assert rebuilt.returncode == 0, rebuilt.stderr
    pipeline.assert_matches_source()
    assert pipeline.here("verify").returncode == 0


def test_compactions_beside_a_running_run_all_lose_and_duplicate_nothing(pipeline):
    """Passes over today run again and again while run-all extracts, transforms and
    loads into the same day: what either commits, the other never loses."""
    _runs(pipeline, 2)
    pipeline.activity(step=2, sales_orders=400)
    running = subprocess.Popen(
        [TOTESYS, "run-all"],
        env=pipeline.process_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    passes = 0
    while running.poll() is None or passes == 0:
        compacted = pipeline.here(*COMPACT_TODAY)
        assert compacted.returncode == 0, compacted.stderr
        passes += 1
        time.sleep(0.05)
    assert running.wait(timeout=120) == 0, running.stderr.read()
    assert pipeline.here("lake", "gc", "--grace-hours", "0").returncode == 0
    assert pipeline.here("run-all").returncode == 0
    pipeline.assert_matches_source()
    rebuilt = pipeline.here("rebuild", "--yes")
    assert rebuilt.returncode == 0, rebuilt.stderr
    pipeline.assert_matches_source()


def test_a_day_in_the_future_is_refused(pipeline):
    late = (TODAY + dt.timedelta(days=2)).isoformat()
    refused = pipeline.here("lake", "compact", "--before", late)
    assert refused.returncode == 2
    assert f"--before {late} is after tomorrow" in refused.stderr
    assert not (pipeline.lake / "raw" / compaction.COMPACTIONS).exists()


@pytest.mark.parametrize("key", ["sales_order/extracted_date=2026-11-30/0000000003-x-0000.parquet"])
def test_a_file_s_day_is_the_day_of_its_partition(key):
    assert compaction.day_of(key) == dt.date(2026, 11, 30)
    assert compaction.day_of("_manifests/0000000003.json") is None


def test_a_compacted_day_on_s3_reads_as_written(source_url, warehouse_url, tmp_path, moto_endpoint):
    """On S3, where a missing object is an error of its own: the day compacted, its
    small files deleted, a rebuild loads what the runs wrote."""
    import boto3

    boto3.client("s3").create_bucket(
        Bucket="lake", CreateBucketConfiguration={"LocationConstraint": "eu-west-2"}
    )
    pipeline = Pipeline(source_url, warehouse_url, tmp_path)
    env = pipeline.env(TOTESYS_LAKE_URL="s3://lake/prod")
    for step in range(3):
        if step:
            pipeline.activity(step=step)
        assert run_here("run-all", env=env).returncode == 0
    assert run_here(*COMPACT_TODAY, env=env).returncode == 0
    assert run_here("lake", "gc", "--grace-hours", "0", env=env).returncode == 0
    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket="lake")
    keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
    facts = [k for k in keys if k.startswith("prod/processed/fact_sales_order/")]
    assert len(facts) == 1 and "/compacted-" in facts[0]
    rebuilt = run_here("rebuild", "--yes", env=env)
    assert rebuilt.returncode == 0, rebuilt.stderr
    pipeline.assert_matches_source()


def test_a_day_beyond_one_large_file_fills_several_in_order(pipeline, monkeypatch):
    """Once a large file holds `TARGET` bytes the next small file starts another, and
    once a row group holds `GROUP_ROWS` rows the next starts another; each small file's
    rows are still found where the record says."""
    from totesys_cli.lake.store import LocalLake
    from totesys_cli.ops import compact
    from totesys_cli.runtime import Deadline

    _runs(pipeline, 5)
    before = _reads(pipeline)
    monkeypatch.setattr(compact, "TARGET", 4000)
    monkeypatch.setattr(compact, "GROUP_ROWS", 40)
    tomorrow = TODAY + dt.timedelta(days=1)
    compact.compact(pipeline.raw, pipeline.processed, tomorrow, Deadline(None))
    record = compaction.read(pipeline.processed, TODAY)
    several = [files for files in record.tables.values() if len(files) > 1]
    assert several and any(len(f.parts) > 1 for files in several for f in files)
    parts = [p for files in record.tables.values() for f in files for p in f.parts]
    assert any(p.group > 0 for p in parts) and any(p.offset > 0 for p in parts)
    for name, _ in ZONES:
        zone = LocalLake(str(pipeline.lake / name), "TEST")
        zone.delete(sorted(compaction.read(zone, TODAY).parts()))
    assert _reads(pipeline) == before
