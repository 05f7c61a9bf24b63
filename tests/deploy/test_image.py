"""The image the stack runs, built from the project's Dockerfile and run as the task
definition runs it: its own non-root user, a read-only root file system, settings from
the environment only, JSON log lines on stderr, a secret from Secrets Manager (moto), the
lake in S3 (moto) and the test PostgreSQL through its Unix socket."""

from __future__ import annotations

import json

import boto3
import pytest
from sqlalchemy import func, make_url, select, text

from tests.deploy import image
from tests.support import database, require
from totesys_cli.config.urls import parse_database_url
from totesys_cli.db import engine
from totesys_cli.runtime import LOCK_KEY

TAG = "localhost/totesys:under-test"


@pytest.fixture(scope="module")
def built() -> str:
    reason = image.unavailable()
    require(reason is None, f"the image cannot be built here: {reason}")
    result = image.build(TAG)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    yield TAG
    image.podman("rmi", "--force", TAG, timeout=120)


# where the container sees the test server's socket (bind-mounted alone: the server's
# folder is private to its user)
SOCKET = "/run/postgresql/.s.PGSQL.5432"


def _socket(url: str) -> str:
    sock = parse_database_url("test", url, "TEST").query.get("unix_sock")
    require(bool(sock), "the image test reaches the test server through its Unix socket")
    return sock


def _inside(url: str) -> str:
    """The URL as the container reaches the same database."""
    parsed = make_url(url).update_query_dict({"unix_sock": SOCKET})
    return parsed.render_as_string(hide_password=False)


def _run(tag: str, url: str, env: dict[str, str], *args: str):
    """`podman run` as ECS runs the task: the image's own user, read-only, no file."""
    options = ["run", "--rm", "--read-only", "--network=host", "-v", f"{_socket(url)}:{SOCKET}"]
    for name, value in env.items():
        options += ["-e", f"{name}={value}"]
    return image.podman(*options, tag, *args, timeout=300)


def _lines(stderr: str) -> list[dict]:
    """Every line on stderr, each of which must be one JSON object."""
    return [json.loads(line) for line in stderr.strip().splitlines()]


@pytest.mark.slow
def test_the_image_runs_the_job_read_only_as_its_own_user(
    built, moto_endpoint, source_url, warehouse_url
):
    user = image.podman("image", "inspect", "--format", "{{.Config.User}}", built)
    assert user.stdout.strip() == "10001"

    s3 = boto3.client("s3")
    for bucket in ("ingestion", "processed"):
        s3.create_bucket(
            Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-2"}
        )
    # a secret in the shape RDS manages for a master user: credentials only, the address
    # from the URL (which has no password)
    secret = boto3.client("secretsmanager").create_secret(
        Name="rds!db-warehouse",
        SecretString=json.dumps({"username": "postgres", "password": "not-checked"}),
    )["ARN"]
    aws = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "eu-west-2",
        "AWS_ENDPOINT_URL": moto_endpoint,
    }
    env = {
        **aws,
        "TOTESYS_SOURCE_URL": _inside(source_url),
        "TOTESYS_WAREHOUSE_URL": _inside(warehouse_url),  # no password: the secret gives it
        "TOTESYS_WAREHOUSE_SECRET": secret,
        "TOTESYS_RAW_URL": "s3://ingestion",
        "TOTESYS_PROCESSED_URL": "s3://processed",
    }

    initialised = _run(built, warehouse_url, env, "init")
    assert initialised.returncode == 0, initialised.stderr

    ran = _run(built, warehouse_url, env)  # the image's own command: run-all
    assert ran.returncode == 0, ran.stderr
    lines = _lines(ran.stderr)
    assert {"time", "level", "message", "run_id", "step"} <= set(lines[0])
    assert len({line["run_id"] for line in lines}) == 1
    assert {line["step"] for line in lines} >= {"extract", "transform", "load"}
    assert lines[-1]["message"] == "run succeeded" and lines[-1]["extracted"] > 0
    assert lines[-1]["loaded"] > 0 and lines[-1]["quarantined"] == 0
    with engine(database(warehouse_url)).connect() as conn:
        sales = conn.execute(select(func.count()).select_from(text("fact_sales_order")))
        assert sales.scalar_one() > 0
    assert s3.list_objects_v2(Bucket="processed")["KeyCount"] > 0

    unconfigured = _run(built, warehouse_url, {**env, "TOTESYS_SOURCE_URL": ""})
    assert unconfigured.returncode == 2
    (error,) = _lines(unconfigured.stderr)
    assert (error["level"], error["step"]) == ("ERROR", "startup")
    assert error["message"].startswith("no source database is configured")

    holder = engine(database(warehouse_url)).execution_options(isolation_level="AUTOCOMMIT")
    with holder.connect() as conn:
        conn.execute(select(func.pg_advisory_lock(LOCK_KEY)))
        locked = _run(built, warehouse_url, env)
        conn.execute(select(func.pg_advisory_unlock(LOCK_KEY)))
    assert locked.returncode == 75, locked.stderr
    assert [line["level"] for line in _lines(locked.stderr)] == ["WARNING"]
