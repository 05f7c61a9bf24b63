"""The installed `totesys` as users run it: run-all, status, verify, demo, as subprocesses."""

from __future__ import annotations

import datetime as dt
import json

import boto3
import pytest
from sqlalchemy import text

from tests.support import ENCODED_PASSWORD, Pipeline, leaks, totesys
from totesys_cli.schemas import SOURCE_TABLES


def _env(pipeline: Pipeline, lake: str) -> dict[str, str]:
    return {
        "TOTESYS_SOURCE_URL": pipeline.source_url,
        "TOTESYS_WAREHOUSE_URL": pipeline.warehouse_url,
        "TOTESYS_LAKE_URL": lake,
    }


def _run_all_and_verify(pipeline: Pipeline, env: dict[str, str]) -> None:
    pipeline.remember()
    run = totesys("--log-format", "json", "run-all", env=env)
    assert run.returncode == 0, run.stderr
    lines = [json.loads(line) for line in run.stderr.splitlines()]
    assert len({line["run_id"] for line in lines}) == 1
    assert {line["step"] for line in lines if line["message"] != "run succeeded"} <= {
        "extract",
        "transform",
        "load",
    }
    last = lines[-1]
    assert last["message"] == "run succeeded" and last["level"] == "INFO"
    assert {"extracted", "transformed", "loaded"} <= set(last)
    assert run.stdout == ""  # off a terminal: log lines only
    pipeline.assert_matches_source()
    verified = totesys("verify", env=env)
    assert verified.returncode == 0, verified.stderr
    assert "DRIFT" not in verified.stdout


def test_run_all_on_a_local_lake_then_after_activity(pipeline, tmp_path):
    env = _env(pipeline, str(tmp_path / "lake"))
    _run_all_and_verify(pipeline, env)
    pipeline.activity()
    _run_all_and_verify(pipeline, env)


@pytest.mark.slow
def test_run_all_on_s3_through_aws_endpoint_url(pipeline, moto_endpoint):
    boto3.client("s3").create_bucket(
        Bucket="totesys-lake", CreateBucketConfiguration={"LocationConstraint": "eu-west-2"}
    )
    env = _env(pipeline, "s3://totesys-lake/prod")
    _run_all_and_verify(pipeline, env)
    pipeline.activity()
    _run_all_and_verify(pipeline, env)
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket="totesys-lake")["Contents"]]
    assert "prod/raw/_manifests/0000000002.json" in keys
    assert "prod/processed/_manifests/0000000002.json" in keys


def test_verify_names_a_corrupted_row(pipeline, tmp_path):
    env = _env(pipeline, str(tmp_path / "lake"))
    assert totesys("run-all", env=env).returncode == 0
    with pipeline.warehouse().begin() as conn:
        conn.execute(
            text(
                "UPDATE fact_payment SET payment_amount = payment_amount + 1 "
                "WHERE payment_id = (SELECT min(payment_id) FROM fact_payment "
                "WHERE currency_id = 2)"
            )
        )
    result = totesys("verify", env=env)
    assert result.returncode == 1
    drifts = [line.split() for line in result.stdout.splitlines() if line.endswith("DRIFT")]
    assert [d[:3] for d in drifts] == [
        ["fact_payment", "sum(payment_amount)", "USD"],
        ["totesys_meta.payments_by_day", "groups", "unlike"],  # the facts changed under it
    ]
    (line,) = result.stderr.strip().splitlines()
    assert (
        "ERROR   [verify] the warehouse differs from the source: fact_payment "
        "sum(payment_amount) USD: source " in line
    )
    with pipeline.warehouse().connect() as conn:
        key = conn.execute(
            text("SELECT min(payment_id) FROM fact_payment WHERE currency_id = 2")
        ).scalar_one()
    with pipeline.source().connect() as conn:
        stamp = conn.execute(
            text(f"SELECT last_updated FROM payment WHERE payment_id = {key}")
        ).scalar_one()
    assert line.endswith(  # and the measures that differ, which the drift alarm counts
        f"(fact_payment keys {key}). Reprocess them with totesys run-all --since "
        f"{stamp.isoformat()}  drift=2"
    )
    repaired = totesys("run-all", "--since", stamp.isoformat(), env=env)  # exactly that
    assert repaired.returncode == 0, repaired.stderr
    assert totesys("verify", env=env).returncode == 0


def test_a_failed_step_stops_the_run_and_the_next_run_continues(pipeline, tmp_path):
    env = _env(pipeline, str(tmp_path / "lake"))
    with pipeline.warehouse().begin() as conn:
        conn.execute(text("ALTER TABLE dim_design RENAME COLUMN file_name TO file"))
    failed = totesys("--log-format", "json", "run-all", env=env)
    assert failed.returncode == 1
    error = json.loads(failed.stderr.strip().splitlines()[-1])
    assert error["level"] == "ERROR" and error["step"] == "load"
    assert "dim_design has no column file_name" in error["message"]
    assert (tmp_path / "lake/raw/_manifests/0000000001.json").exists()
    assert (tmp_path / "lake/processed/_manifests/0000000001.json").exists()
    with pipeline.warehouse().begin() as conn:
        conn.execute(text("ALTER TABLE dim_design RENAME COLUMN file TO file_name"))
    assert totesys("run-all", env=env).returncode == 0
    pipeline.assert_matches_source()


def test_a_second_run_exits_75_at_once_while_the_lock_is_held(pipeline, tmp_path):
    from totesys_cli.runtime import LOCK_KEY

    env = _env(pipeline, str(tmp_path / "lake"))
    with pipeline.warehouse().connect() as holder:
        holder.execute(text("SELECT pg_advisory_lock(:k)"), {"k": LOCK_KEY})
        # the lock stays held until this returns: a run that waited for it would time out
        second = totesys("run-all", env=env, timeout=60)
    assert second.returncode == 75
    (line,) = second.stderr.strip().splitlines()
    assert "WARNING [startup] another totesys run holds the warehouse lock" in line
    first = totesys("run-all", env=env)  # its own steps never report 75
    assert first.returncode == 0, first.stderr


def test_status_json_after_a_run(pipeline, tmp_path):
    env = _env(pipeline, str(tmp_path / "lake"))
    assert totesys("run-all", env=env).returncode == 0
    result = totesys("status", "--json", env=env)
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["raw_url"] == f"{tmp_path}/lake/raw"
    assert status["warehouse"].endswith(pipeline.warehouse_url.split("/")[-1].split("?")[0])
    assert status["last_extract"] == 1 and status["last_transform"] == 1
    assert status["not_transformed"] == [] and status["not_loaded"] == []
    assert status["last_load"]["run"] == 1
    assert status["fresh"] is True and 0 <= status["freshness_seconds"] < 120
    assert set(status["tables"]) == set(SOURCE_TABLES)
    with pipeline.source().connect() as conn:
        newest = conn.execute(text("SELECT max(last_updated) FROM payment")).scalar_one()
    assert status["tables"]["payment"]["watermark"] == f"{newest.isoformat()}+00:00"
    assert dt.datetime.fromisoformat(status["last_load"]["loaded_at"]).utcoffset() == dt.timedelta(
        0
    )
    assert status["row_counts"]["fact_sales_order"] == len(pipeline.expected("fact_sales_order"))
    with pipeline.warehouse().connect() as conn:
        conn.execute(  # a second version of one order: versions and latest rows part
            text(
                "INSERT INTO fact_sales_order (sales_order_id, created_date, created_time, "
                "last_updated_date, last_updated_time, sales_staff_id, counterparty_id, "
                "units_sold, unit_price, currency_id, design_id, agreed_payment_date, "
                "agreed_delivery_date, agreed_delivery_location_id) "
                "SELECT sales_order_id, created_date, created_time, last_updated_date, "
                "last_updated_time - interval '1 second', sales_staff_id, counterparty_id, "
                "units_sold + 1, unit_price, "
                "currency_id, design_id, agreed_payment_date, agreed_delivery_date, "
                "agreed_delivery_location_id FROM fact_sales_order WHERE sales_order_id = 1"
            )
        )
        conn.commit()
    counted = json.loads(totesys("status", "--json", env=env).stdout)
    versions, latest = counted["row_counts"], counted["latest_rows"]
    assert versions["fact_sales_order"] == latest["fact_sales_order"] + 1
    assert latest["fact_sales_order"] == len(pipeline.expected("fact_sales_order"))
    assert totesys("extract", env=env).returncode == 0
    pending = json.loads(totesys("status", "--json", env=env).stdout)
    assert pending["not_transformed"] == [2] and pending["not_loaded"] == []


def test_status_reports_unconfigured_parts_and_an_unreachable_warehouse(tmp_path):
    bare = totesys(
        "status",
        env={"TOTESYS_SOURCE_URL": "", "TOTESYS_WAREHOUSE_URL": "", "TOTESYS_LAKE_URL": ""},
    )
    assert bare.returncode == 0, bare.stderr
    assert "raw zone:        not configured" in bare.stdout
    down = totesys(
        "status",
        env={
            "TOTESYS_WAREHOUSE_URL": f"postgresql://u:{ENCODED_PASSWORD}@127.0.0.1:9/dw",
            "TOTESYS_LAKE_URL": str(tmp_path),
        },
    )
    assert down.returncode == 1
    raw, processed, line = down.stderr.strip().splitlines()
    assert f"WARNING [status] the raw zone {tmp_path}/raw holds no runs" in raw  # a typo?
    assert f"the processed zone {tmp_path}/processed holds no runs yet" in processed
    assert "[status] cannot reach the warehouse database at 127.0.0.1:9/dw" in line
    assert not leaks(down.stdout + down.stderr)


def test_run_all_on_a_terminal_prints_its_summary_table(pipeline, tmp_path):
    """Rows per table through each step and seconds per step, only on a terminal."""
    import os
    import pty
    import subprocess

    from tests.support import TOTESYS

    controller, terminal = pty.openpty()
    run = subprocess.run(
        [TOTESYS, "run-all"],
        stdout=terminal,
        stderr=subprocess.PIPE,
        env={**os.environ, **_env(pipeline, str(tmp_path / "lake"))},
        timeout=120,
        check=False,
    )
    os.close(terminal)
    shown = b""
    while chunk := _read_available(controller):
        shown += chunk
    os.close(controller)
    assert run.returncode == 0, run.stderr
    lines = shown.decode().splitlines()
    assert lines[0].split() == ["table", "extracted", "transformed", "loaded"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:-1]}
    assert rows["sales_order"] == ["300"]  # extracted
    assert rows["fact_sales_order"] == ["300", "300"]  # transformed, loaded
    assert lines[-1].startswith("seconds: extract ")


def _read_available(fd: int) -> bytes:
    import os
    import select

    if not select.select([fd], [], [], 1)[0]:
        return b""
    try:
        return os.read(fd, 65536)
    except OSError:  # the terminal's other end is closed: everything was read
        return b""


def test_transform_and_load_with_the_zones_in_separate_places(pipeline, tmp_path):
    """The ingestion and processed buckets of the deployment, as two folders."""
    zones = {
        "TOTESYS_LAKE_URL": None,
        "TOTESYS_RAW_URL": str(tmp_path / "ingestion"),
        "TOTESYS_PROCESSED_URL": str(tmp_path / "processed"),
    }
    for step in ("extract", "transform", "load"):
        result = pipeline.here(step, **zones)
        assert result.returncode == 0, result.stderr
    assert (tmp_path / "ingestion" / "_manifests" / "0000000001.json").exists()
    assert (tmp_path / "processed" / "_manifests" / "0000000001.json").exists()
    assert not (tmp_path / "ingestion" / "processed").exists()
    pipeline.assert_matches_source()


def test_a_manifest_of_an_unknown_format_is_refused(pipeline, tmp_path):
    lake = tmp_path / "lake"
    assert pipeline.here("extract").returncode == 0
    manifest = lake / "raw" / "_manifests" / "0000000001.json"
    manifest.write_text(manifest.read_text().replace('"format": 2', '"format": 99'))
    result = pipeline.here("run-all")
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .endswith(
            f"[extract] the manifest {manifest} has format 99; this totesys reads raw manifests "
            "of formats 1 to 2. Upgrade totesys"
        )
    )


def test_verify_leaves_rows_changed_since_the_load_to_the_next_run(after_first_run):
    pipeline = after_first_run()
    with pipeline.source().begin() as conn:
        conn.execute(
            text(
                "UPDATE sales_order SET units_sold = units_sold + 1, last_updated = "
                "(now() AT TIME ZONE 'UTC')::timestamp(3) WHERE sales_order_id IN (1, 2)"
            )
        )
    verified = pipeline.here("verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "DRIFT" not in verified.stdout
    assert verified.stdout.strip().endswith("2 source rows changed since (left for the next run)")


def test_a_late_transaction_with_a_savepoint_reaches_the_warehouse_whole(pipeline):
    """A transaction open across two runs (overlap 0, a newer change committed and read
    meanwhile) writes one row at top level and one inside a SAVEPOINT, then commits: the
    next run brings both, and the warehouse is the source again."""
    no_overlap = {"TOTESYS_OVERLAP_MINUTES": "0"}
    assert pipeline.here("run-all", **no_overlap).returncode == 0
    pipeline.remember()
    now = "(now() AT TIME ZONE 'UTC')::timestamp(3)"
    late = pipeline.source().connect()
    try:
        late.execute(text(f"UPDATE staff SET last_name = 'Top', last_updated = {now} "
                          "WHERE staff_id = 2"))  # fmt: skip
        late.execute(text("SAVEPOINT inner_write"))
        late.execute(text(f"UPDATE design SET design_name = 'Inner', last_updated = {now} "
                          "WHERE design_id = 3"))  # fmt: skip
        late.execute(text("RELEASE SAVEPOINT inner_write"))
        for run in range(2):
            with pipeline.source().begin() as conn:
                conn.execute(
                    text(
                        "UPDATE design SET design_name = :name, last_updated = "
                        "(clock_timestamp() AT TIME ZONE 'UTC')::timestamp(3) "
                        "WHERE design_id = 4"
                    ),
                    {"name": f"Early {run}"},
                )
            assert pipeline.here("run-all", **no_overlap).returncode == 0
        late.commit()
    finally:
        late.close()
    caught = pipeline.here("run-all", **no_overlap)
    assert caught.returncode == 0, caught.stderr
    pipeline.assert_matches_source()
    with pipeline.warehouse().connect() as conn:
        assert conn.execute(
            text("SELECT design_name FROM dim_design WHERE design_id = 3")
        ).scalar_one() == "Inner"  # fmt: skip
