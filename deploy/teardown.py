"""Remove a totesys stack and what it keeps when deleted.

    python deploy/teardown.py --stack totesys              # says what it would delete
    python deploy/teardown.py --stack totesys --yes        # deletes it
    python deploy/teardown.py --stack totesys --yes --keep-buckets
    python deploy/teardown.py --stack totesys --yes --secret totesys/source --secret ...

In order: every image in the stack's ECR repository (CloudFormation cannot delete a
repository that holds images), the stack (and with it the task, schedules, roles, log
groups, alarms, dashboard and topic), then the two lake buckets the stack retains on
delete: every object version and delete marker, in pages of at most 1,000, then the
bucket. `--keep-buckets` keeps the lake; `--secret` also deletes a connection secret
(created beside the stack, not by it) without a recovery window. Needs only boto3 and
the AWS credentials of the account; the region is AWS_REGION's.
"""

from __future__ import annotations

import argparse
import sys

import boto3
from botocore.exceptions import ClientError

PAGE = 1000  # the most keys one DeleteObjects call takes


def outputs(cloudformation, stack: str) -> dict[str, str]:
    (found,) = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    return {o["OutputKey"]: o["OutputValue"] for o in found.get("Outputs", [])}


def empty_repository(ecr, name: str) -> int:
    """Delete every image of the repository (100 per call, the API's limit)."""
    deleted = 0
    for page in ecr.get_paginator("list_images").paginate(repositoryName=name):
        ids = page["imageIds"]
        for start in range(0, len(ids), 100):
            ecr.batch_delete_image(repositoryName=name, imageIds=ids[start : start + 100])
            deleted += len(ids[start : start + 100])
    return deleted


def empty_bucket(s3, bucket: str) -> int:
    """Delete every version and delete marker of every key, a page of at most 1,000 at
    a time, listing again from the start after each page (a listing does not survive
    the deletes); a version that could not be deleted stops it, saying which and why."""
    deleted = 0
    while True:
        page = s3.list_object_versions(Bucket=bucket, MaxKeys=PAGE)
        versions = [
            {"Key": v["Key"], "VersionId": v["VersionId"]}
            for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
        ][:PAGE]
        if not versions:
            return deleted
        result = s3.delete_objects(Bucket=bucket, Delete={"Objects": versions, "Quiet": True})
        errors = result.get("Errors", [])
        if errors:
            first = errors[0]
            raise SystemExit(
                f"error: {len(errors)} object versions of s3://{bucket} were not deleted, "
                f"the first {first['Key']} ({first.get('Code')}: {first.get('Message')})"
            )
        deleted += len(versions)


def teardown(stack: str, keep_buckets: bool, secrets: list[str], dry_run: bool) -> None:
    cloudformation = boto3.client("cloudformation")
    found = outputs(cloudformation, stack)
    repository = found["RepositoryUri"].split("/", 1)[1]
    buckets = [] if keep_buckets else [found["IngestionBucketName"], found["ProcessedBucketName"]]
    if dry_run:
        print(f"would delete: the images in ECR repository {repository}, stack {stack}")
        for bucket in buckets:
            print(f"would delete: every version in s3://{bucket}, then the bucket")
        for secret in secrets:
            print(f"would delete: secret {secret}, without recovery")
        print("nothing was deleted: give --yes to delete")
        return
    images = empty_repository(boto3.client("ecr"), repository)
    print(f"deleted {images} images from {repository}")
    cloudformation.delete_stack(StackName=stack)
    cloudformation.get_waiter("stack_delete_complete").wait(
        StackName=stack, WaiterConfig={"Delay": 10, "MaxAttempts": 180}
    )
    print(f"deleted stack {stack}")
    s3 = boto3.client("s3")
    for bucket in buckets:
        versions = empty_bucket(s3, bucket)
        s3.delete_bucket(Bucket=bucket)
        print(f"deleted s3://{bucket} and its {versions} object versions and delete markers")
    if keep_buckets:
        print(
            f"kept the lake: s3://{found['IngestionBucketName']}, s3://{found['ProcessedBucketName']}"
        )
    manager = boto3.client("secretsmanager")
    for secret in secrets:
        manager.delete_secret(SecretId=secret, ForceDeleteWithoutRecovery=True)
        print(f"deleted secret {secret}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", required=True, help="the stack's name")
    parser.add_argument("--yes", action="store_true", help="delete (otherwise only say what)")
    parser.add_argument("--keep-buckets", action="store_true", help="keep the lake's buckets")
    parser.add_argument(
        "--secret", action="append", default=[], help="a connection secret to delete too"
    )
    args = parser.parse_args(argv)
    try:
        teardown(args.stack, args.keep_buckets, args.secret, dry_run=not args.yes)
    except ClientError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
