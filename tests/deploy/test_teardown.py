"""deploy/teardown.py, run as a user runs it, against the stack as moto creates it."""

from __future__ import annotations

import runpy

import boto3
import pytest

from tests.deploy.stack import deploy_into_moto
from tests.support import ROOT

SCRIPT = ROOT / "deploy" / "teardown.py"


@pytest.fixture
def stack(aws) -> dict[str, str]:
    """The stack, an image in its repository, versioned buckets with a file each."""
    outputs = deploy_into_moto()
    repository = outputs["RepositoryUri"].split("/", 1)[1]
    boto3.client("ecr").put_image(
        repositoryName=repository,
        imageManifest='{"schemaVersion": 2}',
        imageManifestMediaType="application/vnd.oci.image.manifest.v1+json",
        imageTag="abc123",
    )
    s3 = boto3.client("s3")
    for bucket in (outputs["IngestionBucketName"], outputs["ProcessedBucketName"]):
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=outputs["IngestionBucketName"], Key="raw/_manifests/1", Body=b"{}")
    s3.put_object(Bucket=outputs["ProcessedBucketName"], Key="processed/_manifests/1", Body=b"{}")
    boto3.client("secretsmanager").create_secret(Name="totesys/source", SecretString="{}")
    return outputs


@pytest.fixture
def crowded(stack) -> dict[str, str]:
    """The ingestion bucket holding more versions and delete markers than one
    DeleteObjects call takes: 700 keys written twice, 300 of them deleted."""
    s3 = boto3.client("s3")
    for i in range(700):
        for body in (b"v1", b"v2"):
            s3.put_object(Bucket=stack["IngestionBucketName"], Key=f"raw/{i:04d}", Body=body)
    for i in range(300):
        s3.delete_object(Bucket=stack["IngestionBucketName"], Key=f"raw/{i:04d}")
    return stack


def _teardown(*args: str, capsys) -> tuple[int, str]:
    """The script's main() as its command line calls it, against moto in this process."""
    namespace = runpy.run_path(str(SCRIPT))
    code = namespace["main"](["--stack", "totesys", *args])
    return code, capsys.readouterr().out


def _buckets() -> set[str]:
    return {b["Name"] for b in boto3.client("s3").list_buckets()["Buckets"]}


def test_without_yes_it_only_says_what_it_would_delete(stack, capsys):
    code, said = _teardown(capsys=capsys)
    assert code == 0
    assert "nothing was deleted: give --yes to delete" in said
    assert stack["IngestionBucketName"] in _buckets()
    assert boto3.client("cloudformation").describe_stacks(StackName="totesys")["Stacks"]


@pytest.mark.slow
def test_it_removes_the_stack_every_version_and_both_buckets(crowded, capsys):
    stack = crowded
    code, done = _teardown("--yes", "--secret", "totesys/source", capsys=capsys)
    assert code == 0, done
    assert "deleted 1 images from totesys" in done
    # 700 keys x 2 versions + the first file + 300 delete markers, in two pages
    assert f"deleted s3://{stack['IngestionBucketName']} and its 1701 object versions" in done
    assert not _buckets() & {stack["IngestionBucketName"], stack["ProcessedBucketName"]}
    stacks = boto3.client("cloudformation").list_stacks()["StackSummaries"]
    assert {s["StackStatus"] for s in stacks if s["StackName"] == "totesys"} == {"DELETE_COMPLETE"}
    assert boto3.client("secretsmanager").list_secrets()["SecretList"] == []


def test_keep_buckets_keeps_the_lake_as_it_was(stack, capsys):
    s3 = boto3.client("s3")
    s3.delete_object(Bucket=stack["IngestionBucketName"], Key="raw/_manifests/1")
    before = s3.list_object_versions(Bucket=stack["IngestionBucketName"])
    assert before["DeleteMarkers"] and before["Versions"]
    code, done = _teardown("--yes", "--keep-buckets", capsys=capsys)
    assert code == 0, done
    assert f"kept the lake: s3://{stack['IngestionBucketName']}" in done
    after = s3.list_object_versions(Bucket=stack["IngestionBucketName"])
    assert after["Versions"] == before["Versions"]
    assert after["DeleteMarkers"] == before["DeleteMarkers"]
