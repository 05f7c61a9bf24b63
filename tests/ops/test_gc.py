"""lake gc on S3: the files of killed runs go, once old enough; committed ones stay, and
so does what totesys did not write."""

from __future__ import annotations

import json
import signal

import boto3

from tests.support import Pipeline, committed_keys, run_here, totesys
from totesys_cli.lake import manifest as manifests
from totesys_cli.lake import open_lake
from totesys_cli.lake.manifest import ProcessedManifest, RawManifest
from totesys_cli.ops import gc


def _keys(bucket: str) -> set[str]:
    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {item["Key"] for page in pages for item in page.get("Contents", [])}


def test_lake_gc_on_s3_deletes_only_what_no_manifest_names(
    source_url, warehouse_url, tmp_path, moto_endpoint
):
    boto3.client("s3").create_bucket(
        Bucket="lake", CreateBucketConfiguration={"LocationConstraint": "eu-west-2"}
    )
    env = Pipeline(source_url, warehouse_url, tmp_path).env(TOTESYS_LAKE_URL="s3://lake/prod")
    killed = totesys("run-all", env={**env, "TOTESYS_KILL_AT": "extract.before_manifest"})
    assert killed.returncode == -signal.SIGKILL
    orphans = {k for k in _keys("lake") if k.endswith(".parquet")}
    assert len(orphans) == 11  # one file per table, never committed
    assert run_here("run-all", env=env).returncode == 0
    # what others keep beside the zones is not totesys's to delete: Athena's results
    for key in ("prod/processed/athena-results/q1.csv", "prod/raw/README.txt"):
        boto3.client("s3").put_object(Bucket="lake", Key=key, Body=b"not totesys")
    before = _keys("lake")
    committed = set()
    for zone, kind in (("raw", RawManifest), ("processed", ProcessedManifest)):
        lake = open_lake(f"s3://lake/prod/{zone}", "TEST")
        committed |= {f"prod/{zone}/{key}" for key in committed_keys(lake, kind)}
    assert not orphans & committed and committed <= before

    young = run_here("lake", "gc", env=env)
    assert young.stdout.startswith("deleted 0 uncommitted files (0 bytes); kept 11 younger")
    done = run_here("lake", "gc", "--grace-hours", "0", env=env)
    assert done.returncode == 0, done.stderr
    *files, summary = done.stdout.strip().splitlines()
    assert summary.startswith("deleted 11 uncommitted files")
    assert files[0].split() == ["file", "bytes", "age"] and len(files) == 12
    assert all(f.startswith("s3://lake/prod/") and f.endswith(" h") for f in files[1:])
    passes = {f"prod/{zone}/{gc.LAST}" for zone in ("raw", "processed")}
    assert _keys("lake") == (before - orphans) | passes
    assert run_here("run-all", env=env).returncode == 0
    assert run_here("verify", env=env).returncode == 0


def _listed(ran) -> dict[str, int]:
    """Objects each zone's pass looked at, from its JSON log line."""
    lines = [json.loads(line) for line in ran.stderr.splitlines() if line.startswith("{")]
    return {line["message"].rsplit("/", 1)[1]: line["listed"] for line in lines if "listed" in line}


def test_a_pass_lists_only_the_days_since_the_last_one(pipeline):
    """After a first pass over the whole lake, a pass looks only where a run can have
    left files since (its own day's partitions, the manifests since, the announcements):
    its listing does not grow with the lake's history. A file planted in a day long
    past is left to `--whole`; an orphan a killed run leaves today is found."""
    assert pipeline.here("run-all").returncode == 0
    gc_json = ("--log-format", "json", "lake", "gc", "--grace-hours", "0")
    first = pipeline.here(*gc_json)
    assert first.returncode == 0, first.stderr
    old = pipeline.lake / "raw/sales_order/extracted_date=2020-01-01/0000000001-x-0000.parquet"
    old.parent.mkdir(parents=True)
    old.write_bytes(b"a file copied in by hand")
    for _ in range(3):
        pipeline.activity()
        assert pipeline.here("run-all").returncode == 0
    again = pipeline.here(*gc_json)
    assert again.returncode == 0 and old.exists()
    # three more runs, each a manifest and a few files per zone: the pass lists those,
    # not the first run's or the day planted
    assert _listed(again)["raw"] < _listed(first)["raw"] + 3 * 14
    killed = pipeline.cli("extract", TOTESYS_KILL_AT="extract.before_manifest")
    assert killed.returncode == -signal.SIGKILL
    orphans = [
        p
        for p in (pipeline.lake / "raw").rglob("*.parquet")
        if p.name.startswith(f"{manifests.latest_seq(pipeline.raw) + 1:010d}-")
    ]
    assert orphans
    found = pipeline.here(*gc_json)
    assert found.returncode == 0 and not any(p.exists() for p in orphans)
    assert old.exists()
    whole = pipeline.here("lake", "gc", "--grace-hours", "0", "--whole")
    assert whole.returncode == 0 and not old.exists()
    assert whole.stdout.splitlines()[-1].startswith("deleted 1 uncommitted file")
    assert pipeline.here("run-all").returncode == 0
    assert pipeline.here("verify").returncode == 0


def test_a_manifest_that_cannot_be_read_stops_the_pass_before_it_deletes(pipeline):
    """Its files are not taken for orphans: the pass fails naming it, and deletes nothing."""
    assert pipeline.here("run-all").returncode == 0
    before = sorted(p for p in pipeline.lake.rglob("*.parquet"))
    manifest = pipeline.lake / "raw" / manifests.manifest_key(1)
    manifest.write_text("{ not json")
    failed = pipeline.here("lake", "gc", "--grace-hours", "0")
    assert failed.returncode == 1
    assert f"the manifest {pipeline.lake / 'raw'}/{manifests.manifest_key(1)}" in failed.stderr
    assert sorted(p for p in pipeline.lake.rglob("*.parquet")) == before
