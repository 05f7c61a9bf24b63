"""lake gc on S3: the files of killed runs go, once old enough; committed ones stay, and
so does what totesys did not write."""

from __future__ import annotations

import signal

import boto3

from tests.support import Pipeline, run_here, totesys
from totesys_cli.lake import open_lake
from totesys_cli.lake.manifest import ProcessedManifest, RawManifest
from totesys_cli.ops.gc import committed_keys


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
    assert _keys("lake") == before - orphans
    assert run_here("run-all", env=env).returncode == 0
    assert run_here("verify", env=env).returncode == 0
