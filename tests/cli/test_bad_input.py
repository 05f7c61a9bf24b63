"""Every bad input: one clear line, the right exit code, nothing changed anywhere, and no
password or secret in any output."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.support import ENCODED_PASSWORD, Pipeline, invoke, lake_state, leaks

OUTPUTS: list[str] = []


@pytest.fixture(scope="module", autouse=True)
def no_secret_in_any_output():
    yield
    assert OUTPUTS, "the suite captured no output"
    leaked = [o for o in OUTPUTS if leaks(o)]
    assert not leaked, leaked[:1]


@pytest.fixture
def ready(after_first_run, password_role) -> Pipeline:
    """A pipeline after one good run, reached with a password-checked role."""
    return after_first_run(*password_role)


def totesys(pipeline: Pipeline, *args: str, **env: str) -> subprocess.CompletedProcess:
    result = pipeline.cli(*args, **env)
    OUTPUTS.append(result.stdout + result.stderr)
    return result


def _lake_state(pipeline: Pipeline) -> dict[str, str]:
    return lake_state(pipeline.lake)


def _warehouse_state(pipeline: Pipeline) -> tuple:
    with pipeline.warehouse().connect() as conn:
        meta = conn.execute(text("SELECT seq FROM totesys_meta.loaded_runs ORDER BY seq")).all()
    return pipeline.snapshot(), meta


def _fails_cleanly(pipeline: Pipeline, code: int, expected: str, *args: str, **env: str):
    lake, warehouse = _lake_state(pipeline), _warehouse_state(pipeline)
    result = totesys(pipeline, *args, **env)
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0], lines[0]
    assert "Traceback" not in result.stderr
    assert _lake_state(pipeline) == lake
    assert _warehouse_state(pipeline) == warehouse
    return lines[0]


def test_malformed_source_url(ready):
    _fails_cleanly(
        ready,
        2,
        "ERROR   [startup] the source URL is malformed",
        "run-all",
        TOTESYS_SOURCE_URL=f"postgresql://u:{ENCODED_PASSWORD}@host:port/db",
    )


def test_wrong_password(ready):
    bad = ready.source_url.replace(ENCODED_PASSWORD, ENCODED_PASSWORD + "x")
    _fails_cleanly(
        ready,
        2,
        "[extract] cannot connect to the source database at ",
        "run-all",
        TOTESYS_SOURCE_URL=bad,
    )


def test_unreachable_source_host(ready):
    _fails_cleanly(
        ready,
        1,
        "[extract] cannot reach the source database at 127.0.0.1:9/x",
        "run-all",
        TOTESYS_SOURCE_URL=f"postgresql://u:{ENCODED_PASSWORD}@127.0.0.1:9/x",
    )


def test_unreachable_warehouse_host(ready):
    _fails_cleanly(
        ready,
        1,
        "cannot reach the warehouse database at 127.0.0.1:9/dw",
        "run-all",
        TOTESYS_WAREHOUSE_URL=f"postgresql://u:{ENCODED_PASSWORD}@127.0.0.1:9/dw",
    )


@pytest.mark.parametrize(
    ("since", "message"),
    [
        ("last tuesday", "--since 'last tuesday' is not a date or timestamp"),
        ("2999-01-01", "--since '2999-01-01' is in the future"),
    ],
)
def test_bad_since(ready, since, message):
    _fails_cleanly(ready, 2, message, "run-all", "--since", since)


def test_unknown_table(ready):
    _fails_cleanly(ready, 2, "'sales' is not one of", "extract", "--table", "sales")


def test_source_table_missing_a_column(ready):
    with ready.source().begin() as conn:
        conn.execute(text("ALTER TABLE payment DROP COLUMN paid"))
    _fails_cleanly(ready, 1, "[extract] the source table payment has no column paid", "run-all")


def test_warehouse_table_missing_a_column(ready):
    ready.activity()
    with ready.warehouse().begin() as conn:
        conn.execute(text("ALTER TABLE fact_payment DROP COLUMN paid CASCADE"))
    result = totesys(ready, "run-all")  # extract and transform commit; load refuses
    assert result.returncode == 1
    assert "[load] the warehouse table fact_payment has no column paid" in result.stderr
    _fails_cleanly(ready, 1, "[load] the warehouse table fact_payment has no column paid", "load")


def _pending_raw_run(pipeline: Pipeline) -> dict:
    pipeline.activity()
    assert totesys(pipeline, "extract").returncode == 0
    path = Path(pipeline.raw.url) / "_manifests" / "0000000002.json"
    return json.loads(path.read_text())


def test_truncated_parquet_file(ready):
    manifest = _pending_raw_run(ready)
    key = manifest["tables"]["payment"]["files"][0]["key"]
    path = Path(ready.raw.url) / key
    path.write_bytes(path.read_bytes()[:-200])
    _fails_cleanly(
        ready, 1, f"[transform] the lake file {path} is not readable Parquet", "transform"
    )


def test_manifest_naming_a_missing_file(ready):
    manifest = _pending_raw_run(ready)
    key = manifest["tables"]["sales_order"]["files"][0]["key"]
    (Path(ready.raw.url) / key).unlink()
    _fails_cleanly(
        ready,
        1,
        f"[transform] the lake file {ready.raw.url}/{key} is missing",
        "transform",
    )


def test_processed_run_not_matching_the_warehouse(ready):
    import pyarrow as pa
    import pyarrow.parquet as pq

    ready.activity()
    assert totesys(ready, "extract").returncode == 0
    assert totesys(ready, "transform").returncode == 0
    path = Path(ready.processed.url) / "_manifests" / "0000000002.json"
    key = json.loads(path.read_text())["tables"]["fact_sales_order"]["files"][0]["key"]
    pq.write_table(
        pa.table({"sales_order_id": pa.array([1], pa.int32())}),
        Path(ready.processed.url) / key,
    )
    _fails_cleanly(ready, 1, "[load] the lake file", "load")


def test_missing_bucket(ready, aws):
    result = invoke(
        "run-all", "--lake-url", "s3://no-such-bucket/lake", env=ready.env(TOTESYS_LAKE_URL=None)
    )
    OUTPUTS.append(result.output)
    assert result.exit_code == 2
    assert result.stderr.strip().endswith(
        "the lake bucket no-such-bucket does not exist (NoSuchBucket) while trying to list "
        "objects. Check TOTESYS_LAKE_URL and the role's S3 permissions"
    )


def test_a_prefix_without_permission(aws):
    """moto does not evaluate IAM or bucket policies, so the denial is botocore's own
    stubbed S3 answer; what is tested is how totesys reports it."""
    from botocore.stub import Stubber

    from totesys_cli.errors import ConfigError
    from totesys_cli.lake import open_lake

    lake = open_lake("s3://team-bucket/totesys/raw", "TOTESYS_LAKE_URL")
    with Stubber(lake.client) as stub:
        stub.add_client_error(
            "list_objects_v2", service_error_code="AccessDenied", http_status_code=403
        )
        with pytest.raises(ConfigError) as caught:
            lake.check()
    assert caught.value.message == (
        "the lake bucket team-bucket is not accessible (AccessDenied) while trying to list "
        "objects. Check TOTESYS_LAKE_URL and the role's S3 permissions"
    )
    OUTPUTS.append(caught.value.message)


def test_status_never_shows_a_password(ready):
    result = totesys(ready, "status", "--json")
    assert result.returncode == 0
    assert not leaks(result.stdout)
